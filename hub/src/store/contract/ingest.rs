//! The contract of ingest: each webhook stored once, whatever arrives together or at once.

use super::*;

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
