//! The contract of push channels, and of the two reads alerts make (the queue's oldest due job,
//! the tenants' connectors with dead letters).

use super::*;

fn key(tenant: &str, id_: &str) -> ChannelKey {
    ChannelKey {
        tenant: id(tenant),
        connector: id("gcal"),
        id: id_.into(),
    }
}

contract! {
    /// A channel is held once, kept with the provider's answer, listed oldest first per tenant,
    /// and gone when closed; another tenant's channel of the same id is another channel.
    async fn channels_are_held_kept_listed_and_closed(store) {
        let open = |digest: &str| ChannelWrite::Open { topic: "primary".into(), token_sha256: digest.into() };
        assert!(store.write_channel(key("t1", "ch-1"), open("d1")).await.unwrap());
        assert!(!store.write_channel(key("t1", "ch-1"), open("d9")).await.unwrap(), "an id is held once");
        assert!(store.write_channel(key("t2", "ch-1"), open("d2")).await.unwrap(), "per tenant");
        let held = store.channel(key("t1", "ch-1")).await.unwrap().unwrap();
        assert_eq!((held.topic.as_str(), held.token_sha256.as_str(), held.resource.as_str(), held.expires_at_ms), ("primary", "d1", "", 0));
        let keep = ChannelWrite::Keep { resource: "res-1".into(), expires_at_ms: 1_900_000_000_000 };
        assert!(store.write_channel(key("t1", "ch-1"), keep.clone()).await.unwrap());
        assert!(!store.write_channel(key("t1", "nope"), keep).await.unwrap(), "not held: nothing kept");
        let held = store.channel(key("t1", "ch-1")).await.unwrap().unwrap();
        assert_eq!((held.resource.as_str(), held.expires_at_ms), ("res-1", 1_900_000_000_000));
        assert!(store.write_channel(key("t1", "ch-2"), open("d3")).await.unwrap());
        let listed = store.channels(id("t1"), id("gcal")).await.unwrap();
        assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["ch-1", "ch-2"]);
        assert!(store.write_channel(key("t1", "ch-1"), ChannelWrite::Close).await.unwrap());
        assert!(store.channel(key("t1", "ch-1")).await.unwrap().is_none());
        assert!(store.channel(key("t2", "ch-1")).await.unwrap().is_some(), "t2's is untouched");
    }
}

contract! {
    /// The oldest due queued job's due time, and who has dead letters, change as jobs end.
    async fn the_queue_age_and_dead_letters_are_read(store) {
        assert_eq!(store.oldest_due(now_ms()).await.unwrap(), None);
        store.ingest(vec![delivery("a"), delivery("b")]).await.unwrap();
        let due = store.oldest_due(now_ms()).await.unwrap().expect("two queued jobs");
        assert!(due <= now_ms());
        assert_eq!(store.oldest_due(due - 1).await.unwrap(), None, "none due before it");
        assert!(store.dead_pairs().await.unwrap().is_empty());
        let jobs = store.claim(2, 60_000).await.unwrap();
        store.finish(jobs[0].lease(), Effects::default(), JobEnd::Dead { error: "no".into() }, 1).await.unwrap();
        store.finish(jobs[1].lease(), Effects::default(), done(), 1).await.unwrap();
        let pairs = store.dead_pairs().await.unwrap();
        assert_eq!(pairs, vec![(jobs[0].tenant.clone(), jobs[0].connector.clone())]);
        assert_eq!(store.oldest_due(now_ms()).await.unwrap(), None, "nothing queued");
    }
}

contract! {
    /// Config versions are numbered from 1, each on top of the one its writer read: a push
    /// made on a version that is no longer the newest is refused and names the newest; one
    /// made on nothing in particular (the first, a forced push) goes on top. Listed newest
    /// first without documents; read whole by number.
    async fn config_versions_are_written_on_their_base_and_listed(store) {
        let push = |base: Option<i64>, doc: &str| VersionPush {
            base,
            document: doc.into(),
            actor: "console:admin".into(),
            reason: format!("doc {doc}"),
        };
        assert_eq!(store.config_version(None).await.unwrap(), None, "none yet");
        assert_eq!(store.config_push(push(None, "a = 1")).await.unwrap(), Pushed::Written(1));
        assert_eq!(store.config_push(push(Some(1), "a = 2")).await.unwrap(), Pushed::Written(2));
        assert_eq!(
            store.config_push(push(Some(1), "a = 3")).await.unwrap(),
            Pushed::Stale { newest: 2 },
            "made on version 1: refused, nothing lost"
        );
        assert_eq!(store.config_push(push(None, "a = 4")).await.unwrap(), Pushed::Written(3));
        let newest = store.config_version(None).await.unwrap().unwrap();
        assert_eq!((newest.number, newest.document.as_str()), (3, "a = 4"));
        let first = store.config_version(Some(1)).await.unwrap().unwrap();
        assert_eq!((first.document.as_str(), first.actor.as_str()), ("a = 1", "console:admin"));
        let listed = store.config_versions(None, 10).await.unwrap();
        assert_eq!(listed.iter().map(|v| v.number).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(listed.iter().all(|v| v.document.is_empty()), "listed without documents");
        let page = store.config_versions(Some(3), 1).await.unwrap();
        assert_eq!(page.iter().map(|v| v.number).collect::<Vec<_>>(), [2]);
        // Two pushes on the same base at once: one is written, the other told it is stale.
        let (a, b) = tokio::join!(
            store.config_push(push(Some(3), "a = 5")),
            store.config_push(push(Some(3), "a = 6"))
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|p| matches!(p, Pushed::Stale { .. }));
        assert_eq!(outcomes, [Pushed::Written(4), Pushed::Stale { newest: 4 }]);
    }
}

contract! {
    /// The audit trail keeps entries in order, filters by tenant and actor, pages by id, and
    /// prunes what is past its age.
    async fn the_audit_trail_is_appended_filtered_paged_and_pruned(store) {
        let entry = |at: i64, actor: &str, tenant: Option<&str>, action: &str| AuditEntry {
            at_ms: at,
            actor: actor.into(),
            tenant: tenant.map(Into::into),
            action: action.into(),
            target: "probe.api_key".into(),
            detail: "set".into(),
            source: "127.0.0.1".into(),
        };
        let now = now_ms();
        store.audit_write(entry(now - 10_000, "admin", Some("t1"), "credential.set")).await.unwrap();
        store.audit_write(entry(now - 5_000, "t2/app", Some("t2"), "replay")).await.unwrap();
        store.audit_write(entry(now, "console:admin", None, "console.login")).await.unwrap();
        let all = store.audit(AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|r| r.entry.action.as_str()).collect::<Vec<_>>(),
            ["console.login", "replay", "credential.set"], "newest first");
        assert_eq!(all[2].entry, entry(now - 10_000, "admin", Some("t1"), "credential.set"));
        let t2 = store.audit(AuditFilter { tenant: Some("t2".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(t2.len(), 1);
        assert_eq!(t2[0].entry.actor, "t2/app");
        let by = store.audit(AuditFilter { actor: Some("admin".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(by.len(), 1);
        let page = store.audit(AuditFilter { before: Some(all[0].id), limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(page[0].id, all[1].id);
        assert_eq!(store.prune_audit(now - 1_000, 100).await.unwrap(), 2);
        let left = store.audit(AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(left.len(), 1);
    }
}
