//! `server.admin_listen`: the API, the console, `/metrics` and MCP on a port of their own; the
//! providers' port serves the webhooks and health alone and answers 404 for the rest.

use serde_json::json;

use crate::hostile_kit::*;
use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_listener_the_public_port_serves_webhooks_alone() {
    let (mock, _) = mock_api().await;
    let mut hub = TestHub::new();
    let admin_port = free_port();
    let text = config(&hub, mock, &Opts::default()).replacen(
        "[server]\n",
        &format!("[server]\nadmin_listen = \"127.0.0.1:{admin_port}\"\n"),
        1,
    );
    hub.write_config(&text);
    hub.start().await;
    let public = hub.base();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let get = |url: String, token: bool| {
        let mut req = hub.client.get(url);
        if token {
            req = req.bearer_auth(&hub.admin_token);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };

    // The providers' port: webhooks and health; nothing of the operator's.
    send_ok(
        &hub,
        "alpha",
        json!({ "id": "p1", "op": "record", "kind": "k", "key": "1", "data": {} }),
    )
    .await;
    assert_eq!(get(format!("{public}/healthz"), false).await, 200);
    assert_eq!(get(format!("{public}/readyz"), false).await, 200);
    for path in [
        "/api/v1/tenants",
        "/api/v1/openapi.json",
        "/console",
        "/console/login",
        "/metrics",
        "/mcp/alpha",
    ] {
        assert_eq!(
            get(format!("{public}{path}"), true).await,
            404,
            "{path} on the public port"
        );
    }
    // The admin port: the API (with its token), the console, metrics; no webhooks.
    assert_eq!(get(format!("{admin}/api/v1/tenants"), true).await, 200);
    assert_eq!(get(format!("{admin}/api/v1/tenants"), false).await, 401);
    assert_eq!(get(format!("{admin}/console/login"), false).await, 200);
    assert_eq!(get(format!("{admin}/metrics"), false).await, 200);
    assert_eq!(get(format!("{admin}/readyz"), false).await, 200);
    let body = br#"{"id":"p2","op":"record","kind":"k","key":"2","data":{}}"#;
    let mut req = hub
        .client
        .post(format!("{admin}/hooks/alpha/probe"))
        .body(body.to_vec());
    for (k, v) in signed(ALPHA_KEY, body) {
        req = req.header(k, v);
    }
    assert_eq!(
        req.send().await.unwrap().status().as_u16(),
        404,
        "no webhooks on the admin port"
    );
    let deliveries = hub
        .client
        .get(format!("{admin}/api/v1/deliveries?tenant=alpha"))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        deliveries["deliveries"].as_array().unwrap().len(),
        1,
        "{deliveries}"
    );

    // The same address twice is refused where it is written.
    let twice = text.replace(
        &format!("127.0.0.1:{admin_port}"),
        &format!("127.0.0.1:{}", hub.port),
    );
    hub.write_config(&twice);
    let (ok, _, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(
        !ok && err.contains("server.admin_listen: the same address as server.listen"),
        "{err}"
    );
}
