//! `Task::Webhook`: one event to one of the tenant's endpoints (`outbox`). Retried on the
//! endpoint's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h by default, each ±10%, never
//! sooner than the app's `Retry-After`), then dead-lettered; a `410 Gone` disables the endpoint.

use std::time::Duration;

use super::Ran;
use crate::clock::now_ms;
use crate::outbox::{self, Sent};
use crate::state::Hub;
use crate::store::{Job, JobEnd};

/// Sends the event. No connector runs: the host signs and sends.
pub(super) async fn run(
    hub: &Hub,
    job: &Job,
    endpoint: String,
    event_type: String,
    payload: String,
    at_ms: i64,
) -> Ran {
    let dead = |error: String| Ran::Answered(JobEnd::Dead { error });
    let found = hub
        .config
        .tenants
        .get(&job.tenant)
        .and_then(|t| t.endpoints.get_key_value(endpoint.as_str()));
    let Some((name, config)) = found else {
        return dead(format!(
            "endpoint `{endpoint}` no longer exists in the config"
        ));
    };
    match hub.store.endpoint_disabled(&job.tenant, &endpoint).await {
        Ok(Some(off)) => {
            return dead(format!(
                "endpoint `{endpoint}` is disabled ({}); enable it to deliver again",
                off.reason
            ));
        }
        Ok(None) => {}
        Err(e) => return failed(job, &config.retry_schedule, e.to_string(), None),
    }
    let id = outbox::message_id(&job.idempotency_key);
    let sent = hub
        .outbox
        .send(
            &hub.vault,
            &job.tenant,
            name,
            config,
            &id,
            &event_type,
            &payload,
            at_ms,
        )
        .await;
    match sent {
        Sent::Delivered(status) => {
            hub.metrics.app_webhooks_delivered.inc();
            hub.alerts.clear(&crate::alerts::Cause::endpoint_failing(
                &job.tenant,
                &endpoint,
            ));
            Ran::Answered(JobEnd::Done {
                ignored: None,
                result: Some(serde_json::json!({ "status": status, "webhook_id": id }).to_string()),
            })
        }
        Sent::Gone(why) => {
            hub.metrics.app_webhooks_failed.inc();
            let reason = format!("{why} at {}", chrono::Utc::now().to_rfc3339());
            if let Err(e) = hub
                .store
                .set_endpoint_disabled(&job.tenant, &endpoint, Some(reason))
                .await
            {
                tracing::error!("could not disable endpoint {endpoint}: {e}");
            }
            tracing::warn!(tenant = %job.tenant, endpoint, "endpoint disabled: {why}");
            hub.alerts.raise(
                crate::alerts::Cause::endpoint_disabled(&job.tenant, &endpoint),
                format!("{}'s endpoint {endpoint} is disabled", job.tenant),
                why.clone(),
            );
            dead(format!("{why}: endpoint `{endpoint}` disabled"))
        }
        Sent::Refused(why) => {
            hub.metrics.app_webhooks_failed.inc();
            dead(why)
        }
        Sent::Failed { error, retry_after } => {
            hub.metrics.app_webhooks_failed.inc();
            if now_ms() - job.created_at_ms >= FAILING_FOR_MS {
                hub.alerts.raise(
                    crate::alerts::Cause::endpoint_failing(&job.tenant, &endpoint),
                    format!(
                        "{}'s endpoint {endpoint} has failed for an hour",
                        job.tenant
                    ),
                    error.clone(),
                );
            }
            failed(job, &config.retry_schedule, error, retry_after)
        }
    }
}

/// How long a webhook keeps failing before its endpoint is alerted on.
const FAILING_FOR_MS: i64 = 3_600_000;

/// A failed attempt: again after the schedule's wait for this attempt (±10%, so endpoints that
/// failed together do not all come back at once, and never sooner than the app's
/// `Retry-After`), or dead after its last.
fn failed(job: &Job, schedule: &[Duration], error: String, retry_after: Option<Duration>) -> Ran {
    let index = (job.attempts.max(1) - 1) as usize;
    let Some(wait) = schedule.get(index) else {
        return Ran::Answered(JobEnd::Dead {
            error: format!("{error} (gave up after {} attempts)", job.attempts),
        });
    };
    let ms = wait.as_millis() as i64;
    let jitter = (rand::random::<u64>() % (ms as u64 / 5 + 1)) as i64 - ms / 10;
    let floor = retry_after.map_or(0, |d| d.as_millis() as i64);
    Ran::Answered(JobEnd::Retry {
        error,
        at_ms: now_ms() + (ms + jitter).max(floor),
    })
}
