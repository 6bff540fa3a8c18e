//! Unit tests of the `send_message` plan and form.

use super::*;
use serde_json::{Value, json};

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const MG: &str = "MG0123456789abcdef0123456789abcdef";

fn sender() -> Sender {
    Sender {
        account_sid: AC.into(),
        from: Some("+14155550100".into()),
        ..Default::default()
    }
}

fn input(v: Value) -> SendMessageInput {
    parse_input(&v.to_string()).unwrap()
}

#[test]
fn sms_from_the_number() {
    let p = plan(
        &input(json!({"to": "+1 (415) 555-0111", "body": "Hi"})),
        &sender(),
    )
    .unwrap();
    assert_eq!(p.to, "+14155550111");
    assert_eq!(p.from.as_deref(), Some("+14155550100"));
    assert_eq!(p.channel, Channel::Sms);
    let f = form_fields(
        &p,
        "https://hub.example/hooks/acme/twilio/status?hub_send=ab",
    );
    assert_eq!(
        f,
        vec![
            ("To", "+14155550111".to_string()),
            ("From", "+14155550100".to_string()),
            ("Body", "Hi".to_string()),
            (
                "StatusCallback",
                "https://hub.example/hooks/acme/twilio/status?hub_send=ab".to_string()
            ),
        ]
    );
}

#[test]
fn whatsapp_uses_whatsapp_senders() {
    let p = plan(
        &input(json!({"to": "whatsapp:+14155550111", "body": "Hola"})),
        &sender(),
    )
    .unwrap();
    assert_eq!(p.to, "whatsapp:+14155550111");
    assert_eq!(p.from.as_deref(), Some("whatsapp:+14155550100"));
    assert_eq!(p.channel, Channel::Whatsapp);
    let mut s = sender();
    s.whatsapp_from = Some("whatsapp:+14155550199".into());
    s.messaging_service_sid = Some(MG.into());
    let p = plan(
        &input(json!({"to": "whatsapp:+14155550111", "body": "Hola"})),
        &s,
    )
    .unwrap();
    assert_eq!(p.from.as_deref(), Some("whatsapp:+14155550199"));
    assert_eq!(p.messaging_service_sid, None);
    // SMS goes through the Messaging Service when there is one.
    let p = plan(&input(json!({"to": "+14155550111", "body": "Hi"})), &s).unwrap();
    assert_eq!(p.from, None);
    assert_eq!(p.messaging_service_sid.as_deref(), Some(MG));
    let f = form_fields(&p, "cb");
    assert!(f.contains(&("MessagingServiceSid", MG.to_string())));
    assert!(!f.iter().any(|(k, _)| *k == "From"));
}

#[test]
fn media_repeats_the_field() {
    let p = plan(
        &input(json!({"to": "+14155550111", "media_url": ["https://a.test/1.jpg", "https://a.test/2.jpg"]})),
        &sender(),
    )
    .unwrap();
    let f = form_fields(&p, "cb");
    let media: Vec<&str> = f
        .iter()
        .filter(|(k, _)| *k == "MediaUrl")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(media, vec!["https://a.test/1.jpg", "https://a.test/2.jpg"]);
    assert!(!f.iter().any(|(k, _)| *k == "Body"));
    let one = plan(
        &input(json!({"to": "+14155550111", "media_url": "https://a.test/1.jpg"})),
        &sender(),
    )
    .unwrap();
    assert_eq!(one.media.len(), 1);
}

#[test]
fn refusals_are_permanent() {
    let s = sender();
    let cases = [
        json!({"to": "4155550111", "body": "x"}),
        json!({"to": "+14155550111"}),
        json!({"to": "+14155550111", "body": "   "}),
        json!({"to": "+14155550111", "body": "x".repeat(1601)}),
        json!({"to": "+14155550111", "media_url": "ftp://x"}),
        json!({"to": "+14155550111", "media_url": vec!["https://a.test/x"; 11]}),
    ];
    for c in cases {
        assert!(
            matches!(plan(&input(c.clone()), &s), Err(Error::Permanent(_))),
            "{c}"
        );
    }
    let mut no_sender = sender();
    no_sender.from = None;
    assert!(
        plan(
            &input(json!({"to": "+14155550111", "body": "x"})),
            &no_sender
        )
        .is_err()
    );
    let mut wa_only = sender();
    wa_only.from = Some("whatsapp:+14155550100".into());
    assert!(plan(&input(json!({"to": "+14155550111", "body": "x"})), &wa_only).is_err());
    let mut bad_account = sender();
    bad_account.account_sid = "ACnope".into();
    assert!(
        plan(
            &input(json!({"to": "+14155550111", "body": "x"})),
            &bad_account
        )
        .is_err()
    );
    let mut bad_service = sender();
    bad_service.messaging_service_sid = Some("MGx".into());
    assert!(
        plan(
            &input(json!({"to": "+14155550111", "body": "x"})),
            &bad_service
        )
        .is_err()
    );
    assert!(
        matches!(parse_input(r#"{"to": "+1", "text": "x"}"#), Err(Error::Permanent(m)) if m.contains("unknown field"))
    );
    assert!(
        plan(
            &input(json!({"to": "+14155550111", "body": "x".repeat(1600)})),
            &s
        )
        .is_ok()
    );
}
