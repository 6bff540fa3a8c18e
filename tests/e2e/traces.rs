//! Traces through the real binary, exported over OTLP/HTTP to a local receiver that decodes
//! them with OpenTelemetry's own protobuf classes (`tests/otlp/receiver.py`, opentelemetry-proto
//! from PyPI):
//! - one signed webhook is one connected trace that continues the provider's `traceparent`:
//!   the request, its verification and storing, the delivery's job and the connector's
//!   invocation, the route's job and its outbound call, the app webhook's job and its call, the
//!   provider stand-in and the app each receiving a `traceparent` of that trace;
//! - no span carries a credential, a signature, a token or a payload's contents;
//! - a forged request is a refused, error-status span and leads to no job;
//! - a collector that is down slows nothing: every webhook is processed and the loss is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::receiver::App;
use crate::util::*;

const KEY: &str = "traces-retell-key-0f3a9c";
const TOKEN: &str = "traces-probe-token-77d1";
const ENDPOINT_SECRET: &str = "whsec_YA1HlIhK3xvBSdqfJaiMupBdNs09iCSSDTSqOofO9uY=";
/// A value only the payload carries: no span may show it.
const PAYLOAD_MARKER: &str = "payload-marker-5b1e";

/// The receiver: OpenTelemetry's decoder behind a small HTTP server.
struct Collector {
    port: u16,
    child: Child,
}

impl Collector {
    fn start() -> Collector {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/otlp");
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("receiver.py"))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the OTLP receiver runs (tests/setup installs tests/otlp/.venv)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Collector { port, child }
    }

    /// Every span received so far; the receiver decoded every request.
    async fn spans(&self) -> Vec<Value> {
        let got: Value = reqwest::get(format!("http://127.0.0.1:{}/spans", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            got["errors"],
            json!([]),
            "requests the receiver could not decode"
        );
        got["spans"].as_array().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider the route's action calls: the `traceparent` of each request, by path.
type Seen = Arc<Mutex<BTreeMap<String, Vec<Option<String>>>>>;

async fn provider() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(
            move |axum::extract::Path(path): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap| {
                let log = log.clone();
                async move {
                    let trace = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    log.lock().unwrap().entry(path).or_default().push(trace);
                    "{\"ok\":true}"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

async fn started(telemetry: &str, provider: u16, app: u16) -> TestHub {
    let mut hub = TestHub::new();
    let endpoint = hub::secrets::seal(
        &hub.key,
        &hub::secrets::Place::Endpoint {
            tenant: "alpha".into(),
            name: "app".into(),
            field: "secret".into(),
        },
        ENDPOINT_SECRET.as_bytes(),
    );
    hub.write_config(&format!(
        r#"{server}
[server.telemetry]
{telemetry}

[connectors.probe]
path = "{wasm}"
allow_hosts = ["http://allowed.test"]
stand_ins = {{ "http://allowed.test" = "http://127.0.0.1:{provider}" }}
max_attempts = 2

[tenants.alpha.connectors.probe.credentials]
api_key = "{key}"
token = "{token}"

[[tenants.alpha.routes]]
name = "tell the provider"
on = "probe:probe.recorded"
action = "probe:call"
input = {{ path = "told/{{{{ event.key }}}}" }}

[tenants.alpha.endpoints.app]
url = "http://127.0.0.1:{app}/hooks"
events = ["probe:*"]
allow_private = true
secret = "{endpoint}"
"#,
        server = hub.server_section(),
        wasm = fixture("probe").display(),
        key = hub.seal_tenant("alpha", "probe", "api_key", KEY),
        token = hub.seal_tenant("alpha", "probe", "token", TOKEN),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    hub
}

/// Posts a signed `record` op whose data carries [`PAYLOAD_MARKER`]; the probe publishes
/// `probe.recorded` (`probe.probe.recorded` to the app), which the route and the app endpoint both take.
async fn record(hub: &TestHub, key: &str, traceparent: Option<&str>, forged: bool) -> u16 {
    let body = serde_json::to_vec(&json!({
        "id": format!("rec-{key}"), "op": "record", "kind": "visit", "key": key,
        "data": { "note": PAYLOAD_MARKER },
    }))
    .unwrap();
    let secret = if forged { "not-the-key" } else { KEY };
    let mut headers = vec![
        (
            "x-retell-signature",
            sign_retell(secret.as_bytes(), &body, now_ms()),
        ),
        ("content-type", "application/json".to_string()),
    ];
    if let Some(t) = traceparent {
        headers.push(("traceparent", t.to_string()));
    }
    hub.post("/hooks/alpha/probe", &headers, &body).await.0
}

/// Waits until the provider got `n` route calls under `prefix` and the app `n` webhooks.
async fn every_call_made(seen: &Seen, app: &App, prefix: &str, n: usize) {
    wait_for(60, "every route call and app webhook", || async {
        let told = seen
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count();
        let hooks = app
            .got()
            .iter()
            .filter(|h| h["type"] == "probe.probe.recorded")
            .count();
        (told == n && hooks == n).then_some(())
    })
    .await;
}

fn of_trace<'a>(spans: &'a [Value], trace: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["trace_id"] == trace).collect()
}

fn named<'a>(spans: &[&'a Value], name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .copied()
        .filter(|s| s["name"] == name)
        .collect()
}

/// `00-{trace}-{parent}-{flags}`, split.
fn parts(traceparent: &str) -> (String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    (p[1].to_string(), p[2].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_one_trace_from_the_provider_to_the_app_and_carries_no_secret() {
    let collector = Collector::start();
    let (provider_port, seen) = provider().await;
    let mut app = App::with_secret(ENDPOINT_SECRET);
    app.up();
    let hub = started(
        &format!(
            "endpoint = \"http://127.0.0.1:{}\"\nservice_name = \"hub-under-test\"",
            collector.port
        ),
        provider_port,
        app.port,
    )
    .await;

    let provider_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let provider_span = "00f067aa0ba902b7";
    let status = record(
        &hub,
        "k1",
        Some(&format!("00-{provider_trace}-{provider_span}-01")),
        false,
    )
    .await;
    assert_eq!(status, 200);

    // The app and the provider each got their call, with a traceparent of the provider's trace.
    let app_hook = wait_for(60, "the app's webhook", || async {
        app.got()
            .into_iter()
            .find(|h| h["type"] == "probe.probe.recorded" && h["verified"] == true)
    })
    .await;
    let told = wait_for(60, "the route's call to the provider", || async {
        seen.lock().unwrap().get("told/k1").cloned()
    })
    .await;
    let app_parent = app_hook["traceparent"]
        .as_str()
        .expect("the app got a traceparent");
    let told_parent = told[0].as_deref().expect("the provider got a traceparent");
    assert_eq!(parts(app_parent).0, provider_trace, "{app_parent}");
    assert_eq!(parts(told_parent).0, provider_trace, "{told_parent}");

    // Every span of the trace reaches the collector: the request, verify, store, the three
    // jobs (delivery, route, webhook), the invocations, and the two outbound calls.
    let spans = wait_for(30, "the whole trace at the collector", || async {
        let spans = collector.spans().await;
        let trace = of_trace(&spans, provider_trace);
        let jobs = named(&trace, "job delivery").len()
            + named(&trace, "job route").len()
            + named(&trace, "job webhook").len();
        let calls = trace
            .iter()
            .filter(|s| s["kind"] == "SPAN_KIND_CLIENT")
            .count();
        (jobs >= 3 && calls >= 2).then_some(spans)
    })
    .await;
    let trace = of_trace(&spans, provider_trace);
    let by_id: BTreeMap<&str, &Value> = trace
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap(), *s))
        .collect();

    // The request's span continues the provider's: its child, a server span.
    let webhook = named(&trace, "webhook");
    assert_eq!(webhook.len(), 1, "{trace:#?}");
    let webhook = webhook[0];
    assert_eq!(webhook["parent_span_id"], provider_span);
    assert_eq!(webhook["kind"], "SPAN_KIND_SERVER");
    assert_eq!(webhook["attributes"]["tenant"], "alpha");
    assert_eq!(webhook["attributes"]["connector"], "probe");
    assert_eq!(webhook["attributes"]["http.response.status_code"], 200);
    assert_eq!(webhook["attributes"]["outcome"], "accepted");
    let delivery_id = webhook["attributes"]["delivery.id"].clone();
    assert!(delivery_id.is_i64(), "{webhook:#}");
    assert_eq!(webhook["resource"]["service.name"], "hub-under-test");

    // One connected tree: every span's parent is in the trace, but the request's (the provider's).
    for s in &trace {
        let parent = s["parent_span_id"].as_str().unwrap();
        if s["span_id"] == webhook["span_id"] {
            continue;
        }
        assert!(
            by_id.contains_key(parent),
            "span {} has a parent outside the trace: {s:#}",
            s["name"]
        );
    }
    let ancestors = |s: &Value| {
        let mut names = Vec::new();
        let mut at = s["parent_span_id"].as_str().unwrap().to_string();
        while let Some(p) = by_id.get(at.as_str()) {
            names.push(p["name"].as_str().unwrap().to_string());
            at = p["parent_span_id"].as_str().unwrap().to_string();
        }
        names
    };
    for child in ["verify", "store"] {
        let s = named(&trace, child);
        assert_eq!(s.len(), 1, "{child}");
        assert_eq!(s[0]["parent_span_id"], webhook["span_id"], "{child}");
    }
    let job = named(&trace, "job delivery")[0];
    assert_eq!(job["attributes"]["delivery.id"], delivery_id);
    assert_eq!(job["attributes"]["outcome"], "done");
    assert_eq!(job["attributes"]["job.attempt"], 1);
    assert_eq!(ancestors(job), ["webhook"]);
    let invoke = trace
        .iter()
        .find(|s| s["name"] == "invoke probe" && s["parent_span_id"] == job["span_id"])
        .expect("the delivery's invocation under its job");
    assert_eq!(invoke["attributes"]["outcome"], "ok");
    // The route's job and the app webhook's job follow from the delivery's job.
    for kind in ["job route", "job webhook"] {
        let s = named(&trace, kind);
        assert!(!s.is_empty(), "{kind}");
        assert!(
            ancestors(s[0]).contains(&"job delivery".to_string()),
            "{kind}: {:?}",
            ancestors(s[0])
        );
    }
    // What the provider and the app got names a client span of the trace as its parent.
    for (who, parent) in [("provider", told_parent), ("app", app_parent)] {
        let (_, span) = parts(parent);
        let call = by_id
            .get(span.as_str())
            .unwrap_or_else(|| panic!("the {who}'s traceparent names no exported span"));
        assert_eq!(call["kind"], "SPAN_KIND_CLIENT", "{who}");
        assert_eq!(call["attributes"]["http.request.method"], "POST", "{who}");
        assert!(
            call["attributes"]["http.response.status_code"]
                .as_i64()
                .is_some_and(|c| c < 300),
            "{who}: {call:#}"
        );
    }
    let provider_call = by_id[parts(told_parent).1.as_str()];
    assert_eq!(
        provider_call["attributes"]["server.address"],
        "allowed.test"
    );
    assert!(ancestors(provider_call).contains(&"job route".to_string()));
    let app_call = by_id[parts(app_parent).1.as_str()];
    assert!(ancestors(app_call).contains(&"job webhook".to_string()));

    // Nothing secret or private in any span: not the key, token, signature, endpoint secret,
    // payload, or the webhook's URL path (a path token would be there).
    let text = serde_json::to_string(&spans).unwrap();
    for secret in [
        KEY,
        TOKEN,
        ENDPOINT_SECRET,
        PAYLOAD_MARKER,
        "x-retell-signature",
        "v=",
        "/hooks/alpha",
    ] {
        assert!(!text.contains(secret), "a span carries {secret:?}");
    }
    let names: BTreeSet<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.iter().all(|n| !n.contains('{')), "{names:?}");

    // Without a provider traceparent the request starts its own trace, connected the same way.
    assert_eq!(record(&hub, "k2", None, false).await, 200);
    let spans = wait_for(30, "the second trace", || async {
        let spans = collector.spans().await;
        let root = spans
            .iter()
            .find(|s| {
                s["name"] == "webhook"
                    && s["parent_span_id"] == ""
                    && s["trace_id"] != provider_trace
            })?
            .clone();
        let trace = root["trace_id"].as_str().unwrap().to_string();
        let jobs = spans
            .iter()
            .filter(|s| {
                s["trace_id"] == trace.as_str() && s["name"].as_str().unwrap().starts_with("job ")
            })
            .count();
        (jobs >= 3).then_some(spans)
    })
    .await;
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "job delivery" && s["trace_id"] != provider_trace)
    );

    // A forged request: a refused span with an error status, and no job follows it.
    let forged_trace = "0af7651916cd43dd8448eb211c80319c";
    let status = record(
        &hub,
        "k3",
        Some(&format!("00-{forged_trace}-b7ad6b7169203331-01")),
        true,
    )
    .await;
    assert_eq!(status, 401);
    let refused = wait_for(30, "the refused request's span", || async {
        let spans = collector.spans().await;
        spans
            .into_iter()
            .find(|s| s["trace_id"] == forged_trace && s["name"] == "webhook")
    })
    .await;
    assert_eq!(refused["attributes"]["outcome"], "refused");
    assert_eq!(refused["attributes"]["http.response.status_code"], 401);
    assert_eq!(refused["status"]["code"], "STATUS_CODE_ERROR");
    let spans = collector.spans().await;
    assert!(
        !spans.iter().any(
            |s| s["trace_id"] == forged_trace && s["name"].as_str().unwrap().starts_with("job")
        ),
        "a forged request led to a job"
    );

    let metrics = hub.metrics().await;
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hub_trace_spans_exported_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(
        exported as usize >= spans.len(),
        "{exported} < {}",
        spans.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_slows_nothing_and_the_loss_is_counted() {
    let (provider_port, seen) = provider().await;
    let mut app = App::with_secret(ENDPOINT_SECRET);
    app.up();
    // Nothing listens there.
    let hub = started(
        &format!("endpoint = \"http://127.0.0.1:{}/v1/traces\"", free_port()),
        provider_port,
        app.port,
    )
    .await;
    let keys: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    let sent = keys.iter().map(|k| record(&hub, k, None, false));
    for status in futures::future::join_all(sent).await {
        assert_eq!(status, 200);
    }
    every_call_made(&seen, &app, "told/d", 40).await;
    // The calls still carried their trace onward.
    assert!(seen.lock().unwrap()["told/d0"][0].is_some());
    let failed = wait_for(30, "the lost spans counted", || async {
        hub.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix("hub_trace_spans_failed_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&n| n > 0)
    })
    .await;
    assert!(failed > 0);
    assert!(
        hub.log().contains("traces: the collector did not take"),
        "{}",
        hub.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trace_not_sampled_makes_no_span_anywhere_and_a_providers_sampled_flag_is_followed() {
    let collector = Collector::start();
    let (provider_port, seen) = provider().await;
    let mut app = App::with_secret(ENDPOINT_SECRET);
    app.up();
    let hub = started(
        &format!(
            "endpoint = \"http://127.0.0.1:{}\"\nsample_ratio = 0.0",
            collector.port
        ),
        provider_port,
        app.port,
    )
    .await;
    let kept = "11111111111111111111111111111111";
    let dropped = "22222222222222222222222222222222";
    let sends = [
        ("s1", None),
        ("s2", Some(format!("00-{kept}-1111111111111111-01"))),
        ("s3", Some(format!("00-{dropped}-2222222222222222-00"))),
    ];
    for (key, parent) in &sends {
        assert_eq!(record(&hub, key, parent.as_deref(), false).await, 200);
    }
    every_call_made(&seen, &app, "told/s", 3).await;
    // The provider's sampled trace is recorded whole, whatever the ratio.
    let spans = wait_for(30, "the sampled trace", || async {
        let spans = collector.spans().await;
        let trace = of_trace(&spans, kept);
        (named(&trace, "job route").len() == 1 && named(&trace, "job webhook").len() == 1)
            .then_some(spans)
    })
    .await;
    // Give a stray span time to arrive (the exporter sends every half second), then look again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let spans_now = collector.spans().await;
    assert_eq!(
        spans_now.len(),
        spans.len(),
        "spans arrived after the sampled trace was whole"
    );
    let traces: BTreeSet<&str> = spans_now
        .iter()
        .filter_map(|s| s["trace_id"].as_str())
        .collect();
    assert_eq!(
        traces,
        BTreeSet::from([kept]),
        "only the sampled trace: {spans_now:#?}"
    );
    // What was not recorded carries no trace onward either.
    let told = seen.lock().unwrap().clone();
    assert!(
        told["told/s1"][0].is_none() && told["told/s3"][0].is_none(),
        "{told:?}"
    );
    assert_eq!(parts(told["told/s2"][0].as_deref().unwrap()).0, kept);
}
