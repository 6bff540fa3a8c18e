//! Webhooks into PostgreSQL by group commit: requests wait on a channel; each of a few writer
//! tasks takes every request waiting (up to [`MAX_BATCH`] deliveries), stores them and queues
//! their jobs in one transaction, and answers them all once `COMMIT` returned. While one writer
//! waits for its commit to reach the disk, another gathers and writes the next batch, so the
//! server's WAL flushes carry many webhooks each.
//!
//! A batch that fails as a whole (a value the server refuses in one webhook, say) is written
//! again one webhook per transaction, so one bad webhook fails alone.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::super::{Ingested, NewDelivery, Result, StoreError, Task};
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
///
/// The whole batch is one `INSERT … SELECT FROM unnest(…)` for the deliveries and one for their
/// jobs (a third statement only when some were duplicates): the server's work per webhook is the
/// rows it writes, not a round trip each.
async fn transaction(
    pool: &Pool,
    requests: &[&[(NewDelivery, String)]],
) -> Result<Vec<Vec<Ingested>>> {
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
    let rows: Vec<&(NewDelivery, String)> = order.iter().map(|&(r, i)| &requests[r][i]).collect();
    let column = |f: fn(&NewDelivery) -> &str| -> Vec<std::borrow::Cow<'_, str>> {
        rows.iter().map(|(d, _)| text(f(d))).collect()
    };
    let (tenants, connectors) = (
        column(|d| d.tenant.as_str()),
        column(|d| d.connector.as_str()),
    );
    let identities = column(|d| &d.identity);
    let routes = column(|d| &d.route);
    let urls = column(|d| &d.url);
    let methods = column(|d| &d.method);
    let events: Vec<Option<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|(d, _)| d.event.as_deref().map(text))
        .collect();
    let headers: Vec<&str> = rows.iter().map(|(_, h)| h.as_str()).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|(d, _)| d.body.as_slice()).collect();
    let received: Vec<i64> = rows.iter().map(|(d, _)| d.received_at_ms).collect();
    let traces: Vec<Option<&str>> = rows.iter().map(|(d, _)| d.trace.as_deref()).collect();

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO deliveries (tenant, connector, identity, route, event, url, headers, body, received_at, method)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::bytea[], $9::int8[], $10::text[])
             ON CONFLICT (tenant, connector, identity) DO NOTHING
             RETURNING id, tenant, connector, identity",
        )
        .await?;
    let inserted = tx
        .query(
            &insert,
            &[
                &tenants,
                &connectors,
                &identities,
                &routes,
                &events,
                &urls,
                &headers,
                &bodies,
                &received,
                &methods,
            ],
        )
        .await?;
    let mut stored: HashMap<(String, String, String), i64> = HashMap::with_capacity(inserted.len());
    for row in &inserted {
        stored.insert(
            (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            row.try_get(0)?,
        );
    }

    // Each new delivery's job; the first of equal identities in a batch is the one stored.
    let key = |i: usize| {
        (
            tenants[i].to_string(),
            connectors[i].to_string(),
            identities[i].to_string(),
        )
    };
    let mut outcomes: Vec<Option<Ingested>> = vec![None; rows.len()];
    let mut seen: HashMap<(String, String, String), i64> = HashMap::new();
    let mut job_rows = Vec::with_capacity(stored.len());
    let mut missing = Vec::new();
    for (i, outcome) in outcomes.iter_mut().enumerate() {
        let k = key(i);
        if let Some(&id) = seen.get(&k) {
            *outcome = Some(Ingested::Duplicate(id));
        } else if let Some(&id) = stored.get(&k) {
            seen.insert(k, id);
            *outcome = Some(Ingested::Stored(id));
            job_rows.push((i, id));
        } else {
            missing.push(i);
        }
    }
    if !job_rows.is_empty() {
        let jobs = tx
            .prepare_cached(
                "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
                 SELECT t, c, task, d, k, r, $7 FROM unnest($1::text[], $2::text[], $3::text[],
                                                      $4::int8[], $5::text[], $6::int8[]) AS u(t, c, task, d, k, r)
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .await?;
        let t: Vec<&str> = job_rows.iter().map(|&(i, _)| tenants[i].as_ref()).collect();
        let c: Vec<&str> = job_rows
            .iter()
            .map(|&(i, _)| connectors[i].as_ref())
            .collect();
        let tasks: Vec<String> = job_rows
            .iter()
            .map(|&(i, id)| {
                super::super::encode_task(&Task::Delivery { delivery_id: id }, traces[i])
            })
            .collect();
        let ids: Vec<i64> = job_rows.iter().map(|&(_, id)| id).collect();
        let keys: Vec<String> = ids.iter().map(|id| format!("delivery:{id}")).collect();
        let run_at: Vec<i64> = job_rows.iter().map(|&(i, _)| received[i]).collect();
        tx.execute(
            &jobs,
            &[
                &t,
                &c,
                &tasks,
                &ids,
                &keys,
                &run_at,
                &crate::clock::now_ms(),
            ],
        )
        .await?;
    }
    if !missing.is_empty() {
        let existing = tx
            .prepare_cached(
                "SELECT d.id, d.tenant, d.connector, d.identity FROM deliveries d
                 JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(t, c, i)
                   ON d.tenant = u.t AND d.connector = u.c AND d.identity = u.i",
            )
            .await?;
        let pick = |v: &[std::borrow::Cow<'_, str>]| -> Vec<String> {
            missing.iter().map(|&i| v[i].to_string()).collect()
        };
        let found = tx
            .query(
                &existing,
                &[&pick(&tenants), &pick(&connectors), &pick(&identities)],
            )
            .await?;
        let mut earlier = HashMap::with_capacity(found.len());
        for row in &found {
            earlier.insert(
                (
                    row.try_get::<_, String>(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ),
                row.try_get::<_, i64>(0)?,
            );
        }
        for i in missing {
            let id = earlier.get(&key(i)).copied().ok_or_else(|| {
                StoreError::Corrupt("a duplicate delivery vanished while it was stored".into())
            })?;
            outcomes[i] = Some(Ingested::Duplicate(id));
        }
    }
    tx.commit().await.map_err(|e| {
        tracing::warn!("webhook batch commit failed: {}", message(&e));
        StoreError::from(e)
    })?;

    let mut results: Vec<Vec<Option<Ingested>>> =
        requests.iter().map(|ds| vec![None; ds.len()]).collect();
    for (&(r, i), outcome) in order.iter().zip(outcomes) {
        results[r][i] = outcome;
    }
    Ok(results
        .into_iter()
        .map(|r| r.into_iter().flatten().collect())
        .collect())
}
