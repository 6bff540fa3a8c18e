//! The Postmark connector through the real binary: webhooks behind HTTP Basic credentials (the
//! header PROVIDERS-2.md derives for `pm-hook` / `s3cret-pass`, not one the hub computes), a
//! retried webhook stored once (by its `X-PM-Webhook-Trace-Id`, or its body without one), and `send_email` to a local stand-in for api.postmarkapp.com.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::resend::{job_ends, run_action};
use crate::util::*;

/// `Authorization` for `pm-hook:s3cret-pass`.
const BASIC: &str = "Basic cG0taG9vazpzM2NyZXQtcGFzcw==";

type Sent = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn email(
    State(sent): State<Sent>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    sent.lock().unwrap().push((headers.clone(), body.clone()));
    if headers.get("x-postmark-server-token").is_none()
        || !body["From"].is_string()
        || !body["To"].is_string()
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ErrorCode": 300, "Message": "Invalid email request"}).to_string(),
        );
    }
    let answer = json!({"To": body["To"], "SubmittedAt": "2026-01-01T00:00:00Z", "MessageID": "pm-0001", "ErrorCode": 0, "Message": "OK"});
    (StatusCode::OK, answer.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_guarded_webhooks_become_records_and_send_email_goes_once() {
    let sent: Sent = Arc::default();
    let app = axum::Router::new()
        .route("/email", axum::routing::post(email))
        .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.postmark]
builtin = true
allow_hosts = ["https://api.postmarkapp.com"]
stand_ins = {{ "https://api.postmarkapp.com" = "http://127.0.0.1:{port}" }}

[tenants.acme]
name = "Acme"
[tenants.acme.connectors.postmark]
config = {{ from = "Acme Dental <hello@acme.test>" }}
[tenants.acme.connectors.postmark.credentials]
webhook_auth = "{auth}"
server_token = "{token}"
"#,
        server = hub.server_section(),
        auth = hub.seal_tenant("acme", "postmark", "webhook_auth", "pm-hook:s3cret-pass"),
        token = hub.seal_tenant("acme", "postmark", "server_token", "pm-server-token"),
    );
    hub.write_config(&config);
    hub.start().await;

    let path = "/hooks/acme/postmark/webhook";
    let body = json!({"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": "pm-0009",
        "Recipient": "jane@example.com", "DeliveredAt": "2026-01-01T00:00:00Z", "Metadata": {"hub_key": "k-9"}}).to_string();
    let json_type = ("content-type", "application/json".to_string());
    let (status, _) = hub
        .post(path, std::slice::from_ref(&json_type), body.as_bytes())
        .await;
    assert_eq!(status, 401, "no credentials");
    let wrong = ("authorization", "Basic cG0taG9vazp3cm9uZw==".to_string());
    let (status, _) = hub
        .post(path, &[json_type.clone(), wrong], body.as_bytes())
        .await;
    assert_eq!(status, 401, "a wrong password");
    let right = ("authorization", BASIC.to_string());
    let trace = (
        "x-pm-webhook-trace-id",
        "7b2c1a9e-0d4f-4c55-9b1e-2f6a8d3c4e01".to_string(),
    );
    let headers = [json_type.clone(), right.clone(), trace];
    let (status, text) = hub.post(path, &headers, body.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let (_, again) = hub.post(path, &headers, body.as_bytes()).await;
    assert!(
        again.contains("duplicate"),
        "Postmark's retry is stored once: {again}"
    );
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let (_, again) = hub.post(path, &headers, reserialized.as_bytes()).await;
    assert!(
        again.contains("duplicate"),
        "one trace id is one webhook, whatever its bytes: {again}"
    );
    let (status, untraced) = hub
        .post(
            path,
            &[json_type.clone(), right.clone()],
            reserialized.as_bytes(),
        )
        .await;
    assert_eq!(
        status, 200,
        "without a trace id it is stored by its body, not refused (a 4xx drops it): {untraced}"
    );
    assert!(!untraced.contains("duplicate"), "{untraced}");
    let (_, again) = hub
        .post(path, &[json_type.clone(), right], reserialized.as_bytes())
        .await;
    assert!(again.contains("duplicate"), "{again}");
    let record = wait_for(20, "the delivered email", || async {
        hub.records("acme", "email")
            .await
            .into_iter()
            .find(|r| r["key"] == "pm-0009")
    })
    .await;
    assert_eq!(record["data"]["status"], "delivered");
    assert_eq!(record["data"]["idempotency_key"], "k-9");

    let input = json!({"to": "jane@example.com", "subject": "Your visit", "text": "See you soon."});
    run_action(&hub, "postmark", "send_email", input.clone(), "visit-1");
    job_ends(&hub, "postmark", "visit-1", "done").await;
    let out = run_action(&hub, "postmark", "send_email", input, "visit-1");
    assert!(out.contains("already queued"), "{out}");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["x-postmark-server-token"], "pm-server-token");
    assert_eq!(
        sent[0].1["Metadata"]["hub_key"],
        "action:acme:postmark:visit-1"
    );
    assert_eq!(sent[0].1["MessageStream"], "outbound");
    let checked: Vec<Value> = sent
        .iter()
        .map(|(headers, body)| {
            json!({"method": "POST", "path": "/email", "headers": header_json(headers), "body": body})
        })
        .collect();
    assert_spec_accepts("postmark_server.yaml", &checked);
}
