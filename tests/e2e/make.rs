//! The Make.com connector through the real binary: scenario posts guarded by the tenant's token
//! and stored once per Idempotency-Key, and the hub triggering scenarios on a local stand-in
//! for Make (a custom webhook whose URL is a sealed credential, and the API's scenario run with
//! `Authorization: Token`), 429 retried, each at most once per key.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::resend::{job_ends, job_result, run_action};
use crate::util::*;

const TOKEN: &str = "make-token-8d3e91c0";
const HOOK_TOKEN: &str = "2f4kq8yw1n3mvb7";

/// What the stand-in for Make saw: (path, headers, body).
#[derive(Default)]
struct Seen {
    requests: Vec<(String, HeaderMap, Value)>,
    /// Answer the next scenario run with a 429 this many times.
    limited: u32,
}

type Shared = Arc<Mutex<Seen>>;

async fn make(
    State(seen): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, String) {
    let path = uri.path().to_string();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = seen.lock().unwrap();
    s.requests.push((path.clone(), headers, value));
    let mut out = HeaderMap::new();
    if path == format!("/{HOOK_TOKEN}") {
        return (StatusCode::OK, out, "Accepted".into());
    }
    if path.starts_with("/api/v2/scenarios/") && path.ends_with("/run") {
        if s.limited > 0 {
            s.limited -= 1;
            out.insert("retry-after", "1".parse().unwrap());
            let body = json!({"message": "Requests limit for organization exceeded, please try again later."});
            return (StatusCode::TOO_MANY_REQUESTS, out, body.to_string());
        }
        out.insert("content-type", "application/json".parse().unwrap());
        return (
            StatusCode::OK,
            out,
            json!({"executionId": "exec-5c1d", "status": 1}).to_string(),
        );
    }
    (
        StatusCode::NOT_FOUND,
        out,
        "{\"message\":\"Not found\"}".into(),
    )
}

async fn started() -> (TestHub, Shared) {
    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(make))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.make]
builtin = true
allow_hosts = ["https://hook.us1.make.com", "https://us1.make.com"]
stand_ins = {{ "https://hook.us1.make.com" = "http://127.0.0.1:{port}", "https://us1.make.com" = "http://127.0.0.1:{port}" }}

[tenants.acme]
name = "Acme"
[tenants.acme.connectors.make]
config = {{ zone = "us1" }}
[tenants.acme.connectors.make.credentials]
token = "{token}"
api_token = "{api}"
webhook_url = "{url}"
"#,
        server = hub.server_section(),
        token = hub.seal_tenant("acme", "make", "token", TOKEN),
        api = hub.seal_tenant("acme", "make", "api_token", "make-api-7f"),
        url = hub.seal_tenant(
            "acme",
            "make",
            "webhook_url",
            &format!("https://hook.us1.make.com/{HOOK_TOKEN}")
        ),
    );
    hub.write_config(&config);
    hub.start().await;
    (hub, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_posts_are_stored_once_and_the_hub_triggers_scenarios_at_most_once() {
    let (hub, seen) = started().await;
    let post = |token: &'static str, key: Option<&'static str>| {
        let mut headers = vec![
            ("x-hub-token", token.to_string()),
            ("content-type", "application/json".to_string()),
        ];
        if let Some(k) = key {
            headers.push(("idempotency-key", k.to_string()));
        }
        headers
    };
    let body =
        br#"{"event":"lead.created","data":{"name":"Ada Lovelace","email":"ada@example.com"}}"#;

    let (status, text) = hub
        .post("/hooks/acme/make", &post(TOKEN, Some("exec-1")), body)
        .await;
    assert_eq!(status, 200, "{text}");
    let (_, again) = hub
        .post("/hooks/acme/make", &post(TOKEN, Some("exec-1")), body)
        .await;
    assert!(
        again.contains("duplicate"),
        "Make's retry is stored once: {again}"
    );
    let (status, _) = hub
        .post(
            "/hooks/acme/make",
            &post("wrong-token", Some("exec-2")),
            body,
        )
        .await;
    assert_eq!(status, 401);
    let (status, text) = hub.post("/hooks/acme/make", &post(TOKEN, None), body).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("idempotency-key"),
        "the scenario is told what it forgot: {text}"
    );

    let posted = wait_for(20, "the scenario's post", || async {
        hub.records("acme", "scenario_post")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(posted["data"]["event"], "lead.created", "{posted}");
    assert_eq!(posted["data"]["data"]["email"], "ada@example.com");
    assert_eq!(hub.records("acme", "scenario_post").await.len(), 1);

    // hub -> Make: the sealed webhook URL, filled in by the host.
    let out = run_action(
        &hub,
        "make",
        "trigger_webhook",
        json!({"data": {"call_id": "c1"}}),
        "t1",
    );
    assert!(out.contains("queued"), "{out}");
    job_ends(&hub, "make", "t1", "done").await;
    let out = run_action(
        &hub,
        "make",
        "trigger_webhook",
        json!({"data": {"call_id": "c1"}}),
        "t1",
    );
    assert!(out.contains("already queued"), "{out}");

    // The API's scenario run: one 429 (retried), then Make's execution id.
    seen.lock().unwrap().limited = 1;
    run_action(
        &hub,
        "make",
        "run_scenario",
        json!({"scenario_id": 4242, "data": {"x": 1}}),
        "r1",
    );
    let (attempts, _) = job_ends(&hub, "make", "r1", "done").await;
    assert_eq!(attempts, 2, "the 429 was retried once");
    assert_eq!(
        job_result(&hub, "make", "r1").await["execution_id"],
        "exec-5c1d"
    );

    let s = seen.lock().unwrap();
    let hooks: Vec<_> = s
        .requests
        .iter()
        .filter(|r| r.0 == format!("/{HOOK_TOKEN}"))
        .collect();
    assert_eq!(hooks.len(), 1, "triggered once");
    assert_eq!(hooks[0].2, json!({"call_id": "c1"}));
    assert_eq!(hooks[0].1["idempotency-key"], "action:acme:make:t1");
    let runs: Vec<_> = s
        .requests
        .iter()
        .filter(|r| r.0 == "/api/v2/scenarios/4242/run")
        .collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].1["authorization"], "Token make-api-7f");
    assert_eq!(runs[1].2, json!({"data": {"x": 1}, "responsive": false}));
    drop(s);
    assert!(
        !hub.log().contains(HOOK_TOKEN),
        "the webhook URL's secret never reaches the log"
    );
}
