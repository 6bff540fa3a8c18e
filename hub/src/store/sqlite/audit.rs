//! The audit trail on SQLite: `audit`, appended by the writer thread (see
//! [`crate::store::AuditEntry`]).

use rusqlite::{Connection as Conn, Row, params};

use super::{Command, Result, Sqlite};
use crate::store::model::{AuditEntry, AuditFilter, AuditRow};

impl Sqlite {
    /// Appends an entry.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn audit_write(&self, entry: AuditEntry) -> Result<()> {
        self.call(|reply| Command::Audit { entry, reply }).await
    }

    /// Entries `filter` matches, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, actor, tenant, action, target, detail, source FROM audit
                 WHERE (?1 IS NULL OR tenant=?1) AND (?2 IS NULL OR actor=?2) AND (?3 IS NULL OR id<?3)
                 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![filter.tenant, filter.actor, filter.before, filter.limit as i64],
                row,
            )?;
            rows.collect()
        })
        .await
    }

    /// Deletes up to `limit` entries older than `cutoff_ms`; how many.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn prune_audit(&self, cutoff_ms: i64, limit: usize) -> Result<usize> {
        self.call(|reply| Command::PruneAudit {
            cutoff_ms,
            limit,
            reply,
        })
        .await
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        entry: AuditEntry {
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            tenant: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            detail: r.get(6)?,
            source: r.get(7)?,
        },
    })
}

/// Appends (on the writer's connection).
pub(super) fn write(c: &Conn, e: &AuditEntry) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO audit (at, actor, tenant, action, target, detail, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at_ms, e.actor, e.tenant, e.action, e.target, e.detail, e.source
    ])?;
    Ok(())
}

/// Prunes (on the writer's connection).
pub(super) fn prune(c: &Conn, cutoff_ms: i64, limit: usize) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at<?1 ORDER BY id LIMIT ?2)",
    )?
    .execute(params![cutoff_ms, limit as i64])
}

/// The table, for the schema.
pub(super) const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, id);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at);
"#;
