//! The contract of records: found by their lookups, listed by kind in pages.

use super::*;

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
