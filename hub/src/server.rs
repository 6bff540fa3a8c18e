//! Wiring: the [`router`] of every HTTP surface, and [`run`], which starts the workers, the
//! scheduler and retention on a built [`Hub`], serves until shutdown, then drains.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::console::Console;
use crate::ingress::rejected::Refusals;
use crate::reload::{Current, Shared};
use crate::state::Hub;
use crate::{admin, console, ingress, mcp, retention, scheduler, worker};

/// The HTTP surface of a hub that never reloads (tests, benchmarks): see [`router_of`].
pub fn router(hub: Arc<Hub>) -> Router {
    router_of(Current::new(hub, None))
}

/// The HTTP surface: the webhook routes, health and metrics, the admin API, the tenants' MCP
/// servers and the console, each request served by the hub current when it arrives.
pub fn router_of(current: Arc<Current>) -> Router {
    let (public, admin) = surfaces(current, false);
    public.merge(admin)
}

/// The surfaces split by audience: the providers' (the webhook routes and health) and the
/// operator's and apps' (`/api/v1`, `/console`, `/metrics`, `/mcp`). With `apart`, each answers
/// 404 for the other's paths, to be served on two listeners (`server.admin_listen`); without,
/// they are merged into one router (`router_of`). Each is masked and traced the same way.
pub fn surfaces(current: Arc<Current>, apart: bool) -> (Router, Router) {
    let shared = Shared(current.clone());
    let body_limit = current.hub().config.server.body_limit as usize;
    // What outlives a reload: the refused requests the console lists, and its sessions.
    let refusals = Arc::new(Refusals::default());
    let console = Arc::new(Console::default());
    let health = Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz));
    let webhooks = ingress::router(shared.clone(), body_limit, refusals.clone())
        // The consent flow's pages: opened by the client business's users, at `public_url`.
        .merge(crate::connections::consent::router())
        .merge(health.clone())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // The API's long-polls wait up to a minute for a change: it has its own, longer limit.
    let api = admin::api(shared.clone());
    // Agents' MCP clients: the tenants' tools.
    let mcp = Router::new()
        .route("/mcp/{tenant}", axum::routing::any(mcp::serve))
        .with_state((
            shared.clone(),
            mcp::service(&current.hub().config.server.public_url),
        ));
    let mut operators = Router::new()
        .route(
            "/metrics",
            get(admin::metrics).layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            )),
        )
        .merge(mcp)
        .nest("/api/v1", api)
        .nest(
            "/console",
            console::router(shared.clone(), console, refusals),
        );
    if apart {
        operators = operators.merge(health);
    }
    let finish = |router: Router<Shared>| {
        router
            // Every answer of every surface, errors and streams included, masked in one place.
            .layer(axum::middleware::from_fn_with_state(shared.clone(), masked))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                tracing::debug_span!("http", method = %req.method(), path = %loggable_path(req.uri().path()))
            }))
            .with_state(shared.clone())
    };
    (finish(webhooks), finish(operators))
}

/// An answer with every sealed value's plaintext masked (`secrets::redact`): a finite body
/// whole, a stream (the live tail, the change feed's events) event by event, each of which the
/// server writes as one frame. Static assets are ours and pass as they are.
async fn masked(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::body::Body;
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use futures::StreamExt as _;

    let answer = next.run(req).await;
    let redactor = hub.redactor.clone();
    let kind = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if redactor.is_empty() || kind.starts_with("image/") {
        return answer;
    }
    let streamed = kind.starts_with("text/event-stream");
    let (mut parts, body) = answer.into_parts();
    if streamed {
        let frames = body.into_data_stream().map(move |frame| {
            frame.map(|bytes| match redactor.redact_bytes(&bytes) {
                std::borrow::Cow::Borrowed(_) => bytes,
                std::borrow::Cow::Owned(masked) => bytes::Bytes::from(masked),
            })
        });
        return axum::response::Response::from_parts(parts, Body::from_stream(frames));
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!("an answer's body failed while it was read: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let bytes = match redactor.redact_bytes(&bytes) {
        std::borrow::Cow::Borrowed(_) => bytes,
        std::borrow::Cow::Owned(masked) => {
            parts.headers.remove(CONTENT_LENGTH);
            bytes::Bytes::from(masked)
        }
    };
    axum::response::Response::from_parts(parts, Body::from(bytes))
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
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // The client's address, for the console's login limit.
                let app = tower::ServiceExt::map_request(app.clone(), move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(remote));
                    req
                });
                let service = TowerToHyperService::new(app);
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

/// Serves a hub that never reloads: see [`run_current`].
///
/// # Errors
/// When the server fails.
pub async fn run(
    hub: Arc<Hub>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_current(Current::new(hub, None), listener, None, shutdown).await
}

/// Serves until `shutdown` resolves, then stops taking requests, lets workers finish what they
/// hold, and returns. Requests, jobs and schedules follow `current` across reloads.
///
/// # Errors
/// When the server fails.
pub async fn run_current(
    current: Arc<Current>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let hub = current.hub();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(worker::run(current.clone(), stop_rx.clone()));
    let scheduler = tokio::spawn(scheduler::run(current.clone(), stop_rx.clone()));
    let alerts = tokio::spawn(crate::alerts::run(current.clone(), stop_rx.clone()));
    let follow = {
        let (current, stop) = (current.clone(), stop_rx.clone());
        tokio::spawn(async move { current.follow(stop).await })
    };
    let (days, audit_days) = (
        hub.config.server.retention_days,
        hub.config.server.audit_retention_days,
    );
    let retention = tokio::spawn(retention::run(hub.store.clone(), days, audit_days, stop_rx));
    let metrics = hub.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.upkeep();
        }
    });
    drop(hub);
    match admin_listener {
        None => {
            let app = router_of(current);
            tracing::info!(addr = %listener.local_addr()?, "hub listening");
            serve(listener, app, shutdown).await;
        }
        Some(admin_listener) => {
            let (public, operators) = surfaces(current, true);
            tracing::info!(addr = %listener.local_addr()?, "hub listening (webhooks)");
            tracing::info!(addr = %admin_listener.local_addr()?, "hub listening (API, console, metrics, MCP)");
            let (stop, stopping) = tokio::sync::watch::channel(false);
            let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let admin = tokio::spawn(serve(admin_listener, operators, until(stopping.clone())));
            let signal = tokio::spawn(async move {
                shutdown.await;
                let _ = stop.send(true);
            });
            serve(listener, public, until(stopping)).await;
            let _ = admin.await;
            signal.abort();
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), workers).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), scheduler).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), retention).await;
    upkeep.abort();
    alerts.abort();
    follow.abort();
    Ok(())
}
