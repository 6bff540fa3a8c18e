//! The shipped `hub.toml`, end to end: a Retell `call_analyzed` for abc-healthcare sends the
//! follow-up email (Resend), the SMS (Twilio), upserts the HubSpot contact and notifies Zapier,
//! each exactly once, against one local stand-in that answers like the four providers. Only the
//! listen address, data folder and stand-ins are changed from the shipped file.

use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::util::*;

/// The README's public demo key, which opens the shipped demo credentials.
pub(crate) const DEMO_KEY: &str = "hubkey:v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
pub(crate) const RETELL_KEY: &str = "key_demo_abc_healthcare_0000000";
const ZAPIER_TOKEN: &str = "demo-zapier-token-abc-healthcare";

/// `(provider, path, headers, body)` of every request the stand-in answered.
pub(crate) type Log = Arc<Mutex<Vec<(String, String, HeaderMap, String)>>>;

pub(crate) async fn stand_in() -> (u16, Log) {
    async fn resend(State(log): State<Log>, headers: HeaderMap, body: String) -> impl IntoResponse {
        log.lock()
            .unwrap()
            .push(("resend".into(), "/emails".into(), headers, body));
        (
            StatusCode::OK,
            axum::Json(json!({ "id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" })),
        )
    }
    async fn twilio(
        State(log): State<Log>,
        UrlPath(sid): UrlPath<String>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        log.lock().unwrap().push((
            "twilio".into(),
            format!("/2010-04-01/Accounts/{sid}"),
            headers,
            body,
        ));
        (
            StatusCode::CREATED,
            axum::Json(
                json!({ "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "account_sid": "AC00000000000000000000000000000abc" }),
            ),
        )
    }
    async fn hubspot(
        State(log): State<Log>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        log.lock()
            .unwrap()
            .push(("hubspot".into(), "batch/upsert".into(), headers, body));
        let answer = json!({ "status": "COMPLETE", "results": [{ "id": "5101", "new": true, "properties": { "email": "jane@example.com" },
            "createdAt": "2026-11-25T10:00:00Z", "updatedAt": "2026-11-25T10:00:00Z" }], "startedAt": "2026-11-25T10:00:00Z", "completedAt": "2026-11-25T10:00:00Z" });
        (StatusCode::OK, axum::Json(answer))
    }
    async fn zapier(
        State(log): State<Log>,
        UrlPath(rest): UrlPath<String>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        log.lock()
            .unwrap()
            .push(("zapier".into(), rest, headers, body));
        (StatusCode::OK, axum::Json(json!({ "status": "success" })))
    }
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route("/emails", axum::routing::post(resend))
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(twilio),
        )
        .route(
            "/crm/v3/objects/contacts/batch/upsert",
            axum::routing::post(hubspot),
        )
        .route("/hooks/catch/{*rest}", axum::routing::post(zapier))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, log)
}

/// The shipped hub.toml with the listen address, data folder and stand-ins changed, and no
/// schedule: a cron tick (a reconcile at the top of the hour) would otherwise queue jobs in the
/// middle of a test that counts them.
pub(crate) fn shipped_config(hub: &TestHub, stand_in: u16) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(path).unwrap().parse().unwrap();
    doc["server"]["listen"] = toml_edit::value(format!("127.0.0.1:{}", hub.port));
    doc["server"]["public_url"] = toml_edit::value(hub.base());
    doc["server"]["data_dir"] = toml_edit::value(hub.dir.path().join("data").display().to_string());
    for (connector, origin) in [
        ("retell", "https://api.retellai.com"),
        ("resend", "https://api.resend.com"),
        ("sendgrid", "https://api.sendgrid.com"),
        ("twilio", "https://api.twilio.com"),
        ("zapier", "https://hooks.zapier.com"),
        ("hubspot", "https://api.hubapi.com"),
        ("calcom", "https://api.cal.com"),
    ] {
        let mut table = toml_edit::InlineTable::new();
        table.insert(origin, format!("http://127.0.0.1:{stand_in}").into());
        doc["connectors"][connector]["stand_ins"] = toml_edit::value(table);
    }
    for connector in ["calcom", "gcal"] {
        doc["connectors"][connector]["default_schedules"] = toml_edit::value(false);
    }
    if let Some(tenants) = doc["tenants"].as_table_mut() {
        for (_, tenant) in tenants.iter_mut() {
            if let Some(t) = tenant.as_table_mut() {
                t.remove("schedules");
            }
        }
    }
    doc.to_string()
}

fn of(log: &Log, provider: &str) -> Vec<(String, HeaderMap, String)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(p, ..)| p == provider)
        .map(|(_, a, h, b)| (a.clone(), h.clone(), b.clone()))
        .collect()
}

/// A hub on the shipped config (checked first) whose providers are the stand-in on `port`.
pub(crate) async fn shipped_hub(port: u16) -> TestHub {
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    hub.write_config(&shipped_config(&hub, port));
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "the shipped config checks: {out}{err}");
    hub.start().await;
    hub
}

/// A caller whom one connector knows is greeted by name by another: a Zap sends a contact with
/// a phone number written its own way, and Retell's inbound-call webhook from that number
/// answers with the contact's name, found by the number's lookup; an unknown number gives none.
#[tokio::test]
async fn a_caller_a_zap_sent_is_greeted_by_name_on_the_inbound_call() {
    let (port, _log) = stand_in().await;
    let hub = shipped_hub(port).await;
    let contact = serde_json::to_vec(&json!({ "type": "contact", "email": "Jane.Roe@Example.com",
        "name": "Jane Roe", "phone": "+1 (555) 123-4567" }))
    .unwrap();
    let zap = [
        ("x-hub-token", ZAPIER_TOKEN.to_string()),
        ("content-type", "application/json".into()),
    ];
    let (status, text) = hub
        .post("/hooks/abc-healthcare/zapier/catch", &zap, &contact)
        .await;
    assert_eq!(status, 200, "{text}");
    wait_for(15, "the Zap's contact record", || async {
        (!hub.records("abc-healthcare", "contact").await.is_empty()).then_some(())
    })
    .await;

    let ask = |from: &str| {
        let body = json!({ "event": "call_inbound", "call_inbound": {
            "agent_id": "agent_abc_front_desk", "from_number": from, "to_number": "+15005550006" } })
        .to_string();
        let hub = &hub;
        async move {
            let headers =
                official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": body }));
            let (status, text) = hub
                .post(
                    "/hooks/abc-healthcare/retell/inbound",
                    &headers,
                    body.as_bytes(),
                )
                .await;
            assert_eq!(status, 200, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()["call_inbound"]["dynamic_variables"]
                .clone()
        }
    };
    let known = ask("+15551234567").await;
    assert_eq!(known["customer_name"], "Jane Roe", "{known}");
    assert_eq!(known["clinic_name"], "ABC Healthcare", "{known}");
    let unknown = ask("+15557654321").await;
    assert_eq!(unknown.get("customer_name"), None, "{unknown}");

    // A contact whose number has no country code: the tenant's `phone_country_code` is "+1".
    let national = serde_json::to_vec(&json!({ "type": "contact", "email": "john@example.com",
        "name": "John Doe", "phone": "(555) 987-6543" }))
    .unwrap();
    let (status, text) = hub
        .post("/hooks/abc-healthcare/zapier/catch", &zap, &national)
        .await;
    assert_eq!(status, 200, "{text}");
    let lookups = wait_for(15, "the second contact record", || async {
        let records = hub.records("abc-healthcare", "contact").await;
        let john = records.iter().find(|r| r["data"]["name"] == "John Doe")?;
        Some(john["lookups"].clone())
    })
    .await;
    assert_eq!(
        lookups,
        json!(["email:john@example.com", "phone:+15559876543"]),
        "stored in E.164 with the tenant's country code"
    );
    let john = ask("+15559876543").await;
    assert_eq!(john["customer_name"], "John Doe", "{john}");
}

#[tokio::test]
async fn a_call_analyzed_in_the_shipped_config_emails_texts_upserts_and_notifies_once() {
    let (port, log) = stand_in().await;
    let hub = shipped_hub(port).await;

    // A Zap subscribes to call.analyzed through the REST-hook route.
    let sub = serde_json::to_vec(&json!({ "target_url": "https://hooks.zapier.com/hooks/catch/123/abc/", "event": "call.analyzed" })).unwrap();
    let (status, text) = hub
        .post(
            "/hooks/abc-healthcare/zapier/subscribe",
            &[
                ("x-hub-token", ZAPIER_TOKEN.into()),
                ("content-type", "application/json".into()),
            ],
            &sub,
        )
        .await;
    assert_eq!(status, 201, "{text}");

    let body = json!({
        "event": "call_analyzed",
        "call": {
            "call_id": "call_chain_0001", "call_type": "phone_call", "agent_id": "agent_abc_front_desk",
            "call_status": "ended", "direction": "inbound", "from_number": "+15551234567", "to_number": "+15005550006",
            "start_timestamp": 1764064800000i64, "end_timestamp": 1764064980000i64, "duration_ms": 180000,
            "transcript": "Agent: ABC Healthcare, how can I help?\nUser: I'd like to book a check-up.",
            "disconnection_reason": "user_hangup",
            "call_analysis": { "call_summary": "Booked a check-up for Monday 10am.", "user_sentiment": "Positive",
                "call_successful": true, "in_voicemail": false,
                "custom_analysis_data": { "email": "jane@example.com", "first_name": "Jane" } }
        }
    })
    .to_string();
    let headers = official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": body }));
    let (status, text) = hub
        .post("/hooks/abc-healthcare/retell", &headers, body.as_bytes())
        .await;
    assert_eq!(status, 200, "{text}");

    wait_for(30, "all four actions", || async {
        ["resend", "twilio", "hubspot", "zapier"]
            .iter()
            .all(|p| !of(&log, p).is_empty())
            .then_some(())
    })
    .await;

    let email = of(&log, "resend");
    let sent: Value = serde_json::from_str(&email[0].2).unwrap();
    assert!(
        sent["to"].to_string().contains("jane@example.com"),
        "{sent}"
    );
    assert_eq!(sent["subject"], "Thank you for calling ABC Healthcare");
    assert!(
        sent["text"].as_str().unwrap().contains("Booked a check-up"),
        "{sent}"
    );
    assert!(
        sent["from"]
            .as_str()
            .unwrap()
            .contains("care@abc-healthcare.example")
    );
    assert!(
        email[0].1.get("idempotency-key").is_some(),
        "the email carries an idempotency key"
    );
    assert_eq!(
        email[0].1["authorization"], "Bearer re_demo_abc_healthcare_00000000",
        "the host attached the sealed key"
    );

    let sms = of(&log, "twilio");
    let form: Vec<(String, String)> = form_urlencoded::parse(sms[0].2.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), "+15551234567");
    assert_eq!(field("From"), "+15005550006");
    assert!(field("Body").contains("Thanks for calling ABC Healthcare"));
    assert!(field("StatusCallback").starts_with(&format!(
        "{}/hooks/abc-healthcare/twilio/status",
        hub.base()
    )));

    let crm: Value = serde_json::from_str(&of(&log, "hubspot")[0].2).unwrap();
    assert_eq!(crm["inputs"][0]["idProperty"], "email");
    assert_eq!(crm["inputs"][0]["id"], "jane@example.com");
    assert!(
        crm["inputs"][0]["properties"]["message"]
            .as_str()
            .unwrap()
            .contains("Booked a check-up"),
        "{crm}"
    );

    let zap = of(&log, "zapier");
    assert!(
        zap[0].2.contains("call_chain_0001"),
        "the Zap gets the call: {}",
        zap[0].2
    );

    // The provider retries the webhook, and the operator replays the delivery: nothing acts twice.
    let (status, text) = hub
        .post("/hooks/abc-healthcare/retell", &headers, body.as_bytes())
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("duplicate"), "{text}");
    let id = hub.deliveries(Some("abc-healthcare")).await[0]["id"]
        .as_i64()
        .unwrap();
    let (ok, out, err) = hub.command(&["replay", "--delivery", &id.to_string()], Some(DEMO_KEY));
    assert!(ok, "{out}{err}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for provider in ["resend", "twilio", "hubspot", "zapier"] {
        assert_eq!(of(&log, provider).len(), 1, "{provider} acted once");
    }

    // What kept them from acting twice are idempotency markers (`kv-set-marker`), which retention
    // deletes with the finished jobs instead of keeping them for ever.
    let db = rusqlite::Connection::open_with_flags(
        hub.dir.path().join("data/hub.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let marked: Vec<String> = db
        .prepare(
            "SELECT DISTINCT connector FROM kv
             WHERE tenant = 'abc-healthcare' AND marker_at IS NOT NULL ORDER BY connector",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(marked, ["hubspot", "resend", "twilio", "zapier"]);
}
