//! Tenants: the status of every tenant x connector (last delivery and success, the last 24 hours'
//! failures as a strip, queue depth, dead letters, credentials set or missing, schedules with
//! their last and next run), a tenant's analytics (charts, figures, CSV), its records (a call
//! reads as a call) and its events.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use minijinja::Value;
use serde::{Deserialize, Serialize};

use super::chart::{Bar, stacked, strip};
use super::urls;
use super::{Page, PageError, Viewer, render, renders, visible_tenant};

use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};
use crate::scheduler::{ScheduleEntry, next_tick};
use crate::state::Hub;
use crate::store::{Analytics, EventRow, JobState, RecordFilter, RecordRow, since_day, window};

const HOUR_MS: i64 = 3_600_000;
/// Queued and running jobs counted at most (a larger backlog shows as "10000+").
const QUEUE_CAP: i64 = 10_000;

#[derive(Serialize)]
struct Status {
    tenant: String,
    name: String,
    connector: String,
    last_received_ms: Option<i64>,
    last_done_ms: Option<i64>,
    received_24h: i64,
    failed_24h: i64,
    strip: Value,
    queued: i64,
    /// Whether `queued` reached the count's cap (the backlog is larger).
    queued_more: bool,
    dead: i64,
    credentials: Vec<(String, &'static str)>,
}

#[derive(Serialize)]
struct ScheduleView {
    tenant: String,
    name: String,
    connector: String,
    job: String,
    cron: String,
    last_ms: Option<i64>,
    next_ms: Option<i64>,
}

/// `GET /console/tenants`.
pub(super) async fn status(State(hub): State<Arc<Hub>>, viewer: Viewer) -> Page {
    let now = now_ms();
    let first_hour = now / HOUR_MS - 23;
    let activity = hub.store.activity(first_hour * HOUR_MS).await?;
    let last = hub.store.last_activity().await?;
    let counts = hub.store.queue_counts(QUEUE_CAP).await?;
    let mut rows = Vec::new();
    let mut schedules = Vec::new();
    for (tenant, t) in hub.directory.tenants() {
        if !viewer.principal.sees(tenant) {
            continue;
        }
        for connector in t.connectors.keys() {
            let mine =
                |a: &&crate::store::ActivityHour| &a.tenant == tenant && &a.connector == connector;
            let mut hours = vec![(0, 0); 24];
            for a in activity.iter().filter(mine) {
                if let Some(slot) = usize::try_from(a.hour - first_hour)
                    .ok()
                    .and_then(|i| hours.get_mut(i))
                {
                    *slot = (a.received, a.failed);
                }
            }
            let (last_received_ms, last_done_ms) = last
                .iter()
                .find(|(t, c, ..)| t == tenant && c == connector)
                .map_or((None, None), |(_, _, r, d)| (*r, *d));
            let count = |states: &[JobState]| {
                counts
                    .iter()
                    .filter(|c| {
                        &c.tenant == tenant
                            && &c.connector == connector
                            && states.contains(&c.state)
                    })
                    .map(|c| c.count)
                    .sum::<i64>()
            };
            rows.push(Status {
                tenant: tenant.to_string(),
                name: t.name.clone(),
                connector: connector.to_string(),
                last_received_ms,
                last_done_ms,
                received_24h: hours.iter().map(|h| h.0).sum(),
                failed_24h: hours.iter().map(|h| h.1).sum(),
                strip: Value::from_safe_string(strip(&hours)),
                queued: count(&[JobState::Queued, JobState::Running]),
                queued_more: count(&[JobState::Queued, JobState::Running]) >= QUEUE_CAP,
                dead: count(&[JobState::Dead]),
                credentials: credentials(&hub, tenant, connector),
            });
        }
        schedules.extend(schedule_views(&hub, tenant, now).await?);
    }
    render(&viewer, &TenantsPage { rows, schedules })
}

/// `tenants.html`: each tenant's connectors with their last day, and its schedules.
#[derive(Serialize)]
struct TenantsPage {
    rows: Vec<Status>,
    schedules: Vec<ScheduleView>,
}
renders!(TenantsPage = "tenants.html");

/// Each credential the connector declares, and whether the tenant has it: `set`, `default`
/// (the connector's global value), `missing` (required) or `unset` (optional). Never a value.
fn credentials(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Vec<(String, &'static str)> {
    let Some(loaded) = hub.runtime.connector(connector.as_str()) else {
        return Vec::new();
    };
    loaded
        .manifest
        .credentials
        .iter()
        .map(|c| {
            let own = hub.vault.at(&crate::secrets::Place::Tenant {
                tenant: tenant.to_string(),
                connector: connector.to_string(),
                field: c.name.clone(),
            });
            let state = match (
                own.is_some(),
                hub.vault.get(tenant, connector, &c.name).is_some(),
            ) {
                (true, _) => "set",
                (false, true) => "default",
                (false, false) if c.required => "missing",
                (false, false) => "unset",
            };
            (c.name.clone(), state)
        })
        .collect()
}

async fn schedule_views(
    hub: &Hub,
    tenant: &TenantId,
    now: i64,
) -> Result<Vec<ScheduleView>, PageError> {
    let entries: Vec<ScheduleEntry> = ScheduleEntry::all(&hub.config, &hub.runtime)
        .into_iter()
        .filter(|e| &e.tenant == tenant)
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let runs: BTreeMap<String, i64> = hub
        .store
        .schedule_runs(tenant.clone())
        .await?
        .into_iter()
        .map(|(name, tick, _)| (name, tick))
        .collect();
    Ok(entries
        .into_iter()
        .map(|e| ScheduleView {
            tenant: tenant.to_string(),
            last_ms: runs.get(&e.name).copied(),
            next_ms: next_tick(&e.cron, e.tz, now),
            cron: e.cron.source().to_string(),
            name: e.name,
            connector: e.connector.to_string(),
            job: e.job,
        })
        .collect())
}

#[derive(Deserialize)]
pub(super) struct DaysQuery {
    days: Option<u32>,
}

/// `GET /console/tenants/{t}`: the tenant's analytics and links.
pub(super) async fn overview(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<DaysQuery>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let a = hub.store.analytics(tenant.clone(), since_day(days)).await?;
    let days_list = window(days);
    let calls_chart = stacked(
        "Calls per day",
        &["answered", "not answered"],
        &days_list
            .iter()
            .map(|d| {
                let day = a.calls.iter().find(|c| &c.day == d);
                Bar {
                    label: d.clone(),
                    parts: vec![
                        day.map_or(0.0, |c| c.answered as f64),
                        day.map_or(0.0, |c| c.unanswered as f64),
                    ],
                }
            })
            .collect::<Vec<_>>(),
    );
    let emails_chart = stacked(
        "Emails per day",
        &["delivered", "bounced", "complained"],
        &days_list
            .iter()
            .map(|d| {
                let day = a.emails.iter().find(|c| &c.day == d);
                Bar {
                    label: d.clone(),
                    parts: vec![
                        day.map_or(0.0, |c| c.delivered as f64),
                        day.map_or(0.0, |c| c.bounced as f64),
                        day.map_or(0.0, |c| c.complained as f64),
                    ],
                }
            })
            .collect::<Vec<_>>(),
    );
    let totals = totals(&a);
    let name = hub
        .directory
        .tenant(tenant.as_str())
        .map(|(_, t)| t.name.clone())
        .unwrap_or_default();
    let tests = if viewer.principal.may_manage(&tenant) {
        crate::simulate::routes(&hub, &tenant)
    } else {
        Vec::new()
    };
    let tools = tool_views(&hub, &tenant);
    let base = hub.public_base.trim_end_matches('/');
    let uses_retell = hub
        .directory
        .tenant_config(&tenant, &"retell".parse().expect("a valid id"))
        .is_some();
    render(
        &viewer,
        &TenantPage {
            tenant: tenant.to_string(),
            name,
            days,
            a,
            totals,
            tests,
            tools,
            mcp_url: format!("{base}/mcp/{tenant}"),
            retell_url: uses_retell.then(|| format!("{base}/hooks/{tenant}/retell/tools")),
            calls_chart: Value::from_safe_string(calls_chart),
            emails_chart: Value::from_safe_string(emails_chart),
        },
    )
}

/// `tenant.html`: a tenant's analytics with their charts, and the test webhooks it may send.
#[derive(Serialize)]
struct TenantPage {
    tenant: String,
    name: String,
    days: u32,
    a: Analytics,
    totals: Totals,
    tests: Vec<(String, String)>,
    /// The tenant's agent tools, and where agents call them.
    tools: Vec<ToolView>,
    mcp_url: String,
    retell_url: Option<String>,
    /// Server-rendered SVG, safe as it is.
    calls_chart: Value,
    emails_chart: Value,
}
renders!(TenantPage = "tenant.html");

/// One of the tenant's agent tools, as the tenant page lists it.
#[derive(Serialize)]
struct ToolView {
    name: String,
    description: String,
    does: String,
    args: String,
}

fn tool_views(hub: &Hub, tenant: &crate::id::TenantId) -> Vec<ToolView> {
    use crate::config::tools::ToolDoes;
    let Some(config) = hub.config.tenants.get(tenant) else {
        return Vec::new();
    };
    config
        .tools
        .iter()
        .map(|(name, tool)| ToolView {
            name: name.clone(),
            description: tool.description.clone(),
            does: match &tool.does {
                ToolDoes::Find { kind, by, .. } => format!("finds a {kind} by {by}"),
                ToolDoes::Act { action, .. } => format!("runs {action}"),
            },
            args: tool
                .args
                .iter()
                .map(|a| {
                    if a.required {
                        a.name.clone()
                    } else {
                        format!("{} (optional)", a.name)
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

/// The window's totals, as the overview shows them.
#[derive(Serialize, Default)]
struct Totals {
    calls: i64,
    inbound: i64,
    outbound: i64,
    answered: i64,
    unanswered: i64,
    avg_duration_s: Option<f64>,
    success_rate: Option<f64>,
    positive: i64,
    neutral: i64,
    negative: i64,
    emails: i64,
    delivered: i64,
    bounced: i64,
    complained: i64,
    messages: i64,
    messages_delivered: i64,
    messages_failed: i64,
}

fn totals(a: &Analytics) -> Totals {
    let mut t = Totals::default();
    let (mut seconds, mut timed, mut analyzed, mut successful) = (0.0, 0_i64, 0, 0);
    for c in &a.calls {
        t.calls += c.calls;
        t.inbound += c.inbound;
        t.outbound += c.outbound;
        t.answered += c.answered;
        t.unanswered += c.unanswered;
        t.positive += c.positive;
        t.neutral += c.neutral;
        t.negative += c.negative;
        analyzed += c.analyzed;
        successful += c.successful;
        if let Some(avg) = c.avg_duration_s {
            seconds += avg * c.calls as f64;
            timed += c.calls;
        }
    }
    t.avg_duration_s = (timed > 0).then(|| seconds / timed as f64);
    t.success_rate = (analyzed > 0).then(|| successful as f64 / analyzed as f64);
    for e in &a.emails {
        t.emails += e.emails;
        t.delivered += e.delivered;
        t.bounced += e.bounced;
        t.complained += e.complained;
    }
    for m in &a.messages {
        t.messages += m.messages;
        t.messages_delivered += m.delivered;
        t.messages_failed += m.failed;
    }
    t
}

/// `GET /console/tenants/{t}/analytics.csv`: one row per day.
pub(super) async fn analytics_csv(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<DaysQuery>,
) -> Result<axum::response::Response, PageError> {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    let days = q.days.unwrap_or(30);
    let a = hub.store.analytics(tenant.clone(), since_day(days)).await?;
    let csv = a.csv(&window(days));
    let disposition = format!("attachment; filename=\"{tenant}-analytics.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct RecordsQuery {
    kind: Option<String>,
    before: Option<i64>,
}

/// `GET /console/tenants/{t}/records`.
pub(super) async fn records(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<RecordsQuery>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    let kinds = hub.store.record_kinds(tenant.clone()).await?;
    let kind = q.kind.filter(|k| !k.is_empty());
    let mut rows = hub
        .store
        .records(
            tenant.clone(),
            RecordFilter {
                kind: kind.clone(),
                lookup: None,
                before: q.before,
                limit: 51,
            },
        )
        .await?;
    let more = rows.len() > 50;
    rows.truncate(50);
    let next = more
        .then(|| rows.last().map(|r| r.seq))
        .flatten()
        .map(|seq| {
            let mut qs = form_urlencoded::Serializer::new(String::new());
            if let Some(k) = &kind {
                qs.append_pair("kind", k);
            }
            qs.append_pair("before", &seq.to_string());
            format!(
                "{}?{}",
                urls::link(urls::RECORDS, &[tenant.as_str()]),
                qs.finish()
            )
        });
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let summary = summary(&r.kind, &r.data);
            RecordLine {
                kind: r.kind,
                key: r.key,
                updated_at_ms: r.updated_at_ms,
                lookups: r.lookups,
                summary,
            }
        })
        .collect();
    render(
        &viewer,
        &RecordsPage {
            tenant: tenant.to_string(),
            kinds,
            kind,
            rows,
            next,
        },
    )
}

/// A line that says what a record is, for the list.
fn summary(kind: &str, data: &serde_json::Value) -> String {
    let s = |k: &str| data.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match kind {
        "call" => format!(
            "{} {} → {} · {}",
            s("direction"),
            s("from_number"),
            s("to_number"),
            s("call_status")
        ),
        "email" => format!("{} · {}", s("subject"), s("status")),
        "message" => format!("{} → {} · {}", s("from"), s("to"), s("status")),
        _ => {
            let text = data.to_string();
            text.chars().take(120).collect()
        }
    }
}

/// `GET /console/tenants/{t}/records/{kind}/{key}`: a record; a call reads as a call.
pub(super) async fn record(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path((tenant, kind, key)): Path<(String, String, String)>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    let Some(r) = hub
        .store
        .record(tenant.clone(), kind.clone(), key.clone())
        .await?
    else {
        return Err(PageError::not_found(format_args!("record {kind}/{key}")));
    };
    let call = (r.kind == "call").then(|| call_view(&r.data));
    render(
        &viewer,
        &RecordPage {
            tenant: tenant.to_string(),
            r,
            call,
        },
    )
}

/// `records.html`: a page of a tenant's records, each with a one-line summary.
#[derive(Serialize)]
struct RecordsPage {
    tenant: String,
    kinds: Vec<String>,
    kind: Option<String>,
    rows: Vec<RecordLine>,
    next: Option<String>,
}
renders!(RecordsPage = "records.html");

/// One record in the list: its identity, when it changed, how it is found, and a summary.
#[derive(Serialize)]
struct RecordLine {
    kind: String,
    key: String,
    updated_at_ms: i64,
    lookups: Vec<String>,
    summary: String,
}

/// `record.html`: one record; a call reads as a call (transcript, analysis, recording).
#[derive(Serialize)]
struct RecordPage {
    tenant: String,
    r: RecordRow,
    call: Option<CallView>,
}
renders!(RecordPage = "record.html");

/// A call as people read one: who called whom, when, how long, what was said and what the
/// analysis concluded. A recording link is kept only when it is an http(s) URL.
#[derive(Serialize)]
struct CallView {
    direction: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    start_ms: Option<i64>,
    duration_s: Option<i64>,
    agent: Option<String>,
    summary: Option<String>,
    sentiment: Option<String>,
    successful: Option<bool>,
    voicemail: Option<bool>,
    disconnection: Option<String>,
    recording: Option<String>,
    turns: Vec<Turn>,
}

/// One turn of a transcript: who spoke (`agent`, `user`), and what.
#[derive(Serialize)]
struct Turn {
    role: String,
    text: String,
}

fn call_view(d: &serde_json::Value) -> CallView {
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let analysis = d.get("call_analysis");
    let turns: Vec<Turn> = match d.get("transcript_object").and_then(|t| t.as_array()) {
        Some(turns) => turns
            .iter()
            .map(|t| Turn {
                role: s(t.get("role")).unwrap_or_default(),
                text: s(t.get("content")).unwrap_or_default(),
            })
            .collect(),
        None => s(d.get("transcript"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.split_once(": ") {
                Some((role, text)) => Turn {
                    role: role.to_lowercase(),
                    text: text.to_string(),
                },
                None => Turn {
                    role: String::new(),
                    text: l.to_string(),
                },
            })
            .collect(),
    };
    let recording =
        s(d.get("recording_url")).filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    CallView {
        direction: s(d.get("direction")),
        from: s(d.get("from_number")),
        to: s(d.get("to_number")),
        status: s(d.get("call_status")),
        start_ms: d.get("start_timestamp").and_then(|v| v.as_i64()),
        duration_s: d
            .get("duration_ms")
            .and_then(|v| v.as_i64())
            .map(|ms| ms / 1000),
        agent: s(d.get("agent_id")),
        summary: s(analysis.and_then(|a| a.get("call_summary"))),
        sentiment: s(analysis.and_then(|a| a.get("user_sentiment"))),
        successful: analysis
            .and_then(|a| a.get("call_successful"))
            .and_then(|v| v.as_bool()),
        voicemail: analysis
            .and_then(|a| a.get("in_voicemail"))
            .and_then(|v| v.as_bool()),
        disconnection: s(d.get("disconnection_reason")),
        recording,
        turns,
    }
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    before: Option<i64>,
}

/// `GET /console/tenants/{t}/events`.
pub(super) async fn events(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    let mut rows = hub.store.events(tenant.clone(), q.before, 51).await?;
    let more = rows.len() > 50;
    rows.truncate(50);
    let next = more.then(|| rows.last().map(|r| r.id)).flatten().map(|id| {
        format!(
            "{}?before={id}",
            urls::link(urls::EVENTS, &[tenant.as_str()])
        )
    });
    render(
        &viewer,
        &EventsPage {
            tenant: tenant.to_string(),
            rows,
            next,
        },
    )
}

/// `events.html`: a page of the events a tenant's connectors published.
#[derive(Serialize)]
struct EventsPage {
    tenant: String,
    rows: Vec<EventRow>,
    next: Option<String>,
}
renders!(EventsPage = "events.html");
