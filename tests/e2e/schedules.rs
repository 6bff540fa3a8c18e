//! Cron schedules, manual replay and the job list through the real binary, with the `probe`
//! connector (its job `tick` writes a `tick` record keyed by its input's `key`). Each
//! schedule's jobs carry the key `schedule:{tenant}:{name}:{tick_ms}`, which these tests read.

use std::time::Duration;

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::util::*;

const KEY: &str = "key_alpha_sched_0123456789abcdef";
const TOKEN: &str = "tok-alpha-sched-41c2";

/// The probe for tenant `alpha`, plus `extra` (schedules) appended to the tenant.
fn config(hub: &TestHub, extra: &str) -> String {
    format!(
        r#"{server}
[connectors.probe]
path = "{wasm}"
memory_mb = 32
timeout_ms = 2000

[tenants.alpha]
name = "Alpha"
[tenants.alpha.connectors.probe.credentials]
api_key = "{key}"
token = "{token}"
{extra}
"#,
        server = hub.server_section(),
        wasm = fixture("probe").display(),
        key = hub.seal_tenant("alpha", "probe", "api_key", KEY),
        token = hub.seal_tenant("alpha", "probe", "token", TOKEN),
    )
}

fn schedule(name: &str, cron: &str, missed: &str) -> String {
    format!(
        "\n[[tenants.alpha.schedules]]\nname = \"{name}\"\ncron = \"{cron}\"\nconnector = \"probe\"\n\
         job = \"tick\"\ninput = {{ key = \"{name}\" }}\nmissed = \"{missed}\"\n"
    )
}

/// The schedule's jobs, oldest tick first.
async fn jobs_of(hub: &TestHub, name: &str) -> Vec<Value> {
    let v = hub
        .api(&format!(
            "/jobs?tenant=alpha&key_prefix=schedule:alpha:{name}:&limit=1000"
        ))
        .await;
    let mut jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    jobs.sort_by_key(tick);
    jobs
}

/// The tick a schedule job was queued for, from its key.
fn tick(job: &Value) -> u64 {
    let key = job["idempotency_key"].as_str().unwrap();
    key.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_schedule_runs_its_job_at_every_tick() {
    let mut hub = TestHub::new();
    hub.write_config(&config(
        &hub,
        &schedule("every2", "*/2 * * * * *", "run_once"),
    ));
    hub.start().await;
    let jobs = wait_for(15, "three runs of every2", || async {
        let jobs = jobs_of(&hub, "every2").await;
        let done = jobs.iter().filter(|j| j["state"] == "done").count();
        (done >= 3).then_some(jobs)
    })
    .await;
    let ticks: Vec<u64> = jobs.iter().map(tick).collect();
    assert!(ticks.iter().all(|t| t % 2_000 == 0), "{ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2_000),
        "one job per tick, none missed: {ticks:?}"
    );
    for job in &jobs {
        assert_eq!(job["task"]["kind"], "job");
        assert_eq!(job["task"]["name"], "tick");
        let lag = job["created_at_ms"].as_u64().unwrap() - tick(job);
        assert!(lag < 1_000, "queued {lag} ms after its tick");
    }
    let records = hub.records("alpha", "tick").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["key"], "every2");
    assert_eq!(records[0]["data"]["job"], "tick");
}

#[tokio::test]
async fn ticks_missed_while_down_run_once_or_are_skipped() {
    let mut hub = TestHub::new();
    let schedules = schedule("catchup", "*/3 * * * * *", "run_once")
        + &schedule("dropped", "*/3 * * * * *", "skip");
    hub.write_config(&config(&hub, &schedules));
    hub.start().await;
    wait_for(10, "a first run of each schedule", || async {
        let a = jobs_of(&hub, "catchup").await;
        let b = jobs_of(&hub, "dropped").await;
        (a.iter().any(|j| j["state"] == "done") && b.iter().any(|j| j["state"] == "done"))
            .then_some(())
    })
    .await;
    hub.kill();
    let killed = now_ms();
    // Down for at least two ticks, then back just after a tick, so no tick falls due while the
    // hub boots and the missed ones are told apart from the next regular one.
    tokio::time::sleep(Duration::from_millis(6_100)).await;
    while !(100..400).contains(&(now_ms() % 3_000)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted = now_ms();
    hub.start().await;
    let ready = now_ms();
    assert!(
        ready - restarted < 2_500,
        "the premise: the hub booted before the next tick ({} ms)",
        ready - restarted
    );
    // Wait for the first regular tick after the restart of each, so each had its chance.
    wait_for(10, "a regular tick after the restart", || async {
        let a = jobs_of(&hub, "catchup").await;
        let b = jobs_of(&hub, "dropped").await;
        (a.iter().any(|j| tick(j) > restarted) && b.iter().any(|j| tick(j) > restarted))
            .then_some(())
    })
    .await;
    let last_missed = restarted - restarted % 3_000;
    for (name, expected) in [("catchup", 1), ("dropped", 0)] {
        let jobs = jobs_of(&hub, name).await;
        let before_kill = jobs
            .iter()
            .filter(|j| j["created_at_ms"].as_u64().unwrap() < killed)
            .map(tick)
            .max()
            .unwrap();
        assert!(
            last_missed - before_kill >= 6_000,
            "{name}: at least two ticks were missed"
        );
        let catch_up: Vec<u64> = jobs
            .iter()
            .map(tick)
            .filter(|t| *t > before_kill && *t < restarted)
            .collect();
        assert_eq!(
            catch_up.len(),
            expected,
            "{name}: jobs for the ticks missed between {before_kill} and {restarted}: {catch_up:?}"
        );
        if expected == 1 {
            assert_eq!(
                catch_up[0], last_missed,
                "the run stands for the latest missed tick"
            );
        }
    }
    let log = hub.log();
    assert!(
        log.contains("several ticks since"),
        "the catch-up is logged"
    );
    assert!(log.contains("(missed = \"skip\")"), "the skip is logged");
}

#[tokio::test]
async fn two_hubs_on_one_database_run_each_tick_once() {
    let mut hub = TestHub::new();
    hub.write_config(&config(
        &hub,
        &schedule("shared", "* * * * * *", "run_once"),
    ));
    hub.start().await;
    let other = hub.start_sibling("other").await;
    let both_up = now_ms();
    let jobs = wait_for(15, "six ticks with both hubs up", || async {
        let jobs = jobs_of(&hub, "shared").await;
        let after = jobs.iter().filter(|j| tick(j) > both_up).count();
        (after >= 6).then_some(jobs)
    })
    .await;
    let ticks: Vec<u64> = jobs.iter().map(tick).collect();
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks, "each tick has one job");
    let first = ticks.iter().position(|t| *t > both_up).unwrap();
    assert!(
        ticks[first..].windows(2).all(|w| w[1] - w[0] == 1_000),
        "no tick lost either: {ticks:?}"
    );
    // Both processes took part: every tick one queued it and the other lost the race.
    let (a, b) = (hub.log(), other.log());
    let queued = |log: &str| log.matches("scheduled job queued").count();
    let lost = |log: &str| log.matches("tick claimed by another hub process").count();
    assert!(lost(&a) + lost(&b) >= 5, "a: {} b: {}", lost(&a), lost(&b));
    let now = jobs_of(&hub, "shared").await.len();
    assert!(
        (jobs.len()..=now).contains(&(queued(&a) + queued(&b))),
        "every job was queued by exactly one process"
    );
    // The other process serves the same database.
    let seen_there: Value = hub
        .client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/jobs?key_prefix=schedule:alpha:shared:&limit=1000",
            other.port
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen_there["jobs"].as_array().unwrap().len() >= jobs.len());
    for (name, log) in [("first", &a), ("other", &b)] {
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        let warns: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        eprintln!("{name}: {warns:#?}");
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    drop(other);
}

async fn send(hub: &TestHub, body: Value) -> u16 {
    let bytes = serde_json::to_vec(&body).unwrap();
    let sig = sign_retell(KEY.as_bytes(), &bytes, now_ms());
    let headers = [
        ("x-retell-signature", sig),
        ("content-type", "application/json".to_string()),
    ];
    hub.post("/hooks/alpha/probe", &headers, &bytes).await.0
}

async fn delivery(hub: &TestHub, identity: &str) -> Value {
    hub.deliveries(Some("alpha"))
        .await
        .into_iter()
        .find(|d| {
            d["identity"]
                .as_str()
                .is_some_and(|i| i.ends_with(identity))
        })
        .unwrap()
}

async fn post_replay(hub: &TestHub, body: Value) -> (u16, Value) {
    let resp = hub
        .client
        .post(format!("{}/api/v1/replay", hub.base()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn dead_jobs_and_done_deliveries_are_replayed_without_acting_twice() {
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, ""));
    hub.start().await;

    // A permanent failure goes dead at once.
    assert_eq!(
        send(
            &hub,
            json!({ "id": "f1", "op": "fail", "kind": "permanent" })
        )
        .await,
        200
    );
    let dead = wait_for(10, "the delivery to go dead", || async {
        let d = delivery(&hub, "f1").await;
        (d["state"] == "dead").then_some(d)
    })
    .await;
    assert_eq!(dead["attempts"], 1);
    let id = dead["id"].as_i64().unwrap();
    let job = &hub.api("/jobs?tenant=alpha&state=dead").await["jobs"][0];
    assert_eq!(job["delivery_id"], id);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["replays"], json!([]));

    let (ok, out, err) = hub.command(
        &["replay", "--dead", "--tenant", "alpha"],
        hub.store_key().as_deref(),
    );
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "queued 1");
    // It fails again: one more attempt on the delivery, and the job's first life kept.
    let again = wait_for(10, "the replayed job to fail again", || async {
        let v = hub.api(&format!("/jobs?key_prefix=delivery:{id}")).await;
        let j = v["jobs"][0].clone();
        (j["state"] == "dead" && j["replays"].as_array().is_some_and(|r| r.len() == 1)).then_some(j)
    })
    .await;
    assert_eq!(again["attempts"], 1, "attempts start over");
    assert_eq!(again["replays"][0]["state"], "dead");
    assert_eq!(again["replays"][0]["attempts"], 1);
    assert!(
        again["replays"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("asked to fail")
    );
    let d = delivery(&hub, "f1").await;
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64()),
        (Some("dead"), Some(2))
    );
    let (ok, out, _) = hub.command(
        &["replay", "--dead", "--tenant", "beta"],
        hub.store_key().as_deref(),
    );
    assert!(ok && out.trim() == "queued 0", "{out}");
    let (ok, out, _) = hub.command(
        &["deliveries", "--id", &id.to_string()],
        hub.store_key().as_deref(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("replayed") && out.contains("asked to fail"),
        "{out}"
    );

    // A done delivery replayed: its record is written again, the same one.
    let body = json!({ "id": "r1", "op": "record", "kind": "call", "key": "c-1", "data": { "status": "ended" } });
    assert_eq!(send(&hub, body).await, 200);
    let done = wait_for(10, "the record delivery to be done", || async {
        let d = delivery(&hub, "r1").await;
        (d["state"] == "done").then_some(d)
    })
    .await;
    let before = hub.records("alpha", "call").await;
    let (status, answer) = post_replay(&hub, json!({ "delivery": done["id"] })).await;
    assert_eq!(
        (status, answer["queued"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    wait_for(10, "the replayed delivery to be done", || async {
        let d = delivery(&hub, "r1").await;
        (d["state"] == "done" && d["attempts"] == 2).then_some(())
    })
    .await;
    let all = hub.api("/tenants/alpha/records").await["records"].clone();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1, "one record of one kind: {all:?}");
    let after = hub.records("alpha", "call").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["data"], before[0]["data"]);
    // The replay published the same event again: the tenant's feed keeps it once, keyed by the
    // delivery and its position.
    let events = hub.api("/tenants/alpha/events").await["events"].clone();
    let recorded: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "probe.recorded")
        .collect();
    assert_eq!(recorded.len(), 1, "published once: {events}");
    assert_eq!(
        recorded[0]["key"],
        format!("delivery:{}:event:0:probe.recorded", done["id"]),
        "{events}"
    );

    // Bad requests are refused with a reason; an unknown id is a 404.
    assert_eq!(post_replay(&hub, json!({})).await.0, 400);
    assert_eq!(
        post_replay(&hub, json!({ "job": 1, "delivery": 1 }))
            .await
            .0,
        400
    );
    assert_eq!(post_replay(&hub, json!({ "job": 999_999 })).await.0, 404);
    let (ok, _, err) = hub.command(
        &["replay", "--delivery", "999999"],
        hub.store_key().as_deref(),
    );
    assert!(!ok && err.contains("no delivery 999999"), "{err}");
}
