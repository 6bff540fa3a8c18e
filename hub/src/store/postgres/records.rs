//! Records and the change feed on PostgreSQL.
//!
//! The change feed cannot follow a sequence here: several transactions write at once, and one
//! that took a smaller number may commit after one that took a larger, so a reader at the
//! larger would miss it. The feed follows transactions instead: each record row carries the id
//! of the transaction that last wrote it (`tx`, an `xid8`, which only grows), and a read lists
//! only transactions older than the oldest one still running (`pg_snapshot_xmin`): every row a
//! later commit can add has a `tx` at or past that point, so a cursor never passes a change
//! that is yet to appear. A cursor is a transaction id: "after all of it". A page holds whole
//! transactions; inside one, each change but the last carries the cursor just before the
//! transaction, so a reader that resumes from there reads that transaction again, whole:
//! within a transaction, changes arrive at least once; none is ever missed.

use super::super::{Change, Changes, EventRow, JobCount, RecordFilter, RecordRow, Result};
use super::{Postgres, connector, tenant};
use crate::id::TenantId;

const RECORD: &str = "SELECT kind, key, data, updated_at, lookups, seq, version FROM records";

fn record_row(r: &tokio_postgres::Row) -> RecordRow {
    RecordRow {
        kind: r.get(0),
        key: r.get(1),
        data: serde_json::from_str(r.get(2)).unwrap_or(serde_json::Value::Null),
        lookups: r
            .get::<_, Option<&str>>(4)
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default(),
        updated_at_ms: r.get(3),
        seq: r.get(5),
        version: r.get(6),
    }
}

fn event_row(r: &tokio_postgres::Row) -> Result<EventRow> {
    Ok(EventRow {
        id: r.get(0),
        tenant: tenant(r, 1)?,
        connector: connector(r, 2)?,
        name: r.get(3),
        payload: serde_json::from_str(r.get(4)).unwrap_or(serde_json::Value::Null),
        created_at_ms: r.get(5),
        key: r.get(6),
    })
}

impl Postgres {
    /// Records of a tenant, last changed first: all, one kind, or one kind's found by a lookup.
    ///
    /// # Errors
    /// On database failure.
    pub async fn records(&self, tenant: TenantId, filter: RecordFilter) -> Result<Vec<RecordRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "{RECORD} WHERE tenant=$1 AND ($2::text IS NULL OR kind=$2)
                       AND ($3::text IS NULL OR key IN (SELECT key FROM record_lookups
                                                  WHERE tenant=$1 AND kind=$2 AND lookup=$3))
                       AND seq < coalesce($5, 9223372036854775807)
                     ORDER BY seq DESC LIMIT $4"
                ),
                &[
                    &tenant.as_str(),
                    &filter.kind,
                    &filter.lookup,
                    &(filter.limit.clamp(1, 1000) as i64),
                    &filter.before,
                ],
            )
            .await?;
        Ok(rows.iter().map(record_row).collect())
    }

    /// The kinds of record a tenant has, in order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_kinds(&self, tenant: TenantId) -> Result<Vec<String>> {
        // A skip-scan of the primary key: one index probe per kind.
        let rows = self
            .client()
            .await?
            .query(
                "WITH RECURSIVE k(kind) AS (
                     SELECT min(kind) FROM records WHERE tenant=$1
                     UNION ALL
                     SELECT (SELECT min(kind) FROM records WHERE tenant=$1 AND kind > k.kind)
                     FROM k WHERE k.kind IS NOT NULL)
                 SELECT kind FROM k WHERE kind IS NOT NULL",
                &[&tenant.as_str()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("{RECORD} WHERE tenant=$1 AND kind=$2 AND key=$3"),
                &[&tenant.as_str(), &kind, &key],
            )
            .await?;
        Ok(row.as_ref().map(record_row))
    }

    /// The records a tenant's jobs last wrote.
    ///
    /// # Errors
    /// On database failure.
    pub async fn records_of_jobs(
        &self,
        tenant: TenantId,
        jobs: Vec<i64>,
    ) -> Result<Vec<RecordRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("{RECORD} WHERE job_id = ANY($1) AND tenant=$2 ORDER BY seq"),
                &[&jobs, &tenant.as_str()],
            )
            .await?;
        Ok(rows.iter().map(record_row).collect())
    }

    /// The events a tenant's jobs (by idempotency key) published, in order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn events_of_jobs(
        &self,
        tenant: TenantId,
        job_keys: Vec<String>,
    ) -> Result<Vec<EventRow>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, tenant, connector, name, payload, created_at, key FROM events
                 WHERE key >= $1 AND key < $2 AND tenant=$3 ORDER BY id",
            )
            .await?;
        let mut rows = Vec::new();
        for job in job_keys {
            let (from, to) = (format!("{job}:event:"), format!("{job}:event;"));
            for r in client.query(&stmt, &[&from, &to, &tenant.as_str()]).await? {
                rows.push(event_row(&r)?);
            }
        }
        Ok(rows)
    }

    /// Job counts by `(tenant, connector, state)` for a status view, bounded: queued and
    /// running jobs up to `cap` in all, dead ones all, done ones not at all.
    ///
    /// # Errors
    /// On database failure.
    pub async fn queue_counts(&self, cap: i64) -> Result<Vec<JobCount>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, connector, state, count(*) FROM
                   (SELECT tenant, connector, state FROM jobs WHERE state IN ('queued', 'running') LIMIT $1) p
                 GROUP BY tenant, connector, state
                 UNION ALL
                 SELECT tenant, connector, state, count(*) FROM jobs WHERE state = 'dead'
                 GROUP BY tenant, connector, state",
                &[&cap],
            )
            .await?;
        rows.iter().map(super::reads::job_count).collect()
    }

    /// Up to `limit` (1 to 1,000) transactions' worth of `tenant`'s records changed after
    /// cursor `after`, in change order, optionally of some kinds only (see the module docs).
    ///
    /// # Errors
    /// On database failure.
    pub async fn changes(
        &self,
        tenant: TenantId,
        after: i64,
        kinds: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Changes> {
        let client = self.client().await?;
        let horizon: i64 = client
            .query_opt(
                "SELECT value FROM counters WHERE name='changes_horizon'",
                &[],
            )
            .await?
            .map_or(0, |r| r.get(0));
        // Changes already committed but behind a transaction still running (anywhere on the
        // server) are not listed yet; a short wait usually lets that transaction end. The wait
        // is for the newest change committed now, not for a moment with nothing in flight
        // (under load, that moment never comes): new transactions do not hold it back.
        let newest: Option<i64> = client
            .query_one(
                "SELECT GREATEST(
                     (SELECT max(tx)::text::bigint FROM records WHERE tenant=$1),
                     (SELECT max(tx)::text::bigint FROM record_tombstones WHERE tenant=$1))",
                &[&tenant.as_str()],
            )
            .await?
            .get(0);
        let mut settled: i64 = 0;
        for _ in 0..100 {
            settled = client
                .query_one(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                    &[],
                )
                .await?
                .get(0);
            if newest.is_none_or(|tx| tx < settled) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let latest = settled - 1;
        if after > 0 && after < horizon {
            return Ok(Changes {
                changes: Vec::new(),
                expired: true,
                latest,
            });
        }
        let rows = client
            .query(
                "WITH changed AS (
                   SELECT tx::text::bigint AS tx, seq, kind, key, false AS deleted, data, version,
                          lookups, updated_at AS at
                   FROM records
                   WHERE tenant=$1 AND tx > $2::text::xid8 AND tx < $5::text::xid8
                     AND ($3::text[] IS NULL OR kind = ANY($3))
                   UNION ALL
                   SELECT t.tx::text::bigint, t.seq, t.kind, t.key, true, NULL, NULL, NULL, t.deleted_at
                   FROM record_tombstones t
                   WHERE t.tenant=$1 AND t.tx > $2::text::xid8 AND t.tx < $5::text::xid8
                     AND ($3::text[] IS NULL OR t.kind = ANY($3))
                     AND NOT EXISTS (SELECT 1 FROM records r
                                     WHERE r.tenant=t.tenant AND r.kind=t.kind AND r.key=t.key)),
                 txs AS (SELECT tx FROM changed GROUP BY tx ORDER BY tx LIMIT $4)
                 SELECT tx, kind, key, deleted, data, version, lookups, at FROM changed
                 WHERE tx IN (SELECT tx FROM txs)
                 ORDER BY tx, seq",
                &[
                    &tenant.as_str(),
                    &after.max(0).to_string(),
                    &kinds,
                    &(limit.clamp(1, 1000) as i64),
                    &settled.to_string(),
                ],
            )
            .await?;
        let txs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let changes = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Change {
                // After the last change of a transaction, the cursor is past it; inside one,
                // just before it: a reader resuming there reads the transaction again, whole.
                seq: match txs.get(i + 1) {
                    Some(&next) if next == txs[i] => txs[i] - 1,
                    _ => txs[i],
                },
                kind: r.get(1),
                key: r.get(2),
                deleted: r.get(3),
                data: r
                    .get::<_, Option<&str>>(4)
                    .and_then(|d| serde_json::from_str(d).ok()),
                version: r.get(5),
                lookups: r
                    .get::<_, Option<&str>>(6)
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default(),
                changed_at_ms: r.get(7),
            })
            .collect();
        Ok(Changes {
            changes,
            expired: false,
            latest,
        })
    }
}
