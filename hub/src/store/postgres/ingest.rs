//! Webhooks into PostgreSQL by group commit: requests wait on a channel; each of a few writer
//! tasks takes every request waiting (up to [`MAX_BATCH`] deliveries), stores them and queues
//! their jobs in one transaction, and answers them all once `COMMIT` returned. While one writer
//! waits for its commit to reach the disk, another gathers and writes the next batch, so the
//! server's WAL flushes carry many webhooks each.
//!
//! A batch that fails as a whole (a value the server refuses in one webhook, say) is written
//! again one webhook per transaction, so one bad webhook fails alone.

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::super::{Ingested, NewDelivery, Result, StoreError, Task};
use super::queue::insert_job_sql;
use super::{message, text};

/// One request: deliveries with their headers as JSON, and where the answer goes.
pub(super) type Batch = (
    Vec<(NewDelivery, String)>,
    oneshot::Sender<Result<Vec<Ingested>>>,
);

/// Deliveries a writer puts in one transaction, at most.
const MAX_BATCH: usize = 1000;
/// Writer tasks: one writing while another waits for its commit.
const WRITERS: usize = 3;

impl super::Postgres {
    /// Stores deliveries durably (deduplicated) and queues each new one for its connector.
    /// Returns once the transaction holding them is committed.
    ///
    /// # Errors
    /// When the database cannot commit: the caller must not acknowledge.
    pub async fn ingest(&self, deliveries: Vec<NewDelivery>) -> Result<Vec<Ingested>> {
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let headers = serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into());
                (d, headers)
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        self.ingest
            .send((deliveries, tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// Starts the writers; requests go into the returned channel.
pub(super) fn start(pool: Pool, notifier: std::sync::Arc<super::Notifier>) -> mpsc::Sender<Batch> {
    let (tx, rx) = mpsc::channel::<Batch>(8192);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    for _ in 0..WRITERS {
        let (pool, rx, notifier) = (pool.clone(), rx.clone(), notifier.clone());
        tokio::spawn(async move {
            loop {
                let mut batch = Vec::new();
                {
                    let mut rx = rx.lock().await;
                    let Some(first) = rx.recv().await else { return };
                    let mut rows = first.0.len();
                    batch.push(first);
                    while rows < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(next) => {
                                rows += next.0.len();
                                batch.push(next);
                            }
                            Err(_) => break,
                        }
                    }
                }
                write(&pool, &notifier, batch).await;
            }
        });
    }
    tx
}

/// Writes one batch and answers each of its requests.
async fn write(pool: &Pool, notifier: &super::Notifier, batch: Vec<Batch>) {
    let requests: Vec<&[(NewDelivery, String)]> = batch.iter().map(|(d, _)| d.as_slice()).collect();
    match transaction(pool, &requests).await {
        Ok(results) => {
            notifier.committed(stored_any(&results), false);
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) if batch.len() == 1 => {
            let (_, reply) = batch.into_iter().next().expect("one request");
            let _ = reply.send(Err(e));
        }
        Err(e) => {
            tracing::debug!("a webhook batch failed ({e}); writing its requests one by one");
            for (deliveries, reply) in batch {
                let result = transaction(pool, &[&deliveries])
                    .await
                    .map(|mut r| r.pop().unwrap_or_default());
                if let Ok(ingested) = &result {
                    notifier.committed(stored_any(std::slice::from_ref(ingested)), false);
                }
                let _ = reply.send(result);
            }
        }
    }
}

fn stored_any(results: &[Vec<Ingested>]) -> bool {
    results
        .iter()
        .flatten()
        .any(|i| matches!(i, Ingested::Stored(_)))
}

/// Stores every request's deliveries in one transaction; each request's outcomes, in order.
async fn transaction(
    pool: &Pool,
    requests: &[&[(NewDelivery, String)]],
) -> Result<Vec<Vec<Ingested>>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO deliveries (tenant, connector, route, identity, event, url, headers, body, received_at, method)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tenant, connector, identity) DO NOTHING RETURNING id",
        )
        .await?;
    let existing = tx
        .prepare_cached(
            "SELECT id FROM deliveries WHERE tenant=$1 AND connector=$2 AND identity=$3",
        )
        .await?;
    let job = tx.prepare_cached(insert_job_sql()).await?;
    // Rows are locked in one order in every transaction (tenant, connector, identity): two
    // batches holding the same webhooks wait for each other, never deadlock.
    let mut order: Vec<(usize, usize)> = requests
        .iter()
        .enumerate()
        .flat_map(|(r, ds)| (0..ds.len()).map(move |i| (r, i)))
        .collect();
    order.sort_by(|&(ra, ia), &(rb, ib)| {
        let (a, b) = (&requests[ra][ia].0, &requests[rb][ib].0);
        (a.tenant.as_str(), a.connector.as_str(), &a.identity).cmp(&(
            b.tenant.as_str(),
            b.connector.as_str(),
            &b.identity,
        ))
    });
    let mut results: Vec<Vec<Option<Ingested>>> =
        requests.iter().map(|ds| vec![None; ds.len()]).collect();
    for (r, i) in order {
        let (d, headers) = &requests[r][i];
        let identity = text(&d.identity);
        let inserted = tx
            .query_opt(
                &insert,
                &[
                    &d.tenant.as_str(),
                    &d.connector.as_str(),
                    &text(&d.route),
                    &identity,
                    &d.event.as_deref().map(text),
                    &text(&d.url),
                    headers,
                    &d.body,
                    &d.received_at_ms,
                    &text(&d.method),
                ],
            )
            .await?;
        let outcome = match inserted {
            Some(row) => {
                let id: i64 = row.get(0);
                let task = super::super::queue::encode_task(&Task::Delivery { delivery_id: id });
                tx.execute(
                    &job,
                    &[
                        &d.tenant.as_str(),
                        &d.connector.as_str(),
                        &task,
                        &Some(id),
                        &format!("delivery:{id}"),
                        &d.received_at_ms,
                        &super::super::now_ms(),
                    ],
                )
                .await?;
                Ingested::Stored(id)
            }
            None => {
                let row = tx
                    .query_one(
                        &existing,
                        &[&d.tenant.as_str(), &d.connector.as_str(), &identity],
                    )
                    .await?;
                Ingested::Duplicate(row.get(0))
            }
        };
        results[r][i] = Some(outcome);
    }
    tx.commit().await.map_err(|e| {
        tracing::warn!("webhook batch commit failed: {}", message(&e));
        StoreError::from(e)
    })?;
    Ok(results
        .into_iter()
        .map(|r| r.into_iter().flatten().collect())
        .collect())
}
