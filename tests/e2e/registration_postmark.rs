//! Postmark's webhook registered by `hub connect`, through the real binary: a tenant with only
//! its server token runs `hub connect`; the connector registers the hub's URL at a stand-in for
//! Postmark's webhooks API, with HTTP Basic credentials the host generated in the URL
//! (`https://hub:<token>@...`), which the host keeps sealed in `hub.toml` (never in the log or a
//! record). The stand-in then tests the webhook as Postmark does (`POST /webhooks/{id}/verify`
//! sends a test for every enabled trigger, with the URL's credentials), and the reloaded hub
//! accepts them. A second `hub connect` creates nothing and replaces the credentials (the old
//! ones are refused after it); `--undo` removes the registration.
//!
//! Postmark's OpenAPI description (`tests/provider-specs/postmark_server.yaml`) has no
//! `/webhooks`, so `assert_spec_accepts` cannot check these requests: the stand-in checks the
//! documented shape by hand ([`shape_problems`]: PROVIDERS-2.md and Postmark's webhooks API
//! reference) and the test asserts it found nothing wrong.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::util::*;

const TOKEN: &str = "pm-registration-server-token-4c1d";
const TRIGGERS: [&str; 6] = [
    "Open",
    "Click",
    "Delivery",
    "Bounce",
    "SpamComplaint",
    "SubscriptionChange",
];

/// One webhook as the stand-in keeps it: the URL exactly as given (credentials included).
#[derive(Clone)]
struct Hook {
    url: String,
    stream: String,
    triggers: Value,
    verified: bool,
}

/// The stand-in's webhooks and every request it saw.
#[derive(Default)]
struct Postmark {
    webhooks: BTreeMap<u64, Hook>,
    next_id: u64,
    seen: Vec<Value>,
    problems: Vec<String>,
    created: usize,
    updated: usize,
    /// Tests of a webhook in which every trigger got a 200.
    passed: usize,
    /// Test posts sent to the hub.
    sent: u64,
}

type Shared = Arc<Mutex<Postmark>>;

fn note(api: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: Option<&Value>) {
    let request = seen_request(method, uri, headers, body);
    let mut s = api.lock().unwrap();
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
        s.problems.push(format!(
            "{method} {}: no `Accept: application/json`",
            uri.path()
        ));
    }
    s.seen.push(request);
}

/// Postmark's answer to a missing or wrong server token.
fn refused(headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("x-postmark-server-token")
        .and_then(|v| v.to_str().ok());
    (token != Some(TOKEN)).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "ErrorCode": 10, "Message": "Bad or missing Server API token." })),
        )
            .into_response()
    })
}

/// What a create (`POST /webhooks`) or edit (`PUT /webhooks/{id}`) body does wrong, by the
/// documented shape: `{Url, MessageStream (create only), HttpAuth{Username, Password},
/// HttpHeaders[{Name, Value}], Triggers{Open{Enabled, PostFirstOpenOnly}, Click{Enabled},
/// Delivery{Enabled}, Bounce{Enabled, IncludeContent}, SpamComplaint{Enabled, IncludeContent},
/// SubscriptionChange{Enabled}}, Verify}`, JSON; the Url absolute http(s).
fn shape_problems(headers: &HeaderMap, body: &Value, create: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        problems.push("the body is not sent as application/json".to_string());
    }
    let Some(fields) = body.as_object() else {
        return vec![format!("the body is not a JSON object: {body}")];
    };
    let mut allowed = vec!["Url", "HttpAuth", "HttpHeaders", "Triggers", "Verify"];
    if create {
        allowed.push("MessageStream");
    }
    for key in fields.keys().filter(|k| !allowed.contains(&k.as_str())) {
        problems.push(format!("unknown field `{key}`"));
    }
    match body["Url"].as_str().map(reqwest::Url::parse) {
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => {}
        _ => problems.push(format!(
            "Url is not an absolute http(s) URL: {}",
            body["Url"]
        )),
    }
    if create && body["MessageStream"].as_str().is_none_or(str::is_empty) {
        problems.push("MessageStream is not a stream id".to_string());
    }
    if let Some(auth) = body.get("HttpAuth")
        && !(auth["Username"].is_string() && auth["Password"].is_string())
    {
        problems.push(format!("HttpAuth is not {{Username, Password}}: {auth}"));
    }
    if let Some(verify) = body.get("Verify")
        && !verify.is_boolean()
    {
        problems.push(format!("Verify is not a boolean: {verify}"));
    }
    let Some(triggers) = body["Triggers"].as_object() else {
        problems.push("Triggers is not an object".to_string());
        return problems;
    };
    for (name, trigger) in triggers {
        let extra: &[&str] = match name.as_str() {
            "Open" => &["PostFirstOpenOnly"],
            "Bounce" | "SpamComplaint" => &["IncludeContent"],
            "Click" | "Delivery" | "SubscriptionChange" => &[],
            other => {
                problems.push(format!("unknown trigger `{other}`"));
                continue;
            }
        };
        let Some(settings) = trigger.as_object() else {
            problems.push(format!("trigger {name} is not an object"));
            continue;
        };
        for (key, value) in settings {
            if !(key == "Enabled" || extra.contains(&key.as_str())) || !value.is_boolean() {
                problems.push(format!(
                    "trigger {name}: `{key}: {value}` is not documented"
                ));
            }
        }
        if !settings.get("Enabled").is_some_and(Value::is_boolean) {
            problems.push(format!("trigger {name} has no Enabled"));
        }
    }
    problems
}

/// A webhook as `GET /webhooks` answers it (Postmark echoes the URL and an empty `HttpAuth`).
fn listed(id: u64, hook: &Hook) -> Value {
    json!({
        "ID": id, "Url": hook.url, "MessageStream": hook.stream,
        "HttpAuth": { "Username": "", "Password": "" }, "HttpHeaders": [], "Triggers": hook.triggers,
    })
}

async fn list(State(api): State<Shared>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    note(&api, &method, &uri, &headers, None);
    if let Some(r) = refused(&headers) {
        return r;
    }
    let s = api.lock().unwrap();
    let hooks: Vec<Value> = s.webhooks.iter().map(|(id, h)| listed(*id, h)).collect();
    axum::Json(json!({ "TotalCount": hooks.len(), "Webhooks": hooks })).into_response()
}

fn parsed(body: &axum::body::Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn unprocessable(problems: &[String]) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "ErrorCode": 400, "Message": problems.join("; ") })),
    )
        .into_response()
}

async fn create(
    State(api): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body = parsed(&body);
    note(&api, &method, &uri, &headers, Some(&body));
    if let Some(r) = refused(&headers) {
        return r;
    }
    let problems = shape_problems(&headers, &body, true);
    let mut hook = Hook {
        url: body["Url"].as_str().unwrap_or_default().to_string(),
        stream: body["MessageStream"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        triggers: body["Triggers"].clone(),
        verified: false,
    };
    if !problems.is_empty() {
        api.lock().unwrap().problems.extend(problems.clone());
        return unprocessable(&problems);
    }
    // Verify defaults to true: every enabled trigger is tested before anything is saved.
    if body["Verify"] != json!(false) {
        let (ok, _) = test_webhook(&api, &hook).await;
        if !ok {
            let failed = json!({ "ErrorCode": 1364, "Message": "Webhook verification failed." });
            return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(failed)).into_response();
        }
        hook.verified = true;
    }
    let mut s = api.lock().unwrap();
    s.next_id += 1;
    s.created += 1;
    let id = 1_234_500 + s.next_id;
    let answer = listed(id, &hook);
    s.webhooks.insert(id, hook);
    axum::Json(answer).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "ErrorCode": 1300, "Message": "Webhook not found." })),
    )
        .into_response()
}

async fn one(
    State(api): State<Shared>,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body = (method == Method::PUT).then(|| parsed(&body));
    note(&api, &method, &uri, &headers, body.as_ref());
    if let Some(r) = refused(&headers) {
        return r;
    }
    if method == Method::DELETE {
        return match api.lock().unwrap().webhooks.remove(&id) {
            Some(_) => {
                axum::Json(json!({ "ErrorCode": 0, "Message": format!("Webhook {id} removed.") }))
                    .into_response()
            }
            None => not_found(),
        };
    }
    let body = body.unwrap_or_default();
    let problems = shape_problems(&headers, &body, false);
    let mut s = api.lock().unwrap();
    if !problems.is_empty() {
        s.problems.extend(problems.clone());
        return unprocessable(&problems);
    }
    if body["Verify"] != json!(false) {
        s.problems
            .push("an edit without Verify: false cannot pass before the reload".into());
    }
    s.updated += 1;
    let Some(hook) = s.webhooks.get_mut(&id) else {
        return not_found();
    };
    if let Some(url) = body["Url"].as_str() {
        hook.url = url.to_string();
    }
    if body["Triggers"].is_object() {
        hook.triggers = body["Triggers"].clone();
    }
    hook.verified = false;
    let answer = listed(id, hook);
    axum::Json(answer).into_response()
}

/// Posts a test for every enabled trigger to the webhook's URL, with the URL's credentials as
/// `Authorization: Basic` (as Postmark does); whether all got a 200, and the results.
async fn test_webhook(api: &Shared, hook: &Hook) -> (bool, Vec<Value>) {
    let mut url = reqwest::Url::parse(&hook.url).unwrap();
    let (user, password) = (
        url.username().to_string(),
        url.password().map(str::to_string),
    );
    url.set_username("").unwrap();
    url.set_password(None).unwrap();
    let client = reqwest::Client::new();
    let mut results = Vec::new();
    for trigger in TRIGGERS {
        if hook.triggers[trigger]["Enabled"] != json!(true) {
            continue;
        }
        let n = {
            let mut s = api.lock().unwrap();
            s.sent += 1;
            s.sent
        };
        let mut request = client
            .post(url.clone())
            .header("content-type", "application/json")
            .header("x-pm-webhook-trace-id", format!("verify-{n:08}"))
            .body(test_payload(trigger, &hook.stream, n).to_string());
        if !user.is_empty() {
            request = request.basic_auth(&user, password.as_deref());
        }
        let status = match request.send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        let message = if status == 200 { "OK" } else { "Failed" };
        results.push(json!({
            "TriggerType": trigger, "Success": status == 200, "StatusCode": status,
            "Message": message,
        }));
    }
    (results.iter().all(|r| r["Success"] == true), results)
}

/// A test webhook of one trigger, shaped like Postmark's.
fn test_payload(trigger: &str, stream: &str, n: u64) -> Value {
    let at = "2026-12-07T09:00:00Z";
    let mut body = json!({
        "RecordType": trigger, "ServerID": 23, "MessageStream": stream, "Tag": "Test",
        "MessageID": format!("00000000-0000-0000-0000-{n:012}"), "Recipient": "john@example.com",
        "Metadata": {},
    });
    let extra = match trigger {
        "Delivery" => json!({ "DeliveredAt": at, "Details": "Test delivery webhook details" }),
        "Bounce" => json!({
            "Type": "SoftBounce", "TypeCode": 4096, "Email": "john@example.com",
            "BouncedAt": at, "Description": "Test bounce", "Inactive": false,
        }),
        "SpamComplaint" => json!({
            "Type": "SpamComplaint", "TypeCode": 512, "Email": "john@example.com", "BouncedAt": at,
        }),
        "Open" => json!({ "FirstOpen": true, "ReceivedAt": at, "Platform": "WebMail" }),
        "Click" => json!({ "ReceivedAt": at, "OriginalLink": "https://example.com" }),
        _ => json!({ "ChangedAt": at, "SuppressSending": false }),
    };
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn verify(
    State(api): State<Shared>,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&api, &method, &uri, &headers, None);
    if let Some(r) = refused(&headers) {
        return r;
    }
    let hook = api.lock().unwrap().webhooks.get(&id).cloned();
    let Some(hook) = hook else {
        return not_found();
    };
    let (ok, results) = test_webhook(&api, &hook).await;
    let mut s = api.lock().unwrap();
    if ok {
        s.passed += 1;
        if let Some(h) = s.webhooks.get_mut(&id) {
            h.verified = true;
        }
    }
    let passed = results.iter().filter(|r| r["Success"] == true).count();
    let message = format!("{passed}/{} triggers verified successfully", results.len());
    let answer = json!({
        "Id": id, "Url": hook.url, "Success": ok, "Results": results, "Message": message,
    });
    axum::Json(answer).into_response()
}

async fn connect(hub: &TestHub, undo: bool) {
    hub_connect(hub, "acme", "postmark", undo);
}

/// The sealed `webhook_auth` in `hub.toml`, if any.
fn sealed_auth(hub: &TestHub) -> Option<String> {
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    file.lines()
        .find_map(|l| l.trim().strip_prefix("webhook_auth = \""))
        .filter(|v| v.starts_with("sealed:v1:"))
        .map(|v| v.trim_end_matches('"').to_string())
}

/// The one registration's id, its URL without credentials, and its `user:password`.
fn registration(api: &Shared) -> (u64, String, String, Hook) {
    let s = api.lock().unwrap();
    assert_eq!(s.webhooks.len(), 1, "one registration");
    let (id, hook) = s.webhooks.iter().next().unwrap();
    let mut url = reqwest::Url::parse(&hook.url).unwrap();
    let auth = format!("{}:{}", url.username(), url.password().unwrap_or_default());
    url.set_username("").unwrap();
    url.set_password(None).unwrap();
    (*id, url.to_string(), auth, hook.clone())
}

fn basic(auth: &str) -> (&'static str, String) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(auth);
    ("authorization", format!("Basic {encoded}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_connect_registers_postmarks_webhook_once_with_kept_basic_credentials_and_undoes_it() {
    let api: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/webhooks", axum::routing::get(list).post(create))
        .route("/webhooks/{id}", axum::routing::put(one).delete(one))
        .route("/webhooks/{id}/verify", axum::routing::post(verify))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.postmark]\nbuiltin = true\nallow_hosts = [\"https://api.postmarkapp.com\"]\n\
         stand_ins = {{ \"https://api.postmarkapp.com\" = \"http://127.0.0.1:{port}\" }}\n\n\
         [tenants.acme]\n[tenants.acme.connectors.postmark]\nconfig = {{ from = \"Acme <care@acme.test>\" }}\n\
         [tenants.acme.connectors.postmark.credentials]\nserver_token = \"{token}\"\n",
        server = hub.server_section(),
        token = hub.seal_tenant("acme", "postmark", "server_token", TOKEN),
    ));
    // The server token is all the file needs: `hub connect` makes webhook_auth.
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    let path = "/hooks/acme/postmark/webhook";
    let hook_url = format!("{}{path}", hub.base());

    connect(&hub, false).await;
    let first_sealed = wait_for(30, "webhook_auth to be kept in hub.toml", || async {
        sealed_auth(&hub)
    })
    .await;
    let (id, url, auth, hook) = registration(&api);
    assert_eq!(url, hook_url);
    assert_eq!(hook.stream, "outbound");
    assert!(auth.starts_with("hub:") && auth.len() > 40, "{auth}");
    for trigger in TRIGGERS {
        assert_eq!(hook.triggers[trigger]["Enabled"], true, "{trigger}");
    }

    // Postmark's test of every trigger, with the URL's credentials, passes once the hub has
    // reloaded with them (verify_webhooks, queued by the registration).
    wait_for(30, "Postmark's test of the webhook to pass", || async {
        (api.lock().unwrap().passed >= 1).then_some(())
    })
    .await;
    assert!(registration(&api).3.verified, "verified by its test");
    let body = json!({ "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
        "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", "Recipient": "jane@example.com",
        "DeliveredAt": "2026-12-07T09:30:00Z", "Metadata": { "hub_key": "k-reg" } })
    .to_string();
    let json_type = ("content-type", "application/json".to_string());
    let (status, text) = hub
        .post(path, &[json_type.clone(), basic(&auth)], body.as_bytes())
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = hub
        .post(
            path,
            &[json_type.clone(), basic("hub:not-the-password")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, 401, "wrong credentials");
    let password = auth.trim_start_matches("hub:").to_string();
    let records = hub.records("acme", "webhook").await;
    assert_eq!(records.len(), 1);
    assert!(records[0].to_string().contains(&id.to_string()));
    assert!(
        !records[0].to_string().contains(&password),
        "the password reached a record"
    );
    assert!(
        !hub.log().contains(&password),
        "the password reached the log"
    );
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(
        !file.contains(&password),
        "the password is in hub.toml unsealed"
    );

    // Again: the registration is found and kept with fresh credentials; nothing is created.
    connect(&hub, false).await;
    let second_sealed = wait_for(30, "the new webhook_auth to be kept", || async {
        sealed_auth(&hub).filter(|s| *s != first_sealed)
    })
    .await;
    assert_ne!(second_sealed, first_sealed);
    wait_for(
        30,
        "Postmark's test of the edited webhook to pass",
        || async { (api.lock().unwrap().passed >= 2).then_some(()) },
    )
    .await;
    let (again_id, again_url, new_auth, _) = registration(&api);
    assert_eq!((again_id, again_url), (id, hook_url.clone()));
    assert_ne!(new_auth, auth, "fresh credentials");
    {
        let s = api.lock().unwrap();
        assert_eq!((s.created, s.updated), (1, 1), "created once, updated once");
    }
    let (status, text) = hub
        .post(
            path,
            &[json_type.clone(), basic(&new_auth)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = hub
        .post(path, &[json_type.clone(), basic(&auth)], body.as_bytes())
        .await;
    // The replaced credentials keep verifying for the hour's overlap (webhooks Postmark sent
    // with them while the change was under way), and no longer than that.
    assert_eq!(
        status, 200,
        "the replaced credentials verify during the overlap"
    );
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(
        file.contains("previous_webhook_auth = \"sealed:v1:"),
        "{file}"
    );
    assert!(file.contains("previous_until = "), "{file}");
    assert_eq!(hub.records("acme", "webhook").await.len(), 1);
    let new_password = new_auth.trim_start_matches("hub:");
    assert!(
        !hub.log().contains(new_password),
        "the password reached the log"
    );

    // Undone.
    connect(&hub, true).await;
    wait_for(30, "the registration to be removed", || async {
        api.lock().unwrap().webhooks.is_empty().then_some(())
    })
    .await;
    let s = api.lock().unwrap();
    let deletes: Vec<&Value> = s.seen.iter().filter(|r| r["method"] == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "only the hub's webhook is removed");
    assert_eq!(deletes[0]["path"], format!("/webhooks/{id}"));
    assert!(
        s.seen
            .iter()
            .all(|r| r["headers"]["x-postmark-server-token"] == TOKEN),
        "every call carries the server token"
    );
    // Postmark's spec has no /webhooks: the stand-in checked the documented shape instead.
    assert_eq!(s.problems, Vec::<String>::new(), "{:#?}", s.seen);
}
