//! Retell's webhooks registered by the hub, through the real binary: a tenant with only its
//! Retell API key, its `agent_ids` and its `inbound_variables` runs `hub connect`; the connector
//! points its two agents' `webhook_url` at the hub (`GET /get-agent`, then `PATCH
//! /update-agent`) and its number's `inbound_webhook_url` at the hub's `/inbound` route (`GET
//! /v2/list-phone-numbers`, `PATCH /update-phone-number`), at a stand-in for Retell's API whose
//! every request is checked against the OpenAPI copy (`retell-openapi.yaml`). Another tenant's
//! agent and number are left alone. Retell signs with the API key the tenant already has, so no
//! secret is kept (nothing new is sealed into `hub.toml`), and webhooks the official
//! `retell-sdk` signs with that key are accepted at the registered URLs. A second `hub connect`
//! changes nothing; `--undo` clears the URLs that point at the hub, and only those.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::util::*;

const API_KEY: &str = "key_registration_3c9e1a7f5b2d4e60";
const FRONTDESK: &str = "agent_reg_frontdesk";
const AFTERHOURS: &str = "agent_reg_afterhours";
/// Another tenant's agent in the same Retell account.
const GLOBEX_AGENT: &str = "agent_reg_globex";
const ACME_NUMBER: &str = "+14155550199";
const GLOBEX_NUMBER: &str = "+14155550123";
/// Where the after-hours agent sent its events before the hub.
const PREVIOUS: &str = "https://crm.acme.test/retell-events";
const GLOBEX_HOOK: &str = "https://globex.test/retell";
const GLOBEX_INBOUND: &str = "https://globex.test/retell-inbound";

/// The stand-in's agents and numbers, and every request it saw.
#[derive(Default)]
struct Retell {
    /// agent id -> `webhook_url`.
    agents: BTreeMap<String, Option<String>>,
    /// number -> (inbound agent, `inbound_webhook_url`).
    numbers: BTreeMap<String, (String, Option<String>)>,
    seen: Vec<Value>,
    updates: usize,
}

type Shared = Arc<Mutex<Retell>>;

fn note(api: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: Option<&Value>) {
    let request = seen_request(method, uri, headers, body);
    api.lock().unwrap().seen.push(request);
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error_message": message }))).into_response()
}

/// An `AgentResponse` as the OpenAPI copy describes it.
fn agent_json(id: &str, webhook_url: &Option<String>) -> Value {
    json!({ "agent_id": id, "version": 0, "is_published": false, "agent_name": id,
            "response_engine": { "type": "retell-llm", "llm_id": "llm_reg_1" }, "voice_id": "11labs-Adrian",
            "webhook_url": webhook_url, "last_modification_timestamp": 1_714_608_000_000i64 })
}

/// A `PhoneNumberResponse`.
fn number_json(number: &str, (agent, inbound): &(String, Option<String>)) -> Value {
    json!({ "phone_number": number, "phone_number_type": "retell-twilio", "inbound_agent_id": agent,
            "outbound_agent_id": agent, "inbound_webhook_url": inbound, "last_modification_timestamp": 1_714_608_000_000i64 })
}

/// get-agent, or update-agent with its body.
fn agent(api: &Shared, id: &str, patch: Option<&Value>) -> Response {
    let mut s = api.lock().unwrap();
    if patch.is_some() {
        s.updates += 1;
    }
    let Some(url) = s.agents.get_mut(id) else {
        return refused(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(new) = patch.and_then(|b| b.get("webhook_url")) {
        *url = new.as_str().map(str::to_string);
    }
    axum::Json(agent_json(id, url)).into_response()
}

async fn get_agent(
    State(api): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&api, &method, &uri, &headers, None);
    if !authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    agent(&api, &id, None)
}

async fn update_agent(
    State(api): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    note(&api, &method, &uri, &headers, Some(&body));
    if !authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    agent(&api, &id, Some(&body))
}

async fn list_numbers(
    State(api): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&api, &method, &uri, &headers, None);
    if !authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let items: Vec<Value> = api
        .lock()
        .unwrap()
        .numbers
        .iter()
        .map(|(n, v)| number_json(n, v))
        .collect();
    axum::Json(json!({ "items": items, "has_more": false })).into_response()
}

async fn update_number(
    State(api): State<Shared>,
    Path(number): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    note(&api, &method, &uri, &headers, Some(&body));
    if !authorized(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let mut s = api.lock().unwrap();
    s.updates += 1;
    let Some(entry) = s.numbers.get_mut(&number) else {
        return refused(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(new) = body.get("inbound_webhook_url") {
        entry.1 = new.as_str().map(str::to_string);
    }
    let answer = number_json(&number, entry);
    axum::Json(answer).into_response()
}

async fn connect(hub: &TestHub, undo: bool) {
    hub_connect(hub, "acme", "retell", undo);
}

/// Waits until `n` runs of `job` are done; panics on one that died.
async fn finished(hub: &TestHub, job: &str, n: usize) {
    wait_for(30, &format!("{n} `{job}` runs to finish"), || async {
        let jobs = hub
            .api("/jobs?tenant=acme&connector=retell&limit=500")
            .await;
        let runs: Vec<Value> = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["task"]["kind"] == "job" && j["task"]["name"] == job)
            .cloned()
            .collect();
        if let Some(dead) = runs.iter().find(|j| j["state"] == "dead") {
            panic!("`{job}` died: {}\n{}", dead["last_error"], hub.log());
        }
        (runs.iter().filter(|j| j["state"] == "done").count() == n).then_some(())
    })
    .await;
}

/// Signs with the official `retell-sdk` and the tenant's API key, and posts.
async fn send(hub: &TestHub, path: &str, body: &Value) -> (u16, String) {
    let text = body.to_string();
    let spec = json!({ "scheme": "retell", "secret": API_KEY, "body": text });
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/json".into()));
    hub.post(path, &headers, text.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_connect_points_retell_agents_and_numbers_at_the_hub_once_and_undoes_it() {
    let api: Shared = Arc::default();
    {
        let mut s = api.lock().unwrap();
        s.agents.insert(FRONTDESK.into(), None);
        s.agents.insert(AFTERHOURS.into(), Some(PREVIOUS.into()));
        s.agents
            .insert(GLOBEX_AGENT.into(), Some(GLOBEX_HOOK.into()));
        s.numbers
            .insert(ACME_NUMBER.into(), (FRONTDESK.into(), None));
        s.numbers.insert(
            GLOBEX_NUMBER.into(),
            (GLOBEX_AGENT.into(), Some(GLOBEX_INBOUND.into())),
        );
    }
    let app = axum::Router::new()
        .route("/get-agent/{agent_id}", axum::routing::get(get_agent))
        .route(
            "/update-agent/{agent_id}",
            axum::routing::patch(update_agent),
        )
        .route("/v2/list-phone-numbers", axum::routing::get(list_numbers))
        .route(
            "/update-phone-number/{phone_number}",
            axum::routing::patch(update_number),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.retell]\nbuiltin = true\nallow_hosts = [\"https://api.retellai.com\"]\n\
         stand_ins = {{ \"https://api.retellai.com\" = \"http://127.0.0.1:{port}\" }}\n\n\
         [tenants.acme]\n[tenants.acme.connectors.retell]\n\
         config = {{ agent_ids = [\"{FRONTDESK}\", \"{AFTERHOURS}\"], inbound_variables = {{ \"*\" = {{ company = \"Acme Dental\" }} }} }}\n\
         [tenants.acme.connectors.retell.credentials]\napi_key = \"{key}\"\n",
        server = hub.server_section(),
        key = hub.seal_tenant("acme", "retell", "api_key", API_KEY),
    ));
    // The API key is the only credential, before and after.
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    let url = format!("{}/hooks/acme/retell", hub.base());
    let inbound = format!("{url}/inbound");
    let sealed_before = std::fs::read_to_string(hub.config_path())
        .unwrap()
        .matches("sealed:v1:")
        .count();

    connect(&hub, false).await;
    finished(&hub, "register_webhooks", 1).await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.agents[FRONTDESK].as_deref(), Some(url.as_str()));
        assert_eq!(s.agents[AFTERHOURS].as_deref(), Some(url.as_str()));
        assert_eq!(s.agents[GLOBEX_AGENT].as_deref(), Some(GLOBEX_HOOK));
        assert_eq!(s.numbers[ACME_NUMBER].1.as_deref(), Some(inbound.as_str()));
        assert_eq!(s.numbers[GLOBEX_NUMBER].1.as_deref(), Some(GLOBEX_INBOUND));
        assert_eq!(s.updates, 3, "one update per registration");
    }
    // Nothing to keep: Retell signs with the API key the tenant already has.
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert_eq!(file.matches("sealed:v1:").count(), sealed_before, "{file}");
    assert!(!file.contains(API_KEY));
    let records = hub.records("acme", "webhook").await;
    assert_eq!(records.len(), 3, "{records:?}");
    let text = Value::Array(records).to_string();
    assert!(text.contains(PREVIOUS), "the replaced URL is kept: {text}");
    assert!(!text.contains(API_KEY), "the key reached a record");

    // Retell's webhooks, signed with the tenant's key, reach the registered URLs.
    let started = json!({ "event": "call_started", "call": { "call_id": "call_reg_1", "agent_id": FRONTDESK,
        "call_type": "phone_call", "call_status": "ongoing", "direction": "inbound",
        "from_number": "+14155550100", "to_number": ACME_NUMBER, "start_timestamp": now_ms() } });
    let (status, text) = send(&hub, "/hooks/acme/retell", &started).await;
    assert_eq!(status, 200, "{text}");
    let ringing = json!({ "event": "call_inbound", "call_inbound": { "agent_id": FRONTDESK,
        "from_number": "+14155550100", "to_number": ACME_NUMBER } });
    let (status, text) = send(&hub, "/hooks/acme/retell/inbound", &ringing).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Acme Dental"), "{text}");

    // Again, this time as the app asks it (`POST .../register`): everything found in place,
    // nothing changed.
    let queued = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/acme/connectors/retell/register",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    finished(&hub, "register_webhooks", 2).await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.updates, 3, "registered twice");
        let reads = s
            .seen
            .iter()
            .filter(|r| r["method"] == "GET" && r["path"] == format!("/get-agent/{FRONTDESK}"))
            .count();
        assert_eq!(reads, 2);
    }
    assert_eq!(hub.records("acme", "webhook").await.len(), 3);
    assert!(!hub.log().contains(API_KEY), "the key reached the log");

    // Undone: the hub's URLs cleared, the others left as they are.
    connect(&hub, true).await;
    finished(&hub, "unregister_webhooks", 1).await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.agents[FRONTDESK], None);
        assert_eq!(s.agents[AFTERHOURS], None);
        assert_eq!(s.agents[GLOBEX_AGENT].as_deref(), Some(GLOBEX_HOOK));
        assert_eq!(s.numbers[ACME_NUMBER].1, None);
        assert_eq!(s.numbers[GLOBEX_NUMBER].1.as_deref(), Some(GLOBEX_INBOUND));
        assert_eq!(s.updates, 6);
    }
    assert!(hub.records("acme", "webhook").await.is_empty());
    let seen = api.lock().unwrap().seen.clone();
    tokio::task::block_in_place(|| assert_spec_accepts("retell-openapi.yaml", &seen));
}
