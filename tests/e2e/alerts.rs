//! Alerts through the real binary, to an operator receiver that verifies each with the official
//! Standard Webhooks library (`tests/signers/receive.js`, Svix's):
//! - a storm of 1,000 dead-lettered jobs of one tenant's connector is one alert, then one
//!   summary when the window turns, not 1,000;
//! - an app endpoint answering 410 is disabled and alerted once; enabling it resolves the alert;
//! - the console's banner and `GET /api/v1/alerts` show what is open (a tenant sees its own),
//!   and `/metrics` counts what was sent and folded.

use axum::http::StatusCode;
use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::receiver::App;
use crate::util::*;

const KEY: &str = "alerts-retell-key";
const TOKEN: &str = "alerts-probe-token";
const ALERT_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ENDPOINT_SECRET: &str = "whsec_YA1HlIhK3xvBSdqfJaiMupBdNs09iCSSDTSqOofO9uY=";

/// Tenant `t`'s app token (read scope).
fn app_token(t: &str) -> String {
    format!("hubtok_alerts_{t}_0123456789abcdef")
}

/// An app endpoint that answers 410 Gone: the app removed it.
async fn gone_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().fallback(|| async { StatusCode::GONE });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

fn server_place(field: &str) -> hub::secrets::Place {
    hub::secrets::Place::Server {
        field: field.into(),
    }
}

async fn started(receiver: u16, gone: u16) -> TestHub {
    let mut hub = TestHub::new();
    let url = format!("http://127.0.0.1:{receiver}/alerts");
    let sealed_url = hub::secrets::seal(&hub.key, &server_place("alerts.url"), url.as_bytes());
    let sealed_secret = hub::secrets::seal(
        &hub.key,
        &server_place("alerts.secret"),
        ALERT_SECRET.as_bytes(),
    );
    let endpoint = hub::secrets::seal(
        &hub.key,
        &hub::secrets::Place::Endpoint {
            tenant: "beta".into(),
            name: "app".into(),
            field: "secret".into(),
        },
        ENDPOINT_SECRET.as_bytes(),
    );
    let mut tenants = String::new();
    for t in ["alpha", "beta"] {
        let place = hub::secrets::Place::ApiToken {
            tenant: t.into(),
            name: "app".into(),
        };
        tenants.push_str(&format!(
            "[tenants.{t}.connectors.probe.credentials]\napi_key = \"{}\"\ntoken = \"{}\"\n\
             [tenants.{t}.api_tokens.app]\nscope = \"read\"\ntoken = \"{}\"\n",
            hub.seal_tenant(t, "probe", "api_key", KEY),
            hub.seal_tenant(t, "probe", "token", TOKEN),
            hub::secrets::seal(&hub.key, &place, app_token(t).as_bytes()),
        ));
    }
    hub.write_config(&format!(
        "{server}[server.alerts]\nurl = \"{sealed_url}\"\nsecret = \"{sealed_secret}\"\nwindow_secs = 10\nallow_private = true\n\n\
         [connectors.probe]\npath = \"{wasm}\"\nallow_hosts = [\"http://allowed.test\"]\nmax_attempts = 1\n\n{tenants}\
         [tenants.beta.endpoints.app]\nurl = \"http://127.0.0.1:{gone}/hooks\"\nevents = [\"probe:*\"]\nallow_private = true\nsecret = \"{endpoint}\"\n",
        server = hub.server_section(),
        wasm = fixture("probe").display(),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    hub
}

async fn send(hub: &TestHub, tenant: &str, body: Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = vec![
        (
            "x-retell-signature",
            sign_retell(KEY.as_bytes(), &bytes, now_ms()),
        ),
        ("content-type", "application/json".to_string()),
    ];
    let (status, text) = hub
        .post(&format!("/hooks/{tenant}/probe"), &headers, &bytes)
        .await;
    assert_eq!(status, 200, "{text}");
}

/// Every alert the receiver got, its body parsed.
fn received(app: &App) -> Vec<Value> {
    app.got()
        .into_iter()
        .map(|mut a| {
            let body: Value =
                serde_json::from_str(a["body"].as_str().unwrap_or("null")).unwrap_or_default();
            a["body"] = body;
            a
        })
        .collect()
}

/// The alerts the receiver got, of one type.
fn alerts_of(app: &App, kind: &str) -> Vec<Value> {
    received(app)
        .into_iter()
        .filter(|a| a["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_is_one_alert_and_a_summary_and_a_fixed_cause_resolves() {
    let mut receiver = App::with_secret(ALERT_SECRET);
    receiver.up();
    let gone = gone_app().await;
    let hub = started(receiver.port, gone).await;

    // 1,000 jobs of alpha's probe fail for good.
    let posts = (0..1000).map(|i| {
        send(
            &hub,
            "alpha",
            json!({ "id": format!("dead-{i}"), "op": "fail", "kind": "permanent" }),
        )
    });
    futures::future::join_all(posts).await;
    wait_for(120, "the 1,000 jobs dead", || async {
        let v = hub.api("/jobs?tenant=alpha&state=dead&limit=500").await;
        (v["jobs"].as_array().unwrap().len() == 500 && v["next"].is_string()).then_some(())
    })
    .await;
    let raised = wait_for(30, "the dead-letter alert", || async {
        let a = alerts_of(&receiver, "alert.raised");
        a.iter()
            .any(|a| a["body"]["data"]["key"] == "dead_letter:alpha:probe")
            .then_some(a)
    })
    .await;
    assert!(
        received(&receiver).iter().all(|a| a["verified"] == true),
        "every alert verifies with the official library: {:?}",
        receiver.got()
    );
    let dead_alerts = raised
        .iter()
        .filter(|a| a["body"]["data"]["key"] == "dead_letter:alpha:probe")
        .count();
    assert_eq!(dead_alerts, 1, "one alert for the storm");
    let text = raised[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.contains("alpha's probe jobs are dead-lettered"),
        "Slack's text field: {text}"
    );
    let summary = wait_for(40, "the summary after the window", || async {
        alerts_of(&receiver, "alert.summary")
            .into_iter()
            .find(|a| a["body"]["data"]["key"] == "dead_letter:alpha:probe")
    })
    .await;
    let more = summary["body"]["data"]["more"].as_u64().unwrap();
    assert!(more > 0 && more <= 999, "{summary}");
    let dead_messages = received(&receiver)
        .iter()
        .filter(|a| a["body"]["data"]["key"] == "dead_letter:alpha:probe")
        .count();
    assert!(
        dead_messages <= 3,
        "a few messages, not a thousand: {dead_messages}"
    );

    // beta's app endpoint answers 410: disabled, alerted once.
    send(
        &hub,
        "beta",
        json!({ "id": "ev-1", "op": "record", "kind": "call", "key": "c1", "data": {} }),
    )
    .await;
    let disabled = wait_for(30, "the endpoint alert", || async {
        alerts_of(&receiver, "alert.raised")
            .into_iter()
            .find(|a| a["body"]["data"]["key"] == "endpoint_disabled:beta:app")
    })
    .await;
    assert!(
        disabled["body"]["text"]
            .as_str()
            .unwrap()
            .contains("beta's endpoint app is disabled")
    );

    // What is open: the admin sees both; beta's own token would see its own only (the API
    // filters as the console's banner does).
    let open = hub.api("/alerts").await;
    let keys: Vec<String> = open["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["cause"]["kind"].as_str().unwrap(),
                a["cause"]["tenant"].as_str().unwrap()
            )
        })
        .collect();
    assert!(keys.contains(&"dead_letter:alpha".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"endpoint_disabled:beta".to_string()),
        "{keys:?}"
    );

    // Enabling the endpoint resolves its alert.
    let resp = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/beta/endpoints/app/enable",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_for(30, "the endpoint alert resolved", || async {
        alerts_of(&receiver, "alert.resolved")
            .into_iter()
            .find(|a| a["body"]["data"]["key"] == "endpoint_disabled:beta:app")
    })
    .await;
    let metrics = hub.metrics().await;
    let figure = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(figure("hub_alerts_sent_total") >= 4, "{metrics}");
    assert!(
        figure("hub_alerts_suppressed_total") >= 900,
        "the storm was folded"
    );
    assert!(
        figure("hub_alerts_open") >= 1,
        "the dead letters are still there"
    );
    let open = hub.api("/alerts").await.to_string();
    assert!(!open.contains("endpoint_disabled"), "resolved: {open}");
    assert!(open.contains("dead_letter"), "{open}");

    // A tenant's token sees its own tenant's alerts and channels, nobody else's.
    let as_alpha = async |path: &str| {
        let resp = hub
            .client
            .get(format!("{}/api/v1{path}", hub.base()))
            .bearer_auth(app_token("alpha"))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let (status, mine) = as_alpha("/alerts").await;
    assert_eq!(status, 200, "{mine}");
    assert!(mine.contains(r#""tenant":"alpha""#), "{mine}");
    assert!(
        !mine.contains("beta"),
        "alpha sees none of beta's alerts: {mine}"
    );
    assert_eq!(
        as_alpha("/tenants/alpha/channels").await,
        (200, "[]".to_string())
    );
    assert_eq!(as_alpha("/tenants/beta/channels").await.0, 404);
}
