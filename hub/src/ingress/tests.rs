//! The ingress contract, pinned on `server::router` with `oneshot`: a real hub state (SQLite
//! store, built-in connectors in the wasmtime sandbox), no listener.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use plugin_sdk::schemes::sign_retell;
use secrecy::SecretSlice;
use tower::ServiceExt;

use crate::clock::now_ms;
use crate::config::Config;
use crate::secrets::{Place, Vault};
use crate::state::{self, Hub};

const RETELL_KEY: &[u8] = b"retell-test-key";

/// A hub with `acme` (Retell with its key, Zapier) and `nokey` (Retell without a key), at
/// `per_second`/`burst` per tenant, and no workers (nothing is processed: ingress only).
async fn hub(dir: &Path, per_second: u32, burst: u32) -> Arc<Hub> {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://hub.test"
data_dir = "data"
body_limit = 4096
workers = 0
rate_limit = {{ per_second = {per_second}, burst = {burst} }}

[connectors.retell]
builtin = true
[connectors.zapier]
builtin = true

[tenants.acme.connectors.retell]
[tenants.acme.connectors.zapier]
[tenants.nokey.connectors.retell]
"#
    );
    let config = Config::from_str(&toml, &dir.join("hub.toml")).unwrap();
    let mut vault = Vault::new();
    vault.insert(
        Place::Tenant {
            tenant: "acme".into(),
            connector: "retell".into(),
            field: "api_key".into(),
        },
        SecretSlice::from(RETELL_KEY.to_vec()),
    );
    state::build(config, vault).await.unwrap()
}

/// A Retell call webhook, signed with `key` now.
fn retell(path: &str, body: &str, key: &[u8]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .header(
            "x-retell-signature",
            sign_retell(key, body.as_bytes(), now_ms() as u64),
        )
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn call(id: &str) -> String {
    serde_json::json!({ "event": "call_started", "call": { "call_id": id, "call_status": "ongoing" } })
        .to_string()
}

/// Status, `Retry-After` and JSON body of the router's answer.
async fn send(
    hub: &Arc<Hub>,
    req: Request<Body>,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let resp = crate::server::router(hub.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, retry_after, body)
}

#[tokio::test]
async fn unknown_targets_all_get_the_same_404() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), 1000, 1000).await;
    let body = call("c1");
    let not_found = serde_json::json!({ "error": "not found" });
    for (path, why) in [
        ("/hooks/nobody/retell", "unknown tenant"),
        ("/hooks/acme/nothing", "unknown connector"),
        ("/hooks/acme/retell/nothing", "unknown route"),
        (
            "/hooks/nokey/zapier/catch",
            "a connector the tenant does not use",
        ),
        ("/hooks/_/retell", "no tenant on a route that needs one"),
        (
            "/hooks/acme/retell/chat/sometoken",
            "a path token the route does not take",
        ),
    ] {
        let (status, _, answer) = send(&hub, retell(path, &body, RETELL_KEY)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{why}: {path}");
        assert_eq!(answer, not_found, "{why}: the same body as any other 404");
    }
    assert_eq!(hub.metrics.rejected_not_found.get(), 6);
    assert_eq!(hub.metrics.stored.get(), 0);
}

#[tokio::test]
async fn a_webhook_is_acknowledged_only_verified_readable_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), 1000, 1000).await;
    let body = call("c1");

    let get = Request::get("/hooks/acme/retell")
        .body(Body::empty())
        .unwrap();
    let (status, _, answer) = send(&hub, get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer["error"], "GET is not accepted here");

    let unsigned = Request::post("/hooks/acme/retell")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, _, answer) = send(&hub, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no signature");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid signature: "),
        "{answer}"
    );
    let (status, _, _) = send(&hub, retell("/hooks/acme/retell", &body, b"wrong key")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed with another key");
    let (status, _, answer) = send(&hub, retell("/hooks/nokey/retell", &body, RETELL_KEY)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a tenant without the credential"
    );
    assert_eq!(answer["error"], "signature cannot be verified", "no detail");
    assert_eq!(hub.metrics.rejected_signature.get(), 3);

    let no_id = r#"{"event":"call_started","call":{}}"#;
    let (status, _, answer) = send(&hub, retell("/hooks/acme/retell", no_id, RETELL_KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "the delivery has no JSON field `/call/call_id`"
    );
    assert_eq!(hub.metrics.rejected_bad_request.get(), 1);

    let too_large = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let (status, _, answer) =
        send(&hub, retell("/hooks/acme/retell", &too_large, RETELL_KEY)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        answer["error"],
        format!("the body is {} bytes; the limit is 4096", too_large.len())
    );
    assert_eq!(hub.metrics.stored.get(), 0, "nothing refused was stored");

    let (status, _, first) = send(&hub, retell("/hooks/acme/retell", &body, RETELL_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["status"], "stored");
    let (status, _, again) = send(&hub, retell("/hooks/acme/retell", &body, RETELL_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["id"], first["id"], "the same delivery");
    assert_eq!(
        (hub.metrics.stored.get(), hub.metrics.duplicates.get()),
        (1, 1)
    );
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), 1, 2).await;
    let mut answers = Vec::new();
    for i in 0..6 {
        let body = call(&format!("c{i}"));
        answers.push(send(&hub, retell("/hooks/acme/retell", &body, RETELL_KEY)).await);
    }
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(limited.len() >= 3, "a burst of 2 at 1/s: {answers:?}");
    for (_, retry_after, answer) in &limited {
        let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!(secs >= 1, "Retry-After in whole seconds, at least 1");
        assert_eq!(answer["error"], "rate limited");
    }
    assert_eq!(hub.metrics.rate_limited.get(), limited.len() as u64);
    // Another tenant has its own bucket: over its rate only after its own burst.
    let (status, _, _) = send(&hub, retell("/hooks/nokey/retell", &call("n"), RETELL_KEY)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "verified, not rate limited"
    );
}

#[tokio::test]
async fn a_webhook_the_store_cannot_commit_gets_503_and_no_ack() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path(), 1000, 1000).await;
    // Another process holds the database: the writer's transaction cannot begin within its
    // busy timeout.
    let lock = rusqlite::Connection::open(hub.store.path().expect("a SQLite store")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, retry_after, answer) =
        send(&hub, retell("/hooks/acme/retell", &call("c1"), RETELL_KEY)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert_eq!(
        answer["error"],
        "the hub cannot store this delivery now; retry later"
    );
    assert_eq!(hub.metrics.store_failures.get(), 1);
    lock.execute_batch("ROLLBACK").unwrap();
    let (status, _, answer) =
        send(&hub, retell("/hooks/acme/retell", &call("c1"), RETELL_KEY)).await;
    assert_eq!(status, StatusCode::OK, "the provider's retry is stored");
    assert_eq!(
        answer["status"], "stored",
        "nothing of the failed attempt was kept"
    );
}
