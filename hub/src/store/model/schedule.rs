//! Schedule state: the last tick each cron schedule has queued (`schedules` table), so schedules
//! survive restarts, and the claim of a tick: a compare-and-set on that last tick in the same
//! transaction that queues the tick's job, so several hub processes on one database run each
//! tick once. The job's idempotency key names the tick, so a double insert is impossible anyway.

use super::Task;
use crate::id::{ConnectorId, TenantId};

/// A tick a process wants to claim for one schedule.
#[derive(Debug, Clone)]
pub struct TickClaim {
    /// Tenant id.
    pub tenant: TenantId,
    /// Schedule name (unique within the tenant).
    pub name: String,
    /// The last tick this process knows of; the claim fails if the stored one differs (another
    /// process claimed a tick meanwhile).
    pub expected_ms: i64,
    /// The tick being claimed (ms since the epoch).
    pub tick_ms: i64,
    /// `(connector, task)` to queue for the tick; `None` records the tick without a job (a
    /// missed tick skipped by policy).
    pub run: Option<(ConnectorId, Task)>,
}

/// What claiming a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// The tick is ours and its job is queued under this id.
    Queued(i64),
    /// The tick is ours, but the previous run's job (this id) is still queued or running, so
    /// no job was queued: two runs of one schedule never overlap.
    Overlap(i64),
    /// The tick is recorded without a job (the claim asked for none).
    Advanced,
    /// Another process moved the schedule on first; the stored last tick is `current_ms`.
    Lost {
        /// The last tick as stored.
        current_ms: i64,
    },
}

/// The idempotency key of a schedule's job for one tick.
pub fn schedule_key(tenant: &TenantId, name: &str, tick_ms: i64) -> String {
    format!("schedule:{tenant}:{name}:{tick_ms}")
}
