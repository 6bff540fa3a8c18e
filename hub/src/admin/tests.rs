//! The API's reach per token, its pages and its change feed, on `server::router` with
//! `oneshot`: a real hub state (SQLite store, built-in connectors), no listener.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::SecretSlice;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::clock::now_ms;
use crate::config::{Config, id};
use crate::secrets::{Place, Vault};
use crate::state::{self, Hub};
use crate::store::{Effects, NewDelivery, RecordWrite};

pub(crate) const ADMIN: &str = "admin-token";
pub(crate) const ACME_READ: &str = "hubtok_acme_read";
const ACME_REPLAY: &str = "hubtok_acme_replay";
const BETA_READ: &str = "hubtok_beta_read";

/// Tenants `acme` (tokens `dash`, read, and `ops`, replay) and `beta` (token `app`), both on
/// Retell; the admin token; no workers.
pub(crate) async fn hub(dir: &Path) -> Arc<Hub> {
    let toml = r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://hub.test"
data_dir = "data"
workers = 0

[connectors.retell]
builtin = true

[tenants.acme.connectors.retell]
[tenants.acme.api_tokens.dash]
token = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
[tenants.acme.api_tokens.ops]
scope = "replay"
token = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
[tenants.beta.connectors.retell]
[tenants.beta.api_tokens.app]
token = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
"#;
    let config = Config::from_str(toml, &dir.join("hub.toml")).unwrap();
    let mut vault = Vault::new();
    let mut put = |place: Place, value: &str| {
        vault.insert(place, SecretSlice::from(value.as_bytes().to_vec()));
    };
    put(
        Place::Server {
            field: "admin_token".into(),
        },
        ADMIN,
    );
    for (tenant, name, token) in [
        ("acme", "dash", ACME_READ),
        ("acme", "ops", ACME_REPLAY),
        ("beta", "app", BETA_READ),
    ] {
        let place = Place::ApiToken {
            tenant: tenant.into(),
            name: name.into(),
        };
        put(place, token);
    }
    state::build(config, vault).await.unwrap()
}

async fn call(hub: &Arc<Hub>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = crate::server::router(hub.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, token: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn delivery(tenant: &str, identity: &str) -> NewDelivery {
    NewDelivery {
        tenant: id(tenant),
        connector: id("retell"),
        route: String::new(),
        method: "POST".into(),
        identity: identity.into(),
        event: Some("call_started".into()),
        url: format!("http://hub.test/hooks/{tenant}/retell"),
        headers: vec![],
        body: b"{}".to_vec(),
        received_at_ms: now_ms(),
        trace: None,
    }
}

async fn put_record(hub: &Hub, tenant: &str, key: &str, data: Option<Value>) {
    let effects = Effects {
        records: vec![RecordWrite {
            kind: "call".into(),
            key: key.into(),
            data: data.map(|d| d.to_string()),
        }],
        ..Default::default()
    };
    hub.store
        .apply(&id(tenant), &id("retell"), effects)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_tenant_token_opens_its_own_tenant_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let ids: Vec<i64> = hub
        .store
        .ingest(vec![delivery("acme", "a1"), delivery("beta", "b1")])
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id())
        .collect();
    let (acme_delivery, beta_delivery) = (ids[0], ids[1]);
    put_record(&hub, "acme", "c-acme", Some(json!({"n": 1}))).await;
    put_record(&hub, "beta", "c-beta", Some(json!({"n": 2}))).await;
    let acme_job = hub.store.jobs_for_delivery(acme_delivery).await.unwrap()[0].id;
    let beta_job = hub.store.jobs_for_delivery(beta_delivery).await.unwrap()[0].id;

    // Every tenant path: its own answers 200, another tenant's is exactly an unknown tenant's.
    for path in ["records", "events", "changes", "analytics", "endpoints"] {
        let (own, _) = call(
            &hub,
            get(&format!("/api/v1/tenants/acme/{path}"), ACME_READ),
        )
        .await;
        assert_eq!(own, StatusCode::OK, "{path}");
        let (other, other_body) = call(
            &hub,
            get(&format!("/api/v1/tenants/beta/{path}"), ACME_READ),
        )
        .await;
        let (unknown, unknown_body) = call(
            &hub,
            get(&format!("/api/v1/tenants/nobody/{path}"), ACME_READ),
        )
        .await;
        assert_eq!(
            (other, unknown),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
        );
        assert_eq!(
            other_body["error"].as_str().map(|e| e.replace("beta", "?")),
            unknown_body["error"]
                .as_str()
                .map(|e| e.replace("nobody", "?")),
            "{path}: another tenant reads as one that does not exist"
        );
    }
    let (_, records) = call(&hub, get("/api/v1/tenants/acme/records", ACME_READ)).await;
    assert_eq!(records["records"].as_array().unwrap().len(), 1);

    // Lists hold the caller's tenant only, whatever it asks for.
    let (_, list) = call(&hub, get("/api/v1/deliveries", ACME_READ)).await;
    let tenants: Vec<&str> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme"]);
    let (_, list) = call(&hub, get("/api/v1/deliveries?tenant=beta", ACME_READ)).await;
    assert_eq!(list["deliveries"], json!([]));
    let (_, list) = call(&hub, get("/api/v1/jobs?tenant=beta", ACME_READ)).await;
    assert_eq!(list["jobs"], json!([]));
    let (_, list) = call(&hub, get("/api/v1/jobs", ACME_READ)).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let (_, list) = call(&hub, get("/api/v1/tenants", BETA_READ)).await;
    assert_eq!(list["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(list["tenants"][0]["id"], "beta");
    let (_, list) = call(&hub, get("/api/v1/deliveries", ADMIN)).await;
    assert_eq!(
        list["deliveries"].as_array().unwrap().len(),
        2,
        "the admin sees all"
    );

    // Another tenant's ids are ids that do not exist.
    let own = format!("/api/v1/deliveries/{acme_delivery}");
    let other = format!("/api/v1/deliveries/{beta_delivery}");
    assert_eq!(call(&hub, get(&own, ACME_READ)).await.0, StatusCode::OK);
    let (status, body) = call(&hub, get(&other, ACME_READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], format!("delivery {beta_delivery} not found"));
    for what in [json!({"delivery": beta_delivery}), json!({"job": beta_job})] {
        let (status, _) = call(&hub, post("/api/v1/replay", ACME_REPLAY, what.clone())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
    }
    let (status, body) = call(
        &hub,
        post(
            "/api/v1/replay",
            ACME_REPLAY,
            json!({"dead": {"tenant": "beta"}}),
        ),
    )
    .await;
    assert_eq!((status, &body["queued"]), (StatusCode::OK, &json!(0)));

    // Scopes: a read token reads; replay and sync need the replay scope.
    let replay_own = json!({"job": acme_job});
    let (status, _) = call(&hub, post("/api/v1/replay", ACME_READ, replay_own.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&hub, post("/api/v1/replay", ACME_REPLAY, replay_own)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "its own queued job: nothing to do, but allowed"
    );
    let sync = json!({"connector": "retell", "job": "sync_agents"});
    let (status, _) = call(
        &hub,
        post("/api/v1/tenants/acme/sync", ACME_READ, sync.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &hub,
        post("/api/v1/tenants/acme/sync", ACME_REPLAY, sync.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["job"].as_i64().is_some());
    let (status, _) = call(&hub, post("/api/v1/tenants/beta/sync", ACME_REPLAY, sync)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for tenant in ["beta", "nobody"] {
        let enable = format!("/api/v1/tenants/{tenant}/endpoints/app/enable");
        let (status, body) = call(&hub, post(&enable, ACME_REPLAY, json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{tenant}: {body}");
        assert_eq!(
            body["error"].as_str().map(|e| e.replace(tenant, "?")),
            Some("tenant ? not found".to_owned()),
            "enabling another tenant's endpoint reads as a tenant that does not exist"
        );
    }
    let unknown_job = json!({"connector": "retell", "job": "nope"});
    let (status, _) = call(
        &hub,
        post("/api/v1/tenants/acme/sync", ACME_REPLAY, unknown_job),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No token, a wrong one: 401, and nothing about tenants.
    for token in ["", "hubtok_wrong", &ACME_READ[..ACME_READ.len() - 1]] {
        let (status, body) = call(&hub, get("/api/v1/tenants/acme/records", token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"error": "a valid bearer token is required"}));
    }

    // Uses are counted by name; no token value is shown.
    let resp = crate::server::router(hub.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("hub_api_requests_total{token=\"acme/dash\"}"),
        "{text}"
    );
    assert!(
        text.contains("hub_api_requests_total{token=\"admin\"} 1"),
        "{text}"
    );
    for secret in [ADMIN, ACME_READ, ACME_REPLAY, BETA_READ] {
        assert!(!text.contains(secret));
    }
}

#[tokio::test]
async fn pages_do_not_shift_while_rows_arrive_and_a_cursor_opens_only_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let first: Vec<_> = (0..7).map(|i| delivery("acme", &format!("d{i}"))).collect();
    hub.store.ingest(first).await.unwrap();

    let mut seen = Vec::new();
    let mut next = Some("/api/v1/deliveries?limit=3".to_string());
    let mut pages = 0;
    while let Some(link) = next {
        let (status, page) = call(&hub, get(&link, ACME_READ)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        if pages == 1 {
            // New deliveries arrive between the pages: they are newer than every page.
            let later: Vec<_> = (0..5)
                .map(|i| delivery("acme", &format!("late{i}")))
                .collect();
            hub.store.ingest(later).await.unwrap();
        }
        seen.extend(
            page["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["identity"].as_str().unwrap().to_string()),
        );
        next = page["next"].as_str().map(String::from);
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("d{i}")).collect();
    assert_eq!(seen, expected, "each of the first seven once, newest first");
    assert_eq!(pages, 3);

    // A cursor of acme's is refused on beta's list, another filter or another list.
    let (_, page) = call(&hub, get("/api/v1/deliveries?limit=2", ACME_READ)).await;
    let link = page["next"].as_str().unwrap().to_string();
    let cursor = link.split("cursor=").nth(1).unwrap();
    for other in [
        (
            format!("/api/v1/deliveries?limit=2&cursor={cursor}"),
            BETA_READ,
        ),
        (
            format!("/api/v1/deliveries?state=dead&cursor={cursor}"),
            ACME_READ,
        ),
        (format!("/api/v1/jobs?cursor={cursor}"), ACME_READ),
        ("/api/v1/deliveries?cursor=forged".to_string(), ACME_READ),
    ] {
        let (status, body) = call(&hub, get(&other.0, other.1)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", other.0);
    }
    let (status, _) = call(&hub, get(&link, ACME_READ)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&hub, get("/api/v1/deliveries?limit=100000", ACME_READ)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a large limit is capped, not refused"
    );
}

#[tokio::test]
async fn the_change_feed_lists_each_changed_record_once_in_change_order() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    put_record(&hub, "acme", "c1", Some(json!({"v": 1}))).await;
    put_record(&hub, "acme", "c2", Some(json!({"v": 1}))).await;
    put_record(&hub, "beta", "b1", Some(json!({"v": 1}))).await;
    let (status, page) = call(&hub, get("/api/v1/tenants/acme/changes", ACME_READ)).await;
    assert_eq!(status, StatusCode::OK);
    let keys = |page: &Value| -> Vec<String> {
        page["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&page), ["c1", "c2"], "acme's alone, in change order");
    let cursor = page["next"].as_str().unwrap().to_string();
    let before_the_deletion = format!("/api/v1/tenants/acme/changes?after={cursor}");

    // c1 changes twice and c2 is deleted: listed once each, at the latest change.
    put_record(&hub, "acme", "c1", Some(json!({"v": 2}))).await;
    put_record(&hub, "acme", "c2", None).await;
    put_record(&hub, "acme", "c1", Some(json!({"v": 3}))).await;
    let link = format!("/api/v1/tenants/acme/changes?after={cursor}");
    let (_, page) = call(&hub, get(&link, ACME_READ)).await;
    assert_eq!(keys(&page), ["c2", "c1"]);
    assert_eq!(page["changes"][0]["deleted"], true);
    assert_eq!(page["changes"][0]["data"], Value::Null);
    assert_eq!(page["changes"][1]["data"], json!({"v": 3}));
    let cursor = page["next"].as_str().unwrap().to_string();

    // Nothing new: an empty page with the same cursor; with `wait`, the next change.
    let link = format!("/api/v1/tenants/acme/changes?after={cursor}");
    let (_, page) = call(&hub, get(&link, ACME_READ)).await;
    assert_eq!(
        (keys(&page).len(), page["next"].as_str()),
        (0, Some(cursor.as_str()))
    );
    let writer = {
        let hub = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            put_record(&hub, "acme", "c3", Some(json!({"v": 1}))).await;
        })
    };
    let waited = std::time::Instant::now();
    let (_, page) = call(&hub, get(&format!("{link}&wait=20"), ACME_READ)).await;
    writer.await.unwrap();
    assert_eq!(keys(&page), ["c3"], "the long-poll answers with the change");
    assert!(
        waited.elapsed() < Duration::from_secs(15),
        "woken by the commit, not the timeout"
    );

    // Server-Sent Events from a Last-Event-ID: the changes after it, each with its cursor.
    let req = Request::get("/api/v1/tenants/acme/changes")
        .header(header::AUTHORIZATION, format!("Bearer {ACME_READ}"))
        .header(header::ACCEPT, "text/event-stream")
        .header("last-event-id", cursor.as_str())
        .body(Body::empty())
        .unwrap();
    let resp = crate::server::router(hub.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/event-stream",
        "a stream"
    );
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.contains("event: change"), "{text}");
    assert!(text.contains("\"key\":\"c3\""), "{text}");
    assert!(text.contains("id: "), "{text}");

    // Another tenant's cursor is refused; a cursor older than retention kept is 410.
    let (status, _) = call(
        &hub,
        get(
            &format!("/api/v1/tenants/beta/changes?after={cursor}"),
            BETA_READ,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    hub.store.prune_batch(now_ms() + 1_000, 100).await.unwrap();
    let (status, _) = call(&hub, get(&link, ACME_READ)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a cursor after the dropped deletion still follows"
    );
    let (status, body) = call(&hub, get(&before_the_deletion, ACME_READ)).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    let fresh = body["next"].as_str().unwrap();
    let (status, _) = call(
        &hub,
        get(
            &format!("/api/v1/tenants/acme/changes?after={fresh}"),
            ACME_READ,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the cursor 410 gives follows on");
}

#[tokio::test]
async fn a_long_poll_may_wait_past_the_webhooks_request_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let started = std::time::Instant::now();
    let (status, page) = call(&hub, get("/api/v1/tenants/acme/changes?wait=13", ACME_READ)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["changes"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_secs(13),
        "it waited the 13 s asked, past the 12 s limit of webhook requests"
    );
}

#[tokio::test]
async fn analytics_export_as_csv_one_line_per_day_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path()).await;
    let now = now_ms();
    for (key, direction) in [("in-1", "inbound"), ("out-1", "outbound")] {
        let call = json!({"start_timestamp": now, "direction": direction,
            "call_status": "ended", "duration_ms": 30_000});
        put_record(&hub, "acme", key, Some(call)).await;
    }
    put_record(&hub, "beta", "other", Some(json!({"start_timestamp": now}))).await;

    let resp = crate::server::router(hub.clone())
        .oneshot(get(
            "/api/v1/tenants/acme/analytics?days=3&format=csv",
            ACME_READ,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let csv = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("day,calls,inbound,outbound,answered,unanswered,avg_duration_s,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 3, "a header and one line per day: {csv}");
    let today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let line = lines
        .iter()
        .find(|l| l.starts_with(&today))
        .unwrap_or_else(|| panic!("no line for {today}: {csv}"));
    let cells: Vec<&str> = line.split(',').collect();
    assert_eq!(
        &cells[1..7],
        ["2", "1", "1", "2", "0", "30.0"],
        "calls, inbound, outbound, answered, unanswered, average seconds (beta's call not counted): {csv}"
    );
    let quiet: Vec<&&str> = lines[1..]
        .iter()
        .filter(|l| !l.starts_with(&today))
        .collect();
    assert!(
        quiet.iter().all(|l| l.split(',').nth(1) == Some("0")),
        "days without calls are lines of zeros: {csv}"
    );

    let (status, body) = call(
        &hub,
        get("/api/v1/tenants/acme/analytics?format=xml", ACME_READ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "`format`: `xml` is neither json nor csv");
}
