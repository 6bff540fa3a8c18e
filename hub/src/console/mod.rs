//! The operator console at `/console`: server-rendered pages (minijinja, auto-escaped) over the
//! same store the API reads, plain links and forms that work without JavaScript, and one small
//! script of our own (`assets/console.js`) for the live tail and copy buttons. Assets are
//! embedded in the binary; every answer carries a strict Content-Security-Policy.
//!
//! Who sees what is the API's rule ([`Principal`]): the admin token opens every tenant, a
//! tenant's token opens a console of that tenant alone, read-only unless its scope allows
//! replay. Every non-GET request must come from the console's own pages (`Sec-Fetch-Site:
//! same-origin`, or an `Origin` equal to the hub's own).
//!
//! # Layout
//! - `session`: logins, sessions, one-time form nonces, login rate limit.
//! - `view`: the template environment and how values are shown (times, JSON, bidi controls).
//! - `log`: the deliveries log, a delivery, its replay, the live tail.
//! - `jobs`: jobs, dead letters and bulk replay.
//! - `tenants`: tenants x connectors status, a tenant's analytics, records and events.
//! - `credentials`: which credentials are set, and a write-only form that seals and reloads;
//!   the tenant's connected accounts, with a *Connect* button (the consent flow).
//! - `chart`: server-rendered SVG charts.
//! - `urls`: every console URL, once: the router's patterns and the links pages build.

mod audit;
mod chart;
mod config;
mod credentials;
mod jobs;
mod log;
pub mod session;
mod tenants;
pub mod urls;
mod view;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use crate::auth::Principal;

use crate::id::TenantId;
use crate::ingress::rejected::Refusals;
use crate::reload::{Current, Shared};
use crate::state::Hub;
use session::{LoginRefused, Sessions};

pub use view::Views;

/// What the console keeps across reloads: its sessions, templates and bulk operations.
#[derive(Default)]
pub struct Console {
    /// Open sessions and failed logins.
    pub sessions: Sessions,
    views: Views,
    operations: jobs::Operations,
}

/// The console's router state: the hub current at each request, and what outlives a reload
/// (the console's own state, and the refused webhook requests it lists), made once by
/// `server::router_of`.
#[derive(Clone)]
pub struct Web {
    shared: Shared,
    console: Arc<Console>,
    refusals: Arc<Refusals>,
}

impl FromRef<Web> for Arc<Hub> {
    fn from_ref(web: &Web) -> Arc<Hub> {
        web.shared.0.hub()
    }
}

impl FromRef<Web> for Arc<Current> {
    fn from_ref(web: &Web) -> Arc<Current> {
        web.shared.0.clone()
    }
}

impl FromRef<Web> for Arc<Console> {
    fn from_ref(web: &Web) -> Arc<Console> {
        web.console.clone()
    }
}

impl FromRef<Web> for Arc<Refusals> {
    fn from_ref(web: &Web) -> Arc<Refusals> {
        web.refusals.clone()
    }
}

/// The console's routes, under `/console`.
pub fn router(shared: Shared, console: Arc<Console>, refusals: Arc<Refusals>) -> Router<Shared> {
    let pages = Router::new()
        .route(
            "/",
            get(|| async { Redirect::to(&urls::link(urls::DELIVERIES, &[])) }),
        )
        .route(urls::LOGIN, get(login_page).post(login))
        .route(urls::LOGOUT, post(logout))
        .route(urls::DELIVERIES, get(log::list))
        .route(urls::DELIVERY, get(log::detail))
        .route(urls::REPLAY_DELIVERY, post(log::replay))
        .route(urls::REJECTED, get(log::rejected))
        .route(urls::JOBS, get(jobs::list))
        .route(urls::DEAD, get(jobs::dead))
        .route(urls::REPLAY_DEAD, post(jobs::replay_dead))
        .route(urls::OPERATION, get(jobs::operation))
        .route(urls::TENANTS, get(tenants::status))
        .route(urls::TENANT, get(tenants::overview))
        .route(urls::ANALYTICS_CSV, get(tenants::analytics_csv))
        .route(urls::TEST_WEBHOOK, post(log::send_test))
        .route(urls::RECORDS, get(tenants::records))
        .route(urls::RECORD, get(tenants::record))
        .route(urls::EVENTS, get(tenants::events))
        .route(
            urls::CREDENTIALS,
            get(credentials::page).post(credentials::set),
        )
        .route(urls::TEST_CREDENTIALS, post(credentials::test))
        .route(urls::CONNECT, post(credentials::connect))
        .route(urls::DISCONNECT, post(credentials::disconnect))
        .route(urls::ASSET, get(view::asset))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ));
    // The live tail stays open as long as the page does: no request limit.
    Router::new()
        .merge(pages)
        .route(urls::TAIL, get(log::tail))
        .route(urls::CONFIG, get(config::page))
        .route(urls::AUDIT, get(audit::page))
        .route(urls::CONFIG_ROLLBACK, post(config::rollback))
        // An unknown page is a page too: the error page, with the headers below.
        .fallback(|| async { PageError::not_found("this page") })
        .method_not_allowed_fallback(|| async {
            PageError(
                StatusCode::METHOD_NOT_ALLOWED,
                "this page does not take that method".into(),
            )
        })
        .layer(middleware::from_fn(same_origin_writes))
        .layer(middleware::from_fn(headers))
        .with_state(Web {
            shared,
            console,
            refusals,
        })
}

/// The security headers of every console answer.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Refuses a write (any method but GET and HEAD) that a browser says came from another site, or
/// that says nothing about where it came from.
async fn same_origin_writes(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    if !same_origin(req.headers()) {
        return PageError::forbidden("refused: this form was not sent from the console's own page")
            .into_response();
    }
    next.run(req).await
}

fn same_origin(h: &HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (h.get(header::ORIGIN), h.get(header::HOST)) else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host)
}

/// The logged-in viewer of a page; a request without a live session is sent to the login page.
pub struct Viewer {
    /// Who logged in.
    pub principal: Principal,
    session: String,
    console: Arc<Console>,
    /// The open alerts this viewer may see (a tenant: its own), for the banner.
    alerts: Vec<crate::alerts::Open>,
}

impl Viewer {
    /// A one-time nonce for a form on this viewer's page.
    fn nonce(&self) -> String {
        self.console.sessions.nonce(&self.session)
    }

    /// Spends a form's nonce; false when it was spent before (a double submit) or is unknown.
    fn spend(&self, nonce: &str) -> bool {
        self.console.sessions.spend(&self.session, nonce)
    }

    /// The one tenant this viewer is limited to, if any.
    fn own_tenant(&self) -> Option<&TenantId> {
        match &self.principal {
            Principal::Admin => None,
            Principal::Tenant { tenant, .. } => Some(tenant),
        }
    }

    /// What templates know of the viewer.
    fn context(&self) -> ViewerContext {
        ViewerContext {
            admin: matches!(self.principal, Principal::Admin),
            tenant: self.own_tenant().map(|t| t.to_string()),
            may_replay: self.principal.may_replay(),
            alerts: self
                .alerts
                .iter()
                .map(|a| AlertLine {
                    text: a.text.clone(),
                    detail: a.detail.clone(),
                    since_ms: a.since_ms,
                    count: a.count,
                })
                .collect(),
        }
    }
}

/// One open alert as the banner shows it.
#[derive(serde::Serialize)]
struct AlertLine {
    text: String,
    detail: String,
    since_ms: i64,
    count: u64,
}

/// What every page's template knows of its viewer (`viewer.admin`, ...).
#[derive(serde::Serialize)]
struct ViewerContext {
    admin: bool,
    tenant: Option<String>,
    may_replay: bool,
    alerts: Vec<AlertLine>,
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    /// The session's viewer; a session whose token the current config no longer has (a reload
    /// removed it) is closed here.
    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Viewer, Response> {
        let hub = web.shared.0.hub();
        let console = &web.console;
        let id = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie(h, session::COOKIE))
            .map(str::to_string);
        let to_login = || Redirect::to(&urls::link(urls::LOGIN, &[])).into_response();
        let id = id.ok_or_else(to_login)?;
        let session = console.sessions.get(&id).ok_or_else(to_login)?;
        if !hub.tokens.knows(&session.principal) {
            console.sessions.close(&id);
            return Err(to_login());
        }
        let alerts = hub
            .alerts
            .open()
            .into_iter()
            .filter(|a| match (&session.principal, &a.cause.tenant) {
                (Principal::Admin, _) => true,
                (principal, Some(t)) => hub
                    .directory
                    .tenant(t)
                    .is_some_and(|(id, _)| principal.sees(id)),
                (_, None) => false,
            })
            .collect();
        Ok(Viewer {
            principal: session.principal,
            session: id,
            console: console.clone(),
            alerts,
        })
    }
}

/// A page that could not be shown: its status and why, as a page.
pub(crate) struct PageError(StatusCode, String);

impl PageError {
    fn not_found(what: impl std::fmt::Display) -> PageError {
        PageError(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    fn bad(why: impl Into<String>) -> PageError {
        PageError(StatusCode::BAD_REQUEST, why.into())
    }
    fn forbidden(why: impl Into<String>) -> PageError {
        PageError(StatusCode::FORBIDDEN, why.into())
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> PageError {
        tracing::error!("console: {e}");
        PageError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the database failed; see the hub's log".into(),
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = view::render_error(self.0, &self.1);
        (self.0, axum::response::Html(body)).into_response()
    }
}

/// A rendered page, or why not.
type Page = Result<Response, PageError>;

/// `done.html`: what a form did, and where to go back to.
#[derive(serde::Serialize)]
struct DonePage {
    title: &'static str,
    message: String,
    back: String,
}
renders!(DonePage = "done.html");

/// A page's context: the fields its template reads, named and typed, and which template that
/// is. Each page of the console has one (`DeliveriesPage`, `RecordPage`...), next to its handler.
trait View: serde::Serialize {
    /// The template that renders it.
    const TEMPLATE: &'static str;
}

/// Implements [`View`] for a context struct: `renders!(DeliveriesPage = "deliveries.html");`.
macro_rules! renders {
    ($page:ident = $template:literal) => {
        impl crate::console::View for $page {
            const TEMPLATE: &'static str = $template;
        }
    };
    ($page:ident<$lt:lifetime> = $template:literal) => {
        impl<$lt> crate::console::View for $page<$lt> {
            const TEMPLATE: &'static str = $template;
        }
    };
}
use renders;

/// Renders a page's template with its context (plus the viewer) as a 200 page.
fn render<P: View>(viewer: &Viewer, page: &P) -> Page {
    let name = P::TEMPLATE;
    let ctx = context! { viewer => viewer.context(), ..minijinja::Value::from_serialize(page) };
    match viewer.console.views.render(name, ctx) {
        Ok(html) => Ok(axum::response::Html(html).into_response()),
        Err(e) => {
            tracing::error!("console: rendering {name}: {e:#}");
            Err(PageError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this page could not be rendered; see the hub's log".into(),
            ))
        }
    }
}

/// The tenants the viewer sees and every connector: a filter form's choices.
fn choices(hub: &Hub, viewer: &Viewer) -> (Vec<String>, Vec<String>) {
    let tenants = hub
        .directory
        .tenants()
        .filter(|(id, _)| viewer.principal.sees(id))
        .map(|(id, _)| id.to_string())
        .collect();
    let connectors = hub.runtime.connectors().map(|c| c.id.to_string()).collect();
    (tenants, connectors)
}

/// The tenant a page names, if it exists and the viewer may see it: else the same 404 as a
/// tenant that does not exist.
fn visible_tenant(hub: &Hub, viewer: &Viewer, tenant: &str) -> Result<TenantId, PageError> {
    match hub.directory.tenant(tenant) {
        Some((id, _)) if viewer.principal.sees(id) => Ok(id.clone()),
        _ => Err(PageError::not_found(format_args!("tenant {tenant}"))),
    }
}

async fn login_page(State(console): State<Arc<Console>>) -> Response {
    let html = console
        .views
        .render(
            LoginPage::TEMPLATE,
            minijinja::Value::from_serialize(LoginPage { error: None }),
        )
        .unwrap_or_default();
    axum::response::Html(html).into_response()
}

/// `login.html`: the token field, and why the last try was refused.
#[derive(serde::Serialize)]
struct LoginPage {
    error: Option<String>,
}
renders!(LoginPage = "login.html");

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

fn client_ip(parts: Option<ConnectInfo<SocketAddr>>) -> IpAddr {
    parts.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip())
}

async fn login(
    State(hub): State<Arc<Hub>>,
    State(console): State<Arc<Console>>,
    from: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = client_ip(from.map(|axum::Extension(c)| c));
    let refuse = |status: StatusCode, why: String| {
        let html = console
            .views
            .render(
                LoginPage::TEMPLATE,
                minijinja::Value::from_serialize(LoginPage { error: Some(why) }),
            )
            .unwrap_or_default();
        (status, axum::response::Html(html)).into_response()
    };
    if let Err(LoginRefused::TooMany(wait)) = console.sessions.may_try(ip) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed logins from your address; try again in {} s.",
                wait.as_secs() + 1
            ),
        );
    }
    let Some(principal) = hub.tokens.find(form.token.trim()) else {
        console.sessions.failed(ip);
        crate::audit::record(
            &hub.store,
            crate::store::AuditEntry::now("unknown", "console.login_failed", "console")
                .detail("a token this hub does not accept")
                .source(ip),
        );
        tracing::info!(%ip, "console: a login with an unknown token was refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "That token is not one this hub accepts.".into(),
        );
    };
    let mut entry =
        crate::store::AuditEntry::now(principal.actor(), "console.login", "console").source(ip);
    if let Principal::Tenant { tenant, .. } = &principal {
        entry = entry.tenant(tenant);
    }
    crate::audit::record(&hub.store, entry);
    let id = console.sessions.open(principal);
    let secure = hub.public_base.starts_with("https://");
    let mut res = Redirect::to(&urls::link(urls::DELIVERIES, &[])).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(Some(&id), secure)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn logout(State(hub): State<Arc<Hub>>, viewer: Viewer) -> Response {
    viewer.console.sessions.close(&viewer.session);
    let secure = hub.public_base.starts_with("https://");
    let mut res = Redirect::to(&urls::link(urls::LOGIN, &[])).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(None, secure)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests;
