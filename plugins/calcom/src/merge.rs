//! The merge rules: what one observation of a booking (a webhook, an API answer, a reconcile
//! page) does to its record, and which hub events that makes due. Pure and the only place the
//! rules live, so webhooks, actions and the reconcile job agree.
//!
//! - **Status moves forward only** (`pending < accepted < cancelled | rejected < rescheduled`):
//!   Cal.com never reopens a booking, so a late `BOOKING_CREATED` after `BOOKING_CANCELLED`
//!   never brings a cancelled booking back. A cancelled booking that has a `rescheduled_to` is
//!   `rescheduled` (that is how the API shows a rescheduled booking).
//! - **Newest information wins** for every other field: an observation at least as new as the
//!   newest one merged (`updated_ms`, by Cal.com's own clock: the webhook's `createdAt`, the
//!   API's `updatedAt`) overwrites what it carries; an older one only fills what is unknown.
//!   Attendees are matched by email (else phone, else name) and merged field by field.
//! - **The reschedule chain** (`rescheduled_from`, `rescheduled_to`) is written once: a link
//!   never changes.
//! - **Events, once**: a status event is due when the merge changed the status, and only if
//!   this booking never published it (`published`): `booking.requested` (pending),
//!   `booking.created` (accepted), `booking.rescheduled` (accepted, for a booking that replaced
//!   another), `booking.cancelled`, `booking.rejected`; none for the replaced booking itself.
//!   `booking.no_show` when an attendee becomes marked absent; `meeting.started` and
//!   `meeting.ended` the first time each is seen.

use serde::{Deserialize, Serialize};

use crate::booking::{BookingRecord, Details, Person, Status};

/// A booking was made.
pub const CREATED: &str = "booking.created";
/// A booking replaced another one (the payload's `rescheduled_from`).
pub const RESCHEDULED: &str = "booking.rescheduled";
/// A booking was cancelled.
pub const CANCELLED: &str = "booking.cancelled";
/// A booking waits for the organizer's confirmation.
pub const REQUESTED: &str = "booking.requested";
/// The organizer declined a booking.
pub const REJECTED: &str = "booking.rejected";
/// An attendee was marked absent.
pub const NO_SHOW: &str = "booking.no_show";
/// The Cal.com Video meeting started.
pub const MEETING_STARTED: &str = "meeting.started";
/// The Cal.com Video meeting ended.
pub const MEETING_ENDED: &str = "meeting.ended";

/// Every event the connector publishes.
pub const EVENTS: [&str; 8] = [
    CREATED,
    RESCHEDULED,
    CANCELLED,
    REQUESTED,
    REJECTED,
    NO_SHOW,
    MEETING_STARTED,
    MEETING_ENDED,
];

/// A Cal.com Video meeting moment, with its time (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Meeting {
    /// `MEETING_STARTED`.
    Started(String),
    /// `MEETING_ENDED`.
    Ended(String),
}

/// What one source said about one booking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The booking's uid.
    pub uid: String,
    /// When Cal.com said it (epoch ms), if known.
    pub at_ms: Option<i64>,
    /// The status it implies, if any.
    pub status: Option<Status>,
    /// The fields it carries.
    pub details: Details,
    /// Attendees whose absence it marks or unmarks (`no_show` set), by email.
    pub no_show: Vec<Person>,
    /// A meeting moment.
    pub meeting: Option<Meeting>,
}

impl Observation {
    /// An observation of `uid` at `at_ms` with `status`, carrying nothing else yet.
    pub fn new(uid: &str, at_ms: Option<i64>, status: Option<Status>) -> Observation {
        Observation {
            uid: uid.into(),
            at_ms,
            status,
            ..Default::default()
        }
    }
}

/// The outcome of a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The record to store.
    pub record: BookingRecord,
    /// The events now due, in order (already noted in `record.published` for status events).
    pub publish: Vec<&'static str>,
    /// Whether the record differs from the stored one (else there is nothing to write).
    pub changed: bool,
}

fn is_newer(at: Option<i64>, known: Option<i64>) -> bool {
    match (at, known) {
        (_, None) => true,
        (Some(a), Some(k)) => a >= k,
        (None, Some(_)) => false,
    }
}

fn take<T: Clone>(slot: &mut Option<T>, new: &Option<T>, newer: bool) {
    if new.is_some() && (newer || slot.is_none()) {
        slot.clone_from(new);
    }
}

fn fill_person(p: &mut Person, from: &Person) {
    for (slot, value) in [
        (&mut p.name, &from.name),
        (&mut p.email, &from.email),
        (&mut p.phone, &from.phone),
        (&mut p.time_zone, &from.time_zone),
        (&mut p.username, &from.username),
    ] {
        take(slot, value, false);
    }
    take(&mut p.no_show, &from.no_show, false);
}

fn merge_attendees(known: &mut Vec<Person>, seen: &[Person], newer: bool) {
    if seen.is_empty() {
        return;
    }
    if known.is_empty() {
        *known = seen.to_vec();
    } else if newer {
        let merged = seen
            .iter()
            .map(|a| {
                let mut m = a.clone();
                if let Some(old) = known.iter().find(|o| o.key() == a.key()) {
                    fill_person(&mut m, old);
                }
                m
            })
            .collect();
        *known = merged;
    } else {
        for a in known.iter_mut() {
            if let Some(o) = seen.iter().find(|o| o.key() == a.key()) {
                fill_person(a, o);
            }
        }
    }
}

fn merge_details(known: &mut Details, seen: &Details, newer: bool) {
    take(&mut known.id, &seen.id, newer);
    for (slot, value) in [
        (&mut known.title, &seen.title),
        (&mut known.start, &seen.start),
        (&mut known.end, &seen.end),
        (&mut known.location, &seen.location),
        (&mut known.meeting_url, &seen.meeting_url),
        (&mut known.cancellation_reason, &seen.cancellation_reason),
        (&mut known.rejection_reason, &seen.rejection_reason),
    ] {
        take(slot, value, newer);
    }
    take(&mut known.event_type, &seen.event_type, newer);
    take(&mut known.organizer, &seen.organizer, newer);
    merge_attendees(&mut known.attendees, &seen.attendees, newer);
    // Written once: a link in the chain, and the key the hub booked it under.
    for (slot, value) in [
        (&mut known.rescheduled_from, &seen.rescheduled_from),
        (&mut known.rescheduled_to, &seen.rescheduled_to),
        (&mut known.idempotency_key, &seen.idempotency_key),
    ] {
        take(slot, value, false);
    }
}

fn apply_no_show(known: &mut Vec<Person>, marks: &[Person], newer: bool) {
    for m in marks {
        match known.iter_mut().find(|a| a.key() == m.key()) {
            Some(a) if newer || a.no_show.is_none() => a.no_show = m.no_show,
            Some(_) => {}
            None => known.push(m.clone()),
        }
    }
}

fn absent(r: &BookingRecord) -> Vec<String> {
    r.details
        .attendees
        .iter()
        .filter(|a| a.no_show == Some(true))
        .map(Person::key)
        .collect()
}

/// The status a merge moves to: forward only, and `rescheduled` for a cancelled booking that
/// names the booking that replaced it.
fn next_status(known: Option<Status>, seen: Option<Status>, details: &Details) -> Option<Status> {
    let seen = match seen {
        Some(Status::Cancelled) if details.rescheduled_to.is_some() => Some(Status::Rescheduled),
        s => s,
    };
    let mut next = match (known, seen) {
        (Some(k), Some(s)) if s.rank() > k.rank() => Some(s),
        (Some(k), _) => Some(k),
        (None, s) => s,
    };
    if next == Some(Status::Cancelled) && details.rescheduled_to.is_some() {
        next = Some(Status::Rescheduled);
    }
    next
}

/// The status event a booking that has just reached `status` announces.
fn status_event(status: Status, details: &Details) -> Option<&'static str> {
    match status {
        Status::Pending => Some(REQUESTED),
        Status::Accepted if details.rescheduled_from.is_some() => Some(RESCHEDULED),
        Status::Accepted => Some(CREATED),
        Status::Cancelled => Some(CANCELLED),
        Status::Rejected => Some(REJECTED),
        Status::Rescheduled => None,
    }
}

/// Merges `seen` into the stored record (none yet: a new one), by the rules above.
pub fn merge(stored: Option<BookingRecord>, seen: &Observation) -> Merged {
    let mut r = stored
        .clone()
        .unwrap_or_else(|| BookingRecord::new(&seen.uid));
    if r.uid.is_empty() {
        r.uid.clone_from(&seen.uid);
    }
    let newer = is_newer(seen.at_ms, r.updated_ms);
    let (status_before, absent_before) = (r.status, absent(&r));
    merge_details(&mut r.details, &seen.details, newer);
    apply_no_show(&mut r.details.attendees, &seen.no_show, newer);
    if seen.at_ms.is_some() && newer {
        r.updated_ms = seen.at_ms;
    }
    r.status = next_status(r.status, seen.status, &r.details);
    let mut publish = Vec::new();
    if r.status != status_before
        && let Some(event) = r.status.and_then(|s| status_event(s, &r.details))
        && !r.published.iter().any(|p| p == event)
    {
        r.published.push(event.into());
        publish.push(event);
    }
    if absent(&r).iter().any(|a| !absent_before.contains(a)) {
        publish.push(NO_SHOW);
    }
    match &seen.meeting {
        Some(Meeting::Started(at)) if r.meeting_started_at.is_none() => {
            r.meeting_started_at = Some(at.clone());
            publish.push(MEETING_STARTED);
        }
        Some(Meeting::Ended(at)) if r.meeting_ended_at.is_none() => {
            r.meeting_ended_at = Some(at.clone());
            publish.push(MEETING_ENDED);
        }
        _ => {}
    }
    let changed = stored.as_ref() != Some(&r);
    Merged {
        record: r,
        publish,
        changed,
    }
}

#[cfg(test)]
mod tests;
