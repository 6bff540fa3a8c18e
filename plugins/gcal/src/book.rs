//! The `create_event` action (`calendar:book`): an appointment in a free slot, at most once per
//! idempotency key, answering `{id, start, end, meeting_url, meet_link, html_link, status}`.
//!
//! Google lets the client choose an event's id (base32hex, `0-9a-v`, 5 to 1,024 characters,
//! unique per calendar), so the id is the key's: base32hex of SHA-256 of tenant, calendar and
//! key. Whatever happens to an answer, a retry cannot make a second event:
//! - a kv marker per key answers a repeat without a call;
//! - before inserting, `POST /freeBusy` checks the slot: busy because of this key's own event
//!   (a lost answer; `GET` by the id finds it) answers that event; busy otherwise declines
//!   (`Error::declined`) with the next free slots, for a voice agent to offer;
//! - the insert itself, sent again, is refused with 409 (the id exists): the event is read
//!   (`GET`) and answered.
//!
//! The event carries its zone (`start.timeZone`), the attendee (when there is an email; Google
//! emails them per `send_updates`), the phone and the key's digest in its private extended
//! properties (so the sync's record has the phone without reading the description), and, with
//! `meet: true`, a Google Meet (`conferenceData.createRequest`, `conferenceDataVersion=1`).
//! The record is stored at once (publishing `calendar.event.changed`); the sync then finds the
//! same version and publishes nothing.

use plugin_sdk::{Error, kv, tenant};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::api;
use crate::config;
use crate::event::{EventRecord, KEY_PROPERTY, PHONE_PROPERTY};
use crate::slots;
use crate::store::Store;
use crate::time::parse_ms;
use crate::zone::Zone;

/// The action's name.
pub const CREATE_EVENT: &str = "create_event";
/// How many free slots a declined booking offers.
pub const OFFERED: usize = 5;

/// The action's input: the `calendar:book` operation's, and Google's extras.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BookInput {
    /// When it starts (RFC 3339 with its offset).
    pub start: String,
    /// How long (default: `end`, else `slot_minutes`).
    pub duration_minutes: Option<Value>,
    /// When it ends, instead of a duration.
    pub end: Option<String>,
    /// Who it is for.
    pub attendee_name: String,
    /// Their email (they are invited).
    pub attendee_email: Option<String>,
    /// Their phone.
    pub attendee_phone: Option<String>,
    /// The zone the event is in (default: config `time_zone`, else the calendar's).
    pub time_zone: Option<String>,
    /// Its title (default `Appointment: <name>`).
    pub title: Option<String>,
    /// For the description.
    pub notes: Option<String>,
    /// The kind of appointment: one calendar has one kind, so it is not read.
    pub event_type: Option<Value>,
    /// Where.
    pub location: Option<String>,
    /// A Google Meet for it.
    pub meet: Option<Value>,
    /// Whom Google emails (`all`, `externalOnly`, `none`; default config `send_updates`).
    pub send_updates: Option<String>,
    /// The calendar (default: config `calendar_id`).
    pub calendar_id: Option<String>,
}

/// Lowercase hex SHA-256 of an action's key: what markers and `hub_key` hold.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The event id a key makes on a calendar: base32hex (`0-9a-v`) of SHA-256 of tenant,
/// calendar and key, 52 characters.
///
/// ```
/// let id = gcal::book::event_id("acme", "primary", "visit-77");
/// assert_eq!(id.len(), 52);
/// assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)));
/// assert_ne!(id, gcal::book::event_id("acme", "primary", "visit-78"));
/// ```
pub fn event_id(tenant: &str, calendar: &str, key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let digest = Sha256::digest(format!("{tenant}\n{calendar}\n{key}").as_bytes());
    let (mut acc, mut bits, mut out) = (0u32, 0u32, String::with_capacity(52));
    for b in digest.iter() {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A trimmed, non-empty text.
pub fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Whether an input value says yes (`true`, `"true"`, `"yes"`, `1`).
pub fn yes(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1")
        }
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An `EventDateTime` at an instant in a zone.
pub fn date_time(zone: &Zone, ms: i64) -> Value {
    json!({ "dateTime": zone.format(ms), "timeZone": zone.name() })
}

/// The `Event` body inserted.
pub fn request_body(
    input: &BookInput,
    id: &str,
    zone: &Zone,
    (start_ms, end_ms): (i64, i64),
    digest: &str,
) -> Value {
    let name = input.attendee_name.trim();
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    let title = given(&input.title).map_or_else(|| format!("Appointment: {name}"), str::to_string);
    body.insert("summary".into(), json!(title));
    let mut description = vec![format!("Booked for {name}.")];
    if let Some(p) = given(&input.attendee_phone) {
        description.push(format!("Phone: {p}"));
    }
    if let Some(n) = given(&input.notes) {
        description.push(n.to_string());
    }
    body.insert("description".into(), json!(description.join("\n")));
    if let Some(l) = given(&input.location) {
        body.insert("location".into(), json!(l));
    }
    body.insert("start".into(), date_time(zone, start_ms));
    body.insert("end".into(), date_time(zone, end_ms));
    if let Some(e) = given(&input.attendee_email) {
        body.insert(
            "attendees".into(),
            json!([{ "email": e, "displayName": name }]),
        );
    }
    let mut private = Map::new();
    private.insert(KEY_PROPERTY.into(), json!(digest));
    if let Some(p) = given(&input.attendee_phone) {
        private.insert(PHONE_PROPERTY.into(), json!(p));
    }
    body.insert("extendedProperties".into(), json!({ "private": private }));
    if yes(input.meet.as_ref()) {
        body.insert(
            "conferenceData".into(),
            json!({"createRequest": {"requestId": id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}}),
        );
    }
    Value::Object(body)
}

/// The action's answer for an event.
pub fn output(record: &EventRecord) -> Value {
    json!({
        "id": record.id,
        "calendar_id": record.calendar_id,
        "start": record.start,
        "end": record.end,
        "meeting_url": record.meet_link,
        "meet_link": record.meet_link,
        "html_link": record.html_link,
        "status": record.status,
    })
}

/// The sentence of a declined booking: the slot, then up to [`OFFERED`] free ones after it
/// (or none, or none could be read).
pub fn taken_message(start: &str, next: Option<&[slots::Slot]>) -> String {
    let mut m = format!("That time ({start}) was just taken.");
    match next {
        Some([]) => m.push_str(" There is no other free time in the week after it."),
        Some(free) => {
            let list: Vec<&str> = free
                .iter()
                .take(OFFERED)
                .map(|s| s.start.as_str())
                .collect();
            m.push_str(&format!(" Free times: {}.", list.join(", ")));
        }
        None => m.push_str(" The next free times could not be read; ask for them again."),
    }
    m
}

/// Stores an event Google answered and answers it.
///
/// # Errors
/// Permanent when the answer is not an event, or a write fails.
pub fn keep(event: &Value, calendar: &str, marker: &str) -> Result<String, Error> {
    let record = EventRecord::from_google(event, calendar, None)
        .ok_or_else(|| Error::permanent("Google answered an event without an id"))?;
    let mut store = Store::new(calendar, None);
    store.apply(record.clone())?;
    store.flush();
    let out = output(&record).to_string();
    kv::set_marker(marker, out.as_bytes());
    Ok(out)
}

/// Runs `create_event`.
///
/// # Errors
/// Permanent for a bad input; declined for a busy slot (with the next free ones); Google's
/// refusals as [`api::failure`] (a lost answer is retried safely).
pub fn run(input: &str, key: &str) -> Result<String, Error> {
    let input: BookInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{CREATE_EVENT}` input: {e}")))?;
    let start_ms = parse_ms(&input.start).ok_or_else(|| {
        Error::permanent(format!(
            "`start` must be an RFC 3339 time with its offset (2026-03-09T10:00:00-04:00), not `{}`",
            input.start
        ))
    })?;
    if input.attendee_name.trim().is_empty() {
        return Err(Error::permanent("`attendee_name` is empty"));
    }
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    let digest = key_digest(key);
    let marker = format!("created:{digest}");
    if let Some(done) = kv::get_string(&marker) {
        return Ok(done);
    }
    let zone = config::zone(input.time_zone.as_deref(), &calendar)?;
    let end_ms = match (
        config::minutes("duration_minutes", input.duration_minutes.as_ref())?,
        given(&input.end),
    ) {
        (Some(m), _) => start_ms + m * 60_000,
        (None, Some(e)) => parse_ms(e)
            .filter(|e| *e > start_ms)
            .ok_or_else(|| Error::permanent("`end` must be an RFC 3339 time after `start`"))?,
        (None, None) => start_ms + config::slot_minutes()? * 60_000,
    };
    let send_updates = config::send_updates(input.send_updates.as_deref())?;
    let id = event_id(&tenant(), &calendar, key);
    let busy = slots::query(&calendar, start_ms, end_ms, &zone)?;
    if busy.iter().any(|(b0, b1)| *b0 < end_ms && start_ms < *b1) {
        // Busy: with this key's own event (an answer lost), or taken.
        if let Some(ours) = api::get_event(&calendar, &id)? {
            return keep(&ours, &calendar, &marker);
        }
        let length = (end_ms - start_ms) / 60_000;
        let next = slots::next_free(&calendar, &zone, start_ms, length, OFFERED);
        return Err(Error::declined(taken_message(
            &zone.format(start_ms),
            next.as_deref(),
        )));
    }
    let body = request_body(&input, &id, &zone, (start_ms, end_ms), &digest);
    let mut q = vec![("sendUpdates", send_updates)];
    if yes(input.meet.as_ref()) {
        q.push(("conferenceDataVersion", "1".into()));
    }
    let path = format!("{}/events{}", api::calendar_path(&calendar), api::query(&q));
    let resp = api::call("POST", &path).json(&body)?.send()?;
    let event = if resp.status == 409 {
        // The id exists: an earlier attempt made it.
        api::get_event(&calendar, &id)?.ok_or_else(|| {
            Error::permanent(format!(
                "Google says event `{id}` exists on `{calendar}` but does not show it"
            ))
        })?
    } else {
        let resp = api::check(resp, Some(&calendar))?;
        api::object(&resp, "an event insert")?
    };
    keep(&event, &calendar, &marker)
}
