//! The Twilio connector through the real binary: inbound messages and status callbacks signed
//! with the official `twilio` SDK, TwiML answers, `message` and `opt_out` records, and
//! `send_message` against a local stand-in for Twilio's API that checks every request against
//! `tests/provider-specs/twilio_api_v2010.json`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::resend::{events, job_ends, record_where, run_action};
use crate::util::*;

const ACCOUNT: &str = "AC5ef8732a3c49700934481addd5ce1659";
const TOKEN: &str = "9f2c1e0b7a6d5c4b3a29180f7e6d5c4b";
const NUMBER: &str = "+14155550100";
const CREATE: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";

/// What the stand-in answers next: a scripted failure, or success after a delay.
enum Answer {
    Fail(u16, Option<&'static str>, Value),
    SlowSuccess(Duration),
}

/// The stand-in's state: the spec, the script, every request's time, the messages accepted
/// (SID and form), and spec violations.
#[derive(Default)]
struct Mock {
    spec: Value,
    script: VecDeque<Answer>,
    seen: Vec<Instant>,
    accepted: Vec<(String, Vec<(String, String)>)>,
    violations: Vec<String>,
}
type Shared = Arc<Mutex<Mock>>;

fn is_address(v: &str) -> bool {
    let n = v.strip_prefix("whatsapp:").unwrap_or(v);
    n.len() > 7 && n.starts_with('+') && n[1..].bytes().all(|b| b.is_ascii_digit())
}

/// What is wrong with a create-message request, per the spec (path, auth, form fields).
fn violations(spec: &Value, account: &str, auth: &str, form: &[(String, String)]) -> Vec<String> {
    let post = &spec["paths"][CREATE]["post"];
    let mut out = Vec::new();
    let pattern = post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "AccountSid")
        .unwrap()["schema"]["pattern"]
        .clone();
    assert_eq!(
        pattern, "^AC[0-9a-fA-F]{32}$",
        "the check below implements this pattern"
    );
    if !(account.len() == 34
        && account.starts_with("AC")
        && account[2..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        out.push(format!("AccountSid `{account}` does not match {pattern}"));
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{TOKEN}"));
    if auth != format!("Basic {basic}") {
        out.push(format!(
            "authorization `{auth}` is not Basic AccountSid:AuthToken"
        ));
    }
    let schema = &post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    for r in schema["required"].as_array().unwrap() {
        if !form.iter().any(|(k, _)| k == r.as_str().unwrap()) {
            out.push(format!("missing required `{r}`"));
        }
    }
    if !form
        .iter()
        .any(|(k, _)| k == "From" || k == "MessagingServiceSid")
    {
        out.push("neither `From` nor `MessagingServiceSid`".into());
    }
    for (k, v) in form {
        let Some(prop) = schema["properties"].get(k) else {
            out.push(format!("`{k}` is not a create-message parameter"));
            continue;
        };
        if prop["type"] != "array" && form.iter().filter(|(o, _)| o == k).count() > 1 {
            out.push(format!("`{k}` repeated"));
        }
        let format = prop["format"].as_str().or(prop["items"]["format"].as_str());
        let ok = match format {
            Some("uri") => url::Url::parse(v).is_ok(),
            Some("phone-number") => is_address(v),
            _ if prop["pattern"].is_string() => v.len() == 34,
            _ => true,
        };
        if !ok {
            out.push(format!("`{k}` = `{v}` is not a {format:?}"));
        }
    }
    out
}

async fn create(
    State(mock): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (answer, sid, spec_example) = {
        let mut m = mock.lock().unwrap();
        m.seen.push(Instant::now());
        let mut problems = violations(&m.spec, &account, &header("authorization"), &form);
        if !header("content-type").starts_with("application/x-www-form-urlencoded") {
            problems.push("content-type is not a form".into());
        }
        if !problems.is_empty() {
            m.violations.extend(problems.iter().cloned());
            let body = json!({"code": 21000, "message": problems.join("; "), "status": 400});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        let answer = m.script.pop_front();
        if let Some(Answer::Fail(status, retry_after, body)) = answer {
            let mut resp =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            if let Some(r) = retry_after {
                resp.headers_mut().insert("retry-after", r.parse().unwrap());
            }
            return resp;
        }
        let sid = format!("SM{:032x}", m.accepted.len() + 1);
        m.accepted.push((sid.clone(), form.clone()));
        let example = m.spec["paths"][CREATE]["post"]["responses"]["201"]["content"]["application/json"]["examples"]["create"]["value"].clone();
        (answer, sid, example)
    };
    if let Some(Answer::SlowSuccess(d)) = answer {
        tokio::time::sleep(d).await;
    }
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| json!(v))
            .unwrap_or(Value::Null)
    };
    let mut message = spec_example;
    for (k, v) in [
        ("sid", json!(sid)),
        ("account_sid", json!(account)),
        ("to", field("To")),
        ("from", field("From")),
        ("body", field("Body")),
        ("messaging_service_sid", field("MessagingServiceSid")),
        ("status", json!("queued")),
    ] {
        message[k] = v;
    }
    (StatusCode::CREATED, axum::Json(message)).into_response()
}

async fn started(timeout_ms: u64) -> (TestHub, Shared) {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/provider-specs/twilio_api_v2010.json"
    ))
    .unwrap();
    let mock: Shared = Arc::new(Mutex::new(Mock {
        spec: serde_json::from_str(&spec).unwrap(),
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            axum::routing::post(create),
        )
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut hub = TestHub::new();
    let config = format!(
        r#"{server}
[connectors.twilio]
builtin = true
allow_hosts = ["https://api.twilio.com"]
stand_ins = {{ "https://api.twilio.com" = "http://127.0.0.1:{port}" }}
timeout_ms = {timeout_ms}

[tenants.acme]
name = "Acme Dental"
[tenants.acme.connectors.twilio]
config = {{ account_sid = "{ACCOUNT}", from = "{NUMBER}", auto_reply = "Thanks! We'll text you back soon." }}
[tenants.acme.connectors.twilio.credentials]
auth_token = "{token}"
"#,
        server = hub.server_section(),
        token = hub.seal_tenant("acme", "twilio", "auth_token", TOKEN),
    );
    hub.write_config(&config);
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    (hub, mock)
}

/// Posts a form to `url` (a full hub URL) signed by the official twilio SDK with `token`;
/// (status, content type, body).
async fn post_form(
    hub: &TestHub,
    url: &str,
    params: &[(&str, &str)],
    token: &str,
) -> (u16, String, String) {
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
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

fn inbound<'a>(sid: &'a str, from: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", ACCOUNT),
        ("From", from),
        ("To", NUMBER),
        ("Body", body),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
}

const EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_inbound_messages_get_twiml_records_and_stop_blocks_sending() {
    let (hub, mock) = started(10_000).await;
    let sms_url = format!("{}/hooks/acme/twilio/sms", hub.base());
    let sid = "SM1f0e8a2b3c4d5e6f708192a3b4c5d6e7";
    let mut sms = inbound(sid, "+14155550111", "Can I move my appointment to Tuesday?");
    sms.extend([
        ("NumMedia", "1"),
        (
            "MediaUrl0",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        ),
        ("MediaContentType0", "image/jpeg"),
    ]);
    sms.retain(|(k, v)| *k != "NumMedia" || *v == "1");
    let (status, ctype, text) = post_form(&hub, &sms_url, &sms, TOKEN).await;
    assert_eq!((status, ctype.as_str()), (200, "text/xml"), "{text}");
    assert_eq!(
        text,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks! We&apos;ll text you back soon.</Message></Response>"#
    );
    // Twilio retries: the same answer, stored once.
    assert_eq!(post_form(&hub, &sms_url, &sms, TOKEN).await.0, 200);
    // Wrong token, altered body, no signature: 401.
    assert_eq!(
        post_form(&hub, &sms_url, &sms, "0000000000000000ffffffffffffffff")
            .await
            .0,
        401
    );
    let spec = json!({"scheme": "twilio", "secret": TOKEN, "url": sms_url, "params": {"MessageSid": "SMx", "From": "+1", "Body": "hi"}});
    let mut headers = tokio::task::block_in_place(|| official_sign(&spec));
    headers.push(("content-type", "application/x-www-form-urlencoded".into()));
    assert_eq!(
        hub.post(
            "/hooks/acme/twilio/sms",
            &headers,
            b"MessageSid=SMx&From=%2B1&Body=bye"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        hub.post(
            "/hooks/acme/twilio/sms",
            &[],
            b"MessageSid=SMx&From=%2B1&Body=hi"
        )
        .await
        .0,
        401
    );

    let m = record_where(&hub, "message", sid, |_| true).await;
    assert_eq!(
        (
            m["channel"].as_str(),
            m["direction"].as_str(),
            m["from"].as_str()
        ),
        (Some("sms"), Some("inbound"), Some("+14155550111"))
    );
    assert_eq!(m["media"][0]["content_type"], "image/jpeg");
    assert_eq!(m["body"], "Can I move my appointment to Tuesday?");
    // Found by the sender's number, as the tenant's contacts are.
    let by_sender = hub
        .api("/tenants/acme/records?kind=message&lookup=phone:%2B14155550111")
        .await;
    assert!(
        by_sender["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == sid),
        "{by_sender}"
    );
    let received = events(&hub, "message.received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["media_urls"].as_array().unwrap().len(), 1);
    assert_eq!(
        hub.deliveries(Some("acme")).await.len(),
        1,
        "the retry was stored once"
    );

    // WhatsApp: whatsapp: addresses, profile name and WaId.
    let mut wa = inbound(
        "SM2f0e8a2b3c4d5e6f708192a3b4c5d6e7",
        "whatsapp:+14155550122",
        "Hola",
    );
    wa.retain(|(k, _)| *k != "To");
    wa.extend([
        ("To", "whatsapp:+14155550100"),
        ("ProfileName", "Ana"),
        ("WaId", "14155550122"),
    ]);
    assert_eq!(post_form(&hub, &sms_url, &wa, TOKEN).await.0, 200);
    let m = record_where(
        &hub,
        "message",
        "SM2f0e8a2b3c4d5e6f708192a3b4c5d6e7",
        |_| true,
    )
    .await;
    assert_eq!(
        (
            m["channel"].as_str(),
            m["profile_name"].as_str(),
            m["wa_id"].as_str()
        ),
        (Some("whatsapp"), Some("Ana"), Some("14155550122"))
    );

    // STOP: no auto-reply, an opt_out record, and send_message refuses.
    let stopper = "+14155550133";
    let (status, _, text) = post_form(
        &hub,
        &sms_url,
        &inbound("SM3f0e8a2b3c4d5e6f708192a3b4c5d6e7", stopper, "Stop"),
        TOKEN,
    )
    .await;
    assert_eq!((status, text.as_str()), (200, EMPTY));
    let o = record_where(&hub, "opt_out", stopper, |_| true).await;
    assert_eq!(
        (o["keyword"].as_str(), o["channel"].as_str()),
        (Some("STOP"), Some("sms"))
    );
    assert_eq!(
        events(&hub, "recipient.opted_out").await[0]["address"],
        stopper
    );
    run_action(
        &hub,
        "twilio",
        "send_message",
        json!({"to": "+1 415 555 0133", "body": "Reminder"}),
        "to-stopper",
    );
    let (_, error) = job_ends(&hub, "twilio", "to-stopper", "dead").await;
    assert!(error.contains("opted out"), "{error}");
    assert!(
        mock.lock().unwrap().seen.is_empty(),
        "nothing reached Twilio"
    );
    // START opts back in.
    post_form(
        &hub,
        &sms_url,
        &inbound("SM4f0e8a2b3c4d5e6f708192a3b4c5d6e7", stopper, "START"),
        TOKEN,
    )
    .await;
    wait_for(20, "the opt-out removed", || async {
        hub.records("acme", "opt_out")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(events(&hub, "recipient.opted_in").await.len(), 1);
    run_action(
        &hub,
        "twilio",
        "send_message",
        json!({"to": stopper, "body": "Welcome back"}),
        "after-start",
    );
    job_ends(&hub, "twilio", "after-start", "done").await;
    assert_eq!(mock.lock().unwrap().accepted.len(), 1);
}

fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_send_message_is_spec_valid_retried_idempotent_and_tracked() {
    let (hub, mock) = started(10_000).await;
    let input = json!({"to": "+14155550144", "body": "See you Monday at 10am.", "media_url": "https://acme.test/map.png"});
    mock.lock().unwrap().script.push_back(Answer::Fail(
        429,
        Some("1"),
        json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
    ));
    run_action(&hub, "twilio", "send_message", input.clone(), "k1");
    assert_eq!(job_ends(&hub, "twilio", "k1", "done").await.0, 2);
    let (sid, form) = {
        let m = mock.lock().unwrap();
        assert_eq!((m.seen.len(), m.accepted.len()), (2, 1));
        assert!(
            m.seen[1] - m.seen[0] >= Duration::from_millis(950),
            "retry-after honoured"
        );
        m.accepted[0].clone()
    };
    assert_eq!(
        (form_value(&form, "To"), form_value(&form, "From")),
        (Some("+14155550144"), Some(NUMBER))
    );
    assert_eq!(
        form_value(&form, "MediaUrl"),
        Some("https://acme.test/map.png")
    );
    let callback = form_value(&form, "StatusCallback").unwrap().to_string();
    assert!(
        callback.starts_with(&format!(
            "{}/hooks/acme/twilio/status?hub_send=",
            hub.base()
        )),
        "{callback}"
    );
    let m = record_where(&hub, "message", &sid, |_| true).await;
    assert_eq!(
        (m["status"].as_str(), m["idempotency_key"].as_str()),
        (Some("queued"), Some("action:acme:twilio:k1"))
    );
    assert_eq!(events(&hub, "message.sent").await.len(), 1);
    assert!(
        run_action(&hub, "twilio", "send_message", input.clone(), "k1").contains("already queued")
    );

    // Status callbacks: delivered, then a late `sent`; a retry of one is stored once.
    let status = |s: &'static str| {
        vec![
            ("MessageSid", sid.as_str()),
            ("MessageStatus", s),
            ("AccountSid", ACCOUNT),
            ("From", NUMBER),
            ("To", "+14155550144"),
            ("ApiVersion", "2010-04-01"),
        ]
    };
    assert_eq!(
        post_form(&hub, &callback, &status("delivered"), TOKEN)
            .await
            .0,
        200
    );
    record_where(&hub, "message", &sid, |d| d["status"] == "delivered").await;
    let (code, _, text) = post_form(&hub, &callback, &status("sent"), TOKEN).await;
    assert_eq!(code, 200, "{text}");
    assert!(
        post_form(&hub, &callback, &status("delivered"), TOKEN)
            .await
            .2
            .contains("duplicate")
    );
    assert_eq!(
        post_form(
            &hub,
            &callback,
            &status("read"),
            "0000000000000000ffffffffffffffff"
        )
        .await
        .0,
        401
    );
    let m = record_where(&hub, "message", &sid, |d| {
        d["statuses_seen"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(events(&hub, "message.delivered").await.len(), 1);

    // 500 then success; 400 dead-lettered with Twilio's message.
    mock.lock().unwrap().script.push_back(Answer::Fail(
        500,
        None,
        json!({"code": 20500, "message": "Internal Server Error", "status": 500}),
    ));
    run_action(&hub, "twilio", "send_message", input.clone(), "k2");
    assert_eq!(job_ends(&hub, "twilio", "k2", "done").await.0, 2);
    let message = "The 'To' number +14155550144 is not a valid phone number.";
    mock.lock().unwrap().script.push_back(Answer::Fail(400, None, json!({"code": 21211, "message": message, "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})));
    run_action(&hub, "twilio", "send_message", input, "k3");
    let (attempts, error) = job_ends(&hub, "twilio", "k3", "dead").await;
    assert_eq!(attempts, 1);
    assert!(
        error.contains(message) && error.contains("21211"),
        "{error}"
    );

    // WhatsApp: whatsapp: on both ends; an undelivered callback keeps its error code.
    run_action(
        &hub,
        "twilio",
        "send_message",
        json!({"to": "whatsapp:+14155550155", "body": "Hola"}),
        "k4",
    );
    job_ends(&hub, "twilio", "k4", "done").await;
    let (wa_sid, wa_form) = mock.lock().unwrap().accepted.last().unwrap().clone();
    assert_eq!(
        (form_value(&wa_form, "To"), form_value(&wa_form, "From")),
        (Some("whatsapp:+14155550155"), Some("whatsapp:+14155550100"))
    );
    let wa_callback = form_value(&wa_form, "StatusCallback").unwrap().to_string();
    let undelivered = [
        ("MessageSid", wa_sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "63016"),
        ("AccountSid", ACCOUNT),
    ];
    assert_eq!(
        post_form(&hub, &wa_callback, &undelivered, TOKEN).await.0,
        200
    );
    let m = record_where(&hub, "message", &wa_sid, |d| d["status"] == "undelivered").await;
    assert_eq!(
        (m["channel"].as_str(), m["error_code"].as_str()),
        (Some("whatsapp"), Some("63016"))
    );
    assert_eq!(events(&hub, "message.failed").await.len(), 1);
    let m = mock.lock().unwrap();
    assert_eq!(m.accepted.len(), 3);
    assert!(
        m.violations.is_empty(),
        "spec violations: {:?}",
        m.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_send_whose_answer_was_lost_is_not_sent_again() {
    // Twilio accepts the message but answers too late: the attempt times out and its writes
    // are discarded. The status callback carries the key's hash, so the retry finds the SID.
    let (hub, mock) = started(2_000).await;
    mock.lock()
        .unwrap()
        .script
        .push_back(Answer::SlowSuccess(Duration::from_secs(5)));
    run_action(
        &hub,
        "twilio",
        "send_message",
        json!({"to": "+14155550166", "body": "Your code is 1234"}),
        "lost",
    );
    let (sid, form) = wait_for(20, "Twilio accepted it", || async {
        mock.lock().unwrap().accepted.first().cloned()
    })
    .await;
    let callback = form_value(&form, "StatusCallback").unwrap().to_string();
    let sent = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "sent"),
        ("AccountSid", ACCOUNT),
        ("To", "+14155550166"),
        ("From", NUMBER),
    ];
    assert_eq!(post_form(&hub, &callback, &sent, TOKEN).await.0, 200);
    let (attempts, _) = job_ends(&hub, "twilio", "lost", "done").await;
    assert!(attempts >= 2, "the first attempt failed");
    let m = record_where(&hub, "message", &sid, |d| {
        d["idempotency_key"] == "action:acme:twilio:lost"
    })
    .await;
    assert_eq!(
        (m["status"].as_str(), m["body"].as_str()),
        (Some("sent"), Some("Your code is 1234"))
    );
    let mock = mock.lock().unwrap();
    assert_eq!(
        (mock.seen.len(), mock.accepted.len()),
        (1, 1),
        "one request, one message"
    );
}
