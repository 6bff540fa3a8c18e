//! The HubSpot connector through the real binary: app webhooks signed with HubSpot's official
//! SDK (v3, and the v1/v2 fallbacks) for several portals on one URL, out-of-order property
//! changes, and the API calls (contact fetch, `sync_contacts` paging with a 429, idempotent
//! `upsert_contact`) against a local stand-in for `https://api.hubapi.com`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hub::secrets::{Place, seal};
use serde_json::{Value, json};

use crate::util::*;

const APP_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const GAMMA_SECRET: &str = "gamma-private-app-secret-7d2e";
const ALPHA_TOKEN: &str = "pat-na1-alpha-0c9f";
const BETA_TOKEN: &str = "pat-na1-beta-77ab";
const GAMMA_TOKEN: &str = "pat-na1-gamma-31c4";
const WEBHOOK: &str = "/hooks/_/hubspot/webhook";

/// One request the stand-in API saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    auth: String,
    body: Value,
}

/// Extra headers of a canned answer, e.g. `Retry-After`.
type Headers = Vec<(&'static str, &'static str)>;

/// The stand-in API: what it saw, and what it answers.
#[derive(Default)]
struct Api {
    seen: Vec<Seen>,
    /// `GET /crm/v3/objects/contacts/{id}` answers, by id (404 otherwise).
    contacts: HashMap<String, Value>,
    /// Search answers in order; an empty last page once they run out.
    searches: VecDeque<(u16, Headers, Value)>,
    /// Upsert failures to answer first, in order.
    upsert_failures: VecDeque<(u16, Headers)>,
    /// Contact ids handed out by email.
    ids: HashMap<String, String>,
}

type Shared = Arc<Mutex<Api>>;

fn answer(status: u16, headers: &[(&'static str, &'static str)], body: Value) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(*k, v.parse().unwrap());
    }
    resp
}

async fn api(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        auth,
        body: body.clone(),
    });
    let path = uri.path();
    if method == Method::GET
        && let Some(id) = path.strip_prefix("/crm/v3/objects/contacts/")
    {
        return match s.contacts.get(id) {
            Some(c) => answer(200, &[], c.clone()),
            None => answer(
                404,
                &[],
                json!({"status": "error", "message": "resource not found"}),
            ),
        };
    }
    if method == Method::POST && path == "/crm/v3/objects/contacts/search" {
        let (status, headers, body) =
            s.searches
                .pop_front()
                .unwrap_or((200, vec![], json!({"total": 0, "results": []})));
        return answer(status, &headers, body);
    }
    if method == Method::POST && path == "/crm/v3/objects/contacts/batch/upsert" {
        if let Some((status, headers)) = s.upsert_failures.pop_front() {
            return answer(
                status,
                &headers,
                json!({"status": "error", "message": "slow down"}),
            );
        }
        let input = &body["inputs"][0];
        let email = input["id"].as_str().unwrap_or_default().to_string();
        let next = format!("{}", 501 + s.ids.len());
        let new = !s.ids.contains_key(&email);
        let id = s.ids.entry(email).or_insert(next).clone();
        let n = s.seen.len();
        let mut props = input["properties"].clone();
        props["hs_object_id"] = json!(id);
        let result = json!({"id": id, "properties": props, "new": new, "archived": false,
            "createdAt": "2026-04-01T12:00:00.000Z", "updatedAt": format!("2026-04-01T12:00:{:02}.000Z", n % 60)});
        return answer(200, &[], json!({"status": "COMPLETE", "results": [result]}));
    }
    answer(
        404,
        &[],
        json!({"status": "error", "message": "no such endpoint"}),
    )
}

async fn mock_api() -> (u16, Shared) {
    let state: Shared = Arc::default();
    let app = axum::Router::new().fallback(api).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, state)
}

fn api_contact(id: &str, email: &str, first: &str, updated: &str) -> Value {
    json!({"id": id, "archived": false, "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": updated,
        "properties": {"email": email, "firstname": first, "lastname": "Lee", "phone": null,
            "hs_object_id": id, "lastmodifieddate": updated}})
}

async fn started() -> (TestHub, Shared) {
    started_with(|_| String::new()).await
}

/// A hub with the HubSpot connector (and whatever `extra` appends to its config).
async fn started_with(extra: impl FnOnce(&TestHub) -> String) -> (TestHub, Shared) {
    let (port, api) = mock_api().await;
    {
        let mut a = api.lock().unwrap();
        a.contacts.insert(
            "101".into(),
            api_contact("101", "ann@alpha.io", "Ann", "2026-01-02T00:00:00Z"),
        );
        a.contacts.insert(
            "201".into(),
            api_contact("201", "bob@beta.io", "Bob", "2026-01-02T00:00:00Z"),
        );
    }
    let mut hub = TestHub::new();
    let global = |field: &str, value: &str| {
        let place = Place::Global {
            connector: "hubspot".into(),
            field: field.into(),
        };
        seal(&hub.key, &place, value.as_bytes())
    };
    let config = format!(
        r#"{server}
[connectors.hubspot]
builtin = true
allow_hosts = ["https://api.hubapi.com"]
stand_ins = {{ "https://api.hubapi.com" = "http://127.0.0.1:{port}" }}
[connectors.hubspot.credentials]
client_secret = "{secret}"

[tenants.alpha]
name = "Alpha"
[tenants.alpha.connectors.hubspot]
config = {{ portal_id = 1001 }}
credentials = {{ access_token = "{at}" }}

[tenants.beta]
name = "Beta"
[tenants.beta.connectors.hubspot]
config = {{ portal_id = ["2002"] }}
credentials = {{ access_token = "{bt}" }}

[tenants.gamma]
name = "Gamma"
[tenants.gamma.connectors.hubspot]
config = {{}}
credentials = {{ access_token = "{gt}", client_secret = "{gs}" }}
"#,
        server = hub.server_section(),
        secret = global("client_secret", APP_SECRET),
        at = hub.seal_tenant("alpha", "hubspot", "access_token", ALPHA_TOKEN),
        bt = hub.seal_tenant("beta", "hubspot", "access_token", BETA_TOKEN),
        gt = hub.seal_tenant("gamma", "hubspot", "access_token", GAMMA_TOKEN),
        gs = hub.seal_tenant("gamma", "hubspot", "client_secret", GAMMA_SECRET),
    );
    let config = config + &extra(&hub);
    hub.write_config(&config);
    hub.start().await;
    (hub, api)
}

/// Headers HubSpot's official SDK computes for `body` POSTed to `path` on this hub.
fn signed(
    hub: &TestHub,
    scheme: &str,
    secret: &str,
    path: &str,
    body: &str,
    ts: Option<u64>,
) -> Vec<(&'static str, String)> {
    let mut spec = json!({"scheme": scheme, "secret": secret, "body": body,
        "url": format!("{}{path}", hub.base()), "method": "POST"});
    if let Some(ts) = ts {
        spec["ts"] = json!(ts);
    }
    let mut headers = official_sign(&spec);
    headers.push(("content-type", "application/json".into()));
    headers
}

async fn send(hub: &TestHub, events: &Value) -> (u16, Value) {
    let body = events.to_string();
    let headers = signed(hub, "hubspot-v3", APP_SECRET, WEBHOOK, &body, None);
    let (status, text) = hub.post(WEBHOOK, &headers, body.as_bytes()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn event(id: u64, portal: u64, kind: &str, object: u64, at: u64) -> Value {
    json!({"eventId": id, "subscriptionId": 12345, "portalId": portal, "appId": 54321, "occurredAt": at,
        "subscriptionType": kind, "attemptNumber": 0, "objectId": object, "changeSource": "CRM"})
}

fn change(id: u64, object: u64, name: &str, value: &str, at: u64) -> Value {
    let mut e = event(id, 1001, "contact.propertyChange", object, at);
    e["propertyName"] = json!(name);
    e["propertyValue"] = json!(value);
    e
}

async fn record(hub: &TestHub, tenant: &str, kind: &str, key: &str) -> Option<Value> {
    hub.records(tenant, kind)
        .await
        .into_iter()
        .find(|r| r["key"] == key)
        .map(|r| r["data"].clone())
}

/// The keys of the tenant's contacts found by `lookup` (the records API's `lookup` filter).
async fn found(hub: &TestHub, tenant: &str, lookup: &str) -> Vec<String> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("kind", "contact")
        .append_pair("lookup", lookup)
        .finish();
    let records = hub.api(&format!("/tenants/{tenant}/records?{query}")).await["records"].clone();
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

async fn settled(hub: &TestHub, tenant: &str, identity_prefix: &str) -> Value {
    wait_for(
        20,
        &format!("delivery {identity_prefix} to settle"),
        || async {
            hub.deliveries(Some(tenant)).await.into_iter().find(|d| {
                d["identity"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(identity_prefix))
                    && (d["state"] == "done" || d["state"] == "ignored")
            })
        },
    )
    .await
}

fn seen(api: &Shared, method: &str, path_start: &str) -> Vec<Seen> {
    let a = api.lock().unwrap();
    a.seen
        .iter()
        .filter(|s| s.method == method && s.uri.starts_with(path_start))
        .cloned()
        .collect()
}

fn run(hub: &TestHub, args: &[&str]) -> String {
    let (ok, out, err) = hub.command(args, Some(&hub.key_text()));
    assert!(ok, "{args:?} failed: {out}{err}");
    out
}

#[tokio::test]
async fn one_post_for_three_portals_lands_with_each_tenant_and_retries_are_stored_once() {
    let (hub, api) = started().await;
    let now = now_ms();
    let mut events = json!([
        event(1, 1001, "contact.creation", 101, now),
        event(2, 2002, "contact.creation", 201, now),
        event(3, 3003, "contact.creation", 301, now),
        event(4, 1001, "company.creation", 9, now),
    ]);
    let (status, body) = send(&hub, &events).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"stored": 3, "duplicates": 0, "unrouted": 1}));
    // HubSpot's retry of the same events (attemptNumber goes up): stored once.
    for e in events.as_array_mut().unwrap() {
        e["attemptNumber"] = json!(1);
    }
    let (status, body) = send(&hub, &events).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"stored": 0, "duplicates": 3, "unrouted": 1}));

    let ann = wait_for(20, "alpha's contact", || {
        record(&hub, "alpha", "contact", "101")
    })
    .await;
    assert_eq!(ann["email"], "ann@alpha.io");
    assert_eq!(ann["portal_id"], "1001");
    assert_eq!(ann["source"], "hubspot");
    let bob = wait_for(20, "beta's contact", || {
        record(&hub, "beta", "contact", "201")
    })
    .await;
    assert_eq!(bob["firstname"], "Bob");
    assert_eq!(found(&hub, "alpha", "email:ann@alpha.io").await, ["101"]);
    assert!(found(&hub, "beta", "email:ann@alpha.io").await.is_empty());
    let listed = hub.api("/tenants/alpha/records?kind=contact").await["records"].clone();
    let ann_listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "101")
        .unwrap();
    assert_eq!(
        ann_listed["lookups"],
        json!(["email:ann@alpha.io"]),
        "{ann_listed}"
    );
    let no_kind = hub
        .client
        .get(format!(
            "{}/api/v1/tenants/alpha/records?lookup=email:ann@alpha.io",
            hub.base()
        ))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_kind.status(), 400, "a lookup is within one kind");
    assert!(record(&hub, "alpha", "contact", "201").await.is_none());
    assert!(record(&hub, "beta", "contact", "101").await.is_none());
    assert_eq!(hub.deliveries(Some("alpha")).await.len(), 2);
    assert_eq!(hub.deliveries(Some("beta")).await.len(), 1);
    let company = settled(&hub, "alpha", "webhook:4:").await;
    assert_eq!(company["state"], "ignored");
    assert_eq!(company["event"], "company.creation");

    // Each fetch used the tenant's own token and asked for the documented properties.
    let gets = seen(&api, "GET", "/crm/v3/objects/contacts/");
    let by_uri = |uri: &str| gets.iter().find(|s| s.uri == uri).map(|s| s.auth.clone());
    let q = "?properties=email,firstname,lastname,phone";
    assert_eq!(
        by_uri(&format!("/crm/v3/objects/contacts/101{q}")),
        Some(format!("Bearer {ALPHA_TOKEN}"))
    );
    assert_eq!(
        by_uri(&format!("/crm/v3/objects/contacts/201{q}")),
        Some(format!("Bearer {BETA_TOKEN}"))
    );
    assert_eq!(
        gets.len(),
        2,
        "nothing fetched for the unknown portal or the company: {gets:?}"
    );
    let events = hub.api("/tenants/alpha/events").await;
    assert_eq!(events["events"][0]["name"], "hubspot.contact.created");
    assert_eq!(events["events"][0]["payload"]["email"], "ann@alpha.io");
}

#[tokio::test]
async fn forged_and_stale_signatures_are_refused_and_legacy_versions_accepted() {
    let (hub, _) = started().await;
    let now = now_ms();
    let body = json!([event(10, 1001, "contact.creation", 101, now)]).to_string();
    let refused = [
        signed(&hub, "hubspot-v3", "not-the-secret", WEBHOOK, &body, None),
        signed(
            &hub,
            "hubspot-v3",
            APP_SECRET,
            WEBHOOK,
            &body,
            Some(now - 600_000),
        ),
        signed(
            &hub,
            "hubspot-v3",
            APP_SECRET,
            "/hooks/_/hubspot/other",
            &body,
            None,
        ),
        signed(&hub, "hubspot-v1", "not-the-secret", WEBHOOK, &body, None),
        vec![("content-type", "application/json".to_string())],
    ];
    for headers in &refused {
        assert_eq!(
            hub.post(WEBHOOK, headers, body.as_bytes()).await.0,
            401,
            "{headers:?}"
        );
    }
    let tampered = body.replace("101", "102");
    let headers = signed(&hub, "hubspot-v3", APP_SECRET, WEBHOOK, &body, None);
    assert_eq!(
        hub.post(WEBHOOK, &headers, tampered.as_bytes()).await.0,
        401
    );
    assert!(
        hub.deliveries(None).await.is_empty(),
        "nothing refused was stored"
    );

    let v1 = signed(&hub, "hubspot-v1", APP_SECRET, WEBHOOK, &body, None);
    let (status, text) = hub.post(WEBHOOK, &v1, body.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let body2 = json!([event(11, 1001, "contact.creation", 101, now)]).to_string();
    let v2 = signed(&hub, "hubspot-v2", APP_SECRET, WEBHOOK, &body2, None);
    assert_eq!(hub.post(WEBHOOK, &v2, body2.as_bytes()).await.0, 200);

    // A portal's own private app posts to its tenant's URL, verified with its own secret.
    let private = "/hooks/gamma/hubspot/private";
    let body3 = json!([event(12, 3003, "contact.deletion", 301, now)]).to_string();
    let app_signed = signed(&hub, "hubspot-v3", APP_SECRET, private, &body3, None);
    assert_eq!(
        hub.post(private, &app_signed, body3.as_bytes()).await.0,
        401
    );
    let own = signed(&hub, "hubspot-v3", GAMMA_SECRET, private, &body3, None);
    assert_eq!(hub.post(private, &own, body3.as_bytes()).await.0, 200);
    let gone = wait_for(20, "gamma's tombstone", || {
        record(&hub, "gamma", "contact", "301")
    })
    .await;
    assert_eq!(gone["deleted"], true);
    assert_eq!(hub.deliveries(Some("alpha")).await.len(), 2);
}

#[tokio::test]
async fn an_older_property_change_never_overwrites_a_newer_one() {
    let (hub, _) = started().await;
    let t = now_ms();
    assert_eq!(
        send(
            &hub,
            &json!([change(20, 111, "firstname", "Newer", t + 2_000)])
        )
        .await
        .0,
        200
    );
    settled(&hub, "alpha", "webhook:20:").await;
    assert_eq!(
        send(
            &hub,
            &json!([change(21, 111, "firstname", "Older", t + 1_000)])
        )
        .await
        .0,
        200
    );
    let late = settled(&hub, "alpha", "webhook:21:").await;
    assert_eq!(late["state"], "ignored", "{late}");
    assert!(
        late["ignored_reason"]
            .as_str()
            .unwrap()
            .contains("out of order")
    );
    let kim = record(&hub, "alpha", "contact", "111").await.unwrap();
    assert_eq!(kim["firstname"], "Newer");

    // The email lookup follows the email, and a deletion takes it away.
    send(
        &hub,
        &json!([change(22, 111, "email", "Kim@Alpha.io", t + 3_000)]),
    )
    .await;
    settled(&hub, "alpha", "webhook:22:").await;
    assert_eq!(found(&hub, "alpha", "email:kim@alpha.io").await, ["111"]);
    send(
        &hub,
        &json!([change(23, 111, "email", "kim2@alpha.io", t + 4_000)]),
    )
    .await;
    settled(&hub, "alpha", "webhook:23:").await;
    assert!(found(&hub, "alpha", "email:kim@alpha.io").await.is_empty());
    assert_eq!(found(&hub, "alpha", "email:kim2@alpha.io").await, ["111"]);
    // So does the phone lookup, whichever way the number is written.
    send(
        &hub,
        &json!([change(25, 111, "phone", "+1 (415) 555-0111", t + 4_500)]),
    )
    .await;
    settled(&hub, "alpha", "webhook:25:").await;
    assert_eq!(found(&hub, "alpha", "phone:+14155550111").await, ["111"]);
    // Typed into a URL as it is, the `+` decoded to a space: still found.
    let typed = hub
        .api("/tenants/alpha/records?kind=contact&lookup=phone:+1%20(415)%20555-0111")
        .await;
    assert_eq!(typed["records"][0]["key"], "111", "{typed}");
    send(
        &hub,
        &json!([event(24, 1001, "contact.deletion", 111, t + 5_000)]),
    )
    .await;
    settled(&hub, "alpha", "webhook:24:").await;
    let kim = record(&hub, "alpha", "contact", "111").await.unwrap();
    assert_eq!(kim["deleted"], true);
    assert!(found(&hub, "alpha", "email:kim2@alpha.io").await.is_empty());
    assert!(found(&hub, "alpha", "phone:+14155550111").await.is_empty());
    let names: Vec<String> = hub.api("/tenants/alpha/events").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "hubspot.contact.updated")
            .count(),
        4,
        "firstname, two emails, phone: {names:?}"
    );
    assert_eq!(names[0], "hubspot.contact.deleted");
}

#[tokio::test]
async fn sync_contacts_pages_through_search_and_waits_out_a_429() {
    let (hub, api) = started().await;
    {
        let mut a = api.lock().unwrap();
        let limited = json!({"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"});
        a.searches
            .push_back((429, vec![("retry-after", "1")], limited));
        let page1 = json!({"total": 3, "results": [
            api_contact("701", "c1@alpha.io", "Cy", "2026-03-01T10:00:00.000Z"),
            api_contact("702", "c2@alpha.io", "Di", "2026-03-01T11:00:00.000Z")],
            "paging": {"next": {"after": "2", "link": "https://api.hubapi.com/x?after=2"}}});
        let page2 = json!({"total": 3, "results": [api_contact("703", "c3@alpha.io", "Ed", "2026-03-02T09:30:00.500Z")]});
        a.searches.push_back((200, vec![], page1));
        a.searches.push_back((200, vec![], page2));
    }
    run(
        &hub,
        &[
            "run-job",
            "--tenant",
            "alpha",
            "--connector",
            "hubspot",
            "sync_contacts",
        ],
    );
    let contacts = wait_for(20, "three synced contacts", || async {
        let r = hub.records("alpha", "contact").await;
        (r.len() == 3).then_some(r)
    })
    .await;
    assert!(contacts.iter().any(|c| c["data"]["email"] == "c3@alpha.io"));
    assert_eq!(found(&hub, "alpha", "email:c1@alpha.io").await.len(), 1);
    let searches = seen(&api, "POST", "/crm/v3/objects/contacts/search");
    assert_eq!(searches.len(), 3, "{searches:?}");
    let first = json!({
        "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "firstname", "lastname", "phone"],
        "limit": 100
    });
    assert_eq!(searches[0].body, first, "the rate-limited request");
    assert_eq!(
        searches[1].body, first,
        "the same request again after the wait"
    );
    let mut second = first.clone();
    second["after"] = json!("2");
    assert_eq!(searches[2].body, second);
    assert!(
        searches
            .iter()
            .all(|s| s.auth == format!("Bearer {ALPHA_TOKEN}"))
    );

    // The next run starts from the newest change seen, less five minutes.
    run(
        &hub,
        &[
            "run-job",
            "--tenant",
            "alpha",
            "--connector",
            "hubspot",
            "sync_contacts",
        ],
    );
    let next = wait_for(20, "the second run's search", || async {
        seen(&api, "POST", "/crm/v3/objects/contacts/search")
            .get(3)
            .cloned()
    })
    .await;
    let from = 1_772_443_800_500i64 - 300_000; // 2026-03-02T09:30:00.500Z - 5 min
    assert_eq!(
        next.body["filterGroups"][0]["filters"][0]["value"],
        json!(from.to_string())
    );
}

#[tokio::test]
async fn upsert_contact_by_email_is_idempotent_and_rides_out_rate_limits() {
    let (hub, api) = started().await;
    let input = json!({"email": "Jane@Example.com", "firstname": "Jane", "properties": {"company": "Acme"}}).to_string();
    let upsert = |key: &'static str, input: String| {
        let hub = &hub;
        async move {
            run(
                hub,
                &[
                    "run-action",
                    "--tenant",
                    "alpha",
                    "--connector",
                    "hubspot",
                    "upsert_contact",
                    "--input",
                    &input,
                    "--key",
                    key,
                ],
            )
        }
    };
    upsert("u1", input.clone()).await;
    let jane = wait_for(20, "jane's record", || {
        record(&hub, "alpha", "contact", "501")
    })
    .await;
    assert_eq!(jane["email"], "jane@example.com");
    assert_eq!(jane["properties"]["company"], "Acme");
    let calls = seen(&api, "POST", "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].auth, format!("Bearer {ALPHA_TOKEN}"));
    assert_eq!(
        calls[0].body,
        json!({"inputs": [{"id": "jane@example.com", "idProperty": "email",
        "properties": {"firstname": "Jane", "company": "Acme", "email": "jane@example.com"}}]})
    );
    assert!(upsert("u1", input.clone()).await.contains("already queued"));

    // 429 with the rate-limit headers and no Retry-After: retried after the interval.
    api.lock().unwrap().upsert_failures.push_back((
        429,
        vec![
            ("x-hubspot-ratelimit-remaining", "0"),
            ("x-hubspot-ratelimit-interval-milliseconds", "1000"),
            ("x-hubspot-ratelimit-max", "100"),
        ],
    ));
    upsert("u2", json!({"email": "flaky@example.com"}).to_string()).await;
    wait_for(20, "flaky's record", || async {
        let keys = found(&hub, "alpha", "email:flaky@example.com").await;
        (!keys.is_empty()).then_some(keys)
    })
    .await;
    assert_eq!(
        seen(&api, "POST", "/crm/v3/objects/contacts/batch/upsert").len(),
        3
    );

    // Another key for the same email: HubSpot answers the same contact; still one record.
    upsert("u3", input).await;
    wait_for(20, "the second upsert of jane", || async {
        let events = hub.api("/tenants/alpha/events").await;
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["name"] == "hubspot.contact.upserted"
                    && e["payload"]["id"] == "501"
                    && e["payload"]["new"] == false
            })
            .cloned()
    })
    .await;
    let janes = hub
        .records("alpha", "contact")
        .await
        .into_iter()
        .filter(|r| r["data"]["email"] == "jane@example.com")
        .count();
    assert_eq!(janes, 1);
    assert_eq!(
        seen(&api, "POST", "/crm/v3/objects/contacts/batch/upsert").len(),
        4
    );
}

/// A stand-in for `https://hooks.zapier.com`: the JSON bodies POSTed to it.
async fn zap_target() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, got)
}

#[tokio::test]
async fn a_new_hubspot_contact_reaches_a_zap_through_a_route() {
    let (zap_port, zapped) = zap_target().await;
    let (hub, _) = started_with(|hub| {
        format!(
            r#"
[connectors.zapier]
builtin = true
allow_hosts = ["https://hooks.zapier.com"]
stand_ins = {{ "https://hooks.zapier.com" = "http://127.0.0.1:{zap_port}" }}

[tenants.alpha.connectors.zapier.credentials]
token = "{token}"

[[tenants.alpha.routes]]
name = "new contacts to zapier"
on = "hubspot:hubspot.contact.created"
action = "zapier:notify"
input = {{ event = "contact.created", payload = {{ id = "{{{{ event.id }}}}", email = "{{{{ event.email }}}}", name = "{{{{ event.firstname }}}} {{{{ event.lastname }}}}" }} }}
"#,
            token = hub.seal_tenant("alpha", "zapier", "token", "zap-route-token"),
        )
    })
    .await;
    let sub = json!({"target_url": "https://hooks.zapier.com/hooks/standard/5/new/", "event": "contact.created"});
    let (status, text) = hub
        .post(
            "/hooks/alpha/zapier/subscribe",
            &[("x-hub-token", "zap-route-token".to_string())],
            sub.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let (status, _) = send(
        &hub,
        &json!([event(30, 1001, "contact.creation", 101, now_ms())]),
    )
    .await;
    assert_eq!(status, 200);
    let got = wait_for(20, "the Zap to hear of the contact", || async {
        zapped.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(
        got,
        json!({"id": "101", "email": "ann@alpha.io", "name": "Ann Lee"})
    );
}
