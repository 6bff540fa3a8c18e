//! Unit tests of the `email` merge rule.

use super::*;
use crate::model::{Click, Failed, Suppressed};

fn data() -> EmailData {
    EmailData {
        email_id: Some("e1".into()),
        created_at: Some("2026-03-01T10:00:00.000Z".into()),
        from: Some("Acme <hello@acme.test>".into()),
        to: vec!["Jane <Jane@Example.com>".into()],
        subject: Some("Your visit".into()),
        ..Default::default()
    }
}

fn run(events: &[(&'static str, &str, EmailData)]) -> (EmailRecord, Vec<&'static str>) {
    let mut record = None;
    let mut published = Vec::new();
    for (kind, at, d) in events {
        let a = apply(record.take(), kind, Some(at), d);
        published.extend(a.publish);
        record = Some(a.record);
    }
    (record.unwrap(), published)
}

#[test]
fn status_moves_forward_only() {
    let (r, published) = run(&[
        ("email.sent", "2026-03-01T10:00:01Z", data()),
        ("email.delivered", "2026-03-01T10:00:03Z", data()),
        ("email.sent", "2026-03-01T10:00:01Z", data()),
        ("email.delivery_delayed", "2026-03-01T10:00:02Z", data()),
    ]);
    assert_eq!(r.status.as_deref(), Some("delivered"));
    assert_eq!(published, vec!["email.sent", "email.delivered"]);
    assert_eq!(
        r.events_seen,
        vec!["email.sent", "email.delivered", "email.delivery_delayed"]
    );
    assert_eq!(r.last_event_at.as_deref(), Some("2026-03-01T10:00:03Z"));
    assert_eq!(r.direction.as_deref(), Some("outbound"));
    assert_eq!(r.email_id, "e1");
}

#[test]
fn a_late_sent_after_delivered_is_not_announced() {
    let (r, published) = run(&[
        ("email.delivered", "2026-03-01T10:00:03Z", data()),
        ("email.sent", "2026-03-01T10:00:01Z", data()),
    ]);
    assert_eq!(r.status.as_deref(), Some("delivered"));
    assert_eq!(published, vec!["email.delivered"]);
    assert_eq!(r.subject.as_deref(), Some("Your visit"));
}

#[test]
fn terminal_states_stay() {
    let mut bounced = data();
    bounced.bounce = Some(Bounce {
        kind: Some("Permanent".into()),
        sub_type: Some("General".into()),
        message: Some("550 5.1.1 user unknown".into()),
    });
    let (r, published) = run(&[
        ("email.sent", "t1", data()),
        ("email.bounced", "t3", bounced),
        ("email.delivered", "t2", data()),
        ("email.complained", "t4", data()),
    ]);
    assert_eq!(r.status.as_deref(), Some("bounced"));
    assert!(r.complained, "the complaint is still noted");
    assert_eq!(
        r.bounce.as_ref().unwrap().kind.as_deref(),
        Some("Permanent")
    );
    assert_eq!(r.bounced_recipients, vec!["Jane <Jane@Example.com>"]);
    assert_eq!(
        published,
        vec!["email.sent", "email.bounced", "email.complained"]
    );
}

#[test]
fn a_complaint_after_delivery_is_final() {
    let (r, _) = run(&[
        ("email.delivered", "t1", data()),
        ("email.complained", "t2", data()),
        ("email.delivered", "t3", data()),
    ]);
    assert_eq!(r.status.as_deref(), Some("complained"));
}

#[test]
fn failed_and_suppressed_keep_their_reason() {
    let mut failed = data();
    failed.failed = Some(Failed {
        reason: Some("reached_daily_quota".into()),
    });
    let (r, _) = run(&[("email.failed", "t1", failed), ("email.sent", "t2", data())]);
    assert_eq!(r.status.as_deref(), Some("failed"));
    assert_eq!(r.failed_reason.as_deref(), Some("reached_daily_quota"));

    let mut sup = data();
    sup.suppressed = Some(Suppressed {
        reason: Some("previous_bounce".into()),
        kind: Some("OnAccountSuppressionList".into()),
        message: None,
    });
    let a = apply(None, "email.suppressed", Some("t1"), &sup);
    assert_eq!(a.record.status.as_deref(), Some("suppressed"));
    assert_eq!(a.suppress.len(), 1);
    assert_eq!(a.suppress[0].reason, "resend_suppressed");
    assert_eq!(a.suppress[0].detail.as_deref(), Some("previous_bounce"));
}

#[test]
fn opens_and_clicks_count_without_touching_the_status() {
    let click = |link: &str| {
        let mut d = data();
        d.click = Some(Click {
            link: Some(link.into()),
            timestamp: Some("t9".into()),
        });
        d
    };
    let (r, published) = run(&[
        ("email.delivered", "t1", data()),
        ("email.opened", "t2", data()),
        ("email.opened", "t3", data()),
        ("email.clicked", "t4", click("https://a.test/1")),
        ("email.clicked", "t5", click("https://a.test/1")),
        ("email.clicked", "t6", click("https://a.test/2")),
    ]);
    assert_eq!(r.status.as_deref(), Some("delivered"));
    assert_eq!((r.opens, r.clicks), (2, 3));
    assert_eq!(r.first_opened_at.as_deref(), Some("t2"));
    assert_eq!(r.links, vec!["https://a.test/1", "https://a.test/2"]);
    assert_eq!(
        r.last_click.as_ref().unwrap().link.as_deref(),
        Some("https://a.test/2")
    );
    assert_eq!(
        published,
        vec![
            "email.delivered",
            "email.opened",
            "email.clicked",
            "email.clicked"
        ]
    );
    // An open before any status leaves the status unknown.
    let a = apply(None, "email.opened", Some("t1"), &data());
    assert_eq!(a.record.status, None);
}

#[test]
fn only_hard_bounces_and_complaints_suppress() {
    let bounce = |kind: &str| {
        let mut d = data();
        d.bounce = Some(Bounce {
            kind: Some(kind.into()),
            sub_type: None,
            message: Some("m".into()),
        });
        d
    };
    let hard = apply(None, "email.bounced", Some("t1"), &bounce("Permanent"));
    assert_eq!(hard.suppress.len(), 1);
    assert_eq!(hard.suppress[0].address, "jane@example.com");
    assert_eq!(hard.suppress[0].reason, "bounce");
    assert_eq!(hard.suppress[0].email_id.as_deref(), Some("e1"));
    assert!(
        apply(None, "email.bounced", Some("t1"), &bounce("Transient"))
            .suppress
            .is_empty()
    );
    assert!(
        apply(None, "email.bounced", Some("t1"), &bounce("Undetermined"))
            .suppress
            .is_empty()
    );
    let complaint = apply(None, "email.complained", Some("t1"), &data());
    assert_eq!(complaint.suppress[0].reason, "complaint");
    // No recipients in the event: the record's are used.
    let stored = apply(None, "email.sent", Some("t0"), &data()).record;
    let mut empty = data();
    empty.to.clear();
    let c = apply(Some(stored), "email.complained", Some("t1"), &empty);
    assert_eq!(c.suppress[0].address, "jane@example.com");
}

#[test]
fn received_emails_are_inbound() {
    let mut d = data();
    d.message_id = Some("<m1@mail>".into());
    let a = apply(None, "email.received", Some("t1"), &d);
    assert_eq!(a.record.direction.as_deref(), Some("inbound"));
    assert_eq!(a.record.status.as_deref(), Some("received"));
    assert_eq!(a.record.message_id.as_deref(), Some("<m1@mail>"));
    assert_eq!(a.publish, vec!["email.received"]);
}

#[test]
fn ranks_and_known_events() {
    assert!(rank("sent") < rank("delivered"));
    assert!(is_terminal("bounced") && !is_terminal("delivered"));
    assert_eq!(known_event("email.bounced"), Some("email.bounced"));
    assert_eq!(known_event("contact.created"), None);
    let mut s = Some("delivered".to_string());
    assert!(!advance(&mut s, "sent"));
    assert!(advance(&mut s, "bounced"));
    assert!(!advance(&mut s, "complained"));
    assert_eq!(s.as_deref(), Some("bounced"));
}
