//! Cal.com's answers, errors and rate limits, read.

use serde_json::json;

use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn wait(e: &Error) -> Option<Option<u64>> {
    match e {
        Error::Retryable(r) => Some(r.retry_after_ms),
        _ => None,
    }
}

#[test]
fn a_429_waits_for_the_spent_limits_reset() {
    let spent = h(&[
        ("X-RateLimit-Limit-Default", "120"),
        ("X-RateLimit-Remaining-Default", "0"),
        ("X-RateLimit-Reset-Default", "37"),
        ("X-RateLimit-Remaining-Burst", "5"),
        ("X-RateLimit-Reset-Burst", "2"),
    ]);
    let e = failure(429, &spent, br#"{"status":"error","error":{"code":"TooManyRequestsException","message":"ThrottlerException: Too Many Requests"}}"#).unwrap();
    assert_eq!(wait(&e), Some(Some(37_000)));
    assert!(matches!(&e, Error::Retryable(r) if r.message.contains("Too Many Requests")));
    // No limit says it is spent: the longest reset named; none at all: a minute.
    assert_eq!(
        retry_wait_ms(&h(&[("x-ratelimit-reset-default", "12")])),
        12_000
    );
    assert_eq!(retry_wait_ms(&h(&[("retry-after", "3")])), 3_000);
    assert_eq!(retry_wait_ms(&[]), DEFAULT_WAIT_MS);
    // A reset written as a Unix time is read as one.
    let at = u64::try_from(time::now_ms() / 1000).unwrap() + 30;
    let unix = h(&[
        ("x-ratelimit-remaining-default", "0"),
        ("x-ratelimit-reset-default", &at.to_string()),
    ]);
    assert!((29_000..=30_000).contains(&retry_wait_ms(&unix)));
    // A success that spent the limit: pause before the next call.
    assert_eq!(exhausted_wait_ms(&spent), Some(37_000));
    assert_eq!(
        exhausted_wait_ms(&h(&[("x-ratelimit-remaining-default", "3")])),
        None
    );
}

#[test]
fn errors_retry_or_stop_with_cal_coms_message() {
    assert!(failure(201, &[], b"{}").is_none());
    assert_eq!(wait(&failure(503, &[], b"down").unwrap()), Some(None));
    assert_eq!(wait(&failure(408, &[], b"").unwrap()), Some(None));
    let bad = failure(
        400,
        &[],
        br#"{"status":"error","error":{"code":"BadRequestException","message":"eventTypeId must be a number"}}"#,
    )
    .unwrap();
    assert!(
        matches!(&bad, Error::Permanent(m) if m == "Cal.com answered 400: eventTypeId must be a number"),
        "{bad:?}"
    );
    let key = failure(401, &[], br#"{"message":"Invalid API key"}"#).unwrap();
    assert!(
        matches!(&key, Error::Permanent(m) if m.contains("Invalid API key") && m.contains("`api_key`"))
    );
    assert!(
        matches!(failure(404, &[], b"nope").unwrap(), Error::Permanent(m) if m.ends_with("nope"))
    );
}

#[test]
fn a_taken_slot_is_recognised() {
    assert!(slot_gone(409, ""));
    assert!(slot_gone(400, "no_available_users_found_error"));
    assert!(slot_gone(
        400,
        "User either already has booking at this time or is not available"
    ));
    assert!(!slot_gone(400, "Attempting to book a meeting in the past."));
    assert!(!slot_gone(500, "not available"));
}

#[test]
fn queries_are_encoded() {
    assert_eq!(encode("jane+1@example.com"), "jane%2B1%40example.com");
    assert_eq!(encode("2026-01-05T09:00:00Z"), "2026-01-05T09%3A00%3A00Z");
    assert_eq!(
        query(&[("take", "100".into()), ("attendeeEmail", "a b".into())]),
        "?take=100&attendeeEmail=a%20b"
    );
    assert_eq!(query(&[]), "");
    assert!(valid_uid("2NtaeaVcKfpmSZ4CthFdfk") && valid_uid("bk_1-a"));
    assert!(!valid_uid("") && !valid_uid("../me") && !valid_uid("a b"));
}

/// `BookingOutput_2024_08_13` as the spec shows it.
pub fn api_booking() -> Value {
    json!({
        "id": 123, "uid": "booking_uid_123", "title": "Consultation", "description": "",
        "hosts": [{"id": 1, "name": "Jane Doe", "email": "jane100@example.com", "displayEmail": "jane100@example.com",
                   "username": "jane100", "timeZone": "America/Los_Angeles"}],
        "status": "accepted", "start": "2024-08-13T15:30:00Z", "end": "2024-08-13T16:30:00Z", "duration": 60,
        "eventTypeId": 50, "eventType": {"id": 1, "slug": "some-event"},
        "location": "https://example.com/meeting", "absentHost": false,
        "createdAt": "2024-08-13T15:30:00Z", "updatedAt": "2024-08-13T15:35:00Z",
        "metadata": {"key": "value"},
        "attendees": [{"name": "John Doe", "email": "john@example.com", "displayEmail": "john@example.com",
                       "timeZone": "America/New_York", "absent": false, "phoneNumber": "+1234567890"}],
        "bookingFieldsResponses": {"customField": "customValue"}
    })
}

#[test]
fn an_api_booking_is_an_observation() {
    let o = observation(&api_booking()).unwrap();
    assert_eq!(o.uid, "booking_uid_123");
    assert_eq!(o.status, Some(Status::Accepted));
    assert_eq!(o.at_ms, time::parse_ms("2024-08-13T15:35:00Z"));
    let d = &o.details;
    assert_eq!(d.id, Some(123));
    assert_eq!(d.start.as_deref(), Some("2024-08-13T15:30:00Z"));
    assert_eq!(
        d.event_type.as_ref().unwrap().slug.as_deref(),
        Some("some-event")
    );
    assert_eq!(d.event_type.as_ref().unwrap().id, Some(1));
    assert_eq!(d.attendees[0].phone.as_deref(), Some("+1234567890"));
    assert_eq!(d.attendees[0].no_show, Some(false));
    assert_eq!(
        d.organizer.as_ref().unwrap().username.as_deref(),
        Some("jane100")
    );
    assert_eq!(
        d.meeting_url.as_deref(),
        Some("https://example.com/meeting")
    );
    // A rescheduled one, Cal Video's link in the metadata, a phone only in the responses.
    let mut v = api_booking();
    v["status"] = json!("cancelled");
    v["rescheduledToUid"] = json!("new_uid_456");
    v["location"] = json!("integrations:daily");
    v["metadata"] = json!({"videoCallUrl": "https://app.cal.com/video/booking_uid_123"});
    v["attendees"][0]
        .as_object_mut()
        .unwrap()
        .remove("phoneNumber");
    v["bookingFieldsResponses"] = json!({"attendeePhoneNumber": "+14155550100"});
    let o = observation(&v).unwrap();
    assert_eq!(o.details.rescheduled_to.as_deref(), Some("new_uid_456"));
    assert_eq!(
        o.details.meeting_url.as_deref(),
        Some("https://app.cal.com/video/booking_uid_123")
    );
    assert_eq!(
        o.details.attendees[0].phone.as_deref(),
        Some("+14155550100")
    );
    assert!(observation(&json!({"title": "no uid"})).is_none());
    assert_eq!(
        data_booking(&json!({"data": [api_booking()]})).unwrap()["uid"],
        "booking_uid_123"
    );
    assert_eq!(
        message(br#"{"status":"error","error":{"message":"boom"}}"#),
        "boom"
    );
}
