//! Manual replay and job inspection.
//!
//! Replaying puts a finished (done or dead) job back in the queue as if new: `queued`,
//! `attempts = 0`, `run_at = now`, error and finish time cleared. What it was before is kept as
//! a row of `job_replays` (its state, attempts, last error and finish time), so an operator can
//! still see why it failed. The job keeps its row, id and idempotency key, so everything its
//! handling derives from them (keys of the actions it queues) is the same as the first time and
//! a replay never acts twice. A delivery whose payload retention pruned is not replayed.

use serde::{Deserialize, Serialize};

use super::{DeliveryRow, JobRow, JobState};
use crate::id::{ConnectorId, TenantId};

/// What to replay.
#[derive(Debug, Clone)]
pub enum Replay {
    /// A delivery's handling: its delivery job.
    Delivery(i64),
    /// One job.
    Job(i64),
    /// Every dead-lettered job that matches.
    Dead(DeadFilter),
}

/// Which dead-lettered jobs to replay; every field narrows the set.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadFilter {
    /// Only this tenant.
    #[schema(value_type = Option<String>)]
    pub tenant: Option<TenantId>,
    /// Only this connector.
    #[schema(value_type = Option<String>)]
    pub connector: Option<ConnectorId>,
    /// Only jobs created at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only jobs created before this time (ms).
    pub until_ms: Option<i64>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Jobs put back in the queue.
    pub queued: usize,
    /// Jobs left alone because they are still queued or running.
    pub pending: usize,
    /// Delivery jobs left alone because the delivery's payload was pruned (or is gone).
    pub pruned: usize,
}

impl std::ops::AddAssign for Replayed {
    fn add_assign(&mut self, o: Replayed) {
        self.queued += o.queued;
        self.pending += o.pending;
        self.pruned += o.pruned;
    }
}

/// A job as an operator inspects it: key, timings, and what it was before each replay.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    /// State, task, attempts, last error, next run.
    #[serde(flatten)]
    pub job: JobRow,
    /// Its idempotency key (`delivery:ID`, `schedule:TENANT:NAME:TICK_MS`, ...).
    pub idempotency_key: String,
    /// The delivery it belongs to, if any.
    pub delivery_id: Option<i64>,
    /// When it was queued (ms).
    pub created_at_ms: i64,
    /// When it ended as done or dead (ms); `None` while queued or running.
    pub finished_at_ms: Option<i64>,
    /// What the action answered, for a done action (JSON when it answered JSON, else text).
    pub result: Option<serde_json::Value>,
    /// Its earlier lives, oldest first.
    pub replays: Vec<JobReplay>,
}

/// A job's state just before a replay reset it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobReplay {
    /// When it was replayed (ms).
    pub replayed_at_ms: i64,
    /// `done` or `dead`.
    pub state: JobState,
    /// Attempts it had made.
    pub attempts: i64,
    /// Its last error.
    pub last_error: Option<String>,
    /// When it had ended (ms).
    pub finished_at_ms: Option<i64>,
}

/// Filter for listing jobs (newest first).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only this connector.
    pub connector: Option<ConnectorId>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only keys starting with this (e.g. `schedule:alpha:nightly:`).
    pub key_prefix: Option<String>,
    /// Only the job with exactly this key.
    pub key: Option<String>,
    /// Only jobs older than this one (a page's keyset: ids descend).
    pub before: Option<i64>,
    /// At most this many (1 to 1000; 0 means 50).
    pub limit: usize,
}

/// A delivery with its payload, when retention pruned it, and its jobs.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    /// The log row with headers and body.
    pub delivery: DeliveryRow,
    /// When retention emptied its headers and body (ms).
    pub pruned_at_ms: Option<i64>,
    /// Its jobs: its handling and what that queued.
    pub jobs: Vec<JobDetail>,
}

/// Dead jobs replayed per write transaction.
pub(crate) const DEAD_BATCH: usize = 500;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Requeued {
    Queued,
    Pending,
    Pruned,
}

pub(crate) fn count(total: &mut Replayed, r: Requeued) {
    match r {
        Requeued::Queued => total.queued += 1,
        Requeued::Pending => total.pending += 1,
        Requeued::Pruned => total.pruned += 1,
    }
}
