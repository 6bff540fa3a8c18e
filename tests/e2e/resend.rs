//! The Resend connector through the real binary: webhooks signed with the official `svix`
//! SDK, `email` and `suppression` records, and `send_email` against a local stand-in for
//! Resend's API that checks every request against `tests/provider-specs/resend.yaml`.
//! Also the helpers the Twilio tests share: running an action and reading its job.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::util::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const API_KEY: &str = "re_test_4f8b2c1d9e7a6b5c";
const FROM: &str = "Acme Dental <hello@acme.test>";

/// Runs `hub run-action` (the hub picks the job up); its stdout.
pub(crate) fn run_action(
    hub: &TestHub,
    connector: &str,
    action: &str,
    input: Value,
    key: &str,
) -> String {
    let input = input.to_string();
    let args = [
        "run-action",
        "--tenant",
        "acme",
        "--connector",
        connector,
        action,
        "--input",
        &input,
        "--key",
        key,
    ];
    let (ok, out, err) = tokio::task::block_in_place(|| hub.command(&args, Some(&hub.key_text())));
    assert!(ok, "run-action: {out}{err}");
    out
}

/// The action job queued under `key` (`GET /api/v1/jobs`): (state, attempts, last error).
pub(crate) async fn job(
    hub: &TestHub,
    connector: &str,
    key: &str,
) -> Option<(String, i64, String)> {
    let full = format!("action:acme:{connector}:{key}");
    let prefix: String = form_urlencoded::byte_serialize(full.as_bytes()).collect();
    let path = format!("/jobs?tenant=acme&connector={connector}&key_prefix={prefix}");
    let jobs = hub.api(&path).await["jobs"].as_array().cloned()?;
    let j = jobs
        .iter()
        .find(|j| j["idempotency_key"] == full.as_str())?;
    let text = |k: &str| j[k].as_str().unwrap_or_default().to_string();
    Some((
        text("state"),
        j["attempts"].as_i64().unwrap_or(0),
        text("last_error"),
    ))
}

/// What the action job under `key` answered, as the jobs API shows it.
pub(crate) async fn job_result(hub: &TestHub, connector: &str, key: &str) -> Value {
    let full = format!("action:acme:{connector}:{key}");
    let prefix: String = form_urlencoded::byte_serialize(full.as_bytes()).collect();
    let path = format!("/jobs?tenant=acme&connector={connector}&key_prefix={prefix}");
    hub.api(&path).await["jobs"][0]["result"].clone()
}

/// Waits for the action job under `key` to reach `state`; its (attempts, last error).
pub(crate) async fn job_ends(
    hub: &TestHub,
    connector: &str,
    key: &str,
    state: &str,
) -> (i64, String) {
    wait_for(20, &format!("job {key} {state}"), || async {
        match job(hub, connector, key).await {
            Some((s, attempts, error)) if s == state => Some((attempts, error)),
            _ => None,
        }
    })
    .await
}

/// The events of the tenant named `name`.
pub(crate) async fn events(hub: &TestHub, name: &str) -> Vec<Value> {
    let all = hub.api("/tenants/acme/events").await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.into_iter()
        .filter(|e| e["name"] == name)
        .map(|e| e["payload"].clone())
        .collect()
}

/// A record's data, once it satisfies `check`.
pub(crate) async fn record_where(
    hub: &TestHub,
    kind: &str,
    key: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(20, &format!("{kind} {key}"), || async {
        hub.records("acme", kind)
            .await
            .into_iter()
            .find(|r| r["key"] == key)
            .map(|r| r["data"].clone())
            .filter(&check)
    })
    .await
}

/// The properties of a schema of `resend.yaml` (a `components.schemas` entry), each with the
/// JSON kinds it allows (`string`, `object`, `array<string>`, `array<Tag>`), and its required
/// properties. Reads the YAML by indentation, which is all this spec needs.
fn yaml_schema(spec: &str, name: &str) -> (HashMap<String, Vec<String>>, Vec<String>) {
    let lines: Vec<&str> = spec.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == format!("    {name}:"))
        .expect("schema in spec");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let block: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > 4)
        .copied()
        .collect();
    let (mut props, mut required) = (HashMap::new(), Vec::new());
    let mut i = 0;
    while i < block.len() {
        let l = block[i];
        if l == "      required:" {
            required = block[i + 1..]
                .iter()
                .take_while(|l| l.starts_with("        - "))
                .map(|l| l[10..].trim().to_string())
                .collect();
        }
        if indent(l) == 8
            && l.trim_end().ends_with(':')
            && block[..i]
                .iter()
                .rev()
                .find(|p| indent(p) == 6)
                .is_some_and(|p| p.trim() == "properties:")
        {
            let body: Vec<&str> = block[i + 1..]
                .iter()
                .take_while(|b| b.trim().is_empty() || indent(b) > 8)
                .copied()
                .collect();
            let has = |s: &str| body.iter().any(|b| b.trim() == s);
            let reference = body
                .iter()
                .find_map(|b| b.trim().strip_prefix("$ref: '#/components/schemas/"))
                .map(|r| r.trim_end_matches('\''));
            let mut kinds = Vec::new();
            if has("oneOf:") {
                kinds.extend(
                    ["string".to_string(), "array<string>".to_string()]
                        .into_iter()
                        .filter(|k| {
                            has(if k == "string" {
                                "- type: string"
                            } else {
                                "- type: array"
                            })
                        }),
                );
            } else if has("type: array") {
                kinds.push(format!("array<{}>", reference.unwrap_or("string")));
            } else if has("type: object") || has("allOf:") {
                kinds.push("object".into());
            } else if has("type: string") {
                kinds.push("string".into());
            }
            props.insert(l.trim().trim_end_matches(':').to_string(), kinds);
        }
        i += 1;
    }
    (props, required)
}

/// The `maxLength` of the `Idempotency-Key` header parameter of `POST /emails`.
fn idempotency_max_len(spec: &str) -> usize {
    let lines: Vec<&str> = spec.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "name: Idempotency-Key")
        .expect("Idempotency-Key in spec");
    lines[at..at + 8]
        .iter()
        .find_map(|l| l.trim().strip_prefix("maxLength: "))
        .and_then(|n| n.parse().ok())
        .expect("its maxLength")
}

/// What is wrong with a `SendEmailRequest` body, per the spec.
fn spec_violations(spec: &str, body: &Value) -> Vec<String> {
    let (props, required) = yaml_schema(spec, "SendEmailRequest");
    let (tag_props, _) = yaml_schema(spec, "Tag");
    let Some(obj) = body.as_object() else {
        return vec!["body is not an object".into()];
    };
    let mut out: Vec<String> = required
        .iter()
        .filter(|r| !obj.contains_key(*r))
        .map(|r| format!("missing required `{r}`"))
        .collect();
    for (k, v) in obj {
        let Some(kinds) = props.get(k) else {
            out.push(format!("`{k}` is not a SendEmailRequest property"));
            continue;
        };
        let fits = kinds.iter().any(|kind| match kind.as_str() {
            "string" => v.is_string(),
            "object" => v.is_object(),
            "array<string>" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "array<Tag>" => v.as_array().is_some_and(|a| {
                a.iter().all(|t| {
                    t.as_object().is_some_and(|t| {
                        t.iter()
                            .all(|(k, v)| tag_props.contains_key(k) && v.is_string())
                    })
                })
            }),
            _ => false,
        });
        if !fits {
            out.push(format!("`{k}` = {v} is not one of {kinds:?}"));
        }
    }
    out
}

/// A scripted answer of the stand-in: status, retry-after, JSON body.
type Answer = (u16, Option<&'static str>, Value);

/// The stand-in's state: scripted answers for the next requests (then success), every request
/// seen with its idempotency key and time, the emails accepted, and spec violations.
#[derive(Default)]
struct Mock {
    spec: String,
    script: VecDeque<Answer>,
    seen: Vec<(String, Instant)>,
    accepted: Vec<(String, Value)>,
    ids: HashMap<String, String>,
    violations: Vec<String>,
}
type Shared = Arc<Mutex<Mock>>;

async fn emails(State(mock): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut m = mock.lock().unwrap();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = header("idempotency-key");
    m.seen.push((key.clone(), Instant::now()));
    let mut problems = Vec::new();
    if header("authorization") != format!("Bearer {API_KEY}") {
        problems.push(format!("authorization `{}`", header("authorization")));
    }
    if !header("content-type").starts_with("application/json") {
        problems.push("content-type is not JSON".into());
    }
    let max_key = idempotency_max_len(&m.spec);
    if key.is_empty() || key.len() > max_key {
        problems.push(format!(
            "Idempotency-Key `{key}` is not 1..={max_key} characters"
        ));
    }
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    problems.extend(spec_violations(&m.spec, &parsed));
    if !problems.is_empty() {
        m.violations.extend(problems.iter().cloned());
        let body =
            json!({"statusCode": 422, "name": "validation_error", "message": problems.join("; ")});
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    }
    if let Some((status, retry_after, body)) = m.script.pop_front() {
        let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if let Some(r) = retry_after {
            resp.headers_mut().insert("retry-after", r.parse().unwrap());
        }
        return resp;
    }
    // Resend answers a repeated idempotency key with the first email's id.
    let id = match m.ids.get(&key) {
        Some(id) => id.clone(),
        None => {
            let id = format!("4ef9a417-02e9-4d39-ad75-{:012x}", m.accepted.len() + 1);
            m.ids.insert(key, id.clone());
            m.accepted.push((id.clone(), parsed));
            id
        }
    };
    (StatusCode::OK, axum::Json(json!({ "id": id }))).into_response()
}

async fn started() -> (TestHub, Shared) {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/provider-specs/resend.yaml"
    ))
    .unwrap();
    let mock: Shared = Arc::new(Mutex::new(Mock {
        spec,
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/emails", axum::routing::post(emails))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.resend]
builtin = true
allow_hosts = ["https://api.resend.com"]
stand_ins = {{ "https://api.resend.com" = "http://127.0.0.1:{port}" }}

[tenants.acme]
name = "Acme Dental"
[tenants.acme.connectors.resend]
config = {{ from = "{FROM}", reply_to = "support@acme.test" }}
[tenants.acme.connectors.resend.credentials]
api_key = "{api_key}"
webhook_secret = "{secret}"
"#,
        server = hub.server_section(),
        api_key = hub.seal_tenant("acme", "resend", "api_key", API_KEY),
        secret = hub.seal_tenant("acme", "resend", "webhook_secret", SECRET),
    );
    hub.write_config(&config);
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    (hub, mock)
}

/// A Resend webhook body.
fn event(kind: &str, email_id: &str, at: &str, to: &str, extra: Value) -> String {
    let mut data = json!({"email_id": email_id, "created_at": "2026-03-01T10:00:00.000Z", "from": FROM,
                          "to": [to], "subject": "Your visit on Monday", "tags": {"category": "follow_up"}});
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    json!({"type": kind, "created_at": at, "data": data}).to_string()
}

/// Posts a webhook signed by the official svix SDK with `secret`, `ts` seconds old.
async fn post(hub: &TestHub, id: &str, body: &str, secret: &str, age_secs: u64) -> (u16, String) {
    let ts = now_ms() / 1000 - age_secs;
    let spec = json!({"scheme": "svix", "secret": secret, "id": id, "ts": ts, "body": body});
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/json".into()));
    hub.post("/hooks/acme/resend", &headers, body.as_bytes())
        .await
}

async fn seen_event(hub: &TestHub, id: &str, kind: &str) -> Value {
    record_where(hub, "email", id, |d| {
        d["events_seen"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e == kind))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_webhooks_are_verified_stored_once_and_never_regress() {
    let (hub, _) = started().await;
    let to = "jane@example.com";
    let sent = event(
        "email.sent",
        "e1",
        "2026-03-01T10:00:01.000Z",
        to,
        json!({}),
    );
    let (status, text) = post(&hub, "msg_sent_1", &sent, SECRET, 0).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"stored\""), "{text}");
    // Resend retries with the same svix-id: acknowledged, stored once.
    let (status, text) = post(&hub, "msg_sent_1", &sent, SECRET, 0).await;
    assert_eq!(
        (status, text.contains("\"duplicate\"")),
        (200, true),
        "{text}"
    );
    // Wrong secret, stale (10 min), altered body, no signature: refused before any guest code.
    assert_eq!(post(&hub, "msg_x", &sent, OTHER_SECRET, 0).await.0, 401);
    assert_eq!(post(&hub, "msg_y", &sent, SECRET, 600).await.0, 401);
    let spec = json!({"scheme": "svix", "secret": SECRET, "id": "msg_z", "ts": now_ms() / 1000, "body": sent});
    let headers = tokio::task::block_in_place(|| official_sign(&spec));
    let forged = sent.replace("jane@", "mallory@");
    assert_eq!(
        hub.post("/hooks/acme/resend", &headers, forged.as_bytes())
            .await
            .0,
        401
    );
    assert_eq!(
        hub.post("/hooks/acme/resend", &[], sent.as_bytes()).await.0,
        401
    );

    seen_event(&hub, "e1", "email.sent").await;
    let delivered = event(
        "email.delivered",
        "e1",
        "2026-03-01T10:00:05.000Z",
        to,
        json!({}),
    );
    assert_eq!(
        post(&hub, "msg_delivered_1", &delivered, SECRET, 0).await.0,
        200
    );
    seen_event(&hub, "e1", "email.delivered").await;
    // A late `email.sent` (another delivery) changes nothing.
    let late = event(
        "email.sent",
        "e1",
        "2026-03-01T10:00:02.000Z",
        to,
        json!({}),
    );
    assert_eq!(post(&hub, "msg_sent_late", &late, SECRET, 0).await.0, 200);
    for (i, kind) in ["email.opened", "email.opened", "email.clicked"]
        .iter()
        .enumerate()
    {
        let extra = json!({"click": {"ipAddress": "1.2.3.4", "link": "https://acme.test/book", "timestamp": "2026-03-01T10:10:00.000Z", "userAgent": "x"}});
        let body = event(kind, "e1", "2026-03-01T10:10:00.000Z", to, extra);
        assert_eq!(
            post(&hub, &format!("msg_interaction_{i}"), &body, SECRET, 0)
                .await
                .0,
            200
        );
    }
    let e1 = record_where(&hub, "email", "e1", |d| d["opens"] == 2 && d["clicks"] == 1).await;
    assert_eq!(e1["status"], "delivered", "{e1}");
    assert_eq!(e1["links"], json!(["https://acme.test/book"]));
    assert_eq!(e1["subject"], "Your visit on Monday");
    assert_eq!(
        hub.deliveries(Some("acme")).await.len(),
        6,
        "each svix-id stored once"
    );
    for (name, n) in [
        ("email.sent", 1),
        ("email.delivered", 1),
        ("email.opened", 1),
        ("email.clicked", 1),
    ] {
        assert_eq!(events(&hub, name).await.len(), n, "{name}");
    }
    assert_eq!(events(&hub, "email.delivered").await[0]["to"], json!([to]));
    // Events the connector does not use are ignored, with a reason.
    let contact = json!({"type": "contact.created", "created_at": "2026-03-01T10:00:00Z", "data": {"id": "c1"}}).to_string();
    assert_eq!(post(&hub, "msg_contact", &contact, SECRET, 0).await.0, 200);
    wait_for(20, "the contact event ignored", || async {
        hub.deliveries(Some("acme"))
            .await
            .into_iter()
            .find(|d| d["event"] == "contact.created" && d["state"] == "ignored")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_hard_bounces_and_complaints_suppress_and_send_email_refuses() {
    let (hub, mock) = started().await;
    let hard = json!({"bounce": {"diagnosticCode": ["smtp; 550 5.1.1 user unknown"], "message": "The recipient does not exist.", "subType": "NoEmail", "type": "Permanent"}});
    let soft = json!({"bounce": {"diagnosticCode": [], "message": "Mailbox full", "subType": "MailboxFull", "type": "Transient"}});
    let bodies = [
        (
            "msg_b1",
            event(
                "email.bounced",
                "b1",
                "2026-03-01T10:00:01Z",
                "Jane Doe <Jane@Example.com>",
                hard,
            ),
        ),
        (
            "msg_b2",
            event(
                "email.bounced",
                "b2",
                "2026-03-01T10:00:01Z",
                "full@example.com",
                soft,
            ),
        ),
        (
            "msg_c1",
            event(
                "email.complained",
                "c1",
                "2026-03-01T10:00:01Z",
                "spam@example.com",
                json!({}),
            ),
        ),
    ];
    for (id, body) in &bodies {
        assert_eq!(post(&hub, id, body, SECRET, 0).await.0, 200);
    }
    let s = record_where(&hub, "suppression", "jane@example.com", |_| true).await;
    assert_eq!(
        (s["reason"].as_str(), s["email_id"].as_str()),
        (Some("bounce"), Some("b1"))
    );
    assert_eq!(
        record_where(&hub, "suppression", "spam@example.com", |_| true).await["reason"],
        "complaint"
    );
    let b2 = seen_event(&hub, "b2", "email.bounced").await;
    assert_eq!(
        (b2["status"].as_str(), b2["bounce"]["type"].as_str()),
        (Some("bounced"), Some("Transient"))
    );
    let b1 = seen_event(&hub, "b1", "email.bounced").await;
    assert_eq!(b1["bounce"]["subType"], "NoEmail");
    assert!(
        hub.records("acme", "suppression")
            .await
            .iter()
            .all(|r| r["key"] != "full@example.com"),
        "a soft bounce does not suppress"
    );
    assert_eq!(events(&hub, "email.bounced").await.len(), 2);

    let input = json!({"to": "JANE@example.com", "subject": "Follow-up", "text": "Hello"});
    run_action(&hub, "resend", "send_email", input, "to-jane");
    let (_, error) = job_ends(&hub, "resend", "to-jane", "dead").await;
    assert!(
        error.contains("suppressed") && error.contains("jane@example.com"),
        "{error}"
    );
    let input = json!({"to": "ok@example.com", "bcc": "spam@example.com", "subject": "Follow-up", "text": "Hello"});
    run_action(&hub, "resend", "send_email", input, "bcc-spam");
    job_ends(&hub, "resend", "bcc-spam", "dead").await;
    assert!(
        mock.lock().unwrap().seen.is_empty(),
        "nothing was sent to Resend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_send_email_is_spec_valid_retried_and_sent_once_per_key() {
    let (hub, mock) = started().await;
    let input = json!({"to": ["a@example.com"], "cc": "b@example.com", "subject": "Your visit", "html": "<p>Thanks</p>",
                       "text": "Thanks", "tags": {"category": "follow_up"}});
    // 429 with retry-after, then success: one email, the same key both times, no sooner than 1 s.
    mock.lock().unwrap().script.push_back((
        429,
        Some("1"),
        json!({"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"}),
    ));
    run_action(&hub, "resend", "send_email", input.clone(), "k1");
    let (attempts, _) = job_ends(&hub, "resend", "k1", "done").await;
    assert_eq!(attempts, 2);
    {
        let m = mock.lock().unwrap();
        assert_eq!(m.accepted.len(), 1);
        assert_eq!(m.seen.len(), 2);
        assert!(
            m.seen.iter().all(|(k, _)| k == "action:acme:resend:k1"),
            "{:?}",
            m.seen
        );
        assert!(m.seen[1].1 - m.seen[0].1 >= std::time::Duration::from_millis(950));
        let body = &m.accepted[0].1;
        assert_eq!(
            (body["from"].as_str(), body["reply_to"].clone()),
            (Some(FROM), json!(["support@acme.test"]))
        );
        assert_eq!(
            body["tags"],
            json!([{"name": "category", "value": "follow_up"}])
        );
    }
    let id = mock.lock().unwrap().accepted[0].0.clone();
    assert_eq!(
        job_result(&hub, "resend", "k1").await,
        json!({ "id": id }),
        "the job keeps what the action answered: Resend's id for the email"
    );
    let email = record_where(&hub, "email", &id, |_| true).await;
    assert_eq!(
        (email["status"].as_str(), email["idempotency_key"].as_str()),
        (Some("sent"), Some("action:acme:resend:k1"))
    );
    // The same key again is not queued again.
    assert!(
        run_action(&hub, "resend", "send_email", input.clone(), "k1").contains("already queued")
    );
    // 500, then success.
    mock.lock().unwrap().script.push_back((
        500,
        None,
        json!({"statusCode": 500, "name": "internal_server_error", "message": "oops"}),
    ));
    run_action(&hub, "resend", "send_email", input.clone(), "k2");
    assert_eq!(job_ends(&hub, "resend", "k2", "done").await.0, 2);
    // 422: dead-lettered with Resend's message, after one attempt.
    let message = "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.";
    mock.lock().unwrap().script.push_back((
        422,
        None,
        json!({"statusCode": 422, "name": "validation_error", "message": message}),
    ));
    run_action(&hub, "resend", "send_email", input.clone(), "k3");
    let (attempts, error) = job_ends(&hub, "resend", "k3", "dead").await;
    assert_eq!(attempts, 1);
    assert!(
        error.contains(message) && error.contains("validation_error"),
        "{error}"
    );
    // A key longer than Resend's 256 characters is hashed.
    let long = "x".repeat(300);
    run_action(&hub, "resend", "send_email", input, &long);
    job_ends(&hub, "resend", &long, "done").await;
    {
        let m = mock.lock().unwrap();
        assert_eq!(m.accepted.len(), 3);
        assert!(m.seen.last().unwrap().0.starts_with("sha256:"));
        assert!(
            m.violations.is_empty(),
            "spec violations: {:?}",
            m.violations
        );
    }
    // Resend's webhooks then move the sent email on.
    let delivered = event(
        "email.delivered",
        &id,
        "2026-03-01T10:00:05.000Z",
        "a@example.com",
        json!({}),
    );
    assert_eq!(post(&hub, "msg_d", &delivered, SECRET, 0).await.0, 200);
    let email = record_where(&hub, "email", &id, |d| d["status"] == "delivered").await;
    assert_eq!(email["idempotency_key"], "action:acme:resend:k1");
}
