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

//!
//! # Layout
//! - this file: the claim loop, a worker slot, and [`process`]: the one switchboard over
//!   [`Task`], whose kinds each have a file: `delivery`, `job`, `action`, `route`;
//! - `retry`: what a failed attempt leads to (backoff, dead letter);
//! - `limits`: the concurrency limits, the probation and the yield to a webhook flood.

mod action;
mod delivery;
mod job;
mod limits;
mod retry;
mod route;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument;

pub use limits::PROBATION;
pub use retry::{MAX_TRAP_ATTEMPTS, backoff_ms};

use crate::clock::now_ms;
use crate::reload::Current;
use crate::runtime::{Call, CallError, Called, Priority};
use crate::state::Hub;
use crate::store::{Effects, Job, JobEnd, Task};
use crate::{actions, outbox, routing};
use limits::{Limits, Permits, Yield};

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

/// Runs until `stop` turns true. With `workers = 0` it runs nothing: webhooks are stored and
/// queued, and wait for a hub with workers.
pub async fn run(current: Arc<Current>, mut stop: watch::Receiver<bool>) {
    let mut hub = current.hub();
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
    let mut limits = Arc::new(Limits::new(&hub));
    let mut lease = lease_ms(&hub);
    loop {
        if *stop.borrow() {
            break;
        }
        // After a reload, the new config's limits (jobs already running keep their permits).
        let now = current.hub();
        if !Arc::ptr_eq(&now, &hub) {
            hub = now;
            limits = Arc::new(Limits::new(&hub));
            lease = lease_ms(&hub);
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
        let claimed_at = now_ms();
        for job in &jobs {
            let waited = (claimed_at - job.run_at_ms).max(0);
            hub.metrics.queue_age_seconds.record(waited as f64 / 1e3);
        }
        for job in jobs {
            let Some(limit) = acquire(&hub, &limits, &job) else {
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
                current: current.clone(),
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

/// The permits a job needs: its endpoint's slot for a webhook to the app (so a slow app never
/// holds a connector's slots), else its connector's and (tenant, connector)'s.
fn acquire(hub: &Hub, limits: &Limits, job: &Job) -> Option<Permits> {
    match &job.task {
        Task::Webhook { endpoint, .. } => hub
            .outbox
            .permit(&job.tenant, endpoint)
            .map(Permits::endpoint),
        _ => limits.try_acquire(&job.tenant, &job.connector),
    }
}

/// Over a concurrency limit: back to the queue for a moment; others go first.
async fn defer(hub: &Hub, job: Job) {
    let at_ms = now_ms() + 50 + (rand::random::<u64>() % 100) as i64;
    let _ = hub
        .store
        .finish(job.lease(), Default::default(), JobEnd::Defer { at_ms }, 0)
        .await;
}

/// One busy worker slot.
struct Worker {
    current: Arc<Current>,
    /// The hub its current job runs on (the current one when the job was claimed).
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
            let traced = trace_span(&job);
            let Processed {
                mut effects,
                end,
                duration_us,
                stopped,
            } = process(&self.hub, &job)
                .instrument(span.clone())
                .instrument(traced.clone())
                .await;
            traced_end(&traced, &end);
            // What the job queues continues its trace.
            if let Some(trace) = crate::telemetry::stored(&traced) {
                for next in effects.jobs.iter_mut().filter(|j| j.trace.is_none()) {
                    next.trace = Some(trace.clone());
                }
            }
            // Credentials the job had the host keep go to hub.toml, never to the database.
            let kept = std::mem::take(&mut effects.credentials);
            if duration_us > 0 {
                self.hub
                    .metrics
                    .job_seconds(job.connector.as_str(), job.task.kind())
                    .record(duration_us as f64 / 1e6);
            }
            if let Some(why) = stopped
                && self.limits.probation(&job.tenant, &job.connector, &why)
            {
                self.hub.alerts.raise(
                    crate::alerts::Cause::probation(&job.tenant, &job.connector),
                    format!(
                        "{}'s {} is on probation: its invocations were stopped",
                        job.tenant, job.connector
                    ),
                    crate::secrets::redact::shown(&why),
                );
            }
            if let JobEnd::Dead { error } = &end {
                self.hub.alerts.raise(
                    crate::alerts::Cause::dead_letter(&job.tenant, &job.connector),
                    format!("{}'s {} jobs are dead-lettered", job.tenant, job.connector),
                    crate::secrets::redact::shown(error),
                );
            }
            let store = &self.hub.store;
            let ended = if *self.stop.borrow()
                || self
                    .yielding
                    .should_yield(self.hub.metrics.webhooks_in_flight.get())
            {
                store
                    .finish(job.lease(), effects, end, duration_us)
                    .await
                    .map(|()| None)
            } else {
                store
                    .finish_and_claim(job.lease(), effects, end, duration_us, self.lease)
                    .await
            };
            drop(limit);
            // An action's waiters (`?wait=`, a tool call) look again.
            store.ended.notify_waiters();
            if ended.is_ok() && !kept.is_empty() {
                let kept = crate::connections::registration::keep(
                    &self.current,
                    &job.tenant,
                    &job.connector,
                    kept,
                );
                if let Err(e) = kept.await {
                    span.in_scope(|| {
                        tracing::error!(
                            "job {}: the credentials it got could not be kept: {e}",
                            job.id
                        )
                    });
                }
            }
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
            // The next job runs on the hub current now (a reload may have come in between).
            let now = self.current.hub();
            if !Arc::ptr_eq(&now, &self.hub) {
                defer(&now, next).await;
                break;
            }
            match acquire(&self.hub, &self.limits, &next) {
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

/// The job's trace span, a child of the span that queued it; none unless its trace is recorded
/// (traces exported, and the trace sampled).
fn trace_span(job: &Job) -> tracing::Span {
    if !crate::telemetry::sampled(job.trace.as_deref()) {
        return tracing::Span::none();
    }
    let delivery = match &job.task {
        Task::Delivery { delivery_id } => Some(*delivery_id),
        _ => None,
    };
    let span = tracing::info_span!(target: crate::telemetry::TARGET, "job",
        otel.name = %format_args!("job {}", job.task.kind()),
        tenant = %job.tenant, connector = %job.connector, job.id = job.id,
        job.kind = job.task.kind(), job.attempt = job.attempts, delivery.id = delivery,
        outcome = tracing::field::Empty);
    crate::telemetry::continue_from(&span, job.trace.as_deref());
    span
}

/// Records how the job ended on its trace span.
fn traced_end(span: &tracing::Span, end: &JobEnd) {
    if span.is_disabled() {
        return;
    }
    let outcome = match end {
        JobEnd::Done { .. } => "done",
        JobEnd::Retry { .. } => "retry",
        JobEnd::Dead { .. } => "dead",
        JobEnd::Defer { .. } => "deferred",
    };
    span.record("outcome", outcome);
    if matches!(end, JobEnd::Retry { .. } | JobEnd::Dead { .. }) {
        crate::telemetry::failed(span, outcome);
    }
}

/// What a successful invocation answered besides its effects.
#[derive(Default)]
struct Answered {
    /// A delivery the connector did not act on, and why.
    ignored: Option<String>,
    /// An action's answer.
    result: Option<String>,
}

/// What running a task came to.
enum Ran {
    /// The connector was invoked.
    Called(Called<Answered>),
    /// The job ended without an invocation (its delivery unreadable, its route gone, its
    /// condition false).
    Answered(JobEnd),
}

/// One job's outcome, for the store to commit.
struct Processed {
    /// The writes to commit with the end (none unless it succeeded).
    effects: Effects,
    /// How the job ended.
    end: JobEnd,
    /// How long the invocation took (µs; 0 without one).
    duration_us: i64,
    /// Why the sandbox stopped the invocation, if it did (a limit, a trap).
    stopped: Option<String>,
}

impl Processed {
    fn without_invocation(end: JobEnd) -> Processed {
        Processed {
            effects: Effects::default(),
            end,
            duration_us: 0,
            stopped: None,
        }
    }
}

/// Runs one job and says how it ended; the caller commits that (with the job's effects). Each
/// task kind has its own file; this `match` is the one switchboard.
async fn process(hub: &Hub, job: &Job) -> Processed {
    let Some(config) = hub.directory.tenant_config(&job.tenant, &job.connector) else {
        return Processed::without_invocation(JobEnd::Dead {
            error: format!(
                "tenant `{}` no longer uses connector `{}`",
                job.tenant, job.connector
            ),
        });
    };
    let call = Call {
        priority: Priority::Background,
        tenant: &job.tenant,
        connector: &job.connector,
        config,
    };
    let ran = match job.task.clone() {
        Task::Delivery { delivery_id } => delivery::run(hub, job, call, delivery_id).await,
        Task::Job { name, input } => self::job::run(hub, call, name, input).await,
        Task::Action { name, input } => action::run(hub, job, call, name, input).await,
        Task::Route { route, event } => route::run(hub, job, call, route, event).await,
        Task::Webhook {
            endpoint,
            event_type,
            payload,
            at_ms,
        } => webhook::run(hub, job, endpoint, event_type, payload, at_ms).await,
        Task::Unreadable { error, .. } => Ran::Answered(JobEnd::Dead {
            error: format!("the stored task is not one this hub can read ({error})"),
        }),
    };
    match ran {
        Ran::Answered(end) => Processed::without_invocation(end),
        Ran::Called(called) => settle(hub, job, called),
    }
}

/// What a dead action asked for from outside leaves: its `action.failed` event and the webhooks
/// to the tenant's app that it causes (nothing for other jobs).
fn failed_action(hub: &Hub, job: &Job, error: &str) -> Effects {
    let Some(event) = actions::outcome_event(
        &job.idempotency_key,
        job.id,
        &job.connector,
        &job.task,
        Err(error),
    ) else {
        return Effects::default();
    };
    let events = vec![event];
    let jobs = hub
        .config
        .tenants
        .get(&job.tenant)
        .map(|tenant| {
            outbox::jobs_for_events(
                &job.tenant,
                tenant,
                &job.connector,
                &job.idempotency_key,
                &events,
            )
        })
        .unwrap_or_default();
    Effects {
        events,
        jobs,
        ..Default::default()
    }
}

/// The end of an invocation: on success its effects, with the route jobs its events trigger;
/// on failure a retry or the dead letter ([`retry::end_for_failure`]), and no effects.
fn settle(hub: &Hub, job: &Job, mut called: Called<Answered>) -> Processed {
    let duration_us = called.elapsed.as_micros() as i64;
    hub.metrics.invocation_us.add(duration_us as u64);
    let stopped = match &called.result {
        Err(CallError::Trapped(why)) => Some(why.clone()),
        _ => None,
    };
    let (end, effects) = match called.result {
        Ok(Answered { ignored, result }) => {
            hub.metrics.jobs_done.inc();
            // An action asked for from outside says how it went, first among its events.
            let outcome = result.as_deref().unwrap_or("null");
            if let Some(event) = actions::outcome_event(
                &job.idempotency_key,
                job.id,
                &job.connector,
                &job.task,
                Ok(outcome),
            ) {
                called.effects.events.insert(0, event);
            }
            if let Some(tenant) = hub.config.tenants.get(&job.tenant) {
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
                // And the webhooks to the tenant's app, under the same key.
                let to_app = outbox::jobs_for_events(
                    &job.tenant,
                    tenant,
                    &job.connector,
                    &job.idempotency_key,
                    &called.effects.events,
                );
                called.effects.jobs.extend(to_app);
            }
            (JobEnd::Done { ignored, result }, called.effects)
        }
        Err(e) => {
            let (max_attempts, max_age) = hub
                .config
                .connectors
                .get(&job.connector)
                .map(|c| (c.max_attempts, c.max_age.as_millis() as i64))
                .unwrap_or((8, 86_400_000));
            let age = now_ms() - job.created_at_ms;
            let end = retry::end_for_failure(&e, job.attempts, max_attempts, age >= max_age);
            let mut effects = Effects::default();
            match &end {
                JobEnd::Dead { error } => {
                    hub.metrics.jobs_dead.inc();
                    tracing::warn!(attempts = job.attempts, "dead-lettered: {error}");
                    effects = failed_action(hub, job, error);
                }
                _ => {
                    hub.metrics.jobs_retried.inc();
                    tracing::info!(attempts = job.attempts, "will retry: {e}");
                }
            }
            (end, effects)
        }
    };
    Processed {
        effects,
        end,
        duration_us,
        stopped,
    }
}
