//! Unit tests of the `send_email` request, idempotency key and error mapping.

use super::*;

fn input(v: Value) -> SendEmailInput {
    parse_input(&v.to_string()).unwrap()
}

const FROM_ADDR: &str = "Acme <hello@acme.test>";

#[test]
fn minimal_body() {
    let i = input(json!({"to": "jane@example.com", "subject": " Hi ", "text": "Hello"}));
    let b = request_body(&i, FROM_ADDR, None).unwrap();
    assert_eq!(
        b,
        json!({"from": FROM_ADDR, "to": ["jane@example.com"], "subject": "Hi", "text": "Hello"})
    );
}

#[test]
fn full_body_with_default_reply_to_and_tags() {
    let i = input(json!({
        "to": ["a@x.test", " b@x.test "], "subject": "S", "html": "<p>h</p>", "text": "t",
        "cc": "c@x.test", "bcc": ["d@x.test"], "tags": {"category": "follow_up", "n": 3},
        "headers": {"X-Entity-Ref-ID": "123"}, "scheduled_at": "in 1 hour"
    }));
    let reply = json!("support@acme.test");
    let b = request_body(&i, FROM_ADDR, Some(&reply)).unwrap();
    assert_eq!(b["to"], json!(["a@x.test", "b@x.test"]));
    assert_eq!(b["cc"], json!(["c@x.test"]));
    assert_eq!(b["reply_to"], json!(["support@acme.test"]));
    assert_eq!(
        b["tags"],
        json!([{"name": "category", "value": "follow_up"}, {"name": "n", "value": "3"}])
    );
    assert_eq!(b["headers"]["X-Entity-Ref-ID"], "123");
    assert_eq!(b["scheduled_at"], "in 1 hour");
    assert_eq!(
        recipients(&b),
        vec!["a@x.test", "b@x.test", "c@x.test", "d@x.test"]
    );
    // An explicit reply_to wins over the tenant's.
    let mut i2 = i.clone();
    i2.reply_to = vec!["me@x.test".into()];
    let b2 = request_body(&i2, FROM_ADDR, Some(&reply)).unwrap();
    assert_eq!(b2["reply_to"], json!(["me@x.test"]));
}

#[test]
fn invalid_inputs_are_permanent() {
    let bad = [
        json!({"to": [], "subject": "S", "text": "t"}),
        json!({"to": "nobody", "subject": "S", "text": "t"}),
        json!({"to": "a@x.test", "subject": "  ", "text": "t"}),
        json!({"to": "a@x.test", "subject": "S"}),
        json!({"to": "a@x.test", "subject": "S", "text": "t", "tags": {"bad tag": "v"}}),
        json!({"to": "a@x.test", "subject": "S", "text": "t", "tags": "x"}),
        json!({"to": "a@x.test", "subject": "S", "text": "t", "headers": {"X": 1}}),
    ];
    for b in bad {
        let i = input(b.clone());
        assert!(
            matches!(request_body(&i, FROM_ADDR, None), Err(Error::Permanent(_))),
            "{b}"
        );
    }
    let many: Vec<String> = (0..51).map(|i| format!("u{i}@x.test")).collect();
    let i = input(json!({"to": many, "subject": "S", "text": "t"}));
    assert!(request_body(&i, FROM_ADDR, None).is_err());
    assert!(matches!(
        parse_input(r#"{"to": "a@x.test", "subject": "S", "text": "t", "form": "x"}"#),
        Err(Error::Permanent(m)) if m.contains("unknown field")
    ));
    assert!(parse_input(r#"{"subject": "S"}"#).is_err());
    let i = input(json!({"to": "a@x.test", "subject": "S", "text": "t"}));
    assert!(request_body(&i, "not an address", None).is_err());
}

#[test]
fn sent_record_never_regresses() {
    let body = json!({"from": FROM_ADDR, "to": ["a@x.test"], "subject": "S", "text": "t",
                      "tags": [{"name": "category", "value": "x"}]});
    let r = merge_sent(None, "e1", &body, "k1");
    assert_eq!(r.status.as_deref(), Some("sent"));
    assert_eq!(r.to, vec!["a@x.test"]);
    assert_eq!(r.tags, Some(json!({"category": "x"})));
    assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
    let delivered = EmailRecord {
        email_id: "e1".into(),
        status: Some("delivered".into()),
        published: vec!["email.delivered".into()],
        ..Default::default()
    };
    let r = merge_sent(Some(delivered), "e1", &body, "k1");
    assert_eq!(r.status.as_deref(), Some("delivered"));
    assert_eq!(r.published, vec!["email.delivered"]);
    assert_eq!(r.subject.as_deref(), Some("S"));
    let scheduled = json!({"from": FROM_ADDR, "to": ["a@x.test"], "scheduled_at": "tomorrow"});
    assert_eq!(
        merge_sent(None, "e2", &scheduled, "k").status.as_deref(),
        Some("scheduled")
    );
}

/// `send_email` end to end on the SDK's in-memory host (`plugin_sdk::harness`): what the e2e
/// test proves through the hub, in milliseconds, without a stand-in server.
mod on_the_harness {
    use plugin_sdk::harness::{Answer, Harness};
    use serde_json::{Value, json};

    use crate::Resend;

    const EMAILS: &str = "https://api.resend.com/emails";

    fn hub() -> Harness<Resend> {
        Harness::new()
            .config("from", "Acme <hello@acme.test>")
            .credential("api_key", "re_test")
    }

    fn email() -> Value {
        json!({"to": "jane@example.com", "subject": "Hi", "text": "Hello"})
    }

    #[test]
    fn sends_once_per_key_and_keeps_the_email_record() {
        let mut h = hub();
        h.on("POST", EMAILS, Answer::status(500));
        h.on("POST", EMAILS, Answer::json(200, &json!({"id": "em_1"})));
        assert!(
            h.action("send_email", &email(), "k1")
                .unwrap_err()
                .is_retryable()
        );
        assert!(
            h.records("email").is_empty(),
            "a failed attempt keeps nothing"
        );
        assert_eq!(
            h.action("send_email", &email(), "k1").unwrap()["id"],
            "em_1"
        );
        assert_eq!(
            h.action("send_email", &email(), "k1").unwrap()["duplicate"],
            true
        );
        let sent = h.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].header("authorization"), Some("Bearer re_test"));
        assert_eq!(
            sent[0].header("idempotency-key"),
            sent[1].header("idempotency-key"),
            "the retry carries the same idempotency key"
        );
        let record: Value = h.record("email", "em_1").unwrap();
        assert_eq!(record["to"], json!(["jane@example.com"]));
    }

    #[test]
    fn a_suppressed_recipient_is_refused_before_anything_is_sent() {
        let mut h = hub();
        h.put_record(
            "suppression",
            "jane@example.com",
            &json!({"address": "jane@example.com", "reason": "bounce", "detail": null, "email_id": null, "at": null}),
        );
        let err = h.action("send_email", &email(), "k2").unwrap_err();
        assert!(
            err.to_string().contains("jane@example.com (bounce)"),
            "{err}"
        );
        assert!(h.requests().is_empty());
    }
}
