//! The app's side on the shipped `hub.toml`: abc-healthcare's app receives its call events as
//! webhooks that the official Svix library (Standard Webhooks) verifies, catches up on what it
//! missed while it was down, and reads the change feed with its own token, which opens no other
//! tenant.

use std::collections::{BTreeMap, BTreeSet};

use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::chain::{DEMO_KEY, RETELL_KEY, shipped_config, stand_in};
use crate::receiver::App;
use crate::util::*;

/// The demo secret of abc-healthcare's `crm` endpoint (the shipped hub.toml says so too).
const CRM_SECRET: &str = "whsec_YA1HlIhK3xvBSdqfJaiMupBdNs09iCSSDTSqOofO9uY=";
/// The demo token of abc-healthcare's dashboard.
const DASHBOARD_TOKEN: &str = "hubtok_demo_abc_healthcare_dashboard";

/// A signed Retell call webhook for abc-healthcare.
async fn call(hub: &TestHub, event: &str, id: &str, status: &str) {
    let body = json!({
        "event": event,
        "call": {
            "call_id": id, "call_type": "phone_call", "agent_id": "agent_abc_front_desk",
            "call_status": status, "direction": "inbound", "from_number": "+15551234567",
            "to_number": "+15005550006", "start_timestamp": 1764064800000i64,
            "end_timestamp": 1764064980000i64, "duration_ms": 180000,
            "transcript": "Agent: ABC Healthcare, how can I help?",
            "call_analysis": { "call_summary": "Booked.", "user_sentiment": "Positive",
                "call_successful": true, "in_voicemail": false }
        }
    })
    .to_string();
    let headers = official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": body }));
    let (status, text) = hub
        .post("/hooks/abc-healthcare/retell", &headers, body.as_bytes())
        .await;
    assert_eq!(status, 200, "{text}");
}

async fn get(hub: &TestHub, path: &str, token: &str) -> (u16, Value) {
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

#[tokio::test]
async fn the_app_gets_every_call_event_signed_once_after_an_outage_and_follows_the_feed() {
    let (stand_in_port, _log) = stand_in().await;
    let mut app = App::with_secret(CRM_SECRET);
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    // The shipped config, with the app on a free port and a retry schedule of seconds (the
    // shipped one waits 5 s, then 5 min: an outage of minutes ends with the retry after it).
    let mut doc: toml_edit::DocumentMut = shipped_config(&hub, stand_in_port).parse().unwrap();
    let crm = &mut doc["tenants"]["abc-healthcare"]["endpoints"]["crm"];
    crm["url"] = toml_edit::value(format!("http://127.0.0.1:{}/api/hub-webhooks", app.port));
    let mut schedule = toml_edit::Array::new();
    for s in [1, 1, 1, 2, 2, 2, 3, 3, 3, 5, 5, 5] {
        schedule.push(s as i64);
    }
    crm["retry_schedule_secs"] = toml_edit::value(schedule);
    hub.write_config(&doc.to_string());
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "{out}{err}");
    hub.start().await;

    // The app is down while three calls come in.
    call(&hub, "call_started", "call_app_1", "ongoing").await;
    call(&hub, "call_analyzed", "call_app_1", "ended").await;
    call(&hub, "call_analyzed", "call_app_2", "ended").await;
    wait_for(30, "the three deliveries handled", || async {
        let done = hub.deliveries(Some("abc-healthcare")).await;
        (done.len() == 3 && done.iter().all(|d| d["state"] == "done")).then_some(())
    })
    .await;
    // What the endpoint subscribes to (`retell:call.*`); the routes' connectors publish more.
    let published: Vec<Value> = hub.api("/tenants/abc-healthcare/events?limit=500").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["connector"] == "retell" && e["name"].as_str().unwrap().starts_with("call."))
        .cloned()
        .collect();
    assert!(published.len() >= 4, "{published:?}");
    wait_for(30, "failed attempts while the app is down", || async {
        let jobs = hub.api("/jobs?tenant=abc-healthcare&limit=500").await;
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["task"]["kind"] == "webhook" && j["last_error"].is_string())
            .then_some(())
    })
    .await;
    assert!(app.got().is_empty());

    // It comes back: every event arrives, each verified by the official library, each once.
    app.up();
    let expected: BTreeMap<String, usize> = published.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(format!("retell.{}", e["name"].as_str().unwrap()))
            .or_default() += 1;
        m
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let got = loop {
        let got = app.got();
        let ids: BTreeSet<String> = got
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= published.len() {
            break got;
        }
        if std::time::Instant::now() > deadline {
            let jobs = hub.api("/jobs?tenant=abc-healthcare&limit=500").await;
            panic!("not every event reached the app: got {got:?}\njobs {jobs:#}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for g in &got {
        assert_eq!(g["verified"], true, "the official library verifies it: {g}");
        assert_eq!(g["path"], "/api/hub-webhooks");
    }
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for g in &got {
        by_id.insert(g["id"].as_str().unwrap().to_string(), g.clone());
    }
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for g in by_id.values() {
        *types
            .entry(g["type"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(types, expected, "one webhook per event, by type");
    assert_eq!(types.get("retell.call.analyzed"), Some(&2));
    let analyzed = by_id
        .values()
        .find(|g| {
            let body: Value = serde_json::from_str(g["body"].as_str().unwrap()).unwrap();
            g["type"] == "retell.call.analyzed" && body["data"]["call_id"] == "call_app_1"
        })
        .expect("call_app_1's call.analyzed");
    let body: Value = serde_json::from_str(analyzed["body"].as_str().unwrap()).unwrap();
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");

    // The dashboard's token: its tenant's change feed lists each call once, in change order...
    let (status, feed) = get(
        &hub,
        "/tenants/abc-healthcare/changes?kinds=call",
        DASHBOARD_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{feed}");
    let changes = feed["changes"].as_array().unwrap();
    let keys: BTreeSet<&str> = changes.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, BTreeSet::from(["call_app_1", "call_app_2"]), "{feed}");
    assert_eq!(keys.len(), changes.len(), "each record once: {feed}");
    let seqs: Vec<i64> = changes.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in change order: {feed}"
    );
    // A new call: the long-poll from the last cursor answers with it.
    let mut next = feed["next"].as_str().unwrap().to_string();
    call(&hub, "call_analyzed", "call_app_3", "ended").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let path = format!("/tenants/abc-healthcare/changes?kinds=call&after={next}&wait=10");
        let (status, page) = get(&hub, &path, DASHBOARD_TOKEN).await;
        assert_eq!(status, 200, "{page}");
        next = page["next"].as_str().unwrap().to_string();
        let changes = page["changes"].as_array().unwrap();
        if changes.iter().any(|c| c["key"] == "call_app_3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "call_app_3 never in the feed"
        );
    }

    // ...and opens no other tenant: xyz-dental is a tenant that does not exist to it.
    for path in ["/tenants/xyz-dental/records", "/tenants/xyz-dental/changes"] {
        let (status, _) = get(&hub, path, DASHBOARD_TOKEN).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = get(&hub, "/deliveries", "hubtok_not_a_token").await;
    assert_eq!(status, 401);
}

/// The `webhook-id` the hub gives the event keyed `event_key` on endpoint `crm`.
fn webhook_id(event_key: &str) -> String {
    use sha2::Digest as _;
    let key = format!("{event_key}:endpoint:crm");
    format!(
        "msg_{}",
        &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..26]
    )
}

#[tokio::test]
async fn a_hub_killed_during_fan_out_delivers_each_event_at_least_once_under_one_id() {
    let (stand_in_port, _log) = stand_in().await;
    let mut app = App::with_secret(CRM_SECRET);
    app.up();
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    let mut doc: toml_edit::DocumentMut = shipped_config(&hub, stand_in_port).parse().unwrap();
    doc["tenants"]["abc-healthcare"]["endpoints"]["crm"]["url"] =
        toml_edit::value(format!("http://127.0.0.1:{}/api/hub-webhooks", app.port));
    hub.write_config(&doc.to_string());
    hub.start().await;

    for i in 0..12 {
        call(&hub, "call_analyzed", &format!("call_kill_{i}"), "ended").await;
    }
    // kill -9 once the first webhooks reached the app, while the rest are on their way.
    wait_for(30, "the first webhook at the app", || async {
        (!app.got().is_empty()).then_some(())
    })
    .await;
    hub.kill();
    hub.start().await;

    let expected = wait_for(90, "every delivery handled after the restart", || async {
        let done = hub.deliveries(Some("abc-healthcare")).await;
        if done.len() < 12 || done.iter().any(|d| d["state"] != "done") {
            return None;
        }
        let events = hub.api("/tenants/abc-healthcare/events?limit=500").await;
        let ids: BTreeSet<String> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["connector"] == "retell")
            .map(|e| webhook_id(e["key"].as_str().unwrap()))
            .collect();
        Some(ids)
    })
    .await;
    assert!(expected.len() >= 12, "{expected:?}");
    let got = wait_for(90, "every event at the app", || async {
        let got: BTreeSet<String> = app
            .got()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        expected.is_subset(&got).then_some(got)
    })
    .await;
    assert_eq!(
        got, expected,
        "each event under one webhook-id, no other ids"
    );
    assert!(app.got().iter().all(|g| g["verified"] == true));
}

/// One live answer of the API, as `tests/signers/openapi-check.js` takes it.
async fn answer(
    hub: &TestHub,
    method: &str,
    template: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let url = format!("{}{path}", hub.base());
    let req = match &body {
        None => hub.client.get(url),
        Some(b) => hub.client.post(url).json(b),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    json!({ "method": method, "path": template, "status": status, "body": body })
}

#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says() {
    let (stand_in_port, _log) = stand_in().await;
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    hub.write_config(&shipped_config(&hub, stand_in_port));
    hub.start().await;
    call(&hub, "call_analyzed", "call_api_1", "ended").await;
    call(&hub, "call_analyzed", "call_api_2", "ended").await;
    let delivery = wait_for(30, "the deliveries handled", || async {
        let done = hub.deliveries(Some("abc-healthcare")).await;
        (done.len() == 2 && done.iter().all(|d| d["state"] == "done"))
            .then(|| done[0]["id"].clone())
    })
    .await;
    let spec: Value = hub
        .client
        .get(format!("{}/api/v1/openapi.json", hub.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        spec["openapi"].as_str().map(|v| &v[..3]),
        Some("3.1"),
        "{spec}"
    );

    let admin = "demo-admin-token";
    let t = "/api/v1/tenants/{tenant}";
    let mut answers = Vec::new();
    for (method, template, path, token, body) in [
        (
            "get",
            "/api/v1/deliveries",
            "/api/v1/deliveries".to_string(),
            admin,
            None,
        ),
        (
            "get",
            "/api/v1/deliveries",
            "/api/v1/deliveries?limit=1".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "get",
            "/api/v1/deliveries",
            "/api/v1/deliveries?cursor=forged".into(),
            admin,
            None,
        ),
        (
            "get",
            "/api/v1/deliveries",
            "/api/v1/deliveries".into(),
            "hubtok_wrong",
            None,
        ),
        (
            "get",
            "/api/v1/deliveries/{id}",
            format!("/api/v1/deliveries/{delivery}"),
            admin,
            None,
        ),
        (
            "get",
            "/api/v1/deliveries/{id}",
            "/api/v1/deliveries/999999".into(),
            admin,
            None,
        ),
        (
            "get",
            "/api/v1/jobs",
            "/api/v1/jobs?limit=2".into(),
            admin,
            None,
        ),
        (
            "post",
            "/api/v1/replay",
            "/api/v1/replay".into(),
            admin,
            Some(json!({ "delivery": delivery })),
        ),
        (
            "post",
            "/api/v1/replay",
            "/api/v1/replay".into(),
            DASHBOARD_TOKEN,
            Some(json!({ "delivery": delivery })),
        ),
        (
            "post",
            "/api/v1/replay",
            "/api/v1/replay".into(),
            admin,
            Some(json!({ "job": 999999 })),
        ),
        (
            "post",
            "/api/v1/replay",
            "/api/v1/replay".into(),
            admin,
            Some(json!({})),
        ),
        (
            "get",
            "/api/v1/tenants",
            "/api/v1/tenants".into(),
            admin,
            None,
        ),
        (
            "get",
            &format!("{t}/records"),
            "/api/v1/tenants/abc-healthcare/records?limit=1".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "get",
            &format!("{t}/records"),
            "/api/v1/tenants/xyz-dental/records".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "get",
            &format!("{t}/events"),
            "/api/v1/tenants/abc-healthcare/events?limit=2".into(),
            admin,
            None,
        ),
        (
            "get",
            &format!("{t}/changes"),
            "/api/v1/tenants/abc-healthcare/changes".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "get",
            &format!("{t}/changes"),
            "/api/v1/tenants/abc-healthcare/changes?after=forged".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "post",
            &format!("{t}/sync"),
            "/api/v1/tenants/abc-healthcare/sync".into(),
            admin,
            Some(json!({ "connector": "retell", "job": "sync_agents" })),
        ),
        (
            "post",
            &format!("{t}/sync"),
            "/api/v1/tenants/abc-healthcare/sync".into(),
            DASHBOARD_TOKEN,
            Some(json!({ "connector": "retell", "job": "sync_agents" })),
        ),
        (
            "get",
            &format!("{t}/endpoints"),
            "/api/v1/tenants/abc-healthcare/endpoints".into(),
            DASHBOARD_TOKEN,
            None,
        ),
        (
            "post",
            &format!("{t}/endpoints/{{endpoint}}/enable"),
            "/api/v1/tenants/abc-healthcare/endpoints/crm/enable".into(),
            admin,
            Some(json!({})),
        ),
        (
            "get",
            "/api/v1/connectors",
            "/api/v1/connectors".into(),
            DASHBOARD_TOKEN,
            None,
        ),
    ] {
        answers.push(answer(&hub, method, template, &path, token, body).await);
    }
    let statuses: Vec<u64> = answers
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            200, 200, 400, 401, 200, 404, 200, 200, 403, 404, 400, 200, 200, 404, 200, 200, 400,
            200, 403, 200, 200, 200
        ],
        "{answers:#?}"
    );

    // The independent validators (tests/signers/openapi-check.js).
    let report = openapi_check(&spec, &answers);
    assert_eq!(
        report["spec_errors"],
        json!([]),
        "the document is valid OpenAPI 3.1: {report:#}"
    );
    assert_eq!(
        report["answer_errors"],
        json!([]),
        "every answer is as documented: {report:#}"
    );
    assert_eq!(report["checked"], answers.len());

    // The check can fail: an answer that is not as documented is reported.
    let mut wrong = answers[0].clone();
    wrong["body"]["deliveries"] = json!("not a list");
    let report = openapi_check(&spec, &[wrong]);
    assert_ne!(report["answer_errors"], json!([]), "{report:#}");
}

/// The report of `tests/signers/openapi-check.js` on the document and answers.
pub(crate) fn openapi_check(spec: &Value, answers: &[Value]) -> Value {
    use std::io::Write as _;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/signers/openapi-check.js");
    let mut child = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({ "spec": spec, "answers": answers }).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the checker failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn an_app_that_never_answers_delays_only_its_own_endpoint() {
    let (stand_in_port, _log) = stand_in().await;
    let mut app = App::with_secret(CRM_SECRET);
    app.up();
    // The other endpoint's app takes every request and never answers.
    let stuck = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = stuck.clone();
    let never = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let never_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, never).await.unwrap() });

    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    let mut doc: toml_edit::DocumentMut = shipped_config(&hub, stand_in_port).parse().unwrap();
    let endpoints = &mut doc["tenants"]["abc-healthcare"]["endpoints"];
    endpoints["crm"]["url"] =
        toml_edit::value(format!("http://127.0.0.1:{}/api/hub-webhooks", app.port));
    let place = hub::secrets::Place::Endpoint {
        tenant: "abc-healthcare".into(),
        name: "stuck".into(),
        field: "secret".into(),
    };
    let sealed = hub::secrets::seal(&hub.key, &place, b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let mut stuck_table = toml_edit::Table::new();
    stuck_table["url"] = toml_edit::value(format!("http://127.0.0.1:{never_port}/hooks"));
    let mut events = toml_edit::Array::new();
    events.push("*");
    stuck_table["events"] = toml_edit::value(events);
    stuck_table["allow_private"] = toml_edit::value(true);
    stuck_table["concurrency"] = toml_edit::value(2);
    stuck_table["secret"] = toml_edit::value(sealed);
    endpoints["stuck"] = toml_edit::Item::Table(stuck_table);
    hub.write_config(&doc.to_string());
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "{out}{err}");
    hub.start().await;

    for i in 0..6 {
        call(&hub, "call_analyzed", &format!("call_stuck_{i}"), "ended").await;
    }
    wait_for(30, "the six deliveries handled", || async {
        let done = hub.deliveries(Some("abc-healthcare")).await;
        (done.len() == 6 && done.iter().all(|d| d["state"] == "done")).then_some(())
    })
    .await;
    let expected = hub.api("/tenants/abc-healthcare/events?limit=500").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["connector"] == "retell")
        .count();
    // The crm app gets all of its webhooks while the stuck one holds its two slots.
    wait_for(
        30,
        "every crm webhook despite the stuck endpoint",
        || async {
            let ids: BTreeSet<String> = app
                .got()
                .iter()
                .map(|g| g["id"].as_str().unwrap().to_string())
                .collect();
            (ids.len() >= expected).then_some(())
        },
    )
    .await;
    let in_flight = stuck.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2).contains(&in_flight),
        "the stuck endpoint holds at most its own 2 slots: {in_flight}"
    );
    // And webhooks from providers are still acknowledged at once.
    let started = std::time::Instant::now();
    call(&hub, "call_analyzed", "call_stuck_late", "ended").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
