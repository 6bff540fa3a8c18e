//! Actions asked for from outside: by the app (`POST /api/v1/tenants/{t}/actions`) and by a
//! voice agent's tool call (`tools`). One path for both: the action is named as a route names
//! it (`email:send`, the tenant's email connector's action for the operation, or
//! `<connector>:<action>`), its input is checked against what the action declares, and it
//! becomes a durable `Task::Action` job under a key the caller chose, so the same key never
//! acts twice. The worker runs it like any other job and publishes its outcome as an event
//! (`action.succeeded` / `action.failed`); a caller that wants the outcome now waits for the
//! job's end ([`wait`]).

use std::time::Duration;

use plugin_sdk::capability;
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::config::TenantConfig;
use crate::id::{ConnectorId, TenantId};
use crate::runtime::Runtime;
use crate::state::Hub;
use crate::store::{JobDetail, JobFilter, JobState, NewJob, Published, Store, StoreError, Task};

/// The prefix of an app's action key as the job keeps it: `act:{tenant}:{Idempotency-Key}`.
pub const API_KEYS: &str = "act:";
/// The prefix of a tool call's action key: `tool:{tenant}:{call}:{tool}:{arguments' digest}`.
pub const TOOL_KEYS: &str = "tool:";
/// The longest wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The longest idempotency key the API takes (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;

/// An action resolved for one tenant: which connector runs which of its actions, on what.
#[derive(Debug, Clone)]
pub struct Target {
    /// The connector that runs it.
    pub connector: ConnectorId,
    /// The connector's action.
    pub action: String,
    /// The checked input.
    pub input: Value,
}

impl Target {
    /// The job's task.
    fn task(&self) -> Task {
        Task::Action {
            name: self.action.clone(),
            input: self.input.to_string(),
        }
    }
}

/// One thing wrong with an input, located.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// The field, e.g. `input.subject`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why an action was not queued.
#[derive(Debug)]
pub enum Refused {
    /// No such action for this tenant (with why).
    NoSuchAction(String),
    /// The input does not fit the action.
    Invalid(Vec<Problem>),
    /// The key was used for a different action or input: the first one's id.
    Conflict(i64),
    /// The database failed.
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

/// Resolves `action` for the tenant and checks `input` against what it declares: every field
/// it requires given (not null), none it does not take.
///
/// # Errors
/// [`Refused::NoSuchAction`] or [`Refused::Invalid`].
pub fn target(hub: &Hub, tenant: &TenantId, action: &str, input: Value) -> Result<Target, Refused> {
    let Some(config) = hub.config.tenants.get(tenant) else {
        return Err(Refused::NoSuchAction(format!("tenant {tenant}")));
    };
    let (connector, name, inputs) =
        resolve(config, &hub.runtime, action).map_err(Refused::NoSuchAction)?;
    let problems = check_input(&input, &inputs);
    if !problems.is_empty() {
        return Err(Refused::Invalid(problems));
    }
    Ok(Target {
        connector,
        action: name,
        input,
    })
}

/// What an action resolves to: the connector, its action's name, the inputs `(name, required)`
/// it takes.
pub type Resolved = (ConnectorId, String, Vec<(String, bool)>);

/// An action for a tenant: `capability:operation` (the tenant's connector for the capability,
/// its action for the operation, the operation's inputs) or `connector:action`. Answers the
/// connector, its action's name and the inputs `(name, required)` it takes.
///
/// # Errors
/// What does not exist, as a sentence.
pub fn resolve(config: &TenantConfig, runtime: &Runtime, action: &str) -> Result<Resolved, String> {
    let Some((left, right)) = action.split_once(':') else {
        return Err(format!(
            "action `{action}`: name it `capability:operation` (email:send) or `connector:action`"
        ));
    };
    if let Some(cap) = capability::capability(left) {
        let Some(op) = cap.operations.iter().find(|o| o.id == action) else {
            let ops: Vec<&str> = cap.operations.iter().map(|o| o.id).collect();
            return Err(format!(
                "action `{action}` (capability `{left}` has: {})",
                if ops.is_empty() {
                    "no operations yet".into()
                } else {
                    ops.join(", ")
                }
            ));
        };
        let Some(connector) = config.capabilities.get(cap.name) else {
            return Err(format!(
                "action `{action}` for this tenant, which names no {left} connector"
            ));
        };
        let decl = runtime
            .connector(connector.as_str())
            .and_then(|l| crate::runtime::implementing(&l.manifest, op.id).map(|a| a.name.clone()));
        let Some(name) = decl else {
            return Err(format!(
                "action `{action}`: connector `{connector}` does not implement it"
            ));
        };
        let inputs = op
            .inputs
            .iter()
            .map(|i| (i.name.to_string(), i.required))
            .collect();
        return Ok((connector.clone(), name, inputs));
    }
    let Some((connector, _)) = config.connectors.get_key_value(left) else {
        return Err(format!(
            "action `{action}`: this tenant does not use connector `{left}`"
        ));
    };
    let inputs = runtime.connector(left).and_then(|l| {
        l.manifest
            .actions
            .iter()
            .find(|a| a.name == right)
            .map(|a| {
                a.inputs
                    .iter()
                    .map(|f| (f.name.clone(), f.required))
                    .collect()
            })
    });
    let Some(inputs) = inputs else {
        return Err(format!(
            "action `{action}`: connector `{left}` offers no action `{right}`"
        ));
    };
    Ok((connector.clone(), right.to_string(), inputs))
}

/// Each way `input` does not fit `inputs` (name, required).
fn check_input(input: &Value, inputs: &[(String, bool)]) -> Vec<Problem> {
    let Some(given) = input.as_object() else {
        return vec![Problem {
            field: "input".into(),
            message: "must be a JSON object".into(),
        }];
    };
    let mut problems = Vec::new();
    for (name, _) in inputs.iter().filter(|(_, required)| *required) {
        if given.get(name).is_none_or(Value::is_null) {
            problems.push(Problem {
                field: format!("input.{name}"),
                message: "required".into(),
            });
        }
    }
    for name in given.keys() {
        if !inputs.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            problems.push(Problem {
                field: format!("input.{name}"),
                message: format!(
                    "the action takes no such input (it takes: {})",
                    known.join(", ")
                ),
            });
        }
    }
    problems
}

/// An action queued, or found queued under its key.
#[derive(Debug, Clone, Copy)]
pub struct Submitted {
    /// The action's id (its job's).
    pub id: i64,
    /// False when the key had been used for this same action before.
    pub new: bool,
}

/// Queues `target` for the tenant under `key` (the whole stored key, e.g. `act:{tenant}:{k}`).
/// The same key with the same action and input answers the first one; with another, a conflict.
///
/// # Errors
/// [`Refused::Conflict`], or the database's failure.
pub async fn submit(
    store: &Store,
    tenant: &TenantId,
    key: String,
    target: &Target,
) -> Result<Submitted, Refused> {
    let job = NewJob {
        tenant: tenant.clone(),
        connector: target.connector.clone(),
        task: target.task(),
        run_at_ms: now_ms(),
        idempotency_key: Some(key.clone()),
        // The caller's span (an API request's, a tool call's): the action's job continues it.
        trace: crate::telemetry::stored(&tracing::Span::current()),
    };
    // Twice at most: a first job under the key may be pruned between the two steps.
    for _ in 0..2 {
        if let Some(id) = store.enqueue(job.clone()).await? {
            return Ok(Submitted { id, new: true });
        }
        if let Some(first) = by_key(store, tenant, &key).await? {
            if first.job.connector != target.connector || first.job.task != target.task() {
                return Err(Refused::Conflict(first.job.id));
            }
            return Ok(Submitted {
                id: first.job.id,
                new: false,
            });
        }
    }
    Err(Refused::NoSuchAction(format!(
        "an action under key {key}: the key is taken and its action cannot be read"
    )))
}

async fn by_key(
    store: &Store,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<JobDetail>, StoreError> {
    let found = store
        .jobs(JobFilter {
            tenant: Some(tenant.clone()),
            key: Some(key.to_string()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(found.into_iter().next())
}

/// Where an action is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// An attempt failed; it runs again (`error` says why).
    Retrying,
    /// Done: `output` is what the provider answered.
    Succeeded,
    /// Failed for good: `error` says why.
    Failed,
}

/// An action as the caller sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionState {
    /// The action's id.
    pub id: i64,
    /// `connector:action`, as it ran.
    pub action: String,
    /// The caller's idempotency key (for an app's action), or the tool call's key.
    pub key: String,
    /// Where it is.
    pub state: Phase,
    /// Attempts so far.
    pub attempts: i64,
    /// What the action answered (its declared outputs: the message id, say), once succeeded.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was asked for (ms).
    pub created_at_ms: i64,
    /// When it ended (ms).
    pub finished_at_ms: Option<i64>,
}

impl ActionState {
    /// Whether it has ended (succeeded or failed).
    pub fn ended(&self) -> bool {
        matches!(self.state, Phase::Succeeded | Phase::Failed)
    }

    fn of(d: JobDetail) -> Option<ActionState> {
        let Task::Action { name, .. } = &d.job.task else {
            return None;
        };
        let state = match d.job.state {
            JobState::Queued if d.job.last_error.is_some() => Phase::Retrying,
            JobState::Queued => Phase::Queued,
            JobState::Running => Phase::Running,
            JobState::Done => Phase::Succeeded,
            JobState::Dead => Phase::Failed,
        };
        let key = [API_KEYS, TOOL_KEYS]
            .iter()
            .find_map(|p| {
                d.idempotency_key
                    .strip_prefix(p)
                    .and_then(|rest| rest.strip_prefix(d.job.tenant.as_str()))
                    .and_then(|rest| rest.strip_prefix(':'))
            })
            .unwrap_or(&d.idempotency_key)
            .to_string();
        Some(ActionState {
            id: d.job.id,
            action: format!("{}:{name}", d.job.connector),
            key,
            state,
            attempts: d.job.attempts,
            output: if state == Phase::Succeeded {
                d.result
            } else {
                None
            },
            error: d.job.last_error,
            created_at_ms: d.created_at_ms,
            finished_at_ms: d.finished_at_ms,
        })
    }
}

/// The tenant's action `id`; `None` when it has none by that id.
///
/// # Errors
/// When the database fails.
pub async fn state(
    store: &Store,
    tenant: &TenantId,
    id: i64,
) -> Result<Option<ActionState>, StoreError> {
    let found = store
        .jobs(JobFilter {
            tenant: Some(tenant.clone()),
            before: Some(id.saturating_add(1)),
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(found
        .into_iter()
        .find(|d| d.job.id == id)
        .and_then(ActionState::of))
}

/// The tenant's action `id` once it has ended, or as it is after `within`.
///
/// # Errors
/// When the database fails.
pub async fn wait(
    store: &Store,
    tenant: &TenantId,
    id: i64,
    within: Duration,
) -> Result<Option<ActionState>, StoreError> {
    let deadline = tokio::time::Instant::now() + within.min(MAX_WAIT);
    loop {
        // Registered before the read, so an end between the read and the wait wakes it.
        let ended = store.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        let now = state(store, tenant, id).await?;
        let Some(s) = now else { return Ok(None) };
        if s.ended() || tokio::time::Instant::now() >= deadline {
            return Ok(Some(s));
        }
        // Another hub may end it (PostgreSQL): look again at least every 100 ms.
        let next = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
        let _ = tokio::time::timeout_at(next, ended).await;
    }
}

/// The event an action that came from outside publishes when it ends: `action.succeeded` with
/// its output, or `action.failed` with the error; `None` for an action a route or the operator
/// ran (those report through the log).
pub fn outcome_event(
    key: &str,
    job_id: i64,
    connector: &ConnectorId,
    task: &Task,
    end: Result<&str, &str>,
) -> Option<Published> {
    let Task::Action { name, .. } = task else {
        return None;
    };
    let via = if key.starts_with(API_KEYS) {
        "api"
    } else if key.starts_with(TOOL_KEYS) {
        "tool"
    } else {
        return None;
    };
    let their_key = key.splitn(3, ':').nth(2).unwrap_or(key);
    let action = format!("{connector}:{name}");
    let (name, payload) = match end {
        Ok(output) => (
            "action.succeeded",
            json!({
                "id": job_id, "action": action, "key": their_key, "via": via,
                "output": serde_json::from_str::<Value>(output).unwrap_or(Value::String(output.into())),
            }),
        ),
        Err(error) => (
            "action.failed",
            json!({ "id": job_id, "action": action, "key": their_key, "via": via, "error": error }),
        ),
    };
    Some(Published {
        name: name.into(),
        payload: payload.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_checked_field_by_field() {
        let inputs = vec![
            ("to".to_string(), true),
            ("subject".to_string(), true),
            ("html".to_string(), false),
        ];
        assert!(check_input(&json!({"to": "a@b.c", "subject": "Hi"}), &inputs).is_empty());
        let problems = check_input(&json!({"to": null, "html": "x", "colour": "red"}), &inputs);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["input.to", "input.subject", "input.colour"]);
        assert!(
            problems[2].message.contains("to, subject, html"),
            "{:?}",
            problems[2]
        );
        assert_eq!(check_input(&json!([1]), &inputs)[0].field, "input");
    }

    #[test]
    fn only_actions_from_outside_publish_their_outcome() {
        let task = Task::Action {
            name: "send_email".into(),
            input: "{}".into(),
        };
        let resend: ConnectorId = "resend".parse().unwrap();
        let e = outcome_event("act:abc:order-7", 4, &resend, &task, Ok(r#"{"id":"m1"}"#)).unwrap();
        assert_eq!(e.name, "action.succeeded");
        let p: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(
            p,
            json!({"id": 4, "action": "resend:send_email", "key": "order-7", "via": "api", "output": {"id": "m1"}})
        );
        let e = outcome_event("act:abc:a:b", 4, &resend, &task, Err("refused")).unwrap();
        assert_eq!(e.name, "action.failed");
        assert!(e.payload.contains(r#""key":"a:b""#), "{}", e.payload);
        assert!(outcome_event("delivery:9:event:0", 4, &resend, &task, Ok("{}")).is_none());
    }
}
