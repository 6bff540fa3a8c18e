//! The hub's shared state, [`Hub`]: one struct of cheap handles (config, store, runtime, vault,
//! the tenant [`Directory`], the rate [`Limiter`], metrics, the API's tokens), built once by [`build`] and handed
//! to every surface (`ingress`, `admin`, `worker`) as `Arc<Hub>`. Nothing here serves requests:
//! `server` wires these into the router and the background loops.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::ApiTokens;
use crate::config::{Config, ConnectorSource, Origin};
use crate::id::{ConnectorId, TenantId};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::runtime::{ConfigMap, PoolSize, Runtime, Services, Settings, outbound};
use crate::secrets::Vault;
use crate::secrets::redact::Redactor;
use crate::store::Store;

/// Connectors bundled in the binary.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

    /// Where this build put every guest it built, the connectors and the test fixtures
    /// (`probe.wasm`...): for the tests and the benchmark, which load fixtures from it.
    pub const GUEST_WASM_DIR: &str = env!("HUB_GUEST_WASM_DIR");
}

/// One tenant as the hub serves it.
pub struct Tenant {
    /// Display name.
    pub name: String,
    /// Each connector the tenant uses, with the tenant's config for it.
    pub connectors: BTreeMap<ConnectorId, ConfigMap>,
}

/// The tenants, resolved once from the config; the one place a tenant id from a URL becomes a
/// [`TenantId`].
#[derive(Default)]
pub struct Directory {
    tenants: BTreeMap<TenantId, Tenant>,
}

impl Directory {
    /// The directory of `config`'s tenants.
    pub fn from_config(config: &Config) -> Directory {
        let tenants = config
            .tenants
            .iter()
            .map(|(id, tenant)| {
                let connectors = tenant
                    .connectors
                    .iter()
                    .map(|(cid, tc)| (cid.clone(), Arc::new(tc.config.clone())))
                    .collect();
                let entry = Tenant {
                    name: tenant.name.clone(),
                    connectors,
                };
                (id.clone(), entry)
            })
            .collect();
        Directory { tenants }
    }

    /// The tenant with this id, if there is one.
    pub fn tenant(&self, id: &str) -> Option<(&TenantId, &Tenant)> {
        self.tenants.get_key_value(id)
    }

    /// Every tenant, in id order.
    pub fn tenants(&self) -> impl Iterator<Item = (&TenantId, &Tenant)> {
        self.tenants.iter()
    }

    /// The tenant's config for a connector, if the tenant uses that connector.
    pub fn tenant_config(&self, tenant: &TenantId, connector: &ConnectorId) -> Option<ConfigMap> {
        self.tenants.get(tenant)?.connectors.get(connector).cloned()
    }
}

/// Per-tenant token buckets (tenant-less routes share one bucket per connector).
pub struct Limiter(DefaultKeyedRateLimiter<String>);

impl Limiter {
    /// `per_second` tokens a second, up to `burst` at once, per key.
    pub fn new(per_second: u32, burst: u32) -> Limiter {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ))
    }

    /// `Err(wait)` when the key is over its rate.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.0.check_key(&key.to_string()).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }
}

/// The hub's shared state: cheap handles, built once.
pub struct Hub {
    /// The validated config.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// The sandbox.
    pub runtime: Runtime,
    /// Opened credentials.
    pub vault: Arc<Vault>,
    /// Masks every opened value wherever text leaves the hub.
    pub redactor: Arc<Redactor>,
    /// The tenants and their connector configs.
    pub directory: Directory,
    /// Per-tenant rate limits.
    pub limiter: Limiter,
    /// Counters (kept across reloads).
    pub metrics: Arc<Metrics>,
    /// Public base URL without a trailing slash.
    pub public_base: String,
    /// The tokens `/api/v1` accepts (admin and tenants'), as digests.
    pub tokens: ApiTokens,
    /// Sends webhooks to the tenants' apps.
    pub outbox: Outbox,
    /// The OAuth2 tokens the host holds for connectors.
    pub connections: Arc<crate::connections::Connections>,
    /// Operational alerts (outlive reloads).
    pub alerts: Arc<crate::alerts::Alerts>,
}

impl Hub {
    /// The connectors `tenant` uses, each as loaded (empty for an unknown tenant).
    pub fn tenant_connectors(
        &self,
        tenant: &TenantId,
    ) -> Vec<(&ConnectorId, &Arc<crate::runtime::Loaded>)> {
        let Some((_, t)) = self.directory.tenant(tenant.as_str()) else {
            return Vec::new();
        };
        t.connectors
            .keys()
            .filter_map(|c| Some((c, self.runtime.connector(c.as_str())?)))
            .collect()
    }
}

/// The component bytes for a connector.
///
/// # Errors
/// When a built-in does not exist or a file cannot be read.
pub fn connector_bytes(id: &ConnectorId, source: &ConnectorSource) -> anyhow::Result<Vec<u8>> {
    match source {
        ConnectorSource::Builtin => builtin::BUILTIN
            .iter()
            .find(|(name, _)| *name == id.as_str())
            .map(|(_, bytes)| bytes.to_vec())
            .with_context(|| {
                let names: Vec<&str> = builtin::BUILTIN.iter().map(|(n, _)| *n).collect();
                format!(
                    "no built-in connector `{id}` (built-ins: {})",
                    names.join(", ")
                )
            }),
        ConnectorSource::Path(path) => std::fs::read(path)
            .with_context(|| format!("cannot read connector `{id}` from {}", path.display())),
    }
}

/// Creates the runtime and loads every configured connector (no services attached).
///
/// # Errors
/// When a connector cannot be read, compiled or described.
pub fn load_runtime(config: &Config) -> anyhow::Result<Runtime> {
    let max_memory = config
        .connectors
        .values()
        .map(|c| c.memory_mb as usize * 1024 * 1024)
        .max()
        .unwrap_or(64 << 20);
    let pool = PoolSize {
        concurrency: (config.server.workers * 2 + 16).min(256),
        max_memory_bytes: max_memory,
    };
    let mut runtime = Runtime::new(&config.server.data_dir.join("compiled"), &pool)?;
    for (id, c) in &config.connectors {
        let bytes = connector_bytes(id, &c.source)?;
        let settings = Settings {
            memory_bytes: c.memory_mb as usize * 1024 * 1024,
            timeout: c.timeout,
            allow_hosts: c.allow_hosts.iter().map(origin_text).collect(),
            stand_ins: c
                .stand_ins
                .iter()
                .map(|(from, to)| (origin_text(from), origin_text(to)))
                .collect(),
        };
        runtime.load(id.clone(), &bytes, settings)?;
    }
    Ok(runtime)
}

fn origin_text(o: &Origin) -> String {
    o.as_url().as_str().trim_end_matches('/').to_string()
}

/// `server.public_url` without its trailing slash: what routes' URLs start with.
pub fn public_base(config: &Config) -> String {
    config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string()
}

/// Builds the hub state: store, runtime with services, directory.
///
/// # Errors
/// When the store cannot be opened or a connector cannot be loaded.
pub async fn build(config: Config, vault: Vault) -> anyhow::Result<Arc<Hub>> {
    let store = crate::database::open(&config, &vault).await?;
    let kept = Kept {
        store,
        metrics: Arc::default(),
        alerts: Arc::default(),
    };
    assemble(config, vault, kept).map(Arc::new)
}

/// A hub for an edited config (a reload): the same store and counters as `old`, everything
/// else built from `config` and `vault`.
///
/// # Errors
/// When a connector cannot be loaded or an endpoint is invalid.
pub fn rebuild(old: &Hub, config: Config, vault: Vault) -> anyhow::Result<Hub> {
    let kept = Kept {
        store: old.store.clone(),
        metrics: old.metrics.clone(),
        alerts: old.alerts.clone(),
    };
    assemble(config, vault, kept)
}

/// What outlives a reload.
struct Kept {
    store: Store,
    metrics: Arc<Metrics>,
    alerts: Arc<crate::alerts::Alerts>,
}

fn assemble(config: Config, vault: Vault, kept: Kept) -> anyhow::Result<Hub> {
    let Kept {
        store,
        metrics,
        alerts,
    } = kept;
    if let Some(a) = &config.server.alerts {
        alerts.set_window(a.window);
    }
    let tokens = ApiTokens::new(&config, &vault, &metrics);
    let outbox = Outbox::new(&config).context("the tenants' endpoints")?;
    let redactor = Arc::new(Redactor::of(&vault));
    let vault = Arc::new(vault);
    let public_base = public_base(&config);
    let config = Arc::new(config);
    let http = outbound::Client::new().context("building the HTTP client")?;
    // Tokens are sealed in the store with the master key (when the hub has one).
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let key =
        crate::secrets::MasterKey::load(env.as_deref(), config.server.master_key_file.as_deref())
            .ok()
            .map(Arc::new);
    let connections = Arc::new(
        crate::connections::Connections::new(
            store.clone(),
            http.clone(),
            vault.clone(),
            Some(config.clone()),
            key,
        )
        .with_alerts(alerts.clone()),
    );
    let runtime = load_runtime(&config)?.with_services(Services {
        store: store.clone(),
        vault: vault.clone(),
        connections: connections.clone(),
        http,
        rt: tokio::runtime::Handle::current(),
        public_base: public_base.clone(),
        phone_codes: config
            .tenants
            .iter()
            .filter_map(|(id, t)| Some((id.clone(), t.phone_country_code.clone()?)))
            .collect(),
        metrics: metrics.clone(),
    });
    let directory = Directory::from_config(&config);
    let limiter = Limiter::new(
        config.server.rate_limit.per_second,
        config.server.rate_limit.burst,
    );
    Ok(Hub {
        config,
        store,
        runtime,
        vault,
        redactor,
        directory,
        limiter,
        metrics,
        public_base,
        tokens,
        outbox,
        connections,
        alerts,
    })
}
