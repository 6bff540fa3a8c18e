//! `register_webhooks` and `unregister_webhooks` against the SDK's in-memory host.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use super::Registration;
use crate::Retell;

const API: &str = "https://api.retellai.com";
const HOOK: &str = "https://hub.example/hooks/acme/retell";
const INBOUND: &str = "https://hub.example/hooks/acme/retell/inbound";
const ELSEWHERE: &str = "https://crm.example/retell-events";

fn hub(agent_ids: &[&str]) -> Harness<Retell> {
    Harness::<Retell>::new()
        .tenant("acme")
        .credential("api_key", "key_test")
        .config("agent_ids", agent_ids)
        .config(
            "inbound_variables",
            json!({ "*": { "company": "Acme Dental" } }),
        )
}

/// get-agent answers `id` with this `webhook_url`.
fn agent(hub: &mut Harness<Retell>, id: &str, webhook_url: Option<&str>) {
    hub.on(
        "GET",
        &format!("{API}/get-agent/{id}"),
        Answer::json(
            200,
            &json!({ "agent_id": id, "version": 0, "webhook_url": webhook_url,
                     "last_modification_timestamp": 1_714_608_000_000i64 }),
        ),
    );
}

fn number(number: &str, agent: &str, inbound_webhook_url: Option<&str>) -> Value {
    json!({ "phone_number": number, "phone_number_type": "retell-twilio", "inbound_agent_id": agent,
            "inbound_webhook_url": inbound_webhook_url, "last_modification_timestamp": 1 })
}

/// list-phone-numbers answers these, and the updates succeed.
fn numbers(hub: &mut Harness<Retell>, items: &[Value]) {
    hub.on(
        "GET",
        &format!("{API}/v2/list-phone-numbers?"),
        Answer::json(200, &json!({ "items": items, "has_more": false })),
    );
    hub.on(
        "PATCH",
        &format!("{API}/update-agent/"),
        Answer::json(200, &json!({})),
    );
    hub.on(
        "PATCH",
        &format!("{API}/update-phone-number/"),
        Answer::json(200, &json!({})),
    );
}

/// The updates sent, as `(url, body)`.
fn patches(hub: &Harness<Retell>) -> Vec<(String, Value)> {
    hub.requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| (r.url.clone(), r.json()))
        .collect()
}

fn update_agent(id: &str, url: Option<&str>) -> (String, Value) {
    (
        format!("{API}/update-agent/{id}"),
        json!({ "webhook_url": url }),
    )
}

fn update_number(encoded: &str, url: Option<&str>) -> (String, Value) {
    (
        format!("{API}/update-phone-number/{encoded}"),
        json!({ "inbound_webhook_url": url }),
    )
}

#[test]
fn missing_registrations_are_made_with_the_api_key_and_nothing_kept() {
    let mut hub = hub(&["agent_front", "agent_after"]);
    agent(&mut hub, "agent_front", None);
    agent(&mut hub, "agent_after", Some(ELSEWHERE));
    numbers(
        &mut hub,
        &[
            number("+14155550199", "agent_front", None),
            // Another tenant's agent answers this one: not ours to point.
            number("+14155550123", "agent_globex", None),
        ],
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(
        patches(&hub),
        vec![
            update_agent("agent_front", Some(HOOK)),
            update_agent("agent_after", Some(HOOK)),
            update_number("%2B14155550199", Some(INBOUND)),
        ]
    );
    for r in hub.requests() {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer key_test"),
            "{}",
            r.url
        );
    }
    assert!(hub.kept().is_empty(), "Retell signs with the API key");
    let after: Registration = hub.record("webhook", "agent:agent_after").unwrap();
    assert_eq!(after.url, HOOK);
    assert_eq!(after.replaced.as_deref(), Some(ELSEWHERE));
    let line: Registration = hub.record("webhook", "phone_number:+14155550199").unwrap();
    assert_eq!((line.url.as_str(), line.replaced), (INBOUND, None));
    assert_eq!(hub.records("webhook").len(), 3);
}

#[test]
fn existing_registrations_are_kept_and_strays_released() {
    // Listed twice: still one agent.
    let mut hub = hub(&["agent_front", "agent_front"]);
    agent(&mut hub, "agent_front", Some(&format!("{HOOK}/")));
    // Registered by an earlier run, since dropped from `agent_ids`.
    hub.put_record(
        "webhook",
        "agent:agent_old",
        &json!({ "target": "agent", "id": "agent_old", "url": HOOK, "replaced": ELSEWHERE }),
    );
    agent(&mut hub, "agent_old", Some(HOOK));
    numbers(
        &mut hub,
        &[
            number("+14155550199", "agent_front", Some(INBOUND)),
            number("+14155550123", "agent_globex", Some(INBOUND)),
            number(
                "+14155550177",
                "agent_globex",
                Some("https://globex.example/in"),
            ),
        ],
    );
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(
        patches(&hub),
        vec![
            update_agent("agent_old", None),
            update_number("%2B14155550123", None),
        ]
    );
    let gets = hub
        .requests()
        .iter()
        .filter(|r| r.url == format!("{API}/get-agent/agent_front"))
        .count();
    assert_eq!(gets, 1);
    let keys: Vec<String> = hub.records("webhook").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"agent:agent_front".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"phone_number:+14155550199".to_string()),
        "{keys:?}"
    );
}

#[test]
fn unregister_clears_only_the_hubs_urls() {
    let mut hub = hub(&["agent_front", "agent_after"]);
    agent(&mut hub, "agent_front", Some(HOOK));
    agent(&mut hub, "agent_after", Some(ELSEWHERE));
    // Recorded, and deleted at Retell since: already gone.
    hub.put_record(
        "webhook",
        "agent:agent_old",
        &json!({ "target": "agent", "id": "agent_old", "url": HOOK }),
    );
    hub.on(
        "GET",
        &format!("{API}/get-agent/agent_old"),
        Answer::json(404, &json!({ "error_message": "Not Found" })),
    );
    numbers(
        &mut hub,
        &[
            number("+14155550199", "agent_front", Some(INBOUND)),
            number(
                "+14155550123",
                "agent_globex",
                Some("https://globex.example/in"),
            ),
        ],
    );
    hub.put_record(
        "webhook",
        "phone_number:+14155550199",
        &json!({ "target": "phone_number", "id": "+14155550199", "url": INBOUND }),
    );
    hub.job("unregister_webhooks", &json!({})).unwrap();
    assert_eq!(
        patches(&hub),
        vec![
            update_agent("agent_front", None),
            update_number("%2B14155550199", None),
        ]
    );
    assert!(hub.records("webhook").is_empty());
}

#[test]
fn without_agent_ids_every_agent_of_the_account_and_no_inbound_without_variables() {
    let mut hub = Harness::<Retell>::new()
        .tenant("acme")
        .credential("api_key", "key_test");
    // Two versions of one agent, and another.
    hub.on(
        "POST",
        &format!("{API}/v2/list-agents?"),
        Answer::json(
            200,
            &json!({ "items": [{ "agent_id": "agent_a", "version": 1 }, { "agent_id": "agent_a", "version": 0 },
                               { "agent_id": "agent_b", "version": 0 }], "has_more": false }),
        ),
    );
    agent(&mut hub, "agent_a", None);
    agent(&mut hub, "agent_b", None);
    numbers(&mut hub, &[number("+14155550199", "agent_a", None)]);
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(
        patches(&hub),
        vec![
            update_agent("agent_a", Some(HOOK)),
            update_agent("agent_b", Some(HOOK))
        ]
    );
}

#[test]
fn retells_refusals_map_like_the_other_api_calls() {
    let run = |answer: Answer| {
        let mut hub = hub(&["agent_front"]);
        hub.on("GET", &format!("{API}/get-agent/agent_front"), answer);
        numbers(&mut hub, &[]);
        let err = hub.job("register_webhooks", &json!({})).unwrap_err();
        assert!(patches(&hub).is_empty());
        err
    };
    let throttled = run(
        Answer::json(429, &json!({ "error_message": "Too Many Requests" }))
            .header("retry-after", "3"),
    );
    assert!(throttled.is_retryable(), "{throttled}");
    assert!(run(Answer::status(503)).is_retryable());
    let refused = run(Answer::json(
        401,
        &json!({ "error_message": "Invalid API key" }),
    ));
    assert!(refused.is_permanent(), "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("get-agent agent_front") && text.contains("Invalid API key"),
        "{text}"
    );
    let missing = run(Answer::json(404, &json!({ "error_message": "Not Found" })));
    assert!(
        missing.is_permanent() && missing.to_string().contains("agent_ids"),
        "{missing}"
    );
}
