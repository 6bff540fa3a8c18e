//! Unit tests of the API shapes and rate-limit rules.

use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn urls_and_properties() {
    let props = properties(&["company".into(), "email".into(), "bad name".into()]);
    assert_eq!(
        props,
        vec!["email", "firstname", "lastname", "phone", "company"]
    );
    assert_eq!(
        contact_url("101", &properties(&[])),
        "https://api.hubapi.com/crm/v3/objects/contacts/101?properties=email,firstname,lastname,phone"
    );
    assert_eq!(
        contact_url("1/../x2", &properties(&[])),
        "https://api.hubapi.com/crm/v3/objects/contacts/12?properties=email,firstname,lastname,phone"
    );
    assert_eq!(
        search_url(),
        "https://api.hubapi.com/crm/v3/objects/contacts/search"
    );
    assert_eq!(
        upsert_url(),
        "https://api.hubapi.com/crm/v3/objects/contacts/batch/upsert"
    );
}

#[test]
fn search_body_shape() {
    let props = properties(&[]);
    let b = search_body(1_700_000_000_000, &props, None);
    assert_eq!(
        b,
        json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email", "firstname", "lastname", "phone"],
            "limit": 100
        })
    );
    assert_eq!(search_body(0, &props, Some("200"))["after"], json!("200"));
}

#[test]
fn upsert_body_shape() {
    let mut p = Map::new();
    p.insert("firstname".into(), json!("Jane"));
    assert_eq!(
        upsert_body("jane@example.com", &p),
        json!({"inputs": [{"id": "jane@example.com", "idProperty": "email", "properties": {"firstname": "Jane"}}]})
    );
}

#[test]
fn pages() {
    let p: SearchPage = serde_json::from_value(json!({
        "total": 3,
        "results": [{"id": "1", "properties": {"email": "a@b.co"}, "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-02T00:00:00Z", "archived": false}],
        "paging": {"next": {"after": "1", "link": "x"}}
    }))
    .unwrap();
    assert_eq!(p.results[0].properties["email"], json!("a@b.co"));
    assert_eq!(p.next_after(None).as_deref(), Some("1"));
    assert_eq!(
        p.next_after(Some("1")),
        None,
        "an unchanged cursor ends the listing"
    );
    let last: SearchPage = serde_json::from_value(json!({"results": []})).unwrap();
    assert_eq!(last.next_after(None), None);
    let empty: SearchPage =
        serde_json::from_value(json!({"paging": {"next": {"after": ""}}})).unwrap();
    assert_eq!(empty.next_after(None), None);
}

#[test]
fn rate_limit_waits() {
    assert_eq!(retry_wait_ms(&h(&[("Retry-After", "3")])), Some(3_000));
    assert_eq!(
        retry_wait_ms(&h(&[
            ("X-HubSpot-RateLimit-Remaining", "0"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
        ])),
        Some(10_000)
    );
    assert_eq!(
        exhausted_wait_ms(&h(&[
            ("x-hubspot-ratelimit-remaining", "5"),
            ("x-hubspot-ratelimit-secondly-remaining", "0")
        ])),
        Some(1_000)
    );
    assert_eq!(
        exhausted_wait_ms(&h(&[("X-HubSpot-RateLimit-Daily-Remaining", "0")])),
        Some(3_600_000)
    );
    assert_eq!(
        exhausted_wait_ms(&h(&[("X-HubSpot-RateLimit-Remaining", "99")])),
        None
    );
    assert_eq!(
        exhausted_wait_ms(&h(&[("X-HubSpot-RateLimit-Remaining", "x")])),
        None
    );
}

#[test]
fn failures_are_classified() {
    assert!(failure(200, &[], b"").is_none());
    assert!(failure(207, &[], b"").is_none());
    match failure(
        429,
        &h(&[("retry-after", "1")]),
        br#"{"status":"error","message":"Too many"}"#,
    ) {
        Some(Error::Retryable(r)) => {
            assert_eq!(r.retry_after_ms, Some(1_000));
            assert!(r.message.contains("429: Too many"), "{}", r.message);
        }
        _ => panic!("429 is retryable"),
    }
    match failure(429, &[], b"") {
        Some(Error::Retryable(r)) => assert_eq!(r.retry_after_ms, Some(10_000)),
        _ => panic!("429 is retryable"),
    }
    match failure(503, &[], b"down") {
        Some(Error::Retryable(r)) => assert_eq!(r.retry_after_ms, None),
        _ => panic!("5xx is retryable"),
    }
    assert!(
        matches!(failure(401, &[], b""), Some(Error::Permanent(m)) if m.contains("access_token"))
    );
    assert!(
        matches!(failure(400, &[], br#"{"message":"Property values were not valid"}"#),
        Some(Error::Permanent(m)) if m.contains("not valid"))
    );
}
