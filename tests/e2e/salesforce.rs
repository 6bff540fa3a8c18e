//! The Salesforce connector through the real binary, against a local Salesforce org
//! ([`crate::salesforce_server`]: requests checked against Salesforce's Postman collections,
//! assertions against `jose`).
//!
//! - Outbound messages (SOAP, unsigned): the path token and the org id are checked before any
//!   connector code runs; the exact Ack goes back only after the message is stored; a resend
//!   after a valid Ack, a notification in two batches and an older state arriving late each
//!   change nothing; a notification without an Id is reported while the others are stored;
//!   malformed XML, an entity bomb, deep nesting and a huge attribute are 400s that store nothing.
//! - `sync`: 10,000 contacts through continuations, none missed or doubled, the session ended
//!   by Salesforce mid-way and minted again once (JWT bearer, verified by `jose`); deletions
//!   from `getDeleted`.
//! - `crm:upsert_contact` by an external id: once per key across a `kill -9` mid-request and a
//!   `REQUEST_LIMIT_EXCEEDED`, the Salesforce Id as output.
//! - The shipped config's abc-healthcare switched from HubSpot to Salesforce (`crm =
//!   "salesforce"`): the same "crm contact" route and `lookup_caller` tool work unchanged.
//! - Client credentials minted at the tenant's own My Domain (`token_url`), the only Salesforce
//!   host the hub may reach there.

use serde_json::{Value, json};

use crate::salesforce_server::{ACK, CONSUMER_SECRET, SalesforceOrg, outbound_message, stamp};
use crate::util::*;

const ORG: &str = "00D000000000001AAA";
const CONSUMER_KEY: &str = "3MVG9hub.consumer.key";
const USERNAME: &str = "integration@acme.example";
const OUTBOUND_TOKEN: &str = "sf-outbound-4f1b9c0d2e3a5b6c7d8e9f00112233";
const MY_DOMAIN: &str = "https://acme.my.salesforce.com";
const LOGIN: &str = "https://login.salesforce.com";

fn private_key() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oauth-keys/private.pem"),
    )
    .unwrap()
}

/// The `hub.toml` lines of a tenant on Salesforce (JWT bearer, outbound messages), with `extra`
/// config entries.
fn tenant_lines(hub: &TestHub, tenant: &str, extra: &str) -> String {
    format!(
        "[tenants.{tenant}.connectors.salesforce]\n\
         config = {{ instance_url = \"{MY_DOMAIN}\", org_id = \"{ORG}\", contact_external_id = \"Hub_Email__c\", lead_external_id = \"Hub_Email__c\"{extra} }}\n\
         [tenants.{tenant}.connectors.salesforce.credentials]\n\
         outbound_token = \"{t}\"\nsalesforce_private_key = \"{k}\"\n\
         [tenants.{tenant}.connectors.salesforce.oauth.salesforce]\n\
         grant = \"jwt_bearer\"\nclient_id = \"{CONSUMER_KEY}\"\nsubject = \"{USERNAME}\"\naudience = \"{LOGIN}\"\n",
        t = hub.seal_tenant(tenant, "salesforce", "outbound_token", OUTBOUND_TOKEN),
        k = hub.seal_tenant(
            tenant,
            "salesforce",
            "salesforce_private_key",
            &private_key()
        ),
    )
}

/// The connector's table: both Salesforce origins mapped to the stand-in, no default schedule
/// (the tests run `sync` themselves).
fn connector_lines(org: &SalesforceOrg) -> String {
    format!(
        "[connectors.salesforce]\nbuiltin = true\ndefault_schedules = false\n\
         allow_hosts = [\"{LOGIN}\", \"{MY_DOMAIN}\"]\n\
         stand_ins = {{ \"{LOGIN}\" = \"{b}\", \"{MY_DOMAIN}\" = \"{b}\" }}\n\n",
        b = org.base
    )
}

/// A hub whose tenant `acme` keeps its CRM in Salesforce, and the org.
async fn started(extra: &str) -> (TestHub, SalesforceOrg) {
    let org = SalesforceOrg::start(CONSUMER_KEY, USERNAME).await;
    let mut hub = TestHub::new();
    // Salesforce posts up to 100 notifications in a message: a 2 MiB body limit, as an
    // operator would set for it.
    hub.write_config(&format!(
        "{server}{connector}[tenants.acme]\ncrm = \"salesforce\"\n{tenant}",
        server = hub
            .server_section()
            .replace("body_limit = 65536", "body_limit = 2097152"),
        connector = connector_lines(&org),
        tenant = tenant_lines(&hub, "acme", extra),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    (hub, org)
}

/// Posts an outbound message to acme's route with `token`; (status, content type, body).
async fn post_message(hub: &TestHub, token: &str, body: &[u8]) -> (u16, String, String) {
    let resp = hub
        .client
        .post(format!(
            "{}/hooks/acme/salesforce/outbound/{token}",
            hub.base()
        ))
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "\"\"")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

/// Every record of a kind, following the pages.
async fn all_records(hub: &TestHub, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/api/v1/tenants/acme/records?kind={kind}&limit=500");
    loop {
        let page: Value = hub
            .client
            .get(format!("{}{path}", hub.base()))
            .bearer_auth(&hub.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["records"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches(&hub.base()).to_string(),
            None => return out,
        }
    }
}

fn live(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["data"]["deleted"] != true)
        .collect()
}

/// The record `kind/id` once `check` holds for it.
async fn record_when(hub: &TestHub, kind: &str, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(30, &format!("{kind}/{id}"), || async {
        hub.records("acme", kind)
            .await
            .into_iter()
            .find(|r| r["key"] == id && check(&r["data"]))
    })
    .await
}

async fn tenant_events(hub: &TestHub, name: &str) -> Vec<Value> {
    hub.api("/tenants/acme/events?limit=1000").await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["name"] == format!("salesforce:{name}") || e["name"] == name)
        .collect()
}

async fn run_sync(hub: &TestHub) {
    let resp = hub
        .client
        .post(format!("{}/api/v1/tenants/acme/sync", hub.base()))
        .bearer_auth(&hub.admin_token)
        .json(&json!({"connector": "salesforce", "job": "sync"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "sync: {}", resp.status());
}

/// Waits until no job of the tenant is queued or running.
async fn settled(hub: &TestHub) {
    wait_for(120, "the jobs to finish", || async {
        let jobs = hub.api("/jobs?tenant=acme&state=queued&limit=10").await;
        let running = hub.api("/jobs?tenant=acme&state=running&limit=10").await;
        (jobs["jobs"].as_array().is_none_or(Vec::is_empty)
            && running["jobs"].as_array().is_none_or(Vec::is_empty))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_messages_are_acked_once_stored_and_the_newest_state_wins() {
    let (hub, org) = started("").await;
    let t0 = now_ms() - 600_000;
    let ada = json!({"Id": "003000000000001AAA", "FirstName": "Ada", "LastName": "Lovelace",
        "Email": "Ada@Example.com", "Phone": "+14155550101", "SystemModstamp": stamp(t0 + 2000)});
    let lead = json!({"Id": "00Q000000000001AAA", "FirstName": "Lin", "LastName": "Wu", "Company": "Wu & Co",
        "Email": "lin@example.com", "SystemModstamp": stamp(t0 + 1000)});
    let first = outbound_message(
        ORG,
        &[
            (Some("04l000000000001AAA"), "Contact", ada.clone()),
            (Some("04l000000000002AAA"), "Lead", lead),
        ],
    );
    let (status, kind, body) = post_message(&hub, OUTBOUND_TOKEN, first.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/xml"), "{kind}");
    assert_eq!(body, ACK, "the exact Ack Salesforce waits for");

    let contact = record_when(&hub, "contact", "003000000000001AAA", |d| {
        d["firstname"] == "Ada"
    })
    .await;
    assert_eq!(contact["data"]["email"], "ada@example.com");
    record_when(&hub, "lead", "00Q000000000001AAA", |d| {
        d["lastname"] == "Wu"
    })
    .await;
    let found = hub
        .api("/tenants/acme/records?kind=contact&lookup=phone:%2B14155550101")
        .await;
    assert_eq!(
        found["records"][0]["key"], "003000000000001AAA",
        "found by phone: {found}"
    );
    wait_for(30, "the changed events", || async {
        (tenant_events(&hub, "salesforce.contact.changed")
            .await
            .len()
            == 1
            && tenant_events(&hub, "salesforce.lead.changed").await.len() == 1)
            .then_some(())
    })
    .await;

    // Salesforce resends after a valid Ack: the same bytes are the same delivery.
    let deliveries = hub.deliveries(Some("acme")).await.len();
    let (status, _, body) = post_message(&hub, OUTBOUND_TOKEN, first.as_bytes()).await;
    assert_eq!((status, body.as_str()), (200, ACK));
    assert_eq!(
        hub.deliveries(Some("acme")).await.len(),
        deliveries,
        "stored once"
    );

    // The same notification in another batch, beside a new one; then an older state of Ada
    // arriving late, and a notification without an Id beside a good one.
    let grace = json!({"Id": "003000000000002AAA", "FirstName": "Grace", "LastName": "Hopper",
        "Email": "grace@example.com", "MobilePhone": "+14155550102", "SystemModstamp": stamp(t0 + 3000)});
    let second = outbound_message(
        ORG,
        &[
            (Some("04l000000000001AAA"), "Contact", ada.clone()),
            (Some("04l000000000003AAA"), "Contact", grace),
        ],
    );
    assert_eq!(
        post_message(&hub, OUTBOUND_TOKEN, second.as_bytes())
            .await
            .0,
        200
    );
    let mut stale = ada.clone();
    stale["FirstName"] = json!("Augusta");
    stale["SystemModstamp"] = json!(stamp(t0));
    let late = outbound_message(ORG, &[(Some("04l000000000004AAA"), "Contact", stale)]);
    assert_eq!(
        post_message(&hub, OUTBOUND_TOKEN, late.as_bytes()).await.0,
        200
    );
    let mixed = outbound_message(
        ORG,
        &[
            (
                None,
                "Contact",
                json!({"Id": "003000000000009AAA", "LastName": "Nobody"}),
            ),
            (
                Some("04l000000000005AAA"),
                "Account",
                json!({"Id": "001000000000001AAA", "Name": "Acme Dental", "SystemModstamp": stamp(t0)}),
            ),
        ],
    );
    assert_eq!(
        post_message(&hub, OUTBOUND_TOKEN, mixed.as_bytes()).await.0,
        200
    );
    record_when(&hub, "contact", "003000000000002AAA", |d| {
        d["firstname"] == "Grace"
    })
    .await;
    record_when(&hub, "account", "001000000000001AAA", |d| {
        d["name"] == "Acme Dental"
    })
    .await;
    settled(&hub).await;
    let contacts = hub.records("acme", "contact").await;
    let ada_now = contacts
        .iter()
        .find(|r| r["key"] == "003000000000001AAA")
        .unwrap();
    assert_eq!(
        ada_now["data"]["firstname"], "Ada",
        "the older state changed nothing: {ada_now}"
    );
    assert!(
        !contacts.iter().any(|r| r["key"] == "003000000000009AAA"),
        "a notification without an Id is not applied"
    );
    assert_eq!(
        tenant_events(&hub, "salesforce.contact.changed")
            .await
            .len(),
        2,
        "Ada once, Grace once: no event for a resend or an older state"
    );
    org.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_hostile_outbound_messages_are_refused_before_the_connector() {
    let (hub, _org) = started("").await;
    let genuine = outbound_message(
        ORG,
        &[(
            Some("04l000000000001AAA"),
            "Contact",
            json!({"Id": "003000000000001AAA", "LastName": "Doe"}),
        )],
    );
    let refused = [
        // Another org's message on acme's URL, and acme's message without the token.
        ("another org", OUTBOUND_TOKEN, outbound_message("00D000000000002AAA", &[(Some("04l9"), "Contact", json!({"Id": "003000000000007AAA"}))]).into_bytes(), 401),
        ("a wrong token", "sf-outbound-guess", genuine.clone().into_bytes(), 401),
        ("malformed XML", OUTBOUND_TOKEN, b"<soapenv:Envelope><notifications>".to_vec(), 400),
        (
            "an entity bomb",
            OUTBOUND_TOKEN,
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol1 \"{}\">]>{}",
                "&lol;".repeat(10),
                genuine.split_once("?>").unwrap().1.replace("Doe", "&lol1;")
            )
            .into_bytes(),
            400,
        ),
        ("an external entity", OUTBOUND_TOKEN, format!("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}", genuine.split_once("?>").unwrap().1).into_bytes(), 400),
        ("deep nesting", OUTBOUND_TOKEN, format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000)).into_bytes(), 400),
        (
            "a 900 KB attribute",
            OUTBOUND_TOKEN,
            genuine.replacen("<OrganizationId>", &format!("<OrganizationId x=\"{}\">", "A".repeat(900_000)), 1).into_bytes(),
            400,
        ),
    ];
    for (what, token, body, expected) in &refused {
        let (status, _, text) = post_message(&hub, token, body).await;
        assert_eq!(status, *expected, "{what}: {text}");
        assert!(
            !text.contains("lol") && !text.contains("passwd"),
            "{what}: {text}"
        );
    }
    assert!(
        hub.deliveries(Some("acme")).await.is_empty(),
        "nothing stored"
    );
    // No token at all: no such URL.
    let (status, ..) = hub
        .post(
            "/hooks/acme/salesforce/outbound",
            &[("content-type", "text/xml".into())],
            genuine.as_bytes(),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, body) = post_message(&hub, OUTBOUND_TOKEN, genuine.as_bytes()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, ACK),
        "the genuine message still goes through"
    );

    // The operator issues a new token (`hub seal --generate`, printed once) and reloads: the
    // endpoint URL with the new token works, the old one is refused.
    let (ok, token, err) = hub.command(
        &[
            "seal",
            "--tenant",
            "acme",
            "--connector",
            "salesforce",
            "--field",
            "outbound_token",
            "--generate",
            "--write",
        ],
        Some(&hub.key_text()),
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    assert!(
        !std::fs::read_to_string(hub.config_path())
            .unwrap()
            .contains(&token),
        "sealed in the file"
    );
    let (ok, out, err) = hub.command(&["reload"], Some(&hub.key_text()));
    assert!(ok, "{out}{err}");
    let next = outbound_message(
        ORG,
        &[(
            Some("04l000000000002AAA"),
            "Contact",
            json!({"Id": "003000000000001AAA", "LastName": "Roe"}),
        )],
    );
    assert_eq!(post_message(&hub, &token, next.as_bytes()).await.0, 200);
    assert_eq!(
        post_message(&hub, OUTBOUND_TOKEN, next.as_bytes()).await.0,
        401
    );
    // Neither token is in the log, the stored deliveries or their URLs.
    let deliveries = serde_json::to_string(&hub.deliveries(Some("acme")).await).unwrap();
    for secret in [OUTBOUND_TOKEN, token.as_str()] {
        assert!(!hub.log().contains(secret), "a path token in the log");
        assert!(
            !deliveries.contains(secret),
            "a path token in a stored delivery"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_of_ten_thousand_contacts_misses_and_doubles_none_across_a_new_session() {
    let (hub, org) = started("").await;
    for i in 0..10_000u32 {
        org.user_writes(
            "Contact",
            None,
            json!({"FirstName": format!("C{i}"), "LastName": "Sync", "Email": format!("c{i}@example.com"), "Phone": format!("+1415555{i:04}")}),
        );
    }
    run_sync(&hub).await;
    let records = wait_for(300, "10,000 contacts", || async {
        let all = all_records(&hub, "contact").await;
        (all.len() >= 10_000).then_some(all)
    })
    .await;
    let keys: std::collections::HashSet<&str> =
        records.iter().filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(
        (records.len(), keys.len()),
        (10_000, 10_000),
        "none doubled"
    );
    let queries = org
        .state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(_, p, _)| p.contains("/query"))
        .count();
    assert!(
        queries >= 20,
        "500 a page, as the connector asks: {queries} pages"
    );

    // Salesforce ends the session; users change two contacts and delete three. The next sync
    // mints a new token once (a JWT `jose` verifies) and applies exactly that.
    org.expire_sessions();
    let grants_before = org.state.lock().unwrap().token_grants.len();
    let victims: Vec<String> = records
        .iter()
        .take(5)
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    org.user_writes(
        "Contact",
        Some(&victims[0]),
        json!({"FirstName": "Renamed"}),
    );
    org.user_writes(
        "Contact",
        Some(&victims[1]),
        json!({"Email": "moved@example.com"}),
    );
    for id in &victims[2..5] {
        org.user_deletes("Contact", id);
    }
    settled(&hub).await;
    run_sync(&hub).await;
    record_when(&hub, "contact", &victims[0], |d| {
        d["firstname"] == "Renamed"
    })
    .await;
    wait_for(60, "the deletions", || async {
        let all = all_records(&hub, "contact").await;
        (live(&all).len() == 9_997).then_some(())
    })
    .await;
    let found = hub
        .api("/tenants/acme/records?kind=contact&lookup=email:moved@example.com")
        .await;
    assert_eq!(found["records"][0]["key"], victims[1].as_str(), "{found}");
    let st = org.state.lock().unwrap();
    assert_eq!(
        st.token_grants.len(),
        grants_before + 1,
        "one new session: {:?}",
        st.token_grants
    );
    assert!(
        st.token_grants
            .iter()
            .all(|g| g == "urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert!(
        st.seen
            .iter()
            .any(|(_, p, _)| p.contains("/sobjects/Contact/deleted")),
        "getDeleted used"
    );
    drop(st);
    // The access tokens Salesforce issued ("00D...!AQ...") and the private key stay in the host.
    let log = hub.log();
    assert!(
        !log.contains("!AQ") && !log.contains("PRIVATE KEY"),
        "a token or the key in the log"
    );
    let sample = serde_json::to_string(&hub.records("acme", "contact").await).unwrap();
    assert!(!sample.contains("!AQ"), "a token in a record");
    org.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upsert_acts_once_per_key_across_a_kill_and_a_request_limit() {
    let (mut hub, org) = started(", limit_wait_secs = 1").await;
    // The org is over its allowance for the first call.
    org.state.lock().unwrap().limit_exceeded = 1;
    let act = |hub: &TestHub, key: &str| {
        let request = hub
            .client
            .post(format!("{}/api/v1/tenants/acme/actions?wait=30", hub.base()))
            .bearer_auth(&hub.admin_token)
            .header("idempotency-key", key.to_string())
            .json(&json!({"action": "crm:upsert_contact", "input": {"email": "rosa@example.com", "phone": "+14155550142", "firstname": "Rosa", "properties": {"message": "Prefers mornings."}}}));
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, done) = act(&hub, "rosa-1").await;
    assert_eq!(status, 200, "{done}");
    let id = done["output"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("003"), "the Salesforce Id: {done}");
    let rows = org.rows_where("Contact", "Hub_Email__c", "rosa@example.com");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].fields["Description"], "Prefers mornings.",
        "property_map's default"
    );
    assert_eq!(rows[0].fields["FirstName"], "Rosa");
    // The limited call reached no upsert. A new contact without a last name is refused
    // (`REQUIRED_FIELD_MISSING`) and sent once more with Salesforce's own "[not provided]".
    let statuses = |org: &SalesforceOrg| -> Vec<u16> {
        org.state
            .lock()
            .unwrap()
            .upserts
            .iter()
            .map(|u| u.3)
            .collect()
    };
    assert_eq!(statuses(&org), [400, 201]);
    assert_eq!(rows[0].fields["LastName"], "[not provided]");

    // The app retries the same key: the same answer, nothing sent.
    let (status, again) = act(&hub, "rosa-1").await;
    assert_eq!((status, &again["output"]["id"]), (200, &json!(id)));
    assert_eq!(statuses(&org), [400, 201]);

    // A new key, the hub killed (-9) while Salesforce holds its PATCH: on restart the job runs
    // again, and the upsert by external id leaves one Rosa, updated.
    org.state.lock().unwrap().patch_delay_ms = 3_000;
    let patches = |org: &SalesforceOrg| {
        org.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(m, ..)| m == "PATCH")
            .count()
    };
    let before = patches(&org);
    let pending = tokio::spawn(act(&hub, "rosa-2"));
    wait_for(20, "the second upsert in flight", || async {
        (patches(&org) > before).then_some(())
    })
    .await;
    hub.kill();
    let _ = pending.await;
    org.state.lock().unwrap().patch_delay_ms = 0;
    hub.start().await;
    wait_for(60, "the upsert run again after the restart", || async {
        (statuses(&org).last() == Some(&200)).then_some(())
    })
    .await;
    settled(&hub).await;
    assert_eq!(
        org.rows_where("Contact", "Hub_Email__c", "rosa@example.com")
            .len(),
        1,
        "one Rosa"
    );
    assert_eq!(
        statuses(&org),
        [400, 201, 200],
        "the killed request never reached the org"
    );
    // Found by the caller's number right after (the upsert's record and lookups).
    let found = hub
        .api("/tenants/acme/records?kind=contact&lookup=phone:%2B14155550142")
        .await;
    assert_eq!(found["records"][0]["key"], id.as_str(), "{found}");
    org.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_tenant_switched_to_salesforce_keeps_its_route_and_tool_lines() {
    use crate::chain::{DEMO_KEY, RETELL_KEY, shipped_config};
    let org = SalesforceOrg::start(CONSUMER_KEY, USERNAME).await;
    let (port, _log) = crate::chain::stand_in().await;
    let mut hub = TestHub::new();
    hub.key = hub::secrets::MasterKey::parse(DEMO_KEY).unwrap();
    hub.admin_token = "demo-admin-token".into();
    let mut text = shipped_config(&hub, port);
    // The only change: abc-healthcare's CRM is Salesforce.
    text = text.replacen("crm = \"hubspot\"", "crm = \"salesforce\"", 1);
    text.push_str(&format!(
        "\n{}{}",
        connector_lines(&org),
        tenant_lines(&hub, "abc-healthcare", "")
    ));
    hub.write_config(&text);
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;

    let body = json!({
        "event": "call_analyzed",
        "call": {
            "call_id": "call_sf_0001", "call_type": "phone_call", "agent_id": "agent_abc_front_desk",
            "call_status": "ended", "direction": "inbound", "from_number": "+15551234567", "to_number": "+15005550006",
            "start_timestamp": 1764064800000i64, "end_timestamp": 1764064980000i64, "duration_ms": 180000,
            "transcript": "Agent: ABC Healthcare, how can I help?\nUser: I'd like to book a check-up.",
            "disconnection_reason": "user_hangup",
            "call_analysis": { "call_summary": "Booked a check-up for Monday 10am.", "user_sentiment": "Positive",
                "call_successful": true, "in_voicemail": false,
                "custom_analysis_data": { "email": "jane@example.com", "first_name": "Jane" } }
        }
    })
    .to_string();
    let headers = official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": body }));
    let (status, text) = hub
        .post("/hooks/abc-healthcare/retell", &headers, body.as_bytes())
        .await;
    assert_eq!(status, 200, "{text}");
    let row = wait_for(30, "the contact upserted in Salesforce", || async {
        org.rows_where("Contact", "Hub_Email__c", "jane@example.com")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(row.fields["Phone"], "+15551234567");
    assert_eq!(row.fields["FirstName"], "Jane");
    assert_eq!(
        row.fields["Description"],
        "Last call: Booked a check-up for Monday 10am."
    );

    // Mid-call, the agent's lookup_caller finds the Salesforce contact by the caller's number.
    let call = json!({
        "name": "lookup_caller", "args": {},
        "call": { "call_id": "call_sf_0002", "call_type": "phone_call", "agent_id": "agent_abc_front_desk",
                  "call_status": "ongoing", "direction": "inbound", "from_number": "+15551234567", "to_number": "+15005550006" }
    })
    .to_string();
    let headers = official_sign(&json!({ "scheme": "retell", "secret": RETELL_KEY, "body": call }));
    let answer = wait_for(30, "the caller found", || async {
        let (status, answer) = hub
            .post(
                "/hooks/abc-healthcare/retell/tools",
                &headers,
                call.as_bytes(),
            )
            .await;
        (status == 200 && answer.contains("\"found\":true")).then_some(answer)
    })
    .await;
    assert!(
        answer.contains("Jane") && answer.contains("salesforce"),
        "{answer}"
    );
    org.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_mint_at_the_tenants_own_my_domain() {
    // Only the org's My Domain is reachable: a token asked of login.salesforce.com would be
    // refused by the hub's outbound policy.
    let org = SalesforceOrg::start(CONSUMER_KEY, USERNAME).await;
    org.user_writes(
        "Contact",
        None,
        json!({"LastName": "Ng", "Email": "ng@example.com"}),
    );
    let mut hub = TestHub::new();
    hub.write_config(&format!(
        "{server}[connectors.salesforce]\nbuiltin = true\ndefault_schedules = false\n\
         allow_hosts = [\"https://*.my.salesforce.com\"]\n\
         stand_ins = {{ \"{MY_DOMAIN}\" = \"{b}\" }}\n\n\
         [tenants.acme]\ncrm = \"salesforce\"\n\
         [tenants.acme.connectors.salesforce]\nconfig = {{ instance_url = \"{MY_DOMAIN}\", org_id = \"{ORG}\" }}\n\
         [tenants.acme.connectors.salesforce.credentials]\noutbound_token = \"{t}\"\nsalesforce_client_secret = \"{s}\"\n\
         [tenants.acme.connectors.salesforce.oauth.salesforce]\ngrant = \"client_credentials\"\nclient_id = \"{CONSUMER_KEY}\"\n\
         token_url = \"{MY_DOMAIN}/services/oauth2/token\"\n",
        server = hub.server_section(),
        b = org.base,
        t = hub.seal_tenant("acme", "salesforce", "outbound_token", OUTBOUND_TOKEN),
        s = hub.seal_tenant("acme", "salesforce", "salesforce_client_secret", CONSUMER_SECRET),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    run_sync(&hub).await;
    let ng = wait_for(60, "the contact synced", || async {
        hub.records("acme", "contact")
            .await
            .into_iter()
            .find(|r| r["data"]["lastname"] == "Ng")
    })
    .await;
    assert_eq!(ng["data"]["email"], "ng@example.com");
    let st = org.state.lock().unwrap();
    assert_eq!(
        st.token_grants,
        ["client_credentials"],
        "one token, by client credentials"
    );
    drop(st);
    org.assert_clean();
}
