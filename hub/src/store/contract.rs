//! One contract, two backends: every test here runs against the SQLite store and against a
//! real PostgreSQL server (started once per test process by `tests/postgres`, a fresh database
//! per test). A backend is right when these pass on it unchanged.

use super::postgres::{Postgres, testing::fresh_database};
use super::*;
use crate::config::id;

/// `async fn name(store) { body }`: the test `name::sqlite` and `name::postgres`, the body
/// run against each store.
macro_rules! contract {
    ($(#[doc = $doc:literal])* async fn $name:ident($store:ident) $body:block) => {
        mod $name {
            use super::*;

            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let $store = Store::open(dir.path()).unwrap();
                $body
            }

            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $store = Postgres::connect(&fresh_database().await).await.unwrap();
                $body
            }
        }
    };
}

/// Runs a blocking read (a host call's) from the test's runtime thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn delivery(identity: &str) -> NewDelivery {
    NewDelivery {
        tenant: id("t1"),
        connector: id("c1"),
        route: String::new(),
        method: "POST".into(),
        identity: identity.into(),
        event: Some("e".into()),
        url: "http://x/hooks/t1/c1".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
        received_at_ms: now_ms(),
    }
}

fn done() -> JobEnd {
    JobEnd::Done {
        ignored: None,
        result: None,
    }
}

contract! {
    async fn records_are_found_by_their_lookups_until_replaced_or_deleted(store) {
        let rec = |key: &str, data: Option<&str>| RecordWrite {
            kind: "contact".into(),
            key: key.into(),
            data: data.map(String::from),
        };
        let set = |key: &str, lookups: &[&str]| LookupsSet {
            kind: "contact".into(),
            key: key.into(),
            lookups: lookups.iter().map(|l| l.to_string()).collect(),
        };
        let phone = "phone:+14155550100";
        let found = |tenant: &str, lookup: &str| {
            let rows = blocking(|| store.record_find(&id(tenant), "contact", lookup, 10)).unwrap();
            rows.into_iter().map(|(k, _, _)| k).collect::<Vec<_>>()
        };
        // Two connectors' contacts with the same phone; lookups of a record that does not exist
        // are not kept.
        let effects = |records, lookups| Effects {
            records,
            lookups,
            ..Default::default()
        };
        let hubspot = effects(
            vec![rec("151", Some("{}"))],
            vec![set("151", &[phone, "email:a@x.io"])],
        );
        store
            .apply(&id("t1"), &id("hubspot"), hubspot)
            .await
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let zapier = effects(
            vec![rec("a@x.io", Some("{}"))],
            vec![set("a@x.io", &[phone]), set("ghost", &[phone])],
        );
        store.apply(&id("t1"), &id("zapier"), zapier).await.unwrap();
        assert_eq!(
            found("t1", phone),
            ["a@x.io", "151"],
            "newest first, either connector's"
        );
        assert_eq!(found("t1", "email:a@x.io"), ["151"]);
        assert!(
            found("t2", phone).is_empty(),
            "another tenant finds nothing"
        );

        // Replaced: the old lookups go. Deleted: the record's lookups go with it.
        store
            .apply(
                &id("t1"),
                &id("hubspot"),
                effects(vec![], vec![set("151", &["email:b@x.io"])]),
            )
            .await
            .unwrap();
        assert_eq!(found("t1", phone), ["a@x.io"]);
        assert_eq!(found("t1", "email:b@x.io"), ["151"]);
        store
            .apply(
                &id("t1"),
                &id("zapier"),
                effects(vec![rec("a@x.io", None)], vec![]),
            )
            .await
            .unwrap();
        assert!(found("t1", phone).is_empty());
        // A record written again after its delete has no lookups until they are set again.
        store
            .apply(
                &id("t1"),
                &id("zapier"),
                effects(vec![rec("a@x.io", Some("{}"))], vec![]),
            )
            .await
            .unwrap();
        assert!(found("t1", phone).is_empty());
    }
}

contract! {
    async fn duplicate_is_stored_once_and_queued_once(store) {
        let a = store.ingest(vec![delivery("x")]).await.unwrap();
        let b = store.ingest(vec![delivery("x")]).await.unwrap();
        assert!(matches!(a[0], Ingested::Stored(_)));
        assert_eq!(b[0], Ingested::Duplicate(a[0].id()));
        let jobs = store.claim(10, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].task,
            Task::Delivery {
                delivery_id: a[0].id()
            }
        );
    }
}

contract! {
    async fn concurrent_ingests_all_commit(store) {
        let mut handles = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.ingest(vec![delivery(&format!("id{i}"))]).await
            }));
        }
        for h in handles {
            assert!(matches!(h.await.unwrap().unwrap()[0], Ingested::Stored(_)));
        }
        let rows = store
            .deliveries(DeliveryFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 200);
    }
}

contract! {
    async fn webhooks_committed_together_are_deduplicated_against_each_other(store) {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.ingest(vec![delivery(&format!("id{}", i % 50))]).await })
            })
            .collect();
        let mut stored = std::collections::HashMap::new();
        let mut duplicates = Vec::new();
        for h in handles {
            match h.await.unwrap().unwrap()[0] {
                Ingested::Stored(id) => assert!(stored.insert(id, ()).is_none()),
                Ingested::Duplicate(id) => duplicates.push(id),
            }
        }
        assert_eq!((stored.len(), duplicates.len()), (50, 50));
        assert!(duplicates.iter().all(|id| stored.contains_key(id)));
        assert_eq!(store.claim(1000, 60_000).await.unwrap().len(), 50);
    }
}

contract! {
    async fn expired_lease_is_claimed_again_and_effects_commit_only_on_success(store) {
        store.ingest(vec![delivery("x")]).await.unwrap();
        let first = store.claim(1, -1).await.unwrap(); // lease already expired: a crashed worker
        assert_eq!(first.len(), 1);
        let again = store.claim(1, 60_000).await.unwrap();
        assert_eq!(again.len(), 1, "a job whose lease expired is claimed again");
        assert_eq!(again[0].attempts, 2);
        let effects = Effects {
            records: vec![RecordWrite {
                kind: "call".into(),
                key: "c1".into(),
                data: Some("{\"a\":1}".into()),
            }],
            ..Default::default()
        };
        let retry = JobEnd::Retry {
            error: "boom".into(),
            at_ms: now_ms(),
        };
        store
            .finish(again[0].lease(), effects.clone(), retry, 5)
            .await
            .unwrap();
        assert_eq!(
            blocking(|| store.record_get(&id("t1"), "call", "c1")).unwrap(),
            None,
            "failed attempt leaves no record"
        );
        let third = store.claim(1, 60_000).await.unwrap();
        store
            .finish(
                third[0].lease(),
                effects,
                JobEnd::Done {
                    ignored: None,
                    result: None,
                },
                5,
            )
            .await
            .unwrap();
        assert_eq!(
            blocking(|| store.record_get(&id("t1"), "call", "c1"))
                .unwrap()
                .as_deref(),
            Some("{\"a\":1}")
        );
        let row = store.delivery(1).await.unwrap().unwrap();
        assert_eq!(row.state, DeliveryState::Done);
    }
}

contract! {
    async fn a_stale_read_applies_nothing_and_the_job_runs_again(store) {
        store
            .ingest(vec![delivery("a"), delivery("b")])
            .await
            .unwrap();
        let jobs = store.claim(2, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 2);
        // Both attempts read record call/c1 while it was absent (version 0) and write it.
        let write = |v: &str| Effects {
            records: vec![RecordWrite {
                kind: "call".into(),
                key: "c1".into(),
                data: Some(v.into()),
            }],
            reads: vec![ReadSeen {
                read: Read::Record("call".into(), "c1".into()),
                version: 0,
            }],
            ..Default::default()
        };
        let done = JobEnd::Done {
            ignored: None,
            result: None,
        };
        store
            .finish(jobs[0].lease(), write("{\"n\":1}"), done.clone(), 1)
            .await
            .unwrap();
        store
            .finish(jobs[1].lease(), write("{\"n\":2}"), done, 1)
            .await
            .unwrap();
        assert_eq!(
            blocking(|| store.record_get(&id("t1"), "call", "c1"))
                .unwrap()
                .as_deref(),
            Some("{\"n\":1}"),
            "the stale write is not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let again = store.claim(2, 60_000).await.unwrap();
        assert_eq!(again.len(), 1, "the conflicting job is queued again");
        assert_eq!(again[0].id, jobs[1].id);
        assert_eq!(
            again[0].attempts, 1,
            "a conflict does not count as a failed attempt"
        );
    }
}

contract! {
    async fn finishing_a_job_hands_over_the_next_one(store) {
        store
            .ingest(vec![delivery("a"), delivery("b")])
            .await
            .unwrap();
        let first = store.claim(1, 60_000).await.unwrap().remove(0);
        let done = JobEnd::Done {
            ignored: None,
            result: None,
        };
        let next = store
            .finish_and_claim(first.lease(), Effects::default(), done.clone(), 1, 60_000)
            .await
            .unwrap()
            .expect("the second delivery's job comes with the first one's end");
        assert_ne!(next.id, first.id);
        assert_eq!(next.attempts, 1);
        assert!(
            store.claim(5, 60_000).await.unwrap().is_empty(),
            "the handed-over job is leased, not claimable again"
        );
        let after = store
            .finish_and_claim(next.lease(), Effects::default(), done, 1, 60_000)
            .await
            .unwrap();
        assert!(after.is_none(), "an empty queue hands over nothing");
        assert_eq!(
            store.delivery(1).await.unwrap().unwrap().state,
            DeliveryState::Done
        );
        assert_eq!(
            store.delivery(2).await.unwrap().unwrap().state,
            DeliveryState::Done
        );
    }
}

contract! {
    /// A worker that stalled past its lease cannot end the job another claim took meanwhile:
    /// nothing it would write is kept, and the new holder's end counts.
    async fn a_stalled_worker_cannot_end_a_job_claimed_again(store) {
        store.ingest(vec![delivery("x")]).await.unwrap();
        let stalled = store.claim(1, -1).await.unwrap().remove(0);
        let holder = store.claim(1, 60_000).await.unwrap().remove(0);
        assert_eq!(holder.id, stalled.id);
        assert_ne!(holder.lease(), stalled.lease(), "each claim has its own token");
        let late = Effects {
            records: vec![RecordWrite {
                kind: "call".into(),
                key: "late".into(),
                data: Some("{}".into()),
            }],
            ..Default::default()
        };
        let refused = store.finish(stalled.lease(), late, done(), 1).await;
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { job }) if job == stalled.id),
            "{refused:?}"
        );
        assert_eq!(blocking(|| store.record_get(&id("t1"), "call", "late")).unwrap(), None);
        assert_eq!(store.delivery(1).await.unwrap().unwrap().state, DeliveryState::Processing);
        store.finish(holder.lease(), Effects::default(), done(), 1).await.unwrap();
        assert_eq!(store.delivery(1).await.unwrap().unwrap().state, DeliveryState::Done);
        let again = store.finish(holder.lease(), Effects::default(), done(), 1).await;
        assert!(matches!(again, Err(StoreError::LeaseLost { .. })), "a job ends once");
    }
}

contract! {
    /// A job is queued once per idempotency key; its effects' follow-up jobs belong to the
    /// delivery that caused them, and its events and kv writes are kept with its end.
    async fn a_job_s_effects_are_kept_with_its_end(store) {
        let first = store
            .enqueue(NewJob {
                tenant: id("t1"),
                connector: id("c1"),
                task: Task::Job { name: "sync".into(), input: "{}".into() },
                run_at_ms: now_ms(),
                idempotency_key: Some("k1".into()),
            })
            .await
            .unwrap();
        assert!(first.is_some());
        let again = store
            .enqueue(NewJob {
                tenant: id("t1"),
                connector: id("c1"),
                task: Task::Job { name: "sync".into(), input: "{}".into() },
                run_at_ms: now_ms(),
                idempotency_key: Some("k1".into()),
            })
            .await
            .unwrap();
        assert_eq!(again, None, "the same key is queued once");
        store.ingest(vec![delivery("d1")]).await.unwrap();
        let jobs = store.claim(10, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let delivery_job = jobs.iter().find(|j| matches!(j.task, Task::Delivery { .. })).unwrap();
        let effects = Effects {
            kv: vec![KvWrite { key: "cursor".into(), value: Some(b"42".to_vec()), marker: false }],
            events: vec![Published { name: "call.analyzed".into(), payload: "{\"id\":1}".into() }],
            jobs: vec![NewJob {
                tenant: id("t1"),
                connector: id("c1"),
                task: Task::Action { name: "send".into(), input: "{}".into() },
                run_at_ms: now_ms(),
                idempotency_key: None,
            }],
            ..Default::default()
        };
        store.finish(delivery_job.lease(), effects, done(), 3).await.unwrap();
        assert_eq!(
            blocking(|| store.kv_get(&id("t1"), &id("c1"), "cursor")).unwrap().as_deref(),
            Some(&b"42"[..])
        );
        let events = store.events(id("t1"), None, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "call.analyzed");
        assert_eq!(events[0].payload, serde_json::json!({"id": 1}));
        assert!(store.events(id("t2"), None, 10).await.unwrap().is_empty(), "another tenant's");
        let of_delivery = store.jobs_for_delivery(1).await.unwrap();
        assert_eq!(of_delivery.len(), 2, "the follow-up belongs to the delivery: {of_delivery:?}");
        assert_eq!(of_delivery[0].state, JobState::Done);
        assert_eq!(of_delivery[1].state, JobState::Queued);
        assert_eq!(store.pending_jobs().await.unwrap(), 2, "the first job and the follow-up");
        let row = store.delivery(1).await.unwrap().unwrap();
        assert_eq!((row.state, row.attempts, row.duration_us), (DeliveryState::Done, 1, Some(3)));
        let request = blocking(|| store.delivery_request(1)).unwrap().unwrap();
        assert_eq!(request.body, b"{}");
        assert_eq!(request.headers, [("content-type".to_string(), "application/json".to_string())]);
    }
}

contract! {
    /// Claimers racing on one queue (on PostgreSQL each claim its own connection and
    /// transaction): every job is claimed by exactly one.
    async fn racing_claimers_take_each_job_once(store) {
        let deliveries: Vec<_> = (0..300).map(|i| delivery(&format!("id{i}"))).collect();
        store.ingest(deliveries).await.unwrap();
        let claimers: Vec<_> = [store.clone(), store.clone(), store.clone()]
            .into_iter()
            .map(|s| {
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let jobs = s.claim(7, 60_000).await.unwrap();
                        if jobs.is_empty() {
                            return mine;
                        }
                        mine.extend(jobs.into_iter().map(|j| j.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in claimers {
            all.extend(c.await.unwrap());
        }
        all.sort_unstable();
        let claimed = all.len();
        all.dedup();
        assert_eq!((claimed, all.len()), (300, 300), "each job claimed once");
    }
}

contract! {
    /// A tick is claimed once; a pending run is never overlapped; a skipped tick advances.
    async fn a_tick_is_claimed_once_and_never_overlaps_a_pending_run(store) {
        let tick = |expected_ms, tick_ms| TickClaim {
            tenant: id("t1"),
            name: "s".into(),
            expected_ms,
            tick_ms,
            run: Some((id("c1"), Task::Job { name: "tick".into(), input: "{}".into() })),
        };
        assert_eq!(store.schedule_start(&id("t1"), "s", 1_000).await.unwrap(), 1_000);
        assert_eq!(
            store.schedule_start(&id("t1"), "s", 9_000).await.unwrap(),
            1_000,
            "a known schedule keeps its last tick"
        );
        let TickOutcome::Queued(job) = store.claim_tick(tick(1_000, 2_000)).await.unwrap() else {
            panic!("the first claim queues")
        };
        // A second process that still believes the last tick is 1000 loses.
        assert_eq!(
            store.claim_tick(tick(1_000, 2_000)).await.unwrap(),
            TickOutcome::Lost { current_ms: 2_000 }
        );
        assert_eq!(store.claim_tick(tick(2_000, 3_000)).await.unwrap(), TickOutcome::Overlap(job));
        let claimed = store.claim(10, 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].idempotency_key, "schedule:t1:s:2000");
        store.finish(claimed[0].lease(), Effects::default(), done(), 1).await.unwrap();
        assert!(matches!(
            store.claim_tick(tick(3_000, 4_000)).await.unwrap(),
            TickOutcome::Queued(_)
        ));
        let mut skip = tick(4_000, 5_000);
        skip.run = None;
        assert_eq!(store.claim_tick(skip).await.unwrap(), TickOutcome::Advanced);
        assert_eq!(store.schedule_start(&id("t1"), "s", 0).await.unwrap(), 5_000);
        let runs = store.schedule_runs(id("t1")).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].0.as_str(), runs[0].1), ("s", 5_000));
    }
}

contract! {
    /// Many ticks claimed at once by racing processes: each tick queues one job.
    async fn racing_claims_queue_each_tick_once(store) {
        store.schedule_start(&id("t1"), "s", 0).await.unwrap();
        let mut queued = 0;
        for tick in 1..=20i64 {
            let claims: Vec<_> = (0..4)
                .map(|_| {
                    let s = store.clone();
                    tokio::spawn(async move {
                        s.claim_tick(TickClaim {
                            tenant: id("t1"),
                            name: "s".into(),
                            expected_ms: (tick - 1) * 1000,
                            tick_ms: tick * 1000,
                            run: Some((id("c1"), Task::Job { name: "tick".into(), input: "{}".into() })),
                        })
                        .await
                        .unwrap()
                    })
                })
                .collect();
            let mut won = 0;
            for c in claims {
                if let TickOutcome::Queued(_) = c.await.unwrap() {
                    won += 1;
                }
            }
            assert_eq!(won, 1, "tick {tick}");
            queued += won;
            for job in store.claim(10, 60_000).await.unwrap() {
                store.finish(job.lease(), Effects::default(), done(), 1).await.unwrap();
            }
        }
        assert_eq!(queued, 20);
    }
}

contract! {
    /// The log lists newest first and filters by tenant, state and text in the body.
    async fn the_log_lists_newest_first_and_filters(store) {
        let mut other = delivery("o1");
        other.tenant = id("t2");
        other.body = b"{\"needle\":true}".to_vec();
        store.ingest(vec![delivery("a"), delivery("b"), other]).await.unwrap();
        let all = store.deliveries(DeliveryFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), [3, 2, 1]);
        let t1 = store
            .deliveries(DeliveryFilter { tenant: Some(id("t1")), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(t1.len(), 2);
        let found = store
            .deliveries(DeliveryFilter { contains: Some("needle".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(found.iter().map(|d| d.identity.as_str()).collect::<Vec<_>>(), ["o1"]);
        let by_identity = store
            .deliveries(DeliveryFilter { search: Some("b".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(by_identity.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
        let page = store
            .deliveries(DeliveryFilter { before: Some(3), limit: 1, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
        assert_eq!(page[0].state, DeliveryState::Received);
    }
}

contract! {
    /// An endpoint disabled (with why) stays so until enabled again.
    async fn an_endpoint_is_disabled_until_enabled(store) {
        assert_eq!(store.endpoint_disabled(&id("t1"), "app").await.unwrap(), None);
        store.set_endpoint_disabled(&id("t1"), "app", Some("410 Gone".into())).await.unwrap();
        let disabled = store.endpoint_disabled(&id("t1"), "app").await.unwrap().unwrap();
        assert_eq!(disabled.reason, "410 Gone");
        assert_eq!(store.endpoint_disabled(&id("t2"), "app").await.unwrap(), None);
        store.set_endpoint_disabled(&id("t1"), "app", None).await.unwrap();
        assert_eq!(store.endpoint_disabled(&id("t1"), "app").await.unwrap(), None);
    }
}
