//! Outbound messages: the Ack, each notification applied once, out of order, lookups.

use plugin_sdk::harness::{Answer, Harness};
use plugin_sdk::{Connector, Error};
use salesforce::Salesforce;
use serde_json::{Value, json};

use crate::util::{self, API, ORG, event_names, hub, message, notification, sf_error};

const ADA: &str = "003000000000001AAA";
const BOB: &str = "00Q000000000002AAA";

const ACK: &[u8] = br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

fn ada(n: &str, stamp: &str, email: &str) -> String {
    notification(
        Some(n),
        "Contact",
        &[
            ("Id", ADA),
            ("FirstName", "Ada"),
            ("LastName", "Lovelace"),
            ("Email", email),
            ("Phone", "+1 (415) 555-0100"),
            ("SystemModstamp", stamp),
        ],
    )
}

#[test]
fn the_ack_is_exactly_salesforces() {
    let mut hub = hub();
    let d = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[ada("04l1", "2026-01-01T10:00:00.000Z", "ada@example.com")],
        ),
    );
    let reply = hub.respond(d).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, ACK);
    assert_eq!(
        reply.headers,
        [(
            "content-type".to_string(),
            "text/xml; charset=utf-8".to_string()
        )]
    );
    assert!(hub.records("contact").is_empty(), "respond writes nothing");
}

#[test]
fn two_notifications_become_two_records() {
    let mut hub = hub();
    let bob = notification(
        Some("04l2"),
        "Lead",
        &[
            ("Id", BOB),
            ("FirstName", "Bob"),
            ("LastName", "Stone"),
            ("Company", "Stone &amp; Co"),
            ("Email", "BOB@Stone.example"),
            ("MobilePhone", "+14155550142"),
            ("SystemModstamp", "2026-01-01T10:00:01.000Z"),
        ],
    );
    let d = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[
                ada("04l1", "2026-01-01T10:00:00.000Z", "ada@example.com"),
                bob,
            ],
        ),
    );
    let outcome = hub.deliver(d).unwrap();
    assert!(outcome.ignored.is_none(), "{outcome:?}");
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(
        (
            c["firstname"].as_str(),
            c["lastname"].as_str(),
            c["type"].as_str()
        ),
        (Some("Ada"), Some("Lovelace"), Some("Contact"))
    );
    assert_eq!(
        (c["source"].as_str(), c["system_modstamp"].as_str()),
        (Some("salesforce"), Some("2026-01-01T10:00:00Z"))
    );
    assert_eq!(c["system_modstamp_ms"], 1_767_261_600_000i64);
    assert_eq!(c["fields"]["Phone"], "+1 (415) 555-0100");
    let l: Value = hub.record("lead", BOB).unwrap();
    assert_eq!(
        (l["email"].as_str(), l["fields"]["Company"].as_str()),
        (Some("bob@stone.example"), Some("Stone & Co"))
    );
    assert_eq!(
        hub.lookups("lead", BOB),
        ["email:bob@stone.example", "phone:+14155550142"]
    );
    assert_eq!(
        event_names(&hub),
        ["salesforce.contact.changed", "salesforce.lead.changed"]
    );
    assert_eq!(hub.events()[0].payload["change"], "created");
    assert!(
        hub.jobs().is_empty(),
        "both carried SystemModstamp: nothing to read again"
    );
    assert!(hub.is_marker("n:04l1") && hub.is_marker("n:04l2"));
}

#[test]
fn a_notification_without_an_id_is_skipped_and_the_others_applied() {
    let mut hub = hub();
    let nameless = notification(
        None,
        "Contact",
        &[("Id", "003000000000009AAA"), ("Email", "x@y.io")],
    );
    let d = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[
                nameless.clone(),
                ada("04l1", "2026-01-01T10:00:00.000Z", "ada@example.com"),
            ],
        ),
    );
    assert!(hub.deliver(d).unwrap().ignored.is_none());
    assert!(hub.record::<Value>("contact", ADA).is_some());
    assert!(
        hub.record::<Value>("contact", "003000000000009AAA")
            .is_none()
    );
    assert!(
        hub.logs()
            .iter()
            .any(|(_, l)| l.contains("without an Id") && l.contains("skipped"))
    );
    let d = hub.signed_webhook("outbound", message(ORG, &[nameless]));
    let only = hub.deliver(d).unwrap();
    assert!(
        only.ignored
            .as_deref()
            .is_some_and(|r| r.contains("1 skipped")),
        "{only:?}"
    );
}

#[test]
fn a_resend_after_the_ack_is_applied_once() {
    let mut hub = hub();
    let body = message(
        ORG,
        &[ada("04l1", "2026-01-01T10:00:00.000Z", "ada@example.com")],
    );
    let first = hub.signed_webhook("outbound", body.clone());
    hub.respond(first.clone()).unwrap();
    hub.deliver(first).unwrap();
    // Salesforce resends even after a valid Ack: a new delivery, the same notification.
    let again = hub.signed_webhook("outbound", body);
    let outcome = hub.deliver(again).unwrap();
    assert!(
        outcome
            .ignored
            .as_deref()
            .is_some_and(|r| r.contains("1 already applied")),
        "{outcome:?}"
    );
    assert_eq!(event_names(&hub), ["salesforce.contact.changed"]);
    // The same notification carrying newer content (the record changed while it was queued)
    // is not a resend.
    let newer = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[ada("04l1", "2026-01-01T10:05:00.000Z", "ada@new.example")],
        ),
    );
    assert!(hub.deliver(newer).unwrap().ignored.is_none());
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(c["email"], "ada@new.example");
}

#[test]
fn an_older_version_arriving_later_changes_nothing() {
    let mut hub = hub();
    let newer = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[ada("04l2", "2026-01-01T10:05:00.000Z", "ada@new.example")],
        ),
    );
    let older = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[ada("04l1", "2026-01-01T10:00:00.000Z", "ada@old.example")],
        ),
    );
    hub.deliver(newer).unwrap();
    let outcome = hub.deliver(older).unwrap();
    assert!(
        outcome
            .ignored
            .as_deref()
            .is_some_and(|r| r.contains("out of order")),
        "{outcome:?}"
    );
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(
        (c["email"].as_str(), c["system_modstamp"].as_str()),
        (Some("ada@new.example"), Some("2026-01-01T10:05:00Z"))
    );
    assert_eq!(
        hub.lookups("contact", ADA),
        ["email:ada@new.example", "phone:+14155550100"]
    );
    assert_eq!(event_names(&hub).len(), 1);
    // The same version again with a field the first did not send: merged, announced.
    let same = notification(
        Some("04l3"),
        "Contact",
        &[
            ("Id", ADA),
            ("Title", "Countess"),
            ("SystemModstamp", "2026-01-01T10:05:00.000+0000"),
        ],
    );
    let d = hub.signed_webhook("outbound", message(ORG, &[same]));
    hub.deliver(d).unwrap();
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(
        (c["fields"]["Title"].as_str(), c["email"].as_str()),
        (Some("Countess"), Some("ada@new.example"))
    );
    assert_eq!(hub.events()[1].payload["change"], "updated");
}

#[test]
fn a_version_without_systemmodstamp_is_read_again_whole() {
    let mut hub = hub();
    let example = Salesforce::manifest().routes[0]
        .example
        .clone()
        .unwrap()
        .replace("{{id}}", "000000000001AAA");
    let d = hub.signed_webhook("outbound", example);
    hub.deliver(d).unwrap();
    let jobs = hub.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].name.as_str(), &jobs[0].input),
        ("refresh_record", &json!({"type": "Contact", "id": ADA}))
    );
    hub.on("GET", &format!("{API}/sobjects/Contact/{ADA}"), Answer::json(200, &json!({
        "attributes": {"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{ADA}")},
        "Id": ADA, "FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com",
        "Phone": null, "SystemModstamp": "2026-01-01T09:00:00.000+0000"})));
    util::drain(&mut hub);
    let sent = &hub.requests()[0];
    assert_eq!(sent.method, "GET");
    assert!(
        sent.url.starts_with(&format!(
            "{API}/sobjects/Contact/{ADA}?fields=Id%2CName%2CFirstName"
        )),
        "{}",
        sent.url
    );
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", util::TOKEN).as_str())
    );
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(
        (c["lastname"].as_str(), c["system_modstamp"].as_str()),
        (Some("Lovelace"), Some("2026-01-01T09:00:00Z"))
    );
    assert!(c["fields"].get("attributes").is_none());
    // A record Salesforce no longer has: marked deleted, announced once.
    hub.on(
        "GET",
        &format!("{API}/sobjects/Contact/{ADA}"),
        sf_error(404, "NOT_FOUND", "The requested resource does not exist"),
    );
    hub.job("refresh_record", &json!({"type": "Contact", "id": ADA}))
        .unwrap();
    let c: Value = hub.record("contact", ADA).unwrap();
    assert_eq!(c["deleted"], true);
    assert!(hub.lookups("contact", ADA).is_empty());
    assert_eq!(
        event_names(&hub).last().map(String::as_str),
        Some("salesforce.contact.deleted")
    );
}

#[test]
fn custom_types_are_kept_when_listed() {
    let mut hub = hub().config("sobjects", json!(["Contact", "Invoice__c"]));
    let invoice = notification(
        Some("04l9"),
        "Invoice__c",
        &[
            ("Id", "a01000000000001AAA"),
            ("Name", "INV-0001"),
            ("Amount__c", "120.50"),
            ("Paid__c", "false"),
            ("SystemModstamp", "2026-01-01T10:00:00.000Z"),
        ],
    );
    let lead = notification(
        Some("04l8"),
        "Lead",
        &[("Id", BOB), ("SystemModstamp", "2026-01-01T10:00:00.000Z")],
    );
    let d = hub.signed_webhook("outbound", message(ORG, &[invoice, lead]));
    hub.deliver(d).unwrap();
    let i: Value = hub.record("invoice__c", "a01000000000001AAA").unwrap();
    assert_eq!(
        (
            i["type"].as_str(),
            i["name"].as_str(),
            i["fields"]["Amount__c"].as_str()
        ),
        (Some("Invoice__c"), Some("INV-0001"), Some("120.50"))
    );
    assert!(hub.lookups("invoice__c", "a01000000000001AAA").is_empty());
    assert_eq!(event_names(&hub), ["salesforce.record.changed"]);
    assert_eq!(hub.events()[0].payload["type"], "Invoice__c");
    assert!(
        hub.record::<Value>("lead", BOB).is_none(),
        "Lead is not listed"
    );
    assert!(hub.logs().iter().any(|(_, l)| l.contains("does not list")));
}

#[test]
fn a_body_that_is_not_an_outbound_message_is_a_bad_request() {
    let mut hub = hub();
    let d = hub.webhook("outbound", "<Envelope/>");
    assert!(matches!(
        hub.deliver(d),
        Err(plugin_sdk::harness::Failure::Connector(Error::BadRequest(
            _
        )))
    ));
}

/// What another connector of the tenant (a route's `find()`, Retell's greeting) finds.
fn find(hub: &mut Harness<Salesforce>, kind: &str, lookup: &str) -> Vec<(String, Value)> {
    hub.find(kind, lookup)
}

#[test]
fn contacts_and_leads_are_found_by_email_and_phone() {
    let mut hub = Harness::<Salesforce>::new()
        .config("instance_url", util::INSTANCE)
        .config("org_id", ORG)
        .credential("outbound_token", util::PATH_TOKEN)
        .oauth2_token("salesforce", util::TOKEN)
        .phone_country_code("+1");
    let lead = notification(
        Some("04l2"),
        "Lead",
        &[
            ("Id", BOB),
            ("LastName", "Stone"),
            ("MobilePhone", "415.555.0142"),
            ("SystemModstamp", "2026-01-01T10:00:00.000Z"),
        ],
    );
    let d = hub.signed_webhook(
        "outbound",
        message(
            ORG,
            &[
                ada("04l1", "2026-01-01T10:00:00.000Z", "Ada@Example.com"),
                lead,
            ],
        ),
    );
    hub.deliver(d).unwrap();
    let by_phone = find(&mut hub, "contact", "phone:+14155550100");
    assert_eq!(by_phone.len(), 1);
    assert_eq!(
        (by_phone[0].0.as_str(), by_phone[0].1["firstname"].as_str()),
        (ADA, Some("Ada"))
    );
    let by_email = find(
        &mut hub,
        "contact",
        &plugin_sdk::lookup::email("ADA@example.com").unwrap(),
    );
    assert_eq!(by_email[0].1["lastname"], "Lovelace");
    let lead = find(&mut hub, "lead", "phone:+14155550142");
    assert_eq!(lead[0].0, BOB);
    assert!(find(&mut hub, "contact", "phone:+14155550142").is_empty());
}
