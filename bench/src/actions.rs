//! The hub acting (`--only actions`), in-process on the hub library, over loopback HTTP:
//! - actions accepted per second: `POST /api/v1/tenants/{t}/actions` (`email:send`, a new
//!   Idempotency-Key each), answered 202 once the action is a durable job, on a hub with
//!   `workers = 0` so the figure is the acceptance alone; 64 connections;
//! - a tool call's time in the hub: a Retell custom function (signed) and an MCP `tools/call`,
//!   each for a lookup (`find_contact`: no provider involved) and for an action (`send_sms`,
//!   run by a worker through a loopback Twilio stand-in, whose own handling time is measured
//!   and taken off).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hub::config::Config;
use hub::secrets::{Place, Vault};
use secrecy::SecretSlice;

use crate::sandbox::Samples;

const RETELL_KEY: &str = "key_bench_retell_0000000000000000";
const APP_TOKEN: &str = "hubtok_bench_app_act";
const VOICE_TOKEN: &str = "hubtok_bench_voice_tools";
const CALLER: &str = "+14155550100";

/// What the part measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Actions accepted (202) per second, and how many.
    pub accepted_per_s: f64,
    /// How many.
    pub accepted: usize,
    /// Answers that were not 202.
    pub refused: usize,
    /// `(how, tool, samples)`: the hub's time per tool call.
    pub tool_calls: Vec<(&'static str, &'static str, Samples)>,
}

fn config(dir: &std::path::Path, provider: u16, workers: usize) -> anyhow::Result<Config> {
    let placeholder = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1"
data_dir = "data"
workers = {workers}
rate_limit = {{ per_second = 1000000, burst = 1000000 }}

[connectors.retell]
builtin = true
[connectors.resend]
builtin = true
[connectors.twilio]
builtin = true
allow_hosts = ["https://api.twilio.com"]
stand_ins = {{ "https://api.twilio.com" = "http://127.0.0.1:{provider}" }}

[tenants.bench]
email = "resend"
sms = "twilio"
phone_country_code = "+1"
[tenants.bench.connectors.retell]
[tenants.bench.connectors.resend]
config = {{ from = "Bench <bench@example.com>" }}
[tenants.bench.connectors.twilio]
config = {{ account_sid = "AC00000000000000000000000000000abc", from = "+15005550006" }}
[tenants.bench.tools]
lookup = "find_contact"
text = "send_sms"
[tenants.bench.api_tokens.app]
scope = "act"
token = "{placeholder}"
[tenants.bench.api_tokens.voice]
scope = "tools"
token = "{placeholder}"
"#
    );
    Ok(Config::from_str(&toml, &dir.join("hub.toml"))?)
}

fn vault() -> Vault {
    let mut vault = Vault::new();
    let mut put = |place: Place, value: &str| {
        vault.insert(place, SecretSlice::from(value.as_bytes().to_vec()));
    };
    let tenant = |connector: &str, field: &str| Place::Tenant {
        tenant: "bench".into(),
        connector: connector.into(),
        field: field.into(),
    };
    put(tenant("retell", "api_key"), RETELL_KEY);
    put(tenant("resend", "api_key"), "re_bench_0000000000000000");
    put(
        tenant("twilio", "auth_token"),
        "bench_auth_token_000000000000000",
    );
    for (name, token) in [("app", APP_TOKEN), ("voice", VOICE_TOKEN)] {
        put(
            Place::ApiToken {
                tenant: "bench".into(),
                name: name.into(),
            },
            token,
        );
    }
    vault
}

/// A Twilio stand-in that answers each message at once and adds up its own handling time (ns).
async fn twilio(spent: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let spent = spent.clone();
            async move {
                let started = Instant::now();
                let answer = axum::Json(serde_json::json!({
                    "sid": format!("SM{:032x}", rand::random::<u128>()), "status": "queued",
                    "account_sid": "AC00000000000000000000000000000abc" }));
                spent.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                (axum::http::StatusCode::CREATED, answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// A hub serving on loopback: its base URL and what stops it.
async fn serving(
    workers: usize,
    provider: u16,
) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let hub = hub::build(config(dir.path(), provider, workers)?, vault()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hub::run(hub, listener, async {
        let _ = stopped.await;
    }));
    Ok((base, stop, dir))
}

/// Actions accepted per second over `connections` connections for `length`.
async fn acceptance(length: Duration, connections: usize) -> anyhow::Result<(f64, usize, usize)> {
    let (base, stop, _dir) = serving(0, 9).await?;
    let url = format!("{base}/api/v1/tenants/bench/actions");
    let (accepted, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, accepted, refused) = (url.clone(), accepted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while started.elapsed() < length {
                i += 1;
                let body = serde_json::json!({ "action": "email:send", "input": {
                    "to": "jane@example.com", "subject": "Your visit", "text": "See you Monday." } });
                let answer = client
                    .post(&url)
                    .bearer_auth(APP_TOKEN)
                    .header("idempotency-key", format!("bench-{c}-{i}"))
                    .json(&body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().as_u16() == 202 => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let took = started.elapsed();
    let _ = stop.send(());
    let n = accepted.load(Ordering::Relaxed);
    Ok((
        n as f64 / took.as_secs_f64(),
        n,
        refused.load(Ordering::Relaxed),
    ))
}

/// `n` calls of each tool by each way, one after another; the hub's time of each (the
/// stand-in's own time taken off).
async fn tool_calls(n: usize) -> anyhow::Result<Vec<(&'static str, &'static str, Samples)>> {
    let spent = Arc::new(AtomicU64::new(0));
    let provider = twilio(spent.clone()).await?;
    let (base, stop, _dir) = serving(4, provider).await?;
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for (how, tool) in [
        ("retell", "lookup"),
        ("retell", "text"),
        ("mcp", "lookup"),
        ("mcp", "text"),
    ] {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + 5 {
            let before = spent.load(Ordering::Relaxed);
            let args = if tool == "text" {
                serde_json::json!({ "body": "12 Main St." })
            } else {
                serde_json::json!({})
            };
            let started = Instant::now();
            let ok = match how {
                "retell" => {
                    let body = serde_json::json!({ "name": tool, "args": args,
                        "call": { "call_id": format!("call_bench_{tool}_{i}"), "from_number": CALLER } })
                    .to_string();
                    let signature = plugin_sdk::schemes::sign_retell(
                        RETELL_KEY.as_bytes(),
                        body.as_bytes(),
                        hub::clock::now_ms() as u64,
                    );
                    let r = client
                        .post(format!("{base}/hooks/bench/retell/tools"))
                        .header("x-retell-signature", signature)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    r.status().is_success() && !r.text().await?.contains("\"error\"")
                }
                _ => {
                    let mut args = args.clone();
                    args["phone"] = CALLER.into();
                    if tool == "text" {
                        args["to"] = CALLER.into();
                        args.as_object_mut().map(|a| a.remove("phone"));
                    }
                    let call = serde_json::json!({ "jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": { "name": tool, "arguments": args } });
                    let r = client
                        .post(format!("{base}/mcp/bench"))
                        .bearer_auth(VOICE_TOKEN)
                        .header("accept", "application/json, text/event-stream")
                        .header("mcp-protocol-version", "2025-06-18")
                        .json(&call)
                        .send()
                        .await?;
                    let status = r.status();
                    let text = r.text().await?;
                    anyhow::ensure!(
                        status.is_success(),
                        "MCP tools/call answered {status}: {text}"
                    );
                    !text.contains("\"isError\":true") && !text.contains("\"error\"")
                }
            };
            let took = started.elapsed();
            anyhow::ensure!(ok, "the {how} call of `{tool}` failed");
            let provider_time = Duration::from_nanos(spent.load(Ordering::Relaxed) - before);
            if i >= 5 {
                samples.push(took.saturating_sub(provider_time));
            }
        }
        out.push((how, tool, Samples::of(samples)));
    }
    let _ = stop.send(());
    Ok(out)
}

/// Runs the part.
///
/// # Errors
/// When a hub cannot be built or a call fails.
pub async fn run(quick: bool) -> anyhow::Result<Figures> {
    let length = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    let (per_s, accepted, refused) = acceptance(length, 64).await?;
    println!(
        "   actions accepted: {accepted} in {:.0} s, {per_s:.0}/s ({refused} not 202)",
        length.as_secs_f64()
    );
    let calls = tool_calls(if quick { 100 } else { 400 }).await?;
    for (how, tool, s) in &calls {
        println!(
            "   tool call via {how}, {tool}: p50 {:.2} ms, p99 {:.2} ms (the hub's time)",
            s.us(0.5) / 1000.0,
            s.us(0.99) / 1000.0
        );
    }
    Ok(Figures {
        accepted_per_s: per_s,
        accepted,
        refused,
        tool_calls: calls,
    })
}
