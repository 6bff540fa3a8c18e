//! Unit tests of the contact record rules.

use super::*;

fn props(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn an_older_property_change_never_overwrites_a_newer_one() {
    let mut c = ContactRecord::new("101");
    assert!(c.set_property("firstname", Some("New".into()), 2_000));
    assert!(!c.set_property("firstname", Some("Old".into()), 1_000));
    assert_eq!(c.firstname.as_deref(), Some("New"));
    assert_eq!(c.property_times["firstname"], 2_000);
    assert!(
        !c.set_property("firstname", Some("New".into()), 2_000),
        "a duplicate changes nothing"
    );
    assert!(
        c.set_property("firstname", None, 3_000),
        "a cleared value is a change"
    );
    assert_eq!(c.firstname, None);
    assert_eq!(c.updated_at_ms, 3_000);
}

#[test]
fn snapshots_apply_per_property_and_summaries_follow() {
    let mut c = ContactRecord::new("7");
    c.set_property("phone", Some("+1 555".into()), 5_000);
    let changed = c.apply_snapshot(
        &props(json!({"email": " Ann@X.io ", "firstname": "Ann", "phone": "+1 000", "hs_object_id": 7, "x": null})),
        4_000,
    );
    assert!(changed);
    assert_eq!(c.email.as_deref(), Some("ann@x.io"));
    assert_eq!(c.phone.as_deref(), Some("+1 555"), "the newer phone stays");
    assert_eq!(c.properties["hs_object_id"].as_deref(), Some("7"));
    assert_eq!(c.properties["x"], None);
    let s = c.summary();
    assert_eq!(s["email"], json!("ann@x.io"));
    assert_eq!(s["deleted"], json!(false));
}

#[test]
fn a_live_contact_is_found_by_its_email_and_phones_in_e164() {
    let mut c = ContactRecord::new("151");
    c.set_property("email", Some("Ann@X.io".into()), 100);
    c.set_property("phone", Some("+1 (415) 555-0100".into()), 100);
    c.set_property("mobilephone", Some("0044 7700 900123".into()), 100);
    let found: Vec<String> = c.lookups().into_iter().flatten().collect();
    assert_eq!(
        found,
        [
            "email:ann@x.io",
            "phone:+14155550100",
            "phone:+447700900123"
        ]
    );
    c.set_property("mobilephone", Some("(415) 555-0199".into()), 200);
    assert_eq!(
        c.lookups().into_iter().flatten().last().as_deref(),
        Some("phone:national:4155550199"),
        "a number without its country code waits for the tenant's"
    );
    assert!(c.mark_deleted(300));
    assert!(
        c.lookups().is_empty(),
        "a deleted contact is found by nothing"
    );
}

#[test]
fn deletion_restore_and_their_order() {
    let mut c = ContactRecord::new("1");
    c.set_property("email", Some("a@b.co".into()), 100);
    assert!(c.mark_deleted(500));
    assert!(c.lookups().is_empty());
    assert!(!c.mark_deleted(600), "already deleted");
    assert!(
        !c.mark_restored(400),
        "a restore older than the deletion is stale"
    );
    assert!(c.mark_restored(700));
    assert_eq!(c.lookups(), [Some("email:a@b.co".to_string()), None, None]);
    assert!(
        !c.mark_deleted(650),
        "a deletion older than the restore is stale"
    );
    assert!(c.mark_deleted(800));
    assert!(
        !c.apply_snapshot(&props(json!({})), 750),
        "an older snapshot does not revive it"
    );
    assert!(
        c.apply_snapshot(&props(json!({})), 900),
        "a newer live snapshot does"
    );
    assert!(!c.deleted);
}

#[test]
fn merges() {
    let mut loser = ContactRecord::new("2");
    assert!(loser.mark_merged_into("1", 1_000));
    assert!(loser.deleted);
    assert!(
        !loser.mark_merged_into("1", 1_000),
        "a duplicate changes nothing"
    );
    assert!(
        !loser.apply_snapshot(&props(json!({})), 2_000),
        "a merged-away contact stays down"
    );
    assert!(!loser.mark_merged_into("3", 500), "stale");
    let mut survivor = ContactRecord::new("1");
    survivor.add_merged(&["2".into(), "1".into(), "2".into()]);
    assert_eq!(survivor.merged_ids, vec!["2"]);
}

#[test]
fn privacy_deletion_erases_and_refuses_everything_after() {
    let mut c = ContactRecord::new("9");
    c.set_property("email", Some("p@q.io".into()), 10);
    c.set_property("firstname", Some("Pat".into()), 10);
    assert!(c.privacy_delete(20));
    assert!(c.properties.is_empty() && c.email.is_none() && c.firstname.is_none());
    assert!(!c.set_property("firstname", Some("Pat".into()), 30));
    assert!(!c.apply_snapshot(&props(json!({"email": "p@q.io"})), 40));
    assert!(!c.mark_restored(50));
    assert!(!c.privacy_delete(60));
    assert!(c.deleted);
    let text = serde_json::to_string(&c).unwrap();
    assert!(!text.contains("p@q.io") && !text.contains("Pat"), "{text}");
}

#[test]
fn records_round_trip_and_tolerate_missing_fields() {
    let mut c = ContactRecord::new("5");
    c.set_property("email", Some("e@f.io".into()), 1);
    let back: ContactRecord = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let sparse: ContactRecord = serde_json::from_value(json!({"id": "6"})).unwrap();
    assert_eq!(sparse.id, "6");
    assert!(sparse.properties.is_empty());
    assert_eq!(value_text(&json!(true)).as_deref(), Some("true"));
    assert_eq!(value_text(&json!({"a": 1})), None);
}
