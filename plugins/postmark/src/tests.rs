//! The Postmark connector on the SDK's in-memory host.

use plugin_sdk::harness::{Answer, Harness};
use plugin_sdk::{Error, harness::Failure};
use serde_json::{Value, json};

use super::Postmark;

const SEND: &str = "https://api.postmarkapp.com/email";
const ID: &str = "883953f4-6105-42a2-a16a-77a8eac79483";

fn hub() -> Harness<Postmark> {
    Harness::new()
        .config("from", "ABC Healthcare <care@abc-healthcare.example>")
        .credential("webhook_auth", "pm-hook:s3cret-pass")
        .credential("server_token", "pm-server-token")
}

fn deliver(h: &mut Harness<Postmark>, body: Value) {
    let d = h.webhook("webhook", body.to_string());
    h.deliver(d).unwrap();
}

#[test]
fn webhooks_move_the_status_forward_and_publish_each_event_once() {
    let mut h = hub();
    deliver(
        &mut h,
        json!({"RecordType": "Delivery", "MessageID": ID, "Recipient": "Jane@Example.com", "DeliveredAt": "2026-01-01T00:00:01Z", "Metadata": {"hub_key": "follow-up:call_1"}, "Tag": "follow_up"}),
    );
    deliver(
        &mut h,
        json!({"RecordType": "Bounce", "Type": "SoftBounce", "TypeCode": 4096, "MessageID": ID, "Email": "jane@example.com", "BouncedAt": "2026-01-01T00:00:02Z"}),
    );
    deliver(
        &mut h,
        json!({"RecordType": "Open", "MessageID": ID, "Recipient": "jane@example.com", "ReceivedAt": "2026-01-01T00:00:03Z", "FirstOpen": true}),
    );
    deliver(
        &mut h,
        json!({"RecordType": "Click", "MessageID": ID, "Recipient": "jane@example.com", "ReceivedAt": "2026-01-01T00:00:04Z", "OriginalLink": "https://abc.example/book"}),
    );
    let r: Value = h.record("email", ID).unwrap();
    assert_eq!(
        r["status"], "delivered",
        "a soft bounce after delivery does not regress it"
    );
    assert_eq!(r["idempotency_key"], "follow-up:call_1");
    assert_eq!(r["to"], json!(["jane@example.com"]));
    assert_eq!(
        (r["opens"].as_u64(), r["clicks"].as_u64()),
        (Some(1), Some(1))
    );
    let names: Vec<String> = h.events().iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, ["email.delivered", "email.opened", "email.clicked"]);
    assert!(h.records("suppression").is_empty());
}

#[test]
fn hard_bounces_complaints_and_suppressed_sending_suppress_the_address() {
    let mut h = hub();
    deliver(
        &mut h,
        json!({"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "MessageID": ID, "Email": "bob@example.com", "Description": "The server was unable to deliver your message", "BouncedAt": "2026-01-01T00:00:01Z", "Inactive": true}),
    );
    let r: Value = h.record("email", ID).unwrap();
    assert_eq!(r["status"], "bounced");
    let s: Value = h.record("suppression", "bob@example.com").unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["provider"].as_str()),
        (Some("bounce"), Some("postmark"))
    );
    deliver(
        &mut h,
        json!({"RecordType": "SubscriptionChange", "MessageID": ID, "Recipient": "bob@example.com", "SuppressSending": false, "ChangedAt": "2026-01-02T00:00:00Z"}),
    );
    assert!(h.records("suppression").is_empty(), "reactivated");
    deliver(
        &mut h,
        json!({"RecordType": "SpamComplaint", "MessageID": "m2", "Email": "carol@example.com", "BouncedAt": "2026-01-01T00:00:01Z"}),
    );
    let s: Value = h.record("suppression", "carol@example.com").unwrap();
    assert_eq!(s["reason"], "complaint");
    deliver(
        &mut h,
        json!({"RecordType": "SubscriptionChange", "MessageID": "m3", "Recipient": "dan@example.com", "SuppressSending": true, "SuppressionReason": "ManualSuppression"}),
    );
    let s: Value = h.record("suppression", "dan@example.com").unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["detail"].as_str()),
        (Some("unsubscribe"), Some("ManualSuppression"))
    );
}

#[test]
fn inbound_email_is_a_received_record_and_bad_bodies_write_nothing() {
    let mut h = hub();
    deliver(
        &mut h,
        json!({"FromFull": {"Email": "jane@example.com", "Name": "Jane"}, "ToFull": [{"Email": "desk@abc.example"}], "Subject": "Reschedule", "MessageID": "in-1", "MessageStream": "inbound", "Date": "Thu, 1 Jan 2026 00:00:00 +0000"}),
    );
    let r: Value = h.record("email", "in-1").unwrap();
    assert_eq!(
        (r["direction"].as_str(), r["status"].as_str()),
        (Some("inbound"), Some("received"))
    );
    assert_eq!(h.events()[0].name, "email.received");
    let d = h.webhook("webhook", "[]");
    assert!(matches!(
        h.deliver(d),
        Err(Failure::Connector(Error::BadRequest(_)))
    ));
    let d = h.webhook("webhook", r#"{"RecordType": "Delivery"}"#);
    assert!(h.deliver(d).unwrap().ignored.is_some(), "no MessageID");
}

fn email() -> Value {
    json!({"to": ["Jane Doe <jane@example.com>"], "cc": "front@abc.example", "subject": " Your visit ",
           "text": "See you soon.", "html": "<p>See you soon.</p>", "tags": {"category": "follow_up"},
           "headers": {"X-Entity-Ref-ID": "call_1"}})
}

#[test]
fn send_email_speaks_postmarks_api_and_goes_once_per_key() {
    let mut h = hub();
    h.on("POST", SEND, Answer::json(200, &json!({"To": "jane@example.com", "SubmittedAt": "2026-01-01T00:00:00Z", "MessageID": ID, "ErrorCode": 0, "Message": "OK"})));
    assert_eq!(h.action("send_email", &email(), "k1").unwrap()["id"], ID);
    assert_eq!(
        h.action("send_email", &email(), "k1").unwrap()["duplicate"],
        true
    );
    let sent = h.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("x-postmark-server-token"),
        Some("pm-server-token")
    );
    assert_eq!(sent[0].header("accept"), Some("application/json"));
    assert_eq!(
        sent[0].json(),
        json!({
            "From": "ABC Healthcare <care@abc-healthcare.example>",
            "To": "Jane Doe <jane@example.com>",
            "Cc": "front@abc.example",
            "Subject": "Your visit",
            "HtmlBody": "<p>See you soon.</p>",
            "TextBody": "See you soon.",
            "MessageStream": "outbound",
            "Tag": "follow_up",
            "Metadata": {"hub_key": "k1", "category": "follow_up"},
            "Headers": [{"Name": "X-Entity-Ref-ID", "Value": "call_1"}]
        })
    );
    let r: Value = h.record("email", ID).unwrap();
    assert_eq!(r["to"], json!(["jane@example.com", "front@abc.example"]));
}

#[test]
fn inactive_recipients_are_permanent_rate_limits_and_outages_retry() {
    let mut h = hub();
    h.on(
        "POST",
        SEND,
        Answer::json(
            429,
            &json!({"ErrorCode": 429, "Message": "Rate limit exceeded"}),
        ),
    );
    h.on(
        "POST",
        SEND,
        Answer::json(500, &json!({"ErrorCode": 100, "Message": "Maintenance"})),
    );
    h.on("POST", SEND, Answer::json(422, &json!({"ErrorCode": 406, "Message": "You tried to send to recipient(s) that have been marked as inactive."})));
    assert!(
        h.action("send_email", &email(), "k")
            .unwrap_err()
            .is_retryable()
    );
    assert!(
        h.action("send_email", &email(), "k")
            .unwrap_err()
            .is_retryable()
    );
    let err = h.action("send_email", &email(), "k").unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.to_string().contains("ErrorCode 406") && err.to_string().contains("inactive"),
        "{err}"
    );
    assert!(h.records("email").is_empty());

    let mut h = hub();
    h.on("POST", SEND, Answer::timeout());
    let err = h.action("send_email", &email(), "k2").unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("may be sending it"),
        "{err}"
    );
    let mut h = hub();
    h.put_record(
        "suppression",
        "jane@example.com",
        &json!({"address": "jane@example.com", "reason": "bounce"}),
    );
    let err = h.action("send_email", &email(), "k3").unwrap_err();
    assert!(
        err.to_string().contains("jane@example.com (bounce)"),
        "{err}"
    );
    assert!(h.requests().is_empty());
}
