//! The job queue (`jobs`): what a connector is asked to do ([`Task`]), queued once per
//! idempotency key, claimed with a lease (a job whose worker died is claimed again when its lease
//! expires), and finished with its effects in one transaction; counts and rows for inspection.

use serde::{Deserialize, Serialize};

use super::DeliveryState;
use crate::id::{ConnectorId, TenantId};
use crate::store::Result;

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
    /// A stored task this hub cannot read (written by hand, or by a newer hub): claimed like any
    /// other so the queue moves on, and dead-lettered by the worker with this text.
    #[serde(skip)]
    Unreadable {
        /// The stored text.
        stored: String,
        /// Why it does not read.
        error: String,
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
            Task::Unreadable { .. } => "unreadable",
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
    /// The W3C `traceparent` of the span that queued it, when traces are exported: the job's
    /// own span continues that trace (`telemetry`). Kept in the stored task's text.
    pub trace: Option<String>,
}

impl NewJob {
    /// The idempotency key the job is stored under: its own, or a unique `anon:` one (a job
    /// nobody needs to find again still needs a key that is unique).
    pub(crate) fn stored_key(&self) -> String {
        match &self.idempotency_key {
            Some(k) => k.clone(),
            None => format!("anon:{}:{}", crate::clock::now_ms(), rand_suffix()),
        }
    }

    /// The delivery the job belongs to: `parent`'s, else its own when it handles one.
    pub(crate) fn delivery(&self, parent: Option<i64>) -> Option<i64> {
        parent.or(match self.task {
            Task::Delivery { delivery_id } => Some(delivery_id),
            _ => None,
        })
    }
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
    /// The trace it belongs to ([`NewJob::trace`]); read only when traces are exported.
    pub trace: Option<String>,
    /// A delivery's stored request, when the claim read it with the job (PostgreSQL: one
    /// statement, not one more per delivery); else the worker reads it.
    pub request: Option<Box<super::StoredRequest>>,
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
pub(crate) enum Handover {
    /// Ended; and the next job, when one was asked for and ready.
    Done(Option<Job>),
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

impl Handover {
    pub(crate) fn into_next(self, lease: Lease) -> Result<Option<Job>> {
        match self {
            Handover::Done(next) => Ok(next),
            Handover::LeaseLost => Err(crate::store::StoreError::LeaseLost { job: lease.job }),
        }
    }
}

pub(crate) fn encode_task(task: &Task, trace: Option<&str>) -> String {
    match trace {
        None => serde_json::to_string(task).unwrap_or_default(),
        // An extra member of the task's object: a hub that does not look for it reads the task
        // as before.
        Some(trace) => match serde_json::to_value(task) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.insert("trace".into(), trace.into());
                serde_json::Value::Object(fields).to_string()
            }
            _ => serde_json::to_string(task).unwrap_or_default(),
        },
    }
}

/// A stored task; [`Task::Unreadable`] when the text is not one this hub writes.
pub(crate) fn decode_task(s: &str) -> Task {
    serde_json::from_str(s).unwrap_or_else(|e| Task::Unreadable {
        stored: s.into(),
        error: e.to_string(),
    })
}

/// The trace a stored task carries ([`encode_task`]), looked for only while traces are
/// exported.
pub(crate) fn decode_trace(s: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Traced {
        trace: Option<String>,
    }
    if !crate::telemetry::on() {
        return None;
    }
    serde_json::from_str::<Traced>(s).ok()?.trace
}

pub(crate) fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed) ^ rand::random::<u64>()
}

/// What a job's end writes to its row and its delivery's (both backends).
pub(crate) struct Outcome {
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
    pub(crate) fn of(end: &JobEnd) -> Outcome {
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
pub(crate) const MAX_RESULT_BYTES: usize = 64 * 1024;

/// An action's answer as the job keeps it: whole up to [`MAX_RESULT_BYTES`], else a note of its
/// size (a cut JSON text would not parse).
pub(crate) fn kept_result(result: &str) -> String {
    if result.len() <= MAX_RESULT_BYTES {
        return result.to_string();
    }
    serde_json::json!({ "truncated": true, "bytes": result.len() }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task this hub did not write reads as `Unreadable`, with the text and why, never as a
    /// made-up job; every task it writes reads back as itself.
    #[test]
    fn a_stored_task_reads_back_or_is_named_unreadable() {
        let task = Task::Action {
            name: "send_email".into(),
            input: "{}".into(),
        };
        assert_eq!(decode_task(&encode_task(&task, None)), task);
        let traced = encode_task(
            &task,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        assert_eq!(decode_task(&traced), task, "{traced}");
        match decode_task("{\"kind\":\"teleport\"}") {
            Task::Unreadable { stored, error } => {
                assert_eq!(stored, "{\"kind\":\"teleport\"}");
                assert!(error.contains("teleport"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
}
