//! Tools a voice agent calls mid-call, on the shipped config: abc-healthcare's CRM upserts a
//! HubSpot contact through the actions API; then Retell custom functions, signed with the
//! official `retell-sdk`, call `lookup_caller` (it finds that contact by the caller's number)
//! and `send_directions` (one SMS through Twilio across Retell's two retries); an unknown tool,
//! a forged signature and an answer longer than Retell reads each get their answer.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::chain::{DEMO_KEY, RETELL_KEY, shipped_config};
use crate::util::*;

const ABC_CRM: &str = "hubtok_demo_abc_healthcare_crm";
const CALLER: &str = "+14155550142";
const SID: &str = "SM5f0c1e2d3c4b5a69788796a5b4c3d2e1";

/// `(provider, path, body)` of each request.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// HubSpot's batch upsert, echoing the properties it was given; Twilio's Messages.
async fn stand_in() -> (u16, Seen) {
    stand_in_with(false).await
}

/// The same, Twilio answering its first message 429 (`Retry-After: 3`) when `first_429`.
async fn stand_in_with(first_429: bool) -> (u16, Seen) {
    async fn hubspot(State((seen, _)): State<(Seen, bool)>, body: String) -> impl IntoResponse {
        seen.lock().unwrap().push((
            "hubspot".into(),
            "/crm/v3/objects/contacts/batch/upsert".into(),
            body.clone(),
        ));
        let asked: Value = serde_json::from_str(&body).unwrap_or_default();
        let properties = asked["inputs"][0]["properties"].clone();
        let answer = json!({ "status": "COMPLETE", "results": [{ "id": "5101", "new": true, "properties": properties,
            "createdAt": "2026-12-07T10:00:00Z", "updatedAt": "2026-12-07T10:00:00Z" }],
            "startedAt": "2026-12-07T10:00:00Z", "completedAt": "2026-12-07T10:00:00Z" });
        (StatusCode::OK, axum::Json(answer))
    }
    async fn twilio(State((seen, first_429)): State<(Seen, bool)>, body: String) -> Response {
        let first = {
            let mut seen = seen.lock().unwrap();
            let first = !seen.iter().any(|(p, ..)| p == "twilio");
            seen.push(("twilio".into(), "Messages.json".into(), body));
            first
        };
        if first && first_429 {
            let said = json!({ "code": 20429, "message": "Too Many Requests", "status": 429 });
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "3")],
                axum::Json(said),
            )
                .into_response();
        }
        let answer = json!({ "sid": SID, "status": "queued", "account_sid": "AC00000000000000000000000000000abc" });
        (StatusCode::CREATED, axum::Json(answer)).into_response()
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/crm/v3/objects/contacts/batch/upsert",
            axum::routing::post(hubspot),
        )
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(twilio),
        )
        .with_state((seen.clone(), first_429));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

/// A hub on the shipped config, edited by `edit`, whose providers are the stand-in on `port`.
async fn shipped(port: u16, edit: impl FnOnce(&mut toml_edit::DocumentMut)) -> TestHub {
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    let mut doc: toml_edit::DocumentMut = shipped_config(&hub, port).parse().unwrap();
    edit(&mut doc);
    hub.write_config(&doc.to_string());
    hub.start().await;
    hub
}

/// The CRM asks abc-healthcare's hub to act (its `act` token, `?wait=20`); (status, answer).
async fn crm_acts(hub: &TestHub, key: &str, body: &Value) -> (u16, Value) {
    let resp = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/abc-healthcare/actions?wait=20",
            hub.base()
        ))
        .bearer_auth(ABC_CRM)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A Retell custom-function request for `tool`, signed by the official SDK; (status, body).
async fn custom_function(hub: &TestHub, tool: &str, args: Value, call_id: &str) -> (u16, String) {
    let body = json!({
        "name": tool,
        "args": args,
        "call": { "call_id": call_id, "call_type": "phone_call", "agent_id": "agent_abc_front_desk",
                  "call_status": "ongoing", "direction": "inbound", "from_number": CALLER, "to_number": "+15005550006" }
    })
    .to_string();
    let headers = official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": body }));
    hub.post(
        "/hooks/abc-healthcare/retell/tools",
        &headers,
        body.as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retell_agent_looks_up_the_caller_and_texts_directions_once_across_retries() {
    let (port, seen) = stand_in().await;
    let hub = shipped(port, |_| {}).await;

    // Before the CRM knows the caller, the lookup finds nothing.
    let (status, answer) = custom_function(&hub, "lookup_caller", json!({}), "call_tools_1").await;
    assert_eq!((status, answer.as_str()), (200, r#"{"found":false}"#));

    // The CRM upserts the contact through the hub (HubSpot), waiting for the outcome.
    let upsert = json!({ "action": "crm:upsert_contact",
        "input": { "email": "rosa@example.com", "phone": CALLER, "firstname": "Rosa", "properties": { "message": "Prefers mornings." } } });
    let (status, done) = crm_acts(&hub, "contact-rosa", &upsert).await;
    assert_eq!(status, 200);
    assert_eq!(done["output"]["id"], "5101", "{done}");
    // HubSpot's answer is applied as a job of its own: the contact is a record soon after.
    wait_for(20, "the contact record", || async {
        let records = hub.records("abc-healthcare", "contact").await;
        (!records.is_empty()).then_some(())
    })
    .await;

    // Mid-call, the agent looks the caller up by the number it calls from.
    let (status, answer) = custom_function(&hub, "lookup_caller", json!({}), "call_tools_1").await;
    assert_eq!(status, 200, "{answer}");
    let found: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(found["found"], true, "{found}");
    assert_eq!(
        found["record"]["properties"]["firstname"], "Rosa",
        "{found}"
    );

    // `send_directions`, and Retell retries it twice (the same body): one SMS, one answer.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, answer) =
            custom_function(&hub, "send_directions", json!({}), "call_tools_1").await;
        assert_eq!(status, 200, "{answer}");
        answers.push(answer);
    }
    let first: Value = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(first["status"], "done", "{first}");
    assert_eq!(first["output"]["id"], SID, "{first}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    let sms: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, ..)| p == "twilio")
        .cloned()
        .collect();
    assert_eq!(sms.len(), 1, "one SMS across Retell's retries: {sms:#?}");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(sms[0].2.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("To".into(), CALLER.into())), "{form:?}");
    assert!(
        form.iter()
            .any(|(k, v)| k == "Body" && v.contains("12 Main St.")),
        "{form:?}"
    );
    // In another call, the same tool acts again.
    let (_, other) = custom_function(&hub, "send_directions", json!({}), "call_tools_2").await;
    assert!(other.contains(r#""status":"done""#), "{other}");
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p == "twilio")
            .count(),
        2
    );

    // What the agent can speak from when it asks wrongly; the log says what happened.
    let (status, answer) = custom_function(&hub, "book_a_rocket", json!({}), "call_tools_1").await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"error":"There is no tool called book_a_rocket."}"#)
    );
    let body = json!({ "name": "send_directions", "args": {}, "call": { "call_id": "c", "from_number": CALLER } }).to_string();
    let forged = official_sign(
        &json!({ "scheme": "retell", "secret": "key_not_the_tenants_000000000", "body": body }),
    );
    let (status, _) = hub
        .post(
            "/hooks/abc-healthcare/retell/tools",
            &forged,
            body.as_bytes(),
        )
        .await;
    assert_eq!(status, 401, "a forged custom function runs nothing");
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p == "twilio")
            .count(),
        2
    );
    assert!(
        hub.log().contains("tool call answered"),
        "the log shows tool calls"
    );

    // Each call is the tenant's `tool.called` event, with its answer (the console's events, the
    // feed, the app's endpoints).
    let called = wait_for(10, "the tool.called events", || async {
        let events = hub.api("/tenants/abc-healthcare/events?limit=100").await;
        let called: Vec<Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "tool.called")
            .cloned()
            .collect();
        (called.len() >= 7).then_some(called)
    })
    .await;
    let directions = called
        .iter()
        .find(|e| {
            e["payload"]["tool"] == "send_directions"
                && e["payload"]["conversation"] == "call_tools_2"
        })
        .unwrap_or_else(|| panic!("{called:#?}"));
    assert_eq!(directions["connector"], "retell");
    assert_eq!(directions["payload"]["via"], "retell");
    assert_eq!(directions["payload"]["answer"]["output"]["id"], SID);

    // The console's tenant page lists the tools and where agents call them.
    let cookie = crate::masking::log_in(&hub).await;
    let page = hub
        .client
        .get(format!("{}/console/tenants/abc-healthcare", hub.base()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(page.contains("Tools for agents"), "{page}");
    assert!(page.contains("<code>send_directions</code>") && page.contains("runs sms:send"));
    assert!(page.contains("finds a contact by phone") && page.contains("phone (optional)"));
    assert!(page.contains(&format!("{}/mcp/abc-healthcare", hub.base())));
    assert!(page.contains(&format!("{}/hooks/abc-healthcare/retell/tools", hub.base())));

    // Each call is in the webhook log, as a delivery the Retell connector leaves to the hub.
    let calls: Vec<Value> = hub
        .deliveries(Some("abc-healthcare"))
        .await
        .into_iter()
        .filter(|d| d["route"] == "tools")
        .collect();
    assert!(calls.len() >= 4, "{calls:#?}");
    assert!(
        calls.iter().any(|d| d["event"] == "send_directions"),
        "{calls:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_longer_than_retell_reads_is_cut_with_a_marker() {
    let (port, _) = stand_in().await;
    let hub = shipped(port, |_| {}).await;
    let notes = "Long history. ".repeat(2_000);
    let upsert = json!({ "action": "crm:upsert_contact",
        "input": { "email": "long@example.com", "phone": CALLER, "properties": { "message": notes } } });
    let (status, _) = crm_acts(&hub, "contact-long", &upsert).await;
    assert_eq!(status, 200);
    wait_for(20, "the contact record", || async {
        (!hub.records("abc-healthcare", "contact").await.is_empty()).then_some(())
    })
    .await;
    let (status, answer) = custom_function(&hub, "lookup_caller", json!({}), "call_long").await;
    assert_eq!(status, 200);
    assert_eq!(
        answer.chars().count(),
        15_000,
        "Retell reads 15,000 characters"
    );
    assert!(
        answer.ends_with("…[cut: the answer was longer than the agent reads]"),
        "{}",
        &answer[answer.len() - 80..]
    );
    assert!(answer.starts_with(r#"{"found":true"#));
}

/// The official MCP client, off the test's async threads (it calls the hub, which calls the
/// stand-in on them).
async fn mcp(hub: &TestHub, tenant: &str, token: &str, calls: Value) -> Value {
    let input =
        json!({ "url": format!("{}/mcp/{tenant}", hub.base()), "token": token, "calls": calls });
    tokio::task::spawn_blocking(move || mcp_client(&input))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_lists_and_calls_the_tenants_tools_and_no_one_elses() {
    let (port, seen) = stand_in().await;
    let hub = shipped(port, |doc| {
        doc["tenants"]["abc-healthcare"]["tools"]["text_someone"] = toml_edit::value("send_sms");
    })
    .await;
    const VOICE: &str = "hubtok_demo_abc_healthcare_voice_agent";

    let calls = json!([
        { "name": "lookup_caller", "arguments": { "phone": CALLER } },
        { "name": "text_someone", "arguments": { "to": CALLER, "body": "Your visit is confirmed." } },
        { "name": "text_someone", "arguments": { "to": CALLER } },
        { "name": "launch_rocket", "arguments": {} },
    ]);
    let got = mcp(&hub, "abc-healthcare", VOICE, calls).await;
    assert!(got.get("error").is_none(), "{got}");
    let names: Vec<&str> = got["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "book_appointment",
            "check_availability",
            "lookup_caller",
            "send_directions",
            "text_someone"
        ],
        "{got}"
    );
    let text = &got["tools"][4];
    assert_eq!(text["inputSchema"]["required"], json!(["body"]), "{text}");
    assert_eq!(text["inputSchema"]["properties"]["to"]["type"], "string");
    let results = got["results"].as_array().unwrap();
    assert_eq!(
        results[0]["structuredContent"],
        json!({ "found": false }),
        "{got}"
    );
    assert_eq!(results[1]["structuredContent"]["status"], "done", "{got}");
    assert_eq!(results[1]["structuredContent"]["output"]["id"], SID);
    assert_eq!(results[2]["isError"], true, "a missing argument: {got}");
    assert!(
        results[2]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("`body`"),
        "{got}"
    );
    assert!(
        results[3]["protocolError"]
            .as_str()
            .unwrap()
            .contains("no tool `launch_rocket`"),
        "{got}"
    );
    let sms = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, ..)| p == "twilio")
        .count();
    assert_eq!(sms, 1, "one text for the one complete call");
    let events = wait_for(10, "the MCP tool.called events", || async {
        let events = hub.api("/tenants/abc-healthcare/events?limit=100").await;
        let mcp: Vec<Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "tool.called" && e["payload"]["via"] == "mcp")
            .cloned()
            .collect();
        (mcp.len() == 3).then_some(mcp)
    })
    .await;
    assert!(
        events.iter().all(|e| e["connector"] == "mcp"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e["payload"]["answer"]["error"]
            .as_str()
            .is_some_and(|a| a.contains("body"))),
        "{events:#?}"
    );

    // Another tenant's token, a token that may only read, no token: refused, nothing listed.
    for (token, said) in [
        (
            "hubtok_demo_xyz_dental_crm",
            "tenant abc-healthcare not found",
        ),
        ("hubtok_demo_abc_healthcare_dashboard", "may not call tools"),
        ("", "a valid bearer token is required"),
    ] {
        let got = mcp(&hub, "abc-healthcare", token, json!([])).await;
        let error = got["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{token}: {got}"));
        assert!(error.contains(said), "{token}: {error}");
    }
    // The admin token reaches any tenant's tools: xyz-dental's are its own two calendar tools.
    let got = mcp(&hub, "xyz-dental", "demo-admin-token", json!([])).await;
    let names: Vec<&str> = got["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{got}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["book_appointment", "check_availability"], "{got}");
    let log = hub.log();
    let line = log
        .lines()
        .find(|l| l.contains("tool call answered") && l.contains("text_someone"))
        .unwrap_or_else(|| panic!("the log shows MCP tool calls: {log}"));
    assert!(line.contains("mcp"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_past_its_deadline_is_pending_and_completes_once_across_a_kill() {
    let (port, seen) = stand_in_with(true).await;
    let mut hub = shipped(port, |doc| {
        doc["tenants"]["abc-healthcare"]["tools"]["send_directions"]["deadline_ms"] =
            toml_edit::value(1000);
    })
    .await;
    let texts = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p == "twilio")
            .count()
    };

    // Twilio answers 429, retry in 3 s: the agent hears that it is under way, within 1 s.
    let started = std::time::Instant::now();
    let (status, answer) = custom_function(&hub, "send_directions", json!({}), "call_slow").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "answered by the deadline"
    );
    assert!(answer.contains(r#""status":"pending""#), "{answer}");
    assert_eq!(texts(), 1, "the 429");
    // The hub dies while the action waits to retry; Retell retries the call after the restart.
    hub.kill();
    hub.start().await;
    let done = wait_for(30, "the retried call's outcome", || async {
        let (_, answer) = custom_function(&hub, "send_directions", json!({}), "call_slow").await;
        answer.contains(r#""status":"done""#).then_some(answer)
    })
    .await;
    assert!(done.contains(SID), "{done}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(texts(), 2, "the 429, then one text: never two");
}
