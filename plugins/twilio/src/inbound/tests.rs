//! Unit tests of inbound parsing, keywords and TwiML.

use super::*;

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sms() -> Vec<(String, String)> {
    form(&[
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+14155550111"),
        ("To", "+14155550100"),
        ("Body", "Can I move my appointment?"),
        ("NumMedia", "2"),
        ("NumSegments", "1"),
        ("MediaUrl0", "https://api.twilio.com/media/1"),
        ("MediaContentType0", "image/jpeg"),
        ("MediaUrl1", "https://api.twilio.com/media/2"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ])
}

#[test]
fn parses_an_sms_with_media() {
    let m = parse(&sms()).unwrap();
    assert_eq!(m.sid, "SM0123456789abcdef0123456789abcdef");
    assert_eq!(m.from, "+14155550111");
    assert_eq!(m.to.as_deref(), Some("+14155550100"));
    assert_eq!(m.media.len(), 2);
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(m.media[1].content_type, None);
    let (r, due) = merge_inbound(None, &m, 1000, None);
    assert!(due);
    assert_eq!(r.channel.as_deref(), Some("sms"));
    assert_eq!(r.direction.as_deref(), Some("inbound"));
    assert_eq!(r.status.as_deref(), Some("received"));
    assert_eq!(r.at_ms, Some(1000));
    // A second pass (a replay) publishes nothing new.
    let (again, due) = merge_inbound(Some(r.clone()), &m, 2000, None);
    assert!(!due);
    assert_eq!(again.at_ms, Some(1000));
}

#[test]
fn parses_whatsapp() {
    let f = form(&[
        ("MessageSid", "SM1"),
        ("From", "whatsapp:+14155550111"),
        ("To", "whatsapp:+14155550100"),
        ("Body", "hola"),
        ("ProfileName", "Ana"),
        ("WaId", "14155550111"),
    ]);
    let m = parse(&f).unwrap();
    let (r, _) = merge_inbound(None, &m, 1, None);
    assert_eq!(r.channel.as_deref(), Some("whatsapp"));
    assert_eq!(r.from.as_deref(), Some("whatsapp:+14155550111"));
    assert_eq!(r.profile_name.as_deref(), Some("Ana"));
    assert_eq!(r.wa_id.as_deref(), Some("14155550111"));
}

#[test]
fn malformed_forms_are_bad_requests() {
    assert!(matches!(
        parse(&form(&[("From", "+1")])),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        parse(&form(&[("MessageSid", "SM1")])),
        Err(Error::BadRequest(_))
    ));
    let m = parse(&form(&[
        ("SmsMessageSid", "SM2"),
        ("From", "+1"),
        ("NumMedia", "x"),
    ]))
    .unwrap();
    assert_eq!(m.sid, "SM2");
    assert!(m.media.is_empty());
}

#[test]
fn keywords() {
    for w in [
        "STOP",
        "stop",
        " Stop. ",
        "STOPALL",
        "unsubscribe",
        "Cancel",
        "END",
        "quit!",
        "REVOKE",
        "optout",
    ] {
        assert_eq!(
            keyword(Some(w), None).map(|k| k.0),
            Some(Keyword::OptOut),
            "{w}"
        );
    }
    for w in ["START", "unstop", "Yes"] {
        assert_eq!(
            keyword(Some(w), None).map(|k| k.0),
            Some(Keyword::OptIn),
            "{w}"
        );
    }
    for w in ["stop please", "please cancel", "", "help", "STOP ALL"] {
        assert_eq!(keyword(Some(w), None), None, "{w}");
    }
    assert_eq!(keyword(None, None), None);
    assert_eq!(
        keyword(Some("arrête"), Some("STOP")),
        Some((Keyword::OptOut, "STOP".into()))
    );
    assert_eq!(
        keyword(Some("go"), Some("start")),
        Some((Keyword::OptIn, "START".into()))
    );
    assert_eq!(keyword(Some("info"), Some("HELP")), None);
    assert_eq!(
        keyword(Some(" stop "), None),
        Some((Keyword::OptOut, "STOP".into()))
    );
}

#[test]
fn twiml_answers() {
    assert_eq!(
        twiml(None),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
    );
    assert_eq!(twiml(Some("  ")), EMPTY_TWIML);
    assert_eq!(
        twiml(Some("Thanks! We'll reply <soon> & \"fast\"")),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks! We&apos;ll reply &lt;soon&gt; &amp; &quot;fast&quot;</Message></Response>"
    );
    assert_eq!(xml_escape("a\u{0}b\nc"), "ab\nc");
}

#[test]
fn account_check() {
    assert_eq!(foreign_account(None, Some("AC1")), None);
    assert_eq!(foreign_account(Some("AC1"), None), None);
    assert_eq!(foreign_account(Some("AC1"), Some("AC1")), None);
    assert!(foreign_account(Some("AC1"), Some("AC2")).is_some());
}
