//! The app acts through the hub (`POST /api/v1/tenants/{t}/actions`): on the shipped config,
//! abc-healthcare's CRM sends an email through Resend and xyz-dental's through SendGrid, with
//! the demo `act` tokens, each once per Idempotency-Key across a repeat, a 429 and a `kill -9`
//! of the hub while it waits to retry; `?wait=` answers the provider's message id; the outcome
//! is published as `action.succeeded`; every request is checked against the provider's spec.
//! And each way to ask wrongly gets its own clear answer.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::chain::{DEMO_KEY, shipped_config};
use crate::util::*;

const ABC_CRM: &str = "hubtok_demo_abc_healthcare_crm";
const XYZ_CRM: &str = "hubtok_demo_xyz_dental_crm";
const ABC_DASHBOARD: &str = "hubtok_demo_abc_healthcare_dashboard";
const ABC_VOICE: &str = "hubtok_demo_abc_healthcare_voice_agent";

/// Every request a provider's stand-in got: (provider, path, headers, body).
type Seen = Arc<Mutex<Vec<(String, String, Value, Value)>>>;

/// Records the request; whether it is this provider's first (answered 429).
fn record(seen: &Seen, provider: &str, path: &str, headers: &HeaderMap, body: &str) -> bool {
    let mut s = seen.lock().unwrap();
    let first = !s.iter().any(|(p, ..)| p == provider);
    s.push((
        provider.into(),
        path.into(),
        header_json(headers),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ));
    first
}

/// Long enough that the hub is killed while it waits.
const WAIT_SECS: u64 = 3;
const RESEND_ID: &str = "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794";
const SENDGRID_ID: &str = "sgmsg-action-0001";

async fn resend(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    if record(&seen, "resend", "/emails", &headers, &body) {
        let mut h = HeaderMap::new();
        h.insert("retry-after", WAIT_SECS.to_string().parse().unwrap());
        let said = json!({"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"});
        return (StatusCode::TOO_MANY_REQUESTS, h, axum::Json(said)).into_response();
    }
    axum::Json(json!({ "id": RESEND_ID })).into_response()
}

async fn sendgrid(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    let mut h = HeaderMap::new();
    if record(&seen, "sendgrid", "/v3/mail/send", &headers, &body) {
        let reset = now_ms() / 1000 + WAIT_SECS;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let said = json!({"errors": [{"field": null, "message": "too many requests"}]});
        return (StatusCode::TOO_MANY_REQUESTS, h, axum::Json(said)).into_response();
    }
    h.insert("x-message-id", SENDGRID_ID.parse().unwrap());
    (StatusCode::ACCEPTED, h).into_response()
}

async fn stand_in() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/emails", axum::routing::post(resend))
        .route("/v3/mail/send", axum::routing::post(sendgrid))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// POSTs an action for `tenant` with `token`; (status, answer).
async fn act(
    hub: &TestHub,
    token: &str,
    tenant: &str,
    key: Option<&str>,
    query: &str,
    body: &Value,
) -> (u16, Value) {
    let mut req = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/{tenant}/actions{query}",
            hub.base()
        ))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(hub: &TestHub, token: &str, path: &str) -> (u16, Value) {
    let resp = hub
        .client
        .get(format!("{}/api/v1{path}", hub.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn email(to: &str) -> Value {
    json!({
        "action": "email:send",
        "input": { "to": to, "subject": "Your visit on Monday", "text": "See you Monday at 10am." }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sends_an_email_through_each_tenants_provider_once_per_key_across_a_429_and_a_kill()
{
    let (port, seen) = stand_in().await;
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    hub.write_config(&shipped_config(&hub, port));
    hub.start().await;

    let asks = [
        (
            "abc-healthcare",
            ABC_CRM,
            "resend",
            "jane@example.com",
            RESEND_ID,
        ),
        (
            "xyz-dental",
            XYZ_CRM,
            "sendgrid",
            "sam@example.com",
            SENDGRID_ID,
        ),
    ];
    let mut ids = Vec::new();
    for (tenant, token, _, to, _) in asks {
        let (status, answer) = act(
            &hub,
            token,
            tenant,
            Some("visit-reminder-77"),
            "",
            &email(to),
        )
        .await;
        assert_eq!(status, 202, "{tenant}: {answer}");
        assert!(
            ["queued", "running", "retrying"].contains(&answer["state"].as_str().unwrap()),
            "{answer}"
        );
        assert_eq!(answer["key"], "visit-reminder-77");
        ids.push(answer["id"].as_i64().unwrap());
    }
    let count = |provider: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p == provider)
            .count()
    };
    wait_for(30, "a 429 from each provider", || async {
        (count("resend") >= 1 && count("sendgrid") >= 1).then_some(())
    })
    .await;
    // The hub dies while it waits out the rate limit; the app, unsure, asks again.
    hub.kill();
    hub.start().await;
    for (i, (tenant, token, _, to, message_id)) in asks.into_iter().enumerate() {
        let (status, answer) = act(
            &hub,
            token,
            tenant,
            Some("visit-reminder-77"),
            "?wait=25",
            &email(to),
        )
        .await;
        assert_eq!(
            status, 200,
            "{tenant}: the same key answers the same action, ended: {answer}"
        );
        assert_eq!(answer["id"].as_i64(), Some(ids[i]), "{answer}");
        assert_eq!(answer["state"], "succeeded", "{answer}");
        assert_eq!(
            answer["output"]["id"], message_id,
            "the provider's message id: {answer}"
        );
        assert_eq!(answer["action"], format!("{}:send_email", asks[i].2));
        let (status, read) = get(
            &hub,
            token,
            &format!("/tenants/{tenant}/actions/{}", ids[i]),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(read["output"], answer["output"]);
        assert!(
            read["attempts"].as_i64().unwrap() >= 2,
            "a 429, then the send: {read}"
        );
    }
    // Asked a third time, after it ended: still the one action.
    let (status, again) = act(
        &hub,
        ABC_CRM,
        "abc-healthcare",
        Some("visit-reminder-77"),
        "",
        &email("jane@example.com"),
    )
    .await;
    assert_eq!(
        (status, again["id"].as_i64()),
        (200, Some(ids[0])),
        "{again}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let requests = seen.lock().unwrap().clone();
    for (tenant, _, provider, to, _) in asks {
        let mine: Vec<_> = requests.iter().filter(|(p, ..)| p == provider).collect();
        assert_eq!(
            mine.len(),
            2,
            "{tenant}: the 429, then one accepted send: {mine:#?}"
        );
        let key = |(_, _, h, b): &&(String, String, Value, Value)| match provider {
            "resend" => h["idempotency-key"].clone(),
            _ => b["personalizations"][0]["custom_args"]["hub_key"].clone(),
        };
        assert_eq!(
            key(&mine[0]),
            key(&mine[1]),
            "{provider}: one key for both attempts"
        );
        assert!(
            mine[1].3.to_string().contains(to),
            "{provider}: {:?}",
            mine[1].3
        );
        let spec = if provider == "resend" {
            "resend.yaml"
        } else {
            "sendgrid_mail_v3.yaml"
        };
        let checked: Vec<Value> = mine
            .iter()
            .map(|(_, path, headers, body)| json!({ "method": "POST", "path": path, "headers": headers, "body": body }))
            .collect();
        assert_spec_accepts(spec, &checked);
    }

    // The outcome is an event the app can take from its endpoint or the feed.
    let events = hub.api("/tenants/abc-healthcare/events").await;
    let succeeded: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "action.succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1, "{events}");
    assert_eq!(
        succeeded[0]["payload"],
        json!({ "id": ids[0], "action": "resend:send_email", "key": "visit-reminder-77", "via": "api", "output": { "id": RESEND_ID } })
    );

    refusals(&hub, ids[0]).await;
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "{out}{err}");
}

/// Each way to ask wrongly, and its answer; nothing reaches a provider.
async fn refusals(hub: &TestHub, abc_action: i64) {
    let abc = "abc-healthcare";
    // The same key for another email: 409, naming the first action.
    let (status, answer) = act(
        hub,
        ABC_CRM,
        abc,
        Some("visit-reminder-77"),
        "",
        &email("other@example.com"),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["action"].as_i64(), Some(abc_action));
    // No key: 400.
    let (status, answer) = act(hub, ABC_CRM, abc, None, "", &email("a@example.com")).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{answer}"
    );
    // An input that does not fit: 422 per field.
    let bad =
        json!({ "action": "email:send", "input": { "to": "a@example.com", "colour": "red" } });
    let (status, answer) = act(hub, ABC_CRM, abc, Some("k-422"), "", &bad).await;
    assert_eq!(status, 422, "{answer}");
    let fields: Vec<&str> = answer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.subject", "input.colour"], "{answer}");
    // No such action: 404.
    for action in [
        "fax:send",
        "resend:teleport",
        "twilio_typo:send_sms",
        "nothing",
    ] {
        let ask = json!({ "action": action, "input": {} });
        let (status, answer) = act(hub, ABC_CRM, abc, Some("k-404"), "", &ask).await;
        assert_eq!(status, 404, "{action}: {answer}");
    }
    // A token that may read but not act, or only call tools: 403; another tenant's: 404.
    for token in [ABC_DASHBOARD, ABC_VOICE] {
        let (status, answer) =
            act(hub, token, abc, Some("k-403"), "", &email("a@example.com")).await;
        assert_eq!(status, 403, "{answer}");
    }
    let (status, _) = act(hub, XYZ_CRM, abc, Some("k-x"), "", &email("a@example.com")).await;
    assert_eq!(status, 404);
    let (status, _) = get(
        hub,
        XYZ_CRM,
        &format!("/tenants/xyz-dental/actions/{abc_action}"),
    )
    .await;
    assert_eq!(status, 404, "another tenant's action id is not found");
    let (status, _) = get(
        hub,
        XYZ_CRM,
        &format!("/tenants/abc-healthcare/actions/{abc_action}"),
    )
    .await;
    assert_eq!(status, 404);
    // The tools-only token reads nothing else.
    let (status, _) = get(hub, ABC_VOICE, "/tenants/abc-healthcare/records").await;
    assert_eq!(status, 404);
    // The admin token acts for any tenant.
    let (status, answer) = act(
        hub,
        "demo-admin-token",
        abc,
        Some("visit-reminder-77"),
        "",
        &email("jane@example.com"),
    )
    .await;
    assert_eq!(
        (status, answer["id"].as_i64()),
        (200, Some(abc_action)),
        "{answer}"
    );
}
