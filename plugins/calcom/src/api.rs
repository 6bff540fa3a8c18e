//! Cal.com's API v2 (`https://api.cal.com/v2`, `Authorization: Bearer <api_key>`): requests
//! with the `cal-api-version` each endpoint wants (a missing or wrong one silently selects an
//! older version), what its answers and errors mean, and its bookings read into observations.
//!
//! Versions pinned per endpoint: bookings `2024-08-13`, slots `2024-09-04`; `/v2/webhooks` and
//! `/v2/me` take none. Errors: `{"status": "error", "error": {"code", "message"}}`. Rate limits:
//! `X-RateLimit-{Limit,Remaining,Reset}-<name>` (`-Default`, and `-<name>` for a custom limit),
//! the reset in seconds; a 429 has no `Retry-After`, so it waits for the reset.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse, Retryable};
use serde_json::Value;

use crate::booking::{Details, EventTypeRef, Person, Status};
use crate::merge::Observation;
use crate::time;

/// The API origin (the manifest's one outbound host).
pub const ORIGIN: &str = "https://api.cal.com";
/// The API base.
pub const BASE: &str = "https://api.cal.com/v2";
/// The credential holding the tenant's API key (`cal_live_...`).
pub const API_KEY: &str = "api_key";
/// `cal-api-version` of the bookings endpoints.
pub const BOOKINGS_VERSION: &str = "2024-08-13";
/// `cal-api-version` of `/v2/slots`.
pub const SLOTS_VERSION: &str = "2024-09-04";
/// Time limit of one call.
const TIMEOUT_MS: u32 = 10_000;
/// The wait after a 429 that names none.
pub const DEFAULT_WAIT_MS: u64 = 60_000;
/// The longest wait honoured (the host's longest backoff).
const MAX_WAIT_MS: u64 = 3_600_000;

/// A call to `path` (after `/v2`) with the API key, and `cal-api-version` when the endpoint
/// takes one.
pub fn call(method: &str, path: &str, version: Option<&str>) -> Request {
    let request = Request::new(method, format!("{BASE}{path}"))
        .bearer(API_KEY)
        .header("accept", "application/json")
        .timeout_ms(TIMEOUT_MS);
    match version {
        Some(v) => request.header("cal-api-version", v),
        None => request,
    }
}

/// A query value, percent-encoded (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?k=v&...` from pairs (empty for none).
pub fn query(pairs: &[(&str, String)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("?{}", joined.join("&"))
    }
}

/// Whether `uid` is safe in a path (Cal.com's uids are letters, digits, `-` and `_`).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 128
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Cal.com's error message: `error.message`, `message`, or the start of the body.
pub fn message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    text("/error/message")
        .or_else(|| text("/message"))
        .or_else(|| text("/error"))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

fn header_u64(headers: &[(String, String)], name: &str) -> Option<u64> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.ceil() as u64)
}

/// Seconds to a reset, from a value in seconds (or, defensively, a Unix time).
fn reset_ms(value: u64) -> u64 {
    let secs = if value > 1_000_000_000 {
        let now = u64::try_from(time::now_ms() / 1000).unwrap_or(0);
        value.saturating_sub(now)
    } else {
        value
    };
    secs.saturating_mul(1000).clamp(1000, MAX_WAIT_MS)
}

/// The limits the headers describe: `(name, remaining, reset ms)`.
fn limits(headers: &[(String, String)]) -> Vec<(String, Option<u64>, Option<u64>)> {
    headers
        .iter()
        .filter_map(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n.strip_prefix("x-ratelimit-reset-").map(str::to_string)
        })
        .map(|name| {
            let remaining = header_u64(headers, &format!("x-ratelimit-remaining-{name}"));
            let reset = header_u64(headers, &format!("x-ratelimit-reset-{name}")).map(reset_ms);
            (name, remaining, reset)
        })
        .collect()
}

/// How long the headers say to wait before the next call, when a limit is spent (its
/// `Remaining` is 0): its reset.
pub fn exhausted_wait_ms(headers: &[(String, String)]) -> Option<u64> {
    limits(headers)
        .into_iter()
        .filter(|(_, remaining, _)| *remaining == Some(0))
        .map(|(_, _, reset)| reset.unwrap_or(DEFAULT_WAIT_MS))
        .max()
}

/// How long to wait after a 429: the reset of the spent limit, else the longest reset named,
/// else `Retry-After`, else a minute.
pub fn retry_wait_ms(headers: &[(String, String)]) -> u64 {
    exhausted_wait_ms(headers)
        .or_else(|| limits(headers).into_iter().filter_map(|(_, _, r)| r).max())
        .or_else(|| header_u64(headers, "retry-after").map(reset_ms))
        .unwrap_or(DEFAULT_WAIT_MS)
}

/// The error an answer means, if it is not a success: 429 waits for the reset, 408 and 5xx
/// retry, every other status is permanent with Cal.com's message.
pub fn failure(status: u16, headers: &[(String, String)], body: &[u8]) -> Option<Error> {
    if (200..300).contains(&status) {
        return None;
    }
    let message = format!("Cal.com answered {status}: {}", message(body));
    Some(match status {
        429 => Error::Retryable(Retryable {
            message,
            retry_after_ms: Some(retry_wait_ms(headers)),
        }),
        408 | 500..=599 => Error::retryable(message),
        401 | 403 => Error::permanent(format!("{message} (is the `{API_KEY}` credential right?)")),
        _ => Error::permanent(message),
    })
}

/// Ok for a 2xx answer, else [`failure`].
///
/// # Errors
/// As [`failure`].
pub fn check(resp: HttpResponse) -> Result<HttpResponse, Error> {
    match failure(resp.status, &resp.headers, &resp.body) {
        Some(e) => Err(e),
        None => Ok(resp),
    }
}

/// Whether a refused booking means the slot is taken: a 409, or Cal.com's words for it.
pub fn slot_gone(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == 409
        || (400..500).contains(&status)
            && [
                "no_available_users_found",
                "no available users",
                "already has booking",
                "not available",
                "no longer available",
                "already booked",
            ]
            .iter()
            .any(|w| m.contains(w))
}

/// The booking in an answer's `data`: the object, or the first of a list (a recurring
/// booking's occurrences).
pub fn data_booking(answer: &Value) -> Option<&Value> {
    match answer.get("data")? {
        Value::Array(items) => items.first(),
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn person(v: &Value) -> Person {
    Person {
        name: text(v, "name"),
        email: text(v, "email"),
        phone: text(v, "phoneNumber"),
        time_zone: text(v, "timeZone"),
        username: text(v, "username"),
        no_show: v
            .get("absent")
            .or_else(|| v.get("noShow"))
            .and_then(Value::as_bool),
    }
}

/// The video link of a booking: `meetingUrl`, `metadata.videoCallUrl`, or a location that is a
/// URL.
pub fn meeting_url(v: &Value) -> Option<String> {
    text(v, "meetingUrl")
        .or_else(|| v.get("metadata").and_then(|m| text(m, "videoCallUrl")))
        .or_else(|| text(v, "location").filter(|l| l.starts_with("https://")))
}

/// A booking as API v2 answers it (`BookingOutput_2024_08_13`), as an observation at its
/// `updatedAt` (else `createdAt`). `None` without a uid.
pub fn observation(v: &Value) -> Option<Observation> {
    let uid = text(v, "uid")?;
    let at = text(v, "updatedAt")
        .or_else(|| text(v, "createdAt"))
        .and_then(|t| time::parse_ms(&t));
    let status = text(v, "status").and_then(|s| Status::parse(&s));
    let mut attendees: Vec<Person> = v
        .get("attendees")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(person).collect())
        .unwrap_or_default();
    let answered_phone = v
        .pointer("/bookingFieldsResponses/attendeePhoneNumber")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(first) = attendees.first_mut()
        && first.phone.is_none()
    {
        first.phone = answered_phone;
    }
    let event_type = v.get("eventType").map(|e| EventTypeRef {
        id: e.get("id").and_then(Value::as_i64),
        slug: text(e, "slug"),
    });
    let event_type = event_type.or_else(|| {
        v.get("eventTypeId")
            .and_then(Value::as_i64)
            .map(|id| EventTypeRef {
                id: Some(id),
                slug: None,
            })
    });
    let details = Details {
        id: v.get("id").and_then(Value::as_i64),
        title: text(v, "title"),
        start: text(v, "start").and_then(|s| time::utc(&s)),
        end: text(v, "end").and_then(|s| time::utc(&s)),
        event_type,
        attendees,
        organizer: v
            .get("hosts")
            .and_then(Value::as_array)
            .and_then(|h| h.first())
            .map(person),
        location: text(v, "location"),
        meeting_url: meeting_url(v),
        rescheduled_from: text(v, "rescheduledFromUid"),
        rescheduled_to: text(v, "rescheduledToUid"),
        cancellation_reason: text(v, "cancellationReason"),
        rejection_reason: text(v, "rejectionReason"),
        idempotency_key: None,
    };
    Some(Observation {
        details,
        ..Observation::new(&uid, at, status)
    })
}

/// `GET /v2/bookings/{uid}`; `None` when Cal.com has no such booking.
///
/// # Errors
/// As [`failure`]; transport failures are retryable.
pub fn get_booking(uid: &str) -> Result<Option<Value>, Error> {
    let resp = call("GET", &format!("/bookings/{uid}"), Some(BOOKINGS_VERSION)).send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    let answer: Value = check(resp)?.json()?;
    Ok(data_booking(&answer).cloned())
}

/// One page of `GET /v2/bookings` with these filters: the bookings, whether another page
/// follows, and how long to pause when the answer spent a rate limit.
///
/// # Errors
/// As [`get_booking`].
pub fn list_bookings(filters: &[(&str, String)]) -> Result<(Vec<Value>, bool, Option<u64>), Error> {
    let resp = check(
        call(
            "GET",
            &format!("/bookings{}", query(filters)),
            Some(BOOKINGS_VERSION),
        )
        .send()?,
    )?;
    let pause = exhausted_wait_ms(&resp.headers);
    let answer: Value = resp.json()?;
    let items = answer
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let more = answer
        .pointer("/pagination/hasNextPage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((items, more, pause))
}

#[cfg(test)]
mod tests;
