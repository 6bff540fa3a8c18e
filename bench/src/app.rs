//! The app's side, in-process on the hub library (`--only app`):
//! - webhooks to the app per second: a hub (`state::build` + `run`, 16 workers) drains queued
//!   `Task::Webhook` jobs to a local receiver on the same cores, which verifies every signature;
//! - change-feed records read per second: `Store::changes` pages of 500 over 100,000 records;
//! - p95 of the list endpoints' first and 100th page (`server::router`, admin token) with
//!   1,000,000 deliveries and 1,000,000 records stored (100 tenants).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hub::clock::now_ms;
use hub::config::Config;
use hub::secrets::{Place, Vault};
use hub::store::{Effects, NewDelivery, NewJob, RecordWrite, Store, Task};
use plugin_sdk::schemes::{self, Policy, Scheme};
use secrecy::SecretSlice;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub(crate) const ADMIN: &str = "bench-admin-token";

/// What the part measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Webhooks delivered (and verified) per second, and how many.
    pub webhooks_per_s: f64,
    /// How many.
    pub webhooks: usize,
    /// Change-feed records read per second, and how many.
    pub feed_per_s: f64,
    /// How many.
    pub feed_records: usize,
    /// `(list, page, p95)` for each list.
    pub pages: Vec<(String, usize, Duration)>,
    /// Rows stored for the list figures.
    pub rows: usize,
}

fn config(dir: &std::path::Path, receiver: u16, workers: usize) -> anyhow::Result<Config> {
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

[tenants.bench.connectors.retell]
[tenants.bench.endpoints.app]
url = "http://127.0.0.1:{receiver}/hooks"
events = ["*"]
allow_private = true
concurrency = 16
secret = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
"#
    );
    Ok(Config::from_str(&toml, &dir.join("hub.toml"))?)
}

fn vault() -> Vault {
    let mut vault = Vault::new();
    vault.insert(
        Place::Endpoint {
            tenant: "bench".into(),
            name: "app".into(),
            field: "secret".into(),
        },
        SecretSlice::from(SECRET.as_bytes().to_vec()),
    );
    vault.insert(
        Place::Server {
            field: "admin_token".into(),
        },
        SecretSlice::from(ADMIN.as_bytes().to_vec()),
    );
    vault
}

/// A receiver that verifies each webhook and counts the good ones.
async fn receiver(count: Arc<AtomicUsize>) -> anyhow::Result<u16> {
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let count = count.clone();
            async move {
                let list: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let req = schemes::Request {
                    method: "POST",
                    url: "http://127.0.0.1/hooks",
                    headers: &list,
                    body: &body,
                    path_token: None,
                };
                let ok = schemes::verify(
                    &Scheme::StandardWebhooks,
                    SECRET.as_bytes(),
                    &req,
                    &Policy::at(now_ms() as u64),
                )
                .is_ok();
                if ok {
                    count.fetch_add(1, Ordering::Relaxed);
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::BAD_REQUEST
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// Webhooks to the app: `n` queued, then drained by a hub with 16 workers.
async fn webhooks(n: usize) -> anyhow::Result<(f64, usize)> {
    let dir = tempfile::tempdir()?;
    let count = Arc::new(AtomicUsize::new(0));
    let port = receiver(count.clone()).await?;
    let hub = hub::build(config(dir.path(), port, 16)?, vault()).await?;
    let payload =
        serde_json::json!({ "call_id": "call_x", "status": "ended", "summary": "x".repeat(400) })
            .to_string();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let jobs = chunk.iter().map(|i| NewJob {
            tenant: "bench".parse().expect("id"),
            connector: "retell".parse().expect("id"),
            task: Task::Webhook {
                endpoint: "app".into(),
                event_type: "retell.call.analyzed".into(),
                payload: payload.clone(),
                at_ms: now_ms(),
            },
            run_at_ms: now_ms(),
            idempotency_key: Some(format!("bench:{i}")),
            trace: None,
        });
        for job in jobs {
            hub.store.enqueue(job).await?;
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let server = tokio::spawn(hub::run(hub.clone(), listener, async {
        let _ = stopped.await;
    }));
    while count.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {n} webhooks arrived",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    Ok((n as f64 / took.as_secs_f64(), n))
}

fn record(key: String) -> RecordWrite {
    RecordWrite {
        kind: "call".into(),
        data: Some(
            serde_json::json!({ "call_id": key, "status": "ended", "summary": "x".repeat(300) })
                .to_string(),
        ),
        key,
    }
}

/// Change-feed reads: `n` records written, then read back in pages of 500.
async fn feed(n: usize) -> anyhow::Result<(f64, usize)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let tenant: hub::id::TenantId = "bench".parse()?;
    let connector: hub::id::ConnectorId = "retell".parse()?;
    for start in (0..n).step_by(1000) {
        let records = (start..(start + 1000).min(n))
            .map(|i| record(format!("call_{i:07}")))
            .collect();
        let effects = Effects {
            records,
            ..Default::default()
        };
        store.apply(&tenant, &connector, effects).await?;
    }
    let started = Instant::now();
    let (mut after, mut read) = (0, 0);
    loop {
        let page = store.changes(tenant.clone(), after, None, 500).await?;
        let Some(last) = page.changes.last() else {
            break;
        };
        after = last.seq;
        read += page.changes.len();
    }
    anyhow::ensure!(read == n, "read {read} of {n}");
    Ok((read as f64 / started.elapsed().as_secs_f64(), read))
}

/// p95 of one request through the router, `samples` times.
async fn p95(router: &axum::Router, path: &str, samples: usize) -> anyhow::Result<Duration> {
    use tower::ServiceExt as _;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let req = axum::http::Request::get(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(axum::body::Body::empty())?;
        let t = Instant::now();
        let resp = router.clone().oneshot(req).await?;
        let status = resp.status();
        let _ = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        times.push(t.elapsed());
        anyhow::ensure!(status.is_success(), "{path}: {status}");
    }
    times.sort();
    Ok(times[(samples * 95 / 100).min(samples - 1)])
}

/// The `next` link of a page, `hops` pages in.
async fn page_link(
    router: &axum::Router,
    first: &str,
    list: &str,
    hops: usize,
) -> anyhow::Result<String> {
    use tower::ServiceExt as _;
    let mut link = first.to_string();
    for _ in 0..hops {
        let req = axum::http::Request::get(&link)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(axum::body::Body::empty())?;
        let resp = router.clone().oneshot(req).await?;
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        link = v["next"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{list}: no next page"))?
            .to_string();
    }
    Ok(link)
}

/// A hub without workers holding `rows` deliveries (their jobs queued) and `rows` call records
/// of one tenant, `bench`; and the folder it keeps them in.
pub async fn stored(rows: usize) -> anyhow::Result<(tempfile::TempDir, Arc<hub::Hub>)> {
    let dir = tempfile::tempdir()?;
    let hub = hub::build(config(dir.path(), 9, 0)?, vault()).await?;
    let tenant: hub::id::TenantId = "bench".parse()?;
    let connector: hub::id::ConnectorId = "retell".parse()?;
    for start in (0..rows).step_by(1000) {
        let batch: Vec<NewDelivery> = (start..(start + 1000).min(rows))
            .map(|i| NewDelivery {
                tenant: tenant.clone(),
                connector: connector.clone(),
                route: String::new(),
                method: "POST".into(),
                identity: format!("d{i}"),
                event: Some("call_ended".into()),
                url: "http://127.0.0.1/hooks/bench/retell".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: vec![b'x'; 512],
                received_at_ms: now_ms(),
                trace: None,
            })
            .collect();
        hub.store.ingest(batch).await?;
        let records = (start..(start + 1000).min(rows))
            .map(|i| record(format!("call_{i:07}")))
            .collect();
        let effects = Effects {
            records,
            ..Default::default()
        };
        hub.store.apply(&tenant, &connector, effects).await?;
    }
    Ok((dir, hub))
}

/// The list figures: `rows` deliveries and `rows` records, one tenant.
async fn lists(rows: usize) -> anyhow::Result<Vec<(String, usize, Duration)>> {
    let (_dir, hub) = stored(rows).await?;
    let router = hub::server::router(hub.clone());
    let mut out = Vec::new();
    for (list, first) in [
        ("deliveries", "/api/v1/deliveries?tenant=bench&limit=50"),
        (
            "records",
            "/api/v1/tenants/bench/records?kind=call&limit=50",
        ),
        ("jobs", "/api/v1/jobs?tenant=bench&limit=50"),
    ] {
        for page in [1, 100] {
            let link = page_link(&router, first, list, page - 1).await?;
            out.push((list.to_string(), page, p95(&router, &link, 100).await?));
        }
    }
    Ok(out)
}

/// Every figure of the part.
pub async fn run(quick: bool) -> anyhow::Result<Figures> {
    let n = if quick { 5_000 } else { 20_000 };
    let (webhooks_per_s, webhooks) = webhooks(n).await?;
    println!("   webhooks to the app: {webhooks_per_s:.0}/s ({webhooks} signed, verified)");
    let (feed_per_s, feed_records) = feed(if quick { 20_000 } else { 100_000 }).await?;
    println!("   change feed: {feed_per_s:.0} records/s read ({feed_records})");
    let rows = if quick { 100_000 } else { 1_000_000 };
    let pages = lists(rows).await?;
    for (list, page, t) in &pages {
        println!(
            "   {list}, page {page} of 50 rows ({rows} stored): p95 {:.2} ms",
            t.as_secs_f64() * 1e3
        );
    }
    Ok(Figures {
        webhooks_per_s,
        webhooks,
        feed_per_s,
        feed_records,
        pages,
        rows,
    })
}
