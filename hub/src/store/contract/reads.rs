//! The contract of what the API and console read: the log, endpoints, replay, the change feed,
//! retention and the per-day figures.

use super::*;

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
