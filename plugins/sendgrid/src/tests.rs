//! The SendGrid connector on the SDK's in-memory host: events merge forward only, suppressions
//! follow bounces, spam reports and unsubscribes, and send_email goes at most once per key.

use plugin_sdk::harness::{Answer, Harness};
use plugin_sdk::{Error, harness::Failure};
use serde_json::{Value, json};

use super::Sendgrid;

const SEND: &str = "https://api.sendgrid.com/v3/mail/send";

fn hub() -> Harness<Sendgrid> {
    Harness::new()
        .config("from", "ABC Healthcare <care@abc-healthcare.example>")
        .credential("webhook_public_key", "MFkw...")
        .credential("api_key", "SG.test")
}

fn event(kind: &str, n: u32, extra: Value) -> String {
    let mut e = json!({
        "email": "Jane@Example.com",
        "timestamp": 1_767_225_600 + i64::from(n),
        "event": kind,
        "sg_event_id": format!("ev{n}"),
        "sg_message_id": "14c5d75ce93.filterdrecv-p3las1-1.0",
        "hub_key": "follow-up:call_1",
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        e[k] = v;
    }
    e.to_string()
}

fn deliver(h: &mut Harness<Sendgrid>, body: String) {
    let d = h.webhook("events", body);
    h.deliver(d).unwrap();
}

#[test]
fn the_status_only_moves_forward_and_each_event_is_published_once() {
    let mut h = hub();
    deliver(&mut h, event("processed", 1, json!({})));
    deliver(&mut h, event("delivered", 2, json!({})));
    deliver(&mut h, event("processed", 3, json!({})));
    deliver(&mut h, event("open", 4, json!({})));
    deliver(&mut h, event("open", 5, json!({})));
    deliver(
        &mut h,
        event("click", 6, json!({"url": "https://abc.example/book"})),
    );
    deliver(
        &mut h,
        event("click", 7, json!({"url": "https://abc.example/book"})),
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(
        r["status"], "delivered",
        "a late processed does not regress it"
    );
    assert_eq!(r["to"], json!(["jane@example.com"]));
    assert_eq!(r["idempotency_key"], "follow-up:call_1");
    assert_eq!(
        (r["opens"].as_u64(), r["clicks"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["last_event_at"], "2026-01-01T00:00:07Z");
    let names: Vec<String> = h.events().iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names,
        [
            "email.sent",
            "email.delivered",
            "email.opened",
            "email.clicked"
        ]
    );
    assert_eq!(h.events()[3].payload["link"], "https://abc.example/book");
    assert_eq!(
        h.lookups("email", "14c5d75ce93"),
        ["email:jane@example.com"]
    );
}

#[test]
fn hard_bounces_spam_reports_and_unsubscribes_suppress_and_a_resubscribe_lifts_it() {
    let mut h = hub();
    deliver(
        &mut h,
        event(
            "bounce",
            1,
            json!({"type": "blocked", "reason": "try later"}),
        ),
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["status"], "delivery_delayed", "a blocked bounce is soft");
    assert!(h.records("suppression").is_empty());
    deliver(
        &mut h,
        event(
            "bounce",
            2,
            json!({"type": "bounce", "reason": "550 5.1.1 no such user", "status": "5.1.1"}),
        ),
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["status"], "bounced");
    assert_eq!(r["bounce"]["message"], "550 5.1.1 no such user");
    let s: Value = h.record("suppression", "jane@example.com").unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["provider"].as_str()),
        (Some("bounce"), Some("sendgrid"))
    );
    deliver(&mut h, event("delivered", 3, json!({})));
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["status"], "bounced", "terminal");

    let mut h = hub();
    deliver(
        &mut h,
        event("group_unsubscribe", 1, json!({"asm_group_id": 42})),
    );
    let s: Value = h.record("suppression", "jane@example.com").unwrap();
    assert_eq!(s["detail"], "group 42");
    assert!(h.events().iter().any(|e| e.name == "email.unsubscribed"));
    deliver(
        &mut h,
        event("group_resubscribe", 2, json!({"asm_group_id": 42})),
    );
    assert!(h.records("suppression").is_empty());
    deliver(&mut h, event("spamreport", 3, json!({})));
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["complained"].as_bool()),
        (Some("complained"), Some(true))
    );
}

#[test]
fn deferred_waits_dropped_fails_and_an_unsubscribe_or_a_drop_for_the_address_suppresses() {
    let mut h = hub();
    deliver(
        &mut h,
        event(
            "deferred",
            1,
            json!({"response": "400 try again later", "attempt": "1"}),
        ),
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["status"], "delivery_delayed");
    deliver(&mut h, event("delivered", 2, json!({})));
    deliver(&mut h, event("deferred", 3, json!({})));
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(
        r["status"], "delivered",
        "a late deferral does not undo a delivery"
    );

    // Dropped for the message (not the address): the email failed, nobody is suppressed.
    let mut h = hub();
    deliver(
        &mut h,
        event("dropped", 1, json!({"reason": "Invalid SMTPAPI header"})),
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["status"], "failed");
    assert!(h.events().iter().any(|e| e.name == "email.failed"));
    assert!(
        h.records("suppression").is_empty(),
        "a drop about the message does not suppress the address"
    );

    // Dropped because SendGrid already holds the address as bounced: suppressed here too.
    let mut h = hub();
    deliver(
        &mut h,
        event("dropped", 1, json!({"reason": "Bounced Address"})),
    );
    let s: Value = h.record("suppression", "jane@example.com").unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["detail"].as_str()),
        (Some("dropped"), Some("Bounced Address"))
    );

    // A global unsubscribe suppresses the address and announces it.
    let mut h = hub();
    deliver(&mut h, event("unsubscribe", 1, json!({})));
    let s: Value = h.record("suppression", "jane@example.com").unwrap();
    assert_eq!(
        (s["reason"].as_str(), s["provider"].as_str()),
        (Some("unsubscribe"), Some("sendgrid"))
    );
    assert!(h.events().iter().any(|e| e.name == "email.unsubscribed"));
}

#[test]
fn a_resubscribe_does_not_lift_a_bounce_or_another_providers_suppression() {
    let mut h = hub();
    h.put_record(
        "suppression",
        "jane@example.com",
        &json!({"address": "jane@example.com", "reason": "bounce", "provider": "resend"}),
    );
    deliver(
        &mut h,
        event("group_resubscribe", 1, json!({"asm_group_id": 42})),
    );
    let s: Value = h.record("suppression", "jane@example.com").unwrap();
    assert_eq!(s["provider"], "resend", "Resend's bounce still suppresses");
    // ...and a send through SendGrid to that address is refused.
    let input = json!({"to": "jane@example.com", "subject": "Hi", "text": "Hello"});
    let err = h.action("send_email", &input, "k-jane").unwrap_err();
    assert!(
        format!("{err:?}").contains("jane@example.com (bounce)"),
        "{err:?}"
    );
}

#[test]
fn an_unknown_event_is_ignored_and_a_malformed_one_is_a_bad_request() {
    let mut h = hub();
    let d = h.webhook("events", event("newfangled", 1, json!({})));
    assert!(h.deliver(d).unwrap().ignored.is_some());
    let d = h.webhook("events", r#"{"event": 7}"#);
    assert!(matches!(
        h.deliver(d),
        Err(Failure::Connector(Error::BadRequest(_)))
    ));
    assert!(h.records("email").is_empty());
}

fn email() -> Value {
    json!({
        "to": ["Jane Doe <jane@example.com>"], "bcc": "audit@abc-healthcare.example",
        "subject": " Your visit ", "text": "See you soon.", "html": "<p>See you soon.</p>",
        "tags": {"category": "follow_up"}, "headers": {"X-Entity-Ref-ID": "call_1"}
    })
}

#[test]
fn send_email_speaks_v3_mail_send_and_goes_once_per_key() {
    let mut h = hub();
    h.on(
        "POST",
        SEND,
        Answer::status(202).header("x-message-id", "14c5d75ce93"),
    );
    let out = h
        .action("send_email", &email(), "follow-up:call_1")
        .unwrap();
    assert_eq!(out["id"], "14c5d75ce93");
    assert_eq!(
        h.action("send_email", &email(), "follow-up:call_1")
            .unwrap()["duplicate"],
        true
    );
    let sent = h.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer SG.test"));
    assert_eq!(
        sent[0].json(),
        json!({
            "personalizations": [{
                "to": [{"email": "jane@example.com", "name": "Jane Doe"}],
                "bcc": [{"email": "audit@abc-healthcare.example"}],
                "custom_args": {"hub_key": "follow-up:call_1", "category": "follow_up"}
            }],
            "from": {"email": "care@abc-healthcare.example", "name": "ABC Healthcare"},
            "subject": "Your visit",
            "content": [
                {"type": "text/plain", "value": "See you soon."},
                {"type": "text/html", "value": "<p>See you soon.</p>"}
            ],
            "categories": ["category:follow_up"],
            "headers": {"X-Entity-Ref-ID": "call_1"}
        })
    );
    let r: Value = h.record("email", "14c5d75ce93").unwrap();
    assert_eq!(r["idempotency_key"], "follow-up:call_1");
    assert!(h.is_marker("sent:follow-up:call_1"));
}

#[test]
fn rate_limits_wait_for_the_reset_outages_retry_and_refusals_say_why() {
    let mut h = hub();
    let reset = (h.now() / 1000 + 30).to_string();
    h.on(
        "POST",
        SEND,
        Answer::json(
            429,
            &json!({"errors": [{"field": null, "message": "too many requests"}]}),
        )
        .header("x-ratelimit-reset", &reset),
    );
    h.on("POST", SEND, Answer::status(503));
    h.on(
        "POST",
        SEND,
        Answer::json(400, &json!({"errors": [{"field": "from.email", "message": "does not match a verified Sender Identity"}]})),
    );
    let Err(Failure::Connector(Error::Retryable(r))) = h.action("send_email", &email(), "k") else {
        panic!("a 429 is retried");
    };
    assert_eq!(r.retry_after_ms, Some(30_000));
    assert!(
        h.action("send_email", &email(), "k")
            .unwrap_err()
            .is_retryable()
    );
    let err = h.action("send_email", &email(), "k").unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "permanent: SendGrid answered 400: from.email: does not match a verified Sender Identity"
    );
    assert!(h.records("email").is_empty());
}

#[test]
fn a_timeout_is_not_retried_and_suppressed_addresses_are_refused() {
    let mut h = hub();
    h.on("POST", SEND, Answer::timeout());
    let err = h.action("send_email", &email(), "k1").unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("may be sending it"),
        "{err}"
    );

    let mut h = hub();
    h.put_record(
        "suppression",
        "jane@example.com",
        &json!({"address": "jane@example.com", "reason": "complaint"}),
    );
    let err = h.action("send_email", &email(), "k2").unwrap_err();
    assert!(
        err.to_string().contains("jane@example.com (complaint)"),
        "{err}"
    );
    assert!(h.requests().is_empty());
    let err = h
        .action(
            "send_email",
            &json!({"to": "jane@", "subject": "x", "text": "y"}),
            "k3",
        )
        .unwrap_err();
    assert!(
        matches!(err, Failure::Connector(Error::BadRequest(_))),
        "{err}"
    );
}

#[test]
fn check_credentials_asks_for_the_keys_scopes() {
    let mut h = hub();
    h.on(
        "GET",
        "https://api.sendgrid.com/v3/scopes",
        Answer::json(200, &json!({"scopes": ["mail.send"]})),
    );
    h.job("check_credentials", &json!({})).unwrap();
    let mut h = hub();
    h.on(
        "GET",
        "https://api.sendgrid.com/v3/scopes",
        Answer::json(
            401,
            &json!({"errors": [{"field": null, "message": "authorization required"}]}),
        ),
    );
    let err = h.job("check_credentials", &json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "permanent: SendGrid answered 401: authorization required"
    );
}
