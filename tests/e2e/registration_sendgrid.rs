//! SendGrid's Event Webhook, registered by the hub itself, through the real binary: a tenant
//! with only its SendGrid API key runs `hub connect`; the connector registers the hub's events
//! URL at a stand-in for SendGrid's webhook settings API (every request checked against
//! SendGrid's OpenAPI description, `sendgrid_webhooks_v3.yaml`) and turns signing on; the host
//! keeps the verification key SendGrid answered (sealed into `hub.toml`, never in the log or a
//! record), and a batch the stand-in signs with the matching P-256 private key (checked by
//! `@sendgrid/eventwebhook` before posting) is accepted, where before it was refused. A second
//! `hub connect` registers nothing twice; `--undo` deletes the webhook.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::util::*;

const API_KEY: &str = "SG.registration-key-3c9e";
const SETTINGS: &str = "/v3/user/webhooks/event/settings";

/// The settings flags of the events the connector handles.
const FLAGS: [&str; 11] = [
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "open",
    "click",
    "spam_report",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
];

/// One Event Webhook at the stand-in: its settings as last written, and whether it signs.
struct Webhook {
    settings: Value,
    signed: bool,
}

/// The stand-in's webhooks and every request it saw.
#[derive(Default)]
struct Sendgrid {
    webhooks: BTreeMap<String, Webhook>,
    seen: Vec<Value>,
    created: usize,
    /// The P-256 key pair signed webhooks use: (public, base64 SPKI DER; private, PEM).
    key: (String, String),
}

type Shared = Arc<Mutex<Sendgrid>>;

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "errors": [{ "field": null, "message": message }] });
    (status, axum::Json(body)).into_response()
}

/// What SendGrid answers a wrong API key.
fn refused() -> Response {
    error(StatusCode::UNAUTHORIZED, "authorization required")
}

/// Notes the request; its JSON body (`null` when it has none), or `None` for a wrong key.
fn note(
    api: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Value> {
    let parsed = (!body.is_empty()).then(|| serde_json::from_slice(body).unwrap_or(Value::Null));
    let request = seen_request(method, uri, headers, parsed.as_ref());
    api.lock().unwrap().seen.push(request);
    let expected = format!("Bearer {API_KEY}");
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    authorized.then(|| parsed.unwrap_or(Value::Null))
}

/// A webhook as SendGrid shows it: `public_key` only when it signs.
fn shown(id: &str, w: &Webhook, public_key: &str) -> Value {
    let mut v = w.settings.clone();
    v["id"] = json!(id);
    v["created_date"] = json!("2026-12-07T09:00:00Z");
    if w.signed {
        v["public_key"] = json!(public_key);
    }
    v
}

async fn list(
    State(api): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if note(&api, &method, &uri, &headers, &body).is_none() {
        return refused();
    }
    let s = api.lock().unwrap();
    let webhooks: Vec<Value> = s
        .webhooks
        .iter()
        .map(|(id, w)| shown(id, w, &s.key.0))
        .collect();
    axum::Json(json!({ "max_allowed": 5, "webhooks": webhooks })).into_response()
}

async fn create(
    State(api): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(body) = note(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let Some(url) = body["url"].as_str().map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "url is required");
    };
    let mut s = api.lock().unwrap();
    // As SendGrid: one webhook per URL.
    if let Some((id, _)) = s.webhooks.iter().find(|(_, w)| w.settings["url"] == url) {
        let message = format!("Webhook at '{url}' already exists. Please provide a unique URL.");
        let body = json!({ "errors": [{ "id": id, "message": message, "url": url }] });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    s.created += 1;
    let id = format!("77d4a5da-7015-11ed-a1eb-{:012x}", s.created);
    let mut settings = json!({ "enabled": false, "url": url, "friendly_name": null });
    for f in FLAGS {
        settings[f] = json!(false);
    }
    for (k, v) in body.as_object().into_iter().flatten() {
        if k != "oauth_client_secret" {
            settings[k.as_str()] = v.clone();
        }
    }
    let w = Webhook {
        settings,
        signed: false,
    };
    let answer = shown(&id, &w, "");
    s.webhooks.insert(id, w);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// `GET|PATCH|DELETE .../settings/{id}`.
async fn one(
    State(api): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(body) = note(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let mut s = api.lock().unwrap();
    if method == Method::DELETE {
        return match s.webhooks.remove(&id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => error(StatusCode::NOT_FOUND, "Invalid id provided."),
        };
    }
    let public_key = s.key.0.clone();
    let Some(w) = s.webhooks.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "Invalid id provided.");
    };
    if method == Method::PATCH {
        for (k, v) in body.as_object().into_iter().flatten() {
            w.settings[k.as_str()] = v.clone();
        }
    }
    axum::Json(shown(&id, w, &public_key)).into_response()
}

/// `GET|PATCH .../settings/signed/{id}`: the key when signing is on, `""` when off.
async fn signed(
    State(api): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(body) = note(&api, &method, &uri, &headers, &body) else {
        return refused();
    };
    let mut s = api.lock().unwrap();
    let public_key = s.key.0.clone();
    let Some(w) = s.webhooks.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "Invalid id provided.");
    };
    if method == Method::PATCH {
        match body["enabled"].as_bool() {
            Some(on) => w.signed = on,
            None => return error(StatusCode::BAD_REQUEST, "enabled is required"),
        }
    }
    let key = if w.signed { public_key } else { String::new() };
    axum::Json(json!({ "id": id, "public_key": key })).into_response()
}

async fn connect(hub: &TestHub, undo: bool) {
    hub_connect(hub, "acme", "sendgrid", undo);
}

/// Requests of `method` to `path` the stand-in saw.
fn count(api: &Shared, method: &str, path: &str) -> usize {
    let s = api.lock().unwrap();
    s.seen
        .iter()
        .filter(|r| r["method"] == method && r["path"] == path)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_connect_registers_sendgrids_event_webhook_once_keeps_its_key_and_undoes_it() {
    let (public_key, private_key) = tokio::task::block_in_place(|| {
        let k = official_sign(&json!({ "scheme": "sendgrid-keygen" }));
        let get = |name: &str| k.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        (get("publicKey"), get("privateKey"))
    });
    let api: Shared = Arc::new(Mutex::new(Sendgrid {
        key: (public_key.clone(), private_key.clone()),
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route(SETTINGS, axum::routing::post(create))
        .route(&format!("{SETTINGS}/all"), axum::routing::get(list))
        .route(
            &format!("{SETTINGS}/signed/{{id}}"),
            axum::routing::get(signed).patch(signed),
        )
        .route(
            &format!("{SETTINGS}/{{id}}"),
            axum::routing::get(one).patch(one).delete(one),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.sendgrid]\nbuiltin = true\nallow_hosts = [\"https://api.sendgrid.com\"]\n\
         stand_ins = {{ \"https://api.sendgrid.com\" = \"http://127.0.0.1:{port}\" }}\n\n\
         [tenants.acme]\n[tenants.acme.connectors.sendgrid]\nconfig = {{ from = \"Acme Dental <hello@acme.test>\" }}\n\
         [tenants.acme.connectors.sendgrid.credentials]\napi_key = \"{key}\"\n",
        server = hub.server_section(),
        key = hub.seal_tenant("acme", "sendgrid", "api_key", API_KEY),
    ));
    // One API key is all the file needs: no verification key yet.
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    let url = format!("{}/hooks/acme/sendgrid/events", hub.base());
    let path = "/hooks/acme/sendgrid/events";

    // A batch signed by SendGrid's key (the one the stand-in will answer): refused until the
    // hub has the key.
    let batch = json!([{ "email": "jane@example.com", "timestamp": now_ms() / 1000,
        "event": "delivered", "sg_event_id": "ev-reg-1", "sg_message_id": "sgreg1.filter0001.1" }])
    .to_string();
    let spec = json!({ "scheme": "sendgrid", "body": batch, "publicKey": public_key, "privateKey": private_key });
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/json".into()));
    let (status, _) = hub.post(path, &headers, batch.as_bytes()).await;
    assert_eq!(status, 401, "verified before the hub has any key");

    connect(&hub, false).await;
    wait_for(30, "the key to be kept in hub.toml", || async {
        let file = std::fs::read_to_string(hub.config_path()).unwrap();
        file.contains("webhook_public_key = \"sealed:v1:")
            .then_some(())
    })
    .await;
    let id = {
        let s = api.lock().unwrap();
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(s.created, 1);
        let (id, w) = s.webhooks.iter().next().unwrap();
        assert_eq!(w.settings["url"], url);
        assert_eq!(w.settings["enabled"], true);
        assert!(w.signed, "signing is on");
        for f in FLAGS {
            assert_eq!(w.settings[f], true, "{f}: {}", w.settings);
        }
        id.clone()
    };
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(!file.contains(&public_key), "the key is sealed in hub.toml");

    // The kept key verifies what SendGrid signs, once the hub has reloaded.
    let (status, text) = wait_for(
        20,
        "the reloaded hub to verify with the kept key",
        || async {
            let (status, text) = hub.post(path, &headers, batch.as_bytes()).await;
            (status == 200).then_some((status, text))
        },
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // Again: found and kept (its key read, signing not toggled), nothing created twice.
    connect(&hub, false).await;
    wait_for(30, "the second registration run", || async {
        (count(&api, "GET", &format!("{SETTINGS}/signed/{id}")) == 1).then_some(())
    })
    .await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.created, 1, "registered twice");
        assert_eq!(s.webhooks.len(), 1);
        assert!(s.webhooks.contains_key(&id));
    }
    assert_eq!(count(&api, "POST", SETTINGS), 1);
    let records = wait_for(20, "the webhook record", || async {
        let r = hub.records("acme", "webhook").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["key"], id.as_str());
    assert!(
        !records[0].to_string().contains(&public_key),
        "the key reached a record"
    );
    assert!(!hub.log().contains(&public_key), "the key reached the log");

    // Undone: the hub's webhook deleted at SendGrid.
    connect(&hub, true).await;
    wait_for(30, "the webhook to be deleted", || async {
        api.lock().unwrap().webhooks.is_empty().then_some(())
    })
    .await;
    assert_eq!(count(&api, "DELETE", &format!("{SETTINGS}/{id}")), 1);
    let seen = api.lock().unwrap().seen.clone();
    assert!(
        seen.iter()
            .all(|r| r["headers"]["authorization"] == format!("Bearer {API_KEY}")),
        "every call carries the tenant's API key"
    );
    tokio::task::block_in_place(|| assert_spec_accepts("sendgrid_webhooks_v3.yaml", &seen));
}
