//! Changing a booking: `cancel_booking` (`calendar:cancel`, `POST /v2/bookings/{uid}/cancel`)
//! and `reschedule_booking` (`POST /v2/bookings/{uid}/reschedule`, which makes a new booking
//! with a new uid), each at most once per idempotency key (a kv marker), each merged into the
//! `booking` records at once.
//!
//! Both are safe to retry after a lost answer: a booking Cal.com already cancelled is what was
//! wanted, and before rescheduling the action reads the booking: one already rescheduled
//! (`rescheduledToUid`) is answered with the booking that replaced it, not moved again.

use plugin_sdk::{Error, kv};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{self, BOOKINGS_VERSION};
use crate::book::{key_digest, next_slots, output, slot_gone_message};
use crate::booking::Status;
use crate::event_type::{self, EventType};
use crate::merge::Observation;
use crate::store;
use crate::time::{self, format_ms, parse_ms};

/// The cancel action's name.
pub const CANCEL_BOOKING: &str = "cancel_booking";
/// The reschedule action's name.
pub const RESCHEDULE_BOOKING: &str = "reschedule_booking";

/// `cancel_booking`'s input (the `calendar:cancel` operation's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CancelInput {
    /// The booking's uid.
    pub id: String,
    /// Why, for the attendee.
    pub reason: Option<String>,
}

/// `reschedule_booking`'s input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RescheduleInput {
    /// The booking's uid.
    pub id: String,
    /// The new start (RFC 3339 with its offset).
    pub start: String,
    /// Why.
    pub reason: Option<String>,
    /// The email of who reschedules (the organizer's confirms it at once).
    pub rescheduled_by: Option<String>,
}

fn uid(id: &str) -> Result<String, Error> {
    let id = id.trim();
    if api::valid_uid(id) {
        Ok(id.to_string())
    } else {
        Err(Error::permanent(format!(
            "`id` `{id}` is not a Cal.com booking uid"
        )))
    }
}

fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Whether a refusal to cancel says the booking is cancelled already.
pub fn already_cancelled(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (400..500).contains(&status) && m.contains("already") && m.contains("cancel")
}

/// Runs `cancel_booking`.
///
/// # Errors
/// Permanent for a bad uid, a booking Cal.com does not have, or its refusal; retryable as any
/// call.
pub fn cancel(input: &str, key: &str) -> Result<String, Error> {
    let input: CancelInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{CANCEL_BOOKING}` input: {e}")))?;
    let uid = uid(&input.id)?;
    let marker = format!("cancelled:{}", key_digest(key));
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let body = match given(&input.reason) {
        Some(r) => json!({ "cancellationReason": r }),
        None => json!({}),
    };
    let resp = api::call(
        "POST",
        &format!("/bookings/{uid}/cancel"),
        Some(BOOKINGS_VERSION),
    )
    .json(&body)?
    .send()?;
    let said = api::message(&resp.body);
    let mut seen = if already_cancelled(resp.status, &said) {
        Observation::new(&uid, None, Some(Status::Cancelled))
    } else if resp.status == 404 {
        return Err(Error::permanent(format!("Cal.com has no booking `{uid}`")));
    } else {
        let answer: Value = api::check(resp)?.json()?;
        api::data_booking(&answer)
            .and_then(api::observation)
            .filter(|o| o.uid == uid)
            .unwrap_or_else(|| {
                Observation::new(&uid, Some(time::now_ms()), Some(Status::Cancelled))
            })
    };
    if seen.status.is_none() || seen.status == Some(Status::Accepted) {
        seen.status = Some(Status::Cancelled);
    }
    if seen.details.cancellation_reason.is_none() {
        seen.details.cancellation_reason = given(&input.reason).map(str::to_string);
    }
    store::apply(&seen)?;
    let out = json!({ "id": uid }).to_string();
    kv::set_marker(&marker, out.as_bytes());
    Ok(out)
}

/// The answer of a reschedule: the new booking, pointing back at the old one.
fn answer(new: &Observation, old: &str) -> Value {
    let mut out = output(new);
    out["rescheduled_from"] = json!(old);
    out
}

/// Stores both ends of a reschedule: the new booking (with its link back) and the old one
/// (with what Cal.com said of it, if read), rescheduled to it.
fn apply_both(
    mut new: Observation,
    old: &str,
    old_seen: Option<&Observation>,
    key: &str,
) -> Result<Observation, Error> {
    if new.details.rescheduled_from.is_none() {
        new.details.rescheduled_from = Some(old.to_string());
    }
    if new.status.is_none() {
        new.status = Some(Status::Accepted);
    }
    new.details.idempotency_key = Some(key.to_string());
    store::apply(&new)?;
    let mut moved = Observation::new(old, new.at_ms, Some(Status::Rescheduled));
    if let Some(seen) = old_seen {
        moved.details = seen.details.clone();
        moved.at_ms = seen.at_ms.max(new.at_ms);
    }
    moved.details.rescheduled_to = Some(new.uid.clone());
    store::apply(&moved)?;
    Ok(new)
}

/// Runs `reschedule_booking`.
///
/// # Errors
/// Permanent for a bad input, a booking that does not exist or was cancelled, a taken slot
/// (with the next free ones) or Cal.com's refusal; retryable as any call.
pub fn reschedule(input: &str, key: &str) -> Result<String, Error> {
    let input: RescheduleInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{RESCHEDULE_BOOKING}` input: {e}")))?;
    let old = uid(&input.id)?;
    let start_ms = parse_ms(&input.start).ok_or_else(|| {
        Error::permanent(format!(
            "`start` must be an RFC 3339 time with its offset, not `{}`",
            input.start
        ))
    })?;
    let marker = format!("rescheduled:{}", key_digest(key));
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let Some(current) = api::get_booking(&old)? else {
        return Err(Error::permanent(format!("Cal.com has no booking `{old}`")));
    };
    let current_seen = api::observation(&current);
    if let Some(to) = current.get("rescheduledToUid").and_then(Value::as_str) {
        // Already moved (an earlier attempt whose answer was lost): answer where it went.
        let replaced = api::get_booking(to)?
            .as_ref()
            .and_then(api::observation)
            .ok_or_else(|| {
                Error::permanent(format!(
                    "`{old}` was rescheduled to `{to}`, which Cal.com does not have"
                ))
            })?;
        let new = apply_both(replaced, &old, current_seen.as_ref(), key)?;
        let out = answer(&new, &old).to_string();
        kv::set_marker(&marker, out.as_bytes());
        return Ok(out);
    }
    if let Some(seen) = &current_seen
        && matches!(seen.status, Some(Status::Cancelled | Status::Rejected))
    {
        store::apply(seen)?;
        return Err(Error::permanent(format!(
            "booking `{old}` is {}: it cannot be rescheduled",
            seen.status.map_or("closed", Status::as_str)
        )));
    }
    let mut body = json!({ "start": format_ms(start_ms) });
    if let Some(r) = given(&input.reason) {
        body["reschedulingReason"] = json!(r);
    }
    if let Some(by) = given(&input.rescheduled_by) {
        body["rescheduledBy"] = json!(by);
    }
    let resp = api::call(
        "POST",
        &format!("/bookings/{old}/reschedule"),
        Some(BOOKINGS_VERSION),
    )
    .json(&body)?
    .send()?;
    let said = api::message(&resp.body);
    if api::slot_gone(resp.status, &said) {
        let event_type = current_seen
            .as_ref()
            .and_then(|s| s.details.event_type.as_ref())
            .and_then(|t| t.id)
            .map(EventType::Id);
        let tz = event_type::time_zone(None)?;
        let next = event_type.and_then(|t| next_slots(&t, start_ms, &tz, None));
        return Err(Error::declined(slot_gone_message(
            &format_ms(start_ms),
            &said,
            next.as_deref(),
        )));
    }
    let answered: Value = api::check(resp)?.json()?;
    let new = api::data_booking(&answered)
        .and_then(api::observation)
        .ok_or_else(|| Error::permanent("Cal.com rescheduled but answered no booking"))?;
    let new = apply_both(new, &old, current_seen.as_ref(), key)?;
    let out = answer(&new, &old).to_string();
    kv::set_marker(&marker, out.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests;
