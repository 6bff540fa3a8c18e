//! The worker pool: claims jobs from the store, runs each in a fresh connector instance, and
//! commits the outcome with its effects — and the route jobs its events trigger — in one
//! transaction. Bounded by a semaphore, plus per-connector and per-(tenant, connector) limits so
//! a provider that keeps failing or a busy tenant never takes every worker; one span per job; a
//! failing connector is logged, retried with backoff or dead-lettered, and never stops the loop.
//! A busy worker gets its next job with the previous one's end (one writer round trip per job),
//! and while the ingress is flooded the workers yield down to a quarter of their slots. A
//! (tenant, connector) whose invocation was stopped for a limit runs one invocation at a time
//! for a while ([`PROBATION`]), so a hostile or broken connector cannot take the cores from
//! everyone else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument;

use crate::routing::{self, Resolved};
use crate::runtime::{CallError, Called, ConnectorError, Delivery, Priority};
use crate::server::Hub;
use crate::store::{Effects, Job, JobEnd, Task, now_ms};

/// Attempts before a crashing connector (trap) is dead-lettered.
pub const MAX_TRAP_ATTEMPTS: i64 = 3;

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

/// Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at one hour, at least `floor`.
pub fn backoff_ms(attempts: i64, floor_ms: Option<u64>) -> i64 {
    let exp = 1_000i64
        .saturating_mul(1i64 << (attempts.clamp(1, 22) - 1))
        .min(3_600_000);
    let jittered = exp / 2 + (rand::random::<u64>() % (exp as u64 / 2 + 1)) as i64;
    jittered.max(floor_ms.unwrap_or(0).min(i64::MAX as u64) as i64)
}

/// How long a (tenant, connector) runs one invocation at a time after one of its invocations
/// was stopped (time, memory, stack or host-call limit, or a panic). Each stop restarts it.
pub const PROBATION: Duration = Duration::from_secs(60);

/// Concurrency limits per connector and per (tenant, connector), and the probation of a
/// (tenant, connector) whose invocations get stopped.
struct Limits {
    connector: HashMap<String, Arc<Semaphore>>,
    tenant: Mutex<HashMap<(String, String), TenantLimit>>,
    per_tenant: HashMap<String, usize>,
}

/// One (tenant, connector)'s limit, and its probation if it is on one.
struct TenantLimit {
    permits: Arc<Semaphore>,
    probation: Option<Probation>,
}

/// Until `until`, the (tenant, connector)'s invocations also need `gate`'s one permit.
struct Probation {
    until: Instant,
    gate: Arc<Semaphore>,
}

/// The permits one running job holds.
struct Permits {
    _connector: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
    _probation: Option<OwnedSemaphorePermit>,
}

impl Limits {
    fn new(hub: &Hub) -> Limits {
        let mut connector = HashMap::new();
        let mut per_tenant = HashMap::new();
        for (id, c) in &hub.config.connectors {
            connector.insert(
                id.as_str().to_string(),
                Arc::new(Semaphore::new(c.concurrency)),
            );
            // One tenant never holds more than half the workers, so a tenant with a backlog (or a
            // hostile one) cannot starve the others.
            let half = (hub.config.server.workers / 2).max(1);
            per_tenant.insert(id.as_str().to_string(), c.tenant_concurrency.min(half));
        }
        Limits {
            connector,
            tenant: Mutex::new(HashMap::new()),
            per_tenant,
        }
    }

    /// The permits for a job, or `None` if a limit is reached.
    fn try_acquire(&self, tenant: &str, connector: &str) -> Option<Permits> {
        let c = self
            .connector
            .get(connector)?
            .clone()
            .try_acquire_owned()
            .ok()?;
        let (t, gate) = {
            let mut map = self.tenant.lock().unwrap_or_else(|p| p.into_inner());
            let limit = self.entry(&mut map, tenant, connector);
            if limit
                .probation
                .as_ref()
                .is_some_and(|p| p.until <= Instant::now())
            {
                limit.probation = None;
                tracing::info!(tenant, connector, "probation over");
            }
            let gate = limit.probation.as_ref().map(|p| p.gate.clone());
            (limit.permits.clone(), gate)
        };
        let t = t.try_acquire_owned().ok()?;
        let probation = match gate {
            Some(gate) => Some(gate.try_acquire_owned().ok()?),
            None => None,
        };
        Some(Permits {
            _connector: c,
            _tenant: t,
            _probation: probation,
        })
    }

    /// Puts (`tenant`, `connector`) on probation for [`PROBATION`] from now: one invocation at
    /// a time. Says so in the log when it starts.
    fn probation(&self, tenant: &str, connector: &str, why: &str) {
        let mut map = self.tenant.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + PROBATION;
        match &mut self.entry(&mut map, tenant, connector).probation {
            Some(p) => p.until = until,
            none => {
                tracing::warn!(
                    tenant,
                    connector,
                    "an invocation was stopped ({why}): one invocation at a time for the next {} s",
                    PROBATION.as_secs()
                );
                *none = Some(Probation {
                    until,
                    gate: Arc::new(Semaphore::new(1)),
                });
            }
        }
    }

    /// (`tenant`, `connector`)'s limit, made on first use.
    fn entry<'m>(
        &self,
        map: &'m mut HashMap<(String, String), TenantLimit>,
        tenant: &str,
        connector: &str,
    ) -> &'m mut TenantLimit {
        let n = self.per_tenant.get(connector).copied().unwrap_or(4);
        map.entry((tenant.to_string(), connector.to_string()))
            .or_insert_with(|| TenantLimit {
                permits: Arc::new(Semaphore::new(n)),
                probation: None,
            })
    }
}

/// Webhook requests in flight from which the ingress counts as flooded.
const FLOODED: i64 = 16;

/// While the ingress is flooded, the workers yield: at most a quarter of them (at least one)
/// keep running jobs, so acknowledgements get the CPU and the writer, the durable queue absorbs
/// the burst, and it still drains, more slowly, until the flood ends.
struct Yield {
    permits: Arc<Semaphore>,
    workers: usize,
}

impl Yield {
    fn busy(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Whether a worker holding a slot should give it up now, with `in_flight` webhook
    /// requests being handled.
    fn should_yield(&self, in_flight: i64) -> bool {
        in_flight >= FLOODED && self.busy() > (self.workers / 4).max(1)
    }
}

/// Runs until `stop` turns true. With `workers = 0` it runs nothing: webhooks are stored and
/// queued, and wait for a hub with workers.
pub async fn run(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let workers = hub.config.server.workers;
    if workers == 0 {
        tracing::warn!(
            "server.workers = 0: webhooks are stored and acknowledged but not processed until the hub runs with workers"
        );
        let _ = stop.wait_for(|stopped| *stopped).await;
        return;
    }
    let permits = Arc::new(Semaphore::new(workers));
    let yielding = Arc::new(Yield {
        permits: permits.clone(),
        workers,
    });
    let limits = Arc::new(Limits::new(&hub));
    let lease = lease_ms(&hub);
    loop {
        if *stop.borrow() {
            break;
        }
        // Wait for a free worker (not a timer), so a finished job makes room at once.
        let first = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => continue,
        };
        if yielding.should_yield(hub.metrics.webhooks_in_flight.get()) {
            drop(first);
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let free = permits.available_permits() + 1;
        let jobs = match hub.store.claim(free, lease).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!("cannot claim jobs: {e}");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            drop(first);
            tokio::select! {
                _ = hub.store.work.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut first = Some(first);
        for job in jobs {
            let Some(limit) = limits.try_acquire(&job.tenant, &job.connector) else {
                defer(&hub, job).await;
                continue;
            };
            let permit = match first.take() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let worker = Worker {
                hub: hub.clone(),
                limits: limits.clone(),
                yielding: yielding.clone(),
                stop: stop.clone(),
                lease,
            };
            tokio::spawn(worker.work(job, permit, limit));
        }
    }
    // Drain: wait for the jobs in flight (their leases would otherwise have to expire).
    let _ = permits.acquire_many(workers as u32).await;
}

/// Over a concurrency limit: back to the queue for a moment; others go first.
async fn defer(hub: &Hub, job: Job) {
    let at_ms = now_ms() + 50 + (rand::random::<u64>() % 100) as i64;
    let _ = hub
        .store
        .finish(job.id, Default::default(), JobEnd::Defer { at_ms }, 0)
        .await;
}

/// One busy worker slot.
struct Worker {
    hub: Arc<Hub>,
    limits: Arc<Limits>,
    yielding: Arc<Yield>,
    stop: watch::Receiver<bool>,
    lease: i64,
}

impl Worker {
    /// Runs `job`, then, as long as the queue has more, the job claimed in the same transaction
    /// as the previous one's end: a busy worker makes one writer round trip per job.
    async fn work(self, mut job: Job, slot: OwnedSemaphorePermit, mut limit: Permits) {
        loop {
            let span = tracing::info_span!("job", id = job.id, tenant = %job.tenant, connector = %job.connector);
            let (effects, end, duration_us, stopped) =
                process(&self.hub, &job).instrument(span.clone()).await;
            if let Some(why) = stopped {
                self.limits.probation(&job.tenant, &job.connector, &why);
            }
            let store = &self.hub.store;
            let ended = if *self.stop.borrow()
                || self
                    .yielding
                    .should_yield(self.hub.metrics.webhooks_in_flight.get())
            {
                store
                    .finish(job.id, effects, end, duration_us)
                    .await
                    .map(|()| None)
            } else {
                store
                    .finish_and_claim(job.id, effects, end, duration_us, self.lease)
                    .await
            };
            drop(limit);
            let next = match ended {
                Ok(next) => next,
                Err(e) => {
                    // The lease expires and another attempt runs it again.
                    span.in_scope(|| {
                        tracing::error!("could not record the end of job {}: {e}", job.id)
                    });
                    None
                }
            };
            let Some(next) = next else { break };
            match self.limits.try_acquire(&next.tenant, &next.connector) {
                Some(l) => (job, limit) = (next, l),
                None => {
                    defer(&self.hub, next).await;
                    break;
                }
            }
        }
        drop(slot);
    }
}

/// What a successful invocation answered besides its effects.
#[derive(Default)]
struct Ended {
    /// A delivery the connector did not act on, and why.
    ignored: Option<String>,
    /// An action's answer.
    result: Option<String>,
}

impl Ended {
    fn ignored(reason: Option<String>) -> Ended {
        Ended {
            ignored: reason,
            result: None,
        }
    }
}

/// Runs one job and says how it ended; the caller commits that (with the job's effects). The
/// last element says why the sandbox stopped the invocation, if it did.
async fn process(hub: &Hub, job: &Job) -> (Effects, JobEnd, i64, Option<String>) {
    let Some(config) = hub.directory.tenant_config(&job.tenant, &job.connector) else {
        let end = JobEnd::Dead {
            error: format!(
                "tenant `{}` no longer uses connector `{}`",
                job.tenant, job.connector
            ),
        };
        return (Default::default(), end, 0, None);
    };
    let key = job.idempotency_key.clone();
    let mut called: Called<Ended> = match job.task.clone() {
        Task::Delivery { delivery_id } => {
            let store = hub.store.clone();
            let request = match tokio::task::spawn_blocking(move || {
                store.delivery_request(delivery_id)
            })
            .await
            {
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
                    return (Default::default(), end, 0, None);
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
                .invoke(
                    Priority::Background,
                    &job.connector,
                    &job.tenant,
                    config,
                    move |store, c| {
                        c.hub_connector_handler()
                            .call_handle_delivery(store, &delivery)
                            .map(|r| r.map(|o| Ended::ignored(o.ignored)))
                    },
                )
                .await
        }
        Task::Job { name, input } => {
            hub.runtime
                .invoke(
                    Priority::Background,
                    &job.connector,
                    &job.tenant,
                    config,
                    move |store, c| {
                        c.hub_connector_handler()
                            .call_run_job(store, &name, &input)
                            .map(|r| r.map(|()| Ended::default()))
                    },
                )
                .await
        }
        Task::Action { name, input } => run_action(hub, job, config, name, input, key).await,
        Task::Route { route, event } => {
            let tenant_name = hub
                .config
                .tenants
                .get(job.tenant.as_str())
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let rule = hub
                .config
                .tenants
                .get(job.tenant.as_str())
                .and_then(|t| t.routes.iter().find(|r| r.name == route))
                .cloned();
            let Some(rule) = rule else {
                let end = JobEnd::Dead {
                    error: format!("route `{route}` no longer exists in the config"),
                };
                return (Default::default(), end, 0, None);
            };
            let records = routing::Records {
                store: hub.store.clone(),
                tenant: job.tenant.clone(),
                phone_code: hub
                    .config
                    .tenants
                    .get(job.tenant.as_str())
                    .and_then(|t| t.phone_country_code.clone()),
            };
            let tenant = job.tenant.clone();
            let resolved = tokio::task::spawn_blocking(move || {
                routing::resolve(&rule, &tenant, &tenant_name, &event, Some(records))
            })
            .await;
            match resolved {
                Ok(Ok(Resolved::Run { action, input })) => {
                    run_action(hub, job, config, action, input, key).await
                }
                Ok(Ok(Resolved::Skip(reason))) => {
                    return (
                        Default::default(),
                        JobEnd::Done {
                            ignored: Some(reason),
                            result: None,
                        },
                        0,
                        None,
                    );
                }
                Ok(Err(error)) => {
                    hub.metrics.jobs_dead.inc();
                    tracing::warn!("dead-lettered: {error}");
                    return (Default::default(), JobEnd::Dead { error }, 0, None);
                }
                Err(e) => {
                    let end = JobEnd::Retry {
                        error: e.to_string(),
                        at_ms: now_ms() + backoff_ms(job.attempts, None),
                    };
                    return (Default::default(), end, 0, None);
                }
            }
        }
    };
    let duration_us = called.elapsed.as_micros() as i64;
    hub.metrics.invocation_us.add(duration_us as u64);
    let stopped = match &called.result {
        Err(CallError::Trapped(why)) => Some(why.clone()),
        _ => None,
    };
    let (end, effects) = match called.result {
        Ok(Ended { ignored, result }) => {
            hub.metrics.jobs_done.inc();
            if let Some(tenant) = hub.config.tenants.get(job.tenant.as_str()) {
                // Keyed by the job's idempotency key (`delivery:{id}` for a delivery), which a
                // replay keeps, so a replay acts no twice.
                let routed = routing::jobs_for_events(
                    &job.tenant,
                    tenant,
                    &job.connector,
                    &job.idempotency_key,
                    &called.effects.events,
                );
                called.effects.jobs.extend(routed);
            }
            (JobEnd::Done { ignored, result }, called.effects)
        }
        Err(e) => {
            let (max_attempts, max_age) = hub
                .config
                .connectors
                .get(job.connector.as_str())
                .map(|c| (c.max_attempts, c.max_age.as_millis() as i64))
                .unwrap_or((8, 86_400_000));
            let age = now_ms() - job.created_at_ms;
            let end = end_for_failure(&e, job.attempts, max_attempts, age >= max_age);
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
    (effects, end, duration_us, stopped)
}

/// Runs a connector action for `job` (an action job, or the action a route resolved to), with
/// the job's idempotency key.
async fn run_action(
    hub: &Hub,
    job: &Job,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
    action: String,
    input: String,
    key: String,
) -> Called<Ended> {
    hub.runtime
        .invoke(
            Priority::Background,
            &job.connector,
            &job.tenant,
            config,
            move |store, c| {
                c.hub_connector_handler()
                    .call_run_action(store, &action, &input, &key)
                    .map(|r| {
                        r.map(|answer| Ended {
                            ignored: None,
                            result: Some(answer),
                        })
                    })
            },
        )
        .await
}

/// What a failed attempt leads to: retryable failures and crashes retry with backoff until the
/// connector's attempt or age limit; permanent and bad-request failures are dead at once.
fn end_for_failure(e: &CallError, attempts: i64, max_attempts: i64, too_old: bool) -> JobEnd {
    let error = e.to_string();
    let retry = |floor: Option<u64>| JobEnd::Retry {
        error: error.clone(),
        at_ms: now_ms() + backoff_ms(attempts, floor),
    };
    if too_old {
        return JobEnd::Dead {
            error: format!("{error} (gave up: the job is older than the connector's max_age_secs)"),
        };
    }
    match e {
        CallError::Connector(ConnectorError::Retryable(r)) if attempts < max_attempts => {
            retry(r.retry_after_ms)
        }
        CallError::Trapped(_) if attempts < MAX_TRAP_ATTEMPTS.min(max_attempts) => retry(None),
        CallError::Unavailable(_) if attempts < max_attempts => retry(None),
        _ => JobEnd::Dead { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::hub::connector::types::Retryable;

    #[test]
    fn workers_yield_to_a_webhook_flood_down_to_a_quarter() {
        let permits = Arc::new(Semaphore::new(16));
        let yielding = Yield {
            permits: permits.clone(),
            workers: 16,
        };
        let held: Vec<_> = (0..5)
            .map(|_| permits.clone().try_acquire_owned().unwrap())
            .collect();
        assert!(
            yielding.should_yield(FLOODED),
            "5 busy of 16 during a flood"
        );
        assert!(!yielding.should_yield(FLOODED - 1), "no flood, no yield");
        drop(held);
        let _four: Vec<_> = (0..4)
            .map(|_| permits.clone().try_acquire_owned().unwrap())
            .collect();
        assert!(
            !yielding.should_yield(10 * FLOODED),
            "a quarter of the workers keep going through any flood"
        );
        let one = Yield {
            permits: Arc::new(Semaphore::new(1)),
            workers: 1,
        };
        let _only = one.permits.clone().try_acquire_owned().unwrap();
        assert!(
            !one.should_yield(10 * FLOODED),
            "a single worker never stops"
        );
    }

    fn limits(per_tenant: usize) -> Limits {
        Limits {
            connector: HashMap::from([("probe".to_string(), Arc::new(Semaphore::new(16)))]),
            tenant: Mutex::new(HashMap::new()),
            per_tenant: HashMap::from([("probe".to_string(), per_tenant)]),
        }
    }

    #[test]
    fn a_tenant_on_probation_runs_one_invocation_at_a_time_and_others_do_not_notice() {
        let limits = limits(4);
        let before: Vec<_> = (0..4)
            .filter_map(|_| limits.try_acquire("alpha", "probe"))
            .collect();
        assert_eq!(before.len(), 4, "four at a time before probation");
        drop(before);
        limits.probation("alpha", "probe", "exceeded its time limit of 1000 ms");
        let first = limits.try_acquire("alpha", "probe");
        assert!(first.is_some());
        assert!(
            limits.try_acquire("alpha", "probe").is_none(),
            "a second invocation while one runs on probation"
        );
        let beta: Vec<_> = (0..4)
            .filter_map(|_| limits.try_acquire("beta", "probe"))
            .collect();
        assert_eq!(beta.len(), 4, "another tenant keeps its four");
        drop(first);
        assert!(
            limits.try_acquire("alpha", "probe").is_some(),
            "the next one, once it ended"
        );

        // Over: the probation ends with its time.
        limits
            .tenant
            .lock()
            .unwrap()
            .values_mut()
            .filter_map(|l| l.probation.as_mut())
            .for_each(|p| p.until = Instant::now());
        let after: Vec<_> = (0..4)
            .filter_map(|_| limits.try_acquire("alpha", "probe"))
            .collect();
        assert_eq!(after.len(), 4, "four at a time again after probation");
    }

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
            end_for_failure(&retryable, 1, 8, false),
            JobEnd::Retry { .. }
        ));
        assert!(matches!(
            end_for_failure(&retryable, 8, 8, false),
            JobEnd::Dead { .. }
        ));
        assert!(
            matches!(end_for_failure(&retryable, 1, 8, true), JobEnd::Dead { .. }),
            "too old"
        );
        let permanent = CallError::Connector(ConnectorError::Permanent("no".into()));
        assert!(matches!(
            end_for_failure(&permanent, 1, 8, false),
            JobEnd::Dead { .. }
        ));
        let trap = CallError::Trapped("loop".into());
        assert!(matches!(
            end_for_failure(&trap, 1, 8, false),
            JobEnd::Retry { .. }
        ));
        assert!(matches!(
            end_for_failure(&trap, MAX_TRAP_ATTEMPTS, 8, false),
            JobEnd::Dead { .. }
        ));
    }
}
