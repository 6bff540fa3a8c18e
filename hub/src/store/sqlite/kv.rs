//! The scoped kv store (`kv`): values a connector keeps per (tenant, connector), with a version
//! for optimistic reads, and idempotency markers (`kv-set-marker`) that retention deletes with
//! the finished jobs they guard.

use rusqlite::{Connection, OptionalExtension, params};

use super::{KvWrite, new_version};
use super::{Result, Sqlite, cached_row};
use crate::id::{ConnectorId, TenantId};

impl Sqlite {
    /// A kv value and its version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get_versioned(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, i64)> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT value, version FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3",
                params![tenant, connector, key],
                |r| Ok((Some(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map(|o| o.unwrap_or((None, 0)))
        })
    }

    /// A kv value (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT value FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3",
                params![tenant, connector, key],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

/// A kv key's version (0 when absent), to check an invocation's read against.
pub(super) fn version(
    c: &Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    key: &str,
) -> rusqlite::Result<i64> {
    Ok(
        c.prepare_cached("SELECT version FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3")?
            .query_row(params![tenant, connector, key], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

/// Writes an invocation's kv writes, in order; a marker carries the time it was written.
pub(super) fn write(
    c: &Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    writes: &[KvWrite],
    now: i64,
) -> rusqlite::Result<()> {
    for KvWrite { key, value, marker } in writes {
        match value {
            Some(v) => c
                .prepare_cached(
                    "INSERT INTO kv (tenant, connector, key, value, version, marker_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant, connector, key) DO UPDATE
                     SET value=excluded.value, version=excluded.version, marker_at=excluded.marker_at",
                )?
                .execute(params![tenant, connector, key, v, new_version(), marker.then_some(now)])?,
            None => c
                .prepare_cached("DELETE FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3")?
                .execute(params![tenant, connector, key])?,
        };
    }
    Ok(())
}
