//! The hub's core through the real binary, with the `probe` test connector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::hostile_kit::mock_api;
use crate::util::*;

const ALPHA_KEY: &str = "key_alpha_0123456789abcdef0123";
const BETA_KEY: &str = "key_beta_fedcba9876543210fedcba";
const ALPHA_TOKEN: &str = "tok-alpha-b8e2c1d0";
const BETA_TOKEN: &str = "tok-beta-9f8e7d6c";

fn probe_config(hub: &TestHub, mock_port: u16, workers: usize) -> String {
    let server = hub
        .server_section()
        .replace("workers = 4", &format!("workers = {workers}"));
    format!(
        r#"{server}
[connectors.probe]
path = "{wasm}"
allow_hosts = ["http://allowed.test", "http://undeclared.test"]
stand_ins = {{ "http://allowed.test" = "http://127.0.0.1:{mock_port}" }}
memory_mb = 32
timeout_ms = 1000

[tenants.alpha]
name = "Alpha"
[tenants.alpha.connectors.probe]
config = {{ greeting = "hello from alpha" }}
[tenants.alpha.connectors.probe.credentials]
api_key = "{ak}"
token = "{at}"

[tenants.beta]
name = "Beta"
[tenants.beta.connectors.probe.credentials]
api_key = "{bk}"
token = "{bt}"
"#,
        wasm = fixture("probe").display(),
        ak = hub.seal_tenant("alpha", "probe", "api_key", ALPHA_KEY),
        at = hub.seal_tenant("alpha", "probe", "token", ALPHA_TOKEN),
        bk = hub.seal_tenant("beta", "probe", "api_key", BETA_KEY),
        bt = hub.seal_tenant("beta", "probe", "token", BETA_TOKEN),
    )
}

async fn started(workers: usize) -> (TestHub, Arc<Mutex<Vec<(String, String)>>>) {
    let (mock_port, seen) = mock_api().await;
    let mut hub = TestHub::new();
    hub.write_config(&probe_config(&hub, mock_port, workers));
    hub.start().await;
    (hub, seen)
}

fn signed(key: &str, body: &Value) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = sign_retell(key.as_bytes(), &bytes, now_ms());
    (
        vec![
            ("x-retell-signature", sig),
            ("content-type", "application/json".into()),
        ],
        bytes,
    )
}

async fn send(hub: &TestHub, tenant: &str, key: &str, body: Value) -> (u16, String) {
    let (headers, bytes) = signed(key, &body);
    hub.post(&format!("/hooks/{tenant}/probe"), &headers, &bytes)
        .await
}

async fn delivery_state(hub: &TestHub, tenant: &str, identity_suffix: &str) -> Option<Value> {
    hub.deliveries(Some(tenant)).await.into_iter().find(|d| {
        d["identity"]
            .as_str()
            .is_some_and(|i| i.ends_with(identity_suffix))
    })
}

#[tokio::test]
async fn signed_delivery_is_stored_once_and_processed_into_a_record() {
    let (hub, _) = started(4).await;
    let body = json!({ "id": "d1", "op": "record", "kind": "call", "key": "c-1", "data": { "status": "ended" } });
    let (status, text) = send(&hub, "alpha", ALPHA_KEY, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"stored\""), "{text}");
    // The provider retries: acknowledged, not stored again.
    let (status, text) = send(&hub, "alpha", ALPHA_KEY, body).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"duplicate\""), "{text}");

    let records = wait_for(20, "the call record", || async {
        let r = hub.records("alpha", "call").await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["data"]["status"], "ended");
    let deliveries = hub.deliveries(Some("alpha")).await;
    assert_eq!(deliveries.len(), 1, "a duplicate is stored once");
    let d = wait_for(10, "delivery done", || async {
        delivery_state(&hub, "alpha", "d1")
            .await
            .filter(|d| d["state"] == "done")
    })
    .await;
    assert_eq!(d["event"], "record");
    assert_eq!(d["attempts"], 1);
    let connectors = hub.api("/connectors").await;
    let health = &connectors["connectors"][0]["health"];
    assert_eq!(health["healthy"], true, "{connectors}");
    assert!(
        health["jobs"]["done"].as_i64().unwrap_or(0) >= 1,
        "{connectors}"
    );
    // The other tenant sees none of it.
    assert!(hub.records("beta", "call").await.is_empty());
    let events = hub.api("/tenants/alpha/events").await;
    assert_eq!(events["events"][0]["name"], "probe.recorded");
    // One delivery's detail carries its payload and its job.
    let one = hub.api(&format!("/deliveries/{}", d["id"])).await;
    assert!(
        one["delivery"]["body"]
            .as_str()
            .unwrap()
            .contains("\"c-1\"")
    );
    assert_eq!(one["jobs"][0]["state"], "done");
}

#[tokio::test]
async fn bad_signatures_unknown_targets_and_oversized_bodies_are_refused_before_any_guest_code() {
    let (hub, _) = started(4).await;
    let body = json!({ "id": "x", "op": "record", "kind": "k", "key": "1", "data": {} });
    let bytes = serde_json::to_vec(&body).unwrap();

    // Signed with another tenant's key.
    let (headers, _) = signed(BETA_KEY, &body);
    assert_eq!(
        hub.post("/hooks/alpha/probe", &headers, &bytes).await.0,
        401
    );
    // Stale: ten minutes old.
    let stale = sign_retell(ALPHA_KEY.as_bytes(), &bytes, now_ms() - 600_000);
    assert_eq!(
        hub.post(
            "/hooks/alpha/probe",
            &[("x-retell-signature", stale)],
            &bytes
        )
        .await
        .0,
        401
    );
    // Missing.
    assert_eq!(hub.post("/hooks/alpha/probe", &[], &bytes).await.0, 401);
    // Body changed after signing.
    let (headers, _) = signed(ALPHA_KEY, &body);
    let tampered = serde_json::to_vec(
        &json!({ "id": "x", "op": "record", "kind": "k", "key": "2", "data": {} }),
    )
    .unwrap();
    assert_eq!(
        hub.post("/hooks/alpha/probe", &headers, &tampered).await.0,
        401
    );
    // Shared-token route with the wrong token.
    assert_eq!(
        hub.post(
            "/hooks/alpha/probe/token",
            &[("x-probe-token", BETA_TOKEN.into())],
            &bytes
        )
        .await
        .0,
        401
    );

    // Unknown tenant, connector and route: the same 404 either way.
    let (headers, _) = signed(ALPHA_KEY, &body);
    let a = hub.post("/hooks/nobody/probe", &headers, &bytes).await;
    let b = hub.post("/hooks/alpha/nothing", &headers, &bytes).await;
    let c = hub
        .post("/hooks/alpha/probe/nowhere", &headers, &bytes)
        .await;
    assert_eq!(a.0, 404);
    assert_eq!(a, b);
    assert_eq!(a, c);

    // Over the 64 KiB body limit.
    let big = vec![b'x'; 100_000];
    assert_eq!(hub.post("/hooks/alpha/probe", &headers, &big).await.0, 413);

    // Valid signature, but no identity field: a clear 400.
    let (headers, bytes) = signed(ALPHA_KEY, &json!({ "op": "record" }));
    let (status, text) = hub.post("/hooks/alpha/probe", &headers, &bytes).await;
    assert_eq!(status, 400);
    assert!(text.contains("/id"), "{text}");

    assert!(
        hub.deliveries(None).await.is_empty(),
        "nothing refused was stored"
    );
    let metrics = hub.metrics().await;
    assert!(
        metrics.contains("hub_webhooks_rejected_signature_total 5"),
        "{metrics}"
    );

    // The correct token passes; the sync route answers from the connector with tenant config.
    let ok = hub
        .post(
            "/hooks/alpha/probe/token",
            &[("x-probe-token", ALPHA_TOKEN.into())],
            &bytes_with_id("t1"),
        )
        .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    let reply = hub
        .post(
            "/hooks/alpha/probe/sync",
            &[("x-probe-token", ALPHA_TOKEN.into())],
            b"{}",
        )
        .await;
    assert_eq!(reply, (200, "hello from alpha".to_string()));
}

fn bytes_with_id(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "id": id, "op": "unknown-op" })).unwrap()
}

#[tokio::test]
async fn hostile_connector_invocations_are_stopped_while_other_tenants_proceed() {
    let (hub, _) = started(4).await;
    for (id, op) in [
        ("loop", json!({ "id": "loop", "op": "loop" })),
        ("alloc", json!({ "id": "alloc", "op": "alloc", "mb": 256 })),
        ("recurse", json!({ "id": "recurse", "op": "recurse" })),
        ("panic", json!({ "id": "panic", "op": "panic" })),
    ] {
        let (status, text) = send(&hub, "alpha", ALPHA_KEY, op).await;
        assert_eq!(status, 200, "{id}: {text}");
    }
    for i in 0..20 {
        let body = json!({ "id": format!("b{i}"), "op": "record", "kind": "note", "key": format!("n{i}"), "data": { "i": i } });
        assert_eq!(send(&hub, "beta", BETA_KEY, body).await.0, 200);
    }
    wait_for(30, "all of beta's records", || async {
        (hub.records("beta", "note").await.len() == 20).then_some(())
    })
    .await;
    for (id, expected) in [
        ("loop", "time limit"),
        ("alloc", "memory limit"),
        ("recurse", "stack overflow"), // wasm's shadow stack in linear memory, or the native one
        ("panic", "unreachable"),
    ] {
        let d = wait_for(30, &format!("{id} to fail"), || async {
            delivery_state(&hub, "alpha", id)
                .await
                .filter(|d| d["last_error"].is_string())
        })
        .await;
        let error = d["last_error"].as_str().unwrap();
        assert!(error.contains(expected), "{id}: {error}");
        // Failed, and either waiting to retry, being retried (the last error is kept), or dead.
        assert!(
            ["retrying", "processing", "dead"].contains(&d["state"].as_str().unwrap_or("")),
            "{id}: {d}"
        );
    }
    assert!(
        hub.records("alpha", "alloc").await.is_empty(),
        "a failed attempt leaves no record"
    );
    // The hub is still healthy after all that.
    assert_eq!(
        hub.client
            .get(format!("{}/healthz", hub.base()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn connector_reaches_only_declared_allowed_hosts_and_never_sees_credentials() {
    let (hub, seen) = started(4).await;
    let ops = [
        json!({ "id": "h1", "op": "http", "key": "allowed", "url": "http://allowed.test/echo", "bearer": "api_key" }),
        json!({ "id": "h2", "op": "http", "key": "direct", "url": format!("http://127.0.0.1:{}/echo", hub.port) }),
        json!({ "id": "h3", "op": "http", "key": "undeclared", "url": "http://undeclared.test/echo" }),
        json!({ "id": "h4", "op": "http", "key": "metadata", "url": "http://169.254.169.254/latest/meta-data/" }),
        json!({ "id": "h5", "op": "http", "key": "redirect", "url": "http://allowed.test/redirect?to=http://127.0.0.1:1/echo" }),
        json!({ "id": "h6", "op": "http", "key": "nocred", "url": "http://allowed.test/echo", "bearer": "nope" }),
        json!({ "id": "s1", "op": "sandbox" }),
    ];
    for op in ops {
        assert_eq!(send(&hub, "alpha", ALPHA_KEY, op).await.0, 200);
    }
    let http = wait_for(20, "six http records", || async {
        let r = hub.records("alpha", "http").await;
        (r.len() == 6).then_some(r)
    })
    .await;
    let by_key = |k: &str| http.iter().find(|r| r["key"] == k).unwrap()["data"].clone();
    assert_eq!(by_key("allowed")["status"], 200);
    assert_eq!(by_key("allowed")["body"], "pong");
    let echoed: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/echo")
        .map(|(_, auth)| auth.clone())
        .collect();
    assert_eq!(
        echoed,
        [format!("Bearer {ALPHA_KEY}")],
        "the host attached the credential, and only where the connector asked for it"
    );
    for k in ["direct", "undeclared", "metadata", "redirect"] {
        let d = by_key(k);
        assert_eq!(d["error"], "permanent", "{k}: {d}");
        assert!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("not an allowed host"),
            "{k}: {d}"
        );
    }
    assert!(
        by_key("nocred")["message"]
            .as_str()
            .unwrap()
            .contains("credential `nope` is not declared in the connector's manifest"),
        "a credential the manifest forgot is named as such, not as a missing config"
    );

    let sandbox = wait_for(10, "sandbox record", || async {
        hub.records("alpha", "sandbox").await.into_iter().next()
    })
    .await;
    assert_eq!(sandbox["data"]["env"], 0, "no environment variables");
    assert_eq!(sandbox["data"]["args"], 0, "no arguments");
    assert!(
        sandbox["data"]["fs"].as_str().unwrap().starts_with("Err"),
        "no filesystem: {}",
        sandbox["data"]["fs"]
    );

    // No plaintext credential in the database files or the log.
    let mut haystack = hub.log().into_bytes();
    for entry in std::fs::read_dir(hub.dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            haystack.extend(std::fs::read(&path).unwrap());
        }
    }
    haystack.extend(std::fs::read(hub.config_path()).unwrap());
    for secret in [ALPHA_KEY, BETA_KEY, ALPHA_TOKEN, BETA_TOKEN, ADMIN_TOKEN] {
        assert!(
            !contains(&haystack, secret.as_bytes()),
            "plaintext secret {secret} found on disk or in the log"
        );
    }
    assert!(
        contains(&haystack, b"pong"),
        "the search itself works on these files"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn wrong_master_key_and_missing_credentials_fail_with_file_line_and_field() {
    let (mock_port, _) = mock_api().await;
    let hub = TestHub::new();
    hub.write_config(&probe_config(&hub, mock_port, 2));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "check passes with the right key: {out}{err}");

    let other = hub::secrets::MasterKey::generate();
    let other = secrecy::ExposeSecret::expose_secret(&other.to_text()).to_string();
    for cmd in ["check", "serve"] {
        let (ok, _, err) = hub.command(&[cmd], Some(&other));
        assert!(!ok, "{cmd} must fail with a wrong key");
        assert!(err.contains("wrong master key"), "{cmd}: {err}");
        assert!(
            err.contains("hub.toml:"),
            "{cmd} names the file and line: {err}"
        );
        assert!(
            err.contains(": server.admin_token: "),
            "{cmd} names the field: {err}"
        );
    }
    let (ok, _, err) = hub.command(&["check"], None);
    assert!(!ok);
    assert!(err.contains("HUB_MASTER_KEY"), "{err}");

    // A tenant that lacks a credential the connector requires.
    let text = probe_config(&hub, mock_port, 2)
        + "\n[tenants.gamma]\nname = \"Gamma\"\n[tenants.gamma.connectors.probe]\nconfig = {}\n";
    hub.write_config(&text);
    let line = text
        .lines()
        .position(|l| l == "[tenants.gamma.connectors.probe]")
        .unwrap()
        + 1;
    let (ok, _, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(!ok);
    assert!(
        err.contains(&format!("hub.toml:{line}:")),
        "line {line}: {err}"
    );
    assert!(
        err.contains("tenants.gamma.connectors.probe.credentials.api_key"),
        "{err}"
    );
}

/// `workers = 0`: webhooks are verified, stored and acknowledged, and wait in the queue; a
/// restart with workers processes them.
#[tokio::test]
async fn with_no_workers_webhooks_are_stored_and_wait_until_a_hub_with_workers_runs() {
    let (mut hub, _) = started(0).await;
    let body = json!({ "id": "paused1", "op": "record", "kind": "paused", "key": "p-1", "data": { "n": 1 } });
    let (status, text) = send(&hub, "alpha", ALPHA_KEY, body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"stored\""), "{text}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let d = delivery_state(&hub, "alpha", "paused1")
        .await
        .expect("stored");
    assert_eq!(d["state"], "received", "nothing processes it: {d}");
    assert!(hub.records("alpha", "paused").await.is_empty());
    assert!(
        hub.log().contains("server.workers = 0"),
        "the hub says that it does not process"
    );
    hub.kill();
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    hub.write_config(&text.replace("workers = 0", "workers = 4"));
    hub.start().await;
    wait_for(30, "the queued delivery to be processed", || async {
        (hub.records("alpha", "paused").await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deliveries_acknowledged_before_kill_9_are_processed_after_restart() {
    let (mut hub, _) = started(1).await;
    let n = 60;
    let mut tasks = Vec::new();
    for i in 0..n {
        let body = json!({ "id": format!("k{i}"), "op": "spin", "ms": 40, "kind": "spun", "key": format!("s{i}") });
        let (headers, bytes) = signed(ALPHA_KEY, &body);
        let client = hub.client.clone();
        let url = format!("{}/hooks/alpha/probe", hub.base());
        tasks.push(tokio::spawn(async move {
            let mut req = client.post(url).body(bytes);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let before = hub.records("alpha", "spun").await.len();
    hub.kill();
    assert!(
        before < n,
        "the test must kill the hub while work is pending ({before} of {n} done)"
    );
    hub.start().await;
    wait_for(
        60,
        "every acknowledged delivery to be processed",
        || async { (hub.records("alpha", "spun").await.len() == n).then_some(()) },
    )
    .await;
    let deliveries = hub.deliveries(Some("alpha")).await;
    assert_eq!(deliveries.len(), n);
    assert!(
        deliveries.iter().all(|d| d["state"] == "done"),
        "{deliveries:?}"
    );
}
