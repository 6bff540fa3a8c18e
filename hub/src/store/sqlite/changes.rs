//! The change feed: a tenant's records in the order they changed. Every record write takes the
//! next change number (`seq`) in its own transaction (`records::write`); a deletion leaves a
//! tombstone with its number. A record changed several times since a cursor is listed once, at
//! its latest change. Retention drops old tombstones and moves the feed's horizon: a cursor from
//! before it may have missed a deletion, and is told so ([`Changes::expired`]).

use rusqlite::{OptionalExtension, params};

use super::{Change, Changes};
use super::{Result, Sqlite};
use crate::id::TenantId;

impl Sqlite {
    /// Up to `limit` (1 to 1,000) of `tenant`'s records changed after change number `after`, in
    /// change order, optionally of some kinds only.
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
        self.read_async(move |c| {
            let counter = |name: &str| -> rusqlite::Result<i64> {
                Ok(
                    c.prepare_cached("SELECT value FROM counters WHERE name=?1")?
                        .query_row([name], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0),
                )
            };
            let horizon = counter("changes_horizon")?;
            let latest = counter("record_seq")?;
            // From the start (0) nothing is missed: the records are all there.
            if after > 0 && after < horizon {
                return Ok(Changes {
                    changes: Vec::new(),
                    expired: true,
                    latest,
                });
            }
            let kinds = kinds.map(|k| serde_json::to_string(&k).unwrap_or_default());
            let mut stmt = c.prepare_cached(
                "SELECT seq, kind, key, 0, data, version, lookups, updated_at FROM records
                 WHERE tenant=?1 AND seq>?2
                   AND (?3 IS NULL OR kind IN (SELECT value FROM json_each(?3)))
                 UNION ALL
                 SELECT t.seq, t.kind, t.key, 1, NULL, NULL, NULL, t.deleted_at
                 FROM record_tombstones t
                 WHERE t.tenant=?1 AND t.seq>?2
                   AND (?3 IS NULL OR t.kind IN (SELECT value FROM json_each(?3)))
                   AND NOT EXISTS (SELECT 1 FROM records r
                                   WHERE r.tenant=t.tenant AND r.kind=t.kind AND r.key=t.key)
                 ORDER BY 1 LIMIT ?4",
            )?;
            let limit = limit.clamp(1, 1000) as i64;
            let changes = stmt
                .query_map(params![tenant, after, kinds, limit], |r| {
                    let data: Option<String> = r.get(4)?;
                    let lookups: Option<String> = r.get(6)?;
                    Ok(Change {
                        seq: r.get(0)?,
                        kind: r.get(1)?,
                        key: r.get(2)?,
                        deleted: r.get::<_, i64>(3)? == 1,
                        data: data.and_then(|d| serde_json::from_str(&d).ok()),
                        version: r.get(5)?,
                        lookups: lookups
                            .and_then(|l| serde_json::from_str(&l).ok())
                            .unwrap_or_default(),
                        changed_at_ms: r.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Changes {
                changes,
                expired: false,
                latest,
            })
        })
        .await
    }
}
