//! Config versions through the real binary, on either backend: every applied `hub.toml` is a
//! version (who, when, why), the API lists them, compares two without showing a sealed value, and
//! rolls back to one (a new version; the file written back). Two hubs on one PostgreSQL follow
//! each other's changes: see `scale_out.rs`.

use serde_json::{Value, json};

use crate::util::*;

const KEY: &str = "key_alpha_versions_0123456789ab";
const KEY_NEW: &str = "key_alpha_versions_rotated_cdef";
const APP_TOKEN: &str = "app-token-alpha-versions-77a1";

/// The probe for tenant `alpha` named `name`, with `key` as its api key and a read token.
pub fn config(hub: &TestHub, name: &str, key: &str) -> String {
    let place = hub::secrets::Place::ApiToken {
        tenant: "alpha".into(),
        name: "app".into(),
    };
    format!(
        "{server}# the probe connector\n[connectors.probe]\npath = \"{wasm}\"\n\n[tenants.alpha]\nname = \"{name}\"\n\
         [tenants.alpha.connectors.probe.credentials]\napi_key = \"{key}\"\ntoken = \"tok\"\n\
         [tenants.alpha.api_tokens.app]\nscope = \"read\"\ntoken = \"{token}\"\n",
        server = hub.server_section(),
        wasm = fixture("probe").display(),
        key = hub.seal_tenant("alpha", "probe", "api_key", key),
        token = hub::secrets::seal(&hub.key, &place, APP_TOKEN.as_bytes()),
    )
    .replace("token = \"tok\"", &format!("token = \"{}\"", hub.seal_tenant("alpha", "probe", "token", "tok")))
}

pub async fn reload(hub: &TestHub, port: u16) -> (u16, Value) {
    let r = hub
        .client
        .post(format!("http://127.0.0.1:{port}/api/v1/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

pub async fn ready(hub: &TestHub, port: u16) -> Value {
    hub.client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The file without the version line a hub on PostgreSQL writes on top.
fn body(text: &str) -> &str {
    match text.strip_prefix("# hub config version ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, b)| b),
        None => text,
    }
}

#[tokio::test]
async fn each_applied_config_is_a_version_compared_without_secrets_and_rolled_back() {
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", KEY));
    hub.start().await;
    let state = hub.api("/config").await;
    assert_eq!(state["running"], 1, "{state}");
    assert_eq!(state["newest"]["actor"], "file");
    assert_eq!(ready(&hub, hub.port).await["config_version"], 1);

    // An edit applied by a reload: version 2, the renamed tenant and a new key.
    let first = std::fs::read_to_string(hub.config_path()).unwrap();
    let old_key = first.lines().find(|l| l.starts_with("api_key = ")).unwrap();
    let new_key = format!("api_key = \"{}\"", hub.seal_tenant("alpha", "probe", "api_key", KEY_NEW));
    let edited = body(&first)
        .replace("name = \"Alpha\"", "name = \"Alpha Clinic\"")
        .replace(old_key, &new_key);
    hub.write_config(&edited);
    let (status, applied) = reload(&hub, hub.port).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["version"], 2);
    // The same file again is no new version.
    let (_, again) = reload(&hub, hub.port).await;
    assert_eq!(again["version"], 2);
    let list = hub.api("/config/versions").await;
    let numbers: Vec<i64> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(list["versions"][0]["reason"], "hub reload");
    assert!(list["versions"][0].get("document").is_none(), "listed without documents");

    // The difference names each setting; the rotated key only as "changed".
    let diff = hub.api("/config/diff?from=1&to=2").await;
    let text = diff.to_string();
    let changes = diff["differences"].as_array().unwrap();
    let at = |path: &str| changes.iter().find(|d| d["path"] == path).cloned();
    let name = at("tenants.alpha.name").unwrap_or_else(|| panic!("{text}"));
    assert_eq!((name["before"].as_str(), name["after"].as_str()), (Some("\"Alpha\""), Some("\"Alpha Clinic\"")));
    let key = at("tenants.alpha.connectors.probe.credentials.api_key").unwrap();
    assert_eq!(key["sealed"], true);
    assert!(key.get("before").is_none() && key.get("after").is_none());
    assert!(!text.contains("sealed:v1:"), "no sealed value in a diff: {text}");
    assert_eq!(changes.len(), 2, "{text}");
    // The whole document of a version holds its credentials sealed, as the file does.
    let v1 = hub.api("/config/versions/1").await;
    assert!(v1["document"].as_str().unwrap().contains("name = \"Alpha\""));
    assert!(!v1["document"].as_str().unwrap().contains(KEY));

    // A tenant's token reads none of it.
    let refused = hub
        .client
        .get(format!("{}/api/v1/config/versions", hub.base()))
        .bearer_auth(APP_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // Rollback to 1: version 3 holds version 1's document, is applied, and the file says so.
    let rolled = hub
        .client
        .post(format!("{}/api/v1/config/rollback", hub.base()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "version": 1, "reason": "the rename was a mistake" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 200);
    assert_eq!(rolled.json::<Value>().await.unwrap()["version"], 3);
    let tenants = hub.api("/tenants").await;
    assert_eq!(tenants["tenants"][0]["name"], "Alpha", "{tenants}");
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(body(&file).contains("name = \"Alpha\"") && file.contains("# the probe connector"));
    let v3 = hub.api("/config/versions?limit=1").await;
    assert_eq!(v3["versions"][0]["number"], 3);
    assert_eq!(v3["versions"][0]["actor"], "api:admin");
    assert_eq!(
        v3["versions"][0]["reason"],
        "rollback to version 1: the rename was a mistake"
    );
    assert!(hub.api("/config/diff?from=1&to=3").await["differences"].as_array().unwrap().is_empty());
    let missing = hub
        .client
        .post(format!("{}/api/v1/config/rollback", hub.base()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "version": 42 }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(hub.metrics().await.contains("hub_config_version 3"));

    // A restart from the file runs the same version: nothing new is written.
    hub.kill();
    hub.start().await;
    assert_eq!(hub.api("/config").await["running"], 3);
}
