//! The webhook log (`deliveries`): a verified webhook is stored once per (tenant, connector,
//! identity), and queued for its connector in the same transaction; the log's reads.

use rusqlite::{Connection, OptionalExtension, params};

use super::enqueue::insert_job;
use super::{Command, NewJob, Result, Sqlite, Task, cached_row};
use super::{DeliveryFilter, DeliveryRow, Ingested, NewDelivery, StoredRequest};
use crate::id::{ConnectorId, TenantId};

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
            .any(|(k, _)| k == crate::store::TEST_HEADER);
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
            let hour = d.received_at_ms / super::HOUR_MS;
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
        trace: d.trace.clone(),
    };
    insert_job(c, &job, Some(id))?;
    Ok(Ingested::Stored(id))
}
