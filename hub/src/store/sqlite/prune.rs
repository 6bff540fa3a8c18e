//! Retention in the database: bounded batches, one kind per write transaction. Delivery payloads are
//! emptied (body to an empty blob, headers to `[]`, `pruned_at` set) but their log rows stay;
//! finished jobs (done or dead) are deleted with their replay history; events are deleted; so are
//! the connectors' idempotency markers (`kv-set-marker`), which guard those jobs; and the
//! status view's hourly counts (`activity`). Deleting a
//! finished job also forgets its idempotency key: past the retention age, a job queued again with
//! the same key runs again. The schedule of batches is [`crate::retention`]'s.

use rusqlite::{Connection, params};

use super::Pruned;
use super::{Command, Result, Sqlite};
use crate::clock::now_ms;

/// What one write transaction prunes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    Deliveries,
    Jobs,
    Events,
    Markers,
    Tombstones,
    Hours,
}

impl Sqlite {
    /// Prunes at most `limit` of each kind older than `cutoff_ms`, each kind in its own
    /// transaction, so a webhook committing meanwhile waits for one kind's batch at most (500
    /// payloads of 10 KB take about 10 ms). Only finished deliveries (done, ignored, dead) lose
    /// their payload, so nothing pending is cut.
    ///
    /// # Errors
    /// When the database cannot commit; kinds pruned before stay pruned.
    pub async fn prune_batch(&self, cutoff_ms: i64, limit: usize) -> Result<Pruned> {
        let mut counts = [0; 6];
        let parts = [
            Part::Deliveries,
            Part::Jobs,
            Part::Events,
            Part::Markers,
            Part::Tombstones,
            Part::Hours,
        ];
        for (part, count) in parts.into_iter().zip(&mut counts) {
            *count = self
                .call(|reply| Command::Prune {
                    part,
                    cutoff_ms,
                    limit,
                    reply,
                })
                .await?;
        }
        let [deliveries, jobs, events, markers, tombstones, hours] = counts;
        Ok(Pruned {
            deliveries,
            jobs,
            events,
            markers,
            tombstones,
            hours,
        })
    }
}

/// One kind's batch, in the writer's savepoint; how many rows it pruned.
pub(super) fn batch(
    c: &Connection,
    part: Part,
    cutoff_ms: i64,
    limit: usize,
) -> rusqlite::Result<usize> {
    let limit = limit as i64;
    match part {
        Part::Deliveries => deliveries(c, cutoff_ms, limit),
        Part::Jobs => jobs(c, cutoff_ms, limit),
        Part::Events => c
            .prepare_cached(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at<?1
                                                 ORDER BY created_at LIMIT ?2)",
            )?
            .execute(params![cutoff_ms, limit]),
        // A marker is written in the commit that finishes the job it guards, so it goes with that
        // job: the same age, the same cutoff.
        Part::Markers => c
            .prepare_cached(
                "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE marker_at<?1
                                                ORDER BY marker_at LIMIT ?2)",
            )?
            .execute(params![cutoff_ms, limit]),
        Part::Tombstones => tombstones(c, cutoff_ms, limit),
        Part::Hours => c
            .prepare_cached(
                "DELETE FROM activity WHERE (tenant, connector, hour) IN
                   (SELECT tenant, connector, hour FROM activity WHERE hour < ?1 / 3600000 LIMIT ?2)",
            )?
            .execute(params![cutoff_ms, limit]),
    }
}

/// Drops deletions older than the cutoff from the change feed, and moves its horizon: a cursor
/// from before the newest dropped one may have missed a deletion (`Store::changes` says 410).
fn tombstones(c: &Connection, cutoff_ms: i64, limit: i64) -> rusqlite::Result<usize> {
    let newest: Option<i64> = c
        .prepare_cached(
            "SELECT max(seq) FROM (SELECT seq FROM record_tombstones WHERE deleted_at<?1
                                   ORDER BY deleted_at LIMIT ?2)",
        )?
        .query_row(params![cutoff_ms, limit], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok(0);
    };
    let n = c
        .prepare_cached(
            "DELETE FROM record_tombstones WHERE (tenant, kind, key) IN
               (SELECT tenant, kind, key FROM record_tombstones WHERE deleted_at<?1
                ORDER BY deleted_at LIMIT ?2)",
        )?
        .execute(params![cutoff_ms, limit])?;
    c.prepare_cached(
        "INSERT INTO counters (name, value) VALUES ('changes_horizon', ?1)
         ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute([newest])?;
    Ok(n)
}

fn deliveries(c: &Connection, cutoff_ms: i64, limit: i64) -> rusqlite::Result<usize> {
    // `pruned_at IS NULL` matches the partial index `deliveries_unpruned`, so the scan starts
    // at the oldest payload still kept, not at the first row of the log.
    c.prepare_cached(
        "UPDATE deliveries SET body=x'', headers='[]', pruned_at=?3
         WHERE id IN (SELECT id FROM deliveries
                      WHERE pruned_at IS NULL AND received_at<?1
                        AND state IN ('done','ignored','dead')
                      ORDER BY received_at LIMIT ?2)",
    )?
    .execute(params![cutoff_ms, limit, now_ms()])
}

fn jobs(c: &Connection, cutoff_ms: i64, limit: i64) -> rusqlite::Result<usize> {
    // The ids as one JSON array: two set-wise deletes instead of two statements per job.
    let jobs: String = c
        .prepare_cached(
            "SELECT json_group_array(id) FROM (SELECT id FROM jobs
             WHERE finished_at<?1 AND state IN ('done','dead') ORDER BY finished_at LIMIT ?2)",
        )?
        .query_row(params![cutoff_ms, limit], |r| r.get(0))?;
    c.prepare_cached("DELETE FROM job_replays WHERE job_id IN (SELECT value FROM json_each(?1))")?
        .execute([&jobs])?;
    c.prepare_cached("DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1))")?
        .execute([&jobs])
}

#[cfg(test)]
mod tests {
    use super::super::{Effects, KvWrite, NewDelivery, Published};
    use super::*;
    use crate::config::id;
    use crate::store::Store;

    fn set(key: &str, marker: bool) -> KvWrite {
        KvWrite {
            key: key.into(),
            value: Some(key.as_bytes().to_vec()),
            marker,
        }
    }

    #[tokio::test]
    async fn idempotency_markers_go_with_the_jobs_and_plain_values_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let effects = Effects {
            kv: vec![
                set("sent:a", true),
                set("sent:b", true),
                set("cursor", false),
            ],
            ..Default::default()
        };
        store.apply(&id("t1"), &id("c1"), effects).await.unwrap();
        // A plain set of a marker's key makes it a value, kept until deleted.
        let effects = Effects {
            kv: vec![set("sent:b", false)],
            ..Default::default()
        };
        store.apply(&id("t1"), &id("c1"), effects).await.unwrap();

        // Younger than the retention age: kept.
        let p = store.prune_batch(now_ms() - 1_000, 10).await.unwrap();
        assert_eq!(p.markers, 0);
        assert!(
            store
                .kv_get(&id("t1"), &id("c1"), "sent:a")
                .unwrap()
                .is_some()
        );

        // Older: the marker goes, the values stay.
        let p = store.prune_batch(now_ms() + 1_000, 10).await.unwrap();
        assert_eq!(p.markers, 1);
        assert_eq!(store.kv_get(&id("t1"), &id("c1"), "sent:a").unwrap(), None);
        assert_eq!(
            store
                .kv_get(&id("t1"), &id("c1"), "sent:b")
                .unwrap()
                .as_deref(),
            Some(&b"sent:b"[..])
        );
        assert!(
            store
                .kv_get(&id("t1"), &id("c1"), "cursor")
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_database_from_before_pruning_gains_the_column_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        // The deliveries table as the first release made it; events from before their keys
        // (one younger than the prune below).
        Connection::open(dir.path().join("hub.db"))
            .unwrap()
            .execute_batch(
                "CREATE TABLE deliveries (
                    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, connector TEXT NOT NULL,
                    route TEXT NOT NULL, method TEXT NOT NULL DEFAULT 'POST', identity TEXT NOT NULL,
                    event TEXT, url TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL,
                    received_at INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'received',
                    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, ignored_reason TEXT,
                    processed_at INTEGER, duration_us INTEGER, UNIQUE (tenant, connector, identity));
                 INSERT INTO deliveries (tenant, connector, route, identity, url, headers, body,
                                         received_at, state)
                 VALUES ('t1', 'c1', '', 'old', 'http://x', '[[\"a\",\"b\"]]', x'7b7d', 1000, 'done');
                 CREATE TABLE jobs (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,
                                    connector TEXT NOT NULL, task TEXT NOT NULL, delivery_id INTEGER,
                                    idempotency_key TEXT NOT NULL UNIQUE,
                                    state TEXT NOT NULL DEFAULT 'queued', run_at INTEGER NOT NULL,
                                    lease_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
                                    last_error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
                 CREATE TABLE kv (tenant TEXT NOT NULL, connector TEXT NOT NULL, key TEXT NOT NULL,
                                  value BLOB NOT NULL, version INTEGER NOT NULL DEFAULT 1,
                                  PRIMARY KEY (tenant, connector, key));
                 INSERT INTO kv (tenant, connector, key, value) VALUES ('t1', 'c1', 'cursor', x'37');
                 CREATE TABLE events (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL,
                                      connector TEXT NOT NULL, name TEXT NOT NULL,
                                      payload TEXT NOT NULL, job_id INTEGER,
                                      created_at INTEGER NOT NULL);
                 INSERT INTO events (tenant, connector, name, payload, created_at)
                 VALUES ('t1', 'c1', 'old.event', '{}', 3000);",
            )
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        let p = store.prune_batch(2_000, 10).await.unwrap();
        assert_eq!(p.deliveries, 1);
        assert_eq!(
            store
                .kv_get(&id("t1"), &id("c1"), "cursor")
                .unwrap()
                .as_deref(),
            Some(&b"7"[..]),
            "a kv value from before markers is a value"
        );
        let d = store.delivery_detail(1).await.unwrap().unwrap();
        assert!(d.pruned_at_ms.is_some());
        assert_eq!(d.delivery.body.as_deref(), Some(""));
        // And it takes new deliveries as before.
        let new = NewDelivery {
            tenant: id("t1"),
            connector: id("c1"),
            route: String::new(),
            method: "POST".into(),
            identity: "new".into(),
            event: None,
            url: "http://x".into(),
            headers: vec![],
            body: b"{}".to_vec(),
            received_at_ms: now_ms(),
            trace: None,
        };
        assert_eq!(store.ingest(vec![new]).await.unwrap()[0].id(), 2);
        // Its job (in the old jobs table) ends, keeping an answer in the column it gained and
        // publishing a keyed event next to the old, keyless one.
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let done = super::super::JobEnd::Done {
            ignored: None,
            result: Some(r#"{"id":"x"}"#.into()),
        };
        let effects = Effects {
            events: vec![Published {
                name: "new.event".into(),
                payload: "{}".into(),
            }],
            ..Default::default()
        };
        store.finish(job.lease(), effects, done, 1).await.unwrap();
        let jobs = store.jobs(Default::default()).await.unwrap();
        assert_eq!(jobs[0].result, Some(serde_json::json!({"id": "x"})));
        let events = store.events(id("t1"), None, 10).await.unwrap();
        let keys: Vec<_> = events
            .iter()
            .map(|e| (e.name.as_str(), e.key.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("new.event", Some("delivery:2:event:0:new.event")),
                ("old.event", None)
            ]
        );
        drop(store);
        // Opening it again migrates nothing twice.
        Store::open(dir.path()).unwrap();
    }
}
