//! One `email:send` route line, three providers: the shipped config's abc-healthcare (Resend)
//! and xyz-dental (SendGrid), plus a third tenant on Postmark with the same line, each send
//! once per key through a 429 and a `kill -9` of the hub while it waits to retry; every request
//! checked against the provider's own API description (`tests/provider-specs/`).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::chain::{DEMO_KEY, RETELL_KEY, shipped_config};
use crate::util::*;

/// Every request each provider's stand-in got: (provider, path, headers, body), and how many
/// times each has been asked (the first answer is a 429).
#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Value, Value)>,
}

type Shared = Arc<Mutex<Seen>>;

/// Records the request; whether it is this provider's first (answered 429).
fn record(seen: &Shared, provider: &str, path: &str, headers: &HeaderMap, body: &str) -> bool {
    let mut s = seen.lock().unwrap();
    let first = !s.requests.iter().any(|(p, ..)| p == provider);
    s.requests.push((
        provider.into(),
        path.into(),
        header_json(headers),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ));
    first
}

/// Rate-limit waits long enough that the hub is killed while it waits.
const WAIT_SECS: u64 = 3;

async fn resend(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if record(&seen, "resend", "/emails", &headers, &body) {
        let mut h = HeaderMap::new();
        h.insert("retry-after", WAIT_SECS.to_string().parse().unwrap());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            h,
            axum::Json(json!({"statusCode": 429,
            "name": "rate_limit_exceeded", "message": "Too many requests"})),
        )
            .into_response();
    }
    axum::Json(json!({ "id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" })).into_response()
}

async fn sendgrid(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut h = HeaderMap::new();
    if record(&seen, "sendgrid", "/v3/mail/send", &headers, &body) {
        let reset = now_ms() / 1000 + WAIT_SECS;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            h,
            axum::Json(json!({"errors":
            [{"field": null, "message": "too many requests"}]})),
        )
            .into_response();
    }
    h.insert("x-message-id", "sgmsg-email-0001".parse().unwrap());
    (StatusCode::ACCEPTED, h).into_response()
}

async fn postmark(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if record(&seen, "postmark", "/email", &headers, &body) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"ErrorCode": 429,
            "Message": "Rate limit exceeded"})),
        )
            .into_response();
    }
    axum::Json(
        json!({"To": "jane@example.com", "SubmittedAt": "2026-12-02T10:00:00Z",
        "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d", "ErrorCode": 0, "Message": "OK"}),
    )
    .into_response()
}

async fn stand_in() -> (u16, Shared) {
    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/emails", axum::routing::post(resend))
        .route("/v3/mail/send", axum::routing::post(sendgrid))
        .route("/email", axum::routing::post(postmark))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

const XYZ_KEY: &str = "key_test_xyz_dental_retell_0000";
const PQ_KEY: &str = "key_test_pq_clinic_retell_00000";

/// The shipped config, xyz-dental's Retell key known to the test, and a third tenant on
/// Postmark whose follow-up route is abc-healthcare's table, copied.
fn config(hub: &TestHub, port: u16) -> String {
    let mut doc: toml_edit::DocumentMut = shipped_config(hub, port).parse().unwrap();
    let routes = |doc: &toml_edit::DocumentMut, t: &str| {
        doc["tenants"][t]["routes"]
            .as_array_of_tables()
            .unwrap()
            .get(0)
            .unwrap()
            .clone()
    };
    let abc = routes(&doc, "abc-healthcare");
    let xyz = routes(&doc, "xyz-dental");
    let fields = |t: &toml_edit::Table| {
        ["name", "on", "when", "action", "input"]
            .map(|k| t[k].as_value().unwrap().to_string().trim().to_string())
    };
    assert_eq!(
        fields(&abc),
        fields(&xyz),
        "the shipped tenants' follow-up routes are the same line"
    );
    assert_eq!(abc["action"].as_str(), Some("email:send"));
    doc["tenants"]["xyz-dental"]["connectors"]["retell"]["credentials"]["api_key"] =
        toml_edit::value(hub.seal_tenant("xyz-dental", "retell", "api_key", XYZ_KEY));
    let mut text = doc.to_string();
    text.push_str(&format!(
        r#"
[connectors.postmark]
builtin = true
allow_hosts = ["https://api.postmarkapp.com"]
stand_ins = {{ "https://api.postmarkapp.com" = "http://127.0.0.1:{port}" }}

[tenants.pq-clinic]
name = "PQ Clinic"
email = "postmark"
[tenants.pq-clinic.connectors.retell]
config = {{ agent_ids = ["agent_pq_front"] }}
[tenants.pq-clinic.connectors.retell.credentials]
api_key = "{retell}"
[tenants.pq-clinic.connectors.postmark]
config = {{ from = "PQ Clinic <hello@pq-clinic.example>" }}
[tenants.pq-clinic.connectors.postmark.credentials]
server_token = "{token}"
webhook_auth = "{auth}"
"#,
        retell = hub.seal_tenant("pq-clinic", "retell", "api_key", PQ_KEY),
        token = hub.seal_tenant("pq-clinic", "postmark", "server_token", "pm-server-token"),
        auth = hub.seal_tenant("pq-clinic", "postmark", "webhook_auth", "pm-hook:pass"),
    ));
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let mut aot = toml_edit::ArrayOfTables::new();
    aot.push(abc);
    doc["tenants"]["pq-clinic"]["routes"] = toml_edit::Item::ArrayOfTables(aot);
    doc.to_string()
}

fn call_analyzed(call_id: &str, agent: &str) -> String {
    json!({
        "event": "call_analyzed",
        "call": {
            "call_id": call_id, "call_type": "phone_call", "agent_id": agent,
            "call_status": "ended", "direction": "inbound", "from_number": "+15551234567", "to_number": "+15005550006",
            "start_timestamp": 1764064800000i64, "end_timestamp": 1764064980000i64, "duration_ms": 180000,
            "transcript": "Agent: Hello.\nUser: I'd like to book a check-up.",
            "disconnection_reason": "user_hangup",
            "call_analysis": { "call_summary": "Booked a check-up for Monday 10am.", "user_sentiment": "Positive",
                "call_successful": true, "in_voicemail": false,
                "custom_analysis_data": { "email": "jane@example.com", "first_name": "Jane" } }
        }
    })
    .to_string()
}

/// The idempotency key a provider's request carries, wherever that provider keeps it.
fn key_of(provider: &str, headers: &Value, body: &Value) -> String {
    let key = match provider {
        "resend" => headers["idempotency-key"].clone(),
        "sendgrid" => body["personalizations"][0]["custom_args"]["hub_key"].clone(),
        _ => body["Metadata"]["hub_key"].clone(),
    };
    key.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_route_line_sends_through_each_tenants_provider_once_across_a_429_and_a_kill() {
    let (port, seen) = stand_in().await;
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    hub.write_config(&config(&hub, port));
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "the config checks: {out}{err}");
    hub.start().await;

    let calls = [
        (
            "abc-healthcare",
            RETELL_KEY,
            "agent_abc_front_desk",
            "resend",
        ),
        ("xyz-dental", XYZ_KEY, "agent_xyz_reception", "sendgrid"),
        ("pq-clinic", PQ_KEY, "agent_pq_front", "postmark"),
    ];
    let mut posted = Vec::new();
    for (tenant, key, agent, _) in calls {
        let body = call_analyzed(&format!("call_email_{tenant}"), agent);
        let headers = official_sign(&json!({ "scheme": "retell", "secret": key, "body": body }));
        let (status, text) = hub
            .post(
                &format!("/hooks/{tenant}/retell"),
                &headers,
                body.as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{tenant}: {text}");
        posted.push((tenant, headers, body));
    }
    let count = |provider: &str| {
        seen.lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, ..)| p == provider)
            .count()
    };
    // Each provider has answered its first send with a 429: the hub dies while it waits.
    wait_for(30, "a 429 from each provider", || async {
        calls.iter().all(|c| count(c.3) >= 1).then_some(())
    })
    .await;
    hub.kill();
    hub.start().await;
    wait_for(40, "each provider's accepted send", || async {
        calls.iter().all(|c| count(c.3) >= 2).then_some(())
    })
    .await;

    // The provider retries the webhooks and the operator replays them: nothing sends again.
    for (tenant, headers, body) in &posted {
        let (status, text) = hub
            .post(&format!("/hooks/{tenant}/retell"), headers, body.as_bytes())
            .await;
        assert_eq!(status, 200, "{text}");
        let id = hub.deliveries(Some(tenant)).await[0]["id"]
            .as_i64()
            .unwrap();
        let (ok, out, err) =
            hub.command(&["replay", "--delivery", &id.to_string()], Some(DEMO_KEY));
        assert!(ok, "{out}{err}");
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let requests = seen.lock().unwrap().requests.clone();
    for (tenant, _, _, provider) in calls {
        let mine: Vec<&(String, String, Value, Value)> =
            requests.iter().filter(|(p, ..)| p == provider).collect();
        assert_eq!(
            mine.len(),
            2,
            "{tenant} on {provider}: the 429, then one accepted send: {mine:#?}"
        );
        let keys: Vec<String> = mine.iter().map(|(p, _, h, b)| key_of(p, h, b)).collect();
        assert!(
            !keys[0].is_empty() && keys[0] == keys[1],
            "{provider}: one key, {keys:?}"
        );
        // The one input shape, translated by each provider.
        let body = mine[1].3.to_string();
        assert!(body.contains("jane@example.com"), "{provider}: {body}");
        assert!(body.contains("Booked a check-up"), "{provider}: {body}");
        let spec = match provider {
            "resend" => "resend.yaml",
            "sendgrid" => "sendgrid_mail_v3.yaml",
            _ => "postmark_server.yaml",
        };
        let checked: Vec<Value> = mine
            .iter()
            .map(|(_, path, headers, body)| {
                json!({ "method": "POST", "path": path, "headers": headers, "body": body })
            })
            .collect();
        assert_spec_accepts(spec, &checked);
    }
    let subject = |provider: &str| {
        let (_, _, _, body) = requests.iter().rev().find(|(p, ..)| p == provider).unwrap();
        match provider {
            "resend" => body["subject"].clone(),
            "sendgrid" => body["subject"].clone(),
            _ => body["Subject"].clone(),
        }
    };
    assert_eq!(subject("resend"), "Thank you for calling ABC Healthcare");
    assert_eq!(subject("sendgrid"), "Thank you for calling XYZ Dental");
    assert_eq!(subject("postmark"), "Thank you for calling PQ Clinic");
}
