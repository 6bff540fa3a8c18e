//! The `sync` job against the stand-in org: 10,000 records across continuations, the cursor,
//! deletions by `/deleted/` and by the re-list.

use serde_json::{Value, json};

use crate::util::{DAY, HOUR, T0, drain, event_names, served, sf_error, sf_id};

/// 10,000 contacts changed over the last days, several in the same second.
fn ten_thousand(org: &mut crate::util::FakeOrg) {
    for n in 0..10_000 {
        let ms = T0 - 5 * DAY + (n as i64 / 3) * 1_000;
        org.put(
            "Contact",
            &sf_id("003", n),
            ms,
            json!({"FirstName": format!("P{n}"), "LastName": "Doe",
            "Email": format!("p{n}@example.com"), "Phone": format!("+1415555{:04}", n % 10_000)}),
        );
    }
}

#[test]
fn ten_thousand_contacts_across_continuations_none_missed_or_doubled() {
    let (mut hub, org) = served(2_000);
    ten_thousand(&mut org.borrow_mut());
    org.borrow_mut().put(
        "Lead",
        &sf_id("00Q", 1),
        T0 - DAY,
        json!({"LastName": "Stone", "Company": "Stone"}),
    );
    hub.job("sync", &json!({})).unwrap();
    let fanned: Vec<Value> = hub.jobs().into_iter().map(|j| j.input).collect();
    assert_eq!(
        fanned,
        [
            json!({"sobject": "Contact"}),
            json!({"sobject": "Lead"}),
            json!({"sobject": "Account"}),
            json!({"sobject": "Opportunity"})
        ]
    );
    let ran = drain(&mut hub);
    let contact_runs: Vec<&Value> = ran
        .iter()
        .filter(|(n, i)| n == "sync" && i["sobject"] == "Contact")
        .map(|(_, i)| i)
        .collect();
    // Salesforce answers 2,000 a page whatever the batch size asked: one page fills an
    // invocation's record budget (the hub's host-call limit), then a continuation.
    assert_eq!(
        contact_runs.len(),
        6,
        "five pages, each its own invocation, then the deletions: {contact_runs:?}"
    );
    assert_eq!(contact_runs[5]["step"], "deleted");
    let step = &contact_runs[1]["step"]["query"];
    assert_eq!(
        step["next"], "/services/data/v62.0/query/01g000000-2000",
        "the locator, carried on"
    );
    let records = hub.records("contact");
    assert_eq!(records.len(), 10_000);
    let mut ids: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000);
    let org = org.borrow();
    assert_eq!(
        org.soql
            .iter()
            .filter(|q| q.contains("FROM Contact"))
            .count(),
        1,
        "one query, paged"
    );
    assert_eq!(
        org.pages,
        [
            "01g000000-2000",
            "01g000000-4000",
            "01g000000-6000",
            "01g000000-8000"
        ]
    );
    assert_eq!(
        org.soql[0],
        "SELECT Id,Name,FirstName,LastName,Email,Phone,MobilePhone,Title,AccountId,OwnerId,CreatedDate,LastModifiedDate,SystemModstamp FROM Contact WHERE SystemModstamp > 1970-01-01T00:00:00Z ORDER BY SystemModstamp ASC"
    );
    assert!(hub.record::<Value>("lead", &sf_id("00Q", 1)).is_some());
    assert!(hub.events().is_empty(), "a first import is quiet");
    let ada: Value = hub.record("contact", &sf_id("003", 7)).unwrap();
    assert_eq!(
        (ada["firstname"].as_str(), ada["email"].as_str()),
        (Some("P7"), Some("p7@example.com"))
    );
    assert_eq!(
        hub.lookups("contact", &sf_id("003", 7)),
        ["email:p7@example.com", "phone:+14155550007"]
    );
}

fn state(hub: &plugin_sdk::harness::Harness<salesforce::Salesforce>, kind: &str) -> Value {
    serde_json::from_slice(&hub.kv(&format!("sync:{kind}")).unwrap()).unwrap()
}

#[test]
fn the_cursor_moves_only_when_the_query_is_read_to_its_end() {
    let (mut hub, org) = served(2_000);
    ten_thousand(&mut org.borrow_mut());
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    let s = state(&hub, "contact");
    assert!(s["cursor_ms"].is_null(), "1 page of 5 read: {s}");
    assert!(s["run"]["id"].is_i64());
    assert_eq!(hub.records("contact").len(), 2_000);
    // A sync that comes meanwhile leaves the run be.
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    assert_eq!(hub.jobs().len(), 1);
    drain(&mut hub);
    let s = state(&hub, "contact");
    let newest = T0 - 5 * DAY + (9_999 / 3) * 1_000;
    assert_eq!(s["cursor_ms"], newest);
    assert!(s["run"].is_null());
    assert_eq!(
        s["deleted_through_ms"], T0,
        "deletions are known from the first run's start"
    );

    // The next run reads from the cursor, a minute before it, and announces what changed.
    hub.advance(HOUR as u64);
    org.borrow_mut().put(
        "Contact",
        &sf_id("003", 5),
        T0 + 30 * 60_000,
        json!({"FirstName": "Pat", "LastName": "Doe", "Email": "p5@example.com"}),
    );
    org.borrow_mut().put(
        "Contact",
        &sf_id("003", 10_001),
        T0 + 31 * 60_000,
        json!({"FirstName": "New", "LastName": "One"}),
    );
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    drain(&mut hub);
    let org = org.borrow();
    let last = org.soql.last().unwrap();
    let lower = plugin_sdk::time::rfc3339((newest - 60_000) / 1000);
    assert!(
        last.ends_with(&format!(
            "WHERE SystemModstamp > {lower} ORDER BY SystemModstamp ASC"
        )),
        "{last}"
    );
    let names = event_names(&hub);
    assert_eq!(
        names,
        ["salesforce.contact.changed", "salesforce.contact.changed"],
        "the overlap's re-reads change nothing"
    );
    let kinds: Vec<String> = hub
        .events()
        .iter()
        .map(|e| e.payload["change"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds, ["updated", "created"]);
    let p: Value = hub.record("contact", &sf_id("003", 5)).unwrap();
    assert_eq!(p["firstname"], "Pat");
}

#[test]
fn an_expired_locator_restarts_from_the_newest_change_read() {
    let (mut hub, org) = served(2_000);
    ten_thousand(&mut org.borrow_mut());
    hub.job("sync", &json!({"sobject": "Contact"})).unwrap();
    org.borrow_mut().expired.insert("01g000000".into());
    drain(&mut hub);
    assert_eq!(hub.records("contact").len(), 10_000);
    let org = org.borrow();
    assert_eq!(org.soql.len(), 2);
    assert!(!org.soql[1].contains("1970-01-01"), "{}", org.soql[1]);
}

#[test]
fn deletions_come_from_the_deleted_resource() {
    let (mut hub, org) = served(2_000);
    for n in 0..5 {
        org.borrow_mut().put(
            "Lead",
            &sf_id("00Q", n),
            T0 - DAY,
            json!({"LastName": format!("L{n}"), "Company": "C", "Email": format!("l{n}@x.io")}),
        );
    }
    hub.job("sync", &json!({"sobject": "Lead"})).unwrap();
    drain(&mut hub);
    hub.advance(2 * HOUR as u64);
    org.borrow_mut()
        .delete("Lead", &sf_id("00Q", 1), T0 + HOUR, true);
    org.borrow_mut()
        .delete("Lead", &sf_id("00Q", 3), T0 + HOUR + 60_000, true);
    hub.job("sync", &json!({"sobject": "Lead"})).unwrap();
    drain(&mut hub);
    let asks = org.borrow().deleted_asks.clone();
    assert_eq!(
        asks,
        [(
            "Lead".to_string(),
            "2026-01-01T00:00:00+00:00".to_string(),
            "2026-01-01T02:00:00+00:00".to_string()
        )]
    );
    let gone: Value = hub.record("lead", &sf_id("00Q", 1)).unwrap();
    assert_eq!(
        (gone["deleted"].as_bool(), gone["deleted_at_ms"].as_i64()),
        (Some(true), Some(T0 + HOUR))
    );
    assert!(hub.lookups("lead", &sf_id("00Q", 1)).is_empty());
    assert_eq!(
        event_names(&hub),
        ["salesforce.lead.deleted", "salesforce.lead.deleted"]
    );
    assert_eq!(state(&hub, "lead")["deleted_through_ms"], T0 + 2 * HOUR);
    let live: Value = hub.record("lead", &sf_id("00Q", 2)).unwrap();
    assert_eq!(live["deleted"], false);
    // An older version arriving after the deletion does not bring it back.
    org.borrow_mut().put(
        "Lead",
        &sf_id("00Q", 1),
        T0 - DAY,
        json!({"LastName": "L1"}),
    );
    hub.advance(HOUR as u64);
    hub.job(
        "refresh_record",
        &json!({"type": "Lead", "id": sf_id("00Q", 1)}),
    )
    .unwrap();
    assert_eq!(
        hub.record::<Value>("lead", &sf_id("00Q", 1)).unwrap()["deleted"],
        true
    );
}

#[test]
fn after_thirty_days_a_relist_finds_what_was_deleted() {
    let (mut hub, org) = served(2_000);
    for n in 0..4_500 {
        org.borrow_mut().put(
            "Account",
            &sf_id("001", n),
            T0 - DAY,
            json!({"Name": format!("A{n}")}),
        );
    }
    hub.job("sync", &json!({"sobject": "Account"})).unwrap();
    drain(&mut hub);
    assert_eq!(hub.records("account").len(), 4_500);
    hub.advance(30 * DAY as u64);
    for n in [3, 2_222, 4_499] {
        org.borrow_mut()
            .delete("Account", &sf_id("001", n), T0 + DAY, false);
    }
    hub.job("sync", &json!({"sobject": "Account"})).unwrap();
    drain(&mut hub);
    let org = org.borrow();
    assert!(
        org.deleted_asks.is_empty(),
        "past 29 days /deleted/ cannot answer"
    );
    assert_eq!(
        org.soql
            .iter()
            .filter(|q| *q == "SELECT Id FROM Account")
            .count(),
        1
    );
    let dead: Vec<String> = hub
        .records("account")
        .into_iter()
        .filter(|(_, r)| r["deleted"] == true)
        .map(|(k, _)| k)
        .collect();
    let mut dead = dead;
    dead.sort();
    assert_eq!(
        dead,
        [sf_id("001", 3), sf_id("001", 2_222), sf_id("001", 4_499)]
    );
    assert_eq!(event_names(&hub), ["salesforce.account.deleted"; 3]);
    let s = state(&hub, "account");
    assert!(s["deleted_through_ms"].as_i64().unwrap() >= T0 + 30 * DAY);
}

#[test]
fn exceeded_id_limit_falls_back_to_the_relist() {
    let (mut hub, org) = served(2_000);
    for n in 0..10 {
        org.borrow_mut().put(
            "Opportunity",
            &sf_id("006", n),
            T0 - DAY,
            json!({"Name": format!("O{n}"), "StageName": "Prospecting"}),
        );
    }
    hub.job("sync", &json!({"sobject": "Opportunity"})).unwrap();
    drain(&mut hub);
    hub.advance(DAY as u64);
    org.borrow_mut()
        .delete("Opportunity", &sf_id("006", 4), T0 + HOUR, false);
    org.borrow_mut().deleted_answer = Some(sf_error(400, "EXCEEDED_ID_LIMIT", "too many ids"));
    hub.job("sync", &json!({"sobject": "Opportunity"})).unwrap();
    drain(&mut hub);
    assert_eq!(
        hub.record::<Value>("opportunity", &sf_id("006", 4))
            .unwrap()["deleted"],
        true
    );
    assert_eq!(event_names(&hub), ["salesforce.opportunity.deleted"]);
    // So does an answer that no longer knows the last check.
    org.borrow_mut().deleted_answer = None;
    org.borrow_mut().earliest_ms = T0 + 2 * DAY;
    hub.advance(2 * DAY as u64);
    hub.job("sync", &json!({"sobject": "Opportunity"})).unwrap();
    drain(&mut hub);
    assert_eq!(
        org.borrow()
            .soql
            .iter()
            .filter(|q| *q == "SELECT Id FROM Opportunity")
            .count(),
        2
    );
    assert_eq!(
        hub.records("opportunity")
            .iter()
            .filter(|(_, r)| r["deleted"] == true)
            .count(),
        1
    );
}
