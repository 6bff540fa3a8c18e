//! Connector records (`records`) and their lookups (`record_lookups`): a tenant's records by
//! kind and key, found by the lookups any of its connectors set (`phone:+14155550100`); reads for
//! host calls and the API, and the writes of an invocation's effects.

use rusqlite::{Connection, OptionalExtension, params};

use super::rollup;
use super::{LookupsSet, RecordWrite, new_version};
use super::{RecordFilter, RecordRow, last_lookups};
use super::{Result, Sqlite, cached_row};
use crate::id::TenantId;

impl Sqlite {
    /// Up to `limit` records of a kind, newest first, as `(key, json, version)` (blocking; host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_list(
        &self,
        tenant: &TenantId,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, data, version FROM records WHERE tenant=?1 AND kind=?2 ORDER BY updated_at DESC, key LIMIT ?3",
            )?;
            stmt.query_map(params![tenant, kind, limit.min(1000)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
        })
    }

    /// Up to `limit` records of a kind that carry `lookup`, newest first, as `(key, json,
    /// version)` (blocking; host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_find(
        &self,
        tenant: &TenantId,
        kind: &str,
        lookup: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.key, r.data, r.version FROM record_lookups l
                 JOIN records r ON r.tenant=l.tenant AND r.kind=l.kind AND r.key=l.key
                 WHERE l.tenant=?1 AND l.kind=?2 AND l.lookup=?3
                 ORDER BY r.updated_at DESC, r.key LIMIT ?4",
            )?;
            stmt.query_map(params![tenant, kind, lookup, limit.min(1000)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
    }

    /// A record's JSON and version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get_versioned(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<(Option<String>, i64)> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT data, version FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
                params![tenant, kind, key],
                |r| Ok((Some(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map(|o| o.unwrap_or((None, 0)))
        })
    }

    /// A record's JSON (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT data FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
                params![tenant, kind, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records of a tenant, last changed first: all, one kind, or one kind's found by a lookup.
    ///
    /// # Errors
    /// On database failure.
    pub async fn records(&self, tenant: TenantId, filter: RecordFilter) -> Result<Vec<RecordRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, key, data, updated_at, lookups, seq, version
                 FROM records r
                 WHERE tenant=?1 AND (?2 IS NULL OR kind=?2)
                   AND (?3 IS NULL OR key IN (SELECT key FROM record_lookups
                                              WHERE tenant=?1 AND kind=?2 AND lookup=?3))
                   AND seq < coalesce(?5, 9223372036854775807)
                 ORDER BY seq DESC LIMIT ?4",
            )?;
            let limit = filter.limit.clamp(1, 1000) as i64;
            let args = params![tenant, filter.kind, filter.lookup, limit, filter.before];
            stmt.query_map(args, record_row)?.collect()
        })
        .await
    }

    /// The kinds of record a tenant has, in order (a skip-scan of the primary key).
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_kinds(&self, tenant: TenantId) -> Result<Vec<String>> {
        self.read_async(move |c| {
            c.prepare_cached(
                "WITH RECURSIVE k(kind) AS (
                     SELECT min(kind) FROM records WHERE tenant=?1
                     UNION ALL
                     SELECT (SELECT min(kind) FROM records WHERE tenant=?1 AND kind > k.kind)
                     FROM k WHERE k.kind IS NOT NULL)
                 SELECT kind FROM k WHERE kind IS NOT NULL",
            )?
            .query_map([tenant], |r| r.get(0))?
            .collect()
        })
        .await
    }

    /// One record of a tenant.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record(
        &self,
        tenant: TenantId,
        kind: String,
        key: String,
    ) -> Result<Option<RecordRow>> {
        self.read_async(move |c| {
            c.prepare_cached(
                "SELECT kind, key, data, updated_at, lookups, seq, version
                 FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
            )?
            .query_row(params![tenant, kind, key], record_row)
            .optional()
        })
        .await
    }

    /// The records a tenant's jobs last wrote (a delivery's handling and what it queued). The
    /// `+tenant` keeps SQLite on `records_by_job`: the primary key's tenant prefix would scan
    /// every record of the tenant.
    ///
    /// # Errors
    /// On database failure.
    pub async fn records_of_jobs(
        &self,
        tenant: TenantId,
        jobs: Vec<i64>,
    ) -> Result<Vec<RecordRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, key, data, updated_at, lookups, seq, version
                 FROM records WHERE job_id=?1 AND +tenant=?2 ORDER BY seq",
            )?;
            let mut rows = Vec::new();
            for job in jobs {
                for row in stmt.query_map(params![job, tenant], record_row)? {
                    rows.push(row?);
                }
            }
            Ok(rows)
        })
        .await
    }
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    let data: String = r.get(2)?;
    let lookups: Option<String> = r.get(4)?;
    Ok(RecordRow {
        kind: r.get(0)?,
        key: r.get(1)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        lookups: lookups
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default(),
        updated_at_ms: r.get(3)?,
        seq: r.get(5)?,
        version: r.get(6)?,
    })
}

/// A record's lookups, sorted (`None` if there is no such record).
fn stored_lookups(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    key: &str,
) -> rusqlite::Result<Option<Vec<String>>> {
    let json: Option<Option<String>> = c
        .prepare_cached("SELECT lookups FROM records WHERE tenant=?1 AND kind=?2 AND key=?3")?
        .query_row(params![tenant, kind, key], |r| r.get(0))
        .optional()?;
    Ok(json.map(|j| {
        j.and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default()
    }))
}

/// A record's `lookups` column: its lookups as a JSON list, `NULL` for none.
fn lookups_column(lookups: &[String]) -> Option<String> {
    (!lookups.is_empty()).then(|| serde_json::to_string(lookups).unwrap_or_default())
}

/// Replaces a record's lookups `old` (as stored in its row) with `new` in the index; the caller
/// writes `new` to the row, from which the next replacement knows what to remove.
fn index_lookups(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    key: &str,
    old: &[String],
    new: &[String],
) -> rusqlite::Result<()> {
    for gone in old.iter().filter(|l| !new.contains(l)) {
        c.prepare_cached(
            "DELETE FROM record_lookups WHERE tenant=?1 AND kind=?2 AND lookup=?3 AND key=?4",
        )?
        .execute(params![tenant, kind, gone, key])?;
    }
    for added in new.iter().filter(|l| !old.contains(l)) {
        c.prepare_cached(
            "INSERT OR IGNORE INTO record_lookups (tenant, kind, lookup, key) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![tenant, kind, added, key])?;
    }
    Ok(())
}

/// A record's version (0 when absent), to check an invocation's read against.
pub(super) fn version(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    key: &str,
) -> rusqlite::Result<i64> {
    Ok(
        c.prepare_cached("SELECT version FROM records WHERE tenant=?1 AND kind=?2 AND key=?3")?
            .query_row(params![tenant, kind, key], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

/// Writes an invocation's records and lookups: each record written or deleted in order, a
/// record written for the last time taking its new lookups in the same statement; lookups set
/// without the record being written go to the record as stored, if it exists.
pub(super) fn write(
    c: &Connection,
    tenant: &TenantId,
    writes: &[RecordWrite],
    lookups_set: &[LookupsSet],
    (job, now): (Option<i64>, i64),
) -> rusqlite::Result<()> {
    let lookups = last_lookups(lookups_set);
    let wanted = |kind: &str, key: &str| {
        lookups
            .iter()
            .find(|(k, id, _)| *k == kind && *id == key)
            .map(|(_, _, l)| l)
    };
    // Each write takes the next change number, in this transaction: the feed's order is the
    // order the writes commit in (one writer).
    let first_seq = reserve_seqs(c, writes.len())?;
    for (i, RecordWrite { kind, key, data }) in writes.iter().enumerate() {
        let seq = first_seq + i as i64;
        // The per-day figures: the old contribution out now, the new one in after the write.
        let counted = rollup::counted(kind);
        if counted {
            rollup::take_out(c, tenant, kind, key)?;
            if let Some(data) = data {
                rollup::put_in(c, tenant, kind, data, now)?;
            }
        }
        // A record written for the last time here takes its new lookups in the same write.
        let last = !writes[i + 1..]
            .iter()
            .any(|w| w.kind == *kind && w.key == *key);
        match data {
            Some(data) => match wanted(kind, key).filter(|_| last) {
                None => c
                    .prepare_cached(
                        "INSERT INTO records (tenant, kind, key, data, updated_at, version, seq, job_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at,
                             version=excluded.version, seq=excluded.seq, job_id=excluded.job_id",
                    )?
                    .execute(params![tenant, kind, key, data, now, new_version(), seq, job])?,
                Some(new) => {
                    let old = stored_lookups(c, tenant, kind, key)?.unwrap_or_default();
                    index_lookups(c, tenant, kind, key, &old, new)?;
                    let list = lookups_column(new);
                    c.prepare_cached(
                        "INSERT INTO records (tenant, kind, key, data, updated_at, version, lookups, seq, job_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at,
                             version=excluded.version, lookups=excluded.lookups, seq=excluded.seq,
                             job_id=excluded.job_id",
                    )?
                    .execute(params![tenant, kind, key, data, now, new_version(), list, seq, job])?
                }
            },
            None => {
                let Some(old) = stored_lookups(c, tenant, kind, key)? else {
                    continue; // nothing to delete: no change
                };
                index_lookups(c, tenant, kind, key, &old, &[])?;
                c.prepare_cached("DELETE FROM records WHERE tenant=?1 AND kind=?2 AND key=?3")?
                    .execute(params![tenant, kind, key])?;
                // The feed tells the app it is gone.
                c.prepare_cached(
                    "INSERT INTO record_tombstones (tenant, kind, key, seq, deleted_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant, kind, key) DO UPDATE
                     SET seq=excluded.seq, deleted_at=excluded.deleted_at",
                )?
                .execute(params![tenant, kind, key, seq, now])?
            }
        };
    }
    // Lookups set without the record being written here: only for a record that exists.
    for (kind, key, new) in &lookups {
        if writes
            .iter()
            .any(|w| w.kind == *kind && w.key == *key && w.data.is_some())
        {
            continue;
        }
        match stored_lookups(c, tenant, kind, key)? {
            Some(old) if old != *new => {
                index_lookups(c, tenant, kind, key, &old, new)?;
                let list = lookups_column(new);
                c.prepare_cached(
                    "UPDATE records SET lookups=?4 WHERE tenant=?1 AND kind=?2 AND key=?3",
                )?
                .execute(params![tenant, kind, key, list])?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reserves `n` change numbers; the first of them (the next ones follow it).
fn reserve_seqs(c: &Connection, n: usize) -> rusqlite::Result<i64> {
    if n == 0 {
        return Ok(0);
    }
    let last: i64 = c
        .prepare_cached(
            "UPDATE counters SET value = value + ?1 WHERE name = 'record_seq' RETURNING value",
        )?
        .query_row([n as i64], |r| r.get(0))?;
    Ok(last - n as i64 + 1)
}
