//! The console (`--only console`), in-process on the hub library: the server time of each
//! console page (`server::router`, a logged-in admin session) with 1,000,000 deliveries (their
//! jobs queued) and 1,000,000 call records stored for one tenant, and the weight of the log page
//! with its stylesheet and script.

use std::time::{Duration, Instant};

use tower::ServiceExt as _;

/// What the part measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Deliveries (and records) stored.
    pub rows: usize,
    /// `(page, p95)`.
    pub pages: Vec<(String, Duration)>,
    /// Bytes of the log page's HTML (50 rows).
    pub log_bytes: usize,
    /// Bytes of its stylesheet and script.
    pub asset_bytes: usize,
}

/// Logs in with the admin token; the session cookie.
async fn login(router: &axum::Router) -> anyhow::Result<String> {
    let req = axum::http::Request::post("/console/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(axum::body::Body::from(format!(
            "token={}",
            crate::app::ADMIN
        )))?;
    let resp = router.clone().oneshot(req).await?;
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("the login set no cookie ({})", resp.status()))?;
    Ok(cookie.to_string())
}

/// One page: its body, after checking it answered 200.
async fn get(router: &axum::Router, cookie: &str, path: &str) -> anyhow::Result<axum::body::Bytes> {
    let req = axum::http::Request::get(path)
        .header("cookie", cookie)
        .body(axum::body::Body::empty())?;
    let resp = router.clone().oneshot(req).await?;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    anyhow::ensure!(status.is_success(), "{path}: {status}");
    Ok(body)
}

async fn p95(
    router: &axum::Router,
    cookie: &str,
    path: &str,
    samples: usize,
) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        get(router, cookie, path).await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[(samples * 95 / 100).min(samples - 1)])
}

/// Every figure of the part.
pub async fn run(quick: bool) -> anyhow::Result<Figures> {
    let rows = if quick { 100_000 } else { 1_000_000 };
    let (_dir, hub) = crate::app::stored(rows).await?;
    let router = hub::server::router(hub.clone());
    let cookie = login(&router).await?;
    let middle = rows / 2;
    let samples = if quick { 10 } else { 20 };
    let mut pages = Vec::new();
    for (name, path) in [
        ("log, first page", "/console/deliveries".to_string()),
        (
            "log, a page in the middle",
            format!("/console/deliveries?before={middle}"),
        ),
        (
            "log, one tenant and state",
            "/console/deliveries?tenant=bench&state=received".to_string(),
        ),
        (
            "log, by identity",
            format!("/console/deliveries?q=d{middle}"),
        ),
        ("a delivery", format!("/console/deliveries/{middle}")),
        ("jobs", "/console/jobs".to_string()),
        (
            "dead letters (count)",
            "/console/dead?tenant=bench".to_string(),
        ),
        ("refused requests", "/console/rejected".to_string()),
        (
            "records of a kind",
            "/console/tenants/bench/records?kind=call".to_string(),
        ),
        (
            "tenants x connectors status",
            "/console/tenants".to_string(),
        ),
        (
            "a tenant's analytics (30 days)",
            "/console/tenants/bench".to_string(),
        ),
    ] {
        let t = p95(&router, &cookie, &path, samples).await?;
        println!("   {name}: p95 {:.1} ms", t.as_secs_f64() * 1e3);
        pages.push((name.to_string(), t));
    }
    let log_bytes = get(&router, &cookie, "/console/deliveries").await?.len();
    let css = get(&router, &cookie, "/console/assets/console.css")
        .await?
        .len();
    let js = get(&router, &cookie, "/console/assets/console.js")
        .await?
        .len();
    println!(
        "   log page: {:.1} KB of HTML + {:.1} KB of assets",
        log_bytes as f64 / 1024.0,
        (css + js) as f64 / 1024.0
    );
    Ok(Figures {
        rows,
        pages,
        log_bytes,
        asset_bytes: css + js,
    })
}
