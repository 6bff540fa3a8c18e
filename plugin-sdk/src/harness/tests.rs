//! The harness keeps the hub's promises: what a failed invocation wrote is gone, reads see the
//! invocation's own writes, a credential the manifest forgot is named, answers come in turn.

use serde_json::{Value, json};

use super::{Answer, Failure, Harness};
use crate::*;

/// A connector whose behaviour each delivery's body picks.
struct Probe;

impl Connector for Probe {
    fn manifest() -> Manifest {
        Manifest {
            routes: vec![route(
                "",
                SignatureScheme::StandardWebhooks,
                "signing_secret",
            )],
            events: vec![EventDecl {
                name: "probe.seen".into(),
                description: String::new(),
                example: "{}".into(),
            }],
            jobs: vec![JobDecl {
                name: "follow_up".into(),
                description: String::new(),
                schedule: None,
            }],
            credentials: vec![
                field("signing_secret", true, ""),
                field("api_key", true, ""),
                field("hook_url", false, ""),
            ],
            outbound_hosts: vec!["https://api.example.com".into()],
            ..manifest("probe", "0.1.0")
        }
    }

    fn handle_delivery(d: Delivery) -> Result<Outcome, Error> {
        let body: Value = d.json()?;
        let key = body["key"].as_str().unwrap_or("k").to_string();
        records::upsert("thing", &key, &body)?;
        records::set_lookups("thing", &key, &[lookup::email("Ada@Example.com")]);
        kv::set("last", key.as_bytes());
        // Reads see this invocation's own writes.
        let seen: Option<Value> = records::get("thing", &key)?;
        assert_eq!(seen.as_ref(), Some(&body));
        assert_eq!(kv::get_string("last").as_deref(), Some(key.as_str()));
        publish("probe.seen", &body)?;
        enqueue_job("follow_up", &json!({ "key": key }), 60_000)?;
        match body["then"].as_str() {
            Some("fail") => Err(Error::permanent("asked to fail")),
            Some("panic") => panic!("asked to panic"),
            Some("undeclared") => {
                http::Request::get("https://api.example.com/me")
                    .bearer("token")
                    .send()?;
                Ok(Outcome::handled())
            }
            Some("call") => {
                http::Request::post("https://api.example.com/things")
                    .bearer("api_key")
                    .json(&body)?
                    .send()?
                    .error_for_status()?;
                Ok(Outcome::handled())
            }
            Some("hook") => {
                http::Request::post(http::credential_url("hook_url")).send()?;
                Ok(Outcome::handled())
            }
            Some("elsewhere") => {
                http::Request::get("https://evil.example.net/").send()?;
                Ok(Outcome::handled())
            }
            _ => Ok(Outcome::handled()),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        let input: Value =
            serde_json::from_str(&input).map_err(|e| Error::bad_request(e.to_string()))?;
        let key = input["key"].as_str().unwrap_or_default();
        records::upsert("followed", key, &json!({ "job": name, "at": now_ms() }))
    }
}

fn hub() -> Harness<Probe> {
    Harness::<Probe>::new().credential("api_key", "key_test")
}

#[test]
fn a_successful_delivery_commits_records_lookups_kv_events_and_jobs() {
    let mut h = hub();
    let d = h.webhook("", r#"{"key":"a"}"#);
    h.deliver(d).unwrap();
    assert_eq!(h.record::<Value>("thing", "a"), Some(json!({"key": "a"})));
    assert_eq!(h.lookups("thing", "a"), vec!["email:ada@example.com"]);
    assert_eq!(h.kv("last").as_deref(), Some(&b"a"[..]));
    assert_eq!(h.events().len(), 1);
    assert_eq!(h.jobs()[0].run_at_ms, h.now() + 60_000);
}

#[test]
fn a_failed_or_panicking_delivery_leaves_nothing_behind() {
    let mut h = hub();
    for then in ["fail", "panic"] {
        let d = h.webhook("", format!(r#"{{"key":"a","then":"{then}"}}"#));
        let err = h.deliver(d).unwrap_err();
        match then {
            "fail" => assert_eq!(err.to_string(), "permanent: asked to fail"),
            _ => assert_eq!(err.to_string(), "connector crashed: asked to panic"),
        }
    }
    assert!(h.records("thing").is_empty());
    assert!(h.kv("last").is_none());
    assert!(h.events().is_empty() && h.jobs().is_empty());
}

#[test]
fn a_credential_the_manifest_does_not_declare_fails_with_a_message_that_says_so() {
    let mut h = hub();
    let d = h.webhook("", r#"{"then":"undeclared"}"#);
    let Failure::Trapped(message) = h.deliver(d).unwrap_err() else {
        panic!("an undeclared credential must fail the invocation");
    };
    assert!(
        message.contains("credential `token` is not declared in the manifest of `probe`")
            && message.contains("`api_key`"),
        "{message}"
    );
    assert!(h.records("thing").is_empty());
}

#[test]
fn a_declared_credential_the_tenant_lacks_is_permanent_as_in_the_hub() {
    let mut h = Harness::<Probe>::new();
    let d = h.webhook("", r#"{"then":"call"}"#);
    let err = h.deliver(d).unwrap_err();
    assert_eq!(
        err.to_string(),
        "permanent: credential `api_key` is not configured"
    );
    assert!(h.requests().is_empty());
}

#[test]
fn answers_come_in_turn_and_requests_carry_the_credential() {
    let mut h = hub();
    h.on(
        "POST",
        "https://api.example.com/things",
        Answer::status(429).header("retry-after", "3"),
    );
    h.on(
        "POST",
        "https://api.example.com/",
        Answer::status(500).body("wrong rule"),
    );
    h.on(
        "POST",
        "https://api.example.com/things",
        Answer::json(201, &json!({})),
    );
    let d = h.webhook("", r#"{"key":"b","then":"call"}"#);
    let Failure::Connector(Error::Retryable(r)) = h.deliver(d.clone()).unwrap_err() else {
        panic!("a 429 is retryable");
    };
    assert_eq!(r.retry_after_ms, Some(3000));
    assert!(h.records("thing").is_empty());
    h.deliver(d.clone()).unwrap();
    h.deliver(d).unwrap();
    let sent = h.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].header("authorization"), Some("Bearer key_test"));
    assert_eq!(sent[2].json()["key"], "b");
    assert_eq!(sent[2].credential.as_deref(), Some("api_key"));
    assert_eq!(h.records("thing").len(), 1);
}

#[test]
fn a_url_held_in_a_credential_is_filled_in_and_checked_against_declared_hosts() {
    let mut h = hub().credential("hook_url", "https://api.example.com/hook/secret-token");
    h.on("POST", "https://api.example.com/hook/", Answer::status(200));
    let d = h.webhook("", r#"{"then":"hook"}"#);
    h.deliver(d).unwrap();
    assert_eq!(
        h.requests()[0].url,
        "https://api.example.com/hook/secret-token"
    );

    let mut h = hub().credential("hook_url", "https://evil.example.net/x");
    let d = h.webhook("", r#"{"then":"hook"}"#);
    let err = h.deliver(d).unwrap_err().to_string();
    assert!(
        err.contains("https://evil.example.net is not an allowed host") && !err.contains("/x"),
        "{err}"
    );
    let d = h.webhook("", r#"{"then":"elsewhere"}"#);
    assert!(h.deliver(d).unwrap_err().is_permanent());
}

#[test]
fn due_jobs_run_by_the_clock() {
    let mut h = hub();
    let d = h.webhook("", r#"{"key":"c"}"#);
    h.deliver(d).unwrap();
    assert!(h.run_due_jobs().is_empty(), "the job is due in a minute");
    h.advance(60_000);
    let ran = h.run_due_jobs();
    assert_eq!(ran.len(), 1);
    assert!(ran[0].1.is_ok());
    assert_eq!(
        h.record::<Value>("followed", "c"),
        Some(json!({"job": "follow_up", "at": h.now()}))
    );
}

#[test]
#[should_panic(expected = "the manifest declares no route `calls`")]
fn a_webhook_on_an_undeclared_route_is_a_test_bug() {
    let _ = hub().webhook("calls", "{}");
}
