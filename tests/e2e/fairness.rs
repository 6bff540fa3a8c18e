//! Fairness under a hostile tenant. Its own test binary (`e2e-alone`): cargo runs test binaries
//! one at a time, so no other test of the suite competes for the two cores while one tenant's
//! connector spins, allocates and recurses. What it asserts is an order, not a time: the
//! latency figures it prints are for reading; the timed comparison lives in `hub-bench`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::hostile_kit::*;
use crate::util::*;

/// One tenant's hostile connector invocations (endless loops, memory bombs, deep recursion,
/// host-call floods, long spins, retried with backoff) fill the queue; then another tenant's
/// deliveries arrive. Asserted: every one of the other tenant's deliveries completes while most
/// of the hostile backlog, queued before them, has not even started (a first-come queue would
/// have run every hostile invocation once first: about 20 s of time limits); each hostile
/// invocation is stopped with its reason logged; and the hostile tenant is put on probation (one
/// invocation at a time), which is what keeps its spinning guests from taking both cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tenant_load_leaves_other_tenants_deliveries_flowing() {
    let (mock, _) = mock_api().await;
    let hub = started(mock, &Opts::default()).await;

    // Warm up (first instantiations), then a quiet baseline, printed for comparison.
    beta_round(&hub, "warm", 4).await;
    let (quiet_acks, quiet_proc) = beta_round(&hub, "quiet", 20).await;

    // The hostile load: alpha's misbehaving invocations fill the queue and retry.
    let hostile: Vec<Value> = (0..12)
        .map(|i| json!({ "id": format!("loop{i}"), "op": "loop" }))
        .chain((0..4).map(|i| json!({ "id": format!("alloc{i}"), "op": "alloc", "mb": 256 })))
        .chain((0..2).map(|i| json!({ "id": format!("recurse{i}"), "op": "recurse" })))
        .chain((0..2).map(|i| json!({ "id": format!("flood{i}"), "op": "flood", "call": "kv_get" })))
        .chain((0..8).map(|i| json!({ "id": format!("spin{i}"), "op": "spin", "ms": 900, "kind": "spun", "key": format!("{i}") })))
        .collect();
    for op in &hostile {
        send_ok(&hub, "alpha", op.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (load_acks, load_proc) = beta_round(&hub, "load", 20).await;

    // The moment beta's last delivery is done: how much of alpha's backlog is still untouched.
    let alpha = hub.deliveries(Some("alpha")).await;
    let untouched = alpha
        .iter()
        .filter(|d| d["attempts"].as_i64() == Some(0))
        .count();
    let show = |name: &str, s: &[Duration]| {
        let (p50, p95, max) = summary(s);
        println!("{name:>32}: p50 {p50:7.1} ms, p95 {p95:7.1} ms, max {max:7.1} ms");
    };
    show("beta ack, quiet", &quiet_acks);
    show("beta ack, alpha hostile", &load_acks);
    show("beta processing, quiet", &quiet_proc);
    show("beta processing, alpha hostile", &load_proc);
    println!(
        "when beta's 20 deliveries were done, {untouched} of alpha's {} hostile invocations had not started",
        hostile.len()
    );
    assert_eq!(
        alpha.len(),
        hostile.len(),
        "every hostile delivery was stored"
    );
    assert!(
        untouched * 2 >= hostile.len(),
        "beta's deliveries waited behind alpha's backlog: only {untouched} of {} hostile \
         invocations, all queued before beta's, were still waiting when beta's were done",
        hostile.len()
    );
    assert_hostile_invocations_stopped(&hub).await;
}

/// Sends `n` of beta's deliveries 50 ms apart and waits until all are done. Returns their
/// acknowledgement times and their processing times (arrival to done).
async fn beta_round(hub: &TestHub, tag: &str, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut acks = Vec::new();
    for i in 0..n {
        let body = json!({ "id": format!("{tag}{i}"), "op": "record", "kind": tag, "key": format!("{i}"), "data": { "i": i } });
        acks.push(send_ok(hub, "beta", body).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = wait_for(60, &format!("all of beta's {tag} deliveries"), || async {
        let rows: Vec<Value> = hub
            .deliveries(Some("beta"))
            .await
            .into_iter()
            .filter(|d| {
                d["identity"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(&format!(":{tag}")))
            })
            .collect();
        (rows.len() == n && rows.iter().all(|d| d["state"] == "done")).then_some(rows)
    })
    .await;
    let processing = rows
        .iter()
        .map(|d| {
            let ms = d["processed_at_ms"].as_i64().unwrap() - d["received_at_ms"].as_i64().unwrap();
            Duration::from_millis(ms.max(0) as u64)
        })
        .collect();
    (acks, processing)
}

/// Every hostile invocation was stopped, with its reason logged, and alpha was put on probation.
async fn assert_hostile_invocations_stopped(hub: &TestHub) {
    for (prefix, reason) in [
        ("loop", "time limit"),
        ("alloc", "memory limit"),
        ("recurse", "stack overflow"),
        ("flood", "host calls"),
    ] {
        // On probation alpha's backlog runs one invocation at a time: about 25 s of limits.
        let d = settled(hub, "alpha", &format!("{prefix}0"), 120).await;
        let error = d["last_error"].as_str().unwrap_or("");
        assert!(error.contains(reason), "{prefix}: {d}");
    }
    let log = hub.log();
    for reason in [
        "exceeded its time limit",
        "exceeded its memory limit",
        "stack overflow",
        "more than 10000 host calls",
        "one invocation at a time for the next 60 s",
    ] {
        assert!(
            log.contains(reason),
            "the hub logs each stopped invocation with its reason, and the probation: {reason}"
        );
    }
    assert!(healthy(hub).await);
}
