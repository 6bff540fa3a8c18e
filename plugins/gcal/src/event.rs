//! The `event` record (one per Google event, keyed `<calendar id>/<event id>`), read from
//! Google's `Event` resource, with the lookups it is found by and the payload of the
//! `calendar.event.*` events. Pure.
//!
//! Every time carries its zone: a timed event's `start` and `end` are RFC 3339 with the offset
//! Google wrote (or, for a time Google wrote without one beside a `timeZone`, the offset that
//! zone had then); an all-day event's are its dates (`2026-03-09`, `all_day`), its end
//! exclusive as Google's. The description is free text and is not read; a phone number appears
//! only where the connector put it when it made the event (`extendedProperties.private`).

use plugin_sdk::lookup;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::time::{parse_date, parse_local, parse_ms};
use crate::zone::Zone;

/// The record kind.
pub const EVENT: &str = "event";
/// `calendar.event.changed`: an event was created or changed.
pub const CHANGED: &str = "calendar.event.changed";
/// `calendar.event.cancelled`: an event was cancelled (deleted).
pub const CANCELLED: &str = "calendar.event.cancelled";
/// The private extended property holding the phone of an attendee the connector booked.
pub const PHONE_PROPERTY: &str = "hub_attendee_phone";
/// The private extended property holding the digest of the key that made the event.
pub const KEY_PROPERTY: &str = "hub_key";
/// The most attendees a record keeps (Google allows thousands on one event).
pub const MAX_ATTENDEES: usize = 100;
/// The most lookups a record carries (the host's limit).
pub const MAX_LOOKUPS: usize = 32;

/// Where an event stands, as Google says.
pub mod status {
    /// Confirmed (Google's default).
    pub const CONFIRMED: &str = "confirmed";
    /// Tentatively confirmed.
    pub const TENTATIVE: &str = "tentative";
    /// Cancelled (deleted).
    pub const CANCELLED: &str = "cancelled";
}

/// An attendee.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attendee {
    /// Their email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their name (`displayName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `needsAction`, `declined`, `tentative` or `accepted` (`responseStatus`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// The calendar's own account (`self`): not a lookup.
    #[serde(rename = "self", skip_serializing_if = "std::ops::Not::not")]
    pub is_self: bool,
    /// A room or other resource: not a lookup.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resource: bool,
}

/// The organizer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Organizer {
    /// Their email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The `event` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventRecord {
    /// Google's event id.
    pub id: String,
    /// The calendar it is on.
    pub calendar_id: String,
    /// `confirmed`, `tentative` or `cancelled`.
    pub status: String,
    /// Its title.
    pub summary: Option<String>,
    /// When it starts: RFC 3339 with its offset, or a date for an all-day event.
    pub start: Option<String>,
    /// When it ends (exclusive), as `start`.
    pub end: Option<String>,
    /// Whether `start` and `end` are dates.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all_day: bool,
    /// The zone it is written in (the event's, else the calendar's).
    pub time_zone: Option<String>,
    /// Its attendees (at most [`MAX_ATTENDEES`]).
    pub attendees: Vec<Attendee>,
    /// Its organizer.
    pub organizer: Option<Organizer>,
    /// Where.
    pub location: Option<String>,
    /// The Google Meet link (`hangoutLink`, or the conference's video entry point).
    pub meet_link: Option<String>,
    /// The event in Google Calendar's web UI.
    pub html_link: Option<String>,
    /// Google's last change (RFC 3339).
    pub updated: Option<String>,
    /// Google's version tag.
    pub etag: Option<String>,
    /// For an occurrence of a recurring event: the recurring event's id.
    pub recurring_event_id: Option<String>,
    /// The iCalendar UID (shared by all occurrences).
    pub i_cal_uid: Option<String>,
    /// The attendee's phone, when the connector booked the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Why it was cancelled, when the connector cancelled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// An `EventDateTime` as the record writes it: `(text, all day, zone)`.
fn when(v: Option<&Value>) -> (Option<String>, bool, Option<String>) {
    let Some(v) = v else {
        return (None, false, None);
    };
    let zone = text(v, "timeZone");
    if let Some(dt) = text(v, "dateTime") {
        if parse_ms(&dt).is_some() {
            return (Some(dt), false, zone);
        }
        // A time without an offset is read in its `timeZone`; with no zone known it is dropped
        // rather than guessed.
        let written = parse_local(&dt).and_then(|(days, ms)| {
            let z = Zone::named(zone.as_deref()?)?;
            Some(z.format(z.instant(days, ms)))
        });
        return (written, false, zone);
    }
    match text(v, "date").filter(|d| parse_date(d).is_some()) {
        Some(d) => (Some(d), true, zone),
        None => (None, false, zone),
    }
}

/// The Google Meet link: `hangoutLink`, else the conference's video entry point.
pub fn meet_link(v: &Value) -> Option<String> {
    text(v, "hangoutLink").or_else(|| {
        v.pointer("/conferenceData/entryPoints")
            .and_then(Value::as_array)?
            .iter()
            .find(|e| e.get("entryPointType").and_then(Value::as_str) == Some("video"))
            .and_then(|e| text(e, "uri"))
    })
}

impl EventRecord {
    /// The record of a Google `Event` on `calendar`, whose zone (`Events.timeZone`) is
    /// `calendar_zone` when known. `None` without an id.
    pub fn from_google(v: &Value, calendar: &str, calendar_zone: Option<&str>) -> Option<Self> {
        let id = text(v, "id")?;
        let status = match text(v, "status").as_deref() {
            Some(status::CANCELLED) => status::CANCELLED,
            Some(status::TENTATIVE) => status::TENTATIVE,
            _ => status::CONFIRMED,
        };
        let (start, all_day, start_zone) = when(v.get("start"));
        let (end, _, end_zone) = when(v.get("end"));
        let attendees = v
            .get("attendees")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(MAX_ATTENDEES)
                    .map(|a| Attendee {
                        email: text(a, "email"),
                        name: text(a, "displayName"),
                        response: text(a, "responseStatus"),
                        is_self: flag(a, "self"),
                        resource: flag(a, "resource"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let organizer = v
            .get("organizer")
            .filter(|o| o.is_object())
            .map(|o| Organizer {
                email: text(o, "email"),
                name: text(o, "displayName"),
            });
        let private = v.pointer("/extendedProperties/private");
        Some(EventRecord {
            id,
            calendar_id: calendar.to_string(),
            status: status.to_string(),
            summary: text(v, "summary"),
            start,
            end,
            all_day,
            time_zone: start_zone
                .or(end_zone)
                .or_else(|| calendar_zone.map(str::to_string)),
            attendees,
            organizer,
            location: text(v, "location"),
            meet_link: meet_link(v),
            html_link: text(v, "htmlLink"),
            updated: text(v, "updated"),
            etag: text(v, "etag"),
            recurring_event_id: text(v, "recurringEventId"),
            i_cal_uid: text(v, "iCalUID"),
            phone: private.and_then(|p| text(p, PHONE_PROPERTY)),
            cancellation_reason: None,
        })
    }

    /// The record's key: `<calendar id>/<event id>`.
    pub fn key(&self) -> String {
        key(&self.calendar_id, &self.id)
    }

    /// Whether it is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.status == status::CANCELLED
    }

    /// Google's last change, in epoch ms.
    pub fn updated_ms(&self) -> Option<i64> {
        self.updated.as_deref().and_then(parse_ms)
    }

    /// When it ends, in epoch ms (an all-day event's end date at 00:00 UTC); `None` when unknown.
    pub fn end_ms(&self) -> Option<i64> {
        let end = self.end.as_deref()?;
        parse_ms(end).or_else(|| parse_date(end).map(|d| d * 86_400_000))
    }

    /// Whether `other` is the same version of the event (Google's etag and last change).
    pub fn same_version(&self, other: &EventRecord) -> bool {
        self.etag == other.etag && self.updated == other.updated && self.status == other.status
    }

    /// A cancellation of this record as Google reports one (often only its id, status, etag
    /// and time): what was known stays, what Google says now wins.
    pub fn cancelled_by(&self, seen: &EventRecord) -> EventRecord {
        let mut out = self.clone();
        out.status = status::CANCELLED.to_string();
        for (mine, theirs) in [
            (&mut out.etag, &seen.etag),
            (&mut out.updated, &seen.updated),
            (&mut out.summary, &seen.summary),
            (&mut out.start, &seen.start),
            (&mut out.end, &seen.end),
            (&mut out.html_link, &seen.html_link),
        ] {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        if seen.cancellation_reason.is_some() {
            out.cancellation_reason
                .clone_from(&seen.cancellation_reason);
        }
        out
    }

    /// The lookups it is found by: each attendee's email (not the calendar's own account or a
    /// room) and the phone the connector booked with, at most [`MAX_LOOKUPS`].
    pub fn lookups(&self) -> Vec<Option<String>> {
        let mut out: Vec<String> = Vec::new();
        let phone = self.phone.as_deref().and_then(lookup::phone);
        for l in self
            .attendees
            .iter()
            .filter(|a| !a.is_self && !a.resource)
            .filter_map(|a| a.email.as_deref().and_then(lookup::email))
        {
            if !out.contains(&l) && out.len() + usize::from(phone.is_some()) < MAX_LOOKUPS {
                out.push(l);
            }
        }
        out.extend(phone);
        out.into_iter().map(Some).collect()
    }

    /// The payload of `event` for this record: the record plus `event`, `provider`, `tenant`
    /// and `change` (`created`, `updated` or `cancelled`).
    pub fn payload(&self, event: &str, change: &str, tenant: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(map) = v.as_object_mut() {
            map.insert("event".into(), json!(event));
            map.insert("change".into(), json!(change));
            map.insert("provider".into(), json!("gcal"));
            map.insert("tenant".into(), json!(tenant));
        }
        v
    }
}

/// A record key: `<calendar id>/<event id>`.
pub fn key(calendar: &str, id: &str) -> String {
    format!("{calendar}/{id}")
}

/// A Google `Event` as the example payloads and tests start from: a check-up with an
/// attendee, a Meet link, in New York.
pub fn example_google() -> Value {
    json!({
        "kind": "calendar#event",
        "etag": "\"3512345678901000\"",
        "id": "b1k2m3n4p5q6r7s8t9u0v1a2b3",
        "status": "confirmed",
        "htmlLink": "https://www.google.com/calendar/event?eid=YjFrMm0zbjRwNXE2cjdzOHQ5dTB2MWEyYjM",
        "created": "2026-03-02T14:00:00.000Z",
        "updated": "2026-03-02T14:00:01.000Z",
        "summary": "Check-up: Jane Roe",
        "location": "ABC Healthcare, 12 Main St",
        "creator": {"email": "frontdesk@abc-health.example", "self": true},
        "organizer": {"email": "frontdesk@abc-health.example", "displayName": "ABC Healthcare", "self": true},
        "start": {"dateTime": "2026-03-09T10:00:00-04:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-09T10:30:00-04:00", "timeZone": "America/New_York"},
        "iCalUID": "b1k2m3n4p5q6r7s8t9u0v1a2b3@google.com",
        "sequence": 0,
        "attendees": [
            {"email": "frontdesk@abc-health.example", "organizer": true, "self": true, "responseStatus": "accepted"},
            {"email": "jane.roe@example.com", "displayName": "Jane Roe", "responseStatus": "needsAction"}
        ],
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "extendedProperties": {"private": {PHONE_PROPERTY: "+14155550100"}},
        "reminders": {"useDefault": true},
        "eventType": "default"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_google_event_becomes_a_record_with_its_zone() {
        let r = EventRecord::from_google(&example_google(), "primary", Some("UTC")).unwrap();
        assert_eq!(r.key(), "primary/b1k2m3n4p5q6r7s8t9u0v1a2b3");
        assert_eq!(r.status, "confirmed");
        assert_eq!(r.start.as_deref(), Some("2026-03-09T10:00:00-04:00"));
        assert_eq!(r.time_zone.as_deref(), Some("America/New_York"));
        assert_eq!(
            r.meet_link.as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
        assert_eq!(r.phone.as_deref(), Some("+14155550100"));
        assert_eq!(r.attendees[1].name.as_deref(), Some("Jane Roe"));
        assert_eq!(
            r.lookups(),
            vec![
                Some("email:jane.roe@example.com".to_string()),
                Some("phone:+14155550100".to_string())
            ],
            "not the calendar's own account"
        );
        assert_eq!(r.end_ms(), parse_ms("2026-03-09T14:30:00Z"));
        let p = r.payload(CHANGED, "created", "acme");
        assert_eq!(
            (p["event"].as_str(), p["tenant"].as_str()),
            (Some(CHANGED), Some("acme"))
        );
        assert_eq!(p["attendees"][0]["self"], true);
    }

    #[test]
    fn all_day_floating_and_broken_events() {
        let v = json!({"id": "e1", "start": {"date": "2026-03-09"}, "end": {"date": "2026-03-10"},
                       "conferenceData": {"entryPoints": [
                           {"entryPointType": "phone", "uri": "tel:+1-555"},
                           {"entryPointType": "video", "uri": "https://meet.google.com/x"}]}});
        let r = EventRecord::from_google(&v, "c", None).unwrap();
        assert!(r.all_day);
        assert_eq!(
            (r.start.as_deref(), r.end.as_deref()),
            (Some("2026-03-09"), Some("2026-03-10"))
        );
        assert_eq!(r.meet_link.as_deref(), Some("https://meet.google.com/x"));
        assert_eq!(r.status, "confirmed");
        let floating = json!({"id": "e2", "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Europe/London"}});
        let r = EventRecord::from_google(&floating, "c", None).unwrap();
        assert_eq!(r.start.as_deref(), Some("2026-07-01T09:00:00+01:00"));
        for junk in [
            json!({}),
            json!({"id": 5}),
            json!([1]),
            json!("x"),
            json!(null),
        ] {
            assert!(
                EventRecord::from_google(&junk, "c", None).is_none(),
                "{junk}"
            );
        }
        let odd = json!({"id": "e3", "start": "soon", "attendees": {"a": 1}, "organizer": 3,
                         "status": 7, "end": {"dateTime": 9}});
        let r = EventRecord::from_google(&odd, "c", None).unwrap();
        assert_eq!((r.start, r.end, r.attendees.len()), (None, None, 0));
    }

    #[test]
    fn a_minimal_cancellation_keeps_what_was_known() {
        let held = EventRecord::from_google(&example_google(), "primary", None).unwrap();
        let seen = EventRecord::from_google(
            &json!({"id": held.id, "status": "cancelled", "etag": "\"9\""}),
            "primary",
            None,
        )
        .unwrap();
        let out = held.cancelled_by(&seen);
        assert!(out.is_cancelled());
        assert_eq!(out.summary, held.summary);
        assert_eq!(out.etag.as_deref(), Some("\"9\""));
        assert!(!held.same_version(&out));
    }

    #[test]
    fn lookups_stop_at_the_hosts_limit() {
        let attendees: Vec<Value> = (0..200)
            .map(|i| json!({"email": format!("p{i}@example.com")}))
            .collect();
        let v = json!({"id": "big", "attendees": attendees,
                       "extendedProperties": {"private": {PHONE_PROPERTY: "+14155550100"}}});
        let r = EventRecord::from_google(&v, "c", None).unwrap();
        assert_eq!(r.attendees.len(), MAX_ATTENDEES);
        let l = r.lookups();
        assert_eq!(l.len(), MAX_LOOKUPS);
        assert_eq!(l.last().unwrap().as_deref(), Some("phone:+14155550100"));
    }
}
