//! The org's API limits: read on every answer, and the slowing they ask for.

use plugin_sdk::harness::Answer;
use serde_json::json;

use crate::util::{API, DAY, T0, drain, served, sf_error, sf_id};

fn usage(hub: &plugin_sdk::harness::Harness<salesforce::Salesforce>) -> Option<String> {
    hub.kv("limits.api_usage")
        .map(|v| String::from_utf8(v).unwrap())
}

fn contacts(org: &mut crate::util::FakeOrg, n: usize) {
    for i in 0..n {
        org.put(
            "Contact",
            &sf_id("003", i),
            T0 - DAY + i as i64 * 1000,
            json!({"LastName": format!("L{i}")}),
        );
    }
}

#[test]
fn usage_is_read_from_every_answer() {
    let (mut hub, org) = served(2_000);
    contacts(&mut org.borrow_mut(), 3);
    org.borrow_mut().usage = (41_000, 100_000);
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    assert_eq!(usage(&hub), Some(format!("41@{T0}")));
}

#[test]
fn continuations_slow_down_as_the_allocation_runs_out() {
    let (mut hub, org) = served(100);
    contacts(&mut org.borrow_mut(), 1_000);
    org.borrow_mut().usage = (91_000, 100_000);
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    let job = &hub.jobs()[0];
    assert_eq!(
        job.run_at_ms as i64,
        T0 + 5 * 60_000,
        "at 91 %: five minutes"
    );
    assert!(
        job.input["step"]["query"]["next"].is_string(),
        "the locator outlives five minutes"
    );
    hub.at(job.run_at_ms);
    org.borrow_mut().usage = (96_000, 100_000);
    let ran = hub.run_due_jobs();
    assert!(ran[0].1.is_ok());
    let job = &hub.jobs()[0];
    assert_eq!(
        job.run_at_ms as i64,
        T0 + 5 * 60_000 + 30 * 60_000,
        "at 96 %: half an hour"
    );
    assert!(
        job.input["step"]["query"]["next"].is_null(),
        "a locator would expire: restart from the newest read"
    );
    assert!(job.input["step"]["query"]["since_ms"].is_i64());
    drain(&mut hub);
    assert_eq!(hub.records("contact").len(), 1_000);
}

#[test]
fn a_sync_starting_above_95_percent_waits_for_the_next_run() {
    let (mut hub, org) = served(2_000);
    contacts(&mut org.borrow_mut(), 1);
    hub.on(
        "GET",
        &format!("{API}/limits"),
        Answer::json(200, &json!({})).header("sforce-limit-info", "api-usage=97000/100000"),
    );
    hub.job("check_credentials", &json!({})).unwrap();
    assert_eq!(usage(&hub), None, "the check writes nothing");
    org.borrow_mut().usage = (97_000, 100_000);
    hub.job("sync", &json!({"sobject": "Lead"})).unwrap();
    // Over 95 %: the run asks nothing and ends done (a retryable error would spend the job's
    // attempts); the next scheduled sync tries again.
    let asked = hub.requests().len();
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    assert_eq!(hub.requests().len(), asked, "no query above 95 %");
    assert!(hub.records("contact").is_empty());
    // An upsert is not slowed below 100 %...
    let mut hub = hub_with_usage(97);
    hub.on(
        "PATCH",
        &format!("{API}/sobjects/Contact/Hub_Email__c/a%40b.io"),
        Answer::json(201, &json!({"id": "003000000000001AAA", "created": true})),
    );
    assert!(
        hub.action(
            "upsert_contact",
            &json!({"email": "a@b.io", "lastname": "B"}),
            "u1"
        )
        .is_ok()
    );
    // ...and waits at it.
    let mut hub = hub_with_usage(100);
    let e = hub
        .action("upsert_contact", &json!({"email": "a@b.io"}), "u2")
        .unwrap_err();
    assert!(
        e.is_retryable() && hub.requests().len() == 1,
        "no PATCH: {e}"
    );
}

fn hub_with_usage(percent: u64) -> plugin_sdk::harness::Harness<salesforce::Salesforce> {
    let mut hub = crate::util::hub().config("contact_external_id", "Hub_Email__c");
    hub.on(
        "GET",
        &format!("{API}/sobjects/Contact/003000000000001AAA"),
        Answer::json(200, &json!({"Id": "003000000000001AAA"}))
            .header("sforce-limit-info", &format!("api-usage={}/100", percent)),
    );
    hub.job(
        "refresh_record",
        &json!({"type": "Contact", "id": "003000000000001AAA"}),
    )
    .unwrap();
    hub
}

#[test]
fn a_401_that_reaches_the_connector_names_the_session() {
    let (mut hub, _org) = served(2_000);
    hub.on(
        "GET",
        &format!("{API}/query"),
        sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"),
    );
    let e = hub.job("sync", &json!({"sobject": "Contact"})).unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("INVALID_SESSION_ID"),
        "{e}"
    );
    hub.on(
        "GET",
        &format!("{API}/limits"),
        sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"),
    );
    assert!(
        hub.job("check_credentials", &json!({}))
            .unwrap_err()
            .to_string()
            .contains("INVALID_SESSION_ID")
    );
}
