//! The SendGrid connector through the real binary: Event Webhook batches signed with node's
//! crypto and checked by `@sendgrid/eventwebhook`'s own verifier before posting, verified by the
//! hub (ECDSA P-256) before any connector code runs, each event stored once; and `send_email`
//! to a local stand-in for api.sendgrid.com (each request checked against
//! `tests/provider-specs/sendgrid_mail_v3.yaml`), through a 429 that waits for X-RateLimit-Reset.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::resend::{job_ends, run_action};
use crate::util::*;

#[derive(Default)]
struct Api {
    /// (authorization, body) of every send.
    sends: Vec<(String, Value)>,
    limited: u32,
}

type Shared = Arc<Mutex<Api>>;

async fn mail_send(
    State(api): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, String) {
    let mut out = HeaderMap::new();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut a = api.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    a.sends.push((auth, body.clone()));
    if a.limited > 0 {
        a.limited -= 1;
        let reset = now_ms() / 1000 + 1;
        out.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            out,
            json!({"errors": [{"field": null, "message": "too many requests"}]}).to_string(),
        );
    }
    // What the spec requires of a send: personalizations with recipients, a sender, content.
    let valid = body["personalizations"][0]["to"][0]["email"].is_string()
        && body["from"]["email"].is_string()
        && body["content"][0]["value"].is_string();
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            out,
            json!({"errors": [{"field": "personalizations", "message": "invalid"}]}).to_string(),
        );
    }
    out.insert("x-message-id", "sgmsg0001".parse().unwrap());
    (StatusCode::ACCEPTED, out, String::new())
}

fn keys() -> (String, String) {
    let k = official_sign(&json!({"scheme": "sendgrid-keygen"}));
    let get = |name: &str| k.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    (get("publicKey"), get("privateKey"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_batches_become_email_records_and_send_email_goes_once_through_a_429() {
    let api: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/v3/mail/send", axum::routing::post(mail_send))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (public, private) = keys();
    let (other_public, other_private) = keys();
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.sendgrid]
builtin = true
allow_hosts = ["https://api.sendgrid.com"]
stand_ins = {{ "https://api.sendgrid.com" = "http://127.0.0.1:{port}" }}

[tenants.acme]
name = "Acme"
[tenants.acme.connectors.sendgrid]
config = {{ from = "Acme Dental <hello@acme.test>" }}
[tenants.acme.connectors.sendgrid.credentials]
webhook_public_key = "{key}"
api_key = "{api}"
"#,
        server = hub.server_section(),
        key = hub.seal_tenant("acme", "sendgrid", "webhook_public_key", &public),
        api = hub.seal_tenant("acme", "sendgrid", "api_key", "SG.test-key"),
    );
    hub.write_config(&config);
    hub.start().await;

    let batch = json!([
        {"email": "jane@example.com", "timestamp": 1767225600, "event": "processed", "sg_event_id": "ev-1", "sg_message_id": "sgm1.filter0001.1", "hub_key": "k-jane"},
        {"email": "jane@example.com", "timestamp": 1767225601, "event": "delivered", "sg_event_id": "ev-2", "sg_message_id": "sgm1.filter0001.1"},
        {"email": "bob@example.com", "timestamp": 1767225602, "event": "bounce", "type": "bounce", "reason": "550 no such user", "sg_event_id": "ev-3", "sg_message_id": "sgm2.filter0001.1"},
        {"email": "broken@example.com", "event": "delivered"}
    ])
    .to_string();
    let sign = |body: &str, public: &str, private: &str| {
        official_sign(
            &json!({"scheme": "sendgrid", "body": body, "publicKey": public, "privateKey": private}),
        )
    };
    let path = "/hooks/acme/sendgrid/events";
    let mut headers = sign(&batch, &public, &private);
    headers.push(("content-type", "application/json".into()));

    // Signed by another key, or not at all: refused before any connector code runs.
    let mut forged = sign(&batch, &other_public, &other_private);
    forged.push(("content-type", "application/json".into()));
    let (status, _) = hub.post(path, &forged, batch.as_bytes()).await;
    assert_eq!(status, 401, "a signature by another key");
    let (status, _) = hub
        .post(
            path,
            &[("content-type", "application/json".into())],
            batch.as_bytes(),
        )
        .await;
    assert_eq!(status, 401, "no signature");
    let tampered = batch.replace("550 no such user", "550 no such user!");
    let (status, _) = hub.post(path, &headers, tampered.as_bytes()).await;
    assert_eq!(status, 401, "a changed body");

    let (status, text) = hub.post(path, &headers, batch.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["stored"], 3, "the good events are stored: {text}");
    let (_, again) = hub.post(path, &headers, batch.as_bytes()).await;
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );

    let jane = wait_for(20, "jane's email delivered", || async {
        hub.records("acme", "email")
            .await
            .into_iter()
            // Both events applied, in whichever order the workers took them.
            .find(|r| {
                r["key"] == "sgm1"
                    && r["data"]["events_seen"]
                        .as_array()
                        .is_some_and(|e| e.len() == 2)
            })
    })
    .await;
    assert_eq!(jane["data"]["status"], "delivered", "{jane}");
    assert_eq!(jane["data"]["idempotency_key"], "k-jane");
    let bob = wait_for(20, "bob suppressed", || async {
        hub.records("acme", "suppression")
            .await
            .into_iter()
            .find(|r| r["key"] == "bob@example.com")
    })
    .await;
    assert_eq!(bob["data"]["reason"], "bounce");

    // send_email: one 429 (waits for the reset), then 202; once per key.
    api.lock().unwrap().limited = 1;
    let input = json!({"to": "jane@example.com", "subject": "Your visit", "text": "See you soon."});
    run_action(&hub, "sendgrid", "send_email", input.clone(), "visit-1");
    let (attempts, _) = job_ends(&hub, "sendgrid", "visit-1", "done").await;
    assert_eq!(attempts, 2);
    let out = run_action(&hub, "sendgrid", "send_email", input, "visit-1");
    assert!(out.contains("already queued"), "{out}");
    let sends = api.lock().unwrap().sends.clone();
    assert_eq!(sends.len(), 2, "the 429 and the send");
    assert_eq!(sends[1].0, "Bearer SG.test-key");
    assert_eq!(
        sends[1].1["personalizations"][0]["custom_args"]["hub_key"], "action:acme:sendgrid:visit-1",
        "the key rides in custom_args"
    );
    // A send to the bounced address is refused, and never reaches SendGrid.
    let input = json!({"to": "bob@example.com", "subject": "Hi", "text": "Hello"});
    run_action(&hub, "sendgrid", "send_email", input, "bob-1");
    let (_, error) = job_ends(&hub, "sendgrid", "bob-1", "dead").await;
    assert!(error.contains("bob@example.com (bounce)"), "{error}");
    assert_eq!(api.lock().unwrap().sends.len(), 2);
    let checked: Vec<Value> = sends
        .iter()
        .map(|(auth, body)| {
            json!({"method": "POST", "path": "/v3/mail/send", "headers": {"authorization": auth}, "body": body})
        })
        .collect();
    assert_spec_accepts("sendgrid_mail_v3.yaml", &checked);
}

/// A batch of 10,000 events, one of them malformed: the good ones stored, each once, the bad
/// one named in the answer by its index, and the batch not refused (SendGrid would retry it
/// whole, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_thousand_with_one_malformed_event_stores_the_rest_and_names_the_bad_one() {
    let (public, private) = keys();
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.sendgrid]
builtin = true
allow_hosts = ["https://api.sendgrid.com"]

[tenants.acme]
[tenants.acme.connectors.sendgrid]
config = {{ from = "Acme Dental <hello@acme.test>" }}
[tenants.acme.connectors.sendgrid.credentials]
webhook_public_key = "{key}"
api_key = "{api}"
"#,
        server = hub
            .server_section()
            .replace("body_limit = 65536", "body_limit = 8388608"),
        key = hub.seal_tenant("acme", "sendgrid", "webhook_public_key", &public),
        api = hub.seal_tenant("acme", "sendgrid", "api_key", "SG.test-key"),
    );
    hub.write_config(&config);
    hub.start().await;

    const N: usize = 10_000;
    const BAD: usize = 5_000;
    let events: Vec<Value> = (0..N)
        .map(|i| {
            if i == BAD {
                json!({"email": "broken@example.com", "event": "delivered", "timestamp": 1767225600})
            } else {
                json!({"email": format!("user{i}@example.com"), "timestamp": 1767225600 + i,
                       "event": "delivered", "sg_event_id": format!("ev-big-{i}"),
                       "sg_message_id": format!("big{i}.filter0001.1")})
            }
        })
        .collect();
    let batch = Value::Array(events).to_string();
    assert!(batch.len() > 1_000_000, "a batch of {} bytes", batch.len());
    let mut headers = official_sign(
        &json!({"scheme": "sendgrid", "body": batch, "publicKey": public, "privateKey": private}),
    );
    headers.push(("content-type", "application/json".into()));
    let path = "/hooks/acme/sendgrid/events";
    let (status, text) = hub.post(path, &headers, batch.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["stored"], N - 1, "{text}");
    assert_eq!(answer["invalid"]["count"], 1, "{text}");
    assert_eq!(answer["invalid"]["items"][0]["index"], BAD, "{text}");
    assert!(
        answer["invalid"]["items"][0]["error"]
            .as_str()
            .unwrap()
            .contains("sg_event_id"),
        "the answer says what is wrong: {text}"
    );

    // SendGrid retries the whole batch: every event a duplicate, nothing stored twice.
    let (status, again) = hub.post(path, &headers, batch.as_bytes()).await;
    assert_eq!(status, 200, "{again}");
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(N as u64 - 1))
    );

    // The log holds each good event once.
    let mut identities = std::collections::HashSet::new();
    let mut next = Some("/deliveries?tenant=acme&connector=sendgrid&limit=500".to_string());
    while let Some(page) = next {
        let body = hub.api(page.trim_start_matches("/api/v1")).await;
        for d in body["deliveries"].as_array().unwrap() {
            assert!(
                identities.insert(d["identity"].to_string()),
                "stored twice: {d}"
            );
        }
        next = body["next"].as_str().map(str::to_string);
    }
    assert_eq!(identities.len(), N - 1);
}
