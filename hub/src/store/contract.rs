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
    /// One request holding a webhook twice and one stored before: each stored once, in order.
    async fn duplicates_inside_one_request_answer_with_the_first(store) {
        let z = store.ingest(vec![delivery("z")]).await.unwrap()[0].id();
        let got = store
            .ingest(["z", "x", "y", "x", "z"].map(delivery).to_vec())
            .await
            .unwrap();
        let (x, y) = (got[1].id(), got[2].id());
        assert!(matches!(got[1], Ingested::Stored(_)) && matches!(got[2], Ingested::Stored(_)));
        assert_eq!(
            got,
            vec![
                Ingested::Duplicate(z),
                Ingested::Stored(x),
                Ingested::Stored(y),
                Ingested::Duplicate(x),
                Ingested::Duplicate(z),
            ]
        );
        assert_eq!(store.claim(10, 60_000).await.unwrap().len(), 3);
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

contract! {
    async fn a_dead_job_is_queued_again_with_its_history_kept(store) {
        let delivery_id = store.ingest(vec![delivery("a")]).await.unwrap()[0].id();
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let dead = JobEnd::Dead { error: "no".into() };
        store
            .finish(job.lease(), Default::default(), dead, 1)
            .await
            .unwrap();

        // Replaying a queued or running job changes nothing.
        let other = store.ingest(vec![delivery("b")]).await.unwrap()[0].id();
        let pending = store
            .replay(Replay::Delivery(other))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pending.pending, 1);
        assert_eq!(pending.queued, 0);
        assert_eq!(store.replay(Replay::Job(999)).await.unwrap(), None);

        let filter = DeadFilter {
            tenant: Some(id("t1")),
            ..Default::default()
        };
        let r = store.replay(Replay::Dead(filter.clone())).await.unwrap();
        assert_eq!(r.unwrap().queued, 1);
        let d = store.delivery_detail(delivery_id).await.unwrap().unwrap();
        assert_eq!(d.delivery.state, DeliveryState::Received);
        let j = &d.jobs[0];
        assert_eq!((j.job.state.as_str(), j.job.attempts), ("queued", 0));
        assert_eq!(j.job.last_error, None);
        assert_eq!(j.replays.len(), 1);
        assert_eq!(j.replays[0].state, JobState::Dead);
        assert_eq!(j.replays[0].last_error.as_deref(), Some("no"));
        // Nothing dead is left to replay; another tenant's set is empty.
        let again = store.replay(Replay::Dead(filter)).await.unwrap().unwrap();
        assert_eq!(again, Replayed::default());
        let listed = store
            .jobs(JobFilter {
                key_prefix: Some(format!("delivery:{delivery_id}")),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].replays.len(), 1);
    }
}

contract! {
    async fn a_replayed_job_shows_no_answer_until_it_answers_again(store) {
        store.ingest(vec![delivery("a")]).await.unwrap();
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let done = |answer: &str| JobEnd::Done {
            ignored: None,
            result: Some(answer.into()),
        };
        let finish = store.finish(
            job.lease(),
            Default::default(),
            done(r#"{"id":"first"}"#),
            1,
        );
        finish.await.unwrap();
        assert_eq!(
            store.jobs(JobFilter::default()).await.unwrap()[0].result,
            Some(serde_json::json!({"id": "first"}))
        );

        store.replay(Replay::Job(job.id)).await.unwrap().unwrap();
        let queued = &store.jobs(JobFilter::default()).await.unwrap()[0];
        assert_eq!(
            (queued.job.state.as_str(), &queued.result),
            ("queued", &None)
        );

        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let finish = store.finish(job.lease(), Default::default(), done("plain text"), 1);
        finish.await.unwrap();
        assert_eq!(
            store.jobs(JobFilter::default()).await.unwrap()[0].result,
            Some(serde_json::Value::String("plain text".into())),
            "an answer that is not JSON shows as text"
        );
    }
}

contract! {
    async fn a_replayed_delivery_publishes_its_events_once(store) {
        let delivery_id = store.ingest(vec![delivery("a")]).await.unwrap()[0].id();
        let effects = |events: &[&str]| Effects {
            events: events
                .iter()
                .map(|e| Published {
                    name: e.to_string(),
                    payload: "{}".into(),
                })
                .collect(),
            ..Default::default()
        };
        let done = || JobEnd::Done {
            ignored: None,
            result: None,
        };
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let finish = store.finish(job.lease(), effects(&["call.ended"]), done(), 1);
        finish.await.unwrap();

        // Replayed, the handling publishes the same event again and, this time, one more.
        store.replay(Replay::Delivery(delivery_id)).await.unwrap().unwrap();
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let again = effects(&["call.ended", "call.analyzed"]);
        store.finish(job.lease(), again, done(), 1).await.unwrap();

        let events = store
            .events(id("t1"), None, 10)
            .await
            .unwrap();
        let keys: Vec<_> = events
            .iter()
            .rev()
            .map(|e| e.key.clone().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                format!("delivery:{delivery_id}:event:0:call.ended"),
                format!("delivery:{delivery_id}:event:1:call.analyzed"),
            ]
        );
    }
}

fn put(kind: &str, key: &str, data: Option<&str>) -> Effects {
    Effects {
        records: vec![RecordWrite {
            kind: kind.into(),
            key: key.into(),
            data: data.map(String::from),
        }],
        ..Default::default()
    }
}

contract! {
    /// The change feed lists each record once at its latest change, deletions as tombstones,
    /// in the order they changed; a cursor after the last change has nothing new, and another
    /// tenant's changes never show.
    async fn the_change_feed_lists_each_change_once_in_order(store) {
        let (t1, c) = (id("t1"), id("c1"));
        store.apply(&t1, &c, put("call", "a", Some("{\"v\":1}"))).await.unwrap();
        store.apply(&t1, &c, put("contact", "x", Some("{}"))).await.unwrap();
        store.apply(&t1, &c, put("call", "b", Some("{}"))).await.unwrap();
        store.apply(&id("t2"), &c, put("call", "other", Some("{}"))).await.unwrap();
        store.apply(&t1, &c, put("call", "a", Some("{\"v\":2}"))).await.unwrap();
        store.apply(&t1, &c, put("call", "b", None)).await.unwrap();
        let page = store.changes(t1.clone(), 0, None, 100).await.unwrap();
        assert!(!page.expired);
        let seen: Vec<_> = page
            .changes
            .iter()
            .map(|c| (c.kind.as_str(), c.key.as_str(), c.deleted))
            .collect();
        assert_eq!(seen, [("contact", "x", false), ("call", "a", false), ("call", "b", true)]);
        assert_eq!(page.changes[1].data, Some(serde_json::json!({"v": 2})));
        assert_eq!(page.changes[2].data, None);
        let cursors: Vec<i64> = page.changes.iter().map(|c| c.seq).collect();
        assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
        let calls = store
            .changes(t1.clone(), 0, Some(vec!["call".into()]), 100)
            .await
            .unwrap();
        assert_eq!(calls.changes.len(), 2, "only the kinds asked for");
        let last = *cursors.last().unwrap();
        assert!(store.changes(t1.clone(), last, None, 100).await.unwrap().changes.is_empty());
        let after_first = store.changes(t1.clone(), cursors[0], None, 1).await.unwrap();
        assert_eq!(after_first.changes.len(), 1);
        assert_eq!(after_first.changes[0].key, "a", "a page of one, from a cursor");
        store.apply(&t1, &c, put("call", "c", Some("{}"))).await.unwrap();
        let next = store.changes(t1.clone(), last, None, 100).await.unwrap();
        assert_eq!(next.changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["c"]);
        assert!(next.latest >= next.changes[0].seq, "latest covers what was listed");
        let other = store.changes(id("t2"), 0, None, 100).await.unwrap();
        assert_eq!(other.changes.len(), 1);
    }
}

contract! {
    /// Retention empties old payloads of finished deliveries, deletes finished jobs, events and
    /// markers, drops old tombstones, and a feed cursor from before a dropped deletion expires.
    async fn retention_prunes_what_is_finished_and_expires_old_cursors(store) {
        let (t1, c) = (id("t1"), id("c1"));
        store.ingest(vec![delivery("old"), delivery("pending")]).await.unwrap();
        let job = store.claim(1, 60_000).await.unwrap().remove(0);
        let effects = Effects {
            events: vec![Published { name: "call.ended".into(), payload: "{}".into() }],
            kv: vec![KvWrite { key: "sent:1".into(), value: Some(b"1".to_vec()), marker: true }],
            ..Default::default()
        };
        store.finish(job.lease(), effects, done(), 1).await.unwrap();
        store.apply(&t1, &c, put("call", "gone", Some("{}"))).await.unwrap();
        let before = store.changes(t1.clone(), 0, None, 10).await.unwrap();
        let early = before.changes[0].seq;
        store.apply(&t1, &c, put("call", "gone", None)).await.unwrap();
        store.apply(&t1, &c, put("call", "later", Some("{}"))).await.unwrap();
        let young = store.prune_batch(now_ms() - 60_000, 100).await.unwrap();
        assert_eq!((young.deliveries, young.jobs, young.events), (0, 0, 0), "young: kept");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let pruned = store.prune_batch(now_ms() + 1, 100).await.unwrap();
        assert_eq!(
            (pruned.deliveries, pruned.jobs, pruned.events, pruned.markers, pruned.tombstones),
            (1, 1, 1, 1, 1),
            "{pruned:?}"
        );
        let detail = store.delivery_detail(1).await.unwrap().unwrap();
        assert!(detail.pruned_at_ms.is_some());
        assert_eq!(detail.delivery.body.as_deref(), Some(""));
        assert!(detail.jobs.is_empty(), "its finished job is gone");
        let pending = store.delivery_detail(2).await.unwrap().unwrap();
        assert_eq!(pending.pruned_at_ms, None, "a pending delivery keeps its payload");
        assert_eq!(blocking(|| store.kv_get(&t1, &c, "sent:1")).unwrap(), None);
        assert!(store.changes(t1.clone(), early, None, 10).await.unwrap().expired);
        let fresh = store.changes(t1.clone(), 0, None, 10).await.unwrap();
        assert!(!fresh.expired, "from the start, nothing is missed");
        assert_eq!(fresh.changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["later"]);
    }
}

contract! {
    /// A tenant's calls, emails and messages per day come from the records the connectors
    /// keep, with their direction, outcome, duration and analysis.
    async fn a_tenant_s_figures_per_day_follow_its_records(store) {
        let (t1, c) = (id("t1"), id("retell"));
        let day_ms = 1_780_000_000_000i64; // 2026-05-28
        let call = |key: &str, json: serde_json::Value| put("call", key, Some(&json.to_string()));
        let calls = [
            call("a", serde_json::json!({"start_timestamp": day_ms, "direction": "inbound",
                "call_status": "ended", "duration_ms": 60_000,
                "call_analysis": {"call_successful": true, "user_sentiment": "Positive", "in_voicemail": false}})),
            call("b", serde_json::json!({"start_timestamp": day_ms + 1000, "direction": "outbound",
                "call_status": "ended", "duration_ms": 30_000,
                "call_analysis": {"in_voicemail": true, "user_sentiment": "Neutral"}})),
            call("c", serde_json::json!({"start_timestamp": day_ms + 2000, "direction": "outbound",
                "call_status": "error"})),
            call("d", serde_json::json!({"start_timestamp": day_ms + 86_400_000, "direction": "inbound",
                "call_status": "ended", "duration_ms": "not a number"})),
        ];
        for effects in calls {
            store.apply(&t1, &c, effects).await.unwrap();
        }
        let email = |key: &str, status: &str| {
            put("email", key, Some(&serde_json::json!({"created_at": "2026-05-28T10:00:00Z", "status": status}).to_string()))
        };
        store.apply(&t1, &id("resend"), email("e1", "delivered")).await.unwrap();
        store.apply(&t1, &id("resend"), email("e2", "bounced")).await.unwrap();
        let message = put("message", "m1", Some(&serde_json::json!({"at_ms": day_ms, "status": "undelivered"}).to_string()));
        store.apply(&t1, &id("twilio"), message).await.unwrap();
        store.apply(&id("t2"), &c, put("call", "x", Some(&serde_json::json!({"start_timestamp": day_ms}).to_string()))).await.unwrap();

        let a = store.analytics(t1.clone(), "2026-05-01".into()).await.unwrap();
        assert_eq!(a.calls.len(), 2, "{:?}", a.calls);
        let first = &a.calls[0];
        assert_eq!(first.day, "2026-05-28");
        assert_eq!(
            (first.calls, first.inbound, first.outbound, first.answered, first.unanswered),
            (3, 1, 2, 1, 2)
        );
        assert_eq!(first.avg_duration_s, Some(45.0));
        assert_eq!((first.analyzed, first.successful, first.positive, first.neutral), (2, 1, 1, 1));
        assert_eq!((a.calls[1].day.as_str(), a.calls[1].calls, a.calls[1].avg_duration_s), ("2026-05-29", 1, None));
        assert_eq!(a.emails.len(), 1);
        assert_eq!((a.emails[0].emails, a.emails[0].delivered, a.emails[0].bounced), (2, 1, 1));
        assert_eq!((a.messages[0].messages, a.messages[0].failed), (1, 1));
        let later = store.analytics(t1.clone(), "2026-05-29".into()).await.unwrap();
        assert_eq!(later.calls.len(), 1, "days before `since` are left out");
        store.apply(&t1, &c, put("call", "a", None)).await.unwrap();
        let a = store.analytics(t1, "2026-05-01".into()).await.unwrap();
        assert_eq!(a.calls[0].calls, 2, "a deleted call leaves its day");
    }
}

contract! {
    /// The status view's counts: deliveries per hour and source, the dead among them, and each
    /// source's last delivery and last success.
    async fn the_status_view_counts_deliveries_by_hour_and_source(store) {
        let start = now_ms();
        let mut other = delivery("o");
        other.connector = id("c2");
        store.ingest(vec![delivery("a"), delivery("b"), other]).await.unwrap();
        let jobs = store.claim(10, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 3);
        store.finish(jobs[0].lease(), Effects::default(), done(), 1).await.unwrap();
        store.finish(jobs[1].lease(), Effects::default(), JobEnd::Dead { error: "no".into() }, 1).await.unwrap();
        let hours = store.activity(start - 3_600_000).await.unwrap();
        let c1: i64 = hours.iter().filter(|h| h.connector.as_str() == "c1").map(|h| h.received).sum();
        let failed: i64 = hours.iter().filter(|h| h.connector.as_str() == "c1").map(|h| h.failed).sum();
        assert_eq!((c1, failed), (2, 1), "{hours:?}");
        let last = store.last_activity().await.unwrap();
        let c1 = last.iter().find(|l| l.1.as_str() == "c1").unwrap();
        assert!(c1.2.unwrap() >= start, "last delivery");
        assert!(c1.3.unwrap() >= start, "last success");
        let c2 = last.iter().find(|l| l.1.as_str() == "c2").unwrap();
        assert_eq!(c2.3, None, "c2 has not succeeded yet");
        assert_eq!(last.len(), 2);
    }
}

contract! {
    /// Records listed by kind and lookup, newest change first, in pages; the kinds a tenant has.
    async fn records_are_listed_by_kind_and_lookup_in_pages(store) {
        let (t1, c) = (id("t1"), id("c1"));
        for key in ["a", "b", "c"] {
            let mut effects = put("contact", key, Some("{}"));
            effects.lookups = vec![LookupsSet {
                kind: "contact".into(),
                key: key.into(),
                lookups: vec![if key == "b" { "tag:vip".into() } else { "tag:new".into() }],
            }];
            store.apply(&t1, &c, effects).await.unwrap();
        }
        store.apply(&t1, &c, put("call", "z", Some("{}"))).await.unwrap();
        assert_eq!(store.record_kinds(t1.clone()).await.unwrap(), ["call", "contact"]);
        let contacts = store
            .records(t1.clone(), RecordFilter { kind: Some("contact".into()), limit: 2, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(contacts.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        let rest = store
            .records(t1.clone(), RecordFilter {
                kind: Some("contact".into()),
                before: Some(contacts[1].seq),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rest.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["a"]);
        let vip = store
            .records(t1.clone(), RecordFilter {
                kind: Some("contact".into()),
                lookup: Some("tag:vip".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(vip.len(), 1);
        assert_eq!(vip[0].lookups, ["tag:vip"]);
        let one = store.record(t1.clone(), "call".into(), "z".into()).await.unwrap().unwrap();
        assert_eq!(one.data, serde_json::json!({}));
        assert!(store.record(id("t2"), "call".into(), "z".into()).await.unwrap().is_none());
        let listed = blocking(|| store.record_list(&t1, "contact", 10)).unwrap();
        assert_eq!(listed.len(), 3);
    }
}
