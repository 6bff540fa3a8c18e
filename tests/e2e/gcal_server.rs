//! A local stand-in for the Google Calendar API v3 (`https://www.googleapis.com/calendar/v3`),
//! strict where Google is: every request is checked against the discovery document
//! (`tests/provider-specs/google_calendar_v3.json`, [`crate::discovery`]) and must carry an access
//! token the OAuth stand-in issued; a `syncToken` combined with `timeMin`, `orderBy`, `q` or
//! `updatedMin` is a 400; a sync token the server invalidated is a 410 `fullSyncRequired`;
//! `nextSyncToken` comes on the last page only; deleted events come back to an incremental sync
//! as `status: cancelled` and never to a full one; an event id given twice is a 409.
//!
//! Watch channels push as Google does: an empty POST with the `X-Goog-*` headers, `sync` first,
//! then `exists` for each change to a watched calendar, message numbers growing per channel.
//! A stopped channel keeps pushing until the test says otherwise ([`GoogleCalendar::push_stale`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::oauth_server::AuthState;
use crate::util::now_ms;

/// One calendar: its events (with the change sequence of their last write) and the sequence.
#[derive(Default)]
pub struct Calendar {
    /// id -> (sequence of the last change, the event as Google answers it).
    pub events: BTreeMap<String, (u64, Value)>,
    pub seq: u64,
}

/// A channel the server pushes on.
#[derive(Clone, Debug)]
pub struct Channel {
    pub id: String,
    pub calendar: String,
    pub token: String,
    pub address: String,
    pub resource_id: String,
    pub expiration: u64,
    pub messages: u64,
    pub stopped: bool,
}

/// What the server holds and saw.
#[derive(Default)]
pub struct CalState {
    pub calendars: HashMap<String, Calendar>,
    /// Sync tokens issued: token -> (calendar, sequence it covers up to).
    pub sync_tokens: HashMap<String, (String, u64)>,
    /// Page tokens: token -> (calendar, the listing's ids in order, offset, sequence, sync?).
    pages: HashMap<String, (String, Vec<String>, usize, u64)>,
    pub channels: Vec<Channel>,
    /// Every request: (method, path and query, body).
    pub seen: Vec<(String, String, Option<Value>)>,
    /// What the discovery document refused.
    pub spec_problems: Vec<String>,
    /// Requests without a valid access token.
    pub unauthorized: usize,
    /// The `expiration` a watch answers (ms from now).
    pub channel_life_ms: u64,
    /// Pushes answered by the hub: (channel, state, status).
    pub pushed: Vec<(String, String, u16)>,
    /// When set, changes push nothing (dropped notifications).
    pub mute: bool,
    next_id: u64,
}

type Shared = Arc<Mutex<CalState>>;

/// The running stand-in.
pub struct GoogleCalendar {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub state: Shared,
    auth: Arc<Mutex<AuthState>>,
}

#[derive(Clone)]
struct App {
    state: Shared,
    auth: Arc<Mutex<AuthState>>,
    spec: Arc<Value>,
}

impl GoogleCalendar {
    /// Starts on a free loopback port, taking the access tokens `auth` issues.
    pub async fn start(auth: Arc<Mutex<AuthState>>) -> GoogleCalendar {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/provider-specs/google_calendar_v3.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let state = Shared::default();
        state.lock().unwrap().channel_life_ms = 7 * 86_400_000;
        let app = App {
            state: state.clone(),
            auth: auth.clone(),
            spec: Arc::new(spec),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let router = Router::new().fallback(handle).with_state(app);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        GoogleCalendar { base, state, auth }
    }

    /// Adds or changes an event as a user would in Google Calendar, and pushes.
    pub async fn user_writes(&self, calendar: &str, event: Value) {
        let pushes = {
            let mut st = self.state.lock().unwrap();
            let id = event["id"].as_str().unwrap().to_string();
            write_event(&mut st, calendar, &id, event);
            pushes_for(&mut st, calendar)
        };
        send(pushes, self.state.clone()).await;
    }

    /// Deletes an event as a user would, and pushes.
    pub async fn user_deletes(&self, calendar: &str, id: &str) {
        let pushes = {
            let mut st = self.state.lock().unwrap();
            cancel(&mut st, calendar, id);
            pushes_for(&mut st, calendar)
        };
        send(pushes, self.state.clone()).await;
    }

    /// Every sync token issued so far answers 410 from now on.
    pub fn invalidate_sync_tokens(&self) {
        self.state.lock().unwrap().sync_tokens.clear();
    }

    /// Pushes `exists` on a stopped channel, as Google keeps doing until it expires; the
    /// hub's status.
    pub async fn push_stale(&self, channel: &str) -> u16 {
        let push = {
            let mut st = self.state.lock().unwrap();
            let c = st.channels.iter_mut().find(|c| c.id == channel).unwrap();
            c.messages += 1;
            (c.clone(), "exists")
        };
        send_one(push.0, push.1).await
    }

    /// A push as a forger would send it: a held channel's id with another token.
    pub async fn push_forged(&self, channel: &str) -> u16 {
        let mut c = {
            let st = self.state.lock().unwrap();
            st.channels
                .iter()
                .find(|c| c.id == channel)
                .unwrap()
                .clone()
        };
        c.token = "forged-token".into();
        c.messages += 1000;
        send_one(c, "exists").await
    }

    /// The live (not stopped) channels.
    pub fn live_channels(&self) -> Vec<Channel> {
        let st = self.state.lock().unwrap();
        st.channels.iter().filter(|c| !c.stopped).cloned().collect()
    }

    /// The events of a calendar that are not cancelled.
    pub fn live_events(&self, calendar: &str) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        st.calendars
            .get(calendar)
            .map(|c| {
                c.events
                    .values()
                    .filter(|(_, e)| e["status"] != "cancelled")
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Requests the discovery document refused, and ones without a valid token.
    pub fn assert_clean(&self) {
        let st = self.state.lock().unwrap();
        assert_eq!(
            st.spec_problems,
            Vec::<String>::new(),
            "requests the discovery document refuses"
        );
        assert!(!st.seen.is_empty(), "the hub called the API");
        let _ = &self.auth;
    }
}

fn write_event(st: &mut CalState, calendar: &str, id: &str, mut event: Value) {
    let cal = st.calendars.entry(calendar.to_string()).or_default();
    cal.seq += 1;
    let seq = cal.seq;
    let now = chrono::DateTime::from_timestamp_millis(now_ms() as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = cal
        .events
        .get(id)
        .and_then(|(_, e)| e["created"].as_str().map(str::to_string))
        .unwrap_or_else(|| now.clone());
    event["kind"] = json!("calendar#event");
    event["id"] = json!(id);
    event["etag"] = json!(format!("\"{seq}{}\"", now_ms()));
    event["created"] = json!(created);
    event["updated"] = json!(now);
    event["iCalUID"] = json!(format!("{id}@google.com"));
    event["htmlLink"] = json!(format!("https://www.google.com/calendar/event?eid={id}"));
    if event.get("status").is_none() {
        event["status"] = json!("confirmed");
    }
    cal.events.insert(id.to_string(), (seq, event));
}

fn cancel(st: &mut CalState, calendar: &str, id: &str) -> bool {
    let Some(cal) = st.calendars.get_mut(calendar) else {
        return false;
    };
    let Some((_, e)) = cal.events.get(id).cloned() else {
        return false;
    };
    if e["status"] == "cancelled" {
        return false;
    }
    cal.seq += 1;
    let seq = cal.seq;
    // What an incremental sync returns for a deleted event: its id and status, little else.
    let tombstone = json!({"kind": "calendar#event", "id": id, "status": "cancelled",
                           "etag": format!("\"{seq}\""), "updated": e["updated"]});
    cal.events.insert(id.to_string(), (seq, tombstone));
    true
}

fn pushes_for(st: &mut CalState, calendar: &str) -> Vec<(Channel, &'static str)> {
    if st.mute {
        return Vec::new();
    }
    st.channels
        .iter_mut()
        .filter(|c| c.calendar == calendar && !c.stopped && c.expiration > now_ms())
        .map(|c| {
            c.messages += 1;
            (c.clone(), "exists")
        })
        .collect()
}

async fn send(pushes: Vec<(Channel, &'static str)>, state: Shared) {
    for (c, what) in pushes {
        let status = send_one(c.clone(), what).await;
        state
            .lock()
            .unwrap()
            .pushed
            .push((c.id.clone(), what.to_string(), status));
    }
}

/// One push, exactly as Google sends it: no body.
async fn send_one(c: Channel, what: &str) -> u16 {
    let expiration = chrono::DateTime::from_timestamp_millis(c.expiration as i64)
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let answer = reqwest::Client::new()
        .post(&c.address)
        .header(
            "user-agent",
            "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        )
        .header("x-goog-channel-id", &c.id)
        .header("x-goog-channel-token", &c.token)
        .header("x-goog-channel-expiration", expiration)
        .header("x-goog-message-number", c.messages.to_string())
        .header("x-goog-resource-id", &c.resource_id)
        .header("x-goog-resource-state", what)
        .header(
            "x-goog-resource-uri",
            format!(
                "https://www.googleapis.com/calendar/v3/calendars/{}/events?alt=json",
                c.calendar
            ),
        )
        .header("content-length", "0")
        .send()
        .await;
    answer.map(|a| a.status().as_u16()).unwrap_or(0)
}

fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"errors": [{"domain": "global", "reason": reason, "message": message}],
                                "code": status.as_u16(), "message": message}});
    (status, axum::Json(body)).into_response()
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = url::Url::parse(&format!("http://stand.in{uri}")).unwrap();
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(_) => return error(StatusCode::BAD_REQUEST, "parseError", "Parse Error"),
        }
    };
    let problems = crate::discovery::problems(&app.spec, method.as_str(), &url, json_body.as_ref());
    {
        let mut st = app.state.lock().unwrap();
        st.seen
            .push((method.to_string(), uri.to_string(), json_body.clone()));
        st.spec_problems.extend(problems.iter().cloned());
    }
    if !problems.is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid", &problems.join("; "));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = app
        .auth
        .lock()
        .unwrap()
        .valid_access
        .get(token)
        .is_some_and(|&until| until > now_ms());
    if !valid {
        app.state.lock().unwrap().unauthorized += 1;
        return error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials");
    }
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let rel = url.path().trim_start_matches("/calendar/v3/").to_string();
    let parts: Vec<String> = rel.split('/').map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (response, pushes) = {
        let mut st = app.state.lock().unwrap();
        route(&mut st, method.as_str(), &parts, &query, json_body)
    };
    if !pushes.is_empty() {
        let state = app.state.clone();
        tokio::spawn(send(pushes, state));
    }
    response
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

type Routed = (Response, Vec<(Channel, &'static str)>);

fn route(
    st: &mut CalState,
    method: &str,
    parts: &[&str],
    q: &HashMap<String, String>,
    body: Option<Value>,
) -> Routed {
    let none = Vec::new();
    match (method, parts) {
        ("GET", ["calendars", cal]) => (
            ok(
                json!({"kind": "calendar#calendar", "etag": "\"1\"", "id": cal, "summary": cal,
                      "timeZone": "America/New_York"}),
            ),
            none,
        ),
        ("GET", ["calendars", cal, "events"]) => (list(st, cal, q), none),
        ("POST", ["calendars", cal, "events"]) => insert(st, cal, q, body.unwrap_or_default()),
        ("GET", ["calendars", cal, "events", id]) => {
            match st.calendars.get(*cal).and_then(|c| c.events.get(*id)) {
                Some((_, e)) => (ok(e.clone()), none),
                None => (error(StatusCode::NOT_FOUND, "notFound", "Not Found"), none),
            }
        }
        ("PATCH", ["calendars", cal, "events", id]) => {
            let Some((_, mut e)) = st
                .calendars
                .get(*cal)
                .and_then(|c| c.events.get(*id))
                .cloned()
            else {
                return (error(StatusCode::NOT_FOUND, "notFound", "Not Found"), none);
            };
            if e["status"] == "cancelled" {
                return (
                    error(StatusCode::GONE, "deleted", "Resource has been deleted"),
                    none,
                );
            }
            if let Some(patch) = body.as_ref().and_then(Value::as_object) {
                for (k, v) in patch {
                    e[k] = v.clone();
                }
            }
            write_event(st, cal, id, e);
            let answer = st.calendars[*cal].events[*id].1.clone();
            (ok(answer), pushes_for(st, cal))
        }
        ("DELETE", ["calendars", cal, "events", id]) => {
            let exists = st
                .calendars
                .get(*cal)
                .and_then(|c| c.events.get(*id))
                .cloned();
            match exists {
                None => (error(StatusCode::NOT_FOUND, "notFound", "Not Found"), none),
                Some((_, e)) if e["status"] == "cancelled" => (
                    error(StatusCode::GONE, "deleted", "Resource has been deleted"),
                    none,
                ),
                Some(_) => {
                    cancel(st, cal, id);
                    (StatusCode::NO_CONTENT.into_response(), pushes_for(st, cal))
                }
            }
        }
        ("POST", ["calendars", cal, "events", "watch"]) => watch(st, cal, body.unwrap_or_default()),
        ("POST", ["channels", "stop"]) => {
            let b = body.unwrap_or_default();
            let found = st.channels.iter_mut().find(|c| {
                b["id"] == c.id.as_str() && b["resourceId"] == c.resource_id.as_str() && !c.stopped
            });
            match found {
                Some(c) => {
                    c.stopped = true;
                    (StatusCode::NO_CONTENT.into_response(), none)
                }
                None => (
                    error(StatusCode::NOT_FOUND, "notFound", "Channel not found"),
                    none,
                ),
            }
        }
        ("POST", ["freeBusy"]) => (free_busy(st, body.unwrap_or_default()), none),
        _ => (error(StatusCode::NOT_FOUND, "notFound", "Not Found"), none),
    }
}

fn list(st: &mut CalState, cal: &str, q: &HashMap<String, String>) -> Response {
    let max = q
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(250)
        .min(2500);
    let (ids, offset, upto) = if let Some(page) = q.get("pageToken") {
        match st.pages.get(page).cloned() {
            Some((c, ids, offset, upto)) if c == cal => (ids, offset, upto),
            _ => return error(StatusCode::BAD_REQUEST, "invalid", "Invalid page token"),
        }
    } else if let Some(sync) = q.get("syncToken") {
        for forbidden in [
            "timeMin",
            "timeMax",
            "orderBy",
            "q",
            "updatedMin",
            "iCalUID",
        ] {
            if q.contains_key(forbidden) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("Sync token cannot be combined with {forbidden}"),
                );
            }
        }
        let Some((c, since)) = st.sync_tokens.get(sync).cloned().filter(|(c, _)| c == cal) else {
            return error(
                StatusCode::GONE,
                "fullSyncRequired",
                "Sync token is no longer valid, a full sync is required.",
            );
        };
        let calendar = st.calendars.entry(c).or_default();
        let mut changed: Vec<(u64, String)> = calendar
            .events
            .iter()
            .filter(|(_, (seq, _))| *seq > since)
            .map(|(id, (seq, _))| (*seq, id.clone()))
            .collect();
        changed.sort();
        (
            changed.into_iter().map(|(_, id)| id).collect(),
            0,
            calendar.seq,
        )
    } else {
        let time_min = q.get("timeMin").cloned().unwrap_or_default();
        let calendar = st.calendars.entry(cal.to_string()).or_default();
        let ids = calendar
            .events
            .iter()
            .filter(|(_, (_, e))| e["status"] != "cancelled")
            .filter(|(_, (_, e))| {
                let end = e["end"]["dateTime"]
                    .as_str()
                    .or(e["end"]["date"].as_str())
                    .unwrap_or("");
                time_min.is_empty() || end >= time_min.as_str()
            })
            .map(|(id, _)| id.clone())
            .collect();
        (ids, 0, calendar.seq)
    };
    let calendar = st.calendars.entry(cal.to_string()).or_default();
    let items: Vec<Value> = ids
        .iter()
        .skip(offset)
        .take(max)
        .filter_map(|id| calendar.events.get(id).map(|(_, e)| e.clone()))
        .collect();
    let mut body = json!({"kind": "calendar#events", "etag": "\"p1\"", "summary": cal,
                          "updated": "2026-12-07T10:00:00.000Z", "timeZone": "America/New_York",
                          "accessRole": "owner", "defaultReminders": [], "items": items});
    if offset + max < ids.len() {
        st.next_id += 1;
        let token = format!("page{}", st.next_id);
        st.pages
            .insert(token.clone(), (cal.to_string(), ids, offset + max, upto));
        body["nextPageToken"] = json!(token);
    } else {
        st.next_id += 1;
        let token = format!("sync{}", st.next_id);
        st.sync_tokens
            .insert(token.clone(), (cal.to_string(), upto));
        body["nextSyncToken"] = json!(token);
    }
    ok(body)
}

fn insert(st: &mut CalState, cal: &str, q: &HashMap<String, String>, mut event: Value) -> Routed {
    let id = match event["id"].as_str() {
        Some(id) => {
            let valid = id.len() >= 5
                && id.len() <= 1024
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
            if !valid {
                return (
                    error(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "Invalid resource id value.",
                    ),
                    Vec::new(),
                );
            }
            if st
                .calendars
                .get(cal)
                .is_some_and(|c| c.events.contains_key(id))
            {
                return (
                    error(
                        StatusCode::CONFLICT,
                        "duplicate",
                        "The requested identifier already exists.",
                    ),
                    Vec::new(),
                );
            }
            id.to_string()
        }
        None => {
            st.next_id += 1;
            format!("gen{:010}", st.next_id)
        }
    };
    let wants_meet = event["conferenceData"]["createRequest"].is_object();
    if wants_meet && q.get("conferenceDataVersion").map(String::as_str) == Some("1") {
        let code = format!("abc-defg-{:03}", st.next_id % 1000);
        event["hangoutLink"] = json!(format!("https://meet.google.com/{code}"));
        event["conferenceData"] = json!({
            "conferenceId": code,
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "entryPoints": [{"entryPointType": "video", "uri": format!("https://meet.google.com/{code}"), "label": format!("meet.google.com/{code}")}],
            "createRequest": {"requestId": event["conferenceData"]["createRequest"]["requestId"], "status": {"statusCode": "success"}}
        });
    }
    write_event(st, cal, &id, event);
    let answer = st.calendars[cal].events[&id].1.clone();
    (ok(answer), pushes_for(st, cal))
}

fn watch(st: &mut CalState, cal: &str, b: Value) -> Routed {
    let (Some(id), Some(address)) = (b["id"].as_str(), b["address"].as_str()) else {
        return (
            error(StatusCode::BAD_REQUEST, "required", "Required"),
            Vec::new(),
        );
    };
    if b["type"] != "web_hook" {
        return (
            error(StatusCode::BAD_REQUEST, "invalid", "Invalid channel type"),
            Vec::new(),
        );
    }
    if st.channels.iter().any(|c| c.id == id) {
        return (
            error(
                StatusCode::BAD_REQUEST,
                "channelIdNotUnique",
                "Channel id not unique",
            ),
            Vec::new(),
        );
    }
    let token = b["token"].as_str().unwrap_or_default();
    if token.len() > 256 {
        return (
            error(StatusCode::BAD_REQUEST, "invalid", "Token too long"),
            Vec::new(),
        );
    }
    let life = st.channel_life_ms;
    let asked = b["expiration"].as_str().and_then(|e| e.parse::<u64>().ok());
    let expiration = asked.unwrap_or(u64::MAX).min(now_ms() + life);
    st.next_id += 1;
    let channel = Channel {
        id: id.to_string(),
        calendar: cal.to_string(),
        token: token.to_string(),
        address: address.to_string(),
        resource_id: format!("res-{cal}-{}", st.next_id),
        expiration,
        messages: 1,
        stopped: false,
    };
    st.channels.push(channel.clone());
    let answer = json!({"kind": "api#channel", "id": id, "resourceId": channel.resource_id,
                        "resourceUri": format!("https://www.googleapis.com/calendar/v3/calendars/{cal}/events?alt=json"),
                        "token": token, "expiration": expiration.to_string()});
    // The first message, `sync`, can beat the answer.
    (ok(answer), vec![(channel, "sync")])
}

fn free_busy(st: &CalState, b: Value) -> Response {
    let (min, max) = (
        b["timeMin"].as_str().unwrap_or(""),
        b["timeMax"].as_str().unwrap_or(""),
    );
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .ok()
    };
    let (Some(lo), Some(hi)) = (parse(min), parse(max)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Invalid timeMin or timeMax",
        );
    };
    let mut calendars = serde_json::Map::new();
    for item in b["items"].as_array().cloned().unwrap_or_default() {
        let id = item["id"].as_str().unwrap_or("").to_string();
        let busy: Vec<Value> = st
            .calendars
            .get(&id)
            .map(|c| {
                c.events
                    .values()
                    .filter(|(_, e)| e["status"] != "cancelled" && e["transparency"] != "transparent")
                    .filter_map(|(_, e)| {
                        let s = parse(e["start"]["dateTime"].as_str()?)?;
                        let t = parse(e["end"]["dateTime"].as_str()?)?;
                        (t > lo && s < hi).then(|| json!({"start": e["start"]["dateTime"], "end": e["end"]["dateTime"]}))
                    })
                    .collect()
            })
            .unwrap_or_default();
        calendars.insert(id, json!({"busy": busy}));
    }
    ok(json!({"kind": "calendar#freeBusy", "timeMin": min, "timeMax": max, "calendars": calendars}))
}
