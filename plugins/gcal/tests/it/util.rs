//! What the tests share: the connector on the SDK's in-memory host, playing the OAuth2 token
//! the hub's host mints for `google`, and a stand-in Google Calendar that serves `events.list` as the discovery
//! document describes it (`Events`, `Event`), with Google's sync rules enforced.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use gcal::Gcal;
use plugin_sdk::harness::{Answer, Harness, Sent};

use serde_json::{Value, json};

/// The API base.
pub const API: &str = "https://www.googleapis.com/calendar/v3";
/// The access token the harness plays the host's `google` grant with.
pub const TOKEN: &str = "ya29.test-access-token";

/// The connector for tenant `acme`, with the grant.
pub fn hub() -> Harness<Gcal> {
    Harness::<Gcal>::new().oauth2_token("google", TOKEN)
}

/// The query of a sent URL, decoded.
pub fn params(url: &str) -> BTreeMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded(q)
}

fn form_urlencoded(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A Google error body.
pub fn google_error(code: u16, reason: &str, message: &str) -> Answer {
    Answer::json(
        code,
        &json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}}),
    )
}

/// RFC 3339 UTC with milliseconds, as Google writes `updated`.
pub fn stamp(ms: i64) -> String {
    let t = gcal::time::format_utc(ms);
    if t.contains('.') {
        t
    } else {
        t.replace('Z', ".000Z")
    }
}

/// A full `Event` as Google answers one: New York times, one attendee.
pub fn google_event(id: &str, start_ms: i64, minutes: i64, etag: u64, updated_ms: i64) -> Value {
    let ny = gcal::zone::Zone::named("America/New_York").unwrap();
    json!({
        "kind": "calendar#event",
        "etag": format!("\"{etag}\""),
        "id": id,
        "status": "confirmed",
        "htmlLink": format!("https://www.google.com/calendar/event?eid={id}"),
        "created": "2025-11-01T10:00:00.000Z",
        "updated": stamp(updated_ms),
        "summary": format!("Visit {id}"),
        "creator": {"email": "frontdesk@abc-health.example", "self": true},
        "organizer": {"email": "frontdesk@abc-health.example", "self": true},
        "start": {"dateTime": ny.format(start_ms), "timeZone": "America/New_York"},
        "end": {"dateTime": ny.format(start_ms + minutes * 60_000), "timeZone": "America/New_York"},
        "iCalUID": format!("{id}@google.com"),
        "sequence": 0,
        "attendees": [
            {"email": "frontdesk@abc-health.example", "organizer": true, "self": true, "responseStatus": "accepted"},
            {"email": format!("patient.{id}@example.com"), "displayName": format!("Patient {id}"), "responseStatus": "needsAction"}
        ],
        "reminders": {"useDefault": true},
        "eventType": "default"
    })
}

/// A stand-in Google Calendar: one calendar's events, a change counter that sync tokens are
/// made of, and `events.list` by Google's rules.
pub struct FakeCalendar {
    /// Event id to (change number, the event as Google would answer it).
    pub events: BTreeMap<String, (u64, Value)>,
    /// The last change number.
    pub seq: u64,
    /// Items per page (Google may answer fewer than `maxResults`).
    pub page_size: usize,
    /// Sync tokens older than this are gone (410).
    pub oldest_token: u64,
    /// Every list request's parameters, in order.
    pub lists: Vec<BTreeMap<String, String>>,
    /// The first page's parameters of the listing in progress.
    listing: Option<BTreeMap<String, String>>,
    /// An incremental list answers every change since this instead of since its token.
    pub replay_from: Option<u64>,
    /// Answers given instead, by the number of the list request (0 the first).
    pub inject: BTreeMap<usize, Answer>,
    /// The expiration Google answers a watch with (ms).
    pub expires_ms: i64,
    /// Answers to the coming watches, instead of accepting them.
    pub watch_refusals: Vec<Answer>,
    /// The watch requests' bodies, in order.
    pub watches: Vec<Value>,
    /// The stop requests' bodies, in order.
    pub stops: Vec<Value>,
    /// What a stop is answered (default 204).
    pub stop_answer: Option<Answer>,
    /// Events a full listing does not return though Google has them (made while it ran).
    pub hidden: std::collections::BTreeSet<String>,
    clock_ms: i64,
}

impl FakeCalendar {
    /// An empty calendar.
    pub fn new(page_size: usize) -> FakeCalendar {
        FakeCalendar {
            events: BTreeMap::new(),
            seq: 0,
            page_size,
            oldest_token: 0,
            lists: Vec::new(),
            listing: None,
            replay_from: None,
            inject: BTreeMap::new(),
            expires_ms: 1_767_225_600_000 + 7 * 86_400_000,
            watch_refusals: Vec::new(),
            watches: Vec::new(),
            stops: Vec::new(),
            stop_answer: None,
            hidden: std::collections::BTreeSet::new(),
            clock_ms: 1_767_225_600_000,
        }
    }

    fn bump(&mut self) -> (u64, i64) {
        self.seq += 1;
        self.clock_ms += 1_000;
        (self.seq, self.clock_ms)
    }

    /// Adds an event of 30 minutes.
    pub fn add(&mut self, id: &str, start_ms: i64) {
        let (seq, at) = self.bump();
        self.events
            .insert(id.into(), (seq, google_event(id, start_ms, 30, seq, at)));
    }

    /// Changes an event's title.
    pub fn change(&mut self, id: &str, title: &str) {
        let (seq, at) = self.bump();
        let (s, ev) = self.events.get_mut(id).expect("an event to change");
        ev["summary"] = json!(title);
        ev["etag"] = json!(format!("\"{seq}\""));
        ev["updated"] = json!(stamp(at));
        *s = seq;
    }

    /// Deletes an event: listed as cancelled from then on, as Google does.
    pub fn delete(&mut self, id: &str) {
        let (seq, at) = self.bump();
        let (s, ev) = self.events.get_mut(id).expect("an event to delete");
        *ev = json!({"kind": "calendar#event", "etag": format!("\"{seq}\""), "id": id,
                     "status": "cancelled", "updated": stamp(at)});
        *s = seq;
    }

    /// Deletes an event and forgets it: never reported again (what a lapsed token hides).
    pub fn purge(&mut self, id: &str) {
        self.bump();
        self.events.remove(id);
    }

    /// Every sync token given so far lapses.
    pub fn expire_tokens(&mut self) {
        self.oldest_token = self.seq + 1;
    }

    fn end_ms(ev: &Value) -> i64 {
        ev.pointer("/end/dateTime")
            .and_then(Value::as_str)
            .and_then(gcal::time::parse_ms)
            .unwrap_or(i64::MAX)
    }

    /// Answers `GET /calendars/primary/events?...`.
    pub fn list(&mut self, sent: &Sent) -> Answer {
        let p = params(&sent.url);
        self.lists.push(p.clone());
        if let Some(answer) = self.inject.remove(&(self.lists.len() - 1)) {
            return answer;
        }
        // Google's rules: a sync token goes with none of these, and the same other parameters.
        if p.contains_key("syncToken") {
            for banned in [
                "timeMin",
                "timeMax",
                "orderBy",
                "q",
                "updatedMin",
                "iCalUID",
                "privateExtendedProperty",
                "sharedExtendedProperty",
            ] {
                if p.contains_key(banned) {
                    return google_error(400, "invalid", &format!("syncToken with {banned}"));
                }
            }
            if p.get("showDeleted").map(String::as_str) == Some("false") {
                return google_error(400, "invalid", "showDeleted=false with syncToken");
            }
        }
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let mut same = p.clone();
        same.remove("pageToken");
        match (&self.listing, p.get("pageToken")) {
            (Some(first), Some(_)) => {
                assert_eq!(first, &same, "a page asked with other parameters")
            }
            (_, Some(_)) => panic!("a page token without a first page"),
            (_, None) => self.listing = Some(same),
        }
        let mut chosen: Vec<(u64, &String, &Value)> = match p.get("syncToken") {
            Some(t) => {
                let n: u64 = t.trim_start_matches("st-").parse().unwrap();
                if n < self.oldest_token {
                    return google_error(
                        410,
                        "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.",
                    );
                }
                let since = self.replay_from.unwrap_or(n);
                self.events
                    .iter()
                    .filter(|(_, (s, _))| *s > since)
                    .map(|(id, (s, ev))| (*s, id, ev))
                    .collect()
            }
            None => {
                let min = p
                    .get("timeMin")
                    .and_then(|t| gcal::time::parse_ms(t))
                    .unwrap_or(i64::MIN);
                let deleted = p.get("showDeleted").map(String::as_str) == Some("true");
                self.events
                    .iter()
                    .filter(|(_, (_, ev))| deleted || ev["status"] != "cancelled")
                    .filter(|(_, (_, ev))| ev["status"] == "cancelled" || Self::end_ms(ev) > min)
                    .filter(|(id, _)| !self.hidden.contains(*id))
                    .map(|(id, (s, ev))| (*s, id, ev))
                    .collect()
            }
        };
        if p.contains_key("syncToken") {
            chosen.sort_by_key(|(s, _, _)| *s);
        }
        let offset: usize = p
            .get("pageToken")
            .map_or(0, |t| t.trim_start_matches("pt-").parse().unwrap());
        let items: Vec<Value> = chosen
            .iter()
            .skip(offset)
            .take(self.page_size)
            .map(|(_, _, ev)| (*ev).clone())
            .collect();
        let mut answer = json!({
            "kind": "calendar#events",
            "etag": format!("\"p{}\"", self.seq),
            "summary": "frontdesk@abc-health.example",
            "description": "",
            "updated": stamp(self.clock_ms),
            "timeZone": "America/New_York",
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 10}],
            "items": items,
        });
        if offset + self.page_size < chosen.len() {
            answer["nextPageToken"] = json!(format!("pt-{}", offset + self.page_size));
        } else {
            answer["nextSyncToken"] = json!(format!("st-{}", self.seq));
            self.listing = None;
        }
        Answer::json(200, &answer)
    }
}

impl FakeCalendar {
    /// Answers `POST /calendars/primary/events/watch`: a `Channel` for the id asked, with its
    /// token echoed and Google's own expiration.
    pub fn watch(&mut self, sent: &Sent) -> Answer {
        let body = sent.json();
        self.watches.push(body.clone());
        if !self.watch_refusals.is_empty() {
            return self.watch_refusals.remove(0);
        }
        Answer::json(
            200,
            &json!({
                "kind": "api#channel",
                "id": body["id"],
                "resourceId": format!("res-{}", self.watches.len()),
                "resourceUri": format!("{API}/calendars/primary/events?alt=json"),
                "token": body["token"],
                "expiration": self.expires_ms.to_string(),
            }),
        )
    }

    /// Answers `POST /channels/stop` (no body on success).
    pub fn stop(&mut self, sent: &Sent) -> Answer {
        self.stops.push(sent.json());
        self.stop_answer
            .clone()
            .unwrap_or_else(|| Answer::status(204))
    }
}

/// Serves `primary`'s `events.list`, `events.watch` and `channels.stop` from a stand-in
/// calendar (other requests: `hub.on`, whose rules come first).
pub fn serve(hub: &mut Harness<gcal::Gcal>, fake: &Rc<RefCell<FakeCalendar>>) {
    let fake = fake.clone();
    hub.on_http(move |sent| {
        let primary = format!("{API}/calendars/primary/events");
        if sent.method == "GET" && sent.url.starts_with(&format!("{primary}?")) {
            fake.borrow_mut().list(sent)
        } else if sent.method == "POST" && sent.url == format!("{primary}/watch") {
            fake.borrow_mut().watch(sent)
        } else if sent.method == "POST" && sent.url == format!("{API}/channels/stop") {
            fake.borrow_mut().stop(sent)
        } else if let Some(id) = sent
            .url
            .strip_prefix(&format!("{primary}/"))
            .filter(|_| sent.method == "GET")
        {
            match fake.borrow().events.get(id) {
                Some((_, ev)) => Answer::json(200, ev),
                None => google_error(404, "notFound", "Not Found"),
            }
        } else {
            Answer::status(501).body(format!("no stand-in for {} {}", sent.method, sent.url))
        }
    });
}

/// A stand-in calendar served to a fresh hub.
pub fn served(page_size: usize) -> (Harness<gcal::Gcal>, Rc<RefCell<FakeCalendar>>) {
    let mut hub = hub();
    let fake = Rc::new(RefCell::new(FakeCalendar::new(page_size)));
    serve(&mut hub, &fake);
    (hub, fake)
}

/// The harness clock's start, 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
/// A day in ms.
pub const DAY: i64 = 86_400_000;
/// An hour in ms.
pub const HOUR: i64 = 3_600_000;

/// Runs the due jobs until none is left, failing on any that fails; answers how many ran.
pub fn drain(hub: &mut Harness<gcal::Gcal>) -> usize {
    let mut ran = 0;
    loop {
        let done = hub.run_due_jobs();
        if done.is_empty() {
            return ran;
        }
        for (job, result) in &done {
            if let Err(e) = result {
                panic!("job {} {} failed: {e}", job.name, job.input);
            }
        }
        ran += done.len();
    }
}

/// The names of the committed events, in order.
pub fn event_names(hub: &Harness<gcal::Gcal>) -> Vec<String> {
    hub.events().into_iter().map(|e| e.name).collect()
}
