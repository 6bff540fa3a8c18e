//! Manual replay and job inspection on PostgreSQL (the rules are the SQLite store's: see its
//! `replay` module): a finished job goes back to the queue as new, its former state kept in
//! `job_replays`; a delivery whose payload was pruned is not replayed.

use deadpool_postgres::{GenericClient, Transaction};

use super::super::{DEAD_BATCH, Requeued, count, decode_task};
use super::super::{
    DeadFilter, DeliveryDetail, JobDetail, JobFilter, JobReplay, JobState, Replay, Replayed,
    Result, Task,
};
use super::{Postgres, state};
use crate::clock::now_ms;

const JOB_DETAIL: &str = "SELECT id, tenant, connector, task, state, attempts, last_error, run_at,
        idempotency_key, delivery_id, created_at, finished_at, result FROM jobs";

impl Postgres {
    /// Replays a delivery, a job, or a set of dead jobs; `None` when the named delivery or job
    /// does not exist.
    ///
    /// # Errors
    /// When the database cannot commit; batches committed before stay replayed.
    pub async fn replay(&self, what: Replay) -> Result<Option<Replayed>> {
        let id = match what {
            Replay::Dead(filter) => return self.replay_dead(filter, |_| {}).await.map(Some),
            Replay::Delivery(id) | Replay::Job(id) => id,
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let requeued = match what {
            Replay::Job(_) => requeue(&tx, id, now).await?,
            _ => {
                let job = tx
                    .query_opt(
                        "SELECT id FROM jobs WHERE idempotency_key=$1",
                        &[&format!("delivery:{id}")],
                    )
                    .await?;
                match job {
                    Some(job) => requeue(&tx, job.get(0), now).await?,
                    None => requeue_lost_delivery_job(&tx, id, now).await?,
                }
            }
        };
        let mut replayed = Replayed::default();
        if let Some(r) = requeued {
            count(&mut replayed, r);
        }
        tx.commit().await?;
        self.notifier.committed(replayed.queued > 0, false);
        Ok(requeued.map(|_| replayed))
    }

    /// Replays the dead jobs `filter` matches, in batches (each its own transaction), telling
    /// `progress` the running total after each.
    ///
    /// # Errors
    /// When the database cannot commit; batches committed before stay replayed.
    pub async fn replay_dead(
        &self,
        filter: DeadFilter,
        progress: impl Fn(Replayed) + Send,
    ) -> Result<Replayed> {
        let mut total = Replayed::default();
        let mut after_id = 0i64;
        loop {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM jobs
                     WHERE state='dead' AND id>$1 AND ($2::text IS NULL OR tenant=$2)
                       AND ($3::text IS NULL OR connector=$3) AND ($4::bigint IS NULL OR created_at>=$4)
                       AND ($5::bigint IS NULL OR created_at<$5)
                     ORDER BY id LIMIT $6",
                    &[
                        &after_id,
                        &filter.tenant.as_ref().map(|t| t.as_str()),
                        &filter.connector.as_ref().map(|c| c.as_str()),
                        &filter.since_ms,
                        &filter.until_ms,
                        &(DEAD_BATCH as i64),
                    ],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let now = now_ms();
            let mut batch = Replayed::default();
            for &id in &ids {
                if let Some(r) = requeue(&tx, id, now).await? {
                    count(&mut batch, r);
                }
            }
            tx.commit().await?;
            self.notifier.committed(batch.queued > 0, false);
            total += batch;
            progress(total);
            if ids.len() < DEAD_BATCH {
                return Ok(total);
            }
            after_id = ids.last().copied().unwrap_or(after_id);
        }
    }

    /// How many dead jobs `filter` matches (a bulk replay's preview).
    ///
    /// # Errors
    /// On database failure.
    pub async fn count_dead(&self, filter: DeadFilter) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM jobs WHERE state='dead'
                   AND ($1::text IS NULL OR tenant=$1) AND ($2::text IS NULL OR connector=$2)
                   AND ($3::bigint IS NULL OR created_at >= $3) AND ($4::bigint IS NULL OR created_at < $4)",
                &[
                    &filter.tenant.as_ref().map(|t| t.as_str()),
                    &filter.connector.as_ref().map(|c| c.as_str()),
                    &filter.since_ms,
                    &filter.until_ms,
                ],
            )
            .await?
            .get(0))
    }

    /// Jobs, newest first, with their keys, timings and replay history.
    ///
    /// # Errors
    /// On database failure.
    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobDetail>> {
        let limit = match filter.limit {
            0 => 50,
            n => n.min(1000),
        } as i64;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "{JOB_DETAIL}
                     WHERE ($1::text IS NULL OR tenant=$1) AND ($2::text IS NULL OR connector=$2)
                       AND ($3::text IS NULL OR state=$3)
                       AND ($4::text IS NULL OR starts_with(idempotency_key, $4))
                       AND id < coalesce($6, 9223372036854775807)
                       AND ($7::text IS NULL OR idempotency_key=$7)
                     ORDER BY id DESC LIMIT $5"
                ),
                &[
                    &filter.tenant.as_ref().map(|t| t.as_str()),
                    &filter.connector.as_ref().map(|c| c.as_str()),
                    &filter.state.map(|s| s.as_str()),
                    &filter.key_prefix,
                    &limit,
                    &filter.before,
                    &filter.key,
                ],
            )
            .await?;
        let jobs = rows.iter().map(job_detail).collect::<Result<Vec<_>>>()?;
        with_replays(&client, jobs).await
    }

    /// One delivery with its payload, prune time and jobs.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delivery_detail(&self, id: i64) -> Result<Option<DeliveryDetail>> {
        let Some(delivery) = self.delivery(id).await? else {
            return Ok(None);
        };
        let client = self.client().await?;
        let pruned_at_ms: Option<i64> = client
            .query_one("SELECT pruned_at FROM deliveries WHERE id=$1", &[&id])
            .await?
            .get(0);
        let rows = client
            .query(
                &format!("{JOB_DETAIL} WHERE delivery_id=$1 ORDER BY id"),
                &[&id],
            )
            .await?;
        let jobs = rows.iter().map(job_detail).collect::<Result<Vec<_>>>()?;
        Ok(Some(DeliveryDetail {
            delivery,
            pruned_at_ms,
            jobs: with_replays(&client, jobs).await?,
        }))
    }
}

fn job_detail(r: &tokio_postgres::Row) -> Result<JobDetail> {
    Ok(JobDetail {
        job: super::reads::job_row(r)?,
        idempotency_key: r.get(8),
        delivery_id: r.get(9),
        created_at_ms: r.get(10),
        finished_at_ms: r.get(11),
        result: r
            .get::<_, Option<String>>(12)
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        replays: Vec::new(),
    })
}

async fn with_replays(c: &impl GenericClient, mut jobs: Vec<JobDetail>) -> Result<Vec<JobDetail>> {
    let stmt = c
        .prepare_cached(
            "SELECT replayed_at, state, attempts, last_error, finished_at FROM job_replays
             WHERE job_id=$1 ORDER BY replayed_at, ctid",
        )
        .await?;
    for job in &mut jobs {
        job.replays = c
            .query(&stmt, &[&job.job.id])
            .await?
            .iter()
            .map(|r| {
                Ok(JobReplay {
                    replayed_at_ms: r.get(0),
                    state: state(r, 1)?,
                    attempts: r.get(2),
                    last_error: r.get(3),
                    finished_at_ms: r.get(4),
                })
            })
            .collect::<Result<Vec<_>>>()?;
    }
    Ok(jobs)
}

/// Puts one finished job back in the queue, keeping its old state; `None`: no such job.
async fn requeue(tx: &Transaction<'_>, id: i64, now: i64) -> Result<Option<Requeued>> {
    let Some(job) = tx
        .query_opt(
            "SELECT state, task FROM jobs WHERE id=$1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let state: JobState = state(&job, 0)?;
    if matches!(state, JobState::Queued | JobState::Running) {
        return Ok(Some(Requeued::Pending));
    }
    let delivery = match decode_task(job.get(1)) {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    };
    if let Some(delivery) = delivery
        && !payload_kept(tx, delivery).await?
    {
        return Ok(Some(Requeued::Pruned));
    }
    tx.execute(
        "INSERT INTO job_replays (job_id, replayed_at, state, attempts, last_error, finished_at)
         SELECT id, $2, state, attempts, last_error, finished_at FROM jobs WHERE id=$1",
        &[&id, &now],
    )
    .await?;
    tx.execute(
        "UPDATE jobs SET state='queued', attempts=0, run_at=$2, lease_until=NULL, lease_token=NULL,
                last_error=NULL, finished_at=NULL, result=NULL
         WHERE id=$1",
        &[&id, &now],
    )
    .await?;
    if let Some(delivery) = delivery {
        tx.execute(
            "UPDATE deliveries SET state='received' WHERE id=$1",
            &[&delivery],
        )
        .await?;
    }
    Ok(Some(Requeued::Queued))
}

async fn payload_kept(tx: &Transaction<'_>, delivery: i64) -> Result<bool> {
    let row = tx
        .query_opt("SELECT pruned_at FROM deliveries WHERE id=$1", &[&delivery])
        .await?;
    Ok(matches!(
        row.map(|r| r.get::<_, Option<i64>>(0)),
        Some(None)
    ))
}

/// A delivery whose job row is gone: queue a new one under the same key, if its payload is
/// still there; `None` when the delivery does not exist.
async fn requeue_lost_delivery_job(
    tx: &Transaction<'_>,
    id: i64,
    now: i64,
) -> Result<Option<Requeued>> {
    let Some(row) = tx
        .query_opt(
            "SELECT tenant, connector FROM deliveries WHERE id=$1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    if !payload_kept(tx, id).await? {
        return Ok(Some(Requeued::Pruned));
    }
    let task = super::super::encode_task(&Task::Delivery { delivery_id: id }, None);
    tx.execute(
        super::enqueue::insert_job_sql(),
        &[
            &row.get::<_, &str>(0),
            &row.get::<_, &str>(1),
            &task,
            &Some(id),
            &format!("delivery:{id}"),
            &now,
            &now,
        ],
    )
    .await?;
    tx.execute("UPDATE deliveries SET state='received' WHERE id=$1", &[&id])
        .await?;
    Ok(Some(Requeued::Queued))
}
