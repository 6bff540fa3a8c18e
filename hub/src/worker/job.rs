//! `Task::Job`: a connector job (a schedule's tick, a follow-up a connector queued, or the
//! operator's `hub run-job`).

use super::{Answered, Ran};
use crate::runtime::Call;
use crate::state::Hub;

/// Runs the connector's `run-job`.
pub(super) async fn run(hub: &Hub, call: Call<'_>, name: String, input: String) -> Ran {
    let called = hub.runtime.run_job(call, name, input).await;
    Ran::Called(called.map(|()| Answered::default()))
}
