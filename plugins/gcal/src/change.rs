//! Changing an event: `update_event` (`PATCH`: new times, title, notes, place, an attendee)
//! and `cancel_event` (`calendar:cancel`, `DELETE`), each at most once per idempotency key (a
//! kv marker), each stored at once.
//!
//! Both are safe to retry: a `PATCH` sent twice leaves the event as once, and an event Google
//! has deleted already (410, or 404 on a calendar that exists) is what a cancel wanted. New
//! times are checked against the calendar's free/busy, the event's own current time aside.

use plugin_sdk::{Error, kv};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api;
use crate::book::{OFFERED, date_time, given, keep, key_digest, taken_message};
use crate::config;
use crate::event::EventRecord;
use crate::slots;
use crate::store::Store;
use crate::time::parse_ms;

/// The update action's name.
pub const UPDATE_EVENT: &str = "update_event";
/// The cancel action's name.
pub const CANCEL_EVENT: &str = "cancel_event";

/// `update_event`'s input: the event, and what changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UpdateInput {
    /// The event's id.
    pub id: String,
    /// The new start (RFC 3339 with its offset).
    pub start: Option<String>,
    /// The new end.
    pub end: Option<String>,
    /// The new length (with or without a new start).
    pub duration_minutes: Option<Value>,
    /// The zone the new times are kept in (default: the event's).
    pub time_zone: Option<String>,
    /// A new title.
    pub title: Option<String>,
    /// A new description.
    pub notes: Option<String>,
    /// A new place.
    pub location: Option<String>,
    /// An attendee to add (their email).
    pub attendee_email: Option<String>,
    /// Their name.
    pub attendee_name: Option<String>,
    /// Whom Google emails.
    pub send_updates: Option<String>,
    /// The calendar (default: config `calendar_id`).
    pub calendar_id: Option<String>,
}

/// `cancel_event`'s input (the `calendar:cancel` operation's, and Google's extras).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CancelInput {
    /// The event's id, as `create_event` answered it.
    pub id: String,
    /// Why (kept in the record; Google's cancellation email has no place for it).
    pub reason: Option<String>,
    /// Whom Google emails.
    pub send_updates: Option<String>,
    /// The calendar (default: config `calendar_id`).
    pub calendar_id: Option<String>,
}

fn event_id(id: &str) -> Result<String, Error> {
    let id = id.trim();
    if id.is_empty() || id.len() > 1024 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::permanent(format!(
            "`id` `{}` is not a Google Calendar event id",
            id.chars().take(80).collect::<String>()
        )));
    }
    Ok(id.to_string())
}

/// The busy intervals without one interval (the event's own time).
pub fn without(busy: &[(i64, i64)], own: (i64, i64)) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(b0, b1) in busy {
        if own.1 <= b0 || b1 <= own.0 {
            out.push((b0, b1));
            continue;
        }
        if b0 < own.0 {
            out.push((b0, own.0));
        }
        if own.1 < b1 {
            out.push((own.1, b1));
        }
    }
    out
}

fn instant(field: &str, s: Option<&str>) -> Result<Option<i64>, Error> {
    s.map(|t| {
        parse_ms(t).ok_or_else(|| {
            Error::permanent(format!(
                "`{field}` must be an RFC 3339 time with its offset, not `{t}`"
            ))
        })
    })
    .transpose()
}

/// Runs `update_event`.
///
/// # Errors
/// Permanent for a bad input, an event Google does not have or that is cancelled; declined
/// when the new time is busy (with the next free ones); Google's refusals as
/// [`api::failure`].
pub fn update(input: &str, key: &str) -> Result<String, Error> {
    let input: UpdateInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{UPDATE_EVENT}` input: {e}")))?;
    let id = event_id(&input.id)?;
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    let marker = format!("updated:{}", key_digest(key));
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let current = api::get_event(&calendar, &id)?.ok_or_else(|| {
        Error::permanent(format!(
            "Google Calendar has no event `{id}` on `{calendar}`"
        ))
    })?;
    let held = EventRecord::from_google(&current, &calendar, None)
        .ok_or_else(|| Error::permanent("Google answered an event without an id"))?;
    if held.is_cancelled() {
        return Err(Error::permanent(format!(
            "event `{id}` is cancelled: it cannot be changed"
        )));
    }
    let mut body = Map::new();
    let new_start = instant("start", given(&input.start))?;
    let new_end = instant("end", given(&input.end))?;
    let length = config::minutes("duration_minutes", input.duration_minutes.as_ref())?;
    if new_start.is_some() || new_end.is_some() || length.is_some() {
        let (cur_start, cur_end) = match (held.start.as_deref().and_then(parse_ms), held.end_ms()) {
            (Some(s), Some(e)) if !held.all_day => (s, e),
            _ => {
                return Err(Error::permanent(format!(
                    "event `{id}` is an all-day event or has no times: only its title, notes and place can be changed here"
                )));
            }
        };
        let start = new_start.unwrap_or(cur_start);
        let end = match (length, new_end) {
            (Some(m), _) => start + m * 60_000,
            (None, Some(e)) => e,
            (None, None) => start + (cur_end - cur_start),
        };
        if end <= start {
            return Err(Error::permanent("the new end must be after the new start"));
        }
        let zone_name = given(&input.time_zone)
            .map(str::to_string)
            .or(held.time_zone.clone());
        let zone = config::zone(zone_name.as_deref(), &calendar)?;
        let busy = without(
            &slots::query(&calendar, start, end, &zone)?,
            (cur_start, cur_end),
        );
        if busy.iter().any(|(b0, b1)| *b0 < end && start < *b1) {
            let next = slots::next_free(&calendar, &zone, start, (end - start) / 60_000, OFFERED);
            return Err(Error::declined(taken_message(
                &zone.format(start),
                next.as_deref(),
            )));
        }
        body.insert("start".into(), date_time(&zone, start));
        body.insert("end".into(), date_time(&zone, end));
    }
    if let Some(t) = given(&input.title) {
        body.insert("summary".into(), json!(t));
    }
    if let Some(n) = given(&input.notes) {
        body.insert("description".into(), json!(n));
    }
    if let Some(l) = given(&input.location) {
        body.insert("location".into(), json!(l));
    }
    if let Some(email) = given(&input.attendee_email) {
        let mut attendees = current
            .get("attendees")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let known = attendees.iter().any(|a| {
            a.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        if !known {
            let mut a = json!({ "email": email });
            if let Some(n) = given(&input.attendee_name) {
                a["displayName"] = json!(n);
            }
            attendees.push(a);
            body.insert("attendees".into(), Value::Array(attendees));
        }
    }
    if body.is_empty() {
        return Err(Error::permanent(
            "nothing to change: give `start`, `end`, `duration_minutes`, `title`, `notes`, `location` or `attendee_email`",
        ));
    }
    let send_updates = config::send_updates(input.send_updates.as_deref())?;
    let path = format!(
        "{}{}",
        api::event_path(&calendar, &id),
        api::query(&[("sendUpdates", send_updates)])
    );
    let resp = api::call("PATCH", &path)
        .json(&Value::Object(body))?
        .send()?;
    let resp = api::check(resp, Some(&calendar))?;
    keep(&api::object(&resp, "an event patch")?, &calendar, &marker)
}

/// Runs `cancel_event`.
///
/// # Errors
/// Permanent for a bad id or a calendar the account cannot see; Google's refusals as
/// [`api::failure`].
pub fn cancel(input: &str, key: &str) -> Result<String, Error> {
    let input: CancelInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{CANCEL_EVENT}` input: {e}")))?;
    let id = event_id(&input.id)?;
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    let marker = format!("cancelled:{}", key_digest(key));
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let send_updates = config::send_updates(input.send_updates.as_deref())?;
    let path = format!(
        "{}{}",
        api::event_path(&calendar, &id),
        api::query(&[("sendUpdates", send_updates)])
    );
    let resp = api::call("DELETE", &path).send()?;
    match resp.status {
        200..=299 | 410 => {}
        404 => {
            // The event is gone, unless the calendar is.
            let probe = format!("{}/events?maxResults=1", api::calendar_path(&calendar));
            api::check(api::call("GET", &probe).send()?, Some(&calendar))?;
        }
        _ => {
            api::check(resp, Some(&calendar))?;
        }
    }
    let mut store = Store::new(&calendar, None);
    store.cancel(&id, given(&input.reason))?;
    store.flush();
    let out = json!({ "id": id, "status": "cancelled" }).to_string();
    kv::set_marker(&marker, out.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_own_time_is_not_busy() {
        let busy = vec![(0, 100), (200, 300)];
        assert_eq!(without(&busy, (50, 250)), vec![(0, 50), (250, 300)]);
        assert_eq!(without(&busy, (100, 200)), busy);
        assert_eq!(without(&[(0, 300)], (100, 200)), vec![(0, 100), (200, 300)]);
        assert!(event_id("").is_err() && event_id("a/b").is_err());
        assert_eq!(
            event_id(" abc_20260309T140000Z ").unwrap(),
            "abc_20260309T140000Z"
        );
    }
}
