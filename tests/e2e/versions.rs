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
         [tenants.alpha.connectors.probe.credentials]\napi_key = \"{key}\"\ntoken = \"{probe_token}\"\n\
         [tenants.alpha.api_tokens.app]\nscope = \"read\"\ntoken = \"{token}\"\n",
        server = hub.server_section(),
        wasm = fixture("probe").display(),
        key = hub.seal_tenant("alpha", "probe", "api_key", key),
        probe_token = hub.seal_tenant("alpha", "probe", "token", "tok"),
        token = hub::secrets::seal(&hub.key, &place, APP_TOKEN.as_bytes()),
    )
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
    let new_key = format!(
        "api_key = \"{}\"",
        hub.seal_tenant("alpha", "probe", "api_key", KEY_NEW)
    );
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
    assert!(
        list["versions"][0].get("document").is_none(),
        "listed without documents"
    );

    // The difference names each setting; the rotated key only as "changed".
    let diff = hub.api("/config/diff?from=1&to=2").await;
    let text = diff.to_string();
    let changes = diff["differences"].as_array().unwrap();
    let at = |path: &str| changes.iter().find(|d| d["path"] == path).cloned();
    let name = at("tenants.alpha.name").unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        (name["before"].as_str(), name["after"].as_str()),
        (Some("\"Alpha\""), Some("\"Alpha Clinic\""))
    );
    let key = at("tenants.alpha.connectors.probe.credentials.api_key").unwrap();
    assert_eq!(key["sealed"], true);
    assert!(key.get("before").is_none() && key.get("after").is_none());
    assert!(
        !text.contains("sealed:v1:"),
        "no sealed value in a diff: {text}"
    );
    assert_eq!(changes.len(), 2, "{text}");
    // The whole document of a version holds its credentials sealed, as the file does.
    let v1 = hub.api("/config/versions/1").await;
    assert!(
        v1["document"]
            .as_str()
            .unwrap()
            .contains("name = \"Alpha\"")
    );
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
    assert!(
        hub.api("/config/diff?from=1&to=3").await["differences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
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

async fn call(
    hub: &TestHub,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    if_match: Option<i64>,
) -> (u16, Value) {
    let mut req = hub
        .client
        .request(
            method.parse().unwrap(),
            format!("{}/api/v1{path}", hub.base()),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(v) = if_match {
        req = req.header("if-match", v.to_string());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn signed(hub: &TestHub, tenant: &str, key: &str) -> u16 {
    let body = serde_json::to_vec(
        &json!({ "id": format!("api-{tenant}-{}", now_ms()), "op": "unknown-op" }),
    )
    .unwrap();
    let sig = plugin_sdk::schemes::sign_retell(key.as_bytes(), &body, now_ms());
    let headers = [
        ("x-retell-signature", sig),
        ("content-type", "application/json".to_string()),
    ];
    hub.post(&format!("/hooks/{tenant}/probe"), &headers, &body)
        .await
        .0
}

/// The app onboards a client business in a few requests: creates the tenant (its read token
/// generated and returned once), sets its key (write-only: the answer shows the last 4
/// characters), and the tenant receives signed webhooks. Bad changes are refused with where
/// they are wrong and change nothing; a stale one gets 412; a tenant token touches nothing
/// of another tenant; a removed tenant's URLs answer 404 at once.
#[tokio::test]
async fn the_app_creates_a_tenant_sets_its_key_and_it_receives_webhooks() {
    const BETA_KEY: &str = "key_beta_onboarded_0123456789abcd";
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", KEY));
    hub.start().await;

    // Created with a first key (sealed in the hub, never returned), its token generated.
    let tenant = json!({ "name": "Beta Dental",
                         "connectors": { "probe": { "credentials": { "api_key": "first-key-0000", "token": "tok" } } },
                         "api_tokens": { "app": { "scope": "manage" } } });
    let (status, created) = call(
        &hub,
        "PUT",
        "/admin/tenants/beta",
        ADMIN_TOKEN,
        Some(tenant),
        None,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 2);
    let app_token = created["generated"]["tenants.beta.api_tokens.app.token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        signed(&hub, "beta", "first-key-0000").await,
        200,
        "its first key verifies"
    );
    assert_eq!(
        signed(&hub, "beta", BETA_KEY).await,
        401,
        "not the next one yet"
    );

    // Its own manage token sets its key from the app's settings page; the answer never holds it.
    for field in ["api_key", "token"] {
        let (status, set) = call(
            &hub,
            "PUT",
            &format!("/tenants/beta/connectors/probe/credentials/{field}"),
            &app_token,
            Some(json!({ "value": BETA_KEY })),
            None,
        )
        .await;
        assert_eq!(status, 200, "{set}");
        assert_eq!(set["set"], true);
        assert_eq!(set["last4"], "abcd");
        assert!(!set.to_string().contains(BETA_KEY));
    }
    assert_eq!(
        signed(&hub, "beta", BETA_KEY).await,
        200,
        "beta receives webhooks"
    );
    assert_eq!(
        signed(&hub, "beta", "first-key-0000").await,
        401,
        "the old key no longer verifies"
    );
    let version = hub.api("/config").await["running"].as_i64().unwrap();
    let document = hub.api(&format!("/config/versions/{version}")).await["document"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !document.contains(BETA_KEY)
            && !document.contains("first-key-0000")
            && !document.contains(&app_token),
        "only sealed values are kept"
    );

    // Its manage token adds the app's endpoint: the secret comes back this once.
    let (status, endpoint) = call(
        &hub,
        "PUT",
        "/tenants/beta/endpoints/crm",
        &app_token,
        Some(json!({ "url": "https://crm.example/hooks", "events": ["*"] })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["generated"]["tenants.beta.endpoints.crm.secret"]
        .as_str()
        .unwrap();
    assert!(secret.starts_with("whsec_"));
    let (status, again) = call(
        &hub,
        "PUT",
        "/tenants/beta/endpoints/crm",
        &app_token,
        Some(json!({ "url": "https://crm.example/hooks/v2", "events": ["*"] })),
        None,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["generated"],
        json!({}),
        "the secret is kept, not shown again"
    );
    let (status, _) = call(
        &hub,
        "PUT",
        "/tenants/beta/endpoints/crm",
        &app_token,
        Some(json!({ "url": "http://10.0.0.1/x", "events": ["*"], "allow_private": true })),
        None,
    )
    .await;
    assert_eq!(status, 403, "private addresses are the operator's call");

    // A tenant token reaches no other tenant, no tenant's table, nothing of the config.
    let (status, _) = call(
        &hub,
        "PUT",
        "/tenants/alpha/connectors/probe/credentials/api_key",
        &app_token,
        Some(json!({ "value": "stolen-key-000000" })),
        None,
    )
    .await;
    assert_eq!(status, 404, "another tenant is not there for it");
    let (status, _) = call(
        &hub,
        "PATCH",
        "/admin/tenants/beta",
        &app_token,
        Some(json!({ "name": "x" })),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &hub,
        "PUT",
        "/tenants/alpha/connectors/probe/credentials/api_key",
        APP_TOKEN,
        Some(json!({ "value": "stolen-key-000000" })),
        None,
    )
    .await;
    assert_eq!(
        status, 403,
        "alpha's read token may not set alpha's credentials"
    );

    // A change that does not check names where, and leaves the running version as it was.
    let version = hub.api("/config").await["running"].as_i64().unwrap();
    let (status, invalid) = call(
        &hub,
        "PUT",
        "/admin/tenants/gamma",
        ADMIN_TOKEN,
        Some(json!({ "name": 5 })),
        None,
    )
    .await;
    assert_eq!(status, 422, "{invalid}");
    assert_eq!(
        invalid["problems"][0]["field"], "tenants.gamma.name",
        "{invalid}"
    );
    let (status, invalid) = call(
        &hub,
        "PUT",
        "/admin/tenants/gamma",
        ADMIN_TOKEN,
        Some(json!({ "name": "G", "api_tokens": { "app": { "scope": "everything" } } })),
        None,
    )
    .await;
    assert_eq!(status, 422, "{invalid}");
    assert_eq!(
        invalid["problems"][0]["field"], "tenants.gamma.api_tokens.app.scope",
        "{invalid}"
    );
    let (status, plain) = call(&hub, "PUT", "/admin/tenants/gamma", ADMIN_TOKEN,
        Some(json!({ "name": "G", "api_tokens": { "app": { "scope": "read", "token": "plaintext" } } })), None).await;
    assert_eq!(status, 400, "{plain}");
    assert!(
        plain["error"]
            .as_str()
            .unwrap()
            .contains("tenants.gamma.api_tokens.app.token")
    );
    assert_eq!(
        hub.api("/config").await["running"],
        version,
        "nothing applied"
    );

    // A change made on an older version: 412, nothing lost; made on the newest: applied.
    let (status, stale) = call(
        &hub,
        "PATCH",
        "/admin/tenants/beta",
        ADMIN_TOKEN,
        Some(json!({ "name": "Beta Dental & Co" })),
        Some(version - 1),
    )
    .await;
    assert_eq!(status, 412, "{stale}");
    assert_eq!(stale["newest"], version);
    let (status, patched) = call(
        &hub,
        "PATCH",
        "/admin/tenants/beta",
        ADMIN_TOKEN,
        Some(json!({ "name": "Beta Dental & Co" })),
        Some(version),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        signed(&hub, "beta", BETA_KEY).await,
        200,
        "a patch keeps the credentials"
    );
    let tenants = hub.api("/tenants").await;
    assert!(tenants.to_string().contains("Beta Dental & Co"));

    // The audit trail says who did each of it, never a value.
    let trail = wait_for(10, "the audit entries", || async {
        let trail = hub.api("/audit?tenant=beta").await;
        let actions: Vec<String> = trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e["actor"].as_str().unwrap(),
                    e["action"].as_str().unwrap(),
                    e["target"].as_str().unwrap()
                )
            })
            .collect();
        (actions
            .iter()
            .any(|a| a == "api:beta/app credential.set probe.api_key")
            && actions
                .iter()
                .any(|a| a == "api:admin token.created tenants.beta.api_tokens.app.token")
            && actions
                .iter()
                .any(|a| a.starts_with("api:admin config.version version ")))
        .then_some(trail)
    })
    .await;
    let text = trail.to_string();
    assert!(
        !text.contains(BETA_KEY) && !text.contains(&app_token) && !text.contains("first-key-0000")
    );
    let (status, own) = call(&hub, "GET", "/audit?tenant=alpha", &app_token, None, None).await;
    assert_eq!(status, 200);
    assert!(
        own["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "beta"),
        "its own tenant's only: {own}"
    );

    // Removed: its URLs answer 404 at once.
    let (status, _) = call(
        &hub,
        "DELETE",
        "/admin/tenants/beta",
        ADMIN_TOKEN,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(signed(&hub, "beta", BETA_KEY).await, 404);
    let (status, _) = call(&hub, "GET", "/tenants", &app_token, None, None).await;
    assert_eq!(status, 401, "its token went with it");
    let log = hub.log();
    for secret in [BETA_KEY, "first-key-0000", app_token.as_str(), secret] {
        assert!(
            !log.contains(secret),
            "a secret the API took or made reached the log"
        );
    }
}
