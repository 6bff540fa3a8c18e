//! Webhooks the hub registers itself, through the real binary: a tenant with only its Resend
//! API key runs `hub connect`; the connector registers the hub's URL at a stand-in for Resend's
//! webhooks API (every request checked against Resend's OpenAPI description), the host keeps
//! the signing secret Resend answered (sealed into `hub.toml`, never in the log or a record),
//! and a webhook signed with it by the official Svix library is accepted. A second `hub
//! connect` registers nothing twice; `--undo` removes the registration.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::util::*;

const API_KEY: &str = "re_registration_key_7f3a";

/// The stand-in's webhooks and every request it saw.
#[derive(Default)]
struct Resend {
    webhooks: BTreeMap<String, (String, String)>,
    seen: Vec<Value>,
    created: usize,
}

type Shared = Arc<Mutex<Resend>>;

fn note(api: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: Option<&Value>) {
    let request = seen_request(method, uri, headers, body);
    api.lock().unwrap().seen.push(request);
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

async fn list(State(api): State<Shared>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    note(&api, &method, &uri, &headers, None);
    if !authorized(&headers) {
        return (axum::http::StatusCode::UNAUTHORIZED, "no").into_response();
    }
    let data: Vec<Value> = api
        .lock()
        .unwrap()
        .webhooks
        .iter()
        .map(|(id, (endpoint, _))| json!({ "id": id, "endpoint": endpoint, "events": ["email.sent"], "status": "enabled" }))
        .collect();
    axum::Json(json!({ "object": "list", "has_more": false, "data": data })).into_response()
}

async fn create(
    State(api): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    note(&api, &method, &uri, &headers, Some(&body));
    let id = format!(
        "4dd369bc-aa82-4ff3-97de-{:012x}",
        rand::random::<u64>() & 0xffff_ffff_ffff
    );
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
    );
    let endpoint = body["endpoint"].as_str().unwrap_or_default().to_string();
    let mut s = api.lock().unwrap();
    s.created += 1;
    s.webhooks.insert(id.clone(), (endpoint, secret.clone()));
    (
        axum::http::StatusCode::CREATED,
        axum::Json(json!({ "object": "webhook", "id": id, "signing_secret": secret })),
    )
        .into_response()
}

async fn one(
    State(api): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&api, &method, &uri, &headers, None);
    let mut s = api.lock().unwrap();
    if method == Method::DELETE {
        return match s.webhooks.remove(&id) {
            Some(_) => axum::Json(json!({ "object": "webhook", "id": id, "deleted": true })).into_response(),
            None => (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({ "statusCode": 404, "name": "not_found", "message": "Webhook not found" }))).into_response(),
        };
    }
    match s.webhooks.get(&id) {
        Some((endpoint, secret)) => axum::Json(json!({ "object": "webhook", "id": id, "endpoint": endpoint,
            "events": ["email.sent"], "status": "enabled", "created_at": "2026-12-07 09:00:00.000+00", "signing_secret": secret })).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({ "statusCode": 404, "name": "not_found", "message": "Webhook not found" }))).into_response(),
    }
}

async fn connect(hub: &TestHub, undo: bool) {
    hub_connect(hub, "acme", "resend", undo);
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_connect_registers_resends_webhook_once_keeps_its_secret_and_undoes_it() {
    let api: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/webhooks", axum::routing::get(list).post(create))
        .route("/webhooks/{id}", axum::routing::get(one).delete(one))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.resend]\nbuiltin = true\nallow_hosts = [\"https://api.resend.com\"]\n\
         stand_ins = {{ \"https://api.resend.com\" = \"http://127.0.0.1:{port}\" }}\n\n\
         [tenants.acme]\n[tenants.acme.connectors.resend]\nconfig = {{ from = \"Acme <care@acme.test>\" }}\n\
         [tenants.acme.connectors.resend.credentials]\napi_key = \"{key}\"\n",
        server = hub.server_section(),
        key = hub.seal_tenant("acme", "resend", "api_key", API_KEY),
    ));
    // One API key is all the file needs.
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    let url = format!("{}/hooks/acme/resend", hub.base());

    connect(&hub, false).await;
    wait_for(30, "the secret to be kept in hub.toml", || async {
        let file = std::fs::read_to_string(hub.config_path()).unwrap();
        file.contains("webhook_secret = \"sealed:v1:").then_some(())
    })
    .await;
    let (id, secret) = {
        let s = api.lock().unwrap();
        assert_eq!(s.webhooks.len(), 1);
        let (id, (endpoint, secret)) = s.webhooks.iter().next().unwrap();
        assert_eq!(endpoint, &url);
        (id.clone(), secret.clone())
    };

    // The kept secret verifies Resend's webhooks, signed by the official Svix library.
    let body = json!({ "type": "email.delivered", "created_at": "2026-12-07T09:30:00.000Z",
        "data": { "email_id": "e-reg-1", "from": "Acme <care@acme.test>", "to": ["jane@example.com"],
                  "subject": "Hi", "created_at": "2026-12-07T09:29:58.000Z" } })
    .to_string();
    let spec = json!({ "scheme": "svix", "secret": secret, "id": "msg_reg_1", "ts": now_ms() / 1000, "body": body });
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/json".into()));
    let (status, text) = wait_for(
        20,
        "the reloaded hub to verify with the kept secret",
        || async {
            let (status, text) = hub
                .post("/hooks/acme/resend", &headers, body.as_bytes())
                .await;
            (status == 200).then_some((status, text))
        },
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // Again: found and kept, nothing created twice.
    connect(&hub, false).await;
    wait_for(30, "the second registration run", || async {
        let s = api.lock().unwrap();
        (s.seen
            .iter()
            .filter(|r| r["method"] == "GET" && r["path"] == format!("/webhooks/{id}"))
            .count()
            == 1)
            .then_some(())
    })
    .await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.created, 1, "registered twice");
        assert_eq!(s.webhooks.len(), 1);
    }
    let record = hub.records("acme", "webhook").await;
    assert_eq!(record.len(), 1);
    assert!(
        !record[0].to_string().contains(&secret),
        "the secret reached a record"
    );
    assert!(!hub.log().contains(&secret), "the secret reached the log");

    // Undone.
    connect(&hub, true).await;
    wait_for(30, "the registration to be removed", || async {
        api.lock().unwrap().webhooks.is_empty().then_some(())
    })
    .await;
    let seen = api.lock().unwrap().seen.clone();
    tokio::task::block_in_place(|| assert_spec_accepts("resend.yaml", &seen));
}
