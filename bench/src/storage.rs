//! The store alone: `Store::ingest` called in-process by as many concurrent tasks as the load
//! generator has connections, each storing one 1 KB delivery at a time (as a webhook request
//! does), with no HTTP and no signature. The ceiling the durable write path sets for ingest.

use std::time::{Duration, Instant};

use hub::clock::now_ms;
use hub::store::{NewDelivery, Store};

/// Deliveries per second, and how long the run took.
pub fn ingest_rate(
    concurrency: usize,
    total: usize,
    body: usize,
) -> anyhow::Result<(f64, Duration)> {
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Store::open(dir.path())?;
        let per_task = total.div_ceil(concurrency.max(1));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..concurrency.max(1) {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let delivery = NewDelivery {
                        tenant: format!("tenant-{:03}", (t + i) % 100).parse()?,
                        connector: "retell".parse()?,
                        route: String::new(),
                        method: "POST".into(),
                        identity: format!("{:016x}:call_started", rand::random::<u64>()),
                        event: Some("call_started".into()),
                        url: format!("http://127.0.0.1/hooks/tenant-{:03}/retell", (t + i) % 100),
                        headers: vec![
                            ("content-type".into(), "application/json".into()),
                            (
                                "x-retell-signature".into(),
                                format!("v={},d={}", now_ms(), "0".repeat(64)),
                            ),
                            ("user-agent".into(), "hub-bench".into()),
                        ],
                        body: vec![b'x'; body],
                        received_at_ms: now_ms(),
                        trace: None,
                    };
                    store.ingest(vec![delivery]).await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let took = started.elapsed();
        Ok((
            (per_task * concurrency.max(1)) as f64 / took.as_secs_f64(),
            took,
        ))
    })
}
