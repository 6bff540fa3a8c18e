//! `GET /api/v1/tenants/{t}/changes?after=CURSOR&kinds=call,contact&limit=&wait=`: the tenant's
//! records in the order they changed, each once at its latest change, with its content and
//! version, or a tombstone for a deletion. `next` is the cursor to ask with next time (also when
//! nothing changed). With `wait=N` (up to 60 s) an empty answer waits for a change first
//! (long-poll). With `Accept: text/event-stream` the answer is a stream of Server-Sent Events,
//! one `change` event each, whose id is the cursor after it: a client that reconnects with
//! `Last-Event-ID` goes on where it was. A cursor older than what retention keeps gets 410, with
//! the cursor to follow from after re-reading the records.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::page::CursorScope;
use super::{ApiError, page_size, visible_tenant};
use crate::auth::Principal;

use crate::id::TenantId;
use crate::state::Hub;
use crate::store::{Change, Changes};

/// A page of the change feed.
#[derive(Serialize, ToSchema)]
pub(super) struct ChangesPage {
    /// In change order, each record once at its latest change.
    changes: Vec<Change>,
    /// The cursor to ask with next time (also when nothing changed).
    next: String,
}

/// The longest a long-poll waits.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ChangesQuery {
    /// A cursor this feed gave (`next`); without it, from the beginning.
    after: Option<String>,
    /// Only these kinds, comma-separated, e.g. `call,contact`.
    kinds: Option<String>,
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
    /// Seconds to wait for a change when there is none yet (long-poll; at most 60).
    wait: Option<u64>,
}

/// One reader of one tenant's feed.
struct Feed {
    hub: Arc<Hub>,
    tenant: TenantId,
    kinds: Option<Vec<String>>,
    scope: CursorScope,
    limit: usize,
}

impl Feed {
    /// The changes after `after`, waiting up to `wait` for one if there are none yet.
    async fn read(&self, after: i64, wait: Duration) -> Result<Changes, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the read, so a commit between the read and the wait wakes it.
            let changed = self.hub.store.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let page = self
                .hub
                .store
                .changes(self.tenant.clone(), after, self.kinds.clone(), self.limit)
                .await?;
            if page.expired {
                return Err(ApiError::Gone {
                    message:
                        "this cursor is older than the change feed keeps (server.retention_days): \
                              read the records again, then follow the feed from `next`"
                            .into(),
                    next: self.scope.cursor(page.latest),
                });
            }
            if !page.changes.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(page);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(page);
            }
        }
    }
}

/// `GET /api/v1/tenants/{t}/changes`. With `Accept: text/event-stream`, Server-Sent Events
/// (`change` events whose id is the cursor after each; resumable with `Last-Event-ID`).
#[utoipa::path(get, path = "/tenants/{tenant}/changes", tag = "tenants",
    params(("tenant" = String, Path), ChangesQuery),
    responses((status = 200, body = ChangesPage), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 410, body = super::ErrorBody)))]
pub(super) async fn changes(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<ChangesQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let kinds = q.kinds.as_deref().map(|k| {
        k.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    });
    // The cursor is bound to the tenant, not to the kinds: an app may widen what it follows.
    let scope = CursorScope::of("changes", &[Some(tenant.as_str())]);
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let after = scope
        .after(last_event.as_deref().or(q.after.as_deref()))?
        .unwrap_or(0);
    let feed = Feed {
        hub,
        tenant,
        kinds,
        scope,
        limit: page_size(q.limit, 100),
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if wants_stream {
        return Ok(stream(feed, after).await?.into_response());
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(0)).min(MAX_WAIT);
    let page = feed.read(after, wait).await?;
    let last = page.changes.last().map_or(after, |c| c.seq);
    Ok(axum::Json(ChangesPage {
        changes: page.changes,
        next: feed.scope.cursor(last),
    })
    .into_response())
}

/// The feed as Server-Sent Events from `after`, for as long as the client listens. An expired
/// cursor is refused before the stream starts.
async fn stream(
    feed: Feed,
    after: i64,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let first = feed.read(after, Duration::ZERO).await?;
    let state = (feed, after, Some(first), std::collections::VecDeque::new());
    let events = futures::stream::unfold(
        state,
        |(feed, mut after, mut first, mut queue)| async move {
            loop {
                if let Some(change) = queue.pop_front() {
                    let change: crate::store::Change = change;
                    after = change.seq;
                    let event = Event::default()
                        .event("change")
                        .id(feed.scope.cursor(change.seq))
                        .json_data(&change)
                        .unwrap_or_else(|_| Event::default().comment("unserializable change"));
                    return Some((Ok(event), (feed, after, first, queue)));
                }
                let page = match first.take() {
                    Some(page) => page,
                    None => match feed.read(after, MAX_WAIT).await {
                        Ok(page) => page,
                        // The database failed or the cursor expired meanwhile: end the stream; the
                        // client reconnects with its Last-Event-ID and is told why.
                        Err(_) => return None,
                    },
                };
                queue.extend(page.changes);
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
