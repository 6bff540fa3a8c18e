//! Wiring: builds the [`Hub`] state once from a validated config, starts the workers, and serves
//! the router until shutdown, then drains.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::{Config, ConnectorSource};
use crate::metrics::Metrics;
use crate::runtime::{PoolSize, Runtime, Services, Settings, outbound};
use crate::secrets::Vault;
use crate::store::Store;
use crate::{admin, ingress, retention, scheduler, worker};

/// Connectors bundled in the binary.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

    /// Where this build put every guest it built, the connectors and the test fixtures
    /// (`probe.wasm`...): for the tests and the benchmark, which load fixtures from it.
    pub const GUEST_WASM_DIR: &str = env!("HUB_GUEST_WASM_DIR");
}

/// Tenant configs, resolved once: `(tenant, connector) -> config`.
#[derive(Default)]
pub struct Directory {
    configs: HashMap<(String, String), Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Tenant id -> (name, connector ids).
    pub tenants: Vec<(String, String, Vec<String>)>,
}

impl Directory {
    fn from_config(config: &Config) -> Directory {
        let mut d = Directory::default();
        for (tid, tenant) in &config.tenants {
            let mut connectors = Vec::new();
            for (cid, tc) in &tenant.connectors {
                d.configs.insert(
                    (tid.as_str().to_string(), cid.as_str().to_string()),
                    Arc::new(tc.config.clone()),
                );
                connectors.push(cid.as_str().to_string());
            }
            d.tenants
                .push((tid.as_str().to_string(), tenant.name.clone(), connectors));
        }
        d
    }

    /// The tenant's config for a connector, if the tenant uses that connector.
    pub fn tenant_config(
        &self,
        tenant: &str,
        connector: &str,
    ) -> Option<Arc<serde_json::Map<String, serde_json::Value>>> {
        self.configs
            .get(&(tenant.to_string(), connector.to_string()))
            .cloned()
    }
}

/// Per-tenant token buckets.
pub struct Limiter(DefaultKeyedRateLimiter<String>);

impl Limiter {
    fn new(per_second: u32, burst: u32) -> Limiter {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ))
    }

    /// `Err(wait)` when the tenant is over its rate.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        self.0.check_key(&tenant.to_string()).map_err(|not_until| {
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
    /// Tenant configs.
    pub directory: Directory,
    /// Per-tenant rate limits.
    pub limiter: Limiter,
    /// Counters.
    pub metrics: Metrics,
    /// Public base URL without a trailing slash.
    pub public_base: String,
}

/// The component bytes for a connector.
///
/// # Errors
/// When a built-in does not exist or a file cannot be read.
pub fn connector_bytes(id: &str, source: &ConnectorSource) -> anyhow::Result<Vec<u8>> {
    match source {
        ConnectorSource::Builtin => builtin::BUILTIN
            .iter()
            .find(|(name, _)| *name == id)
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
        let bytes = connector_bytes(id.as_str(), &c.source)?;
        let settings = Settings {
            memory_bytes: c.memory_mb as usize * 1024 * 1024,
            timeout: c.timeout,
            allow_hosts: c
                .allow_hosts
                .iter()
                .map(|o| o.as_url().as_str().trim_end_matches('/').to_string())
                .collect(),
            stand_ins: c
                .stand_ins
                .iter()
                .map(|(from, to)| (origin_text(from), origin_text(to)))
                .collect(),
        };
        runtime.load(id.as_str(), &bytes, settings)?;
    }
    Ok(runtime)
}

fn origin_text(o: &crate::config::Origin) -> String {
    o.as_url().as_str().trim_end_matches('/').to_string()
}

/// The HTTP surface.
pub fn router(hub: Arc<Hub>) -> Router {
    let body_limit = hub.config.server.body_limit as usize;
    // POST for webhooks; GET and DELETE reach routes that declare them (REST hooks), others 405.
    let hooks = Router::new()
        .route(
            "/hooks/{tenant}/{connector}",
            post(ingress::hook_bare)
                .get(ingress::hook_bare)
                .delete(ingress::hook_bare),
        )
        .route(
            "/hooks/{tenant}/{connector}/{route}",
            post(ingress::hook_route)
                .get(ingress::hook_route)
                .delete(ingress::hook_route),
        )
        .route(
            "/hooks/{tenant}/{connector}/{route}/{token}",
            post(ingress::hook_token)
                .get(ingress::hook_token)
                .delete(ingress::hook_token),
        )
        // A declared Content-Length over the limit is refused before the handler runs; a body
        // without one is cut off at the limit while it is read.
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            refuse_oversized,
        ));
    Router::new()
        .merge(hooks)
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .nest("/api/v1", admin::api(hub.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            tracing::debug_span!("http", method = %req.method(), path = %loggable_path(req.uri().path()))
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .with_state(hub)
}

/// Answers 413 to a request whose declared Content-Length is over the limit. A body up to
/// twice the limit is read and dropped first: a client still sending when the answer comes
/// would otherwise see its connection reset instead of the 413. A larger one is not read at all
/// (the connection is closed after the answer).
async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|n| *n > limit as u64) else {
        return next.run(req).await;
    };
    if declared <= 2 * limit as u64 {
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    }
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(serde_json::json!({
            "error": format!("the body is {declared} bytes; the limit is {limit}")
        })),
    )
        .into_response()
}

/// A request path as the log may show it: webhook paths keep tenant, connector and route, and
/// lose anything after (a path token); query strings (which may hold tokens) are never logged.
fn loggable_path(path: &str) -> String {
    if path.starts_with("/hooks/") && path.split('/').count() > 5 {
        let kept: Vec<&str> = path.split('/').take(5).collect();
        return format!("{}/***", kept.join("/"));
    }
    path.to_string()
}

/// A client must send its request headers within this time (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body and answer included, must finish within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(12);

/// Accepts connections until `shutdown`, then lets open ones finish (for at most 10 s). Unlike
/// `axum::serve`, hyper gets a timer here, so slow clients are cut off while sending headers.
async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

/// Builds the hub state: store, runtime with services, directory.
///
/// # Errors
/// When the store cannot be opened or a connector cannot be loaded.
pub fn build(config: Config, vault: Vault) -> anyhow::Result<Arc<Hub>> {
    let store = Store::open(&config.server.data_dir).context("opening the database")?;
    let vault = Arc::new(vault);
    let runtime = load_runtime(&config)?.with_services(Services {
        store: store.clone(),
        vault: vault.clone(),
        http: outbound::Client::new().context("building the HTTP client")?,
        rt: tokio::runtime::Handle::current(),
        public_base: config
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        phone_codes: config
            .tenants
            .iter()
            .filter_map(|(id, t)| Some((id.to_string(), t.phone_country_code.clone()?)))
            .collect(),
    });
    let directory = Directory::from_config(&config);
    let limiter = Limiter::new(
        config.server.rate_limit.per_second,
        config.server.rate_limit.burst,
    );
    let public_base = config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    Ok(Arc::new(Hub {
        config: Arc::new(config),
        store,
        runtime,
        vault,
        directory,
        limiter,
        metrics: Metrics::default(),
        public_base,
    }))
}

/// Serves until `shutdown` resolves, then stops taking requests, lets workers finish what they
/// hold, and returns.
///
/// # Errors
/// When the server fails.
pub async fn run(
    hub: Arc<Hub>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(worker::run(hub.clone(), stop_rx.clone()));
    let schedules = scheduler::Entry::all(&hub.config);
    let scheduler = tokio::spawn(scheduler::run(
        hub.store.clone(),
        schedules,
        stop_rx.clone(),
    ));
    let days = hub.config.server.retention_days;
    let retention = tokio::spawn(retention::run(hub.store.clone(), days, stop_rx));
    let app = router(hub.clone());
    tracing::info!(addr = %listener.local_addr()?, "hub listening");
    serve(listener, app, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), workers).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), scheduler).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), retention).await;
    Ok(())
}
