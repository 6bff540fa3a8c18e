//! Unit tests of webhook event parsing.

use super::*;
use serde_json::json;

fn ev(v: Value) -> WebhookEvent {
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_documented_example_parses() {
    // The example body in HubSpot's signature docs (one item).
    let e = ev(
        json!({"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000u64,
        "subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",
        "changeFlag":"NEW","appId":54321}),
    );
    assert_eq!(e.change(), Some(Change::Created));
    assert_eq!(e.object().as_deref(), Some("123"));
    assert_eq!(e.portal().as_deref(), Some("62515"));
    assert_eq!(e.at_ms(0), 1_564_113_600_000);
}

#[test]
fn contact_types_and_others() {
    for (t, c) in [
        ("contact.creation", Change::Created),
        ("contact.propertyChange", Change::PropertyChanged),
        ("contact.deletion", Change::Deleted),
        ("contact.restore", Change::Restored),
        ("contact.merge", Change::Merged),
        ("contact.privacyDeletion", Change::PrivacyDeleted),
    ] {
        assert_eq!(
            ev(json!({ "subscriptionType": t })).change(),
            Some(c),
            "{t}"
        );
    }
    for t in [
        "contact.associationChange",
        "company.creation",
        "deal.propertyChange",
        "",
        "contact",
    ] {
        assert_eq!(ev(json!({ "subscriptionType": t })).change(), None, "{t}");
    }
    let generic = ev(json!({"subscriptionType": "object.propertyChange", "objectTypeId": "0-1"}));
    assert_eq!(generic.change(), Some(Change::PropertyChanged));
    let company = ev(json!({"subscriptionType": "object.creation", "objectTypeId": "0-2"}));
    assert_eq!(company.change(), None);
}

#[test]
fn ids_and_times_are_lenient_but_safe() {
    assert_eq!(id_text(&json!("42")).as_deref(), Some("42"));
    assert_eq!(id_text(&json!(42)).as_deref(), Some("42"));
    assert_eq!(id_text(&json!(-1)), None);
    assert_eq!(id_text(&json!(1.5)), None);
    assert_eq!(id_text(&json!("12/../3")), None);
    assert_eq!(id_text(&json!("")), None);
    assert_eq!(ev(json!({"occurredAt": "77"})).at_ms(5), 77);
    assert_eq!(ev(json!({"occurredAt": "soon"})).at_ms(5), 5);
    assert_eq!(ev(json!({})).at_ms(5), 5);
    assert!(serde_json::from_value::<WebhookEvent>(json!({"objectId": {"x": 1}})).is_ok());
}

#[test]
fn merge_parts() {
    let e = ev(
        json!({"subscriptionType": "contact.merge", "objectId": 10, "primaryObjectId": 10,
        "mergedObjectIds": [11, "12", 10], "newObjectId": 10}),
    );
    assert_eq!(
        e.merge_parts(),
        Some(("10".to_string(), vec!["11".to_string(), "12".to_string()]))
    );
    let fresh = ev(
        json!({"subscriptionType": "contact.merge", "primaryObjectId": 10,
        "mergedObjectIds": [11], "newObjectId": 20}),
    );
    assert_eq!(
        fresh.merge_parts(),
        Some(("20".to_string(), vec!["11".to_string(), "10".to_string()]))
    );
    assert_eq!(
        ev(json!({"subscriptionType": "contact.merge"})).merge_parts(),
        None
    );
}

#[test]
fn portals() {
    assert!(portal_matches(None, Some("1")));
    assert!(portal_matches(Some(&json!(62515)), Some("62515")));
    assert!(portal_matches(Some(&json!("62515")), Some("62515")));
    assert!(portal_matches(Some(&json!([1, "62515"])), Some("62515")));
    assert!(!portal_matches(Some(&json!(1)), Some("62515")));
    assert!(!portal_matches(Some(&json!(1)), None));
}
