//! The operator console in a real headless Chromium, on the shipped `hub.toml`: log in, watch a
//! signed Retell webhook appear live, open it, replay it (a double submit replays once),
//! bulk-replay the tenant's dead letters, see its calls-per-day chart; hostile payloads render
//! as inert text; a tenant's token opens a read-only console of its tenant alone; cross-site
//! writes and guessed sessions are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use fantoccini::Locator::Css;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::chain::{RETELL_KEY, shipped_hub};
use crate::util::*;

pub(crate) const ADMIN: &str = "demo-admin-token";
const DASHBOARD: &str = "hubtok_demo_abc_healthcare_dashboard";

/// `(path, authorization)` of each request the stand-in refused.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A provider stand-in that refuses every request with a 400 (for Twilio, error 21211: an
/// invalid number), so the SMS follow-up of the shipped config is dead-lettered at once.
pub(crate) async fn refusing_stand_in() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().push((uri.path().to_string(), auth.clone()));
                // Retell's list-agents, for the console's credentials check: the tenant's key only.
                if uri.path() == "/v2/list-agents" {
                    return if auth == format!("Bearer {RETELL_KEY}") {
                        (
                            StatusCode::OK,
                            axum::Json(json!({ "items": [{ "agent_id": "agent_abc_front_desk" }], "has_more": false })),
                        )
                    } else {
                        (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error_message": "Invalid API key" })))
                    };
                }
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({ "message": "refused by the test's stand-in <img src=x onerror=alert(7)>", "code": 21211 }),
                    ),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

pub(crate) fn call(call_id: &str, extra: Value) -> Value {
    let now = now_ms() as i64;
    let mut call = json!({
        "call_id": call_id, "agent_id": "agent_abc_front_desk", "call_status": "ended",
        "direction": "inbound", "from_number": "+14155550100", "to_number": "+14155550199",
        "start_timestamp": now - 95_000, "end_timestamp": now, "duration_ms": 95_000,
        "transcript": "Agent: ABC Healthcare, how can I help?\nUser: I would like to book a cleaning.",
        "call_analysis": { "call_summary": "The caller booked a cleaning.", "user_sentiment": "Positive",
                           "call_successful": true, "in_voicemail": false },
    });
    if let (Some(c), Some(e)) = (call.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    json!({ "event": "call_analyzed", "call": call })
}

/// Posts a Retell webhook for abc-healthcare signed with its demo key; the delivery id.
pub(crate) async fn send_call(hub: &TestHub, body: &Value) -> i64 {
    send_call_with(hub, body, &[]).await
}

/// [`send_call`] with extra request headers.
pub(crate) async fn send_call_with(
    hub: &TestHub,
    body: &Value,
    extra: &[(&'static str, String)],
) -> i64 {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = plugin_sdk::schemes::sign_retell(RETELL_KEY.as_bytes(), &bytes, now_ms());
    let mut headers = vec![
        ("x-retell-signature", sig),
        ("content-type", "application/json".into()),
    ];
    headers.extend_from_slice(extra);
    let (status, text) = hub
        .post("/hooks/abc-healthcare/retell", &headers, &bytes)
        .await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_i64()
        .unwrap()
}

pub(crate) async fn log_in(b: &Browser, base: &str, token: &str) {
    b.client.goto(&format!("{base}/console")).await.unwrap();
    b.wait_for("input#token", 10)
        .await
        .send_keys(token)
        .await
        .unwrap();
    b.client
        .find(Css("form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn dead_jobs(hub: &TestHub) -> usize {
    hub.api("/jobs?tenant=abc-healthcare&state=dead&limit=500")
        .await["jobs"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn an_operator_watches_a_webhook_arrive_opens_it_replays_it_and_bulk_replays_dead_letters() {
    let (port, seen) = refusing_stand_in().await;
    let hub = shipped_hub(port).await;
    let base = hub.base();
    let b = Browser::start("operator").await;
    let c = &b.client;

    // Any console page sends a stranger to the login page; a wrong token is refused there.
    log_in(&b, &base, "not-a-token").await;
    assert!(b.text(".error").await.contains("not one this hub accepts"));
    b.shot("login-refused").await;
    log_in(&b, &base, ADMIN).await;
    b.wait_for("table#log", 10).await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/deliveries")
    );

    // The live tail: a signed webhook shows up without a reload.
    c.find(Css("#live")).await.unwrap().click().await.unwrap();
    wait_for(10, "the tail to follow", || async {
        b.text("#live-state")
            .await
            .contains("following")
            .then_some(())
    })
    .await;
    let id = send_call(&hub, &call("call_console_1", json!({}))).await;
    b.wait_for(&format!("#log-rows a[href='/console/deliveries/{id}']"), 15)
        .await;
    assert!(
        b.text("#log-rows")
            .await
            .contains(":call_console_1:call_analyzed")
    );
    b.shot("log-live").await;

    // Filters live in the URL: another tenant's log has none of it.
    c.goto(&format!("{base}/console/deliveries?tenant=xyz-dental"))
        .await
        .unwrap();
    assert!(b.text("#log-rows").await.contains("No deliveries match"));
    c.goto(&format!(
        "{base}/console/deliveries?connector=retell&q={id}"
    ))
    .await
    .unwrap();
    b.shot("log-filtered").await;
    c.find(Css(&format!("a[href='/console/deliveries/{id}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The delivery: payload, headers, its jobs; the stand-in refused the route actions.
    let payload = b.wait_for("#payload", 10).await.text().await.unwrap();
    assert!(
        payload.contains("\"call_id\": \"call_console_1\""),
        "{payload}"
    );
    // Twilio's 400 (error 21211) is permanent: the SMS follow-up is dead-lettered at once.
    wait_for(20, "the SMS follow-up to be dead-lettered", || async {
        (dead_jobs(&hub).await >= 1).then_some(())
    })
    .await;
    c.refresh().await.unwrap();
    let page = b.text("main").await;
    assert!(page.contains("route: follow-up sms"), "{page}");
    assert!(
        page.contains("Twilio answered 400 (error 21211): refused by the test's stand-in"),
        "{page}"
    );
    assert!(page.contains("x-retell-signature"));
    b.shot("delivery").await;

    // What it wrote: the call, which reads as a call.
    c.find(Css("a[href$='/records/call/call_console_1']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let transcript = b.wait_for(".transcript", 10).await.text().await.unwrap();
    assert!(
        transcript.contains("I would like to book a cleaning."),
        "{transcript}"
    );
    assert!(
        b.text("dl.call")
            .await
            .contains("+14155550100 → +14155550199")
    );
    b.shot("call").await;
    c.back().await.unwrap();

    // Replay: two submissions of one form (a double click) replay once.
    b.wait_for("form.once", 10).await;
    let answers = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const f = document.querySelector('form.once');
             const body = new URLSearchParams(new FormData(f)).toString();
             const post = () => fetch(f.action, { method: 'POST', body,
                 headers: { 'content-type': 'application/x-www-form-urlencoded' } }).then(r => r.text());
             Promise.all([post(), post()]).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let answers: Vec<String> = serde_json::from_value(answers).unwrap();
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("queued again"))
            .count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.contains("Already replayed"))
            .count(),
        1,
        "{answers:?}"
    );
    let jobs = hub.api(&format!("/jobs?key_prefix=delivery:{id}")).await;
    let delivery_job = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["idempotency_key"] == format!("delivery:{id}"))
        .cloned()
        .unwrap();
    assert_eq!(
        delivery_job["replays"].as_array().unwrap().len(),
        1,
        "{delivery_job}"
    );

    // Bulk replay of the tenant's dead letters: a count, a confirmation, progress to the end.
    let dead = dead_jobs(&hub).await;
    c.goto(&format!("{base}/console/dead?tenant=abc-healthcare"))
        .await
        .unwrap();
    let count = b.text("#dead-count").await;
    assert!(
        count.starts_with(&format!("{dead} dead-lettered")),
        "{count} (API: {dead})"
    );
    c.find(Css("input[name=confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.shot("dead-letters").await;
    c.find(Css("form.confirm button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = wait_for(20, "the bulk replay to finish", || async {
        let s = b.text("#op-state").await;
        s.starts_with("Done").then_some(s)
    })
    .await;
    assert!(
        state.contains(&format!("{dead} of {dead} queued again")),
        "{state}"
    );
    b.shot("bulk-replay").await;

    // The tenant's calls per day: today's bar holds the answered call.
    c.goto(&format!("{base}/console/tenants/abc-healthcare"))
        .await
        .unwrap();
    let bars = c.find_all(Css("#calls-chart svg rect.s0")).await.unwrap();
    assert_eq!(bars.len(), 1, "one day with calls");
    let html = c.source().await.unwrap();
    let today = chrono_today();
    assert!(
        html.contains(&format!("{today}, answered: 1, not answered: 0")),
        "{html}"
    );
    b.shot("tenant").await;
    c.goto(&format!("{base}/console/tenants")).await.unwrap();
    assert!(b.text("table.status").await.contains("abc-healthcare"));
    b.shot("tenants").await;

    // Test webhooks: each route's example, signed with the tenant's own credential, is stored
    // and marked as a test; signed wrong, it is refused.
    for (route, expect) in [
        ("retell/", 200),
        ("twilio/sms", 200),
        ("resend/", 200),
        ("zapier/catch", 200),
    ] {
        c.goto(&format!("{base}/console/tenants/abc-healthcare"))
            .await
            .unwrap();
        c.find(Css(&format!("button[data-test='{route}']")))
            .await
            .unwrap_or_else(|e| panic!("no test button for {route}: {e}"))
            .click()
            .await
            .unwrap();
        let answer = b.text("#test-answer").await;
        assert!(
            answer.contains(&format!("answered {expect}")),
            "{route}: {answer}"
        );
    }
    b.shot("test-webhook").await;
    c.find(Css("#test-delivery"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        b.text("h1").await.contains("test"),
        "the delivery is marked as a test"
    );
    c.goto(&format!("{base}/console/tenants/abc-healthcare"))
        .await
        .unwrap();
    c.find(Css("button[data-forge='retell/']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let answer = b.text("#test-answer").await;
    assert!(answer.contains("answered 401"), "{answer}");
    c.goto(&format!("{base}/console/deliveries?connector=zapier"))
        .await
        .unwrap();
    assert!(b.text("#log-rows").await.contains("test"));

    // Refused requests, with their cause and no body: a forged signature, a body over the
    // limit, an unknown tenant.
    let bytes = serde_json::to_vec(&call("call_forged", json!({}))).unwrap();
    let forged = plugin_sdk::schemes::sign_retell(b"key_not_the_tenants", &bytes, now_ms());
    let headers = [
        ("x-retell-signature", forged),
        ("content-type", "application/json".into()),
    ];
    assert_eq!(
        hub.post("/hooks/abc-healthcare/retell", &headers, &bytes)
            .await
            .0,
        401
    );
    let big = vec![b'a'; 1_100_000];
    assert_eq!(
        hub.post("/hooks/abc-healthcare/retell", &[], &big).await.0,
        413
    );
    assert_eq!(
        hub.post("/hooks/no-such-clinic/retell", &[], b"{}").await.0,
        404
    );
    c.goto(&format!("{base}/console/rejected")).await.unwrap();
    let refused = b.text("#rejected").await;
    for cause in ["bad signature", "too large", "unknown tenant"] {
        assert!(refused.contains(cause), "{cause} in {refused}");
    }
    assert!(refused.contains("/hooks/no-such-clinic/retell"));
    assert!(
        !c.source().await.unwrap().contains("call_forged"),
        "no body is kept"
    );
    b.shot("rejected").await;

    // The tenant's Resend key from a form: sealed into hub.toml (comments kept), applied at once.
    let before = std::fs::read_to_string(hub.config_path()).unwrap();
    c.goto(&format!(
        "{base}/console/tenants/abc-healthcare/credentials"
    ))
    .await
    .unwrap();
    b.wait_for("input[data-credential='resend.api_key']", 10)
        .await
        .send_keys(NEW_RESEND_KEY)
        .await
        .unwrap();
    c.find(Css(
        "form.set-credential:has(input[data-credential='resend.api_key']) button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let outcome = b
        .text_containing("#outcome", "is sealed into hub.toml and in use")
        .await;
    assert!(
        outcome.contains("resend api_key for abc-healthcare is sealed into hub.toml and in use"),
        "{outcome}"
    );
    assert!(
        !c.source().await.unwrap().contains(NEW_RESEND_KEY),
        "the page never shows a value"
    );
    b.shot("credentials").await;
    let after = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(!after.contains(NEW_RESEND_KEY));
    assert_ne!(before, after);
    let comments = |t: &str| {
        t.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
    };
    assert_eq!(comments(&before), comments(&after), "comments are kept");
    assert!(!hub.log().contains(NEW_RESEND_KEY), "nor does the log");
    // The next follow-up email goes out with the new key.
    let with_email = call(
        "call_console_2",
        json!({ "call_analysis": { "call_summary": "Booked.", "user_sentiment": "Positive",
                "call_successful": true, "in_voicemail": false,
                "custom_analysis_data": { "email": "jane@example.com" } } }),
    );
    send_call(&hub, &with_email).await;
    wait_for(20, "the follow-up email with the new key", || async {
        let seen = seen.lock().unwrap();
        seen.iter()
            .any(|(path, auth)| path == "/emails" && auth == &format!("Bearer {NEW_RESEND_KEY}"))
            .then_some(())
    })
    .await;
    // "Test" asks the provider: Retell accepts the tenant's key; after a wrong one is set from
    // the form, it says why not.
    c.find(Css("button[data-check='retell']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let outcome = b
        .text_containing(
            "#outcome",
            "the provider accepted abc-healthcare's credentials",
        )
        .await;
    assert!(
        outcome.contains("retell: the provider accepted abc-healthcare's credentials"),
        "{outcome}"
    );
    b.shot("credentials-test").await;
    b.wait_for("input[data-credential='retell.api_key']", 10)
        .await
        .send_keys("key_wrong_0000")
        .await
        .unwrap();
    // Kept verifying for 24 h: Retell still signs with the old key while it moves.
    c.find(Css("input[data-keep='retell.api_key']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Css(
        "form.set-credential:has(input[data-credential='retell.api_key']) button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let outcome = b
        .text_containing("#outcome", "still verifies webhooks for 24 hours")
        .await;
    assert!(
        outcome.contains("in use") && outcome.contains("still verifies webhooks for 24 hours"),
        "{outcome}"
    );
    assert!(
        b.text("table.creds")
            .await
            .contains("the old value verifies until")
    );
    send_call(&hub, &call("call_console_3", json!({}))).await;
    c.find(Css("button[data-check='retell']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let outcome = b.text_containing("#outcome", "the check failed").await;
    assert!(
        outcome.contains("the check failed") && outcome.contains("Invalid API key"),
        "{outcome}"
    );
    assert!(!c.source().await.unwrap().contains("key_wrong_0000"));
    assert!(!b.dialog_open().await);
    b.close().await;
}

const NEW_RESEND_KEY: &str = "re_set_from_the_console_0001";

fn chrono_today() -> String {
    let days = now_ms() / 86_400_000;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test]
async fn hostile_payloads_render_as_text_and_a_tenant_token_opens_its_tenant_alone() {
    let hub = shipped_hub(refusing_stand_in().await.0).await;
    let base = hub.base();
    let hostile_id = "\"><img src=x onerror=alert(1)>\u{202E}gnp.exe";
    let long_line = "A".repeat(300_000);
    let hostile_header = "<img src=x onerror=alert(5)>\"><svg onload=alert(6)>";
    let id = send_call_with(
        &hub,
        &call(
            hostile_id,
            json!({
                "transcript": "Agent: <script>alert(2)</script>\nUser: javascript:alert(3)",
                "recording_url": "javascript:alert(4)",
                "metadata": { "note": long_line },
            }),
        ),
        &[("x-hostile-note", hostile_header.to_string())],
    )
    .await;
    wait_for(20, "the hostile delivery to be handled", || async {
        let d = hub.api(&format!("/deliveries/{id}")).await;
        (d["delivery"]["state"] == "done").then_some(())
    })
    .await;

    // The SMS to the caller is refused with markup in the provider's message: a dead letter
    // whose alert the banner shows, as text.
    wait_for(20, "the refused SMS dead-lettered", || async {
        let open = hub.api("/alerts").await.to_string();
        open.contains("dead_letter").then_some(())
    })
    .await;
    let b = Browser::start("hostile").await;
    let c = &b.client;
    log_in(&b, &base, DASHBOARD).await;
    b.wait_for("table#log", 10).await;
    let banner = b.text("section.alerts").await;
    assert!(
        banner.contains("<img src=x onerror=alert(7)>"),
        "the provider's markup shows as text: {banner}"
    );
    let rows = b.text("#log-rows").await;
    assert!(
        rows.contains("\"><img src=x onerror=alert(1)>⟨U+202E⟩gnp.exe"),
        "{rows}"
    );
    assert!(!rows.contains("xyz-dental"));
    b.shot("log-hostile").await;
    let no_injected =
        "return document.querySelectorAll('main img, main script, main iframe').length";
    assert_eq!(c.execute(no_injected, vec![]).await.unwrap(), json!(0));
    assert!(!b.dialog_open().await, "no script ran on the log");

    c.goto(&format!("{base}/console/deliveries/{id}"))
        .await
        .unwrap();
    let payload = b.wait_for("#payload", 10).await.text().await.unwrap();
    assert!(payload.contains("<script>alert(2)</script>"));
    assert!(payload.contains(&long_line[..1000]));
    let headers = c.find(Css("table.kv")).await.unwrap().text().await.unwrap();
    assert!(
        headers.contains(hostile_header),
        "a hostile header shows as its text: {headers}"
    );
    assert!(
        c.find(Css("form.once")).await.is_err(),
        "a read token gets no replay button"
    );
    assert_eq!(c.execute(no_injected, vec![]).await.unwrap(), json!(0));
    assert!(!b.dialog_open().await, "no script ran on the delivery");
    b.shot("delivery-hostile").await;

    let record = format!(
        "{base}/console/tenants/abc-healthcare/records/call/{}",
        urlencoding(hostile_id)
    );
    c.goto(&record).await.unwrap();
    let transcript = b.wait_for(".transcript", 10).await.text().await.unwrap();
    assert!(
        transcript.contains("<script>alert(2)</script>"),
        "{transcript}"
    );
    let links: Value = c
        .execute(
            "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href'))",
            vec![],
        )
        .await
        .unwrap();
    assert!(!links.to_string().contains("javascript:"), "{links}");
    assert!(!b.dialog_open().await, "no script ran on the call");
    b.shot("call-hostile").await;

    // Another tenant is what does not exist; a read token replays nothing.
    c.goto(&format!("{base}/console/tenants/xyz-dental"))
        .await
        .unwrap();
    assert!(b.text("main").await.contains("tenant xyz-dental not found"));
    c.goto(&format!("{base}/console/deliveries?tenant=xyz-dental"))
        .await
        .unwrap();
    assert!(b.text("#log-rows").await.contains("No deliveries match"));

    // Writes from another site, or that say nothing of their origin, are refused; so is a
    // guessed session.
    let cookie = c.get_named_cookie("hub_console").await.unwrap();
    let session = format!("hub_console={}", cookie.value());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![],
        vec![("origin", "https://evil.example")],
    ] {
        let mut req = http
            .post(format!("{base}/console/deliveries/{id}/replay"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("nonce=x");
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        assert_eq!(req.send().await.unwrap().status(), 403, "{headers:?}");
    }
    let guessed = http
        .get(format!("{base}/console/deliveries"))
        .header(
            "cookie",
            "hub_console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(guessed.status(), 303);
    assert_eq!(guessed.headers()["location"], "/console/login");
    // The read token's own session may not replay even from the console's own origin.
    let read_only = http
        .post(format!("{base}/console/deliveries/{id}/replay"))
        .header("cookie", &session)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nonce=x")
        .send()
        .await
        .unwrap();
    assert_eq!(read_only.status(), 403);
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.close().await;
}

pub(crate) fn urlencoding(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[tokio::test]
async fn the_connect_button_walks_a_tenant_through_the_consent_flow() {
    let mut auth = None;
    let hub = crate::oauth::started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    let stand_in = auth.base.trim_start_matches("http://").to_string();
    // The browser reaches the probe's declared `auth.test` at the stand-in.
    let b = Browser::start_with(
        "connect",
        &[format!("--host-resolver-rules=MAP auth.test:80 {stand_in}")],
    )
    .await;
    let base = hub.base();
    log_in(&b, &base, crate::util::ADMIN_TOKEN).await;
    b.wait_for("table#log", 10).await;
    b.client
        .goto(&format!("{base}/console/tenants/alpha/credentials"))
        .await
        .unwrap();
    let state = b.text("[data-connection=\"probe.oauth\"]").await;
    assert_eq!(state, "not connected");
    b.shot("connections-before").await;
    b.client
        .find(Css("[data-connect=\"probe.oauth\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The console's one-time link, the provider's consent (the stand-in approves at once), the
    // callback.
    let link = b.wait_for("#consent-link", 10).await;
    assert!(b.text("#outcome").await.contains("valid for 15 minutes"));
    b.shot("consent-link").await;
    link.click().await.unwrap();
    let page = b.text_containing("h1", "Connected").await;
    b.shot("after-connect").await;
    assert_eq!(page, "Connected", "{}", b.text("main").await);
    assert!(
        b.text("p")
            .await
            .contains("alpha's probe (oauth) is connected")
    );
    b.shot("connected").await;
    let exchange = auth.state.lock().unwrap().requests[0].clone();
    assert_eq!(exchange.grant_type, "authorization_code");
    assert!(exchange.form.contains_key("code_verifier"));
    b.client
        .goto(&format!("{base}/console/tenants/alpha/credentials"))
        .await
        .unwrap();
    assert_eq!(
        b.text("[data-connection=\"probe.oauth\"]").await,
        "connected"
    );
    b.shot("connections-after").await;
    b.close().await;
}

/// The console's config page: the version this hub runs, who made each version and why, what
/// an edit changed (a rotated key only as "sealed value changed"), and a rollback by button.
#[tokio::test]
async fn an_operator_reads_the_config_history_compares_two_versions_and_rolls_back() {
    use crate::versions::{config, reload};
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", "key_alpha_console_0123456789abc"));
    hub.start().await;
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    let old_key = text.lines().find(|l| l.starts_with("api_key = ")).unwrap();
    let new_key = format!(
        "api_key = \"{}\"",
        hub.seal_tenant(
            "alpha",
            "probe",
            "api_key",
            "key_alpha_console_rotated_9876"
        )
    );
    hub.write_config(
        &text
            .replace("name = \"Alpha\"", "name = \"Alpha <b>Clinic</b>\"")
            .replace(old_key, &new_key),
    );
    assert_eq!(reload(&hub, hub.port).await.0, 200);
    let base = hub.base();
    let b = Browser::start("config").await;
    let c = &b.client;
    log_in(&b, &base, "not-a-token-at-all").await;
    b.wait_for(".error", 10).await;
    log_in(&b, &base, ADMIN_TOKEN).await;
    b.wait_for("table#log", 10).await;
    c.find(Css("header nav a[href='/console/config']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for("table#versions", 10).await;
    assert!(b.text("#running").await.contains("runs version 2"));
    let rows = b.text("#versions").await;
    assert!(
        rows.contains("hub reload") && rows.contains("first start"),
        "{rows}"
    );
    c.find(Css("tr[data-version='2'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for("table#differences", 10).await;
    let differences = b.text("#differences").await;
    assert!(differences.contains("tenants.alpha.name"), "{differences}");
    assert!(
        differences.contains("\"Alpha <b>Clinic</b>\""),
        "shown as text: {differences}"
    );
    assert!(
        differences.contains("sealed value changed (never shown)"),
        "{differences}"
    );
    assert!(
        !c.source().await.unwrap().contains("sealed:v1:"),
        "no sealed value on the page"
    );
    b.shot("config-diff").await;
    c.find(Css("tr[data-version='1'] input[name='reason']"))
        .await
        .unwrap()
        .send_keys("the rename was a mistake")
        .await
        .unwrap();
    c.find(Css("tr[data-version='1'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        b.text_containing("main", "Rolled back")
            .await
            .contains("as version 3")
    );
    let state = hub.api("/config").await;
    assert_eq!(state["running"], 3);
    assert_eq!(state["newest"]["actor"], "console:admin");
    assert_eq!(hub.api("/tenants").await["tenants"][0]["name"], "Alpha");
    // The audit trail: the refused login and the login, from this address; the rollback.
    wait_for(10, "the console's audit entries", || async {
        let trail = hub.api("/audit").await.to_string();
        (trail.contains("\"console.login_failed\"")
            && trail.contains("\"console.login\"")
            && trail.contains("\"source\":\"127.0.0.1\"")
            && trail.contains("rollback to version 1: the rename was a mistake"))
        .then_some(())
    })
    .await;
    c.find(Css("header nav a[href='/console/audit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = b.text_containing("#audit", "console.login_failed").await;
    assert!(
        rows.contains("config.version") && rows.contains("127.0.0.1"),
        "{rows}"
    );
    b.shot("audit").await;
    b.close().await;
}
