//! Connected accounts through the real binary: the `probe` connector's OAuth2 credential
//! (`oauth`), held by the host, against a local OAuth2 authorization server (`oauth_server`)
//! that checks the PKCE verifier, the client authentication and the state round trip. The
//! consent flow end to end; one refresh for 50 jobs at once, with a rotating refresh token; a
//! revoked grant that makes jobs wait (no attempt spent) until the account is reconnected; a JWT
//! bearer grant whose RS256 assertion an independent library (`jose`) verifies; `hub check` on a
//! broken service-account key.

use std::path::Path;

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};

use crate::oauth_server::{OAuthServer, Settings};
use crate::util::*;

const KEY: &str = "probe-webhook-key-0a1b";
const TOKEN: &str = "probe-token-9c8d";

fn keys_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oauth-keys")
}

/// A hub whose three tenants use the probe's `oauth` credential with three grants: alpha by
/// consent, beta by a pasted refresh token, gamma by a service account's signed JWT.
pub(crate) async fn started(
    auth: &mut Option<OAuthServer>,
    settings: impl FnOnce(&mut Settings),
) -> TestHub {
    let mut hub = TestHub::new();
    let mut s = Settings {
        redirect_uri: format!("http://127.0.0.1:{}/connect/callback", hub.port),
        ..Settings::default()
    };
    settings(&mut s);
    let server = OAuthServer::start(s.clone()).await;
    server.state.lock().unwrap().assertion_audience = Some("http://auth.test/token".into());
    let beta_refresh = server.issue_refresh_token();
    let sa = std::fs::read_to_string(keys_dir().join("service-account.json")).unwrap();
    let private_key = std::fs::read_to_string(keys_dir().join("private.pem")).unwrap();
    server.state.lock().unwrap().also_audience = Some("https://login.example.com".into());
    let mut tenants = String::new();
    for (t, grant, extra) in [
        (
            "alpha",
            "authorization_code",
            vec![("oauth_client_secret", s.client_secret.clone())],
        ),
        (
            "beta",
            "refresh_token",
            vec![
                ("oauth_client_secret", s.client_secret.clone()),
                ("oauth_refresh_token", beta_refresh.clone()),
            ],
        ),
        (
            "gamma",
            "jwt_bearer",
            vec![("oauth_service_account", sa.clone())],
        ),
        // Salesforce's shape: an RSA key, the client id as issuer, a username, an audience.
        (
            "delta",
            "jwt_bearer",
            vec![("oauth_private_key", private_key.clone())],
        ),
        (
            "epsilon",
            "client_credentials",
            vec![("oauth_client_secret", s.client_secret.clone())],
        ),
    ] {
        let mut creds = format!(
            "api_key = \"{}\"\ntoken = \"{}\"\n",
            hub.seal_tenant(t, "probe", "api_key", KEY),
            hub.seal_tenant(t, "probe", "token", TOKEN)
        );
        for (field, value) in extra {
            creds.push_str(&format!(
                "{field} = \"{}\"\n",
                hub.seal_tenant(t, "probe", field, &value)
            ));
        }
        tenants.push_str(&format!(
            "[tenants.{t}]\n[tenants.{t}.connectors.probe.credentials]\n{creds}\
             [tenants.{t}.connectors.probe.oauth.oauth]\ngrant = \"{grant}\"\nclient_id = \"{id}\"\n\
             subject = \"ops@{t}.example\"\n{audience}return_to = [\"https://crm.example.com/settings\"]\n\
             [tenants.{t}.endpoints.app]\nurl = \"http://127.0.0.1:9/hooks\"\nevents = [\"*:connection.*\"]\nsecret = \"{secret}\"\n\n",
            id = s.client_id,
            secret = seal_endpoint(&hub, t),
            audience = if t == "delta" { "audience = \"https://login.example.com\"\n" } else { "" },
        ));
    }
    hub.write_config(&format!(
        "{server}[connectors.probe]\npath = \"{wasm}\"\nallow_hosts = [\"http://allowed.test\", \"http://auth.test\"]\n\
         stand_ins = {{ \"http://allowed.test\" = \"{base}\", \"http://auth.test\" = \"{base}\" }}\n\
         timeout_ms = 3000\n\n{tenants}",
        server = hub.server_section(),
        wasm = fixture("probe").display(),
        base = server.base,
    ));
    hub.start().await;
    *auth = Some(server);
    hub
}

fn seal_endpoint(hub: &TestHub, tenant: &str) -> String {
    let place = hub::secrets::Place::Endpoint {
        tenant: tenant.into(),
        name: "app".into(),
        field: "secret".into(),
    };
    hub::secrets::seal(&hub.key, &place, b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
}

/// Posts a delivery whose job calls the stand-in's protected API with the host-held token
/// (`strict`: the job fails unless the call works).
pub(crate) async fn call_api(hub: &TestHub, tenant: &str, id: &str) {
    let body = json!({ "id": id, "op": "http", "url": "http://allowed.test/api/whoami",
                       "bearer": "oauth", "strict": true, "key": id });
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = vec![
        (
            "x-retell-signature",
            sign_retell(KEY.as_bytes(), &bytes, now_ms()),
        ),
        ("content-type", "application/json".to_string()),
    ];
    let (status, text) = hub
        .post(&format!("/hooks/{tenant}/probe"), &headers, &bytes)
        .await;
    assert_eq!(status, 200, "{text}");
}

pub(crate) async fn api_ok(hub: &TestHub, tenant: &str, n: usize) {
    wait_for(
        60,
        &format!("{n} API calls of {tenant} to succeed"),
        || async {
            let r = hub.records(tenant, "http").await;
            (r.iter().filter(|r| r["data"]["status"] == 200).count() >= n).then_some(())
        },
    )
    .await;
}

async fn connection(hub: &TestHub, tenant: &str) -> Value {
    let list = hub.api(&format!("/tenants/{tenant}/connections")).await;
    list.as_array().unwrap()[0].clone()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Walks a consent from the API's link to the callback's page; the page's status and text.
/// The browser reaches the declared `http://auth.test` at the stand-in.
async fn consent(hub: &TestHub, auth: &OAuthServer) -> (u16, String) {
    let link: Value = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/alpha/connections/probe",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap().to_string();
    let browser = no_redirects();
    let to_provider = browser.get(&url).send().await.unwrap();
    assert!(
        to_provider.status().is_redirection(),
        "{}",
        to_provider.status()
    );
    let authorize = to_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let authorize = authorize.replace("http://auth.test", &auth.base);
    let back = browser.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 302, "{}", back.text().await.unwrap());
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let page = browser.get(&callback).send().await.unwrap();
    (page.status().as_u16(), page.text().await.unwrap())
}

#[tokio::test]
async fn the_consent_flow_connects_a_tenant_and_its_jobs_use_the_token() {
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    assert_eq!(connection(&hub, "alpha").await["status"], "not_connected");

    // The link, once: to the provider with a state, an S256 challenge and the declared extras.
    let link: Value = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/alpha/connections/probe",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .json(&json!({ "return_to": "https://evil.example/steal" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        link["error"].as_str().unwrap().contains("not allowed"),
        "{link}"
    );
    let link: Value = hub
        .client
        .post(format!(
            "{}/api/v1/tenants/alpha/connections/probe",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/connect/", hub.base())),
        "{link}"
    );
    let browser = no_redirects();
    let to_provider = browser.get(url).send().await.unwrap();
    assert!(
        to_provider.status().is_redirection(),
        "{}",
        to_provider.status()
    );
    let authorize = url::Url::parse(to_provider.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["scope"], "read write");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/connect/callback", hub.base())
    );
    assert_eq!(
        browser.get(url).send().await.unwrap().status(),
        410,
        "a link opens once"
    );

    // A forged state, then the provider's own answer, then that answer replayed.
    let forged = browser
        .get(format!(
            "{}/connect/callback?code=abc&state=forged",
            hub.base()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let at_stand_in = authorize.as_str().replace("http://auth.test", &auth.base);
    let back = browser.get(&at_stand_in).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("is connected"));
    let replayed = browser.get(&callback).send().await.unwrap();
    assert_eq!(replayed.status(), 400, "a state is spent once");

    // The code was exchanged with the verifier (the server checks it) and Basic client auth.
    let refresh = {
        let s = auth.state.lock().unwrap();
        let exchange = &s.requests[0];
        assert_eq!(exchange.grant_type, "authorization_code");
        assert_eq!(exchange.client_auth, "basic");
        assert!(exchange.form.contains_key("code_verifier"));
        s.valid_refresh.iter().next().unwrap().clone()
    };
    assert_eq!(connection(&hub, "alpha").await["status"], "connected");

    call_api(&hub, "alpha", "a-1").await;
    api_ok(&hub, "alpha", 1).await;
    // The token the consent minted was used, with no refresh.
    assert_eq!(auth.state.lock().unwrap().requests.len(), 1);

    // The refresh token is sealed in hub.toml, and in no log.
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(
        file.contains("oauth_refresh_token = \"sealed:v1:"),
        "{file}"
    );
    assert!(!file.contains(&refresh));
    assert!(!hub.log().contains(&refresh));
}

#[tokio::test]
async fn fifty_jobs_with_an_expiring_rotating_token_refresh_it_once() {
    let mut auth = None;
    let hub = started(&mut auth, |s| {
        s.rotate = true;
        s.refresh_delay_ms = 300;
    })
    .await;
    let auth = auth.unwrap();
    let sends: Vec<_> = (0..50).map(|i| format!("b-{i}")).collect();
    futures_join(&hub.base(), "beta", &sends).await;
    api_ok(&hub, "beta", 50).await;
    assert_eq!(
        auth.state.lock().unwrap().refreshes,
        1,
        "one refresh for 50 jobs"
    );

    // The provider ends every access token early: 401, then again one refresh for all.
    auth.expire_access_tokens();
    let sends: Vec<_> = (50..100).map(|i| format!("b-{i}")).collect();
    futures_join(&hub.base(), "beta", &sends).await;
    api_ok(&hub, "beta", 100).await;
    let s = auth.state.lock().unwrap();
    assert_eq!(s.refreshes, 2, "one more refresh after the 401s");
    assert!(
        s.dead_refresh_presented.is_empty(),
        "a rotated-out refresh token was presented"
    );
}

pub(crate) async fn futures_join(base: &str, tenant: &str, ids: &[String]) {
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let (base, id, tenant) = (base.to_string(), id.clone(), tenant.to_string());
        let body = json!({ "id": id, "op": "http", "url": "http://allowed.test/api/whoami",
                           "bearer": "oauth", "strict": true, "key": id });
        set.spawn(async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let sig = sign_retell(KEY.as_bytes(), &bytes, now_ms());
            let r = reqwest::Client::new()
                .post(format!("{base}/hooks/{tenant}/probe"))
                .header("x-retell-signature", sig)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
    }
    while set.join_next().await.is_some() {}
}

#[tokio::test]
async fn a_revoked_grant_makes_jobs_wait_until_the_account_is_reconnected() {
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    let (status, page) = consent(&hub, &auth).await;
    assert_eq!(status, 200, "{page}");
    call_api(&hub, "alpha", "r-1").await;
    api_ok(&hub, "alpha", 1).await;

    // The user revokes the hub's access at the provider.
    auth.revoke_all_grants();
    call_api(&hub, "alpha", "r-2").await;
    let failed = wait_for(30, "the connection to need reconnecting", || async {
        let c = connection(&hub, "alpha").await;
        (c["status"] == "needs_reconnect").then_some(c)
    })
    .await;
    assert!(
        failed["failed"].as_str().unwrap().contains("invalid_grant"),
        "{failed}"
    );
    // The event follows the state (it is published right after the state is written).
    wait_for(10, "connection.failed", || async {
        let events = hub.api("/tenants/alpha/events").await;
        events
            .to_string()
            .contains("connection.failed")
            .then_some(())
    })
    .await;
    // The operator is alerted (the console's banner, the alerts API).
    let open = hub.api("/alerts").await.to_string();
    assert!(
        open.contains("needs_reconnect") && open.contains("alpha's probe/oauth needs reconnecting"),
        "{open}"
    );
    // The job waits: queued again with no attempt spent, never dead.
    let jobs = hub.api("/jobs?tenant=alpha").await;
    let jobs = jobs["jobs"].as_array().unwrap();
    // The tenant's app is told, through its endpoint.
    assert!(
        jobs.iter()
            .any(|j| j["task"]["event_type"] == "probe.connection.failed"),
        "{jobs:?}"
    );
    let deliveries: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["task"]["kind"] == "delivery")
        .collect();
    assert!(
        deliveries.iter().all(|j| j["state"] != "dead"),
        "{deliveries:?}"
    );
    assert!(
        deliveries
            .iter()
            .any(|j| j["state"] == "queued" && j["attempts"] == 0),
        "{deliveries:?}"
    );

    // Reconnected by a new consent: restored, and the waiting job runs.
    let (status, page) = consent(&hub, &auth).await;
    assert_eq!(status, 200, "{page}");
    api_ok(&hub, "alpha", 2).await;
    wait_for(10, "connection.restored", || async {
        let events = hub.api("/tenants/alpha/events").await;
        events
            .to_string()
            .contains("connection.restored")
            .then_some(())
    })
    .await;
    assert_eq!(connection(&hub, "alpha").await["status"], "connected");
    let open = hub.api("/alerts").await.to_string();
    assert!(
        !open.contains("needs_reconnect"),
        "resolved once reconnected: {open}"
    );
}

#[tokio::test]
async fn jwt_bearer_assertions_verify_with_an_independent_library() {
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    call_api(&hub, "gamma", "g-1").await;
    api_ok(&hub, "gamma", 1).await;
    let assertion = auth.state.lock().unwrap().assertions[0].clone();
    let public = std::fs::read_to_string(keys_dir().join("public.pem")).unwrap();
    let verified = verify_jwt(&json!({
        "jwt": assertion,
        "public_key_pem": public,
        "audience": "http://auth.test/token",
        "issuer": "hub-test@hub-test.iam.gserviceaccount.com",
    }));
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["header"]["alg"], "RS256");
    assert!(verified["header"]["kid"].is_string(), "{verified}");
    assert_eq!(verified["claims"]["sub"], "ops@gamma.example");
    assert_eq!(verified["claims"]["scope"], "read write");
    // The same assertion with its signature altered: refused by the same library.
    let mut forged = assertion.clone().into_bytes();
    let at = forged.len() - 20; // inside the signature, clear of its padding bits
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let refused = verify_jwt(&json!({ "jwt": forged, "public_key_pem": public,
        "audience": "http://auth.test/token", "issuer": "hub-test@hub-test.iam.gserviceaccount.com" }));
    assert_eq!(refused["ok"], false, "{refused}");
}

#[tokio::test]
async fn hub_check_names_a_broken_service_account_key() {
    let mut auth = None;
    let mut hub = started(&mut auth, |_| {}).await;
    hub.kill();
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    let broken = hub.seal_tenant(
        "gamma",
        "probe",
        "oauth_service_account",
        r#"{"client_email":"x@y"}"#,
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("oauth_service_account"))
        .unwrap()
        .to_string();
    hub.write_config(&text.replace(&line, &format!("oauth_service_account = \"{broken}\"")));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(!ok, "{out}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("tenants.gamma.connectors.probe.credentials.oauth_service_account"),
        "{all}"
    );
    assert!(all.contains("private_key"), "{all}");
    assert!(all.contains("hub.toml:"), "{all}");
}

#[tokio::test]
async fn a_rotating_refresh_token_survives_kill_9_through_100_refreshes() {
    use rand::Rng as _;
    let mut auth = None;
    let mut hub = started(&mut auth, |s| {
        s.rotate = true;
        s.refresh_delay_ms = 20;
    })
    .await;
    let auth = auth.unwrap();
    let mut rng = rand::rng();
    // Five kills at random calls, each at a random moment after the call was acknowledged:
    // before, during or after the refresh it causes.
    let mut kill_at = std::collections::BTreeSet::new();
    while kill_at.len() < 5 {
        kill_at.insert(rng.random_range(3..95));
    }
    let mut calls = 0;
    while auth.state.lock().unwrap().refreshes < 100 {
        // The provider ends the token early: the next call gets a 401 and refreshes, rotating
        // the refresh token.
        auth.expire_access_tokens();
        calls += 1;
        call_api(&hub, "beta", &format!("k-{calls}")).await;
        if kill_at.contains(&calls) {
            tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..40))).await;
            hub.kill();
            hub.start().await;
        }
        // The call done (after a kill, once the dead worker's leases ran out).
        api_ok(&hub, "beta", calls).await;
        assert!(calls < 300, "100 refreshes never came ({calls} calls)");
    }
    let s = auth.state.lock().unwrap();
    assert!(
        s.dead_refresh_presented.is_empty(),
        "a refresh token whose successor was used was presented again: {:?}",
        s.dead_refresh_presented
    );
}

#[tokio::test]
async fn no_oauth2_secret_or_token_ever_reaches_the_guest() {
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    let send = async |body: Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        let headers = vec![
            (
                "x-retell-signature",
                sign_retell(KEY.as_bytes(), &bytes, now_ms()),
            ),
            ("content-type", "application/json".to_string()),
        ];
        let (status, _) = hub.post("/hooks/beta/probe", &headers, &bytes).await;
        assert_eq!(status, 200);
    };
    // The guest names the grant's secrets every way it can: as a bearer credential, in a URL
    // placeholder, as a MAC key. Each is refused; the token itself is attached by the host.
    for (i, cred) in ["oauth_client_secret", "oauth_refresh_token"]
        .iter()
        .enumerate()
    {
        send(
            json!({ "id": format!("b{i}"), "op": "http", "key": format!("bearer-{cred}"),
                     "url": "http://allowed.test/api/whoami", "bearer": cred }),
        )
        .await;
        send(
            json!({ "id": format!("u{i}"), "op": "http", "key": format!("url-{cred}"),
                     "url": format!("http://allowed.test/api/whoami?t={{credential:{cred}}}") }),
        )
        .await;
        send(json!({ "id": format!("m{i}"), "op": "mac", "key": format!("mac-{cred}"), "credential": cred })).await;
    }
    send(json!({ "id": "ok", "op": "http", "key": "token", "url": "http://allowed.test/api/whoami", "bearer": "oauth" })).await;
    // An API that echoes the Authorization header back shows the connector the placeholder.
    send(json!({ "id": "echo", "op": "http", "key": "echo", "url": "http://allowed.test/api/echo", "bearer": "oauth" })).await;
    let http = wait_for(20, "six http records", || async {
        let r = hub.records("beta", "http").await;
        (r.len() == 6).then_some(r)
    })
    .await;
    let macs = wait_for(20, "two mac records", || async {
        let r = hub.records("beta", "mac").await;
        (r.len() == 2).then_some(r)
    })
    .await;
    let echoed = http.iter().find(|r| r["key"] == "echo").unwrap();
    assert!(
        echoed["data"]["body"]
            .as_str()
            .unwrap()
            .contains("Bearer {credential:oauth}"),
        "{echoed}"
    );
    for r in http
        .iter()
        .filter(|r| r["key"] != "token" && r["key"] != "echo")
    {
        let message = r["data"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("is not declared in the connector's manifest"),
            "{r}"
        );
    }
    for r in &macs {
        let message = r["data"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("OAuth2 credential the host holds"), "{r}");
    }
    let token = http.iter().find(|r| r["key"] == "token").unwrap();
    assert_eq!(token["data"]["status"], 200, "{token}");
    // What the guest saw and wrote holds none of the secrets or the token.
    let s = auth.state.lock().unwrap();
    let access = s.api_calls[0].clone();
    let refresh: Vec<String> = s.valid_refresh.iter().cloned().collect();
    let written = format!("{http:?}{macs:?}");
    for secret in refresh
        .iter()
        .chain([&access, &"hub-test-secret".to_string()])
    {
        assert!(
            !written.contains(secret.as_str()),
            "a secret reached the guest's output"
        );
        assert!(
            !hub.log().contains(secret.as_str()),
            "a secret reached the log"
        );
    }
}

#[tokio::test]
async fn a_private_key_and_client_credentials_mint_tokens_too() {
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    call_api(&hub, "delta", "d-1").await;
    call_api(&hub, "epsilon", "e-1").await;
    api_ok(&hub, "delta", 1).await;
    api_ok(&hub, "epsilon", 1).await;
    let s = auth.state.lock().unwrap();
    let public = std::fs::read_to_string(keys_dir().join("public.pem")).unwrap();
    let verified = verify_jwt(&json!({ "jwt": s.assertions[0], "public_key_pem": public,
        "audience": "https://login.example.com", "issuer": "hub-test-client" }));
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["claims"]["sub"], "ops@delta.example");
    let cc = s
        .requests
        .iter()
        .find(|r| r.grant_type == "client_credentials")
        .unwrap();
    assert_eq!(cc.client_auth, "basic");
    assert_eq!(cc.form.get("scope").map(String::as_str), Some("read write"));
}

#[tokio::test]
async fn a_token_endpoint_that_fails_is_retried_and_named_then_works() {
    use crate::oauth_server::Failure;
    let mut auth = None;
    let hub = started(&mut auth, |_| {}).await;
    let auth = auth.unwrap();
    auth.state.lock().unwrap().fail_next.extend([
        Failure::Html,
        Failure::Garbage,
        Failure::Unavailable,
    ]);
    call_api(&hub, "beta", "f-1").await;
    // Three failed attempts (an HTML page, garbage, a 503), each retried with backoff.
    api_ok(&hub, "beta", 1).await;
    let jobs = hub.api("/jobs?tenant=beta").await;
    let job = &jobs["jobs"][0];
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 4, "{job}");
    assert!(
        hub.log().contains(
            "OAuth2 credential `oauth` of tenant beta (probe): the token endpoint answered 500 with an HTML page"
        ),
        "the failure names the tenant and the credential"
    );
    // Other tenants were never held up.
    call_api(&hub, "gamma", "g-ok").await;
    api_ok(&hub, "gamma", 1).await;
}

#[tokio::test]
async fn a_declined_consent_changes_nothing() {
    let mut auth = None;
    let hub = started(&mut auth, |s| s.deny = true).await;
    let auth = auth.unwrap();
    let before = std::fs::read_to_string(hub.config_path()).unwrap();
    let (status, page) = consent(&hub, &auth).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("The consent was not given (access_denied"),
        "{page}"
    );
    assert_eq!(std::fs::read_to_string(hub.config_path()).unwrap(), before);
    assert_eq!(connection(&hub, "alpha").await["status"], "not_connected");
    assert!(
        auth.state.lock().unwrap().requests.is_empty(),
        "no code was exchanged"
    );
}

#[tokio::test]
async fn a_tenant_token_reaches_its_own_connections_only() {
    let mut auth = None;
    let mut hub = started(&mut auth, |_| {}).await;
    // beta's app gets two tokens: one that manages, one that only reads.
    hub.kill();
    let mut text = std::fs::read_to_string(hub.config_path()).unwrap();
    for (name, scope, token) in [
        ("app", "manage", "hubtok_beta_manage_0123456789abcdef"),
        ("reader", "read", "hubtok_beta_read_0123456789abcdef"),
    ] {
        let place = hub::secrets::Place::ApiToken {
            tenant: "beta".into(),
            name: name.into(),
        };
        let sealed = hub::secrets::seal(&hub.key, &place, token.as_bytes());
        text.push_str(&format!(
            "\n[tenants.beta.api_tokens.{name}]\ntoken = \"{sealed}\"\nscope = \"{scope}\"\n"
        ));
    }
    hub.write_config(&text);
    hub.start().await;
    let call = async |method: reqwest::Method, path: &str, token: &str| {
        hub.client
            .request(method, format!("{}/api/v1{path}", hub.base()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let manage = "hubtok_beta_manage_0123456789abcdef";
    let reader = "hubtok_beta_read_0123456789abcdef";
    use reqwest::Method;
    // Its own tenant: listed, and a link for the one that manages.
    assert_eq!(
        call(Method::GET, "/tenants/beta/connections", manage).await,
        200
    );
    assert_eq!(
        call(Method::GET, "/tenants/beta/connections", reader).await,
        200
    );
    assert_eq!(
        call(Method::POST, "/tenants/beta/connections/probe", reader).await,
        403
    );
    assert_eq!(
        call(
            Method::DELETE,
            "/tenants/beta/connections/probe/oauth",
            reader
        )
        .await,
        403
    );
    // Another tenant's, whatever the token's scope: as if it did not exist.
    for path in [
        "/tenants/alpha/connections",
        "/tenants/alpha/connections/probe",
        "/tenants/alpha/connections/probe/oauth",
    ] {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let status = call(method.clone(), path, manage).await;
            assert!(
                status == 404 || status == 405,
                "{method} {path} with beta's token: {status}"
            );
        }
    }
    assert_eq!(
        call(Method::GET, "/tenants/alpha/connections", manage).await,
        404
    );
}
