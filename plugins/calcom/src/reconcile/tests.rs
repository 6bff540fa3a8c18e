//! `reconcile_bookings`: where passes start, how pages follow the cursor, continuations, rate
//! limits, and events published once whatever the order webhooks and polls arrive in.

use plugin_sdk::harness::{Answer, Harness, Sent};
use serde_json::{Value, json};

use super::*;
use crate::Calcom;

const T0: i64 = 1_767_225_600_000; // the harness clock: 2026-01-01T00:00:00Z

fn booking(uid: &str, status: &str, created_ms: i64, updated_ms: i64) -> Value {
    json!({"id": 1, "uid": uid, "title": "Check-up", "status": status,
           "start": "2026-01-05T14:00:00Z", "end": "2026-01-05T14:30:00Z",
           "eventType": {"id": 1001, "slug": "check-up"},
           "createdAt": format_ms(created_ms), "updatedAt": format_ms(updated_ms),
           "attendees": [{"name": "Jane Roe", "email": format!("{uid}@example.com"), "timeZone": "UTC", "absent": false}]})
}

fn page(items: &[Value], more: bool) -> Answer {
    Answer::json(
        200,
        &json!({"status": "success", "data": items,
        "pagination": {"totalItems": items.len(), "remainingItems": 0, "returnedItems": items.len(),
                       "itemsPerPage": 100, "currentPage": 1, "totalPages": 1,
                       "hasNextPage": more, "hasPreviousPage": false}}),
    )
}

fn query(sent: &Sent, name: &str) -> Option<String> {
    let q = sent.url.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(|v| v.replace("%3A", ":"))
}

fn hub() -> Harness<Calcom> {
    Harness::<Calcom>::new().credential("api_key", "cal_live_test")
}

#[test]
fn places() {
    assert_eq!(start(Pass::Created, None, None, T0).after, T0 - LOOKBACK_MS);
    assert_eq!(
        start(Pass::Updated, None, Some(T0), T0 + 9).after,
        T0 - OVERLAP_MS
    );
    assert_eq!(start(Pass::Updated, Some(5), Some(T0), T0).after, 5);
    let p = start(Pass::Created, Some(100), None, T0);
    assert_eq!(next(p, Some(500)), Place { after: 499, ..p });
    let stuck = next(p, Some(101));
    assert_eq!((stuck.after, stuck.skip), (100, PAGE));
    assert_eq!(next(stuck, None).skip, 2 * PAGE);
    let input = ReconcileInput {
        pass: Some(Pass::Updated),
        after: Some("2026-01-01T00:00:00Z".into()),
        skip: 100,
        ..Default::default()
    };
    let v = serde_json::to_value(&input).unwrap();
    assert_eq!(
        v,
        json!({"pass": "updated", "after": "2026-01-01T00:00:00Z", "skip": 100})
    );
    assert_eq!(serde_json::from_value::<ReconcileInput>(v).unwrap(), input);
}

#[test]
fn a_first_run_reads_the_last_day_in_both_passes_and_sets_the_cursors() {
    let mut hub = hub();
    hub.put_record(
        "booking",
        "bk_known",
        &json!({"uid": "bk_known", "status": "accepted",
        "published": ["booking.created"], "updated_ms": T0 - 3_600_000}),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        page(
            &[booking("bk_lost", "accepted", T0 - 60_000, T0 - 60_000)],
            false,
        ),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterUpdatedAt=",
        page(
            &[
                booking("bk_known", "cancelled", T0 - 7_200_000, T0 - 30_000),
                booking("bk_lost", "accepted", T0 - 60_000, T0 - 60_000),
            ],
            false,
        ),
    );
    hub.job(RECONCILE, &json!({})).unwrap();
    let sent = hub.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        query(&sent[0], "afterCreatedAt").as_deref(),
        Some("2025-12-31T00:00:00Z")
    );
    assert_eq!(query(&sent[0], "sortCreated").as_deref(), Some("asc"));
    assert_eq!(query(&sent[0], "take").as_deref(), Some("100"));
    assert_eq!(query(&sent[0], "skip").as_deref(), Some("0"));
    assert_eq!(query(&sent[1], "sortUpdatedAt").as_deref(), Some("asc"));
    assert!(
        sent.iter()
            .all(|s| s.header("cal-api-version") == Some("2024-08-13"))
    );
    let names: Vec<String> = hub.events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["booking.created", "booking.cancelled"], "each once");
    assert_eq!(
        hub.lookups("booking", "bk_lost"),
        ["email:bk_lost@example.com"]
    );
    let cursor = |k| String::from_utf8(hub.kv(k).unwrap()).unwrap();
    assert_eq!(
        cursor(Pass::Created.cursor_key()),
        (T0 - 60_000).to_string()
    );
    assert_eq!(
        cursor(Pass::Updated.cursor_key()),
        (T0 - 30_000).to_string()
    );
    // Again: from each cursor less the overlap; nothing new to announce.
    hub.job(RECONCILE, &json!({})).unwrap();
    let again = &hub.requests()[2];
    assert_eq!(
        query(again, "afterCreatedAt"),
        Some(format_ms(T0 - 60_000 - OVERLAP_MS))
    );
    assert_eq!(hub.events().len(), 2);
}

#[test]
fn full_pages_follow_the_cursor_and_continue_in_a_queued_job() {
    let mut hub = hub();
    // Four full pages of new bookings, a last short one, then no changes.
    let mut n = 0;
    let mut full = |same_time: bool| {
        let items: Vec<Value> = (0..PAGE)
            .map(|_| {
                n += 1;
                // A page all at the time the page before ended on does not move past it.
                let at = if same_time {
                    T0 - 800_000
                } else {
                    T0 - 900_000 + n * 1_000
                };
                booking(&format!("bk_{n}"), "accepted", at, at)
            })
            .collect();
        page(&items, true)
    };
    let pages = [full(false), full(true), full(false), full(false)];
    for p in pages {
        hub.on("GET", "https://api.cal.com/v2/bookings?afterCreatedAt=", p);
    }
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        page(&[], false),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterUpdatedAt=",
        page(&[], false),
    );
    hub.job(RECONCILE, &json!({})).unwrap();
    assert_eq!(hub.requests().len(), PAGES_PER_RUN as usize);
    let queued = hub.jobs();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].input["pass"], "created");
    assert!(
        hub.kv(Pass::Created.cursor_key()).is_none(),
        "the pass is not over"
    );
    let sent = hub.requests();
    // Page 2 starts after page 1's newest; page 2 all at one time, so page 3 skips within it.
    assert_eq!(
        query(&sent[1], "afterCreatedAt"),
        Some(format_ms(T0 - 900_000 + 100_000 - 1))
    );
    assert_eq!(query(&sent[1], "skip").as_deref(), Some("0"));
    assert_eq!(
        query(&sent[2], "afterCreatedAt"),
        Some(format_ms(T0 - 900_000 + 100_000 - 1))
    );
    assert_eq!(query(&sent[2], "skip").as_deref(), Some("100"));
    let done = hub.run_due_jobs();
    assert!(done.iter().all(|(_, r)| r.is_ok()), "{done:?}");
    assert_eq!(hub.records("booking").len(), 4 * PAGE);
    assert_eq!(hub.events().len(), 4 * PAGE, "booking.created once each");
    assert!(hub.kv(Pass::Created.cursor_key()).is_some());
    assert!(hub.jobs().is_empty());
}

#[test]
fn rate_limits_fail_the_first_page_and_delay_a_continuation() {
    let mut hub = hub();
    let spent = || {
        Answer::status(429)
            .header("x-ratelimit-remaining-default", "0")
            .header("x-ratelimit-reset-default", "45")
    };
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        spent(),
    );
    match hub.job(RECONCILE, &json!({})).unwrap_err() {
        plugin_sdk::harness::Failure::Connector(Error::Retryable(r)) => {
            assert_eq!(r.retry_after_ms, Some(45_000));
        }
        other => panic!("{other}"),
    }
    // A page that spends the limit: the rest waits for the reset.
    let mut hub = self::hub();
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        page(
            &[booking("bk_1", "accepted", T0 - 1_000, T0 - 1_000)],
            false,
        )
        .header("x-ratelimit-remaining-default", "0")
        .header("x-ratelimit-reset-default", "30"),
    );
    hub.job(RECONCILE, &json!({})).unwrap();
    let queued = hub.jobs();
    assert_eq!(queued[0].input["pass"], "updated");
    assert_eq!(queued[0].run_at_ms, T0 as u64 + 30_000);
    // A 429 after a page: the continuation waits for the reset too.
    let mut hub = self::hub();
    let full: Vec<Value> = (0..PAGE as i64)
        .map(|i| booking(&format!("bk_{i}"), "accepted", T0 - 99_000 + i, T0))
        .collect();
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        page(&full, true),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings?afterCreatedAt=",
        spent(),
    );
    hub.job(RECONCILE, &json!({})).unwrap();
    assert_eq!(hub.jobs()[0].run_at_ms, T0 as u64 + 45_000);
    assert_eq!(hub.records("booking").len(), PAGE);
    assert!(
        matches!(hub.job(RECONCILE, &json!({"since": "yesterday"})), Err(f) if f.is_permanent())
    );
}
