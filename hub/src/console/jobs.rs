//! Jobs and dead letters: `/console/jobs` (filters in the URL, keyset pages), and bulk replay of
//! dead letters by filter: a count preview, a confirmation naming that count, then the replay in
//! the background with a progress page (`/console/operations/{id}`) that refreshes itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use serde::{Deserialize, Serialize};

use super::urls;
use super::{DonePage, Page, PageError, Viewer, render, renders};
use crate::auth::Principal;

use crate::id::{ConnectorId, TenantId};
use crate::state::Hub;
use crate::store::{DeadFilter, JobDetail, JobFilter, JobState, Replayed};

const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct JobsQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    connector: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, skip_serializing)]
    before: Option<i64>,
}

fn parsed<T: std::str::FromStr>(v: &Option<String>, what: &str) -> Result<Option<T>, PageError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| PageError::bad(format!("`{s}` is not a {what}"))),
    }
}

/// The tenant a list is limited to, or `Err` (an empty list) for another tenant's.
fn tenant_limit(
    viewer: &Viewer,
    asked: &Option<String>,
) -> Result<Option<Option<TenantId>>, PageError> {
    Ok(viewer.principal.limit(parsed(asked, "tenant")?))
}

/// `GET /console/jobs`.
pub(super) async fn list(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Query(q): Query<JobsQuery>,
) -> Page {
    let mut rows = match tenant_limit(&viewer, &q.tenant)? {
        Some(tenant) => {
            hub.store
                .jobs(JobFilter {
                    tenant,
                    connector: parsed(&q.connector, "connector")?,
                    state: parsed(&q.state, "job state")?,
                    key_prefix: None,
                    key: None,
                    before: q.before,
                    limit: PAGE + 1,
                })
                .await?
        }
        None => Vec::new(),
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("tenant", &q.tenant),
        ("connector", &q.connector),
        ("state", &q.state),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            filters.append_pair(k, v);
        }
    }
    let filters = filters.finish();
    let next = more
        .then(|| rows.last().map(|r| r.job.id))
        .flatten()
        .map(|id| {
            let sep = if filters.is_empty() { "" } else { "&" };
            format!("{}?{filters}{sep}before={id}", urls::link(urls::JOBS, &[]))
        });
    render(
        &viewer,
        &JobsPage {
            rows,
            q,
            next,
            states: JobState::ALL.map(|s| s.as_str()),
        },
    )
}

/// `jobs.html`: a page of jobs and their filters.
#[derive(Serialize)]
struct JobsPage {
    rows: Vec<JobDetail>,
    q: JobsQuery,
    next: Option<String>,
    states: [&'static str; 4],
}
renders!(JobsPage = "jobs.html");

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeadQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    connector: Option<String>,
}

impl DeadQuery {
    fn filter(&self, viewer: &Viewer) -> Result<Option<DeadFilter>, PageError> {
        let Some(tenant) = tenant_limit(viewer, &self.tenant)? else {
            return Ok(None);
        };
        Ok(Some(DeadFilter {
            tenant,
            connector: parsed::<ConnectorId>(&self.connector, "connector")?,
            since_ms: None,
            until_ms: None,
        }))
    }
}

/// `GET /console/dead`: how many dead letters a filter holds, and the form that replays them.
pub(super) async fn dead(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Query(q): Query<DeadQuery>,
) -> Page {
    let count = match q.filter(&viewer)? {
        Some(f) => hub.store.count_dead(f).await?,
        None => 0,
    };
    let nonce = viewer.principal.may_replay().then(|| viewer.nonce());
    let (tenants, connectors) = super::choices(&hub, &viewer);
    render(
        &viewer,
        &DeadPage {
            count,
            nonce,
            tenants,
            connectors,
            tenant: q.tenant,
            connector: q.connector,
        },
    )
}

/// `dead.html`: how many dead letters a filter holds, and the form that replays them.
#[derive(Serialize)]
struct DeadPage {
    count: i64,
    nonce: Option<String>,
    tenants: Vec<String>,
    connectors: Vec<String>,
    tenant: Option<String>,
    connector: Option<String>,
}
renders!(DeadPage = "dead.html");

#[derive(Deserialize)]
pub(super) struct ReplayDeadForm {
    nonce: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    connector: Option<String>,
    /// The count the operator confirmed.
    confirm: i64,
}

/// A bulk replay running in the background.
pub struct Operation {
    owner: Principal,
    expected: i64,
    progress: Mutex<Replayed>,
    done: AtomicBool,
    error: Mutex<Option<String>>,
}

/// Bulk replays started from the console, by id (kept until the hub restarts; the last 100).
#[derive(Default)]
pub struct Operations {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Arc<Operation>>>,
}

/// `POST /console/dead/replay`: starts the replay the operator confirmed, then shows its progress.
pub(super) async fn replay_dead(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Form(form): Form<ReplayDeadForm>,
) -> Page {
    if !viewer.principal.may_replay() {
        return Err(PageError::forbidden(
            "this token may read, not replay (its scope is `read`)",
        ));
    }
    let q = DeadQuery {
        tenant: form.tenant.clone(),
        connector: form.connector.clone(),
    };
    let Some(filter) = q.filter(&viewer)? else {
        return Err(PageError::not_found("tenant"));
    };
    if !viewer.spend(&form.nonce) {
        return render(
            &viewer,
            &DonePage {
                title: "Already started",
                message:
                    "This form was sent before: the replay it asked for is already running or done."
                        .into(),
                back: urls::link(urls::DEAD, &[]),
            },
        );
    }
    let count = hub.store.count_dead(filter.clone()).await?;
    if count != form.confirm {
        tracing::info!(
            confirmed = form.confirm,
            now = count,
            "console: bulk replay count changed"
        );
    }
    let ops = &viewer.console.operations;
    let id = ops.next.fetch_add(1, Ordering::Relaxed) + 1;
    let op = Arc::new(Operation {
        owner: viewer.principal.clone(),
        expected: count,
        progress: Mutex::new(Replayed::default()),
        done: AtomicBool::new(false),
        error: Mutex::new(None),
    });
    {
        let mut running = ops.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.len() >= 100 {
            let oldest = running.keys().min().copied();
            if let Some(k) = oldest {
                running.remove(&k);
            }
        }
        running.insert(id, op.clone());
    }
    tracing::info!(
        operation = id,
        dead = count,
        "console: bulk replay of dead letters started"
    );
    let store = hub.store.clone();
    tokio::spawn(async move {
        let watched = op.clone();
        let result = store
            .replay_dead(filter, move |p| {
                *watched.progress.lock().unwrap_or_else(|e| e.into_inner()) = p;
            })
            .await;
        if let Err(e) = result {
            *op.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
        op.done.store(true, Ordering::Release);
    });
    Ok(Redirect::to(&urls::link(urls::OPERATION, &[&id.to_string()])).into_response())
}

/// `GET /console/operations/{id}`: a bulk replay's progress.
pub(super) async fn operation(viewer: Viewer, Path(id): Path<u64>) -> Page {
    let op = {
        let running = viewer
            .console
            .operations
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.get(&id).cloned()
    };
    let Some(op) = op.filter(|op| op.owner == viewer.principal || viewer.own_tenant().is_none())
    else {
        return Err(PageError::not_found(format_args!("operation {id}")));
    };
    let progress = *op.progress.lock().unwrap_or_else(|e| e.into_inner());
    let error = op.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    render(
        &viewer,
        &OperationPage {
            id,
            expected: op.expected,
            done: op.done.load(Ordering::Acquire),
            queued: progress.queued,
            pending: progress.pending,
            pruned: progress.pruned,
            error,
        },
    )
}

/// `operation.html`: a bulk replay's progress.
#[derive(Serialize)]
struct OperationPage {
    id: u64,
    expected: i64,
    done: bool,
    queued: usize,
    pending: usize,
    pruned: usize,
    error: Option<String>,
}
renders!(OperationPage = "operation.html");
