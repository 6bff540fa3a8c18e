//! Schedule state: the last tick each cron schedule has queued (`schedules` table), so schedules
//! survive restarts, and the claim of a tick: a compare-and-set on that last tick in the same
//! transaction that queues the tick's job, so several hub processes on one database run each
//! tick once. The job's idempotency key names the tick, so a double insert is impossible anyway.

use rusqlite::{Connection, OptionalExtension, params};

use super::enqueue::insert_job;
use super::{Command, NewJob, Result, Sqlite};
use super::{TickClaim, TickOutcome, schedule_key};
use crate::id::TenantId;

impl Sqlite {
    /// The last tick recorded for a schedule; a schedule never seen before is recorded as
    /// having ticked at `now_ms`, so it starts from now (no backfill of history).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn schedule_start(&self, tenant: &TenantId, name: &str, now_ms: i64) -> Result<i64> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.call(|reply| Command::ScheduleStart {
            tenant,
            name,
            now_ms,
            reply,
        })
        .await
    }

    /// Claims a tick (see [`TickClaim`] and [`TickOutcome`]).
    ///
    /// # Errors
    /// When the database cannot commit; nothing is claimed then.
    pub async fn claim_tick(&self, claim: TickClaim) -> Result<TickOutcome> {
        self.call(|reply| Command::ClaimTick(claim, reply)).await
    }

    /// Each of a tenant's schedules' last recorded tick (ms) and the job that tick queued.
    ///
    /// # Errors
    /// On database failure.
    pub async fn schedule_runs(&self, tenant: TenantId) -> Result<Vec<(String, i64, Option<i64>)>> {
        self.read_async(move |c| {
            c.prepare_cached(
                "SELECT name, last_tick_ms, last_job_id FROM schedules WHERE tenant=?1 ORDER BY name",
            )?
            .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })
        .await
    }
}

/// Inserts the schedule's row unless it exists, and returns its last tick.
pub(super) fn start(
    c: &Connection,
    tenant: &TenantId,
    name: &str,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO schedules (tenant, name, last_tick_ms, created_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (tenant, name) DO NOTHING",
    )?
    .execute(params![tenant, name, now_ms])?;
    c.prepare_cached("SELECT last_tick_ms FROM schedules WHERE tenant=?1 AND name=?2")?
        .query_row(params![tenant, name], |r| r.get(0))
}

/// The compare-and-set and the job, in the caller's savepoint.
pub(super) fn claim(c: &Connection, t: &TickClaim) -> rusqlite::Result<TickOutcome> {
    // Write first: in a multi-process setup the write lock is taken before anything is read,
    // so the checks below see what the other process committed.
    let moved = c
        .prepare_cached(
            "UPDATE schedules SET last_tick_ms=?4 WHERE tenant=?1 AND name=?2 AND last_tick_ms=?3",
        )?
        .execute(params![t.tenant, t.name, t.expected_ms, t.tick_ms])?;
    if moved == 0 {
        let current: Option<i64> = c
            .prepare_cached("SELECT last_tick_ms FROM schedules WHERE tenant=?1 AND name=?2")?
            .query_row(params![t.tenant, t.name], |r| r.get(0))
            .optional()?;
        // A missing row (removed by hand) starts again from this tick.
        let current = match current {
            Some(ms) => ms,
            None => start(c, &t.tenant, &t.name, t.tick_ms)?,
        };
        return Ok(TickOutcome::Lost {
            current_ms: current,
        });
    }
    let Some((connector, task)) = &t.run else {
        return Ok(TickOutcome::Advanced);
    };
    let running: Option<i64> = c
        .prepare_cached(
            "SELECT j.id FROM schedules s JOIN jobs j ON j.id = s.last_job_id
             WHERE s.tenant=?1 AND s.name=?2 AND j.state IN ('queued','running')",
        )?
        .query_row(params![t.tenant, t.name], |r| r.get(0))
        .optional()?;
    if let Some(previous) = running {
        return Ok(TickOutcome::Overlap(previous));
    }
    let key = schedule_key(&t.tenant, &t.name, t.tick_ms);
    let job = NewJob {
        tenant: t.tenant.clone(),
        connector: connector.clone(),
        task: task.clone(),
        run_at_ms: crate::clock::now_ms(),
        idempotency_key: Some(key.clone()),
        trace: None,
    };
    let id = match insert_job(c, &job, None)? {
        Some(id) => id,
        // The key exists: this tick's job was queued before (the row was reset by hand).
        None => c
            .prepare_cached("SELECT id FROM jobs WHERE idempotency_key=?1")?
            .query_row([&key], |r| r.get(0))?,
    };
    c.prepare_cached("UPDATE schedules SET last_job_id=?3 WHERE tenant=?1 AND name=?2")?
        .execute(params![t.tenant, t.name, id])?;
    Ok(TickOutcome::Queued(id))
}
