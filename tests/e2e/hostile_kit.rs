//! The hostile tests' harness: a hub running the `probe` fixture for two tenants (alpha, beta),
//! signed sends, and the stand-in API the probe calls. Shared by the `e2e` and `e2e-alone` test
//! binaries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use plugin_sdk::schemes::sign_retell;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::*;

pub(crate) const ALPHA_KEY: &str = "key_alpha_hostile_0123456789abcd";
pub(crate) const BETA_KEY: &str = "key_beta_hostile_fedcba9876543210";
pub(crate) const ALPHA_TOKEN: &str = "tok-alpha-hostile-77a1";
pub(crate) const BETA_TOKEN: &str = "tok-beta-hostile-88b2";

/// How a test hub is set up.
#[derive(Clone)]
pub(crate) struct Opts {
    pub(crate) workers: usize,
    pub(crate) body_limit: u64,
    pub(crate) timeout_ms: u64,
    pub(crate) memory_mb: u32,
    /// A second connector id running the same component (kv is scoped per connector).
    pub(crate) probe2: bool,
    /// Alpha's route: `probe.recorded` -> `probe:call` POSTs `hook/{kind}-{key}` to the stand-in.
    pub(crate) route: bool,
    /// Where the data folder lives, if not in the hub's temp folder (a tiny tmpfs).
    pub(crate) data_dir: Option<std::path::PathBuf>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            workers: 4,
            body_limit: 65_536,
            timeout_ms: 1000,
            memory_mb: 32,
            probe2: false,
            route: false,
            data_dir: None,
        }
    }
}

pub(crate) fn config(hub: &TestHub, mock_port: u16, o: &Opts) -> String {
    let mut server = hub
        .server_section()
        .replace("workers = 4", &format!("workers = {}", o.workers))
        .replace(
            "body_limit = 65536",
            &format!("body_limit = {}", o.body_limit),
        );
    if let Some(dir) = &o.data_dir {
        server = server.replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", dir.display()),
        );
    }
    let connector = |id: &str| {
        format!(
            r#"
[connectors.{id}]
path = "{wasm}"
allow_hosts = ["http://allowed.test", "http://second.test", "http://localhost:1", "http://[::1]:1"]
stand_ins = {{ "http://allowed.test" = "http://127.0.0.1:{mock_port}", "http://second.test" = "http://127.0.0.1:{mock_port}" }}
memory_mb = {memory}
timeout_ms = {timeout}
"#,
            wasm = fixture("probe").display(),
            memory = o.memory_mb,
            timeout = o.timeout_ms,
        )
    };
    let tenant = |t: &str, key: &str, token: &str, connectors: &[&str]| {
        let mut s = format!("\n[tenants.{t}]\nname = \"{t}\"\n");
        for c in connectors {
            s.push_str(&format!(
                "[tenants.{t}.connectors.{c}.credentials]\napi_key = \"{}\"\ntoken = \"{}\"\n",
                hub.seal_tenant(t, c, "api_key", key),
                hub.seal_tenant(t, c, "token", token),
            ));
        }
        s
    };
    let mut text = server + &connector("probe");
    let mut alpha_uses = vec!["probe"];
    if o.probe2 {
        text.push_str(&connector("probe2"));
        alpha_uses.push("probe2");
    }
    text.push_str(&tenant("alpha", ALPHA_KEY, ALPHA_TOKEN, &alpha_uses));
    if o.route {
        text.push_str(
            r#"
[[tenants.alpha.routes]]
name = "notify provider"
on = "probe:probe.recorded"
action = "probe:call"
input = { path = "hook/{{ event.kind }}-{{ event.key }}" }
"#,
        );
    }
    text.push_str(&tenant("beta", BETA_KEY, BETA_TOKEN, &["probe"]));
    text
}

pub(crate) async fn started(mock_port: u16, o: &Opts) -> TestHub {
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, mock_port, o));
    hub.start().await;
    hub
}

pub(crate) fn signed(key: &str, bytes: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-retell-signature",
            sign_retell(key.as_bytes(), bytes, now_ms()),
        ),
        ("content-type", "application/json".into()),
    ]
}

pub(crate) fn key_of(tenant: &str) -> &'static str {
    if tenant == "alpha" {
        ALPHA_KEY
    } else {
        BETA_KEY
    }
}

/// Signs and posts a JSON op to the tenant's probe; (status, body, round-trip time).
pub(crate) async fn send(hub: &TestHub, tenant: &str, body: &Value) -> (u16, String, Duration) {
    let bytes = serde_json::to_vec(body).unwrap();
    let started = Instant::now();
    let (status, text) = hub
        .post(
            &format!("/hooks/{tenant}/probe"),
            &signed(key_of(tenant), &bytes),
            &bytes,
        )
        .await;
    (status, text, started.elapsed())
}

pub(crate) async fn send_ok(hub: &TestHub, tenant: &str, body: Value) -> Duration {
    let (status, text, took) = send(hub, tenant, &body).await;
    assert_eq!(status, 200, "{body}: {text}");
    took
}

/// The delivery of the signed route whose `id` is `id`.
pub(crate) async fn delivery(hub: &TestHub, tenant: &str, id: &str) -> Option<Value> {
    let identity = format!(":{id}");
    hub.deliveries(Some(tenant))
        .await
        .into_iter()
        .find(|d| d["identity"] == identity.as_str())
}

/// Waits until the delivery has an error or a final state, and returns it.
pub(crate) async fn settled(hub: &TestHub, tenant: &str, id: &str, secs: u64) -> Value {
    wait_for(secs, &format!("delivery {id} to settle"), || async {
        delivery(hub, tenant, id).await.filter(|d| {
            d["last_error"].is_string()
                || ["done", "ignored", "dead"].contains(&d["state"].as_str().unwrap_or(""))
        })
    })
    .await
}

pub(crate) async fn healthy(hub: &TestHub) -> bool {
    matches!(
        hub.client.get(format!("{}/healthz", hub.base())).timeout(Duration::from_secs(5)).send().await,
        Ok(r) if r.status() == 200
    )
}

/// A log line without its ANSI colours.
pub(crate) fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (VmRSS, VmHWM) of the hub process, in KiB.
pub(crate) fn memory_kib(hub: &TestHub) -> (u64, u64) {
    let pid = hub.child.as_ref().expect("the hub runs").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// (p50, p95, max) in milliseconds.
pub(crate) fn summary(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if ms.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), *ms.last().unwrap())
}

/// Sends `request` on a fresh connection (a write the server cuts short is fine), then reads
/// until the server closes or `wait` passes. Returns the first response's status, if any.
pub(crate) async fn raw_exchange(port: u16, request: &[u8], wait: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    let (mut rd, mut wr) = stream.split();
    // Write and read at once: the server may answer (and close) before the request is all sent.
    let write = async {
        let _ = tokio::time::timeout_at(deadline, wr.write_all(request)).await;
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        got
    };
    let ((), got) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// A stand-in provider API for outbound tests: records every request's path and
/// `authorization`; `/echo` answers `pong`, `/redirect?to=URL` redirects there, `/loop`
/// redirects to itself.
pub(crate) async fn mock_api() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen2 = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let seen = seen2.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push((uri.path().to_string(), auth));
            match uri.path() {
                "/echo" => (StatusCode::OK, "pong").into_response(),
                "/loop" => (StatusCode::FOUND, [("location", "/loop".to_string())]).into_response(),
                "/redirect" => {
                    let to = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                        .find(|(k, _)| k == "to")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    (StatusCode::FOUND, [("location", to)]).into_response()
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}
