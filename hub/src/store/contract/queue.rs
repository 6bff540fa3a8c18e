//! The contract of the queue: leases, effects kept with their job's end, claims, schedule ticks.

use super::*;

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
                trace: None,
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
                trace: None,
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
                trace: None,
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
    /// A job whose worker died (its lease expired) is claimed before a backlog of ready jobs:
    /// behind the queue it would wait for all of it (issue: 44 s behind ~10,000 jobs).
    async fn an_expired_lease_is_claimed_before_a_backlog(store) {
        store.ingest(vec![delivery("held")]).await.unwrap();
        let held = store.claim(1, -1).await.unwrap(); // its hub was killed: the lease lapsed
        assert_eq!(held.len(), 1);
        let backlog: Vec<NewDelivery> = (0..300).map(|i| delivery(&format!("b{i}"))).collect();
        store.ingest(backlog).await.unwrap();
        let next = store.claim(5, 60_000).await.unwrap();
        assert_eq!(next.len(), 5);
        assert_eq!(
            next[0].id, held[0].id,
            "the dead worker's job comes first: {:?}",
            next.iter().map(|j| j.id).collect::<Vec<_>>()
        );
        assert_eq!(next[0].attempts, 2);
    }
}

contract! {
    /// A job deferred at a concurrency limit keeps its place in line: once its hold is over it
    /// is claimed before everything queued after it; during the hold, others are claimed.
    async fn a_deferred_job_keeps_its_place_in_line(store) {
        store.ingest(vec![delivery("first")]).await.unwrap();
        let first = store.claim(1, 60_000).await.unwrap();
        let later: Vec<NewDelivery> = (0..20).map(|i| delivery(&format!("l{i}"))).collect();
        store.ingest(later).await.unwrap();
        let hold = now_ms() + 300;
        store
            .finish(first[0].lease(), Effects::default(), JobEnd::Defer { at_ms: hold }, 0)
            .await
            .unwrap();
        let during = store.claim(2, 60_000).await.unwrap();
        assert_eq!(during.len(), 2);
        assert!(
            during.iter().all(|j| j.id != first[0].id),
            "held: others go meanwhile"
        );
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        let after = store.claim(1, 60_000).await.unwrap();
        assert_eq!(
            after[0].id, first[0].id,
            "after its hold, the deferred job is first again, before the 18 queued after it"
        );
        assert_eq!(after[0].attempts, 1, "a deferral is not an attempt");
    }
}

contract! {
    /// A dead job's own effects (an action's `action.failed` event and the webhook it queues)
    /// commit with its end; a job is found by its exact key, not by a longer one.
    async fn a_dead_jobs_own_effects_commit_and_a_key_finds_exactly_its_job(store) {
        let action = |key: &str| NewJob {
            tenant: id("t1"),
            connector: id("c1"),
            task: Task::Action {
                name: "send".into(),
                input: "{}".into(),
            },
            run_at_ms: now_ms(),
            idempotency_key: Some(key.into()),
            trace: None,
        };
        let first = store.enqueue(action("act:t1:k")).await.unwrap().unwrap();
        let longer = store.enqueue(action("act:t1:k2")).await.unwrap().unwrap();
        assert_eq!(store.enqueue(action("act:t1:k")).await.unwrap(), None, "one job per key");
        let by_key = |key: &str| JobFilter {
            tenant: Some(id("t1")),
            key: Some(key.into()),
            limit: 10,
            ..Default::default()
        };
        let found = store.jobs(by_key("act:t1:k")).await.unwrap();
        assert_eq!(found.iter().map(|d| d.job.id).collect::<Vec<_>>(), [first]);
        let found = store.jobs(by_key("act:t1:k2")).await.unwrap();
        assert_eq!(found.iter().map(|d| d.job.id).collect::<Vec<_>>(), [longer]);

        let claimed = store.claim(2, 60_000).await.unwrap();
        let job = claimed.iter().find(|j| j.id == first).unwrap();
        let effects = Effects {
            events: vec![Published {
                name: "action.failed".into(),
                payload: "{\"error\":\"refused\"}".into(),
            }],
            jobs: vec![NewJob {
                tenant: id("t1"),
                connector: id("c1"),
                task: Task::Webhook {
                    endpoint: "app".into(),
                    event_type: "c1.action.failed".into(),
                    payload: "{\"error\":\"refused\"}".into(),
                    at_ms: now_ms(),
                },
                run_at_ms: now_ms(),
                idempotency_key: Some("act:t1:k:event:0:action.failed:endpoint:app".into()),
                trace: None,
            }],
            ..Default::default()
        };
        let dead = JobEnd::Dead {
            error: "refused".into(),
        };
        store.finish(job.lease(), effects, dead, 5).await.unwrap();
        let events = store.events(id("t1"), None, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["action.failed"]);
        let ended = store.jobs(by_key("act:t1:k")).await.unwrap();
        assert_eq!(ended[0].job.state, JobState::Dead);
        let webhook = store
            .jobs(by_key("act:t1:k:event:0:action.failed:endpoint:app"))
            .await
            .unwrap();
        assert_eq!(webhook.len(), 1, "the event's webhook is queued with the end");
        assert_eq!(webhook[0].job.state, JobState::Queued);
    }
}

contract! {
    /// Many workers ending jobs at once (PostgreSQL ends what is waiting in one transaction):
    /// a stale lease is refused alone; ends that wrote the same record are applied one after
    /// the other, the later ones checked against the first's write and queued again; every
    /// other end keeps its records, lookups, kv, events and follow-up jobs; each worker that
    /// asked gets a different next job.
    async fn many_ends_at_once_keep_each_guarantee(store) {
        let deliveries: Vec<_> = (0..40).map(|i| delivery(&format!("d{i}"))).collect();
        store.ingest(deliveries).await.unwrap();
        let stale = store.claim(1, -1).await.unwrap().remove(0);
        let jobs = store.claim(30, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 30);
        assert_eq!(jobs[0].id, stale.id, "the expired lease is claimed again first");
        let effects = |i: usize| -> Effects {
            if i < 5 {
                // Five attempts that read call/shared while absent and write it.
                return Effects {
                    reads: vec![ReadSeen { read: Read::Record("call".into(), "shared".into()), version: 0 }],
                    ..put("call", "shared", Some(&format!("{{\"n\":{i}}}")))
                };
            }
            Effects {
                lookups: vec![LookupsSet {
                    kind: "call".into(),
                    key: format!("c{i}"),
                    lookups: vec![format!("phone:+1555000{i:04}")],
                }],
                kv: vec![KvWrite { key: format!("k{i}"), value: Some(vec![i as u8]), marker: false }],
                events: vec![Published { name: "call.ended".into(), payload: format!("{{\"i\":{i}}}") }],
                jobs: vec![NewJob {
                    tenant: id("t1"),
                    connector: id("c1"),
                    task: Task::Action { name: "send".into(), input: format!("{{\"i\":{i}}}") },
                    run_at_ms: now_ms() + 60_000,
                    idempotency_key: None,
                    trace: None,
                }],
                ..put("call", &format!("c{i}"), Some(&format!("{{\"i\":{i}}}")))
            }
        };
        let ends = jobs.iter().enumerate().map(|(i, job)| {
            let (store, lease, effects) = (&store, job.lease(), effects(i));
            async move {
                if i % 2 == 0 {
                    store.finish_and_claim(lease, effects, done(), 1, 60_000).await
                } else {
                    store.finish(lease, effects, done(), 1).await.map(|()| None)
                }
            }
        });
        let stale_end = store.finish(stale.lease(), put("call", "stale", Some("{}")), done(), 1);
        let (ended, stale_end) = tokio::join!(futures::future::join_all(ends), stale_end);
        assert!(
            matches!(stale_end, Err(StoreError::LeaseLost { job }) if job == stale.id),
            "the stale lease is refused: {stale_end:?}"
        );
        let mut handed: Vec<Job> = Vec::new();
        for (i, end) in ended.into_iter().enumerate() {
            let next = end.unwrap_or_else(|e| panic!("end {i}: {e}"));
            assert!(next.is_none() || i % 2 == 0, "a next job only for who asked");
            handed.extend(next);
        }
        assert_eq!(blocking(|| store.record_get(&id("t1"), "call", "stale")).unwrap(), None);
        let shared = blocking(|| store.record_get(&id("t1"), "call", "shared")).unwrap().unwrap();
        assert!(shared.starts_with("{\"n\":"), "{shared}");
        for i in 5..30 {
            let data = blocking(|| store.record_get(&id("t1"), "call", &format!("c{i}"))).unwrap();
            assert_eq!(data, Some(format!("{{\"i\":{i}}}")));
            let found = blocking(|| {
                store.record_find(&id("t1"), "call", &format!("phone:+1555000{i:04}"), 10)
            })
            .unwrap();
            assert_eq!(found.len(), 1, "c{i} is found by its lookup");
            assert_eq!(found[0].0, format!("c{i}"));
            let kv = blocking(|| store.kv_get(&id("t1"), &id("c1"), &format!("k{i}"))).unwrap();
            assert_eq!(kv, Some(vec![i as u8]));
        }
        assert_eq!(store.events(id("t1"), None, 100).await.unwrap().len(), 25);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let again = store.claim(100, 60_000).await.unwrap();
        // The ten deliveries never claimed and the four conflicts: each handed to one worker
        // that asked, or claimed now (a conflict comes due 5 to 50 ms after its end).
        let mut next: Vec<&Job> = handed.iter().chain(&again).collect();
        assert!(next.iter().all(|j| matches!(j.task, Task::Delivery { .. })), "{next:?}");
        next.sort_by_key(|j| j.id);
        next.dedup_by_key(|j| j.id);
        assert_eq!(next.len(), handed.len() + again.len(), "each job to one worker");
        assert_eq!(next.len(), 14, "{next:?}");
        let conflicts: Vec<&&Job> = next.iter().filter(|j| jobs[..5].iter().any(|o| o.id == j.id)).collect();
        assert_eq!(conflicts.len(), 4, "the four later writers of call/shared run again");
        for j in &conflicts {
            let before = jobs.iter().find(|o| o.id == j.id).unwrap();
            assert_eq!(j.attempts, before.attempts, "a conflict does not count as an attempt");
        }
        assert_eq!(store.pending_jobs().await.unwrap(), 14 + 25, "and one follow-up each");
    }
}
