//! `hub test-connector` (`--only fixtures`): 1,000 fixtures through the real sandbox, on the
//! runner the command uses (`hub::fixtures::run`), with the bundled Make connector: a third
//! scenario posts (records and an event), a third `trigger_webhook` and a third `run_scenario`
//! (each one outbound request to a loopback stand-in). The goal: under 1 ms per fixture on a warm
//! compile cache.

use std::time::{Duration, Instant};

use hub::fixtures::Fixture;
use hub::fixtures::run::{Limits, Runner};
use hub::id::ConnectorId;

/// What the part measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Fixtures run.
    pub fixtures: usize,
    /// Loading the connector with an empty compile cache, then with a warm one.
    pub load_cold: Duration,
    /// The same, warm.
    pub load_warm: Duration,
    /// Wall time of all the fixtures, warm.
    pub total: Duration,
    /// Median and p95 of one fixture.
    pub p50: Duration,
    /// p95.
    pub p95: Duration,
}

impl Figures {
    /// Mean time per fixture.
    pub fn per_fixture(&self) -> Duration {
        self.total / self.fixtures.max(1) as u32
    }
}

fn fixture(i: usize) -> Fixture {
    let text = match i % 3 {
        0 => format!(
            r#"{{"delivery": {{"headers": {{"content-type": "application/json", "idempotency-key": "exec-{i}"}},
                "body": {{"event": "lead.created", "data": {{"name": "Lead {i}", "email": "lead{i}@example.com"}}}}}}}}"#
        ),
        1 => format!(
            r#"{{"credentials": {{"webhook_url": "https://hook.us1.make.com/2f4kq8yw1n3m"}},
                "action": {{"name": "trigger_webhook", "input": {{"data": {{"n": {i}}}}}, "key": "k{i}"}},
                "http": [{{"url": "https://hook.us1.make.com/", "body": "Accepted"}}]}}"#
        ),
        _ => format!(
            r#"{{"config": {{"zone": "us1"}},
                "action": {{"name": "run_scenario", "input": {{"scenario_id": {i}}}, "key": "r{i}"}},
                "http": [{{"url": "https://us1.make.com/api/v2/scenarios/", "body": {{"executionId": "e{i}"}}}}]}}"#
        ),
    };
    Fixture::parse(&text).expect("the bench's fixtures parse")
}

pub async fn run(quick: bool) -> anyhow::Result<Figures> {
    let n = if quick { 300 } else { 1000 };
    let make: ConnectorId = "make".parse()?;
    let wasm = hub::state::connector_bytes(&make, &hub::config::ConnectorSource::Builtin)?;
    let dir = tempfile::tempdir()?;
    let limits = Limits::default();
    let started = Instant::now();
    let cold = Runner::new_in(dir.path(), &dir.path().join("cold"), &wasm, &limits).await?;
    let load_cold = started.elapsed();
    drop(cold);
    let started = Instant::now();
    let runner = Runner::new_in(dir.path(), &dir.path().join("warm"), &wasm, &limits).await?;
    let load_warm = started.elapsed();
    let fixtures: Vec<Fixture> = (0..n).map(fixture).collect();
    // A few to warm the instance pool and the loopback connections.
    for (i, f) in fixtures.iter().take(9).enumerate() {
        runner.run(f, i as u64).await.map_err(anyhow::Error::msg)?;
    }
    let mut each = Vec::with_capacity(n);
    let all = Instant::now();
    for (i, f) in fixtures.iter().enumerate() {
        let t = Instant::now();
        let ran = runner.run(f, i as u64).await.map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            ran.output.get("error").is_none(),
            "fixture {i} failed: {}",
            ran.output
        );
        each.push(t.elapsed());
    }
    let total = all.elapsed();
    each.sort();
    let figures = Figures {
        fixtures: n,
        load_cold,
        load_warm,
        total,
        p50: each[n / 2],
        p95: each[n * 95 / 100],
    };
    println!(
        "   {n} fixtures: {:.0} µs each (p50 {:.0} µs, p95 {:.0} µs); loading the connector {:.0} ms cold, {:.1} ms warm",
        figures.per_fixture().as_secs_f64() * 1e6,
        figures.p50.as_secs_f64() * 1e6,
        figures.p95.as_secs_f64() * 1e6,
        load_cold.as_secs_f64() * 1e3,
        load_warm.as_secs_f64() * 1e3
    );
    Ok(figures)
}
