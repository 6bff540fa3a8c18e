//! The worker's concurrency limits: per connector, per (tenant, connector), the probation of a
//! (tenant, connector) whose invocations get stopped, and the yield to a webhook flood.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::id::{ConnectorId, TenantId};
use crate::state::Hub;

/// How long a (tenant, connector) runs one invocation at a time after one of its invocations
/// was stopped (time, memory, stack or host-call limit, or a panic). Each stop restarts it.
pub const PROBATION: Duration = Duration::from_secs(60);

/// Concurrency limits per connector and per (tenant, connector), and the probation of a
/// (tenant, connector) whose invocations get stopped.
pub(super) struct Limits {
    connector: HashMap<ConnectorId, Arc<Semaphore>>,
    tenant: Mutex<HashMap<(TenantId, ConnectorId), TenantLimit>>,
    per_tenant: HashMap<ConnectorId, usize>,
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
pub(super) struct Permits {
    _connector: Option<OwnedSemaphorePermit>,
    _tenant: Option<OwnedSemaphorePermit>,
    _probation: Option<OwnedSemaphorePermit>,
    _endpoint: Option<OwnedSemaphorePermit>,
}

impl Permits {
    /// A webhook to the app: it holds its endpoint's slot only (no connector runs).
    pub(super) fn endpoint(permit: OwnedSemaphorePermit) -> Permits {
        Permits {
            _connector: None,
            _tenant: None,
            _probation: None,
            _endpoint: Some(permit),
        }
    }
}

impl Limits {
    pub(super) fn new(hub: &Hub) -> Limits {
        let mut connector = HashMap::new();
        let mut per_tenant = HashMap::new();
        for (id, c) in &hub.config.connectors {
            connector.insert(id.clone(), Arc::new(Semaphore::new(c.concurrency)));
            // One tenant never holds more than half the workers, so a tenant with a backlog (or a
            // hostile one) cannot starve the others.
            let half = (hub.config.server.workers / 2).max(1);
            per_tenant.insert(id.clone(), c.tenant_concurrency.min(half));
        }
        Limits {
            connector,
            tenant: Mutex::new(HashMap::new()),
            per_tenant,
        }
    }

    /// The permits for a job, or `None` if a limit is reached.
    pub(super) fn try_acquire(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
    ) -> Option<Permits> {
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
                tracing::info!(%tenant, %connector, "probation over");
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
            _connector: Some(c),
            _tenant: Some(t),
            _probation: probation,
            _endpoint: None,
        })
    }

    /// Puts (`tenant`, `connector`) on probation for [`PROBATION`] from now: one invocation at
    /// a time. Says so in the log when it starts; whether it started (rather than lengthened).
    pub(super) fn probation(&self, tenant: &TenantId, connector: &ConnectorId, why: &str) -> bool {
        let mut map = self.tenant.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + PROBATION;
        match &mut self.entry(&mut map, tenant, connector).probation {
            Some(p) => {
                p.until = until;
                false
            }
            none => {
                tracing::warn!(
                    %tenant,
                    %connector,
                    "an invocation was stopped ({why}): one invocation at a time for the next {} s",
                    PROBATION.as_secs()
                );
                *none = Some(Probation {
                    until,
                    gate: Arc::new(Semaphore::new(1)),
                });
                true
            }
        }
    }

    /// (`tenant`, `connector`)'s limit, made on first use.
    fn entry<'m>(
        &self,
        map: &'m mut HashMap<(TenantId, ConnectorId), TenantLimit>,
        tenant: &TenantId,
        connector: &ConnectorId,
    ) -> &'m mut TenantLimit {
        let n = self.per_tenant.get(connector).copied().unwrap_or(4);
        map.entry((tenant.clone(), connector.clone()))
            .or_insert_with(|| TenantLimit {
                permits: Arc::new(Semaphore::new(n)),
                probation: None,
            })
    }
}

/// Webhook requests in flight from which the ingress counts as flooded.
pub(super) const FLOODED: i64 = 16;

/// While the ingress is flooded, the workers yield: at most a quarter of them (at least one)
/// keep running jobs, so acknowledgements get the CPU and the writer, the durable queue absorbs
/// the burst, and it still drains, more slowly, until the flood ends.
pub(super) struct Yield {
    pub(super) permits: Arc<Semaphore>,
    pub(super) workers: usize,
}

impl Yield {
    fn busy(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Whether a worker holding a slot should give it up now, with `in_flight` webhook
    /// requests being handled.
    pub(super) fn should_yield(&self, in_flight: i64) -> bool {
        in_flight >= FLOODED && self.busy() > (self.workers / 4).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn id<T: std::str::FromStr>(id: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        id.parse().unwrap()
    }

    fn limits(per_tenant: usize) -> Limits {
        Limits {
            connector: HashMap::from([(id("probe"), Arc::new(Semaphore::new(16)))]),
            tenant: Mutex::new(HashMap::new()),
            per_tenant: HashMap::from([(id("probe"), per_tenant)]),
        }
    }

    #[test]
    fn a_tenant_on_probation_runs_one_invocation_at_a_time_and_others_do_not_notice() {
        let limits = limits(4);
        let before: Vec<_> = (0..4)
            .filter_map(|_| limits.try_acquire(&id("alpha"), &id("probe")))
            .collect();
        assert_eq!(before.len(), 4, "four at a time before probation");
        drop(before);
        limits.probation(
            &id("alpha"),
            &id("probe"),
            "exceeded its time limit of 1000 ms",
        );
        let first = limits.try_acquire(&id("alpha"), &id("probe"));
        assert!(first.is_some());
        assert!(
            limits.try_acquire(&id("alpha"), &id("probe")).is_none(),
            "a second invocation while one runs on probation"
        );
        let beta: Vec<_> = (0..4)
            .filter_map(|_| limits.try_acquire(&id("beta"), &id("probe")))
            .collect();
        assert_eq!(beta.len(), 4, "another tenant keeps its four");
        drop(first);
        assert!(
            limits.try_acquire(&id("alpha"), &id("probe")).is_some(),
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
            .filter_map(|_| limits.try_acquire(&id("alpha"), &id("probe")))
            .collect();
        assert_eq!(after.len(), 4, "four at a time again after probation");
    }
}
