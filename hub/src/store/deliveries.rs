//! The webhook log (`deliveries`): a verified webhook is stored once per (tenant, connector,
//! identity), and queued for its connector in the same transaction; the log's reads.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::queue::insert_job;
use super::{Command, NewJob, Result, Sqlite, Task, cached_row};
use crate::id::{ConnectorId, TenantId};

/// Where a delivery is in its handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Stored, its job not yet claimed.
    Received,
    /// Its job is running.
    Processing,
    /// Handled.
    Done,
    /// Handled: the connector did not act on it, and said why.
    Ignored,
    /// An attempt failed; another is queued.
    Retrying,
    /// Failed for good (dead letter).
    Dead,
}

impl DeliveryState {
    /// Every state, in the order a delivery goes through them.
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Received,
        DeliveryState::Processing,
        DeliveryState::Done,
        DeliveryState::Ignored,
        DeliveryState::Retrying,
        DeliveryState::Dead,
    ];

    /// The state as stored and shown: `received`, `processing`, `done`, `ignored`, `retrying`,
    /// `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Received => "received",
            DeliveryState::Processing => "processing",
            DeliveryState::Done => "done",
            DeliveryState::Ignored => "ignored",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Dead => "dead",
        }
    }
}

super::state_text!(DeliveryState, "delivery state");

/// A verified webhook, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// Route name ("" for the bare URL).
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// The provider's identity for this delivery; a second delivery with the same identity for
    /// the same tenant and connector is a duplicate.
    pub identity: String,
    /// The provider's event type, when the route says where to find it.
    pub event: Option<String>,
    /// The URL the provider called.
    pub url: String,
    /// Headers, secrets removed.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at_ms: i64,
}

#[cfg(test)]
impl NewDelivery {
    /// For the hub's tests: a JSON `{}` for tenant `t1`, connector `c1`, event `e`, received now.
    pub(crate) fn test(identity: &str) -> NewDelivery {
        NewDelivery {
            tenant: crate::config::id("t1"),
            connector: crate::config::id("c1"),
            route: String::new(),
            method: "POST".into(),
            identity: identity.into(),
            event: Some("e".into()),
            url: "http://x/hooks/t1/c1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            received_at_ms: crate::clock::now_ms(),
        }
    }
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored for the first time, and queued for its connector.
    Stored(i64),
    /// Already stored under this id; nothing changed.
    Duplicate(i64),
}

impl Ingested {
    /// The delivery id either way.
    pub fn id(self) -> i64 {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id,
        }
    }
}

/// One row of the webhook log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: i64,
    /// Tenant id.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Connector id.
    #[schema(value_type = String)]
    pub connector: ConnectorId,
    /// Route name.
    pub route: String,
    /// Event type, if known.
    pub event: Option<String>,
    /// Dedup identity.
    pub identity: String,
    /// Where it is in its handling.
    pub state: DeliveryState,
    /// Processing attempts.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Why it was ignored.
    pub ignored_reason: Option<String>,
    /// Arrival time (ms).
    pub received_at_ms: i64,
    /// When processing finished (ms).
    pub processed_at_ms: Option<i64>,
    /// Duration of the last attempt (µs).
    pub duration_us: Option<i64>,
    /// The URL called.
    pub url: String,
    /// Headers (secrets removed); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pub headers: Option<Vec<(String, String)>>,
    /// Raw body as text (lossy); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A test webhook (sent from the console, marked `x-hub-test`), not the provider's.
    #[serde(default)]
    pub test: bool,
}

/// Filter for listing deliveries.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only this connector.
    pub connector: Option<ConnectorId>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only this route.
    pub route: Option<String>,
    /// Only this event type.
    pub event: Option<String>,
    /// Only the delivery with this id or this identity (`call_id:event`...).
    pub search: Option<String>,
    /// Only deliveries whose body holds this text (a scan: bounded by `limit` and the time range).
    pub contains: Option<String>,
    /// Only deliveries received at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only deliveries received before this time (ms).
    pub until_ms: Option<i64>,
    /// Only deliveries older than this one (a page's keyset: ids descend).
    pub before: Option<i64>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// A delivery's request as stored.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Route name.
    pub route: String,
    /// URL called.
    pub url: String,
    /// Headers (secrets removed).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// Arrival (ms).
    pub received_at_ms: i64,
    /// HTTP method.
    pub method: String,
}

/// The filters every read of the log applies (`?1`... as `Store::deliveries` binds them).
macro_rules! log_filters {
    () => {
        "(?1 IS NULL OR tenant=?1) AND (?2 IS NULL OR connector=?2)
         AND (?3 IS NULL OR state=?3) AND id < coalesce(?5, 9223372036854775807)
         AND (?6 IS NULL OR route=?6) AND (?7 IS NULL OR event=?7)
         AND (?10 IS NULL OR instr(body, ?10) > 0)
         AND (?11 IS NULL OR received_at >= ?11) AND (?12 IS NULL OR received_at < ?12)
         AND ?8 IS ?8 AND ?9 IS ?9"
    };
}

/// The log, newest first.
const LIST: &str = concat!(
    "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
            ignored_reason, received_at, processed_at, duration_us, url,
            instr(headers, '\"x-hub-test\"') > 0
     FROM deliveries WHERE ",
    log_filters!(),
    " ORDER BY id DESC LIMIT ?4"
);

/// The deliveries whose id is `?9` or whose identity is `?8`. An identity is found through the
/// unique index (tenant, connector, identity): `pairs` skip-scans it for each (tenant,
/// connector) there is (a handful), and each is sought there; nothing reads the log from the top.
const SEARCH: &str = concat!(
    "WITH RECURSIVE
       tenants(t) AS (
         SELECT min(tenant) FROM deliveries
         UNION ALL
         SELECT (SELECT min(tenant) FROM deliveries WHERE tenant > t) FROM tenants WHERE t IS NOT NULL),
       pairs(t, c) AS (
         SELECT t, (SELECT min(connector) FROM deliveries WHERE tenant = t) FROM tenants WHERE t IS NOT NULL
         UNION ALL
         SELECT t, (SELECT min(connector) FROM deliveries WHERE tenant = t AND connector > c) FROM pairs WHERE c IS NOT NULL),
       found(id) AS (
         SELECT d.id FROM pairs JOIN deliveries d
           ON d.tenant = pairs.t AND d.connector = pairs.c AND d.identity = ?8
         WHERE pairs.c IS NOT NULL
         UNION SELECT ?9 WHERE ?9 IS NOT NULL)
     SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
            ignored_reason, received_at, processed_at, duration_us, url,
            instr(headers, '\"x-hub-test\"') > 0
     FROM deliveries WHERE id IN (SELECT id FROM found) AND ",
    log_filters!(),
    " ORDER BY id DESC LIMIT ?4"
);

impl Sqlite {
    /// Stores deliveries durably (deduplicated) and queues each new one for its connector.
    /// Returns once the transaction holding them is committed.
    ///
    /// # Errors
    /// When the database cannot commit: the caller must not acknowledge.
    pub async fn ingest(&self, deliveries: Vec<NewDelivery>) -> Result<Vec<Ingested>> {
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let headers = serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into());
                (d, headers)
            })
            .collect();
        self.call(|r| Command::Ingest(deliveries, r)).await
    }

    /// A delivery's stored request (blocking; for the worker).
    ///
    /// # Errors
    /// On database failure.
    pub fn delivery_request(&self, id: i64) -> Result<Option<StoredRequest>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT route, url, headers, body, received_at, method FROM deliveries WHERE id=?1",
                [id],
                |r| {
                    let headers: String = r.get(2)?;
                    Ok(StoredRequest {
                        route: r.get(0)?,
                        url: r.get(1)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        body: r.get(3)?,
                        received_at_ms: r.get(4)?,
                        method: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Recent deliveries, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        self.read_async(move |c| {
            // A search reads only the deliveries it finds; a list reads the log from the top.
            let sql = if filter.search.is_some() {
                SEARCH
            } else {
                LIST
            };
            let mut stmt = c.prepare_cached(sql)?;
            let limit = if filter.limit == 0 {
                50
            } else {
                filter.limit.min(1000)
            } as i64;
            stmt.query_map(
                params![
                    filter.tenant,
                    filter.connector,
                    filter.state,
                    limit,
                    filter.before,
                    filter.route,
                    filter.event,
                    filter.search,
                    filter.search.as_deref().and_then(|s| s.parse::<i64>().ok()),
                    filter.contains,
                    filter.since_ms,
                    filter.until_ms,
                ],
                |r| delivery_row(r, false),
            )?
            .collect()
        })
        .await
    }

    /// One delivery with its headers and body.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>> {
        self.read_async(move |c| {
            cached_row(
                c,
                "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                        ignored_reason, received_at, processed_at, duration_us, url, headers, body
                 FROM deliveries WHERE id=?1",
                [id],
                |r| delivery_row(r, true),
            )
            .optional()
        })
        .await
    }
}

pub(super) fn delivery_row(r: &rusqlite::Row<'_>, full: bool) -> rusqlite::Result<DeliveryRow> {
    let (headers, body, test) = if full {
        let h: String = r.get(14)?;
        let b: Vec<u8> = r.get(15)?;
        let headers: Option<Vec<(String, String)>> = serde_json::from_str(&h).ok();
        let test = headers
            .iter()
            .flatten()
            .any(|(k, _)| k == super::TEST_HEADER);
        (
            headers,
            Some(String::from_utf8_lossy(&b).into_owned()),
            test,
        )
    } else {
        (None, None, r.get(14)?)
    };
    Ok(DeliveryRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        route: r.get(3)?,
        event: r.get(4)?,
        identity: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        ignored_reason: r.get(9)?,
        received_at_ms: r.get(10)?,
        processed_at_ms: r.get(11)?,
        duration_us: r.get(12)?,
        url: r.get(13)?,
        headers,
        body,
        test,
    })
}

pub(super) fn insert_deliveries(
    c: &Connection,
    deliveries: &[(NewDelivery, String)],
) -> rusqlite::Result<Vec<Ingested>> {
    let ingested: Vec<Ingested> = deliveries
        .iter()
        .map(|(d, headers)| insert_delivery(c, d, headers))
        .collect::<rusqlite::Result<_>>()?;
    // The status view's hourly counts: one upsert per (tenant, connector, hour) of the batch.
    let mut hours: std::collections::BTreeMap<(&TenantId, &ConnectorId, i64), (i64, i64)> =
        Default::default();
    for ((d, _), done) in deliveries.iter().zip(&ingested) {
        if matches!(done, Ingested::Stored(_)) {
            let hour = d.received_at_ms / super::analytics::HOUR_MS;
            let (n, last) = hours.entry((&d.tenant, &d.connector, hour)).or_default();
            *n += 1;
            *last = (*last).max(d.received_at_ms);
        }
    }
    for ((tenant, connector, hour), (n, last)) in hours {
        super::analytics::count_received(c, tenant, connector, hour, n, last)?;
    }
    Ok(ingested)
}

fn insert_delivery(c: &Connection, d: &NewDelivery, headers: &str) -> rusqlite::Result<Ingested> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO deliveries (tenant, connector, route, identity, event, url, headers, body, received_at, method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (tenant, connector, identity) DO NOTHING",
        )?
        .execute(params![
            d.tenant,
            d.connector,
            d.route,
            d.identity,
            d.event,
            d.url,
            headers,
            d.body,
            d.received_at_ms,
            d.method
        ])?;
    if inserted == 0 {
        let id = c
            .prepare_cached(
                "SELECT id FROM deliveries WHERE tenant=?1 AND connector=?2 AND identity=?3",
            )?
            .query_row(params![d.tenant, d.connector, d.identity], |r| r.get(0))?;
        return Ok(Ingested::Duplicate(id));
    }
    let id = c.last_insert_rowid();
    let job = NewJob {
        tenant: d.tenant.clone(),
        connector: d.connector.clone(),
        task: Task::Delivery { delivery_id: id },
        run_at_ms: d.received_at_ms,
        idempotency_key: Some(format!("delivery:{id}")),
    };
    insert_job(c, &job, Some(id))?;
    Ok(Ingested::Stored(id))
}
