//! `register_webhooks` and `unregister_webhooks` against the SDK's in-memory host, with Twilio
//! answering as `twilio_api_v2010.json` describes (`ListIncomingPhoneNumberResponse`,
//! `api.v2010.account.incoming_phone_number`).

use plugin_sdk::harness::{Answer, Harness, Sent};
use serde_json::{Value, json};

use super::Registration;
use crate::Twilio;

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "9f2c1e0b7a6d5c4b3a29180f7e6d5c4b";
/// `base64("{AC}:{TOKEN}")`.
const BASIC: &str = "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjo5ZjJjMWUwYjdhNmQ1YzRiM2EyOTE4MGY3ZTZkNWM0Yg==";
const PN: &str = "PN0123456789abcdef0123456789abcdef";
const PN_OLD: &str = "PNfedcba9876543210fedcba9876543210";
const NUMBER: &str = "+14155550100";
const SMS: &str = "https://hub.example/hooks/acme/twilio/sms";
/// The hub's `status` route: never a number's `StatusCallback` as far as registering goes.
const STATUS: &str = "https://hub.example/hooks/acme/twilio/status";
/// A tenant's own voice call status URL (a number's `StatusCallback`): never touched.
const CALLS: &str = "https://tenant.example/call-status";

fn numbers() -> String {
    format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers")
}

fn hub() -> Harness<Twilio> {
    Harness::<Twilio>::new()
        .tenant("acme")
        .config("account_sid", AC)
        .config("from", NUMBER)
        .credential("auth_token", TOKEN)
}

/// An IncomingPhoneNumber as Twilio answers it (`status_callback`: its voice call status URL).
fn number(sid: &str, phone: &str, sms_url: &str, status_callback: &str) -> Value {
    json!({
        "account_sid": AC, "sid": sid, "phone_number": phone, "friendly_name": phone,
        "capabilities": {"voice": true, "sms": true, "mms": true, "fax": false},
        "sms_application_sid": "", "sms_fallback_method": "POST", "sms_fallback_url": "",
        "sms_method": "POST", "sms_url": sms_url,
        "status_callback": status_callback, "status_callback_method": "POST",
        "voice_url": "https://tenant.example/voice", "voice_method": "POST",
        "uri": format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers/{sid}.json"),
    })
}

fn list(found: Vec<Value>) -> Answer {
    Answer::json(
        200,
        &json!({
            "incoming_phone_numbers": found, "page": 0, "page_size": 50, "start": 0, "end": 0,
            "first_page_uri": format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json?PhoneNumber=%2B14155550100&PageSize=50&Page=0"),
            "next_page_uri": null, "previous_page_uri": null,
            "uri": format!("/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json?PhoneNumber=%2B14155550100&PageSize=50&Page=0"),
        }),
    )
}

fn updates(hub: &Harness<Twilio>) -> Vec<Sent> {
    hub.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

fn form(sent: &Sent) -> Vec<(String, String)> {
    sent.form()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, val)| (k.to_string(), val.to_string()))
        .collect()
}

/// Whether any update the hub sent names a `StatusCallback*` field.
fn touches_status_callback(hub: &Harness<Twilio>) -> bool {
    updates(hub)
        .iter()
        .flat_map(form)
        .any(|(k, _)| k.starts_with("StatusCallback"))
}

#[test]
fn a_number_not_yet_pointed_at_the_hub_is_pointed_there_and_recorded() {
    let mut hub = hub();
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        list(vec![
            // Twilio's filter matches partial numbers too: only the exact one counts.
            number(PN_OLD, "+141555501009", "", ""),
            number(
                PN,
                NUMBER,
                "https://demo.twilio.com/welcome/sms/reply",
                CALLS,
            ),
        ]),
    );
    hub.on(
        "POST",
        &format!("{}/{PN}.json", numbers()),
        Answer::json(200, &number(PN, NUMBER, SMS, CALLS)),
    );
    hub.job("register_webhooks", &json!({})).unwrap();

    let sent = hub.requests();
    assert_eq!(sent.len(), 2, "one search, one update");
    assert_eq!(
        sent[0].url,
        format!("{}.json?PhoneNumber=%2B14155550100&PageSize=50", numbers())
    );
    for r in &sent {
        assert_eq!(
            r.header("authorization"),
            Some(BASIC),
            "AccountSid:AuthToken"
        );
    }
    assert_eq!(sent[1].url, format!("{}/{PN}.json", numbers()));
    assert_eq!(
        sent[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // Only the messaging URL: the number's StatusCallback is its voice call status URL.
    assert_eq!(
        form(&sent[1]),
        pairs(&[("SmsUrl", SMS), ("SmsMethod", "POST")])
    );
    assert!(
        hub.kept().is_empty(),
        "Twilio signs with the Auth Token: nothing to keep"
    );
    let record: Registration = hub.record("webhook", PN).unwrap();
    assert_eq!(
        record,
        Registration {
            sid: PN.into(),
            phone_number: NUMBER.into(),
            sms_url: SMS.into(),
        }
    );
    assert!(
        hub.logs()
            .iter()
            .any(|(_, l)| l.contains("SmsUrl at the hub") && l.contains("StatusCallback")),
        "{:?}",
        hub.logs()
    );
}

#[test]
fn a_number_already_pointed_at_the_hub_is_kept_without_an_update() {
    let mut hub = hub().config("from", "+1 (415) 555-0100");
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        // Whatever its StatusCallback (the tenant's call status URL), SmsUrl is what counts.
        list(vec![number(PN, NUMBER, SMS, CALLS)]),
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    hub.job("register_webhooks", &json!({})).unwrap();
    assert!(updates(&hub).is_empty(), "{:?}", updates(&hub));
    assert_eq!(hub.requests().len(), 2, "one search per run");
    assert_eq!(hub.records("webhook").len(), 1);

    // The right URLs by GET are not registered: POST is what the routes verify.
    let mut hub = self::hub();
    let mut by_get = number(PN, NUMBER, SMS, CALLS);
    by_get["sms_method"] = json!("GET");
    hub.on("GET", &format!("{}.json?", numbers()), list(vec![by_get]));
    hub.on(
        "POST",
        &format!("{}/{PN}.json", numbers()),
        Answer::json(200, &number(PN, NUMBER, SMS, CALLS)),
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    let sent = updates(&hub);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        form(&sent[0]),
        pairs(&[("SmsUrl", SMS), ("SmsMethod", "POST")])
    );
}

#[test]
fn the_hubs_sms_url_on_a_number_that_is_no_longer_the_tenants_is_removed() {
    let mut hub = hub();
    // Registered earlier, when `from` was another number.
    hub.put_record(
        "webhook",
        PN_OLD,
        &Registration {
            sid: PN_OLD.into(),
            phone_number: "+14155550199".into(),
            sms_url: SMS.into(),
        },
    );
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        list(vec![number(PN, NUMBER, SMS, CALLS)]),
    );
    // Its StatusCallback (the tenant's call status URL) stays.
    hub.on(
        "GET",
        &format!("{}/{PN_OLD}.json", numbers()),
        Answer::json(200, &number(PN_OLD, "+14155550199", SMS, CALLS)),
    );
    hub.on(
        "POST",
        &format!("{}/{PN_OLD}.json", numbers()),
        Answer::json(200, &number(PN_OLD, "+14155550199", "", CALLS)),
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    let sent = updates(&hub);
    assert_eq!(sent.len(), 1, "the tenant's number was already right");
    assert_eq!(sent[0].url, format!("{}/{PN_OLD}.json", numbers()));
    assert_eq!(form(&sent[0]), pairs(&[("SmsUrl", "")]));
    let kept: Vec<String> = hub.records("webhook").into_iter().map(|(k, _)| k).collect();
    assert_eq!(kept, vec![PN.to_string()]);
}

#[test]
fn unregister_clears_only_what_still_points_at_the_hub() {
    let mut hub = hub();
    hub.put_record(
        "webhook",
        PN,
        &Registration {
            sid: PN.into(),
            phone_number: NUMBER.into(),
            sms_url: SMS.into(),
        },
    );
    // A number the hub set once, released by the tenant since: Twilio no longer has it.
    hub.put_record("webhook", PN_OLD, &json!({ "sid": PN_OLD }));
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        list(vec![number(PN, NUMBER, SMS, CALLS)]),
    );
    hub.on(
        "GET",
        &format!("{}/{PN_OLD}.json", numbers()),
        Answer::json(
            404,
            &json!({"code": 20404, "message": "The requested resource was not found", "status": 404}),
        ),
    );
    hub.on(
        "POST",
        &format!("{}/{PN}.json", numbers()),
        Answer::json(200, &number(PN, NUMBER, "", CALLS)),
    );
    hub.job("unregister_webhooks", &json!({})).unwrap();
    let sent = updates(&hub);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(form(&sent[0]), pairs(&[("SmsUrl", "")]));
    assert!(hub.records("webhook").is_empty());

    // Again: nothing points at the hub any more, nothing is sent but the search.
    let mut again = self::hub();
    again.on(
        "GET",
        &format!("{}.json?", numbers()),
        list(vec![number(PN, NUMBER, "", CALLS)]),
    );
    again.job("unregister_webhooks", &json!({})).unwrap();
    assert!(updates(&again).is_empty());
}

#[test]
fn a_numbers_status_callback_is_never_touched_by_register_or_unregister() {
    // StatusCallback on a number is its voice call status URL, whatever it holds: the tenant's
    // own, or even the hub's `status` route (set by hand). Neither makes a number "registered"
    // or is cleared; every update names SmsUrl/SmsMethod only.
    for callback in [CALLS, STATUS] {
        let mut hub = hub();
        let mut before = number(PN, NUMBER, "", callback);
        before["status_callback_method"] = json!("GET");
        hub.on("GET", &format!("{}.json?", numbers()), list(vec![before]));
        let mut after = number(PN, NUMBER, SMS, callback);
        after["status_callback_method"] = json!("GET");
        hub.on(
            "POST",
            &format!("{}/{PN}.json", numbers()),
            Answer::json(200, &after),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        let sent = updates(&hub);
        assert_eq!(sent.len(), 1, "{callback}: {sent:?}");
        assert_eq!(
            form(&sent[0]),
            pairs(&[("SmsUrl", SMS), ("SmsMethod", "POST")]),
            "{callback}"
        );

        // Registered, with the same StatusCallback: nothing to update.
        let mut again = self::hub();
        again.on(
            "GET",
            &format!("{}.json?", numbers()),
            list(vec![after.clone()]),
        );
        again.job("register_webhooks", &json!({})).unwrap();
        assert!(updates(&again).is_empty(), "{callback}");

        // Unregistered: SmsUrl cleared, StatusCallback kept, on the tenant's number and on a
        // recorded one alike.
        let mut undo = self::hub();
        undo.put_record(
            "webhook",
            PN_OLD,
            &Registration {
                sid: PN_OLD.into(),
                phone_number: "+14155550199".into(),
                sms_url: SMS.into(),
            },
        );
        undo.on("GET", &format!("{}.json?", numbers()), list(vec![after]));
        undo.on(
            "GET",
            &format!("{}/{PN_OLD}.json", numbers()),
            Answer::json(200, &number(PN_OLD, "+14155550199", SMS, callback)),
        );
        undo.on(
            "POST",
            &format!("{}/", numbers()),
            Answer::json(200, &number(PN, NUMBER, "", callback)),
        );
        undo.job("unregister_webhooks", &json!({})).unwrap();
        let sent = updates(&undo);
        assert_eq!(sent.len(), 2, "{callback}: {sent:?}");
        for r in &sent {
            assert_eq!(form(r), pairs(&[("SmsUrl", "")]), "{callback}");
        }

        // A number whose SmsUrl is someone else's: no update, whatever its StatusCallback.
        let mut elsewhere = self::hub();
        elsewhere.on(
            "GET",
            &format!("{}.json?", numbers()),
            list(vec![number(
                PN,
                NUMBER,
                "https://tenant.example/sms",
                callback,
            )]),
        );
        elsewhere.job("unregister_webhooks", &json!({})).unwrap();
        assert!(updates(&elsewhere).is_empty(), "{callback}");

        for h in [&hub, &again, &undo, &elsewhere] {
            assert!(!touches_status_callback(h), "{callback}");
        }
    }
}

#[test]
fn twilios_refusals_and_missing_numbers() {
    // Rate limited: retried, honouring retry-after.
    let mut hub = hub();
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        Answer::json(
            429,
            &json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
        )
        .header("retry-after", "3"),
    );
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    // A wrong token: permanent, with Twilio's message.
    let mut hub = self::hub();
    hub.on(
        "GET",
        &format!("{}.json?", numbers()),
        Answer::json(
            401,
            &json!({"code": 20003, "message": "Authenticate", "status": 401}),
        ),
    );
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(err.is_permanent());
    assert!(
        format!("{err:?}").contains("error 20003): Authenticate"),
        "{err:?}"
    );

    // Not a number of the account.
    let mut hub = self::hub();
    hub.on("GET", &format!("{}.json?", numbers()), list(vec![]));
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(format!("{err:?}").contains("is not a phone number of Twilio account"));
    assert!(hub.records("webhook").is_empty());

    // A TwiML App handles its messages: setting SmsUrl would change nothing.
    let mut hub = self::hub();
    let mut app = number(PN, NUMBER, "", "");
    app["sms_application_sid"] = json!("AP0123456789abcdef0123456789abcdef");
    hub.on("GET", &format!("{}.json?", numbers()), list(vec![app]));
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(err.is_permanent() && format!("{err:?}").contains("TwiML App"));
    assert!(updates(&hub).is_empty());

    // No number configured.
    let mut hub = Harness::<Twilio>::new()
        .config("account_sid", AC)
        .credential("auth_token", TOKEN);
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(err.is_permanent() && format!("{err:?}").contains("`from`"));
    assert!(hub.requests().is_empty());
}
