//! Routes through the real binary: events become durable actions with retries, backoff,
//! `Retry-After`, dead letters, and exactly one effect per event across crashes. The `probe`
//! connector publishes `probe.recorded` and offers the action `call`, which POSTs to a local
//! stand-in provider with the action's idempotency key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::util::*;

const KEY: &str = "key_alpha_auto_0123456789abcdef";

/// What the stand-in provider saw: per path, each request's idempotency key and arrival time.
#[derive(Default)]
struct Seen {
    requests: HashMap<String, Vec<(String, Instant)>>,
    /// Paths under `broken-` answer 422 until this is set.
    fixed: bool,
}

type Shared = Arc<Mutex<Seen>>;

/// A provider stand-in: `busy-*` 429 with `retry-after: 1` the first time, then 200;
/// `broken-*` 422 until fixed; `slow-*` 200 after 300 ms; anything else 200.
async fn provider() -> (u16, Shared) {
    async fn hook(
        State(seen): State<Shared>,
        Path(path): Path<String>,
        headers: HeaderMap,
    ) -> impl IntoResponse {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (count, fixed) = {
            let mut s = seen.lock().unwrap();
            let list = s.requests.entry(path.clone()).or_default();
            list.push((key, Instant::now()));
            (list.len(), s.fixed)
        };
        if path.starts_with("slow-") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if path.starts_with("busy-") && count == 1 {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response();
        }
        if path.starts_with("broken-") && !fixed {
            return (StatusCode::UNPROCESSABLE_ENTITY, "invalid recipient").into_response();
        }
        (StatusCode::OK, "{\"ok\":true}").into_response()
    }
    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook/{path}", axum::routing::post(hook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

fn config(hub: &TestHub, port: u16, workers: usize) -> String {
    let server = hub
        .server_section()
        .replace("workers = 4", &format!("workers = {workers}"));
    format!(
        r#"{server}
[connectors.probe]
path = "{wasm}"
allow_hosts = ["http://allowed.test"]
stand_ins = {{ "http://allowed.test" = "http://127.0.0.1:{port}" }}
timeout_ms = 2000
max_attempts = 3

[tenants.alpha]
name = "Alpha"
[tenants.alpha.connectors.probe.credentials]
api_key = "{key}"
token = "{token}"

[[tenants.alpha.routes]]
name = "notify provider"
on = "probe:probe.recorded"
when = "event.kind != 'note'"
action = "probe:call"
input = {{ path = "hook/{{{{ event.kind }}}}-{{{{ event.key }}}}" }}
"#,
        wasm = fixture("probe").display(),
        key = hub.seal_tenant("alpha", "probe", "api_key", KEY),
        token = hub.seal_tenant("alpha", "probe", "token", "tok-auto"),
    )
}

async fn started(workers: usize) -> (TestHub, Shared) {
    let (port, seen) = provider().await;
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, port, workers));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    (hub, seen)
}

/// Sends a signed `record` op; the probe publishes `probe.recorded` {kind, key}.
async fn record(hub: &TestHub, kind: &str, key: &str) {
    let body = serde_json::to_vec(&json!({ "id": format!("{kind}-{key}"), "op": "record", "kind": kind, "key": key, "data": {} })).unwrap();
    let sig = sign_retell(KEY.as_bytes(), &body, now_ms());
    let (status, text) = hub
        .post("/hooks/alpha/probe", &[("x-retell-signature", sig)], &body)
        .await;
    assert_eq!(status, 200, "{text}");
}

fn requests(seen: &Shared, path: &str) -> Vec<(String, Instant)> {
    seen.lock()
        .unwrap()
        .requests
        .get(path)
        .cloned()
        .unwrap_or_default()
}

async fn jobs_of(hub: &TestHub, kind: &str, key: &str) -> Vec<Value> {
    let d = hub
        .deliveries(Some("alpha"))
        .await
        .into_iter()
        .find(|d| {
            d["identity"]
                .as_str()
                .is_some_and(|i| i.ends_with(&format!("{kind}-{key}")))
        })
        .expect("the delivery is in the log");
    hub.api(&format!("/deliveries/{}", d["id"])).await["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_event_runs_its_route_action_once_and_a_false_condition_skips_it() {
    let (hub, seen) = started(4).await;
    record(&hub, "call", "k1").await;
    record(&hub, "note", "k2").await;
    record(&hub, "call", "k1").await; // the provider retries: a duplicate, not a second action
    let jobs = wait_for(20, "the route job of the skipped event", || async {
        let jobs = jobs_of(&hub, "note", "k2").await;
        jobs.iter()
            .any(|j| j["task"]["kind"] == "route" && j["state"] == "done")
            .then_some(jobs)
    })
    .await;
    assert!(
        requests(&seen, "note-k2").is_empty(),
        "a false condition runs no action: {jobs:?}"
    );
    let called = wait_for(20, "the action", || async {
        let r = requests(&seen, "call-k1");
        (!r.is_empty()).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        requests(&seen, "call-k1").len(),
        1,
        "one event, one action: {called:?}"
    );
    let jobs = jobs_of(&hub, "call", "k1").await;
    let route_job = jobs
        .iter()
        .find(|j| j["task"]["kind"] == "route")
        .expect("the delivery lists its route job");
    assert_eq!(route_job["state"], "done");
    assert_eq!(route_job["connector"], "probe");
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after_with_the_same_idempotency_key() {
    let (hub, seen) = started(4).await;
    record(&hub, "busy", "b1").await;
    let reqs = wait_for(20, "the retried action", || async {
        let r = requests(&seen, "busy-b1");
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert_eq!(reqs.len(), 2, "one 429, then one success");
    assert_eq!(
        reqs[0].0, reqs[1].0,
        "the retry carries the same idempotency key"
    );
    assert!(!reqs[0].0.is_empty());
    let waited = reqs[1].1 - reqs[0].1;
    assert!(
        waited >= Duration::from_millis(990),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    let jobs = wait_for(10, "the route job done", || async {
        let jobs = jobs_of(&hub, "busy", "b1").await;
        jobs.iter()
            .any(|j| j["task"]["kind"] == "route" && j["state"] == "done")
            .then_some(jobs)
    })
    .await;
    let route_job = jobs.iter().find(|j| j["task"]["kind"] == "route").unwrap();
    assert_eq!(route_job["attempts"], 2, "{route_job}");
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_then_replayed_after_the_fix() {
    let (hub, seen) = started(4).await;
    record(&hub, "broken", "x1").await;
    let jobs = wait_for(20, "the dead route job", || async {
        let jobs = jobs_of(&hub, "broken", "x1").await;
        jobs.iter()
            .any(|j| j["task"]["kind"] == "route" && j["state"] == "dead")
            .then_some(jobs)
    })
    .await;
    let dead = jobs.iter().find(|j| j["task"]["kind"] == "route").unwrap();
    let error = dead["last_error"].as_str().unwrap();
    assert!(
        error.contains("422") && error.contains("invalid recipient"),
        "the provider's message: {dead}"
    );
    assert_eq!(dead["attempts"], 1, "a 4xx is not retried");
    assert_eq!(requests(&seen, "broken-x1").len(), 1);

    let tenants = hub.api("/tenants").await;
    assert_eq!(
        tenants["tenants"][0]["health"]["probe"]["healthy"], false,
        "a dead letter shows: {tenants}"
    );
    assert_eq!(
        tenants["tenants"][0]["health"]["probe"]["jobs"]["dead"], 1,
        "{tenants}"
    );
    // The operator fixes the cause, then replays the tenant's dead letters.
    seen.lock().unwrap().fixed = true;
    let (ok, out, err) = hub.command(
        &["replay", "--dead", "--tenant", "alpha"],
        Some(&hub.key_text()),
    );
    assert!(ok, "{out}{err}");
    wait_for(20, "the replayed job done", || async {
        let jobs = jobs_of(&hub, "broken", "x1").await;
        jobs.iter()
            .any(|j| j["task"]["kind"] == "route" && j["state"] == "done")
            .then_some(())
    })
    .await;
    let reqs = requests(&seen, "broken-x1");
    assert_eq!(reqs.len(), 2, "one failed call, one replayed call");
    assert_eq!(reqs[0].0, reqs[1].0, "the replay keeps the idempotency key");
    // Replaying the (done) delivery itself re-runs its handling but never acts again.
    let (ok, out, err) = hub.command(
        &[
            "replay",
            "--delivery",
            &delivery_id(&hub, "broken", "x1").await.to_string(),
        ],
        Some(&hub.key_text()),
    );
    assert!(ok, "{out}{err}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        requests(&seen, "broken-x1").len(),
        2,
        "a replayed delivery does not act twice"
    );
}

async fn delivery_id(hub: &TestHub, kind: &str, key: &str) -> i64 {
    hub.deliveries(Some("alpha"))
        .await
        .into_iter()
        .find(|d| {
            d["identity"]
                .as_str()
                .is_some_and(|i| i.ends_with(&format!("{kind}-{key}")))
        })
        .and_then(|d| d["id"].as_i64())
        .expect("the delivery is in the log")
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_chain_loses_nothing_and_doubles_nothing() {
    let (mut hub, seen) = started(2).await;
    let n = 20;
    for i in 0..n {
        record(&hub, "slow", &format!("s{i}")).await;
    }
    // Let some actions be in flight (each takes 300 ms at the provider), then kill.
    wait_for(20, "the first actions", || async {
        (!requests(&seen, "slow-s0").is_empty()).then_some(())
    })
    .await;
    hub.kill();
    let before: usize = (0..n)
        .filter(|i| !requests(&seen, &format!("slow-s{i}")).is_empty())
        .count();
    assert!(
        before < n,
        "the kill must land mid-chain ({before} of {n} reached the provider)"
    );
    hub.start().await;
    wait_for(60, "every event's action", || async {
        (0..n)
            .all(|i| !requests(&seen, &format!("slow-s{i}")).is_empty())
            .then_some(())
    })
    .await;
    for i in 0..n {
        let reqs = requests(&seen, &format!("slow-s{i}"));
        let mut keys: Vec<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        assert_eq!(
            keys.len(),
            1,
            "event s{i} acted under one idempotency key only: {reqs:?}"
        );
    }
}

/// Two hubs on one database (the SQLite file, or PostgreSQL in `e2e-postgres`) under signed
/// load sent to both, one of them killed with `kill -9` at a random moment and started again,
/// four times: every acknowledged webhook is stored once, kept as one record, and acted on at
/// the provider under one idempotency key, whichever hub took it and whichever ran its job;
/// a schedule ticking every second meanwhile runs each tick once and keeps ticking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_under_kill_9_act_once_on_every_acknowledged_webhook() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (port, seen) = provider().await;
    let mut hub = TestHub::new();
    let beat = "\n[[tenants.alpha.schedules]]\nname = \"beat\"\ncron = \"* * * * * *\"\n\
                connector = \"probe\"\njob = \"tick\"\ninput = { key = \"beat\" }\n";
    hub.write_config(&format!("{}{beat}", config(&hub, port, 4)));
    hub.start().await;
    let started_ms = now_ms();
    let mut other = Some(hub.start_sibling("other").await);
    let ports = Arc::new(Mutex::new([hub.port, other.as_ref().unwrap().port]));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (ports, acked, stop) = (ports.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{i}");
                let port = ports.lock().unwrap()[(i % 2) as usize];
                let body = serde_json::to_vec(&json!({ "id": format!("load-{key}"), "op": "record", "kind": "load", "key": key, "data": {} })).unwrap();
                let sent = client
                    .post(format!("http://127.0.0.1:{port}/hooks/alpha/probe"))
                    .header(
                        "x-retell-signature",
                        sign_retell(KEY.as_bytes(), &body, now_ms()),
                    )
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                // A hub being killed answers nothing or 503: the provider would retry; only
                // what was acknowledged must be there.
                if sent.is_ok_and(|r| r.status() == 200) {
                    acked.lock().unwrap().push(key);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(300 + rand::random::<u64>() % 1200)).await;
        if round % 2 == 0 {
            hub.kill();
            hub.start().await;
        } else {
            drop(other.take()); // kill -9
            let restarted = hub.start_sibling("other").await;
            ports.lock().unwrap()[1] = restarted.port;
            other = Some(restarted);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "load reached the hubs: {} acknowledged",
        acked.len()
    );
    wait_for(90, "every acknowledged webhook's action", || async {
        acked
            .iter()
            .all(|k| !requests(&seen, &format!("load-{k}")).is_empty())
            .then_some(())
    })
    .await;
    for k in &acked {
        let reqs = requests(&seen, &format!("load-{k}"));
        let mut keys: Vec<&str> = reqs.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        assert_eq!(
            keys.len(),
            1,
            "{k} acted under one idempotency key: {reqs:?}"
        );
    }
    let log = all_pages(&hub, "/deliveries?tenant=alpha&limit=500", "deliveries").await;
    for k in &acked {
        let identity = format!("load-{k}");
        let stored = log
            .iter()
            .filter(|d| {
                d["identity"]
                    .as_str()
                    .is_some_and(|i| i.ends_with(&identity))
            })
            .count();
        assert_eq!(stored, 1, "{k} is stored once");
    }
    let records = all_pages(
        &hub,
        "/tenants/alpha/records?kind=load&limit=500",
        "records",
    )
    .await;
    for k in &acked {
        let kept = records.iter().filter(|r| r["key"] == k.as_str()).count();
        assert_eq!(kept, 1, "{k} is one record");
    }
    // The schedule: one job per tick, each run to its end, ticking on through every kill
    // (a gap only where a run killed with its hub held the schedule until its lease expired).
    let stopped_ms = now_ms();
    let beats = wait_for(60, "every tick's job done", || async {
        let jobs = all_pages(
            &hub,
            "/jobs?tenant=alpha&key_prefix=schedule:alpha:beat:&limit=500",
            "jobs",
        )
        .await;
        jobs.iter().all(|j| j["state"] == "done").then_some(jobs)
    })
    .await;
    let mut ticks: Vec<u64> = beats
        .iter()
        .map(|j| {
            let key = j["idempotency_key"].as_str().unwrap();
            key.rsplit(':').next().unwrap().parse().unwrap()
        })
        .filter(|t| *t <= stopped_ms)
        .collect();
    ticks.sort_unstable();
    let all = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), all, "each tick queued once: {ticks:?}");
    let seconds = (stopped_ms - started_ms) / 1_000;
    // A run killed with its hub holds the schedule until its lease expires: those seconds
    // have no tick by design; every other second has one (half of them, for the restarts).
    let held: u64 = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|gap| *gap > 3_000)
        .map(|gap| gap / 1_000)
        .sum();
    assert!(
        ticks.len() as u64 * 2 >= seconds.saturating_sub(held),
        "{} ticks run in {seconds} s ({held} s held by killed runs): {ticks:?}",
        ticks.len()
    );
    let longest_gap = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest_gap <= 9_000 + 3_000,
        "the schedule kept ticking through the kills (longest gap {longest_gap} ms): {ticks:?}"
    );
    assert!(
        ticks.last().is_some_and(|t| t + 3_000 >= stopped_ms),
        "still ticking at the end: {ticks:?}"
    );
    println!(
        "two hubs, 4 kill -9 rounds: {} webhooks acknowledged, each acted on once; {} ticks in {seconds} s, each run once (longest gap {longest_gap} ms)",
        acked.len(),
        ticks.len()
    );
}

/// Every row of a paged list, following its `next` links.
async fn all_pages(hub: &TestHub, first: &str, field: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut path = first.to_string();
    loop {
        let page = hub.api(&path).await;
        rows.extend(page[field].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches("/api/v1").to_string(),
            None => return rows,
        }
    }
}
