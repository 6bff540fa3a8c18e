//! Cron schedules: each tenant's `[[schedules]]` queue a connector job at every tick, through
//! the same job queue the worker serves for webhooks ([`Task::Job`]).
//!
//! The main types: [`ScheduleEntry`] (one schedule, resolved from the config once) and [`Plan`] (what
//! one schedule should do at a given time, a pure function of its cron, time zone, missed-tick
//! policy, last tick and the clock, so it is tested with fixed times). [`run`] is the loop.
//!
//! Guarantees:
//! - **Restarts.** The last tick each schedule queued is stored (`schedules` table). A schedule
//!   never seen before starts from now: no backfill of history.
//! - **Downtime.** Ticks missed while no hub ran become one job at start with
//!   [`Missed::RunOnce`] (for the latest missed tick), or none with [`Missed::Skip`]. Ticks that
//!   fall due while the hub runs but behind schedule (a stall) are coalesced into one run too.
//! - **No overlap.** When the previous run's job is still queued or running (including waiting
//!   for a retry), the tick is **skipped**, not deferred: it is recorded as taken, logged, and the
//!   schedule waits for its next tick. Deferring would pile up runs behind a slow connector.
//! - **Several processes.** A tick is claimed with a compare-and-set on the stored last tick, in
//!   the transaction that queues its job, and the job's key names the tick
//!   ([`crate::store::schedule_key`]): one job per tick however many hubs share the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::{Config, Missed};
use crate::id::{ConnectorId, TenantId};
use crate::reload::Current;
use crate::runtime::Runtime;
use crate::store::{Store, Task, TickClaim, TickOutcome};

/// The loop wakes at least this often, so far-off ticks or no schedules still notice shutdown
/// and a clock that jumps.
const MAX_SLEEP_MS: i64 = 1_000;
/// After a database error, a schedule tries again this much later.
const RETRY_MS: i64 = 1_000;

/// One schedule, resolved from the config.
#[derive(Clone, Debug)]
pub struct ScheduleEntry {
    /// Tenant id.
    pub tenant: TenantId,
    /// Schedule name, unique within the tenant.
    pub name: String,
    /// Connector whose job runs.
    pub connector: ConnectorId,
    /// Job name.
    pub job: String,
    /// JSON input.
    pub input: String,
    /// When it ticks (with seconds).
    pub cron: cron::Schedule,
    /// The tenant's time zone, in which `cron` is read.
    pub tz: Tz,
    /// What to do about ticks missed while no hub ran.
    pub missed: Missed,
}

impl ScheduleEntry {
    /// Every schedule of every tenant: its own (`[[tenants.T.schedules]]`), and the jobs its
    /// connectors declare a default schedule for (named `connector:job`), unless one of its own
    /// runs the same job or the operator turned the connector's defaults off
    /// (`default_schedules = false`).
    pub fn all(config: &Config, runtime: &Runtime) -> Vec<ScheduleEntry> {
        let mut out = Vec::new();
        for (tenant, t) in &config.tenants {
            out.extend(t.schedules.iter().map(|s| ScheduleEntry {
                tenant: tenant.clone(),
                name: s.name.clone(),
                connector: s.connector.clone(),
                job: s.job.clone(),
                input: s.input.clone(),
                cron: s.cron.clone(),
                tz: t.timezone,
                missed: s.missed,
            }));
            for connector in t.connectors.keys() {
                let on = config
                    .connectors
                    .get(connector)
                    .is_some_and(|c| c.default_schedules);
                let Some(loaded) = runtime.connector(connector.as_str()).filter(|_| on) else {
                    continue;
                };
                for job in &loaded.manifest.jobs {
                    let Some(cron) = job.schedule.as_deref().and_then(|c| c.parse().ok()) else {
                        continue;
                    };
                    let own = t
                        .schedules
                        .iter()
                        .any(|s| &s.connector == connector && s.job == job.name);
                    if own {
                        continue;
                    }
                    out.push(ScheduleEntry {
                        tenant: tenant.clone(),
                        name: format!("{connector}:{}", job.name),
                        connector: connector.clone(),
                        job: job.name.clone(),
                        input: "{}".into(),
                        cron,
                        tz: t.timezone,
                        missed: Missed::RunOnce,
                    });
                }
            }
        }
        out
    }

    fn plan(&self, last_ms: i64, now_ms: i64, started_ms: i64) -> Plan {
        plan(
            &self.cron,
            self.tz,
            self.missed,
            last_ms,
            now_ms,
            started_ms,
        )
    }
}

/// What a schedule should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The cron expression has no tick after the last one (a past year).
    Never,
    /// Nothing is due before this time (ms).
    Wait {
        /// The next tick.
        next_ms: i64,
    },
    /// Queue a job for this tick, the latest one due. `coalesced` when earlier due ticks are
    /// folded into it.
    Run {
        /// The tick (ms).
        tick_ms: i64,
        /// Whether earlier ticks were due too.
        coalesced: bool,
    },
    /// Record this tick, the latest one missed while no hub ran, without a job.
    Skip {
        /// The tick (ms).
        tick_ms: i64,
    },
}

/// What a schedule whose last queued tick is `last_ms` should do at `now_ms`, in a process
/// that started at `started_ms` (ticks before it were missed while no hub ran).
pub fn plan(
    cron: &cron::Schedule,
    tz: Tz,
    missed: Missed,
    last_ms: i64,
    now_ms: i64,
    started_ms: i64,
) -> Plan {
    let Some(first) = next_tick(cron, tz, last_ms) else {
        return Plan::Never;
    };
    if first > now_ms {
        return Plan::Wait { next_ms: first };
    }
    let latest = latest_tick(cron, tz, now_ms)
        .filter(|t| *t >= first)
        .unwrap_or(first);
    if latest < started_ms && missed == Missed::Skip {
        return Plan::Skip { tick_ms: latest };
    }
    Plan::Run {
        tick_ms: latest,
        coalesced: latest > first,
    }
}

/// The first tick strictly after `after_ms`, reading `cron` in `tz`.
pub fn next_tick(cron: &cron::Schedule, tz: Tz, after_ms: i64) -> Option<i64> {
    let after = at(tz, after_ms)?;
    // Across a repeated hour (DST ending) the local times of that hour come twice; the iterator
    // yields the earlier and then the later of each, so skip any not after `after_ms`.
    cron.after(&after)
        .take(8)
        .map(|t| t.timestamp_millis())
        .find(|t| *t > after_ms)
}

/// The last tick at or before `at_ms`.
pub fn latest_tick(cron: &cron::Schedule, tz: Tz, at_ms: i64) -> Option<i64> {
    // `next_back` finds the last tick at or before a time with a fraction of a second, and
    // strictly before a whole second: one millisecond later gives "at or before `at_ms`".
    let from = at(tz, at_ms.checked_add(1)?)?;
    cron.after(&from)
        .rev()
        .take(8)
        .map(|t| t.timestamp_millis())
        .find(|t| *t <= at_ms)
}

fn at(tz: Tz, ms: i64) -> Option<DateTime<Tz>> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| tz.from_utc_datetime(&t.naive_utc()))
}

fn local(tz: Tz, ms: i64) -> String {
    at(tz, ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}

/// Queues scheduled jobs until `stop` turns true. The workers wake on their own after each
/// commit that queued a job.
pub async fn run(current: Arc<Current>, stop: watch::Receiver<bool>) {
    let store = current.hub().store.clone();
    let alerts = current.hub().alerts.clone();
    let reloads = current.subscribe();
    run_on(
        store,
        move || {
            let hub = current.hub();
            ScheduleEntry::all(&hub.config, &hub.runtime)
        },
        reloads,
        stop,
        alerts,
    )
    .await;
}

/// The loop of [`run`]: `schedules` gives the schedules to run, read again after each change of
/// `reloads`.
pub async fn run_on(
    store: Store,
    schedules: impl Fn() -> Vec<ScheduleEntry>,
    mut reloads: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    alerts: Arc<crate::alerts::Alerts>,
) {
    let started = now_ms();
    let mut slots: Vec<Slot> = Vec::new();
    let mut generation = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // The schedules of the config current now; a reload keeps what each one it keeps knew.
        let now_generation = *reloads.borrow_and_update();
        if generation != Some(now_generation) {
            generation = Some(now_generation);
            slots = resolve(schedules(), slots);
            tracing::info!(schedules = slots.len(), "scheduler running");
        }
        let now = now_ms();
        let mut wake = now + MAX_SLEEP_MS;
        for slot in &mut slots {
            if let Some(next) = slot.step(&store, now, started, &alerts).await {
                wake = wake.min(next);
            }
        }
        let wait = (wake - now_ms()).clamp(0, MAX_SLEEP_MS) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            changed = stop.changed() => if changed.is_err() { break },
            Ok(()) = reloads.changed() => {}
        }
    }
}

/// The slots of `entries`: an entry that was there before (same tenant and name, same cron and
/// job) keeps the last tick its slot knew; a changed or new one reads it from the store.
fn resolve(entries: Vec<ScheduleEntry>, mut old: Vec<Slot>) -> Vec<Slot> {
    entries
        .into_iter()
        .map(|entry| {
            let kept = old
                .iter()
                .position(|s| {
                    s.entry.tenant == entry.tenant
                        && s.entry.name == entry.name
                        && s.entry.cron.source() == entry.cron.source()
                })
                .map(|i| old.swap_remove(i));
            Slot {
                last: kept.and_then(|s| s.last),
                entry,
            }
        })
        .collect()
}

/// A schedule and the last tick this process knows it queued (`None` until read).
struct Slot {
    entry: ScheduleEntry,
    last: Option<i64>,
}

impl Slot {
    /// Claims what is due; returns when this schedule next needs the loop.
    async fn step(
        &mut self,
        store: &Store,
        now: i64,
        started: i64,
        alerts: &crate::alerts::Alerts,
    ) -> Option<i64> {
        let e = &self.entry;
        let skipping = crate::alerts::Cause::schedule_skipping(&e.tenant, &e.name);
        let last = match self.last {
            Some(last) => last,
            None => match store.schedule_start(&e.tenant, &e.name, now).await {
                Ok(last) => *self.last.insert(last),
                Err(err) => {
                    tracing::error!(tenant = %e.tenant, schedule = %e.name, "cannot read schedule state: {err}");
                    return Some(now + RETRY_MS);
                }
            },
        };
        let (tick_ms, run) = match e.plan(last, now, started) {
            Plan::Never => return None,
            Plan::Wait { next_ms } => return Some(next_ms),
            Plan::Skip { tick_ms } => (tick_ms, None),
            Plan::Run { tick_ms, coalesced } => {
                if coalesced {
                    tracing::info!(tenant = %e.tenant, schedule = %e.name,
                        "several ticks since {} are due; running once for {}",
                        local(e.tz, last), local(e.tz, tick_ms));
                }
                let task = Task::Job {
                    name: e.job.clone(),
                    input: e.input.clone(),
                };
                (tick_ms, Some((e.connector.clone(), task)))
            }
        };
        let claim = TickClaim {
            tenant: e.tenant.clone(),
            name: e.name.clone(),
            expected_ms: last,
            tick_ms,
            run,
        };
        let tick = local(e.tz, tick_ms);
        match store.claim_tick(claim).await {
            Ok(TickOutcome::Queued(job)) => {
                tracing::info!(tenant = %e.tenant, schedule = %e.name, %tick, job, "scheduled job queued");
                self.last = Some(tick_ms);
                alerts.clear(&skipping);
            }
            Ok(TickOutcome::Overlap(previous)) => {
                tracing::warn!(tenant = %e.tenant, schedule = %e.name, %tick, previous,
                    "tick skipped: the previous run is still queued or running");
                self.last = Some(tick_ms);
                alerts.raise(
                    skipping,
                    format!("{}'s schedule `{}` skips ticks", e.tenant, e.name),
                    format!("the run queued as job {previous} is still queued or running"),
                );
            }
            Ok(TickOutcome::Advanced) => {
                tracing::info!(tenant = %e.tenant, schedule = %e.name, %tick,
                    "ticks missed while the hub was down are skipped (missed = \"skip\")");
                self.last = Some(tick_ms);
            }
            Ok(TickOutcome::Lost { current_ms }) => {
                tracing::debug!(tenant = %e.tenant, schedule = %e.name, %tick,
                    "tick claimed by another hub process");
                self.last = Some(current_ms);
            }
            Err(err) => {
                tracing::error!(tenant = %e.tenant, schedule = %e.name, %tick, "cannot claim tick: {err}");
                return Some(now + RETRY_MS);
            }
        }
        let last = self.last.unwrap_or(tick_ms);
        next_tick(&e.cron, e.tz, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(expr: &str) -> cron::Schedule {
        expr.parse().unwrap()
    }

    #[test]
    fn next_tick_is_strictly_after_the_last() {
        let every2 = cron("*/2 * * * * *");
        let t0 = ms("2024-05-01T12:00:00Z");
        assert_eq!(next_tick(&every2, Tz::UTC, t0), Some(t0 + 2_000));
        assert_eq!(next_tick(&every2, Tz::UTC, t0 + 500), Some(t0 + 2_000));
        assert_eq!(next_tick(&every2, Tz::UTC, t0 + 1_999), Some(t0 + 2_000));
        assert_eq!(next_tick(&every2, Tz::UTC, t0 - 1), Some(t0));
        assert_eq!(latest_tick(&every2, Tz::UTC, t0), Some(t0));
        assert_eq!(latest_tick(&every2, Tz::UTC, t0 + 1_999), Some(t0));
        assert_eq!(latest_tick(&every2, Tz::UTC, t0 - 1), Some(t0 - 2_000));
        assert_eq!(
            next_tick(&cron("0 0 0 1 1 * 2020"), Tz::UTC, t0),
            None,
            "no tick after a past year"
        );
    }

    #[test]
    fn ticks_follow_the_tenant_time_zone_and_its_daylight_saving_time() {
        let nine = cron("0 0 9 * * *");
        let berlin = chrono_tz::Europe::Berlin;
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            next_tick(&nine, berlin, ms("2024-01-15T00:00:00Z")),
            Some(ms("2024-01-15T08:00:00Z"))
        );
        assert_eq!(
            next_tick(&nine, berlin, ms("2024-07-15T00:00:00Z")),
            Some(ms("2024-07-15T07:00:00Z"))
        );
        // New York: 02:30 does not exist on 2024-03-10; the next 02:30 is the day after.
        let two_thirty = cron("0 30 2 * * *");
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            next_tick(&two_thirty, ny, ms("2024-03-10T05:00:00Z")),
            Some(ms("2024-03-11T06:30:00Z"))
        );
        // 2024-11-03 01:00-02:00 happens twice in New York; from inside the second pass (EST),
        // the next half hour is later in real time, never back in the first pass (EDT).
        let half_hourly = cron("0 */30 * * * *");
        let in_repeat = ms("2024-11-03T06:10:00Z"); // 01:10 EST
        assert_eq!(
            next_tick(&half_hourly, ny, in_repeat),
            Some(ms("2024-11-03T06:30:00Z"))
        );
        let mut t = ms("2024-11-03T04:00:00Z"); // 00:00 EDT
        for _ in 0..12 {
            let next = next_tick(&half_hourly, ny, t).unwrap();
            assert!(next > t);
            t = next;
        }
    }

    #[test]
    fn missed_ticks_run_once_or_are_skipped_and_due_ticks_run() {
        let every3 = cron("*/3 * * * * *");
        let t0 = ms("2024-05-01T12:00:00Z");
        let plan_at = |missed, now, started| plan(&every3, Tz::UTC, missed, t0, now, started);
        // Nothing due yet.
        assert_eq!(
            plan_at(Missed::RunOnce, t0 + 2_000, t0),
            Plan::Wait {
                next_ms: t0 + 3_000
            }
        );
        // Down from t0 to t0+10.5 s: ticks at 3, 6 and 9 s were missed; one run for the latest.
        let started = t0 + 10_500;
        assert_eq!(
            plan_at(Missed::RunOnce, started, started),
            Plan::Run {
                tick_ms: t0 + 9_000,
                coalesced: true
            }
        );
        assert_eq!(
            plan_at(Missed::Skip, started, started),
            Plan::Skip {
                tick_ms: t0 + 9_000
            }
        );
        // A tick due after start is never "missed", whatever the policy.
        assert_eq!(
            plan_at(Missed::Skip, t0 + 3_010, t0 + 1_000),
            Plan::Run {
                tick_ms: t0 + 3_000,
                coalesced: false
            }
        );
        // Due while running but late (a stall): still one run, for the latest tick.
        assert_eq!(
            plan_at(Missed::Skip, t0 + 7_000, t0 - 60_000),
            Plan::Run {
                tick_ms: t0 + 6_000,
                coalesced: true
            }
        );
    }

    #[tokio::test]
    async fn the_loop_queues_a_job_per_tick_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = ScheduleEntry {
            tenant: "t1".parse().unwrap(),
            name: "every-second".into(),
            connector: "c1".parse().unwrap(),
            job: "tick".into(),
            input: "{}".into(),
            cron: cron("* * * * * *"),
            tz: Tz::UTC,
            missed: Missed::RunOnce,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (_reload_tx, reloads) = watch::channel(0);
        let task = tokio::spawn(run_on(
            store.clone(),
            move || vec![entry.clone()],
            reloads,
            stop_rx,
            Arc::default(),
        ));
        let first = loop {
            let jobs = store.claim(1, 60_000).await.unwrap();
            if let Some(job) = jobs.into_iter().next() {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            first
                .idempotency_key
                .starts_with("schedule:t1:every-second:")
        );
        assert_eq!(
            first.task,
            Task::Job {
                name: "tick".into(),
                input: "{}".into()
            }
        );
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the loop stops on shutdown")
            .unwrap();
    }
}

#[cfg(test)]
mod defaults {
    use super::*;
    use crate::config::Config;

    /// A connector's declared schedule runs for each tenant that uses it, in the tenant's zone,
    /// unless the tenant schedules the same job itself.
    #[test]
    fn declared_schedules_run_for_each_tenant_unless_its_own_replaces_them() {
        let toml = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://hooks.example.com/"
[connectors.calcom]
builtin = true
[tenants.alpha]
timezone = "Europe/Paris"
[tenants.alpha.connectors.calcom]
[tenants.beta.connectors.calcom]
[connectors.gcal]
builtin = true
default_schedules = false
[tenants.beta.connectors.gcal]
[[tenants.beta.schedules]]
name = "often"
cron = "0 */2 * * * *"
connector = "calcom"
job = "reconcile_bookings"
"#;
        let config = Config::from_str(toml, std::path::Path::new("/tmp/hub.toml")).unwrap();
        let runtime = crate::state::load_runtime(&config).unwrap();
        let all = ScheduleEntry::all(&config, &runtime);
        let of = |t: &str| -> Vec<(String, String, String)> {
            all.iter()
                .filter(|e| e.tenant.as_str() == t)
                .map(|e| (e.name.clone(), e.job.clone(), e.cron.source().to_string()))
                .collect()
        };
        assert_eq!(
            of("alpha"),
            [(
                "calcom:reconcile_bookings".to_string(),
                "reconcile_bookings".to_string(),
                "0 */10 * * * *".to_string()
            )]
        );
        let alpha = all.iter().find(|e| e.tenant.as_str() == "alpha").unwrap();
        assert_eq!(alpha.tz, chrono_tz::Europe::Paris);
        assert_eq!(
            of("beta"),
            [(
                "often".to_string(),
                "reconcile_bookings".to_string(),
                "0 */2 * * * *".to_string()
            )],
            "the tenant's own replaces the default"
        );
    }
}
