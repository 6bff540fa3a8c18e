//! The job queue (`jobs`): what a connector is asked to do ([`Task`]), queued once per
//! idempotency key, claimed with a lease (a job whose worker died is claimed again when its lease
//! expires), and finished with its effects in one transaction; counts and rows for inspection.

use rusqlite::{Connection, OptionalExtension, params};

use super::effects::{apply_effects, first_conflict};
use super::{Command, Effects, Result, Sqlite, cached_row};

use super::{
    Job, JobCount, JobEnd, JobRow, Lease, NewJob, Outcome, Task, decode_task, decode_trace,
};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

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

    /// Each (tenant, connector) with dead-lettered jobs.
    ///
    /// # Errors
    /// On database failure.
    pub async fn dead_pairs(&self) -> Result<Vec<(TenantId, ConnectorId)>> {
        self.read_async(|c| {
            let mut stmt =
                c.prepare_cached("SELECT DISTINCT tenant, connector FROM jobs WHERE state='dead'")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    /// When the longest-waiting queued job became due (ms), if one is due at `now_ms`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn oldest_due(&self, now_ms: i64) -> Result<Option<i64>> {
        self.read_async(move |c| {
            c.prepare_cached("SELECT min(run_at) FROM jobs WHERE state='queued' AND run_at<=?1")?
                .query_row([now_ms], |r| r.get(0))
        })
        .await
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

/// Two selects, each walking `jobs_ready` in order, rather than one `OR` filter: with an `OR`
/// SQLite sorts the whole queue on every claim (13 ms at 100k queued, in the writer thread).
/// Expired leases first: a job whose worker died is the oldest work there is, and behind a
/// backlog it would wait for the whole queue. A queued job's `lease_until` is a deferral's hold
/// (`JobEnd::Defer`): it keeps its place in line but is not claimed before then.
pub(super) fn claim(c: &Connection, limit: usize, lease_ms: i64) -> rusqlite::Result<Vec<Job>> {
    let now = now_ms();
    let token = super::new_version();
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
            trace: decode_trace(&task),
            request: None,
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
    // A connector's effects only count when the job succeeded: a failed attempt leaves no trace
    // but its error.
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
    } else if let JobEnd::Dead { .. } = end {
        // A dead job's effects are the hub's own (an action's `action.failed` event and the
        // webhooks it queues), never a failed invocation's.
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
