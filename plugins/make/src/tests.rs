//! The Make connector on the SDK's in-memory host: posts stored once per key, triggers and runs
//! that act at most once, Make's refusals and outages told apart.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use super::Make;

const HOOK: &str = "https://hook.us1.make.com/2f4kq8yw1n3m";
const RUN: &str = "https://us1.make.com/api/v2/scenarios/4242/run";

fn hub() -> Harness<Make> {
    Harness::new()
        .config("zone", "us1")
        .credential("token", "hub-token")
        .credential("api_token", "make-api-token")
        .credential("webhook_url", HOOK)
}

#[test]
fn a_post_becomes_a_record_and_an_event_keyed_by_its_idempotency_key() {
    let mut h = hub();
    let d = h
        .webhook(
            "",
            r#"{"event":"lead.created","data":{"name":"Ada","email":"ada@example.com"}}"#,
        )
        .with_header("idempotency-key", "exec-1");
    h.deliver(d).unwrap();
    let record: Value = h.record("scenario_post", "exec-1").unwrap();
    assert_eq!(record["event"], "lead.created");
    assert_eq!(record["data"]["email"], "ada@example.com");
    assert_eq!(h.events()[0].name, "make.received");
    assert_eq!(h.events()[0].payload["key"], "exec-1");
}

#[test]
fn a_flat_json_or_form_post_is_its_own_data() {
    let mut h = hub();
    let d = h
        .webhook("", r#"{"name":"Ada","phone":"+14155550100"}"#)
        .with_header("idempotency-key", "exec-2");
    h.deliver(d).unwrap();
    let record: Value = h.record("scenario_post", "exec-2").unwrap();
    assert_eq!(record["event"], Value::Null);
    assert_eq!(record["data"]["phone"], "+14155550100");

    let d = h
        .webhook("", "event=call.done&caller=%2B14155550100")
        .with_header("idempotency-key", "exec-3");
    h.deliver(d).unwrap();
    let record: Value = h.record("scenario_post", "exec-3").unwrap();
    assert_eq!(record["event"], "call.done");
    assert_eq!(record["data"]["caller"], "+14155550100");
}

#[test]
fn a_body_that_is_not_an_object_is_a_bad_request_that_writes_nothing() {
    let mut h = hub();
    let d = h
        .webhook("", "[1,2]")
        .with_header("idempotency-key", "exec-4");
    let err = h.deliver(d).unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("JSON object"), "{err}");
    assert!(h.records("scenario_post").is_empty());
}

#[test]
fn trigger_webhook_posts_to_the_sealed_url_once_per_key() {
    let mut h = hub();
    h.on("POST", HOOK, Answer::status(429));
    h.on("POST", HOOK, Answer::status(200).body("Accepted"));
    let input = json!({ "data": { "lead": "Ada" } });
    assert!(
        h.action("trigger_webhook", &input, "k1")
            .unwrap_err()
            .is_retryable()
    );
    assert_eq!(
        h.action("trigger_webhook", &input, "k1").unwrap(),
        json!({"accepted": true})
    );
    assert_eq!(
        h.action("trigger_webhook", &input, "k1").unwrap()["duplicate"],
        true
    );
    let sent = h.requests();
    assert_eq!(sent.len(), 2, "the third call found the marker");
    assert_eq!(sent[1].url, HOOK);
    assert_eq!(sent[1].json(), json!({ "lead": "Ada" }));
    assert_eq!(sent[1].header("idempotency-key"), Some("k1"));
    assert_eq!(sent[1].header("x-make-apikey"), None);
}

#[test]
fn a_make_outage_is_retried_with_its_status_and_the_retry_sends_once() {
    let mut h = hub();
    h.on("POST", RUN, Answer::status(503).body("Service Unavailable"));
    h.on(
        "POST",
        RUN,
        Answer::status(200).body(r#"{"executionId":"exec-9"}"#),
    );
    let input = json!({ "scenario_id": 4242 });
    let err = h.action("run_scenario", &input, "k5").unwrap_err();
    assert!(err.is_retryable(), "a 5xx is Make's outage: {err}");
    assert!(err.to_string().contains("503"), "{err}");
    h.action("run_scenario", &input, "k5").unwrap();
    h.action("run_scenario", &input, "k5").unwrap();
    assert_eq!(
        h.requests().len(),
        2,
        "the outage and the one run; then the marker"
    );
}

#[test]
fn trigger_webhook_sends_the_api_key_when_configured() {
    let mut h = hub()
        .config("send_api_key", true)
        .credential("webhook_api_key", "hook-key");
    h.on("POST", HOOK, Answer::status(200).body("Accepted"));
    h.action("trigger_webhook", &json!({ "data": {} }), "k2")
        .unwrap();
    assert_eq!(h.requests()[0].header("x-make-apikey"), Some("hook-key"));
}

#[test]
fn a_lost_answer_is_not_retried_so_a_scenario_cannot_run_twice() {
    let mut h = hub();
    h.on("POST", HOOK, Answer::timeout());
    let err = h
        .action("trigger_webhook", &json!({ "data": {} }), "k3")
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("may have acted"), "{err}");
    h.on("POST", RUN, Answer::transport("connection refused"));
    let err = h
        .action("run_scenario", &json!({ "scenario_id": 4242 }), "k4")
        .unwrap_err();
    assert!(
        err.is_retryable(),
        "a refused connection sent nothing: {err}"
    );
}

#[test]
fn run_scenario_runs_through_the_api_with_a_token_once_per_key() {
    let mut h = hub();
    h.on(
        "POST",
        RUN,
        Answer::json(200, &json!({ "executionId": "exec-77", "status": 1 })),
    );
    let input = json!({ "scenario_id": "4242", "data": { "name": "Ada" } });
    assert_eq!(
        h.action("run_scenario", &input, "k5").unwrap()["execution_id"],
        "exec-77"
    );
    assert_eq!(
        h.action("run_scenario", &input, "k5").unwrap()["duplicate"],
        true
    );
    let sent = h.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("authorization"),
        Some("Token make-api-token")
    );
    assert_eq!(
        sent[0].json(),
        json!({ "data": { "name": "Ada" }, "responsive": false })
    );
}

#[test]
fn make_refusals_are_permanent_with_its_message() {
    let mut h = hub();
    h.on(
        "POST",
        RUN,
        Answer::json(
            400,
            &json!({ "message": "Scenario is not active", "code": "IM305" }),
        ),
    );
    let err = h
        .action("run_scenario", &json!({ "scenario_id": 4242 }), "k6")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("permanent: scenario 4242: provider answered 400")
            && err.contains("Scenario is not active"),
        "{err}"
    );
    let err = h
        .action(
            "run_scenario",
            &json!({ "scenario_id": "4242; drop" }),
            "k7",
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("must be a scenario's number"),
        "{err}"
    );
}

#[test]
fn without_a_zone_or_a_token_the_errors_say_what_to_configure() {
    let mut h = Harness::<Make>::new().credential("api_token", "t");
    let err = h
        .action("run_scenario", &json!({ "scenario_id": 1 }), "k8")
        .unwrap_err();
    assert_eq!(err.to_string(), "permanent: config key `zone` is not set");
    let mut h = Harness::<Make>::new().config("zone", "us1");
    let err = h.job("check_credentials", &json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "permanent: credential `api_token` is not configured"
    );
    let mut h = Harness::<Make>::new().config("zone", "mars1");
    assert!(
        h.job("check_credentials", &json!({}))
            .unwrap_err()
            .to_string()
            .contains("Make's zones are eu1, eu2, us1, us2")
    );
}

#[test]
fn check_credentials_calls_users_me() {
    let mut h = hub();
    h.on(
        "GET",
        "https://us1.make.com/api/v2/users/me",
        Answer::json(200, &json!({ "authUser": { "id": 1 } })),
    );
    h.job("check_credentials", &json!({})).unwrap();
    h.on(
        "GET",
        "https://us1.make.com/api/v2/users/me",
        Answer::json(401, &json!({ "message": "Invalid token" })),
    );
    // The first rule's answers are given in turn: 200, then 401 from then on.
    let err = h.job("check_credentials", &json!({})).unwrap_err();
    assert!(err.to_string().contains("Invalid token"), "{err}");
}
