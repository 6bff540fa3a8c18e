//! The audit trail on PostgreSQL: the same `audit` table as on SQLite, one trail for every hub.

use super::super::{AuditEntry, AuditFilter, AuditRow, Result};
use super::Postgres;

impl Postgres {
    /// Appends an entry.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn audit_write(&self, e: AuditEntry) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit (at, actor, tenant, action, target, detail, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &e.at_ms,
                    &super::text(&e.actor),
                    &e.tenant.as_deref().map(super::text),
                    &e.action,
                    &super::text(&e.target),
                    &super::text(&e.detail),
                    &e.source,
                ],
            )
            .await?;
        Ok(())
    }

    /// Entries `filter` matches, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT id, at, actor, tenant, action, target, detail, source FROM audit
                 WHERE ($1::text IS NULL OR tenant=$1) AND ($2::text IS NULL OR actor=$2)
                   AND ($3::bigint IS NULL OR id<$3)
                 ORDER BY id DESC LIMIT $4",
                &[
                    &filter.tenant,
                    &filter.actor,
                    &filter.before,
                    &(filter.limit as i64),
                ],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    entry: AuditEntry {
                        at_ms: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        tenant: r.try_get(3)?,
                        action: r.try_get(4)?,
                        target: r.try_get(5)?,
                        detail: r.try_get(6)?,
                        source: r.try_get(7)?,
                    },
                })
            })
            .collect()
    }

    /// Deletes up to `limit` entries older than `cutoff_ms`; how many.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn prune_audit(&self, cutoff_ms: i64, limit: usize) -> Result<usize> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at<$1 ORDER BY id LIMIT $2)",
                &[&cutoff_ms, &(limit as i64)],
            )
            .await?;
        Ok(n as usize)
    }
}

/// The schema migration that makes the table.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant, id);
CREATE INDEX audit_by_time ON audit (at);
"#;
