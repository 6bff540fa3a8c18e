//! The worker pool: claims jobs from the store, runs each in a fresh connector instance, and
//! commits the outcome with the effects. Bounded by a semaphore; one span per job; a failing
//! connector is logged and retried or dead-lettered, never stops the loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::runtime::{CallError, ConnectorError, Delivery};
use crate::server::Hub;
use crate::store::{Job, JobEnd, Task, now_ms};

/// How long a claimed job stays leased before another worker may take it over: twice the
/// longest connector time limit plus a margin, so a live attempt is never run twice, and a job
/// whose worker died (`kill -9`) runs again soon after restart.
fn lease_ms(hub: &Hub) -> i64 {
    let longest = hub
        .runtime
        .connectors()
        .map(|c| c.settings.timeout.as_millis() as i64)
        .max()
        .unwrap_or(10_000);
    2 * longest + 5_000
}
/// Attempts before a retryable failure is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 8;
/// Attempts before a crashing connector (trap) is dead-lettered.
pub const MAX_TRAP_ATTEMPTS: i64 = 3;

/// Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at one hour, at least `floor`.
pub fn backoff_ms(attempts: i64, floor_ms: Option<u64>) -> i64 {
    let exp = 1_000i64
        .saturating_mul(1i64 << (attempts.clamp(1, 22) - 1))
        .min(3_600_000);
    let jittered = exp / 2 + (rand::random::<u64>() % (exp as u64 / 2 + 1)) as i64;
    jittered.max(floor_ms.unwrap_or(0).min(i64::MAX as u64) as i64)
}

/// Runs until `stop` turns true.
pub async fn run(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let workers = hub.config.server.workers.max(1);
    let permits = Arc::new(Semaphore::new(workers));
    let lease = lease_ms(&hub);
    loop {
        if *stop.borrow() {
            break;
        }
        let free = permits.available_permits();
        let jobs = if free == 0 {
            Vec::new()
        } else {
            match hub.store.claim(free, lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!("cannot claim jobs: {e}");
                    Vec::new()
                }
            }
        };
        if jobs.is_empty() {
            let wait = if free == 0 {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                _ = hub.store.work.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for job in jobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let hub = hub.clone();
            let span = tracing::info_span!("job", id = job.id, tenant = %job.tenant, connector = %job.connector);
            tokio::spawn(
                async move {
                    process(&hub, job).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
    // Drain: wait for the jobs in flight (their leases would otherwise have to expire).
    let _ = permits.acquire_many(workers as u32).await;
}

async fn process(hub: &Hub, job: Job) {
    let Some(config) = hub.directory.tenant_config(&job.tenant, &job.connector) else {
        let end = JobEnd::Dead {
            error: format!(
                "tenant `{}` no longer uses connector `{}`",
                job.tenant, job.connector
            ),
        };
        let _ = hub.store.finish(job.id, Default::default(), end, 0).await;
        return;
    };
    let called = match job.task.clone() {
        Task::Delivery { delivery_id } => {
            let _ = hub.store.start(job.id).await;
            let store = hub.store.clone();
            let request =
                tokio::task::spawn_blocking(move || store.delivery_request(delivery_id)).await;
            let request = match request {
                Ok(Ok(Some(r))) => r,
                other => {
                    let error = match other {
                        Ok(Ok(_)) => "the delivery is gone".to_string(),
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let end = JobEnd::Retry {
                        error,
                        at_ms: now_ms() + backoff_ms(job.attempts, None),
                    };
                    let _ = hub.store.finish(job.id, Default::default(), end, 0).await;
                    return;
                }
            };
            let delivery = Delivery {
                id: delivery_id.to_string(),
                route: request.route,
                method: request.method,
                url: request.url,
                headers: request.headers,
                body: request.body,
                received_at_ms: request.received_at_ms as u64,
            };
            hub.runtime
                .invoke(&job.connector, &job.tenant, config, move |store, c| {
                    c.hub_connector_handler()
                        .call_handle_delivery(store, &delivery)
                        .map(|r| r.map(|o| o.ignored))
                })
                .await
        }
        Task::Job { name, input } => {
            hub.runtime
                .invoke(&job.connector, &job.tenant, config, move |store, c| {
                    c.hub_connector_handler()
                        .call_run_job(store, &name, &input)
                        .map(|r| r.map(|()| None))
                })
                .await
        }
        Task::Action { name, input } => {
            let key = job.idempotency_key.clone();
            hub.runtime
                .invoke(&job.connector, &job.tenant, config, move |store, c| {
                    c.hub_connector_handler()
                        .call_run_action(store, &name, &input, &key)
                        .map(|r| r.map(|_| None))
                })
                .await
        }
    };
    let duration_us = called.elapsed.as_micros() as i64;
    hub.metrics.invocation_us.add(duration_us as u64);
    let (end, effects) = match called.result {
        Ok(ignored) => {
            hub.metrics.jobs_done.inc();
            (JobEnd::Done { ignored }, called.effects)
        }
        Err(e) => {
            let end = end_for_failure(&e, job.attempts);
            match &end {
                JobEnd::Dead { error } => {
                    hub.metrics.jobs_dead.inc();
                    tracing::warn!(attempts = job.attempts, "dead-lettered: {error}");
                }
                _ => {
                    hub.metrics.jobs_retried.inc();
                    tracing::info!(attempts = job.attempts, "will retry: {e}");
                }
            }
            (end, Default::default())
        }
    };
    if let Err(e) = hub.store.finish(job.id, effects, end, duration_us).await {
        // The lease expires and another attempt runs it again.
        tracing::error!("could not record the end of job {}: {e}", job.id);
    }
}

/// What a failed attempt leads to.
fn end_for_failure(e: &CallError, attempts: i64) -> JobEnd {
    let error = e.to_string();
    match e {
        CallError::Connector(ConnectorError::Retryable(r)) if attempts < MAX_ATTEMPTS => {
            JobEnd::Retry {
                error,
                at_ms: now_ms() + backoff_ms(attempts, r.retry_after_ms),
            }
        }
        CallError::Trapped(_) if attempts < MAX_TRAP_ATTEMPTS => JobEnd::Retry {
            error,
            at_ms: now_ms() + backoff_ms(attempts, None),
        },
        CallError::Unavailable(_) if attempts < MAX_ATTEMPTS => JobEnd::Retry {
            error,
            at_ms: now_ms() + backoff_ms(attempts, None),
        },
        _ => JobEnd::Dead { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::hub::connector::types::Retryable;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for attempts in 1..10 {
            let b = backoff_ms(attempts, None);
            let exp = 1000 * (1 << (attempts - 1));
            assert!(b >= exp / 2 && b <= exp, "attempt {attempts}: {b}");
        }
        assert!(backoff_ms(1, Some(30_000)) >= 30_000);
        assert!(backoff_ms(40, None) <= 3_600_000);
    }

    #[test]
    fn failures_map_to_retry_or_dead() {
        let retryable = CallError::Connector(ConnectorError::Retryable(Retryable {
            message: "x".into(),
            retry_after_ms: None,
        }));
        assert!(matches!(
            end_for_failure(&retryable, 1),
            JobEnd::Retry { .. }
        ));
        assert!(matches!(
            end_for_failure(&retryable, MAX_ATTEMPTS),
            JobEnd::Dead { .. }
        ));
        let permanent = CallError::Connector(ConnectorError::Permanent("no".into()));
        assert!(matches!(
            end_for_failure(&permanent, 1),
            JobEnd::Dead { .. }
        ));
        let trap = CallError::Trapped("loop".into());
        assert!(matches!(end_for_failure(&trap, 1), JobEnd::Retry { .. }));
        assert!(matches!(
            end_for_failure(&trap, MAX_TRAP_ATTEMPTS),
            JobEnd::Dead { .. }
        ));
    }
}
