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
