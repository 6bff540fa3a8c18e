//! Fairness under a hostile tenant, timed. Its own test binary (`e2e-alone`): cargo runs test
//! binaries one at a time, so no other test of the suite competes for the two cores while it
//! compares a quiet baseline with the same figures under load.

use std::time::Duration;

use serde_json::{Value, json};

use crate::hostile_kit::*;
use crate::util::*;

/// One tenant's hostile connector invocations (endless loops, memory bombs, deep recursion,
/// host-call floods, long spins, retried with backoff) while another tenant's deliveries keep
/// arriving. The other tenant's ack latency and processing latency are measured without and
/// with that load, in the same test, and printed. Asserted: every one of the other tenant's
/// deliveries completes; its acknowledgement p50 and its processing p50 each stay within 2x of
/// the quiet figure (plus 1 ms: processing times are stored in whole milliseconds and the quiet
/// figure is about 2 ms); each hostile invocation is stopped with its reason logged; and the
/// hostile tenant is put on probation (one invocation at a time), which is what keeps its
/// spinning guests from taking both cores.
///
/// This is a timed comparison on a shared machine, so other work on it (another build, another
/// test run) can slow the loaded half alone. A comparison outside 2x is therefore taken again on
/// a fresh hub, up to three times, and the test fails when every attempt is outside 2x: a hub
/// whose hostile tenant really slows the others fails all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tenant_load_leaves_other_tenants_deliveries_flowing() {
    const ATTEMPTS: usize = 3;
    let (mock, _) = mock_api().await;
    for attempt in 1..=ATTEMPTS {
        let hub = started(mock, &Opts::default()).await;
        let m = compare(&hub).await;
        let within = m.within_2x();
        if !within && attempt < ATTEMPTS {
            println!("attempt {attempt} was outside 2x: measuring again on a fresh hub\n");
            continue;
        }
        assert!(
            m.ack.1 <= 2.0 * m.ack.0 + 1.0,
            "beta's acks slowed down more than 2x in each of {ATTEMPTS} attempts; the last: p50 {:.1} -> {:.1} ms",
            m.ack.0,
            m.ack.1
        );
        assert!(
            m.processing.1 <= 2.0 * m.processing.0 + 1.0,
            "beta's processing slowed down more than 2x in each of {ATTEMPTS} attempts; the last: p50 {:.1} -> {:.1} ms",
            m.processing.0,
            m.processing.1
        );
        assert_hostile_invocations_stopped(&hub, m.processing_max).await;
        return;
    }
}

/// Beta's p50 figures, quiet and then under alpha's hostile load, in milliseconds.
struct Comparison {
    ack: (f64, f64),
    processing: (f64, f64),
    /// The longest beta waited for a delivery under load.
    processing_max: f64,
}

impl Comparison {
    /// Within 2x, plus 1 ms: processing times are stored in whole milliseconds and the quiet
    /// figure is about 2 ms.
    fn within_2x(&self) -> bool {
        self.ack.1 <= 2.0 * self.ack.0 + 1.0 && self.processing.1 <= 2.0 * self.processing.0 + 1.0
    }
}

/// Beta's quiet baseline, then alpha's hostile load and beta's figures under it.
async fn compare(hub: &TestHub) -> Comparison {
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
                let ms =
                    d["processed_at_ms"].as_i64().unwrap() - d["received_at_ms"].as_i64().unwrap();
                Duration::from_millis(ms.max(0) as u64)
            })
            .collect();
        (acks, processing)
    }

    // Warm up (first instantiations), then the quiet baseline.
    beta_round(hub, "warm", 4).await;
    let (quiet_acks, quiet_proc) = beta_round(hub, "quiet", 20).await;

    // The hostile load: alpha's misbehaving invocations fill the queue and retry.
    // About 20 s of worker time: far more than one time limit, as a hostile tenant's would be.
    let hostile: Vec<Value> = (0..12)
        .map(|i| json!({ "id": format!("loop{i}"), "op": "loop" }))
        .chain((0..4).map(|i| json!({ "id": format!("alloc{i}"), "op": "alloc", "mb": 256 })))
        .chain((0..2).map(|i| json!({ "id": format!("recurse{i}"), "op": "recurse" })))
        .chain((0..2).map(|i| json!({ "id": format!("flood{i}"), "op": "flood", "call": "kv_get" })))
        .chain((0..8).map(|i| json!({ "id": format!("spin{i}"), "op": "spin", "ms": 900, "kind": "spun", "key": format!("{i}") })))
        .collect();
    for op in &hostile {
        send_ok(hub, "alpha", op.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (load_acks, load_proc) = beta_round(hub, "load", 20).await;

    let show = |name: &str, s: &[Duration]| {
        let (p50, p95, max) = summary(s);
        println!("{name:>32}: p50 {p50:7.1} ms, p95 {p95:7.1} ms, max {max:7.1} ms");
        (p50, p95, max)
    };
    let (qa50, _, _) = show("beta ack, quiet", &quiet_acks);
    let (la50, _, _) = show("beta ack, alpha hostile", &load_acks);
    let (qp50, _, _) = show("beta processing, quiet", &quiet_proc);
    let (lp50, _, lpmax) = show("beta processing, alpha hostile", &load_proc);
    println!(
        "ratios under load: ack p50 x{:.2}, processing p50 x{:.2}",
        la50 / qa50.max(0.001),
        lp50 / qp50.max(0.001)
    );
    Comparison {
        ack: (qa50, la50),
        processing: (qp50, lp50),
        processing_max: lpmax,
    }
}

/// Every hostile invocation was stopped, with its reason logged; alpha was put on probation;
/// and beta never waited behind alpha's backlog.
async fn assert_hostile_invocations_stopped(hub: &TestHub, lpmax: f64) {
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
    assert!(
        lpmax < 1000.0 * 2.0 + 500.0,
        "beta waited {lpmax:.0} ms for its deliveries, more than two hostile time limits: the \
         hostile tenant's backlog held beta's deliveries back"
    );
}
