//! `hub connect` for Twilio, through the real binary: a tenant with only its Account SID,
//! number and Auth Token runs `hub connect`; the connector finds the number at a stand-in for
//! Twilio's IncomingPhoneNumbers API and points its `SmsUrl` (by POST) at the hub's `sms` route.
//! The number's `StatusCallback` is its voice call status URL, not a message one: the tenant's
//! own call-status URL there is never touched, by `hub connect` or by `--undo`. Twilio signs
//! with the Auth Token the tenant already has, so nothing is kept (`hub.toml` is not rewritten)
//! and a message Twilio sends to the registered URL, signed by the official `twilio` SDK, is
//! accepted at once. A second `hub connect` changes nothing; `--undo` clears the `SmsUrl` that
//! still points at the hub.
//!
//! The spec, `twilio_api_v2010.json`, covers both endpoints (`ListIncomingPhoneNumber`,
//! `UpdateIncomingPhoneNumber`): `assert_spec_accepts` checks each request's operation and
//! headers. It validates JSON bodies only and these are forms, so the stand-in checks the
//! query and form by hand against the operation's parameters and
//! `UpdateIncomingPhoneNumberRequest` (known fields, `http-method` enums, `uri` formats). The
//! one value the spec does not describe is the empty `SmsUrl` that clears the URL
//! (`format: uri`; Twilio takes an empty value as "none"): it is accepted for that one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::util::*;

const ACCOUNT: &str = "AC5ef8732a3c49700934481addd5ce1659";
const TOKEN: &str = "4b7c2e9a0d1f3e5a6b8c9d0e1f2a3b4c";
const NUMBER: &str = "+14155550100";
/// The tenant's number.
const PN: &str = "PN2a0747eba6abf96b7e3c3ff0b4530f6e";
/// Another number of the account, pointing elsewhere: never touched.
const PN_OTHER: &str = "PN7d1b6f0c3e4a5b6c7d8e9f0a1b2c3d4e";
/// The tenant's own voice call status URL, the `StatusCallback` of its number: never touched.
const CALLS: &str = "https://acme.test/call-status";
const LIST: &str = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json";
const ONE: &str = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json";

/// The stand-in's numbers (by SID), every request it saw, the updates it applied, and what
/// the spec refuses in the queries and forms.
#[derive(Default)]
struct Twilio {
    spec: Value,
    numbers: BTreeMap<String, Value>,
    seen: Vec<Value>,
    updates: Vec<(String, Vec<(String, String)>)>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Twilio>>;

/// An IncomingPhoneNumber as Twilio answers it (`status_callback`: its voice call status URL).
fn number(sid: &str, phone: &str, sms_url: &str, status_callback: &str) -> Value {
    json!({
        "account_sid": ACCOUNT, "sid": sid, "phone_number": phone, "friendly_name": phone,
        "api_version": "2010-04-01", "beta": false,
        "capabilities": {"voice": true, "sms": true, "mms": true, "fax": false},
        "sms_application_sid": "", "sms_fallback_method": "POST", "sms_fallback_url": "",
        "sms_method": "POST", "sms_url": sms_url,
        "status_callback": status_callback, "status_callback_method": "POST",
        "voice_application_sid": "", "voice_method": "POST", "voice_url": "https://acme.test/voice",
        "status": "in-use", "type": "local",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers/{sid}.json"),
    })
}

/// Twilio's 401 unless the path's account and the Basic credentials are the tenant's.
fn refused(account: &str, headers: &HeaderMap) -> Option<Response> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if account == ACCOUNT && auth == format!("Basic {basic}") {
        return None;
    }
    let body = json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401});
    Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
}

fn note(api: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap) {
    let request =
        json!({ "method": method.as_str(), "path": uri.path(), "headers": header_json(headers) });
    api.lock().unwrap().seen.push(request);
}

fn is_phone(v: &str) -> bool {
    v.len() > 7 && v.starts_with('+') && v[1..].bytes().all(|b| b.is_ascii_digit())
}

/// What the spec refuses in `pairs`, checked against `props` (`name` -> schema).
fn check(
    what: &str,
    pairs: &[(String, String)],
    props: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let Some(schema) = props.get(k) else {
            out.push(format!("{what}: `{k}` is not a parameter"));
            continue;
        };
        if pairs.iter().filter(|(o, _)| o == k).count() > 1 {
            out.push(format!("{what}: `{k}` repeated"));
        }
        let clearing = v.is_empty() && k == "SmsUrl";
        let ok = match (schema["format"].as_str(), schema["type"].as_str()) {
            _ if schema["enum"].is_array() => schema["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == v.as_str()),
            (Some("uri"), _) => clearing || url::Url::parse(v).is_ok(),
            (Some("phone-number"), _) => is_phone(v),
            (_, Some("integer")) => v.parse::<i64>().is_ok_and(|n| {
                n >= schema["minimum"].as_i64().unwrap_or(i64::MIN)
                    && n <= schema["maximum"].as_i64().unwrap_or(i64::MAX)
            }),
            _ if schema["pattern"].is_string() => v.len() == 34,
            _ => true,
        };
        if !ok {
            out.push(format!("{what}: `{k}` = `{v}` does not fit {schema}"));
        }
    }
    out
}

async fn list(
    State(api): State<Shared>,
    Path(account): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&api, &method, &uri, &headers);
    if let Some(r) = refused(&account, &headers) {
        return r;
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut s = api.lock().unwrap();
    let params: serde_json::Map<String, Value> = s.spec["paths"][LIST]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["schema"].clone()))
        .collect();
    let problems = check("list query", &query, &params);
    s.violations.extend(problems);
    // Twilio's filter matches partial numbers.
    let wanted = query
        .iter()
        .find(|(k, _)| k == "PhoneNumber")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let found: Vec<Value> = s
        .numbers
        .values()
        .filter(|n| n["phone_number"].as_str().unwrap().contains(&wanted))
        .cloned()
        .collect();
    let page_uri = format!("{}?{}", uri.path(), uri.query().unwrap_or_default());
    axum::Json(json!({
        "incoming_phone_numbers": found, "page": 0, "page_size": 50, "start": 0,
        "end": found.len().saturating_sub(1), "first_page_uri": page_uri, "uri": page_uri,
        "next_page_uri": null, "previous_page_uri": null,
    }))
    .into_response()
}

async fn one(
    State(api): State<Shared>,
    Path((account, file)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    note(&api, &method, &uri, &headers);
    if let Some(r) = refused(&account, &headers) {
        return r;
    }
    let sid = file.strip_suffix(".json").unwrap_or(&file).to_string();
    let mut s = api.lock().unwrap();
    if !s.numbers.contains_key(&sid) {
        let body = json!({"code": 20404, "message": format!("The requested resource {} was not found", uri.path()), "status": 404});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    if method == Method::POST {
        let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let ctype = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ctype.starts_with("application/x-www-form-urlencoded") {
            s.violations.push(format!("update content-type `{ctype}`"));
        }
        let schema = &s.spec["paths"][ONE]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            ["schema"]["properties"];
        let problems = check("update form", &form, schema.as_object().unwrap());
        s.violations.extend(problems);
        let n = s.numbers.get_mut(&sid).unwrap();
        for (k, v) in &form {
            let field = match k.as_str() {
                "SmsUrl" => "sms_url",
                "SmsMethod" => "sms_method",
                "StatusCallback" => "status_callback",
                "StatusCallbackMethod" => "status_callback_method",
                _ => continue,
            };
            n[field] = json!(v);
        }
        s.updates.push((sid.clone(), form));
    }
    axum::Json(s.numbers[&sid].clone()).into_response()
}

async fn connect(hub: &TestHub, undo: bool) {
    hub_connect(hub, "acme", "twilio", undo);
}

/// Waits until `count` jobs named `name` are done (failing at once on a dead one).
async fn jobs_done(hub: &TestHub, name: &str, count: usize) {
    wait_for(30, &format!("{count} {name} job(s) done"), || async {
        let all = hub
            .api("/jobs?tenant=acme&connector=twilio&limit=500")
            .await["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named: Vec<&Value> = all.iter().filter(|j| j["task"]["name"] == name).collect();
        if let Some(dead) = named.iter().find(|j| j["state"] == "dead") {
            panic!("{name} died: {}", dead["last_error"]);
        }
        (named.iter().filter(|j| j["state"] == "done").count() == count).then_some(())
    })
    .await;
}

/// Posts an inbound message to `url` (a full hub URL), signed by the official twilio SDK with
/// `token`; (status, body).
async fn inbound(hub: &TestHub, url: &str, token: &str) -> (u16, String) {
    let params = [
        ("MessageSid", "SM9a0e8a2b3c4d5e6f708192a3b4c5d6e7"),
        ("SmsSid", "SM9a0e8a2b3c4d5e6f708192a3b4c5d6e7"),
        ("AccountSid", ACCOUNT),
        ("From", "+14155550111"),
        ("To", NUMBER),
        ("Body", "Is parking available?"),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ];
    let object: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let spec = json!({"scheme": "twilio", "secret": token, "url": url, "params": object});
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/x-www-form-urlencoded".into()));
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        body.append_pair(k, v);
    }
    let mut req = hub.client.post(url).body(body.finish());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_connect_points_the_tenants_twilio_number_at_the_hub_once_and_undoes_it() {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/provider-specs/twilio_api_v2010.json"
    ))
    .unwrap();
    let api: Shared = Arc::new(Mutex::new(Twilio {
        spec: serde_json::from_str(&spec).unwrap(),
        ..Default::default()
    }));
    {
        let mut s = api.lock().unwrap();
        // A new number answers with Twilio's demo reply; its calls report to the tenant.
        let mut mine = number(
            PN,
            NUMBER,
            "https://demo.twilio.com/welcome/sms/reply",
            CALLS,
        );
        mine["status_callback_method"] = json!("GET");
        let other = number(
            PN_OTHER,
            "+14155550177",
            "https://other.test/sms",
            "https://other.test/status",
        );
        s.numbers.insert(PN.into(), mine);
        s.numbers.insert(PN_OTHER.into(), other);
    }
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
            axum::routing::get(list),
        )
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}",
            axum::routing::get(one).post(one),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.twilio]\nbuiltin = true\nallow_hosts = [\"https://api.twilio.com\"]\n\
         stand_ins = {{ \"https://api.twilio.com\" = \"http://127.0.0.1:{port}\" }}\n\n\
         [tenants.acme]\nname = \"Acme Dental\"\n[tenants.acme.connectors.twilio]\n\
         config = {{ account_sid = \"{ACCOUNT}\", from = \"{NUMBER}\" }}\n\
         [tenants.acme.connectors.twilio.credentials]\nauth_token = \"{token}\"\n",
        server = hub.server_section(),
        token = hub.seal_tenant("acme", "twilio", "auth_token", TOKEN),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    let file_before = std::fs::read_to_string(hub.config_path()).unwrap();
    let sms_url = format!("{}/hooks/acme/twilio/sms", hub.base());

    connect(&hub, false).await;
    jobs_done(&hub, "register_webhooks", 1).await;
    let registered = {
        let s = api.lock().unwrap();
        let n = &s.numbers[PN];
        assert_eq!(
            (n["sms_url"].as_str(), n["sms_method"].as_str()),
            (Some(sms_url.as_str()), Some("POST"))
        );
        // The number's voice call status URL is the tenant's, as it was.
        assert_eq!(
            (
                n["status_callback"].as_str(),
                n["status_callback_method"].as_str()
            ),
            (Some(CALLS), Some("GET"))
        );
        assert_eq!(s.updates.len(), 1, "one update: {:?}", s.updates);
        assert_eq!(
            s.updates[0],
            (
                PN.to_string(),
                vec![
                    ("SmsUrl".to_string(), sms_url.clone()),
                    ("SmsMethod".to_string(), "POST".to_string()),
                ]
            )
        );
        assert_eq!(s.numbers[PN_OTHER]["sms_url"], "https://other.test/sms");
        n["sms_url"].as_str().unwrap().to_string()
    };
    // Nothing to keep: the Auth Token the file already has verifies Twilio's webhooks.
    assert_eq!(
        std::fs::read_to_string(hub.config_path()).unwrap(),
        file_before,
        "hub.toml rewritten"
    );
    let record = hub.records("acme", "webhook").await;
    assert_eq!(record.len(), 1);
    assert_eq!(record[0]["key"], PN);
    assert_eq!(record[0]["data"]["sms_url"], sms_url.as_str());
    assert!(
        record[0]["data"].get("status_callback").is_none(),
        "{}",
        record[0]
    );
    assert!(
        !record[0].to_string().contains(TOKEN),
        "the Auth Token reached a record"
    );

    // Twilio calls the registered URL, signing with the Auth Token: accepted, TwiML answered.
    let (status, text) = inbound(&hub, &registered, TOKEN).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<Response"), "{text}");
    let wrong = inbound(&hub, &registered, "0000000000000000ffffffffffffffff").await;
    assert_eq!(wrong.0, 401);

    // Again: found as registered, nothing updated.
    connect(&hub, false).await;
    jobs_done(&hub, "register_webhooks", 2).await;
    {
        let s = api.lock().unwrap();
        assert_eq!(s.updates.len(), 1, "updated twice: {:?}", s.updates);
        let searches = s
            .seen
            .iter()
            .filter(|r| {
                r["method"] == "GET"
                    && r["path"]
                        .as_str()
                        .unwrap()
                        .ends_with("IncomingPhoneNumbers.json")
            })
            .count();
        assert_eq!(searches, 2);
    }
    assert_eq!(hub.records("acme", "webhook").await.len(), 1);

    // Undoing clears the hub's SmsUrl and nothing else: the call status URL stays.
    connect(&hub, true).await;
    jobs_done(&hub, "unregister_webhooks", 1).await;
    {
        let s = api.lock().unwrap();
        let n = &s.numbers[PN];
        assert_eq!(n["sms_url"], "");
        assert_eq!(n["status_callback"], CALLS);
        assert_eq!(n["status_callback_method"], "GET");
        assert_eq!(s.updates.len(), 2, "{:?}", s.updates);
        assert_eq!(
            s.updates.last().unwrap(),
            &(PN.to_string(), vec![("SmsUrl".to_string(), String::new())])
        );
        assert!(
            s.updates
                .iter()
                .flat_map(|(_, form)| form)
                .all(|(k, _)| !k.starts_with("StatusCallback")),
            "a StatusCallback was sent: {:?}",
            s.updates
        );
        assert_eq!(s.numbers[PN_OTHER]["sms_url"], "https://other.test/sms");
        assert_eq!(
            s.numbers[PN_OTHER]["status_callback"],
            "https://other.test/status"
        );
    }
    assert!(hub.records("acme", "webhook").await.is_empty());
    assert!(!hub.log().contains(TOKEN), "the Auth Token reached the log");

    let (seen, violations) = {
        let s = api.lock().unwrap();
        (s.seen.clone(), s.violations.clone())
    };
    assert!(violations.is_empty(), "spec violations: {violations:?}");
    assert!(
        seen.iter()
            .all(|r| r["headers"]["authorization"].is_string()),
        "every request authenticated"
    );
    tokio::task::block_in_place(|| assert_spec_accepts("twilio_api_v2010.json", &seen));
}
