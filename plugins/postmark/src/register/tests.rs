//! `register_webhooks`, `unregister_webhooks` and `verify_webhooks` on the SDK's in-memory host,
//! against stand-in answers shaped like Postmark's webhooks API.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use crate::Postmark;

const LIST: &str = "https://api.postmarkapp.com/webhooks";
const HOOK: &str = "https://hub.example/hooks/acme/postmark/webhook";

fn hub() -> Harness<Postmark> {
    Harness::<Postmark>::new()
        .config("from", "Acme <care@acme.example>")
        .credential("server_token", "pm-server-token")
}

fn listed(webhooks: Value) -> Answer {
    Answer::json(200, &json!({ "Webhooks": webhooks }))
}

fn sent(hub: &Harness<Postmark>) -> Vec<String> {
    hub.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect()
}

/// The URL Postmark was given, with the credentials the host generated and keeps.
fn authed(hub: &Harness<Postmark>) -> String {
    let kept = hub.kept();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].0, "webhook_auth");
    assert!(kept[0].1.starts_with("hub:"), "{kept:?}");
    HOOK.replace("https://", &format!("https://{}@", kept[0].1))
}

#[test]
fn a_missing_registration_is_created_with_credentials_the_host_keeps() {
    let mut hub = hub();
    hub.on(
        "GET",
        LIST,
        listed(json!([{ "ID": 3, "Url": "https://else.example/pm", "MessageStream": "outbound" }])),
    );
    hub.on(
        "POST",
        LIST,
        Answer::json(
            200,
            &json!({ "ID": 7, "Url": "(as sent)", "MessageStream": "outbound" }),
        ),
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(sent(&hub), [format!("GET {LIST}"), format!("POST {LIST}")]);
    let created = &hub.requests()[1];
    assert_eq!(
        created.header("x-postmark-server-token"),
        Some("pm-server-token")
    );
    assert_eq!(created.header("accept"), Some("application/json"));
    let body = created.json();
    assert_eq!(body["Url"], authed(&hub));
    assert_eq!(body["MessageStream"], "outbound");
    assert_eq!(
        body["Verify"], false,
        "tested once the hub holds the credentials"
    );
    assert!(body.get("HttpAuth").is_none(), "{body}");
    let triggers = body["Triggers"].as_object().unwrap();
    assert_eq!(triggers.len(), 6);
    assert!(triggers.values().all(|t| t["Enabled"] == true), "{body}");
    let record: Value = hub.record("webhook", "7").unwrap();
    assert_eq!(
        (record["url"].as_str(), record["message_stream"].as_str()),
        (Some(HOOK), Some("outbound"))
    );
    assert!(
        !record.to_string().contains(&hub.kept()[0].1),
        "the secret reached a record"
    );
    let queued = hub.jobs();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].name.as_str(), &queued[0].input),
        ("verify_webhooks", &json!({ "ids": [7] }))
    );
}

#[test]
fn an_existing_registration_is_kept_with_fresh_credentials_and_a_duplicate_removed() {
    let mut hub = hub().config("message_stream", "outbound");
    let old = HOOK.replace("https://", "https://hub:old-token@");
    hub.on("GET", LIST, listed(json!([
        { "ID": 1, "Url": old, "MessageStream": "outbound", "HttpAuth": { "Username": "", "Password": "" } },
        { "ID": 3, "Url": "https://else.example/pm", "MessageStream": "outbound" },
        { "ID": 2, "Url": HOOK, "MessageStream": "outbound" },
        { "ID": 4, "Url": format!("{HOOK}/"), "MessageStream": "broadcast", "HttpAuth": { "Username": "hub", "Password": "old-token" } },
    ])));
    hub.on(
        "DELETE",
        &format!("{LIST}/2"),
        Answer::json(
            200,
            &json!({ "ErrorCode": 0, "Message": "Webhook 2 removed." }),
        ),
    );
    hub.on(
        "PUT",
        &format!("{LIST}/1"),
        Answer::json(200, &json!({ "ID": 1 })),
    );
    hub.on(
        "PUT",
        &format!("{LIST}/4"),
        Answer::json(200, &json!({ "ID": 4 })),
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(
        sent(&hub),
        [
            format!("GET {LIST}"),
            format!("DELETE {LIST}/2"),
            format!("PUT {LIST}/1"),
            format!("PUT {LIST}/4")
        ],
        "the other URL untouched, nothing created"
    );
    for put in &hub.requests()[2..] {
        let body = put.json();
        assert_eq!(body["Url"], authed(&hub));
        assert!(
            body.get("MessageStream").is_none(),
            "PUT cannot move a webhook: {body}"
        );
        assert_eq!(
            (
                body["Verify"].as_bool(),
                body["Triggers"].as_object().map(|t| t.len())
            ),
            (Some(false), Some(6))
        );
    }
    assert_eq!(hub.records("webhook").len(), 2);
    assert_eq!(hub.jobs()[0].input, json!({ "ids": [1, 4] }));
}

#[test]
fn a_webhook_made_by_hand_with_basic_auth_fields_is_replaced() {
    let mut hub = hub();
    hub.on(
        "GET",
        LIST,
        listed(json!([{ "ID": 1, "Url": HOOK, "MessageStream": "outbound",
        "HttpAuth": { "Username": "pm-hook", "Password": "s3cret-pass" } }])),
    );
    hub.on(
        "DELETE",
        &format!("{LIST}/1"),
        Answer::json(200, &json!({ "ErrorCode": 0, "Message": "removed" })),
    );
    hub.on("POST", LIST, Answer::json(200, &json!({ "ID": 9 })));
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(
        sent(&hub),
        [
            format!("GET {LIST}"),
            format!("DELETE {LIST}/1"),
            format!("POST {LIST}")
        ]
    );
    let body = hub.requests()[2].json();
    assert_eq!(
        (body["Url"].as_str(), body["MessageStream"].as_str()),
        (Some(authed(&hub).as_str()), Some("outbound"))
    );
    assert_eq!(hub.jobs()[0].input, json!({ "ids": [9] }));
}

#[test]
fn unregistering_removes_only_the_hubs_url_and_gone_is_fine() {
    let mut hub = hub();
    hub.put_record("webhook", "1", &json!({ "id": 1, "url": HOOK }));
    hub.on("GET", LIST, listed(json!([
        { "ID": 1, "Url": HOOK.replace("https://", "https://hub:t@"), "MessageStream": "outbound" },
        { "ID": 3, "Url": "https://else.example/pm", "MessageStream": "outbound" },
        { "ID": 5, "Url": HOOK, "MessageStream": "broadcast" },
    ])));
    hub.on(
        "DELETE",
        &format!("{LIST}/1"),
        Answer::json(200, &json!({ "ErrorCode": 0, "Message": "removed" })),
    );
    hub.on(
        "DELETE",
        &format!("{LIST}/5"),
        Answer::json(404, &json!({ "ErrorCode": 1300, "Message": "not found" })),
    );
    hub.job("unregister_webhooks", &json!({})).unwrap();
    assert_eq!(
        sent(&hub),
        [
            format!("GET {LIST}"),
            format!("DELETE {LIST}/1"),
            format!("DELETE {LIST}/5")
        ]
    );
    assert!(hub.records("webhook").is_empty());
    assert!(hub.kept().is_empty() && hub.jobs().is_empty());
}

#[test]
fn refusals_are_mapped_like_sending_and_keep_nothing() {
    let mut hub = hub();
    hub.on(
        "GET",
        LIST,
        Answer::json(
            401,
            &json!({ "ErrorCode": 10, "Message": "Bad or missing Server API token." }),
        ),
    );
    let err = hub.job("register_webhooks", &json!({})).unwrap_err();
    assert!(
        err.is_permanent() && err.to_string().contains("Bad or missing Server API token"),
        "{err}"
    );
    let mut hub = self::hub();
    hub.on("GET", LIST, listed(json!([])));
    hub.on(
        "POST",
        LIST,
        Answer::json(
            429,
            &json!({ "ErrorCode": 429, "Message": "Rate limit exceeded" }),
        ),
    );
    assert!(
        hub.job("register_webhooks", &json!({}))
            .unwrap_err()
            .is_retryable()
    );
    assert!(hub.kept().is_empty(), "a failed run keeps no credentials");
    let mut hub = self::hub();
    hub.on("GET", LIST, Answer::status(503));
    assert!(
        hub.job("unregister_webhooks", &json!({}))
            .unwrap_err()
            .is_retryable()
    );
}

#[test]
fn verifying_marks_the_record_and_retries_while_a_trigger_fails() {
    let mut hub = hub();
    hub.put_record(
        "webhook",
        "7",
        &json!({ "id": 7, "url": HOOK, "verified": false }),
    );
    let verify = format!("{LIST}/7/verify");
    hub.on("POST", &verify, Answer::json(200, &json!({ "Id": 7, "Success": false, "Message": "5/6 triggers verified successfully",
        "Results": [{ "TriggerType": "Delivery", "Success": true, "StatusCode": 200, "Message": "OK" },
                    { "TriggerType": "Bounce", "Success": false, "StatusCode": 401, "Message": "Unauthorized" }] })));
    hub.on(
        "POST",
        &verify,
        Answer::json(200, &json!({ "Id": 7, "Success": true, "Results": [] })),
    );
    let err = hub
        .job("verify_webhooks", &json!({ "ids": [7] }))
        .unwrap_err();
    assert!(
        err.is_retryable()
            && err
                .to_string()
                .contains("webhook 7 Bounce: 401 Unauthorized"),
        "{err}"
    );
    hub.job("verify_webhooks", &json!({ "ids": [7] })).unwrap();
    let record: Value = hub.record("webhook", "7").unwrap();
    assert_eq!(record["verified"], true);
    hub.on(
        "POST",
        &format!("{LIST}/8/verify"),
        Answer::json(404, &json!({ "ErrorCode": 1300, "Message": "gone" })),
    );
    hub.job("verify_webhooks", &json!({ "ids": [8] })).unwrap();
}
