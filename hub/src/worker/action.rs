//! `Task::Action`: a connector action (the operator's `hub run-action`, or the action a route
//! resolved to), run with the job's idempotency key, which connectors hand to their providers.

use super::{Answered, Ran};
use crate::runtime::Call;
use crate::state::Hub;
use crate::store::Job;

/// Runs the connector's `run-action`; its answer (the provider's id for what it did, say) is
/// kept on the job.
pub(super) async fn run(hub: &Hub, job: &Job, call: Call<'_>, name: String, input: String) -> Ran {
    let key = job.idempotency_key.clone();
    let called = hub.runtime.run_action(call, name, input, key).await;
    Ran::Called(called.map(|answer| Answered {
        ignored: None,
        result: Some(answer),
    }))
}
