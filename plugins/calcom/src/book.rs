//! The `create_booking` action (`calendar:book`): `POST /v2/bookings` (`cal-api-version:
//! 2024-08-13`), at most once per idempotency key, answering `{id (the uid), start, end,
//! meeting_url}`.
//!
//! Cal.com has no idempotency header, so:
//! - a kv marker per key (`booked:<sha256 of the key>`) answers a repeat without a call;
//! - every booking carries the key's digest in its `metadata` (`hub_key`), and before creating,
//!   the action looks for the booking in the slot (`GET /v2/bookings?afterStart=&beforeEnd=`,
//!   with `attendeeEmail` when given): one with this key's digest (else the same attendee's,
//!   by email or phone, at the same start) is the booking a lost answer made (a timeout after
//!   Cal.com booked, a hub killed before the marker committed), and is answered instead of
//!   booking twice. An invocation's writes are discarded when it fails, so the look happens on
//!   every attempt.
//! - a slot taken meanwhile (409, or Cal.com's "no available users") is permanent, with a
//!   message that says the slot is gone and lists the next free ones, for a voice agent to
//!   offer.
//!
//! The booking is merged into its `booking` record at once (publishing `booking.created`, so
//! the app sees it before the call ends); Cal.com's webhook for it then changes nothing.

use plugin_sdk::{Error, kv, lookup};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::api::{self, BOOKINGS_VERSION};
use crate::booking::Status;
use crate::event_type::{self, EventType};
use crate::merge::Observation;
use crate::slots::{self, Slot, WEEK_MS};
use crate::store;
use crate::time::{self, format_ms, parse_ms};

/// The action's name.
pub const CREATE_BOOKING: &str = "create_booking";
/// The `metadata` key carrying the digest of the action's key.
pub const HUB_KEY: &str = "hub_key";
/// How many free slots a "slot gone" answer offers.
pub const OFFERED: usize = 5;

/// The action's input (the `calendar:book` operation's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BookInput {
    /// When it starts (RFC 3339 with its offset).
    pub start: String,
    /// How long, for event types with several lengths.
    pub duration_minutes: Option<Value>,
    /// Who it is for.
    pub attendee_name: String,
    /// Their email.
    pub attendee_email: Option<String>,
    /// Their phone (E.164).
    pub attendee_phone: Option<String>,
    /// Their zone (default: the tenant's).
    pub time_zone: Option<String>,
    /// What it is (the booking form's `title`).
    pub title: Option<String>,
    /// Anything the clinic should know (the booking form's `notes`).
    pub notes: Option<String>,
    /// The event type (id or slug).
    pub event_type: Option<Value>,
}

/// Lowercase hex SHA-256 of an action's key: what markers and `metadata.hub_key` hold.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The `CreateBookingInput_2024_08_13` body.
pub fn request_body(
    input: &BookInput,
    start_ms: i64,
    event_type: &EventType,
    time_zone: &str,
    duration: Option<i64>,
    digest: &str,
) -> Value {
    let mut attendee = Map::new();
    attendee.insert("name".into(), json!(input.attendee_name.trim()));
    attendee.insert("timeZone".into(), json!(time_zone));
    if let Some(e) = present(&input.attendee_email) {
        attendee.insert("email".into(), json!(e));
    }
    if let Some(p) = present(&input.attendee_phone) {
        attendee.insert("phoneNumber".into(), json!(p));
    }
    let mut body = Map::new();
    body.insert("start".into(), json!(format_ms(start_ms)));
    event_type.add_to(&mut body);
    body.insert("attendee".into(), Value::Object(attendee));
    if let Some(d) = duration {
        body.insert("lengthInMinutes".into(), json!(d));
    }
    let mut responses = Map::new();
    for (field, value) in [("title", &input.title), ("notes", &input.notes)] {
        if let Some(v) = present(value) {
            responses.insert(field.into(), json!(v));
        }
    }
    if !responses.is_empty() {
        body.insert("bookingFieldsResponses".into(), Value::Object(responses));
    }
    body.insert("metadata".into(), json!({ HUB_KEY: digest }));
    Value::Object(body)
}

/// The action's answer for a booking.
pub fn output(seen: &Observation) -> Value {
    let d = &seen.details;
    json!({ "id": seen.uid, "start": d.start, "end": d.end, "meeting_url": d.meeting_url })
}

/// Whether a listed booking is live and starts at `start_ms`.
fn live_at(booking: &Value, start_ms: i64) -> bool {
    let same_start = booking
        .get("start")
        .and_then(Value::as_str)
        .and_then(parse_ms)
        == Some(start_ms);
    let status = booking
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse);
    same_start
        && !matches!(
            status,
            Some(Status::Cancelled | Status::Rejected | Status::Rescheduled)
        )
}

/// Whether a listed live booking at `start_ms` is the one this key booked (its digest).
pub fn booked_by_key(booking: &Value, start_ms: i64, digest: &str) -> bool {
    live_at(booking, start_ms)
        && booking.pointer("/metadata/hub_key").and_then(Value::as_str) == Some(digest)
}

/// Whether a listed live booking at `start_ms` is the same attendee's (email or phone): booking
/// them twice at one time is never what was meant.
pub fn same_attendee(booking: &Value, start_ms: i64, input: &BookInput) -> bool {
    if !live_at(booking, start_ms) {
        return false;
    }
    let email = present(&input.attendee_email).and_then(lookup::email);
    let phone = present(&input.attendee_phone).and_then(lookup::phone);
    booking
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|a| {
            let their = |k: &str, f: fn(&str) -> Option<String>| {
                a.get(k).and_then(Value::as_str).and_then(f)
            };
            (email.is_some() && their("email", lookup::email) == email)
                || (phone.is_some() && their("phoneNumber", lookup::phone) == phone)
        })
}

/// The booking a lost answer already made, if Cal.com has one.
fn already_booked(
    input: &BookInput,
    start_ms: i64,
    duration: Option<i64>,
    digest: &str,
) -> Result<Option<Value>, Error> {
    let span = duration.map_or(86_400_000, |d| d * 60_000);
    let mut filters = vec![
        ("afterStart", format_ms(start_ms - 60_000)),
        ("beforeEnd", format_ms(start_ms + span + 60_000)),
        ("take", "100".to_string()),
    ];
    if let Some(e) = present(&input.attendee_email) {
        filters.push(("attendeeEmail", e.to_string()));
    }
    let (found, _, _) = api::list_bookings(&filters)?;
    let ours = found
        .iter()
        .position(|b| booked_by_key(b, start_ms, digest));
    let theirs = || found.iter().position(|b| same_attendee(b, start_ms, input));
    Ok(ours.or_else(theirs).map(|i| found[i].clone()))
}

/// The "slot gone" message: Cal.com's words, then up to [`OFFERED`] free slots after `start_ms`
/// (or none found, or none could be read).
pub fn slot_gone_message(start: &str, said: &str, next: Option<&[Slot]>) -> String {
    let mut m = format!("The slot at {start} is no longer available (Cal.com: {said}).");
    match next {
        Some([]) => m.push_str(" There is no other free slot in the week after it."),
        Some(slots) => {
            let list: Vec<&str> = slots
                .iter()
                .take(OFFERED)
                .map(|s| s.start.as_str())
                .collect();
            m.push_str(&format!(" The next free slots: {}.", list.join(", ")));
        }
        None => m.push_str(" The next free slots could not be read; ask for them again."),
    }
    m
}

/// The free slots starting after a taken one (in the week from it, or from now if it is past),
/// in the attendee's zone; `None` if they cannot be read.
pub fn next_slots(
    event_type: &EventType,
    after_ms: i64,
    time_zone: &str,
    duration: Option<i64>,
) -> Option<Vec<Slot>> {
    let from_ms = after_ms.max(time::now_ms());
    let q = slots::Query {
        event_type: event_type.clone(),
        from_ms,
        to_ms: from_ms + WEEK_MS,
        time_zone: time_zone.to_string(),
        duration,
    };
    let free = slots::free_slots(&q).ok()?;
    Some(
        free.into_iter()
            .filter(|s| parse_ms(&s.start).is_some_and(|at| at > after_ms))
            .take(OFFERED)
            .collect(),
    )
}

/// Runs `create_booking`.
///
/// # Errors
/// Permanent for a bad input, a taken slot (with the next free ones) or Cal.com's refusal;
/// retryable for 429 (after the reset), 5xx and transport failures.
pub fn run(input: &str, key: &str) -> Result<String, Error> {
    let input: BookInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{CREATE_BOOKING}` input: {e}")))?;
    let start_ms = parse_ms(&input.start).ok_or_else(|| {
        Error::permanent(format!(
            "`start` must be an RFC 3339 time with its offset (2026-01-05T09:00:00-05:00), not `{}`",
            input.start
        ))
    })?;
    if input.attendee_name.trim().is_empty() {
        return Err(Error::permanent("`attendee_name` is empty"));
    }
    let digest = key_digest(key);
    let marker = format!("booked:{digest}");
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let event_type = EventType::resolve(input.event_type.as_ref())?;
    let time_zone = event_type::time_zone(input.time_zone.as_deref())?;
    let duration = event_type::minutes(input.duration_minutes.as_ref())?;
    let booking = match already_booked(&input, start_ms, duration, &digest)? {
        Some(found) => found,
        None => {
            let body = request_body(&input, start_ms, &event_type, &time_zone, duration, &digest);
            let resp = api::call("POST", "/bookings", Some(BOOKINGS_VERSION))
                .json(&body)?
                .send()?;
            let said = api::message(&resp.body);
            if api::slot_gone(resp.status, &said) {
                let next = next_slots(&event_type, start_ms, &time_zone, duration);
                return Err(Error::declined(slot_gone_message(
                    &format_ms(start_ms),
                    &said,
                    next.as_deref(),
                )));
            }
            let answer: Value = api::check(resp)?.json()?;
            api::data_booking(&answer)
                .cloned()
                .ok_or_else(|| Error::permanent("Cal.com booked but answered no booking"))?
        }
    };
    let mut seen = api::observation(&booking)
        .ok_or_else(|| Error::permanent("Cal.com answered a booking without a uid"))?;
    seen.details.idempotency_key = Some(key.to_string());
    store::apply(&seen)?;
    let out = output(&seen).to_string();
    kv::set_marker(&marker, out.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests;
