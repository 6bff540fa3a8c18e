//! Retention on PostgreSQL, as on SQLite (see its `prune`): bounded batches, one kind per
//! transaction; payloads of finished deliveries emptied (their log rows stay), finished jobs
//! deleted with their replay history, events, idempotency markers and old tombstones deleted.
//! The status view's hourly counts are not kept here (they are counted from the log), so there
//! are none to prune.

use super::super::{Pruned, Result};
use super::Postgres;
use crate::clock::now_ms;

impl Postgres {
    /// Prunes at most `limit` of each kind older than `cutoff_ms`, each kind in its own
    /// transaction.
    ///
    /// # Errors
    /// When the database cannot commit; kinds pruned before stay pruned.
    pub async fn prune_batch(&self, cutoff_ms: i64, limit: usize) -> Result<Pruned> {
        let limit = limit as i64;
        let mut client = self.client().await?;
        let deliveries = client
            .execute(
                "UPDATE deliveries SET body='', headers='[]', pruned_at=$3
                 WHERE id IN (SELECT id FROM deliveries
                              WHERE pruned_at IS NULL AND received_at<$1
                                AND state IN ('done','ignored','dead')
                              ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&cutoff_ms, &limit, &now_ms()],
            )
            .await? as usize;
        let jobs = {
            let tx = client.transaction().await?;
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM jobs WHERE finished_at<$1 AND state IN ('done','dead')
                     ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    &[&cutoff_ms, &limit],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute("DELETE FROM job_replays WHERE job_id = ANY($1)", &[&ids])
                .await?;
            let n = tx
                .execute("DELETE FROM jobs WHERE id = ANY($1)", &[&ids])
                .await?;
            tx.commit().await?;
            n as usize
        };
        let events = client
            .execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at<$1
                                                 ORDER BY created_at LIMIT $2)",
                &[&cutoff_ms, &limit],
            )
            .await? as usize;
        let markers = client
            .execute(
                "DELETE FROM kv WHERE ctid IN (SELECT ctid FROM kv WHERE marker_at<$1
                                               ORDER BY marker_at LIMIT $2)",
                &[&cutoff_ms, &limit],
            )
            .await? as usize;
        let tombstones = {
            let tx = client.transaction().await?;
            let gone = tx
                .query(
                    "DELETE FROM record_tombstones WHERE (tenant, kind, key) IN
                       (SELECT tenant, kind, key FROM record_tombstones WHERE deleted_at<$1
                        ORDER BY deleted_at LIMIT $2)
                     RETURNING tx::text::bigint",
                    &[&cutoff_ms, &limit],
                )
                .await?;
            // A cursor from before the newest deletion dropped may have missed it: the feed
            // tells such a reader to read again (`changes`, 410).
            if let Some(newest) = gone.iter().map(|r| r.get::<_, i64>(0)).max() {
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES ('changes_horizon', $1)
                     ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)",
                    &[&newest],
                )
                .await?;
            }
            tx.commit().await?;
            gone.len()
        };
        Ok(Pruned {
            deliveries,
            jobs,
            events,
            markers,
            tombstones,
            hours: 0,
        })
    }
}
