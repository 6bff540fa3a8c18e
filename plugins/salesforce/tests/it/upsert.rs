//! `upsert_contact` and `upsert_lead`: the PATCH by External ID and each of its answers.

use plugin_sdk::harness::{Answer, Failure, Harness};
use plugin_sdk::{Error, Retryable};
use salesforce::Salesforce;
use serde_json::{Value, json};

use crate::util::{API, TOKEN, event_names, hub, sf_error};

const ID: &str = "003000000000042AAA";
/// The upsert's URL: the External ID field and the email, encoded.
fn upsert_url() -> String {
    format!("{API}/sobjects/Contact/Hub_Email__c/jane%40example.com")
}

fn contact_hub() -> Harness<Salesforce> {
    hub()
        .config("contact_external_id", "Hub_Email__c")
        .phone_country_code("+1")
}

fn input() -> Value {
    json!({"email": "Jane@Example.com", "firstname": "Jane", "lastname": "Roe", "phone": "+1 415 555 0100",
           "properties": {"message": "Booked a visit", "Lead_Score__c": 42, "mood": "happy"}})
}

#[test]
fn a_new_contact_is_created_and_found_at_once() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        Answer::json(
            201,
            &json!({"id": ID, "success": true, "errors": [], "created": true}),
        )
        .header("sforce-limit-info", "api-usage=10018/100000"),
    );
    let out = hub.action("upsert_contact", &input(), "call-1").unwrap();
    assert_eq!(
        out,
        json!({"id": ID, "created": true, "ignored_properties": ["mood"]})
    );
    let sent = &hub.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.url.as_str()),
        ("PATCH", upsert_url().as_str())
    );
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({"Email": "jane@example.com", "FirstName": "Jane", "LastName": "Roe",
        "Phone": "+1 415 555 0100", "Description": "Booked a visit", "Lead_Score__c": 42})
    );
    let c: Value = hub.record("contact", ID).unwrap();
    assert_eq!(
        (c["firstname"].as_str(), c["email"].as_str()),
        (Some("Jane"), Some("jane@example.com"))
    );
    assert_eq!(c["fields"]["Hub_Email__c"], "jane@example.com");
    assert_eq!(
        hub.lookups("contact", ID),
        ["email:jane@example.com", "phone:+14155550100"]
    );
    assert_eq!(event_names(&hub), ["salesforce.contact.changed"]);
    assert_eq!(hub.jobs()[0].input, json!({"type": "Contact", "id": ID}));
    assert!(hub.is_marker("upsert_contact:call-1"));
    assert_eq!(
        hub.kv("limits.api_usage")
            .map(|v| String::from_utf8(v)
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_string())
            .as_deref(),
        Some("10")
    );
    // The same key again answers without calling Salesforce.
    assert_eq!(
        hub.action("upsert_contact", &input(), "call-1").unwrap()["id"],
        ID
    );
    assert_eq!(hub.requests().len(), 1);
}

#[test]
fn an_update_without_a_body_reads_the_id() {
    let mut hub = contact_hub();
    hub.on("PATCH", &upsert_url(), Answer::status(204));
    hub.on(
        "GET",
        &format!("{}?fields=Id", upsert_url()),
        Answer::json(200, &json!({"attributes": {"type": "Contact"}, "Id": ID})),
    );
    let out = hub
        .action(
            "upsert_contact",
            &json!({"email": "jane@example.com"}),
            "k2",
        )
        .unwrap();
    assert_eq!(out, json!({"id": ID, "created": false}));
    let sent = hub.requests();
    assert_eq!(
        sent[0].json(),
        json!({"Email": "jane@example.com"}),
        "no LastName that would overwrite the real one"
    );
    assert_eq!(
        (sent[1].method.as_str(), sent[1].url.as_str()),
        ("GET", format!("{}?fields=Id", upsert_url()).as_str())
    );
    assert!(hub.record::<Value>("contact", ID).is_some());
}

#[test]
fn an_update_with_a_body_takes_its_id() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        Answer::json(
            200,
            &json!({"id": ID, "success": true, "errors": [], "created": false}),
        ),
    );
    assert_eq!(
        hub.action(
            "upsert_contact",
            &json!({"email": "jane@example.com"}),
            "k3"
        )
        .unwrap(),
        json!({"id": ID, "created": false})
    );
    assert_eq!(hub.requests().len(), 1);
}

#[test]
fn a_new_contact_without_a_last_name_gets_the_placeholder() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        sf_error(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
        ),
    );
    hub.on(
        "PATCH",
        &upsert_url(),
        Answer::json(
            201,
            &json!({"id": ID, "success": true, "errors": [], "created": true}),
        ),
    );
    let out = hub
        .action(
            "upsert_contact",
            &json!({"email": "jane@example.com", "firstname": "Jane"}),
            "k4",
        )
        .unwrap();
    assert_eq!(out["created"], true);
    let sent = hub.requests();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].json().get("LastName").is_none());
    assert_eq!(sent[1].json()["LastName"], "[not provided]");
}

#[test]
fn several_matches_are_declined_naming_the_field_and_value() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        Answer::json(
            300,
            &json!([
                "/services/data/v62.0/sobjects/Contact/003000000000001AAA",
                "/services/data/v62.0/sobjects/Contact/003000000000002AAA"
            ]),
        ),
    );
    let e = hub.action("upsert_contact", &input(), "k5").unwrap_err();
    let said = e.declined().expect("declined");
    assert!(
        said.contains("Hub_Email__c") && said.contains("jane@example.com"),
        "{said}"
    );
    assert!(hub.records("contact").is_empty() && hub.kv("upsert_contact:k5").is_none());
}

#[test]
fn salesforces_refusal_is_permanent_with_its_message() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        sf_error(
            400,
            "INVALID_FIELD",
            "No such column 'Lead_Score__c' on sobject of type Contact",
        ),
    );
    let e = hub.action("upsert_contact", &input(), "k6").unwrap_err();
    assert!(
        matches!(&e, Failure::Connector(Error::Permanent(m)) if m.contains("No such column") && m.contains("INVALID_FIELD")),
        "{e}"
    );
    hub.on(
        "PATCH",
        &upsert_url(),
        sf_error(
            404,
            "NOT_FOUND",
            "Provided external ID field does not exist or is not accessible: Hub_Email__c",
        ),
    );
    let e = hub.action("upsert_contact", &input(), "k7").unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("external ID field"),
        "{e}"
    );
}

#[test]
fn the_limit_exceeded_waits_and_is_never_permanent() {
    let mut hub = contact_hub();
    hub.on(
        "PATCH",
        &upsert_url(),
        sf_error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ),
    );
    let e = hub.action("upsert_contact", &input(), "k8").unwrap_err();
    assert!(
        matches!(
            &e,
            Failure::Connector(Error::Retryable(Retryable {
                retry_after_ms: Some(300_000),
                ..
            }))
        ),
        "{e}"
    );
    assert!(hub.records("contact").is_empty());
    hub.on(
        "PATCH",
        &upsert_url(),
        sf_error(
            403,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights",
        ),
    );
    assert!(
        hub.action("upsert_contact", &input(), "k9")
            .unwrap_err()
            .is_permanent()
    );
}

#[test]
fn an_upsert_needs_its_external_id_field() {
    let mut hub = hub();
    let e = hub.action("upsert_contact", &input(), "k10").unwrap_err();
    assert!(
        matches!(&e, Failure::Connector(Error::Permanent(m)) if m.contains("contact_external_id")),
        "{e}"
    );
    assert!(hub.requests().is_empty());
    let bad = hub
        .action("upsert_contact", &json!({"email": "not an email"}), "k11")
        .unwrap_err();
    assert!(matches!(bad, Failure::Connector(Error::BadRequest(_))));
}

#[test]
fn a_lead_is_upserted_by_its_own_field_with_its_company() {
    let mut hub = hub().config("lead_external_id", "Hub_Email__c");
    let url = format!("{API}/sobjects/Lead/Hub_Email__c/bob%2Bsf%40stone.example");
    hub.on(
        "PATCH",
        &url,
        sf_error(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName, Company]",
        ),
    );
    hub.on(
        "PATCH",
        &url,
        Answer::json(
            201,
            &json!({"id": "00Q000000000007AAA", "success": true, "errors": [], "created": true}),
        ),
    );
    let out = hub
        .action(
            "upsert_lead",
            &json!({"email": "bob+sf@stone.example", "firstname": "Bob"}),
            "l1",
        )
        .unwrap();
    assert_eq!(out["id"], "00Q000000000007AAA");
    assert_eq!(
        hub.requests()[1].json(),
        json!({"Email": "bob+sf@stone.example", "FirstName": "Bob",
        "LastName": "[not provided]", "Company": "[not provided]"})
    );
    let l: Value = hub.record("lead", "00Q000000000007AAA").unwrap();
    assert_eq!(l["type"], "Lead");
    assert_eq!(
        hub.lookups("lead", "00Q000000000007AAA"),
        ["email:bob+sf@stone.example"]
    );
}
