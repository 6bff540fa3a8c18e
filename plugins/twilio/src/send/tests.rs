//! Unit tests of the `send_message` idempotency plumbing, error mapping and record.

use super::*;
use crate::plan::SendMessageInput;

const AC: &str = "AC0123456789abcdef0123456789abcdef";

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
fn urls_and_keys() {
    assert_eq!(
        messages_url(AC),
        format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Messages.json")
    );
    let h = sha256_hex("action:acme:twilio:k1");
    assert_eq!(h.len(), 64);
    assert_eq!(send_key(&h), format!("send:{h}"));
    assert_eq!(
        status_callback_url("https://hub.example/hooks/acme/twilio/status", &h),
        format!("https://hub.example/hooks/acme/twilio/status?hub_send={h}")
    );
    assert_eq!(
        status_callback_url("https://h/x?a=1", "ab"),
        "https://h/x?a=1&hub_send=ab"
    );
    assert_eq!(
        crate::status::send_param(&status_callback_url("https://h/x", &h)),
        Some(h)
    );
}

#[test]
fn errors() {
    let e = api_error(
        400,
        None,
        br#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
    );
    assert!(
        matches!(&e, Error::Permanent(m) if m == "Twilio answered 400 (error 21211): The 'To' number +1555 is not a valid phone number."),
        "{e:?}"
    );
    assert!(matches!(
        api_error(
            429,
            Some("2"),
            br#"{"code": 20429, "message": "Too Many Requests"}"#
        ),
        Error::Retryable(Retryable {
            retry_after_ms: Some(2000),
            ..
        })
    ));
    assert!(matches!(
        api_error(503, None, b""),
        Error::Retryable(Retryable {
            retry_after_ms: None,
            ..
        })
    ));
    assert!(matches!(api_error(401, None, b"denied"), Error::Permanent(m) if m.contains("denied")));
}

#[test]
fn sent_records_keep_what_callbacks_told() {
    let p = plan(
        &input(json!({"to": "+14155550111", "body": "Hi"})),
        &sender(),
    )
    .unwrap();
    let (r, due) = merge_sent(None, "SM1", Some("queued"), &p, &sender(), "k1", 5);
    assert!(due);
    assert_eq!(r.status.as_deref(), Some("queued"));
    assert_eq!(r.body.as_deref(), Some("Hi"));
    assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
    let early = MessageRecord {
        sid: "SM1".into(),
        status: Some("delivered".into()),
        published: vec!["message.delivered".into()],
        ..Default::default()
    };
    let (r, due) = merge_sent(Some(early), "SM1", Some("queued"), &p, &sender(), "k1", 5);
    assert!(due);
    assert_eq!(r.status.as_deref(), Some("delivered"));
    let (_, due) = merge_sent(Some(r), "SM1", None, &p, &sender(), "k1", 6);
    assert!(!due, "message.sent once");
}
