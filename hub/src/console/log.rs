//! The deliveries log: `/console/deliveries` (filters in the URL, keyset pages that do not shift
//! as rows arrive), one delivery with what its handling did, its replay, and the live tail
//! (`/console/tail`, Server-Sent Events of new rows, as JSON the script turns into text nodes).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::urls;
use super::{DonePage, Page, PageError, Viewer, render, renders};
use crate::clock::now_ms;
use crate::state::Hub;
use crate::store::{
    DeliveryFilter, DeliveryRow, DeliveryState, EventRow, JobDetail, RecordRow, Replay,
};

/// Rows per page of the log.
const PAGE: usize = 50;

/// The log's filters, as the URL carries them.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(super) struct LogQuery {
    #[serde(default, skip_serializing_if = "is_blank")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    connector: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    route: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    event: Option<String>,
    /// A delivery id or an identity.
    #[serde(default, skip_serializing_if = "is_blank")]
    q: Option<String>,
    /// Text inside the payload.
    #[serde(default, skip_serializing_if = "is_blank")]
    contains: Option<String>,
    /// `1h`, `24h`, `7d`, `30d`: the last so long.
    #[serde(default, skip_serializing_if = "is_blank")]
    range: Option<String>,
    /// From (UTC, `YYYY-MM-DDTHH:MM`).
    #[serde(default, skip_serializing_if = "is_blank")]
    since: Option<String>,
    /// Until (UTC, `YYYY-MM-DDTHH:MM`).
    #[serde(default, skip_serializing_if = "is_blank")]
    until: Option<String>,
    /// The page: rows older than this id.
    #[serde(default, skip_serializing)]
    before: Option<i64>,
    /// The tail: rows newer than this id.
    #[serde(default, skip_serializing)]
    after: Option<i64>,
}

fn is_blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A `YYYY-MM-DDTHH:MM[:SS]` UTC time as ms.
fn parse_time(text: &str, field: &str) -> Result<i64, PageError> {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| PageError::bad(format!("`{field}` must be a time like 2026-12-01T09:30")))?;
    Ok(t.and_utc().timestamp_millis())
}

impl LogQuery {
    /// The store filter this query means for `viewer`; `None` when it asks for a tenant the
    /// viewer does not see (an empty log).
    fn filter(&self, viewer: &Viewer, limit: usize) -> Result<Option<DeliveryFilter>, PageError> {
        let asked = match given(&self.tenant) {
            Some(t) => Some(
                t.parse()
                    .map_err(|_| PageError::bad(format!("no tenant can be called `{t}`")))?,
            ),
            None => None,
        };
        let Some(tenant) = viewer.principal.limit(asked) else {
            return Ok(None);
        };
        let connector = match given(&self.connector) {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| PageError::bad(format!("no connector can be called `{c}`")))?,
            ),
            None => None,
        };
        let state = match given(&self.state) {
            Some(s) => Some(s.parse().map_err(|_| {
                PageError::bad(format!(
                    "`{s}` is not a state: received, processing, done, ignored, retrying or dead"
                ))
            })?),
            None => None,
        };
        let now = now_ms();
        let since_ms = match (given(&self.since), given(&self.range)) {
            (Some(t), _) => Some(parse_time(&t, "since")?),
            (None, Some(r)) => Some(
                now - match r.as_str() {
                    "1h" => 3_600_000,
                    "24h" => 86_400_000,
                    "7d" => 7 * 86_400_000,
                    "30d" => 30 * 86_400_000,
                    _ => return Err(PageError::bad("`range` is one of 1h, 24h, 7d, 30d")),
                },
            ),
            (None, None) => None,
        };
        let until_ms = given(&self.until)
            .map(|t| parse_time(&t, "until"))
            .transpose()?;
        Ok(Some(DeliveryFilter {
            tenant,
            connector,
            state,
            route: given(&self.route),
            event: given(&self.event),
            search: given(&self.q),
            contains: given(&self.contains),
            since_ms,
            until_ms,
            before: self.before,
            limit,
        }))
    }

    /// The query string of these filters (without a page).
    fn query_string(&self) -> String {
        serde_urlencoded_pairs(self)
    }
}

/// `a=1&b=2` of a serializable struct's set fields.
fn serde_urlencoded_pairs(q: &LogQuery) -> String {
    let value = serde_json::to_value(q).unwrap_or_default();
    let mut out = form_urlencoded::Serializer::new(String::new());
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                out.append_pair(k, s);
            }
        }
    }
    out.finish()
}

/// `GET /console/deliveries`.
pub(super) async fn list(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Query(q): Query<LogQuery>,
) -> Page {
    let rows = match q.filter(&viewer, PAGE + 1)? {
        Some(filter) => hub.store.deliveries(filter).await?,
        None => Vec::new(),
    };
    let mut rows = rows;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let filters = q.query_string();
    let next = more.then(|| rows.last().map(|r| r.id)).flatten().map(|id| {
        let sep = if filters.is_empty() { "" } else { "&" };
        format!(
            "{}?{filters}{sep}before={id}",
            urls::link(urls::DELIVERIES, &[])
        )
    });
    let (tenants, connectors) = super::choices(&hub, &viewer);
    render(
        &viewer,
        &DeliveriesPage {
            first_page: q.before.is_none(),
            top: rows.first().map(|r| r.id).unwrap_or(0),
            rows,
            q,
            filters,
            next,
            tenants,
            connectors,
            states: DeliveryState::ALL.map(|s| s.as_str()),
        },
    )
}

/// `deliveries.html`: a page of the log, its filters, and where the live tail starts.
#[derive(Serialize)]
struct DeliveriesPage {
    rows: Vec<DeliveryRow>,
    q: LogQuery,
    filters: String,
    next: Option<String>,
    first_page: bool,
    top: i64,
    tenants: Vec<String>,
    connectors: Vec<String>,
    states: [&'static str; 6],
}
renders!(DeliveriesPage = "deliveries.html");

/// `GET /console/deliveries/{id}`.
pub(super) async fn detail(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Page {
    let detail = hub.store.delivery_detail(id).await?;
    let Some(detail) = detail.filter(|d| viewer.principal.sees(&d.delivery.tenant)) else {
        return Err(PageError::not_found(format_args!("delivery {id}")));
    };
    let tenant = detail.delivery.tenant.clone();
    let job_ids: Vec<i64> = detail.jobs.iter().map(|j| j.job.id).collect();
    let job_keys: Vec<String> = detail
        .jobs
        .iter()
        .map(|j| j.idempotency_key.clone())
        .collect();
    let records = hub.store.records_of_jobs(tenant.clone(), job_ids).await?;
    let events = hub.store.events_of_jobs(tenant, job_keys).await?;
    let curl = curl(&detail.delivery);
    let nonce = viewer.principal.may_replay().then(|| viewer.nonce());
    render(
        &viewer,
        &DeliveryPage {
            d: detail.delivery,
            pruned_at_ms: detail.pruned_at_ms,
            jobs: detail.jobs,
            records,
            events,
            curl,
            nonce,
        },
    )
}

/// `delivery.html`: one delivery whole, its jobs, what they wrote and published, and the
/// replay form (with its nonce) when the viewer may replay.
#[derive(Serialize)]
struct DeliveryPage {
    d: DeliveryRow,
    pruned_at_ms: Option<i64>,
    jobs: Vec<JobDetail>,
    records: Vec<RecordRow>,
    events: Vec<EventRow>,
    curl: String,
    nonce: Option<String>,
}
renders!(DeliveryPage = "delivery.html");

/// The delivery as a `curl` command that sends it again (to the same URL, with its stored
/// headers: secrets were removed before it was stored, so a signed route refuses it).
fn curl(d: &DeliveryRow) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!("curl -X POST {}", quote(&d.url));
    for (name, value) in d.headers.iter().flatten() {
        if matches!(name.as_str(), "host" | "content-length") {
            continue;
        }
        cmd.push_str(&format!(" \\\n  -H {}", quote(&format!("{name}: {value}"))));
    }
    if let Some(body) = &d.body {
        cmd.push_str(&format!(" \\\n  --data-binary {}", quote(body)));
    }
    cmd
}

#[derive(Deserialize)]
pub(super) struct NonceForm {
    nonce: String,
}

/// `POST /console/deliveries/{id}/replay`: once per form (a double click replays once).
pub(super) async fn replay(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<NonceForm>,
) -> Page {
    if !viewer.principal.may_replay() {
        return Err(PageError::forbidden(
            "this token may read, not replay (its scope is `read`)",
        ));
    }
    let found = hub.store.delivery(id).await?;
    if !found.is_some_and(|d| viewer.principal.sees(&d.tenant)) {
        return Err(PageError::not_found(format_args!("delivery {id}")));
    }
    let back = urls::link(urls::DELIVERY, &[&id.to_string()]);
    if !viewer.spend(&form.nonce) {
        return render(
            &viewer,
            &DonePage {
                title: "Already replayed",
                message: "This form was sent before (a second click, or a page from before): nothing more was queued.".into(),
                back,
            },
        );
    }
    let message = match hub.store.replay(Replay::Delivery(id)).await? {
        Some(r) if r.queued > 0 => {
            tracing::info!(delivery = id, "console: delivery replayed");
            format!("Delivery {id} is queued again; its handling runs as if it had just arrived.")
        }
        Some(r) if r.pruned > 0 => {
            format!("Delivery {id} cannot be replayed: retention removed its payload.")
        }
        _ => format!("Delivery {id} is still being handled; nothing was queued."),
    };
    render(
        &viewer,
        &DonePage {
            title: "Replay",
            message,
            back,
        },
    )
}

/// One row of the tail, as the script shows it.
#[derive(Serialize)]
struct TailRow<'a> {
    id: i64,
    received: String,
    tenant: &'a str,
    connector: &'a str,
    route: std::borrow::Cow<'a, str>,
    event: Option<std::borrow::Cow<'a, str>>,
    identity: std::borrow::Cow<'a, str>,
    state: &'a str,
}

/// `GET /console/tail`: the log's new rows (matching the page's filters) as they arrive.
pub(super) async fn tail(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Query(q): Query<LogQuery>,
) -> Result<Response, PageError> {
    let Some(mut filter) = q.filter(&viewer, PAGE)? else {
        return Err(PageError::not_found("tenant"));
    };
    filter.before = None;
    let after = q.after.unwrap_or(0);
    let stream = tail_stream(hub, filter, after);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn tail_stream(
    hub: Arc<Hub>,
    filter: DeliveryFilter,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (hub, filter, after),
        |(hub, filter, mut after)| async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let rows = match hub.store.deliveries(filter.clone()).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!("console tail: {e}");
                        continue;
                    }
                };
                let new: Vec<&DeliveryRow> = rows.iter().rev().filter(|r| r.id > after).collect();
                if new.is_empty() {
                    continue;
                }
                after = new.last().map_or(after, |r| r.id);
                let rows: Vec<TailRow<'_>> = new
                    .iter()
                    .map(|r| TailRow {
                        id: r.id,
                        received: super::view::time_text(r.received_at_ms),
                        tenant: r.tenant.as_str(),
                        connector: r.connector.as_str(),
                        // The rule the server-rendered rows follow (`view::visible`).
                        route: super::view::visible(&r.route),
                        event: r.event.as_deref().map(super::view::visible),
                        identity: super::view::visible(&r.identity),
                        state: r.state.as_str(),
                    })
                    .collect();
                let event = Event::default()
                    .event("rows")
                    .id(after.to_string())
                    .json_data(&rows)
                    .unwrap_or_default();
                return Some((Ok(event), (hub, filter, after)));
            }
        },
    )
}

#[derive(Deserialize)]
pub(super) struct RejectedQuery {
    cause: Option<String>,
}

/// `GET /console/rejected`: the last refused webhook requests (a tenant's own paths only, for a
/// tenant token). An unknown path says whether the tenant exists: the operator may know, the
/// provider was told only "not found".
pub(super) async fn rejected(
    State(hub): State<Arc<Hub>>,
    State(refusals): State<Arc<crate::ingress::rejected::Refusals>>,
    viewer: Viewer,
    Query(q): Query<RejectedQuery>,
) -> Page {
    let cause = q.cause.filter(|c| !c.is_empty());
    let own = viewer.own_tenant().map(|t| t.to_string());
    let rows: Vec<_> = refusals
        .newest(500, |r| {
            own.as_ref().is_none_or(|t| *t == r.tenant)
                && cause.as_ref().is_none_or(|c| c == r.cause)
        })
        .into_iter()
        .map(|r| {
            let cause_text = match r.cause {
                "not_found" if hub.directory.tenant(&r.tenant).is_none() && r.tenant != "_" => {
                    "unknown tenant"
                }
                "not_found" => "unknown connector or route",
                "signature" => "bad signature",
                "too_large" => "too large",
                "rate_limited" => "rate limited",
                "bad_request" => "unreadable body",
                "method" => "wrong method",
                "unavailable" => "store unavailable",
                _ => "refused by the connector",
            };
            RejectedRow {
                refusal: r,
                cause_text,
            }
        })
        .collect();
    render(
        &viewer,
        &RejectedPage {
            rows,
            cause,
            kept: crate::ingress::rejected::KEPT,
            causes: [
                "signature",
                "too_large",
                "not_found",
                "rate_limited",
                "bad_request",
                "method",
                "unavailable",
                "reply",
            ],
        },
    )
}

/// `rejected.html`: the last refused webhook requests, each with why in words, and the causes
/// to filter by.
#[derive(Serialize)]
struct RejectedPage {
    rows: Vec<RejectedRow>,
    cause: Option<String>,
    kept: usize,
    causes: [&'static str; 8],
}
renders!(RejectedPage = "rejected.html");

/// One refused request, and why in words.
#[derive(Serialize)]
struct RejectedRow {
    #[serde(flatten)]
    refusal: crate::ingress::rejected::Refusal,
    cause_text: &'static str,
}

#[derive(Deserialize)]
pub(super) struct TestForm {
    connector: String,
    #[serde(default)]
    route: String,
    /// Sign it wrong, for a negative test.
    #[serde(default)]
    forge: Option<String>,
}

/// `POST /console/tenants/{t}/test-webhook`: builds the route's example request, signs it with
/// the tenant's credential ([`crate::simulate`]), posts it to the hub itself and shows the answer.
pub(super) async fn send_test(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<TestForm>,
) -> Page {
    let tenant = super::visible_tenant(&hub, &viewer, &tenant)?;
    if !viewer.principal.may_manage(&tenant) {
        return Err(PageError::forbidden(
            "this token may not send test webhooks (that takes the admin token, or a tenant token with the `manage` scope)",
        ));
    }
    let connector: crate::id::ConnectorId = form
        .connector
        .parse()
        .map_err(|_| PageError::bad(format!("no connector can be called `{}`", form.connector)))?;
    let test = crate::simulate::build(&hub, &tenant, &connector, &form.route, form.forge.is_some())
        .map_err(|e| PageError::bad(e.to_string()))?;
    let mut addr = hub.config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{}", test.path))
        .timeout(Duration::from_secs(15))
        .body(test.body.clone());
    for (k, v) in &test.headers {
        request = request.header(k, v);
    }
    let (status, answer) = match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, format!("the hub did not answer at {addr}: {e}")),
    };
    let delivery = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["id"].as_i64());
    tracing::info!(tenant = %tenant, connector = %connector, route = %form.route, status, "console: test webhook sent");
    render(
        &viewer,
        &TestPage {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            route: form.route.clone(),
            forged: form.forge.is_some(),
            status,
            answer,
            delivery,
            path: test.path,
        },
    )
}

/// `test.html`: the test webhook sent, where, and what the hub answered.
#[derive(Serialize)]
struct TestPage {
    tenant: String,
    connector: String,
    route: String,
    forged: bool,
    status: u16,
    answer: String,
    delivery: Option<i64>,
    path: String,
}
renders!(TestPage = "test.html");

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::HeaderMap;

    use super::curl;
    use crate::config::id;
    use crate::store::{DeliveryRow, DeliveryState};

    type Seen = Arc<Mutex<Option<(HeaderMap, Vec<u8>)>>>;

    /// "Copy as curl", pasted into a shell, sends the stored request again: the same body
    /// byte for byte and the same headers, quotes and newlines in them included.
    #[tokio::test]
    async fn copy_as_curl_run_by_a_shell_sends_the_same_request() {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/hooks/acme/retell",
                axum::routing::post(
                    |axum::extract::State(seen): axum::extract::State<Seen>,
                     headers: HeaderMap,
                     body: axum::body::Bytes| async move {
                        *seen.lock().unwrap() = Some((headers, body.to_vec()));
                        "ok"
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/acme/retell?note=it's",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let body =
            "{\"call\":{\"transcript\":\"Agent: it's 5 o'clock.\\nUser: $(rm -rf /) `id`\"}}\n";
        let row = DeliveryRow {
            id: 1,
            tenant: id("acme"),
            connector: id("retell"),
            route: String::new(),
            event: Some("call_ended".into()),
            identity: "call_1".into(),
            state: DeliveryState::Done,
            attempts: 1,
            last_error: None,
            ignored_reason: None,
            received_at_ms: 0,
            processed_at_ms: None,
            duration_us: None,
            url,
            headers: Some(vec![
                ("host".into(), "hooks.example.com".into()),
                ("content-type".into(), "application/json".into()),
                ("x-note".into(), "O'Brien; $HOME".into()),
            ]),
            body: Some(body.into()),
            test: false,
        };
        let command = curl(&row);
        let run = tokio::process::Command::new("sh")
            .args(["-c", &format!("{command} --silent --show-error")])
            .output()
            .await
            .unwrap();
        assert!(
            run.status.success(),
            "{command}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (headers, got) = seen.lock().unwrap().take().expect("the request arrived");
        assert_eq!(String::from_utf8(got).unwrap(), body);
        assert_eq!(headers["x-note"], "O'Brien; $HOME");
        assert_eq!(headers["content-type"], "application/json");
    }
}
