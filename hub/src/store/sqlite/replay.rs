//! Manual replay and job inspection.
//!
//! Replaying puts a finished (done or dead) job back in the queue as if new: `queued`,
//! `attempts = 0`, `run_at = now`, error and finish time cleared. What it was before is kept as
//! a row of `job_replays` (its state, attempts, last error and finish time), so an operator can
//! still see why it failed. The job keeps its row, id and idempotency key, so everything its
//! handling derives from them (keys of the actions it queues) is the same as the first time and
//! a replay never acts twice. A delivery whose payload retention pruned is not replayed.

use rusqlite::{Connection, OptionalExtension, params};

use super::deliveries::delivery_row;
use super::enqueue::insert_job;
use super::queue::job_row;
use super::{Command, JobState, NewJob, Result, Sqlite, Task};

use super::decode_task;
use super::{
    DEAD_BATCH, DeadFilter, DeliveryDetail, JobDetail, JobFilter, JobReplay, Replay, Replayed,
    Requeued, count,
};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

/// One replay step the writer runs in a transaction.
#[derive(Debug, Clone)]
pub(super) enum ReplayStep {
    Delivery(i64),
    Job(i64),
    /// Dead jobs with an id above `after_id`, at most `limit`.
    Dead {
        filter: DeadFilter,
        after_id: i64,
        limit: usize,
    },
}

/// What a step did; `found` is false when the named delivery or job does not exist.
#[derive(Debug, Clone, Default)]
pub(super) struct StepDone {
    found: bool,
    replayed: Replayed,
    /// The last job id a `Dead` step looked at, and how many it looked at.
    last_id: i64,
    seen: usize,
}

impl Sqlite {
    /// Replays a delivery, a job, or a set of dead jobs (see the module docs); `None` when the
    /// named delivery or job does not exist. A set is replayed in batches, each its own
    /// transaction, so a large replay does not hold up ingress.
    ///
    /// # Errors
    /// When the database cannot commit; batches committed before stay replayed.
    pub async fn replay(&self, what: Replay) -> Result<Option<Replayed>> {
        let step = match what {
            Replay::Delivery(id) => ReplayStep::Delivery(id),
            Replay::Job(id) => ReplayStep::Job(id),
            Replay::Dead(filter) => return self.replay_dead(filter, |_| {}).await.map(Some),
        };
        let done = self.call(|r| Command::Replay(step, r)).await?;
        Ok(done.found.then_some(done.replayed))
    }

    /// Replays the dead jobs `filter` matches, in batches, telling `progress` the running total
    /// after each.
    ///
    /// # Errors
    /// When the database cannot commit; batches committed before stay replayed.
    pub async fn replay_dead(
        &self,
        filter: DeadFilter,
        progress: impl Fn(Replayed) + Send,
    ) -> Result<Replayed> {
        let mut total = Replayed::default();
        let mut after_id = 0;
        loop {
            let step = ReplayStep::Dead {
                filter: filter.clone(),
                after_id,
                limit: DEAD_BATCH,
            };
            let done = self.call(|r| Command::Replay(step, r)).await?;
            total += done.replayed;
            progress(total);
            if done.seen < DEAD_BATCH {
                return Ok(total);
            }
            after_id = done.last_id;
            tokio::task::yield_now().await;
        }
    }

    /// How many dead jobs `filter` matches (a bulk replay's preview).
    ///
    /// # Errors
    /// On database failure.
    pub async fn count_dead(&self, filter: DeadFilter) -> Result<i64> {
        self.read_async(move |c| {
            c.prepare_cached(
                "SELECT count(*) FROM jobs WHERE state='dead'
                   AND (?1 IS NULL OR tenant=?1) AND (?2 IS NULL OR connector=?2)
                   AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR created_at < ?4)",
            )?
            .query_row(
                params![
                    filter.tenant,
                    filter.connector,
                    filter.since_ms,
                    filter.until_ms
                ],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Jobs, newest first, with their keys, timings and replay history.
    ///
    /// # Errors
    /// On database failure.
    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobDetail>> {
        self.read_async(move |c| {
            let limit = match filter.limit {
                0 => 50,
                n => n.min(1000),
            } as i64;
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at,
                        idempotency_key, delivery_id, created_at, finished_at, result
                 FROM jobs
                 WHERE (?1 IS NULL OR tenant=?1) AND (?2 IS NULL OR connector=?2)
                   AND (?3 IS NULL OR state=?3)
                   AND (?4 IS NULL OR substr(idempotency_key, 1, length(?4))=?4)
                   AND id < coalesce(?6, 9223372036854775807)
                   AND (?7 IS NULL OR idempotency_key=?7)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    filter.tenant,
                    filter.connector,
                    filter.state,
                    filter.key_prefix,
                    limit,
                    filter.before,
                    filter.key
                ],
                job_detail,
            )?;
            with_replays(c, rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// One delivery with its payload, prune time and jobs.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delivery_detail(&self, id: i64) -> Result<Option<DeliveryDetail>> {
        self.read_async(move |c| {
            let found = c
                .query_row(
                    "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                            ignored_reason, received_at, processed_at, duration_us, url, headers, body,
                            pruned_at
                     FROM deliveries WHERE id=?1",
                    [id],
                    |r| Ok((delivery_row(r, true)?, r.get::<_, Option<i64>>(16)?)),
                )
                .optional()?;
            let Some((delivery, pruned_at_ms)) = found else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at,
                        idempotency_key, delivery_id, created_at, finished_at, result
                 FROM jobs WHERE delivery_id=?1 ORDER BY id",
            )?;
            let jobs = stmt
                .query_map([id], job_detail)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(DeliveryDetail {
                delivery,
                pruned_at_ms,
                jobs: with_replays(c, jobs)?,
            }))
        })
        .await
    }
}

fn job_detail(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobDetail> {
    Ok(JobDetail {
        job: job_row(r)?,
        idempotency_key: r.get(8)?,
        delivery_id: r.get(9)?,
        created_at_ms: r.get(10)?,
        finished_at_ms: r.get(11)?,
        result: r
            .get::<_, Option<String>>(12)?
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        replays: Vec::new(),
    })
}

fn with_replays(c: &Connection, mut jobs: Vec<JobDetail>) -> rusqlite::Result<Vec<JobDetail>> {
    let mut stmt = c.prepare_cached(
        "SELECT replayed_at, state, attempts, last_error, finished_at FROM job_replays
         WHERE job_id=?1 ORDER BY replayed_at, rowid",
    )?;
    for job in &mut jobs {
        job.replays = stmt
            .query_map([job.job.id], |r| {
                Ok(JobReplay {
                    replayed_at_ms: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    last_error: r.get(3)?,
                    finished_at_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
    }
    Ok(jobs)
}

/// Runs one step in the writer's savepoint; `queued_work` when it queued anything.
pub(super) fn step(c: &Connection, step: &ReplayStep) -> rusqlite::Result<StepDone> {
    let now = now_ms();
    let mut done = StepDone::default();
    match step {
        ReplayStep::Job(id) => {
            if let Some(r) = requeue(c, *id, now)? {
                done.found = true;
                count(&mut done.replayed, r);
            }
        }
        ReplayStep::Delivery(id) => {
            let job: Option<i64> = c
                .prepare_cached("SELECT id FROM jobs WHERE idempotency_key=?1")?
                .query_row([format!("delivery:{id}")], |r| r.get(0))
                .optional()?;
            if let Some(job) = job {
                if let Some(r) = requeue(c, job, now)? {
                    done.found = true;
                    count(&mut done.replayed, r);
                }
            } else if let Some(r) = requeue_lost_delivery_job(c, *id, now)? {
                // Its job was removed by retention while its payload was still kept.
                done.found = true;
                count(&mut done.replayed, r);
            }
        }
        ReplayStep::Dead {
            filter,
            after_id,
            limit,
        } => {
            done.found = true;
            let ids: Vec<i64> = c
                .prepare_cached(
                    "SELECT id FROM jobs
                     WHERE state='dead' AND id>?1 AND (?2 IS NULL OR tenant=?2)
                       AND (?3 IS NULL OR connector=?3) AND (?4 IS NULL OR created_at>=?4)
                       AND (?5 IS NULL OR created_at<?5)
                     ORDER BY id LIMIT ?6",
                )?
                .query_map(
                    params![
                        after_id,
                        filter.tenant,
                        filter.connector,
                        filter.since_ms,
                        filter.until_ms,
                        *limit as i64
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            done.seen = ids.len();
            done.last_id = ids.last().copied().unwrap_or(*after_id);
            for id in ids {
                if let Some(r) = requeue(c, id, now)? {
                    count(&mut done.replayed, r);
                }
            }
        }
    }
    Ok(done)
}

impl StepDone {
    /// Whether the step put any job back in the queue.
    pub(super) fn queued_work(&self) -> bool {
        self.replayed.queued > 0
    }
}

/// Puts one finished job back in the queue, keeping its old state in `job_replays`; `None`
/// when there is no such job.
fn requeue(c: &Connection, id: i64, now: i64) -> rusqlite::Result<Option<Requeued>> {
    let job = c
        .prepare_cached("SELECT state, task FROM jobs WHERE id=?1")?
        .query_row([id], |r| {
            Ok((r.get::<_, JobState>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    let Some((state, task)) = job else {
        return Ok(None);
    };
    if matches!(state, JobState::Queued | JobState::Running) {
        return Ok(Some(Requeued::Pending));
    }
    let handles_delivery = match decode_task(&task) {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    };
    if let Some(delivery) = handles_delivery
        && !payload_kept(c, delivery)?
    {
        return Ok(Some(Requeued::Pruned));
    }
    c.prepare_cached(
        "INSERT INTO job_replays (job_id, replayed_at, state, attempts, last_error, finished_at)
         SELECT id, ?2, state, attempts, last_error, finished_at FROM jobs WHERE id=?1",
    )?
    .execute(params![id, now])?;
    c.prepare_cached(
        "UPDATE jobs SET state='queued', attempts=0, run_at=?2, lease_until=NULL, last_error=NULL,
                finished_at=NULL, result=NULL
         WHERE id=?1",
    )?
    .execute(params![id, now])?;
    if let Some(delivery) = handles_delivery {
        c.prepare_cached("UPDATE deliveries SET state='received' WHERE id=?1")?
            .execute([delivery])?;
    }
    Ok(Some(Requeued::Queued))
}

/// Whether a delivery still has its payload.
fn payload_kept(c: &Connection, delivery: i64) -> rusqlite::Result<bool> {
    let pruned: Option<Option<i64>> = c
        .prepare_cached("SELECT pruned_at FROM deliveries WHERE id=?1")?
        .query_row([delivery], |r| r.get(0))
        .optional()?;
    Ok(matches!(pruned, Some(None)))
}

/// A delivery whose job row is gone: queue a new one under the same key, if the payload is
/// still there; `None` when the delivery does not exist.
fn requeue_lost_delivery_job(
    c: &Connection,
    id: i64,
    now: i64,
) -> rusqlite::Result<Option<Requeued>> {
    let delivery: Option<(TenantId, ConnectorId)> = c
        .prepare_cached("SELECT tenant, connector FROM deliveries WHERE id=?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((tenant, connector)) = delivery else {
        return Ok(None);
    };
    if !payload_kept(c, id)? {
        return Ok(Some(Requeued::Pruned));
    }
    let job = NewJob {
        tenant,
        connector,
        task: Task::Delivery { delivery_id: id },
        run_at_ms: now,
        idempotency_key: Some(format!("delivery:{id}")),
        trace: None,
    };
    insert_job(c, &job, Some(id))?;
    c.prepare_cached("UPDATE deliveries SET state='received' WHERE id=?1")?
        .execute([id])?;
    Ok(Some(Requeued::Queued))
}
