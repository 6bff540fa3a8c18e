//! Live config on the shipped `hub.toml`: edits applied under signed load (`POST
//! /api/v1/reload`, `hub reload`, SIGHUP) lose no webhook and answer none with a 5xx; a broken
//! edit is refused with its location while the old config keeps serving; a removed tenant
//! answers 404 at once, and a revoked app token 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::chain::{DEMO_KEY, RETELL_KEY, shipped_hub, stand_in};
use crate::util::*;

fn edited(hub: &TestHub, edit: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    edit(&mut doc);
    hub.write_config(&doc.to_string());
}

async fn reload(hub: &TestHub) -> (u16, Value) {
    let r = hub
        .client
        .post(format!("{}/api/v1/reload", hub.base()))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn tenant_name(hub: &TestHub, id: &str) -> String {
    let list = hub.api("/tenants").await;
    list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn reloads_under_signed_load_lose_nothing_and_a_broken_edit_is_refused() {
    let (port, _) = stand_in().await;
    let hub = Arc::new(shipped_hub(port).await);

    // Signed Retell webhooks for abc-healthcare at ~35/s (under its rate limit of 50/s), each
    // counted by its answer.
    const SENT: usize = 240;
    let ok = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = {
        let (hub, ok, other) = (hub.clone(), ok.clone(), other.clone());
        tokio::spawn(async move {
            let mut sends = Vec::new();
            for i in 0..SENT {
                let (hub, ok, other) = (hub.clone(), ok.clone(), other.clone());
                sends.push(tokio::spawn(async move {
                    let body = json!({ "event": "call_ended", "call": {
                        "call_id": format!("call_reload_{i}"), "agent_id": "agent_abc_front_desk",
                        "call_status": "ended", "direction": "inbound",
                        "from_number": "+14155550100", "to_number": "+14155550199",
                        "transcript": "Agent: Hello.\nUser: Hi." } });
                    let bytes = serde_json::to_vec(&body).unwrap();
                    let sig =
                        plugin_sdk::schemes::sign_retell(RETELL_KEY.as_bytes(), &bytes, now_ms());
                    let (status, text) = hub
                        .post(
                            "/hooks/abc-healthcare/retell",
                            &[
                                ("x-retell-signature", sig),
                                ("content-type", "application/json".into()),
                            ],
                            &bytes,
                        )
                        .await;
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        other.lock().unwrap().push((status, text));
                    }
                }));
                tokio::time::sleep(Duration::from_millis(28)).await;
            }
            for s in sends {
                s.await.unwrap();
            }
        })
    };

    // 1. A valid edit through the API: applied, the old tenant name gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    edited(&hub, |d| {
        d["tenants"]["abc-healthcare"]["name"] = toml_edit::value("ABC Health (renamed)")
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenants"], 2);
    assert_eq!(
        tenant_name(&hub, "abc-healthcare").await,
        "ABC Health (renamed)"
    );

    // 2. A broken edit: refused with file, line and field; the old config keeps serving.
    let good = std::fs::read_to_string(hub.config_path()).unwrap();
    edited(&hub, |d| {
        d["tenants"]["xyz-dental"]["timezone"] = toml_edit::value("Mars/Olympus_Mons")
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("hub.toml:"), "{error}");
    assert!(error.contains("tenants.xyz-dental.timezone"), "{error}");
    assert!(error.contains("the old one keeps serving"), "{error}");
    let (ok_cli, out, err) = hub.command(&["reload"], Some(DEMO_KEY));
    assert!(!ok_cli, "hub reload refuses it too: {out}{err}");
    assert!(err.contains("tenants.xyz-dental.timezone"), "{err}");
    assert_eq!(
        tenant_name(&hub, "abc-healthcare").await,
        "ABC Health (renamed)"
    );

    // 3. Fixed and renamed back, applied by `hub reload` on the command line.
    hub.write_config(&good);
    edited(&hub, |d| {
        d["tenants"]["abc-healthcare"]["name"] = toml_edit::value("ABC Healthcare")
    });
    let (ok_cli, out, err) = hub.command(&["reload"], Some(DEMO_KEY));
    assert!(ok_cli, "{out}{err}");
    assert!(out.contains("reloaded: 2 tenants"), "{out}");
    assert_eq!(tenant_name(&hub, "abc-healthcare").await, "ABC Healthcare");

    // 4. SIGHUP applies an edit too: a changed display name.
    edited(&hub, |d| {
        d["tenants"]["xyz-dental"]["name"] = toml_edit::value("XYZ Dental (by SIGHUP)")
    });
    let pid = hub.child.as_ref().unwrap().id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(10, "SIGHUP's reload", || async {
        (tenant_name(&hub, "xyz-dental").await == "XYZ Dental (by SIGHUP)").then_some(())
    })
    .await;

    load.await.unwrap();
    let refused = other.lock().unwrap().clone();
    assert!(
        refused.is_empty(),
        "every webhook answered 200 through four reloads: {refused:?}"
    );
    assert_eq!(ok.load(Ordering::Relaxed), SENT);
    let stored = hub.deliveries(Some("abc-healthcare")).await;
    let ours = stored
        .iter()
        .filter(|d| {
            d["identity"]
                .as_str()
                .unwrap_or("")
                .contains(":call_reload_")
        })
        .count();
    assert_eq!(ours, SENT, "each acknowledged webhook is stored once");
    wait_for(60, "every delivery handled", || async {
        let left = hub
            .deliveries(Some("abc-healthcare"))
            .await
            .iter()
            .filter(|d| !matches!(d["state"].as_str(), Some("done" | "ignored")))
            .count();
        (left == 0).then_some(())
    })
    .await;

    // 5. A tenant removed from the file answers 404 once the reload is applied.
    edited(&hub, |d| {
        d["tenants"].as_table_mut().unwrap().remove("xyz-dental");
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = hub
        .post(
            "/hooks/xyz-dental/retell",
            &[("content-type", "application/json".into())],
            b"{}",
        )
        .await;
    assert_eq!(status, 404);

    // 6. A revoked app token (its table removed from the file) opens nothing once applied.
    let dashboard = |hub: &TestHub| {
        hub.client
            .get(format!(
                "{}/api/v1/tenants/abc-healthcare/records",
                hub.base()
            ))
            .bearer_auth("hubtok_demo_abc_healthcare_dashboard")
            .send()
    };
    assert_eq!(dashboard(&hub).await.unwrap().status().as_u16(), 200);
    edited(&hub, |d| {
        d["tenants"]["abc-healthcare"]["api_tokens"]
            .as_table_mut()
            .unwrap()
            .remove("dashboard");
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 200, "{body}");
    let revoked = dashboard(&hub).await.unwrap();
    assert_eq!(
        revoked.status().as_u16(),
        401,
        "a revoked token is refused at once"
    );
    assert_eq!(
        revoked.json::<Value>().await.unwrap(),
        json!({"error": "a valid bearer token is required"})
    );
}

async fn signed_call(hub: &TestHub, key: &str, call_id: &str) -> u16 {
    let body = json!({ "event": "call_started", "call": {
        "call_id": call_id, "agent_id": "agent_abc_front_desk", "call_status": "ongoing" } });
    let bytes = serde_json::to_vec(&body).unwrap();
    let sig = plugin_sdk::schemes::sign_retell(key.as_bytes(), &bytes, now_ms());
    hub.post(
        "/hooks/abc-healthcare/retell",
        &[
            ("x-retell-signature", sig),
            ("content-type", "application/json".into()),
        ],
        &bytes,
    )
    .await
    .0
}

/// `hub seal --rotate` on a tenant's credential: the new value verifies, the old one still does
/// for its window (`previous_until`), then stops.
#[tokio::test]
async fn a_rotated_credential_verifies_with_the_old_value_until_its_window_ends() {
    const NEW_KEY: &str = "key_rotated_abc_healthcare_0001";
    let (port, _) = stand_in().await;
    let hub = shipped_hub(port).await;
    let mut seal = std::process::Command::new(HUB)
        .arg("--config")
        .arg(hub.config_path())
        .args([
            "seal",
            "--tenant",
            "abc-healthcare",
            "--connector",
            "retell",
            "--field",
            "api_key",
            "--rotate",
            "--write",
        ])
        .env("HUB_MASTER_KEY", DEMO_KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    seal.stdin
        .take()
        .unwrap()
        .write_all(NEW_KEY.as_bytes())
        .unwrap();
    let out = seal.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the old value still verifies webhooks until"),
        "{err}"
    );
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(text.contains("previous_api_key = \"sealed:v1:"), "{text}");
    assert!(text.contains("previous_until = \""));
    assert!(!text.contains(NEW_KEY) && !text.contains(RETELL_KEY));
    let (ok, out, err) = hub.command(&["check"], Some(DEMO_KEY));
    assert!(ok, "{out}{err}");

    // Until the reload, only the old key verifies; after it, both do.
    assert_eq!(signed_call(&hub, NEW_KEY, "call_rot_0").await, 401);
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(signed_call(&hub, NEW_KEY, "call_rot_1").await, 200);
    assert_eq!(
        signed_call(&hub, RETELL_KEY, "call_rot_2").await,
        200,
        "the old key, in its window"
    );
    assert_eq!(
        signed_call(&hub, "key_never_issued_0000", "call_rot_3").await,
        401
    );

    // The window ends: the old key stops verifying.
    edited(&hub, |d| {
        d["tenants"]["abc-healthcare"]["connectors"]["retell"]["previous_until"] =
            toml_edit::value("2020-01-01T00:00:00Z")
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(signed_call(&hub, RETELL_KEY, "call_rot_4").await, 401);
    assert_eq!(signed_call(&hub, NEW_KEY, "call_rot_5").await, 200);
    // A window that is not a time is a located error.
    edited(&hub, |d| {
        d["tenants"]["abc-healthcare"]["connectors"]["retell"]["previous_until"] =
            toml_edit::value("tomorrow")
    });
    let (status, body) = reload(&hub).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("tenants.abc-healthcare.connectors.retell.previous_until"),
        "{body}"
    );
}
