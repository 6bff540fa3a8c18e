//! `Task::Route`: a tenant route an event triggered (`routing`): its condition evaluated and its
//! input rendered against the event, then the target's action (for `capability:operation`, the
//! one that implements the operation) run with the job's key.

use super::{Ran, action, retry};
use crate::clock::now_ms;
use crate::config::RouteAction;
use crate::routing::{self, Resolved};
use crate::runtime::{self, Call};
use crate::state::Hub;
use crate::store::{Job, JobEnd};

/// Resolves the route and runs its action. A route gone from the config, or a template that
/// fails, is dead at once (retrying cannot help); a false condition ends the job as skipped.
pub(super) async fn run(hub: &Hub, job: &Job, call: Call<'_>, route: String, event: String) -> Ran {
    let tenant = hub.config.tenants.get(&job.tenant);
    let Some(rule) = tenant.and_then(|t| t.routes.iter().find(|r| r.name == route)) else {
        return Ran::Answered(JobEnd::Dead {
            error: format!("route `{route}` no longer exists in the config"),
        });
    };
    let rule = rule.clone();
    // The job's connector was the route's target when the event came; a capability route runs
    // its action for the operation.
    let action = match &rule.action {
        RouteAction::Action(name) => name.clone(),
        RouteAction::Operation(op) => {
            let action = hub
                .runtime
                .connector(job.connector.as_str())
                .and_then(|l| runtime::implementing(&l.manifest, op.id));
            match action {
                Some(a) => a.name.clone(),
                None => {
                    return Ran::Answered(JobEnd::Dead {
                        error: format!(
                            "route `{route}` runs `{}`, which connector `{}` does not implement",
                            op.id, job.connector
                        ),
                    });
                }
            }
        }
    };
    let tenant_name = tenant.map(|t| t.name.clone()).unwrap_or_default();
    let records = routing::Records {
        store: hub.store.clone(),
        tenant: job.tenant.clone(),
        phone_code: tenant.and_then(|t| t.phone_country_code.clone()),
    };
    let tenant_id = job.tenant.clone();
    // Templates may read records: a blocking read, off the async threads.
    let resolved = tokio::task::spawn_blocking(move || {
        routing::resolve(&rule, &tenant_id, &tenant_name, &event, Some(records))
    })
    .await;
    match resolved {
        Ok(Ok(Resolved::Run { input })) => action::run(hub, job, call, action, input).await,
        Ok(Ok(Resolved::Skip(reason))) => Ran::Answered(JobEnd::Done {
            ignored: Some(reason),
            result: None,
        }),
        Ok(Err(error)) => {
            hub.metrics.jobs_dead.inc();
            tracing::warn!("dead-lettered: {error}");
            Ran::Answered(JobEnd::Dead { error })
        }
        Err(e) => Ran::Answered(JobEnd::Retry {
            error: e.to_string(),
            at_ms: now_ms() + retry::backoff_ms(job.attempts, None),
        }),
    }
}
