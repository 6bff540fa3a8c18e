//! Published events (`events`): what connectors announced (`call.analyzed`), each kept once
//! per key so a replay that publishes again lists it once; the tenant's list, newest first.

use rusqlite::{Connection, params};

use super::EventRow;
use super::Published;
use super::{Result, Sqlite};
use crate::id::{ConnectorId, TenantId};

impl Sqlite {
    /// Events of a tenant, newest first; `before` an event id, for the next page.
    ///
    /// # Errors
    /// On database failure.
    pub async fn events(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, name, payload, created_at, key FROM events
                 WHERE tenant=?1 AND id < coalesce(?3, 9223372036854775807) ORDER BY id DESC LIMIT ?2",
            )?;
            let limit = limit.clamp(1, 1000) as i64;
            stmt.query_map(params![tenant, limit, before], event_row)?
                .collect()
        })
        .await
    }

    /// The events a tenant's jobs published, given the jobs' idempotency keys (an event's key
    /// extends its job's: `{job_key}:event:...`, so the unique index on keys finds them).
    ///
    /// # Errors
    /// On database failure.
    pub async fn events_of_jobs(
        &self,
        tenant: TenantId,
        job_keys: Vec<String>,
    ) -> Result<Vec<EventRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, name, payload, created_at, key FROM events
                 WHERE key >= ?1 AND key < ?2 AND tenant=?3 ORDER BY id",
            )?;
            let mut rows = Vec::new();
            for job in job_keys {
                let (from, to) = (format!("{job}:event:"), format!("{job}:event;"));
                for row in stmt.query_map(params![from, to, tenant], event_row)? {
                    rows.push(row?);
                }
            }
            Ok(rows)
        })
        .await
    }
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let payload: String = r.get(4)?;
    Ok(EventRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        name: r.get(3)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        key: r.get(6)?,
        created_at_ms: r.get(5)?,
    })
}

/// Writes an invocation's events; `(job, job_key)` is the job that published them, whose key
/// each event's key extends (`{job_key}:event:{i}:{name}`), so a replay publishes each once.
/// The route jobs an event triggers are keyed `{key}:route:{route}` (`routing::jobs_for_events`).
pub(super) fn write(
    c: &Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    (job, job_key): (Option<i64>, Option<&str>),
    events: &[Published],
    now: i64,
) -> rusqlite::Result<()> {
    for (i, Published { name, payload }) in events.iter().enumerate() {
        let key = job_key.map(|k| format!("{k}:event:{i}:{name}"));
        c.prepare_cached(
            "INSERT INTO events (tenant, connector, name, payload, job_id, created_at, key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![tenant, connector, name, payload, job, now, key])?;
    }
    Ok(())
}
