//! The store's own tests: ingest and dedupe, group commit, leases, effects, lookups, the WAL.

use super::model::{MAX_RESULT_BYTES, kept_result};
use super::sqlite::schema;
use super::*;
use crate::clock::now_ms;
use crate::config::id;
use crate::id::{ConnectorId, TenantId};
use rusqlite::Connection;

#[test]
fn an_action_answer_is_kept_whole_up_to_64_kib_then_as_a_note_of_its_size() {
    let small = r#"{"id":"re_1"}"#;
    assert_eq!(kept_result(small), small);
    let big = "x".repeat(MAX_RESULT_BYTES + 1);
    let kept: serde_json::Value = serde_json::from_str(&kept_result(&big)).unwrap();
    assert_eq!(
        kept,
        serde_json::json!({ "truncated": true, "bytes": MAX_RESULT_BYTES + 1 })
    );
}

fn delivery(identity: &str) -> NewDelivery {
    NewDelivery::test(identity)
}

#[tokio::test]
async fn a_webhook_that_cannot_be_stored_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Another connection makes one identity impossible to store.
    Connection::open(dir.path().join("hub.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.identity = 'poison'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let s = store.clone();
            let id = if i == 50 {
                "poison".to_string()
            } else {
                format!("id{i}")
            };
            tokio::spawn(async move { (i, s.ingest(vec![delivery(&id)]).await) })
        })
        .collect();
    for h in handles {
        match h.await.unwrap() {
            (50, result) => assert!(result.is_err(), "the poisoned webhook is refused"),
            (_, result) => assert!(matches!(result.unwrap()[0], Ingested::Stored(_))),
        }
    }
    assert_eq!(store.claim(1000, 60_000).await.unwrap().len(), 99);
}

#[tokio::test]
async fn the_wal_is_folded_back_by_its_own_thread_while_webhooks_keep_coming() {
    // The writer never checkpoints (`wal_autocheckpoint = 0`); the checkpoint thread copies
    // the WAL back into the database on its own. How far it keeps up while webhooks come
    // depends on the CPU it gets (a busy machine lets the WAL grow, up to the 64 MiB that
    // forces a RESTART), so the test asserts that it does the copying, within a bound.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = dir.path().join("hub.db");
    for round in 0..40 {
        let batch = (0..100)
            .map(|i| NewDelivery {
                body: vec![b'x'; 8 * 1024],
                ..delivery(&format!("r{round}-{i}"))
            })
            .collect();
        store.ingest(batch).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let written = 40 * 100 * 8 * 1024;
    let started = std::time::Instant::now();
    loop {
        let size = std::fs::metadata(&db).unwrap().len();
        if size >= written / 2 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the database file is {size} bytes after {written} bytes of bodies: not checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_data_directory_and_database_are_the_operators_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let store = Store::open(&dir).unwrap();
    store.ingest(vec![delivery("x")]).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn the_log_is_searched_by_id_or_identity_across_tenants_and_connectors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut batch = Vec::new();
    for (t, c) in [("t1", "c1"), ("t1", "c2"), ("t2", "c1")] {
        for i in 0..50 {
            let mut d = delivery(&format!("{t}-{c}-{i}"));
            d.tenant = id(t);
            d.connector = id(c);
            d.body = format!("{{\"n\":{i},\"who\":\"{t}\"}}").into_bytes();
            batch.push(d);
        }
    }
    // The same identity under two connectors is two deliveries.
    let mut twin = delivery("shared");
    twin.connector = id("c2");
    batch.push(delivery("shared"));
    batch.push(twin);
    store.ingest(batch).await.unwrap();
    let search = |q: &str, tenant: Option<&str>| {
        let filter = DeliveryFilter {
            search: Some(q.to_string()),
            tenant: tenant.map(id),
            limit: 50,
            ..Default::default()
        };
        let store = store.clone();
        async move { store.deliveries(filter).await.unwrap() }
    };
    let found = search("t2-c1-7", None).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].tenant.as_str(), found[0].identity.as_str()),
        ("t2", "t2-c1-7")
    );
    assert_eq!(
        search("t2-c1-7", Some("t1")).await.len(),
        0,
        "the tenant filter holds"
    );
    let shared = search("shared", None).await;
    assert_eq!(shared.len(), 2);
    assert!(shared[0].id > shared[1].id, "newest first");
    let by_id = search(&shared[1].id.to_string(), None).await;
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].identity, "shared");
    assert!(search("nothing-like-it", None).await.is_empty());
    // Text inside the payload, and a time range.
    let filter = DeliveryFilter {
        contains: Some("\"who\":\"t2\"".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.deliveries(filter).await.unwrap().len(), 50);
    let filter = DeliveryFilter {
        until_ms: Some(1),
        limit: 100,
        ..Default::default()
    };
    assert!(store.deliveries(filter).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_writer_counts_each_hour_s_deliveries_and_their_ends_for_the_status_view() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batch: Vec<NewDelivery> = (0..5).map(|i| delivery(&format!("a{i}"))).collect();
    store.ingest(batch).await.unwrap();
    // A retry of one is stored once and counted once.
    store.ingest(vec![delivery("a0")]).await.unwrap();
    let jobs = store.claim(10, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 5);
    let dead = JobEnd::Dead {
        error: "permanent: no".into(),
    };
    store
        .finish(jobs[0].lease(), Effects::default(), dead, 10)
        .await
        .unwrap();
    let done = JobEnd::Done {
        ignored: None,
        result: None,
    };
    store
        .finish(jobs[1].lease(), Effects::default(), done, 10)
        .await
        .unwrap();
    let hours = store.activity(now_ms() - 3_600_000).await.unwrap();
    let received: i64 = hours.iter().map(|h| h.received).sum();
    let failed: i64 = hours.iter().map(|h| h.failed).sum();
    assert_eq!((received, failed), (5, 1));
    let last = store.last_activity().await.unwrap();
    assert_eq!(last.len(), 1);
    let (t, c, last_received, last_done) = &last[0];
    assert_eq!((t.as_str(), c.as_str()), ("t1", "c1"));
    assert!(last_received.is_some() && last_done.is_some());
    // The bounded queue counts: 3 still running, 1 dead.
    let counts = store.queue_counts(10_000).await.unwrap();
    let of = |s: JobState| {
        counts
            .iter()
            .filter(|c| c.state == s)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!((of(JobState::Running), of(JobState::Dead)), (3, 1));
    assert_eq!(
        store
            .queue_counts(2)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == JobState::Running)
            .map(|c| c.count)
            .sum::<i64>(),
        2
    );
}

#[tokio::test]
async fn a_tenant_s_calls_per_day_follow_each_record_write_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (t, c): (TenantId, ConnectorId) = (id("t1"), id("c1"));
    let day_ms = 1_796_083_200_000_i64; // 2026-12-01 00:00 UTC
    let call = |key: &str, data: serde_json::Value| RecordWrite {
        kind: "call".into(),
        key: key.into(),
        data: Some(data.to_string()),
    };
    let write = |w: RecordWrite| {
        let (store, t, c) = (store.clone(), t.clone(), c.clone());
        async move {
            let effects = Effects {
                records: vec![w],
                ..Default::default()
            };
            store.apply(&t, &c, effects).await.unwrap();
        }
    };
    let started = serde_json::json!({ "direction": "inbound", "call_status": "ongoing", "start_timestamp": day_ms + 3_600_000 });
    write(call("a", started.clone())).await;
    write(call("b", serde_json::json!({ "direction": "outbound", "call_status": "not_connected", "start_timestamp": day_ms + 7_200_000 }))).await;
    // Call a ends, then its analysis arrives: it moves within its day, counted once.
    let mut ended = started.clone();
    ended["call_status"] = "ended".into();
    ended["duration_ms"] = 90_000.into();
    write(call("a", ended.clone())).await;
    ended["call_analysis"] = serde_json::json!({ "user_sentiment": "Positive", "call_successful": true, "in_voicemail": false });
    write(call("a", ended)).await;
    let a = store
        .analytics(t.clone(), "2026-11-01".into())
        .await
        .unwrap();
    assert_eq!(a.calls.len(), 1);
    let d = &a.calls[0];
    assert_eq!(d.day, "2026-12-01");
    assert_eq!(
        (d.calls, d.inbound, d.outbound, d.answered, d.unanswered),
        (2, 1, 1, 1, 1)
    );
    assert_eq!((d.analyzed, d.successful, d.positive), (1, 1, 1));
    assert_eq!(d.avg_duration_s, Some(90.0));
    // Deleting a record takes it out of its day; the window starts where it is asked to.
    write(RecordWrite {
        kind: "call".into(),
        key: "b".into(),
        data: None,
    })
    .await;
    let a = store
        .analytics(t.clone(), "2026-11-01".into())
        .await
        .unwrap();
    assert_eq!((a.calls[0].calls, a.calls[0].outbound), (1, 0));
    assert!(
        store
            .analytics(t, "2026-12-02".into())
            .await
            .unwrap()
            .calls
            .is_empty()
    );
}

#[tokio::test]
async fn a_database_from_before_the_per_day_figures_gets_them_from_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let (t, c): (TenantId, ConnectorId) = (id("t1"), id("c1"));
    {
        let store = Store::open(dir.path()).unwrap();
        let records = (0..3)
            .map(|i| RecordWrite {
                kind: "call".into(),
                key: format!("c{i}"),
                data: Some(
                    serde_json::json!({ "direction": "inbound", "call_status": "ended", "start_timestamp": 1_796_083_200_000_i64 })
                        .to_string(),
                ),
            })
            .collect();
        let effects = Effects {
            records,
            ..Default::default()
        };
        store.apply(&t, &c, effects).await.unwrap();
    }
    let db = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    db.execute_batch("DROP TABLE call_days; DROP TABLE email_days; DROP TABLE message_days; DROP TABLE activity;")
        .unwrap();
    drop(db);
    let store = Store::open(dir.path()).unwrap();
    let a = store.analytics(t, "2026-11-01".into()).await.unwrap();
    assert_eq!(a.calls.len(), 1);
    assert_eq!((a.calls[0].calls, a.calls[0].answered), (3, 3));
}

#[tokio::test]
async fn a_database_from_a_newer_hub_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let db = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    db.pragma_update(None, "user_version", schema::VERSION + 1)
        .unwrap();
    drop(db);
    let Err(e) = Store::open(dir.path()) else {
        panic!("a newer database opened")
    };
    let e = e.to_string();
    assert!(e.contains("newer than this hub knows"), "{e}");
    assert!(
        e.contains(&format!("version {}", schema::VERSION + 1)),
        "{e}"
    );
}
