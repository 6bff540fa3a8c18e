//! The merge rules, case by case: out-of-order webhooks, replays, reschedule chains, no-shows
//! and meetings.

use super::*;
use crate::booking::EventTypeRef;

const T0: i64 = 1_767_600_000_000;

fn jane() -> Person {
    Person {
        name: Some("Jane Roe".into()),
        email: Some("jane@example.com".into()),
        phone: Some("+14155550100".into()),
        time_zone: Some("America/New_York".into()),
        ..Default::default()
    }
}

fn seen(uid: &str, at: i64, status: Option<Status>) -> Observation {
    let mut o = Observation::new(uid, Some(at), status);
    o.details = Details {
        id: Some(42),
        title: Some("Check-up".into()),
        start: Some("2026-01-05T09:00:00Z".into()),
        end: Some("2026-01-05T09:30:00Z".into()),
        event_type: Some(EventTypeRef {
            id: Some(1001),
            slug: Some("check-up".into()),
        }),
        attendees: vec![jane()],
        ..Default::default()
    };
    o
}

/// Merges each in turn from nothing; the last record and every event published on the way.
fn run(observations: &[Observation]) -> (BookingRecord, Vec<&'static str>) {
    let mut stored = None;
    let mut events = Vec::new();
    for o in observations {
        let m = merge(stored, o);
        events.extend(m.publish);
        stored = Some(m.record);
    }
    (stored.unwrap(), events)
}

#[test]
fn created_then_cancelled_publishes_each_once() {
    let mut cancel = seen("bk_1", T0 + 60_000, Some(Status::Cancelled));
    cancel.details.cancellation_reason = Some("Feeling better".into());
    let (r, events) = run(&[
        seen("bk_1", T0, Some(Status::Accepted)),
        cancel.clone(),
        cancel,
    ]);
    assert_eq!(r.status, Some(Status::Cancelled));
    assert_eq!(events, [CREATED, CANCELLED]);
    assert_eq!(r.published, [CREATED, CANCELLED]);
    assert_eq!(
        r.details.cancellation_reason.as_deref(),
        Some("Feeling better")
    );
    assert_eq!(r.updated_ms, Some(T0 + 60_000));
}

#[test]
fn a_late_created_never_brings_a_cancelled_booking_back() {
    let mut cancel = Observation::new("bk_1", Some(T0 + 60_000), Some(Status::Cancelled));
    cancel.details.cancellation_reason = Some("Feeling better".into());
    cancel.details.title = Some("Check-up (cancelled)".into());
    let (r, events) = run(&[cancel, seen("bk_1", T0, Some(Status::Accepted))]);
    assert_eq!(r.status, Some(Status::Cancelled));
    assert_eq!(events, [CANCELLED], "the late created changed no status");
    // The older event fills what was unknown and overwrites nothing newer.
    assert_eq!(r.details.start.as_deref(), Some("2026-01-05T09:00:00Z"));
    assert_eq!(r.details.attendees, vec![jane()]);
    assert_eq!(r.details.title.as_deref(), Some("Check-up (cancelled)"));
    assert_eq!(r.updated_ms, Some(T0 + 60_000));
}

#[test]
fn newest_information_wins_and_older_only_fills_gaps() {
    let mut newer = seen("bk_1", T0 + 10, Some(Status::Accepted));
    newer.details.title = Some("Check-up with Dr. Who".into());
    newer.details.meeting_url = None;
    let mut older = seen("bk_1", T0, Some(Status::Accepted));
    older.details.title = Some("Old title".into());
    older.details.meeting_url = Some("https://app.cal.com/video/bk_1".into());
    let (r, events) = run(&[newer.clone(), older]);
    assert_eq!(events, [CREATED]);
    assert_eq!(r.details.title.as_deref(), Some("Check-up with Dr. Who"));
    assert_eq!(
        r.details.meeting_url.as_deref(),
        Some("https://app.cal.com/video/bk_1")
    );
    let mut newest = newer;
    newest.at_ms = Some(T0 + 20);
    newest.details.title = Some("Follow-up".into());
    let (r, _) = run(&[seen("bk_1", T0, Some(Status::Accepted)), newest]);
    assert_eq!(r.details.title.as_deref(), Some("Follow-up"));
    // Without a time it is never taken for the newest.
    let mut undated = seen("bk_1", T0, None);
    undated.at_ms = None;
    undated.details.title = Some("Undated".into());
    let (r, _) = run(&[seen("bk_1", T0, Some(Status::Accepted)), undated]);
    assert_eq!(r.details.title.as_deref(), Some("Check-up"));
}

#[test]
fn a_replay_changes_nothing_and_publishes_nothing() {
    let first = merge(None, &seen("bk_1", T0, Some(Status::Accepted)));
    assert!(first.changed);
    let again = merge(
        Some(first.record.clone()),
        &seen("bk_1", T0, Some(Status::Accepted)),
    );
    assert!(!again.changed);
    assert!(again.publish.is_empty());
    assert_eq!(again.record, first.record);
}

#[test]
fn requested_then_confirmed_and_a_late_request_is_stale() {
    let (r, events) = run(&[
        seen("bk_1", T0, Some(Status::Pending)),
        seen("bk_1", T0 + 5, Some(Status::Accepted)),
    ]);
    assert_eq!(
        (r.status, events),
        (Some(Status::Accepted), vec![REQUESTED, CREATED])
    );
    let (r, events) = run(&[
        seen("bk_1", T0 + 5, Some(Status::Accepted)),
        seen("bk_1", T0, Some(Status::Pending)),
    ]);
    assert_eq!((r.status, events), (Some(Status::Accepted), vec![CREATED]));
    let (r, events) = run(&[
        seen("bk_1", T0, Some(Status::Pending)),
        seen("bk_1", T0 + 5, Some(Status::Rejected)),
        seen("bk_1", T0 + 9, Some(Status::Accepted)),
    ]);
    assert_eq!(
        (r.status, events),
        (Some(Status::Rejected), vec![REQUESTED, REJECTED])
    );
}

#[test]
fn a_reschedule_links_both_ways_and_announces_the_new_booking_once() {
    // The new booking (as BOOKING_RESCHEDULED says it) points back at the old one.
    let mut new = seen("bk_2", T0 + 100, Some(Status::Accepted));
    new.details.rescheduled_from = Some("bk_1".into());
    new.details.start = Some("2026-01-06T09:00:00Z".into());
    let (r2, events) = run(&[new.clone(), new.clone()]);
    assert_eq!(events, [RESCHEDULED]);
    assert_eq!(r2.details.rescheduled_from.as_deref(), Some("bk_1"));
    // The old one is marked rescheduled, silently; a late cancel does not move it back.
    let mut moved = Observation::new("bk_1", Some(T0 + 100), Some(Status::Rescheduled));
    moved.details.rescheduled_to = Some("bk_2".into());
    let late_cancel = seen("bk_1", T0 + 50, Some(Status::Cancelled));
    let (r1, events) = run(&[seen("bk_1", T0, Some(Status::Accepted)), moved, late_cancel]);
    assert_eq!(events, [CREATED]);
    assert_eq!(r1.status, Some(Status::Rescheduled));
    assert_eq!(r1.details.rescheduled_to.as_deref(), Some("bk_2"));
    // The API shows the old booking cancelled with `rescheduledToUid`: the same record.
    let mut api_old = seen("bk_1", T0 + 200, Some(Status::Cancelled));
    api_old.details.rescheduled_to = Some("bk_2".into());
    let (r1, events) = run(&[api_old]);
    assert_eq!((r1.status, events), (Some(Status::Rescheduled), vec![]));
    // Already cancelled, then learned to be rescheduled: rescheduled, no second event.
    let mut link = Observation::new("bk_1", Some(T0 + 300), None);
    link.details.rescheduled_to = Some("bk_2".into());
    let (r1, events) = run(&[seen("bk_1", T0, Some(Status::Cancelled)), link]);
    assert_eq!(
        (r1.status, events),
        (Some(Status::Rescheduled), vec![CANCELLED])
    );
    // A link, once written, never changes.
    let mut other = Observation::new("bk_2", Some(T0 + 500), None);
    other.details.rescheduled_from = Some("bk_0".into());
    let (r2, _) = run(&[new, other]);
    assert_eq!(r2.details.rescheduled_from.as_deref(), Some("bk_1"));
}

#[test]
fn attendees_merge_by_email_field_by_field() {
    let mut newer = seen("bk_1", T0 + 10, None);
    newer.details.attendees = vec![
        Person {
            name: Some("Jane R.".into()),
            email: Some("JANE@example.com".into()),
            ..Default::default()
        },
        Person {
            name: Some("Sam".into()),
            email: Some("sam@example.com".into()),
            ..Default::default()
        },
    ];
    let (r, _) = run(&[seen("bk_1", T0, Some(Status::Accepted)), newer]);
    let a = &r.details.attendees;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].name.as_deref(), Some("Jane R."));
    assert_eq!(
        a[0].phone.as_deref(),
        Some("+14155550100"),
        "kept from before"
    );
    assert_eq!(a[1].email.as_deref(), Some("sam@example.com"));
}

#[test]
fn no_shows_are_announced_when_they_appear() {
    let mark = |at: i64, absent: bool| {
        let mut o = Observation::new("bk_1", Some(at), None);
        o.no_show = vec![Person {
            email: Some("jane@example.com".into()),
            no_show: Some(absent),
            ..Default::default()
        }];
        o
    };
    let (r, events) = run(&[
        seen("bk_1", T0, Some(Status::Accepted)),
        mark(T0 + 10, true),
        mark(T0 + 10, true),
        mark(T0 + 5, false),
    ]);
    assert_eq!(events, [CREATED, NO_SHOW]);
    assert_eq!(
        r.details.attendees[0].no_show,
        Some(true),
        "an older unmark is stale"
    );
    assert_eq!(r.details.attendees[0].name.as_deref(), Some("Jane Roe"));
    let (_, events) = run(&[
        seen("bk_1", T0, Some(Status::Accepted)),
        mark(T0 + 10, true),
        mark(T0 + 20, false),
        mark(T0 + 30, true),
    ]);
    assert_eq!(events, [CREATED, NO_SHOW, NO_SHOW]);
    // A no-show before anything else is known: an attendee by email, then filled in.
    let (r, events) = run(&[
        mark(T0 + 10, true),
        seen("bk_1", T0, Some(Status::Accepted)),
    ]);
    assert_eq!(events, [NO_SHOW, CREATED]);
    assert_eq!(
        r.details.attendees[0].phone.as_deref(),
        Some("+14155550100")
    );
    assert_eq!(r.details.attendees[0].no_show, Some(true));
}

#[test]
fn meetings_start_and_end_once() {
    let moment = |m: Meeting| Observation {
        meeting: Some(m),
        ..Observation::new("bk_1", Some(T0 + 1_000), None)
    };
    let (r, events) = run(&[
        seen("bk_1", T0, Some(Status::Accepted)),
        moment(Meeting::Started("2026-01-05T09:00:05Z".into())),
        moment(Meeting::Started("2026-01-05T09:01:00Z".into())),
        moment(Meeting::Ended("2026-01-05T09:29:00Z".into())),
    ]);
    assert_eq!(events, [CREATED, MEETING_STARTED, MEETING_ENDED]);
    assert_eq!(
        r.meeting_started_at.as_deref(),
        Some("2026-01-05T09:00:05Z")
    );
    assert_eq!(r.meeting_ended_at.as_deref(), Some("2026-01-05T09:29:00Z"));
    assert_eq!(r.status, Some(Status::Accepted));
}
