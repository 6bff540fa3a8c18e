//! The job queue (`jobs`): what a connector is asked to do ([`Task`]), queued once per
//! idempotency key, claimed with a lease (a job whose worker died is claimed again when its lease
//! expires), and finished with its effects in one transaction; counts and rows for inspection.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::effects::{apply_effects, first_conflict};
use super::{Command, DeliveryState, Effects, Result, Sqlite, cached_row};

use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

/// Where a job is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its time or a worker.
    Queued,
    /// Claimed by a worker, under a lease.
    Running,
    /// Finished.
    Done,
    /// Failed for good (dead letter).
    Dead,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
    ];

    /// The state as stored and shown: `queued`, `running`, `done`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

super::state_text!(JobState, "job state");

/// How many jobs of one (tenant, connector) are in one state.
#[derive(Debug, Clone)]
pub struct JobCount {
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// The state counted.
    pub state: JobState,
    /// How many.
    pub count: i64,
}

/// What a job asks a connector to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Handle a stored delivery.
    Delivery {
        /// The delivery id.
        delivery_id: i64,
    },
    /// Run a connector job.
    Job {
        /// Job name.
        name: String,
        /// JSON input.
        input: String,
    },
    /// Run a connector action.
    Action {
        /// Action name.
        name: String,
        /// JSON input.
        input: String,
    },
    /// Run a tenant route (see `routing`): evaluate it against the event, then run its action.
    Route {
        /// Route name.
        route: String,
        /// The triggering event's JSON payload.
        event: String,
    },
    /// Send an event to one of the tenant's webhook endpoints (see `outbox`); the job's
    /// connector is the one that published it.
    Webhook {
        /// Endpoint name.
        endpoint: String,
        /// The event's type as the app sees it, e.g. `retell.call.analyzed`.
        event_type: String,
        /// The event's JSON payload.
        payload: String,
        /// When the event was published (ms).
        at_ms: i64,
    },
}

impl Task {
    /// The kind, as the task's JSON names it (`delivery`, `job`, `action`, `route`, `webhook`).
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Delivery { .. } => "delivery",
            Task::Job { .. } => "job",
            Task::Action { .. } => "action",
            Task::Route { .. } => "route",
            Task::Webhook { .. } => "webhook",
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// What to do.
    pub task: Task,
    /// Earliest start.
    pub run_at_ms: i64,
    /// A job with the same key is queued once.
    pub idempotency_key: Option<String>,
}

/// A claim's hold on one job: the job and the token of the claim that took it. Ending the job
/// needs it, so a worker that stalled past its lease (the job since claimed again, elsewhere)
/// cannot end or overwrite what the new holder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Job id.
    pub job: i64,
    /// The claim's token: random, new with every claim.
    pub token: i64,
}

/// A claimed job: the caller holds its lease until `finish`.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: i64,
    /// The token of the claim that holds it (see [`Lease`]).
    pub lease_token: i64,
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// What to do.
    pub task: Task,
    /// Attempts so far, including this one.
    pub attempts: i64,
    /// The idempotency key (for actions: handed to the connector).
    pub idempotency_key: String,
    /// When the job was first queued (ms).
    pub created_at_ms: i64,
    /// When it was due (ms): its queue age at claim is now minus this.
    pub run_at_ms: i64,
}

impl Job {
    /// The hold on this job that ending it needs.
    pub fn lease(&self) -> Lease {
        Lease {
            job: self.id,
            token: self.lease_token,
        }
    }
}

/// What ending a job did (the writer's answer to `Finish`).
#[derive(Debug)]
pub(super) enum Ended {
    /// Ended; and the next job, when one was asked for and ready.
    Ended(Option<Job>),
    /// The lease was no longer the caller's: nothing was written.
    LeaseLost,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobEnd {
    /// Done; for deliveries, optionally ignored with a reason.
    Done {
        /// Why the connector did not act, if it did not.
        ignored: Option<String>,
        /// What an action answered (its provider's id for what it did, say), kept on the job.
        result: Option<String>,
    },
    /// Failed; try again at this time.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        at_ms: i64,
    },
    /// Failed for good.
    Dead {
        /// What went wrong.
        error: String,
    },
    /// Not run (a concurrency limit was reached): back to the queue in its place (its due time
    /// unchanged, so it goes before everything queued since), held until `at_ms` so the claims
    /// meanwhile take others; the attempt not counted.
    Defer {
        /// Not claimed again before this time.
        at_ms: i64,
    },
}

/// A job row for inspection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRow {
    /// Job id.
    pub id: i64,
    /// Tenant id.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Connector id.
    #[schema(value_type = String)]
    pub connector: ConnectorId,
    /// The task.
    pub task: Task,
    /// Where it is in the queue.
    pub state: JobState,
    /// Attempts.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Next run (ms).
    pub run_at_ms: i64,
}

impl Sqlite {
    /// Queues a job; `None` when a job with the same idempotency key exists.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn enqueue(&self, job: NewJob) -> Result<Option<i64>> {
        self.call(|r| Command::Enqueue(job, r)).await
    }

    /// Queues a job from a blocking thread.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub fn enqueue_blocking(&self, job: NewJob) -> Result<Option<i64>> {
        self.call_blocking(|r| Command::Enqueue(job, r))
    }

    /// Claims up to `limit` ready jobs (or jobs whose lease expired: their worker died).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn claim(&self, limit: usize, lease_ms: i64) -> Result<Vec<Job>> {
        self.call(|r| Command::Claim {
            limit,
            lease_ms,
            reply: r,
        })
        .await
    }

    /// Ends a claimed job, committing its effects with its end state, all or nothing.
    ///
    /// # Errors
    /// When the database cannot commit: the lease expires and the job runs again;
    /// [`StoreError::LeaseLost`](super::StoreError::LeaseLost) when the lease is no longer
    /// this caller's.
    pub async fn finish(
        &self,
        lease: Lease,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
    ) -> Result<()> {
        self.call(|r| Command::Finish {
            lease,
            effects,
            end,
            duration_us,
            next_lease_ms: None,
            reply: r,
        })
        .await
        .and_then(|ended| ended.into_next(lease))
        .map(drop)
    }

    /// [`finish`](Sqlite::finish), and in the same transaction claim the next ready job (if
    /// any) for the same worker: one writer round trip per job instead of two.
    ///
    /// # Errors
    /// As [`finish`](Sqlite::finish).
    pub async fn finish_and_claim(
        &self,
        lease: Lease,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
        lease_ms: i64,
    ) -> Result<Option<Job>> {
        self.call(|r| Command::Finish {
            lease,
            effects,
            end,
            duration_us,
            next_lease_ms: Some(lease_ms),
            reply: r,
        })
        .await
        .and_then(|ended| ended.into_next(lease))
    }

    /// One job.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        self.read_async(move |c| {
            use rusqlite::OptionalExtension as _;
            cached_row(
                c,
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at
                 FROM jobs WHERE id=?1",
                [id],
                job_row,
            )
            .optional()
        })
        .await
    }

    /// The jobs that belong to a delivery.
    ///
    /// # Errors
    /// On database failure.
    pub async fn jobs_for_delivery(&self, id: i64) -> Result<Vec<JobRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at
                 FROM jobs WHERE delivery_id=?1 ORDER BY id",
            )?;
            stmt.query_map([id], job_row)?.collect()
        })
        .await
    }

    /// Number of jobs not yet finished (queued or running).
    ///
    /// # Errors
    /// On database failure.
    pub async fn pending_jobs(&self) -> Result<i64> {
        self.read_async(|c| {
            cached_row(
                c,
                "SELECT count(*) FROM jobs WHERE state IN ('queued','running')",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Job counts by `(tenant, connector, state)` for a status view, bounded: queued and
    /// running jobs are counted up to `cap` in all (the first `cap` in due order), dead ones all
    /// (through `jobs_ready`, reading only them), done ones not at all.
    ///
    /// # Errors
    /// On database failure.
    pub async fn queue_counts(&self, cap: i64) -> Result<Vec<JobCount>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT tenant, connector, state, count(*) FROM
                   (SELECT tenant, connector, state FROM jobs WHERE state IN ('queued', 'running') LIMIT ?1)
                 GROUP BY tenant, connector, state
                 UNION ALL
                 SELECT tenant, connector, state, count(*) FROM jobs WHERE state = 'dead'
                 GROUP BY tenant, connector, state",
            )?;
            stmt.query_map([cap], job_count)?.collect()
        })
        .await
    }

    /// Job counts by `(tenant, connector, state)`, for health views.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>> {
        self.read_async(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT tenant, connector, state, count(*) FROM jobs GROUP BY tenant, connector, state",
            )?;
            stmt.query_map([], job_count)?.collect()
        })
        .await
    }
}

impl Ended {
    pub(super) fn into_next(self, lease: Lease) -> Result<Option<Job>> {
        match self {
            Ended::Ended(next) => Ok(next),
            Ended::LeaseLost => Err(super::StoreError::LeaseLost { job: lease.job }),
        }
    }
}

fn job_count(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobCount> {
    Ok(JobCount {
        tenant: r.get(0)?,
        connector: r.get(1)?,
        state: r.get(2)?,
        count: r.get(3)?,
    })
}

pub(super) fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let task: String = r.get(3)?;
    Ok(JobRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        task: decode_task(&task),
        state: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        run_at_ms: r.get(7)?,
    })
}

pub(super) fn encode_task(task: &Task) -> String {
    serde_json::to_string(task).unwrap_or_default()
}

pub(super) fn decode_task(s: &str) -> Task {
    serde_json::from_str(s).unwrap_or_else(|_| Task::Job {
        name: "<unreadable task>".into(),
        input: s.into(),
    })
}

pub(super) fn insert_job(
    c: &Connection,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    let key = match &job.idempotency_key {
        Some(k) => k.clone(),
        None => format!("anon:{}:{}", now_ms(), rand_suffix()),
    };
    let delivery_id = delivery_id.or(match job.task {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    });
    let n = c
        .prepare_cached(
            "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            job.tenant,
            job.connector,
            encode_task(&job.task),
            delivery_id,
            key,
            job.run_at_ms,
            now_ms()
        ])?;
    Ok((n > 0).then(|| c.last_insert_rowid()))
}

pub(super) fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed) ^ rand::random::<u64>()
}

/// Two selects, each walking `jobs_ready` in order, rather than one `OR` filter: with an `OR`
/// SQLite sorts the whole queue on every claim (13 ms at 100k queued, in the writer thread).
/// Expired leases first: a job whose worker died is the oldest work there is, and behind a
/// backlog it would wait for the whole queue. A queued job's `lease_until` is a deferral's hold
/// (`JobEnd::Defer`): it keeps its place in line but is not claimed before then.
pub(super) fn claim(c: &Connection, limit: usize, lease_ms: i64) -> rusqlite::Result<Vec<Job>> {
    let now = now_ms();
    let token = super::effects::new_version();
    let mut stmt = c.prepare_cached(
        "UPDATE jobs SET state='running', lease_until=?1, attempts=attempts+1, lease_token=?4
         WHERE id IN (SELECT id FROM (SELECT id FROM jobs WHERE state='running' AND lease_until<?2
                                      LIMIT ?3)
                      UNION ALL
                      SELECT id FROM (SELECT id FROM jobs WHERE state='queued' AND run_at<=?2
                                        AND (lease_until IS NULL OR lease_until<=?2)
                                      ORDER BY run_at LIMIT ?3)
                      LIMIT ?3)
         RETURNING id, tenant, connector, task, attempts, idempotency_key, created_at, run_at",
    )?;
    let rows = stmt.query_map(params![now + lease_ms, now, limit as i64, token], |r| {
        let task: String = r.get(3)?;
        Ok(Job {
            id: r.get(0)?,
            lease_token: token,
            tenant: r.get(1)?,
            connector: r.get(2)?,
            task: decode_task(&task),
            attempts: r.get(4)?,
            idempotency_key: r.get(5)?,
            created_at_ms: r.get(6)?,
            run_at_ms: r.get(7)?,
        })
    })?;
    let jobs: Vec<Job> = rows.collect::<rusqlite::Result<_>>()?;
    // The log shows claimed deliveries as being processed, in the same transaction.
    for job in &jobs {
        if let Task::Delivery { delivery_id } = job.task {
            c.prepare_cached(
                "UPDATE deliveries SET state='processing' WHERE id=?1 AND state IN ('received','retrying')",
            )?
            .execute([delivery_id])?;
        }
    }
    Ok(jobs)
}

/// Ends a job under `lease`; `false` (nothing written) when the lease is no longer the caller's.
pub(super) fn finish(
    c: &Connection,
    lease: Lease,
    effects: &Effects,
    end: &JobEnd,
    duration_us: i64,
) -> rusqlite::Result<bool> {
    let now = now_ms();
    let job = lease.job;
    let held: Option<(TenantId, ConnectorId)> = c
        .prepare_cached(
            "SELECT tenant, connector FROM jobs WHERE id=?1 AND state='running' AND lease_token=?2",
        )?
        .query_row([job, lease.token], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((tenant, connector)) = held else {
        return Ok(false);
    };
    if let JobEnd::Defer { at_ms } = end {
        c.prepare_cached(
            "UPDATE jobs SET state='queued', lease_until=?2, attempts=MAX(attempts-1, 0) WHERE id=?1",
        )?
        .execute(params![job, at_ms])?;
        return Ok(true);
    }
    // Effects only count when the job succeeded: a failed attempt leaves no trace but its error.
    if let JobEnd::Done { .. } = end {
        if let Some(changed) = first_conflict(c, &tenant, &connector, &effects.reads)? {
            // Another invocation wrote what this one read: apply nothing and run it again soon.
            // The attempt does not count against the job's limit.
            let error = format!("conflict: {changed} changed during the attempt; running again");
            let at = now + 5 + (rand::random::<u64>() % 45) as i64;
            c.prepare_cached(
                "UPDATE jobs SET state='queued', lease_until=NULL, run_at=?2, attempts=MAX(attempts-1, 0), last_error=?3
                 WHERE id=?1",
            )?
            .execute(params![job, at, error])?;
            return Ok(true);
        }
        apply_effects(c, &tenant, &connector, Some(job), effects)?;
    }
    let Outcome {
        job_state,
        delivery_state,
        error,
        ignored,
        run_at,
        result,
    } = Outcome::of(end);
    c.prepare_cached(
        "UPDATE jobs SET state=?2, last_error=?3, lease_until=NULL, run_at=COALESCE(?4, run_at),
                finished_at=CASE WHEN ?2='queued' THEN NULL ELSE ?5 END, result=?6
         WHERE id=?1",
    )?
    .execute(params![job, job_state, error, run_at, now, result])?;
    let ended: Option<(TenantId, ConnectorId, i64)> = c
        .prepare_cached(
            "UPDATE deliveries SET state=?2, last_error=?3, ignored_reason=?4, attempts=attempts+1,
                    processed_at=?5, duration_us=?6
             WHERE id=(SELECT delivery_id FROM jobs WHERE id=?1 AND task LIKE '{\"kind\":\"delivery\"%')
             RETURNING tenant, connector, received_at",
        )?
        .query_row(
            params![job, delivery_state, error, ignored, now, duration_us],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((tenant, connector, received_at)) = ended {
        super::analytics::count_ended(c, &tenant, &connector, delivery_state, received_at, now)?;
    }
    Ok(true)
}

/// What a job's end writes to its row and its delivery's (both backends).
pub(super) struct Outcome {
    pub job_state: JobState,
    pub delivery_state: DeliveryState,
    pub error: Option<String>,
    pub ignored: Option<String>,
    /// The next run, for a job queued again.
    pub run_at: Option<i64>,
    /// What an action answered, as the job keeps it.
    pub result: Option<String>,
}

impl Outcome {
    pub(super) fn of(end: &JobEnd) -> Outcome {
        let (job_state, delivery_state, error, ignored, run_at) = match end {
            JobEnd::Done { ignored, .. } => (
                JobState::Done,
                if ignored.is_some() {
                    DeliveryState::Ignored
                } else {
                    DeliveryState::Done
                },
                None,
                ignored.clone(),
                None,
            ),
            JobEnd::Retry { error, at_ms } => (
                JobState::Queued,
                DeliveryState::Retrying,
                Some(error.clone()),
                None,
                Some(*at_ms),
            ),
            JobEnd::Dead { error } => (
                JobState::Dead,
                DeliveryState::Dead,
                Some(error.clone()),
                None,
                None,
            ),
            JobEnd::Defer { at_ms } => (
                JobState::Queued,
                DeliveryState::Retrying,
                None,
                None,
                Some(*at_ms),
            ),
        };
        let result = match end {
            JobEnd::Done { result, .. } => result.as_deref().map(kept_result),
            _ => None,
        };
        Outcome {
            job_state,
            delivery_state,
            error,
            ignored,
            run_at,
            result,
        }
    }
}

/// The most of an action's answer a job keeps.
pub(super) const MAX_RESULT_BYTES: usize = 64 * 1024;

/// An action's answer as the job keeps it: whole up to [`MAX_RESULT_BYTES`], else a note of its
/// size (a cut JSON text would not parse).
pub(super) fn kept_result(result: &str) -> String {
    if result.len() <= MAX_RESULT_BYTES {
        return result.to_string();
    }
    serde_json::json!({ "truncated": true, "bytes": result.len() }).to_string()
}
