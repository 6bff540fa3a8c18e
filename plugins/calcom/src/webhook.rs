//! Handling a stored, verified Cal.com webhook (`{"triggerEvent", "createdAt", "payload"}`,
//! version `2021-10-20`): each booking trigger becomes observations merged into `booking`
//! records ([`crate::store`]); every other trigger (`PING`, payments, forms, recordings, ...)
//! is stored by the hub and ignored here with a reason.
//!
//! - `BOOKING_CREATED`, `BOOKING_REQUESTED`, `BOOKING_CANCELLED`, `BOOKING_REJECTED`: the
//!   booking at `payload.uid`, with the status the trigger implies.
//! - `BOOKING_RESCHEDULED`: `payload.uid` is the **new** booking and `rescheduleUid` the old
//!   one: the new record (accepted) gets `rescheduled_from`, the old one becomes `rescheduled`
//!   with `rescheduled_to` and its own times (`rescheduleStartTime`, `rescheduleEndTime`).
//! - `BOOKING_NO_SHOW_UPDATED`: `{bookingUid, attendees: [{email, noShow}]}` marks attendees.
//! - `MEETING_STARTED`, `MEETING_ENDED`: the booking's Cal.com Video meeting.

use plugin_sdk::{Delivery, Error, Outcome};
use serde_json::Value;

use crate::booking::{Details, EventTypeRef, Person, Status};
use crate::merge::{Meeting, Observation};
use crate::{api, store, time};

/// A trigger the connector acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `BOOKING_CREATED`.
    Created,
    /// `BOOKING_REQUESTED`.
    Requested,
    /// `BOOKING_CANCELLED`.
    Cancelled,
    /// `BOOKING_REJECTED`.
    Rejected,
    /// `BOOKING_RESCHEDULED`.
    Rescheduled,
    /// `BOOKING_NO_SHOW_UPDATED`.
    NoShow,
    /// `MEETING_STARTED`.
    MeetingStarted,
    /// `MEETING_ENDED`.
    MeetingEnded,
}

/// The triggers the connector handles, as Cal.com names them (what `register_webhooks`
/// subscribes).
pub const TRIGGERS: [(&str, Trigger); 8] = [
    ("BOOKING_CREATED", Trigger::Created),
    ("BOOKING_RESCHEDULED", Trigger::Rescheduled),
    ("BOOKING_CANCELLED", Trigger::Cancelled),
    ("BOOKING_REQUESTED", Trigger::Requested),
    ("BOOKING_REJECTED", Trigger::Rejected),
    ("BOOKING_NO_SHOW_UPDATED", Trigger::NoShow),
    ("MEETING_STARTED", Trigger::MeetingStarted),
    ("MEETING_ENDED", Trigger::MeetingEnded),
];

/// The trigger `name` is, if the connector handles it.
pub fn classify(name: &str) -> Option<Trigger> {
    TRIGGERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, t)| *t)
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
        no_show: v.get("noShow").and_then(Value::as_bool),
    }
}

/// What a booking payload tells about its booking.
pub fn details(p: &Value) -> Details {
    let mut attendees: Vec<Person> = p
        .get("attendees")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(person).collect())
        .unwrap_or_default();
    // The booker's number, when the booking form asked for it rather than the attendee.
    let answered = p
        .pointer("/responses/attendeePhoneNumber/value")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| text(p, "smsReminderNumber"));
    if let Some(first) = attendees.first_mut()
        && first.phone.is_none()
    {
        first.phone = answered;
    }
    let event_type = EventTypeRef {
        id: p.get("eventTypeId").and_then(Value::as_i64),
        slug: text(p, "type"),
    };
    Details {
        id: p.get("bookingId").and_then(Value::as_i64),
        title: text(p, "title"),
        start: text(p, "startTime").and_then(|t| time::utc(&t)),
        end: text(p, "endTime").and_then(|t| time::utc(&t)),
        event_type: (event_type != EventTypeRef::default()).then_some(event_type),
        attendees,
        organizer: p.get("organizer").filter(|o| o.is_object()).map(person),
        location: text(p, "location"),
        meeting_url: p
            .pointer("/videoCallData/url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| api::meeting_url(p)),
        cancellation_reason: text(p, "cancellationReason"),
        rejection_reason: text(p, "rejectionReason"),
        ..Default::default()
    }
}

/// The observations one webhook makes: one per booking it tells about.
///
/// # Errors
/// Bad request for a booking trigger without its booking's uid.
pub fn observations(
    trigger: Trigger,
    created_at: Option<&str>,
    p: &Value,
) -> Result<Vec<Observation>, Error> {
    let at = created_at.and_then(time::parse_ms);
    let uid = text(p, "uid")
        .or_else(|| text(p, "bookingUid"))
        .ok_or_else(|| Error::bad_request(format!("{trigger:?}: the payload has no `uid`")))?;
    let status = match trigger {
        Trigger::Created | Trigger::Rescheduled => Some(Status::Accepted),
        Trigger::Requested => Some(Status::Pending),
        Trigger::Cancelled => Some(Status::Cancelled),
        Trigger::Rejected => Some(Status::Rejected),
        Trigger::NoShow | Trigger::MeetingStarted | Trigger::MeetingEnded => None,
    };
    let mut seen = Observation::new(&uid, at, status);
    match trigger {
        Trigger::NoShow => {
            seen.no_show = p
                .get("attendees")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(person)
                        .filter(|m| m.no_show.is_some())
                        .collect()
                })
                .unwrap_or_default();
            return Ok(vec![seen]);
        }
        Trigger::MeetingStarted | Trigger::MeetingEnded => {
            let when = created_at
                .and_then(time::utc)
                .unwrap_or_else(|| time::format_ms(time::now_ms()));
            seen.meeting = Some(if trigger == Trigger::MeetingStarted {
                Meeting::Started(when)
            } else {
                Meeting::Ended(when)
            });
        }
        _ => {}
    }
    seen.details = details(p);
    let mut out = Vec::new();
    if trigger == Trigger::Rescheduled
        && let Some(old) = text(p, "rescheduleUid").filter(|o| *o != uid)
    {
        seen.details.rescheduled_from = Some(old.clone());
        let mut moved = Observation::new(&old, at, Some(Status::Rescheduled));
        moved.details = Details {
            id: p.get("rescheduleId").and_then(Value::as_i64),
            title: seen.details.title.clone(),
            start: text(p, "rescheduleStartTime").and_then(|t| time::utc(&t)),
            end: text(p, "rescheduleEndTime").and_then(|t| time::utc(&t)),
            event_type: seen.details.event_type.clone(),
            attendees: seen.details.attendees.clone(),
            organizer: seen.details.organizer.clone(),
            rescheduled_to: Some(uid.clone()),
            ..Default::default()
        };
        out.push(moved);
    }
    out.insert(0, seen);
    Ok(out)
}

/// Handles one delivery.
///
/// # Errors
/// Bad request for a body that is not Cal.com's JSON shape (a custom `payloadTemplate`, say)
/// or a booking trigger without a uid; permanent for an unreadable stored record.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let envelope: Value = delivery.json()?;
    let trigger = text(&envelope, "triggerEvent")
        .ok_or_else(|| Error::bad_request("the body has no `triggerEvent`"))?;
    let Some(kind) = classify(&trigger) else {
        return Ok(Outcome::ignored(format!(
            "`{trigger}` is not a trigger this connector handles"
        )));
    };
    let payload = envelope.get("payload").cloned().unwrap_or(Value::Null);
    let created_at = text(&envelope, "createdAt");
    for seen in observations(kind, created_at.as_deref(), &payload)? {
        store::apply(&seen)?;
    }
    Ok(Outcome::handled())
}

/// The route's example: a `BOOKING_CREATED` as Cal.com sends it, `{{id}}` making each test
/// booking new.
pub const EXAMPLE: &str = r#"{"triggerEvent":"BOOKING_CREATED","createdAt":"2026-03-02T14:00:00.000Z","payload":{"type":"check-up","title":"Check-up between Dr. Ada Lee and Jane Roe","description":"","startTime":"2026-03-09T14:00:00Z","endTime":"2026-03-09T14:30:00Z","organizer":{"id":7,"name":"Dr. Ada Lee","email":"ada@abc-health.example","username":"ada","timeZone":"America/New_York","language":{"locale":"en"},"utcOffset":-240},"attendees":[{"name":"Jane Roe","email":"jane@example.com","timeZone":"America/New_York","phoneNumber":"+14155550100","language":{"locale":"en"},"utcOffset":-240}],"location":"integrations:daily","uid":"bk_{{id}}","bookingId":4242,"eventTypeId":1001,"status":"ACCEPTED","metadata":{"videoCallUrl":"https://app.cal.com/video/bk_{{id}}"}}}"#;

#[cfg(test)]
mod tests;
