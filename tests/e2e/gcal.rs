//! The Google Calendar connector through the real binary, against a local stand-in for the
//! Calendar API ([`crate::gcal_server`]: every request checked against Google's discovery
//! document) and for Google's token endpoint ([`crate::oauth_server`]: the access tokens the
//! API takes are the ones it minted from the tenant's refresh token).
//!
//! - `hub connect` opens a watch channel (its token made by the host, never the connector) and
//!   runs the first full sync: events become `event` records found by the attendee's email.
//! - Changes a user makes push; each push runs an incremental sync: the change, and a deletion,
//!   reach the records and the tenant's events once. A forged push (a held channel's id, another
//!   token) is 401; a push on a channel the hub no longer holds is 200 and stores nothing.
//! - A sync token Google invalidated (410) re-lists, and the diff against the records held finds
//!   the events deleted meanwhile, which a full list never returns.
//! - Renewal under a stream of changes opens the new channel before stopping the old, and loses
//!   no change; 1,000 events through the sync's continuations, none missed or doubled.
//! - The app books with `calendar:book` once per key (a deterministic event id; a retry of the
//!   key makes no second event), and reads `calendar:get_slots`.

use serde_json::{Value, json};

use crate::gcal_server::GoogleCalendar;
use crate::oauth_server::{OAuthServer, Settings};
use crate::util::*;

const CLIENT_ID: &str = "hub-gcal-client.apps.googleusercontent.com";
const CALENDAR: &str = "primary";

/// A hub whose tenant `acme` uses `gcal` with a pasted refresh token, and the two stand-ins.
async fn started() -> (TestHub, OAuthServer, GoogleCalendar) {
    let mut hub = TestHub::new();
    let auth = OAuthServer::start(Settings {
        client_id: CLIENT_ID.into(),
        ..Settings::default()
    })
    .await;
    let google = GoogleCalendar::start(auth.state.clone()).await;
    let refresh = auth.issue_refresh_token();
    let secret = auth.settings.client_secret.clone();
    hub.write_config(&format!(
        "{server}[connectors.gcal]\nbuiltin = true\n\
         allow_hosts = [\"https://www.googleapis.com\", \"https://oauth2.googleapis.com\"]\n\
         stand_ins = {{ \"https://www.googleapis.com\" = \"{api}\", \"https://oauth2.googleapis.com\" = \"{token}\" }}\n\n\
         [tenants.acme]\ncalendar = \"gcal\"\ntimezone = \"America/New_York\"\n\
         [tenants.acme.connectors.gcal]\nconfig = {{ calendar_id = \"{CALENDAR}\", time_zone = \"America/New_York\" }}\n\
         [tenants.acme.connectors.gcal.credentials]\ngoogle_client_secret = \"{s}\"\ngoogle_refresh_token = \"{r}\"\n\
         [tenants.acme.connectors.gcal.oauth.google]\ngrant = \"refresh_token\"\nclient_id = \"{CLIENT_ID}\"\n",
        server = hub.server_section(),
        api = google.base,
        token = auth.base,
        s = hub.seal_tenant("acme", "gcal", "google_client_secret", &secret),
        r = hub.seal_tenant("acme", "gcal", "google_refresh_token", &refresh),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "hub check: {out}{err}");
    hub.start().await;
    (hub, auth, google)
}

/// An event as a user makes it in Google Calendar.
fn event(id: &str, summary: &str, day: u32, hour: u32, attendee: &str) -> Value {
    json!({
        "id": id,
        "summary": summary,
        "start": {"dateTime": format!("2030-03-{day:02}T{hour:02}:00:00-04:00"), "timeZone": "America/New_York"},
        "end": {"dateTime": format!("2030-03-{day:02}T{hour:02}:30:00-04:00"), "timeZone": "America/New_York"},
        "attendees": [{"email": attendee, "responseStatus": "needsAction"}],
        "organizer": {"email": "front-desk@abc-healthcare.example", "self": true},
    })
}

/// Every `event` record of the tenant, following the pages.
async fn all_events(hub: &TestHub) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/v1/tenants/acme/records?kind=event&limit=500".to_string();
    loop {
        let page: Value = hub
            .client
            .get(format!("{}{path}", hub.base()))
            .bearer_auth(&hub.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["records"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches(&hub.base()).to_string(),
            None => return out,
        }
    }
}

/// The record of one event, once `check` holds for it.
async fn record_when(hub: &TestHub, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let key = format!("{CALENDAR}/{id}");
    wait_for(30, what, || async {
        let v = hub.api("/tenants/acme/records?kind=event&limit=500").await;
        v["records"]
            .as_array()?
            .iter()
            .find(|r| r["key"] == key.as_str() && check(&r["data"]))
            .cloned()
    })
    .await
}

async fn tenant_events(hub: &TestHub, name: &str) -> Vec<Value> {
    hub.api("/tenants/acme/events?limit=1000").await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["name"] == format!("gcal:{name}") || e["name"] == name)
        .collect()
}

/// `POST /api/v1/tenants/acme/sync`: queues one of the connector's jobs now.
async fn run_job(hub: &TestHub, job: &str) {
    let resp = hub
        .client
        .post(format!("{}/api/v1/tenants/acme/sync", hub.base()))
        .bearer_auth(&hub.admin_token)
        .json(&json!({"connector": "gcal", "job": job}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{job}: {}", resp.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_sync_changes_and_deletions_and_a_stale_channel_stores_nothing() {
    let (hub, _auth, google) = started().await;
    google
        .user_writes(
            CALENDAR,
            event("evt00001", "Cleaning", 11, 9, "jane@example.com"),
        )
        .await;
    google
        .user_writes(
            CALENDAR,
            event("evt00002", "Check-up", 11, 10, "li@example.com"),
        )
        .await;

    hub_connect(&hub, "acme", "gcal", false);
    let channel = wait_for(30, "a watch channel", || async {
        google
            .live_channels()
            .into_iter()
            .find(|c| !c.token.is_empty())
    })
    .await;
    assert!(
        channel.token.len() >= 40,
        "a random token per channel: {}",
        channel.token.len()
    );
    assert!(
        !hub.log().contains(&channel.token),
        "the channel token is never logged"
    );
    let held = hub.api("/tenants/acme/channels").await.to_string();
    assert!(held.contains(&channel.id), "{held}");
    assert!(
        !held.contains(&channel.token),
        "the API never shows a channel's token"
    );
    let jane = record_when(&hub, "evt00001", "the first full sync", |d| {
        d["summary"] == "Cleaning"
    })
    .await;
    assert_eq!(jane["data"]["start"], "2030-03-11T09:00:00-04:00", "{jane}");
    let found = hub
        .api("/tenants/acme/records?kind=event&lookup=email:jane@example.com")
        .await;
    assert_eq!(
        found["records"].as_array().unwrap().len(),
        1,
        "found by the attendee: {found}"
    );

    // A user's change pushes; the push runs an incremental sync.
    google
        .user_writes(
            CALENDAR,
            event("evt00003", "Follow-up", 12, 14, "sam@example.com"),
        )
        .await;
    record_when(&hub, "evt00003", "a new event through a push", |d| {
        d["summary"] == "Follow-up"
    })
    .await;
    google
        .user_writes(
            CALENDAR,
            event("evt00001", "Cleaning (moved)", 13, 9, "jane@example.com"),
        )
        .await;
    record_when(&hub, "evt00001", "a change through a push", |d| {
        d["summary"] == "Cleaning (moved)"
    })
    .await;
    google.user_deletes(CALENDAR, "evt00002").await;
    record_when(&hub, "evt00002", "a deletion through a push", |d| {
        d["status"] == "cancelled"
    })
    .await;
    let cancelled = wait_for(20, "the cancellation event", || async {
        let e = tenant_events(&hub, "calendar.event.cancelled").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(cancelled.len(), 1, "published once: {cancelled:?}");

    let log = hub.deliveries(Some("acme")).await;
    assert!(
        log.iter().any(|d| d["route"] == "push"),
        "the pushes are in the log"
    );
    for d in &log {
        let one = hub
            .api(&format!("/deliveries/{}", d["id"]))
            .await
            .to_string();
        assert!(
            !one.contains(&channel.token),
            "no stored push keeps the token: {one}"
        );
    }
    // Pushes that prove nothing: a forged token is refused before any connector code.
    assert_eq!(google.push_forged(&channel.id).await, 401);
    let pushed = google.state.lock().unwrap().pushed.clone();
    assert!(
        pushed.iter().all(|(_, _, status)| *status == 200),
        "every genuine push was taken: {pushed:?}"
    );

    // Undo: the channel is stopped at Google and no longer held; Google keeps pushing on it.
    hub_connect(&hub, "acme", "gcal", true);
    wait_for(30, "the channel stopped", || async {
        google.live_channels().is_empty().then_some(())
    })
    .await;
    let before = hub.deliveries(Some("acme")).await.len();
    wait_for(20, "a stale push answered 200 and dropped", || async {
        (google.push_stale(&channel.id).await == 200).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        hub.deliveries(Some("acme")).await.len(),
        before,
        "nothing stored"
    );
    let metrics = hub.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hub_webhooks_stale_channel_total") && !l.ends_with(" 0")),
        "counted as refused"
    );
    google.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalidated_sync_token_relists_and_finds_the_deletions_in_the_gap() {
    let (hub, _auth, google) = started().await;
    for i in 0..5 {
        google
            .user_writes(
                CALENDAR,
                event(
                    &format!("gap0000{i}"),
                    &format!("Visit {i}"),
                    14,
                    9 + i,
                    "p@example.com",
                ),
            )
            .await;
    }
    hub_connect(&hub, "acme", "gcal", false);
    record_when(&hub, "gap00004", "the first sync", |d| {
        d["summary"] == "Visit 4"
    })
    .await;

    // Google drops the sync token and, while no push arrives, two events are deleted: a full
    // list will not return them.
    google.invalidate_sync_tokens();
    google.state.lock().unwrap().mute = true;
    google.user_deletes(CALENDAR, "gap00001").await;
    google.user_deletes(CALENDAR, "gap00003").await;
    google.state.lock().unwrap().mute = false;
    google
        .user_writes(
            CALENDAR,
            event("gap00009", "Walk-in", 15, 11, "w@example.com"),
        )
        .await;

    record_when(&hub, "gap00009", "the change after the 410", |d| {
        d["summary"] == "Walk-in"
    })
    .await;
    record_when(&hub, "gap00001", "a deletion found by the diff", |d| {
        d["status"] == "cancelled"
    })
    .await;
    record_when(&hub, "gap00003", "the other deletion", |d| {
        d["status"] == "cancelled"
    })
    .await;
    let live: Vec<Value> = all_events(&hub)
        .await
        .into_iter()
        .filter(|r| r["data"]["status"] != "cancelled")
        .collect();
    assert_eq!(live.len(), 4, "gap00000, 02, 04 and 09 remain: {live:?}");
    let seen = google.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter().any(|(_, path, _)| path.contains("syncToken=")),
        "incremental syncs used the token"
    );
    google.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_events_and_a_renewal_under_changes_lose_nothing() {
    let (hub, _auth, google) = started().await;
    google.state.lock().unwrap().mute = true;
    for i in 0..1000u32 {
        let id = format!("bulk{i:05}");
        google
            .user_writes(
                CALENDAR,
                event(
                    &id,
                    &format!("Slot {i}"),
                    1 + i % 28,
                    8 + i % 10,
                    &format!("p{i}@example.com"),
                ),
            )
            .await;
    }
    google.state.lock().unwrap().mute = false;
    // A short channel life, so the renewal is due at once.
    google.state.lock().unwrap().channel_life_ms = 20 * 60_000;
    hub_connect(&hub, "acme", "gcal", false);
    wait_for(120, "1,000 events through the continuations", || async {
        (all_events(&hub).await.len() == 1000).then_some(())
    })
    .await;
    let first = google.live_channels();
    assert_eq!(first.len(), 1, "{first:?}");

    // Changes keep coming while the channel is renewed.
    let changes = async {
        for i in 0..40u32 {
            let id = format!("bulk{i:05}");
            google
                .user_writes(
                    CALENDAR,
                    event(
                        &id,
                        &format!("Moved {i}"),
                        2,
                        9,
                        &format!("p{i}@example.com"),
                    ),
                )
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    };
    let renew = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        run_job(&hub, "renew_channels").await;
    };
    tokio::join!(changes, renew);
    let renewed = wait_for(30, "the new channel, and the old one stopped", || async {
        let live = google.live_channels();
        (live.len() == 1 && live[0].id != first[0].id).then_some(live)
    })
    .await;
    assert!(renewed[0].expiration > first[0].expiration - 60_000);
    wait_for(60, "every change of the renewal window", || async {
        let all = all_events(&hub).await;
        let moved = all
            .iter()
            .filter(|r| {
                r["data"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Moved "))
            })
            .count();
        (moved == 40 && all.len() == 1000).then_some(())
    })
    .await;
    let changed = tenant_events(&hub, "calendar.event.changed").await;
    let moved_events = changed
        .iter()
        .filter(|e| {
            e["payload"]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("Moved "))
        })
        .count();
    assert_eq!(moved_events, 40, "each change published once");
    google.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_books_once_per_key_and_reads_free_slots() {
    let (hub, _auth, google) = started().await;
    google
        .user_writes(
            CALENDAR,
            event("busy00001", "Staff meeting", 11, 10, "staff@example.com"),
        )
        .await;
    let act = |key: &'static str, action: &'static str, input: Value| {
        let hub = &hub;
        async move {
            let resp = hub
                .client
                .post(format!(
                    "{}/api/v1/tenants/acme/actions?wait=20",
                    hub.base()
                ))
                .bearer_auth(&hub.admin_token)
                .header("idempotency-key", key)
                .json(&json!({"action": action, "input": input}))
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, slots) = act(
        "slots-1",
        "calendar:get_slots",
        json!({"start": "2030-03-11T13:00:00Z", "end": "2030-03-11T22:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, slots["state"].as_str()),
        (200, Some("succeeded")),
        "{slots}"
    );
    let starts: Vec<&str> = slots["output"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["start"].as_str())
        .collect();
    assert!(!starts.is_empty(), "{slots}");
    assert!(
        !starts
            .iter()
            .any(|s| s.contains("T10:00:00-04:00") || s.contains("T14:00:00Z")),
        "the busy 10:00 is not offered: {starts:?}"
    );

    let book = json!({"start": "2030-03-11T15:00:00Z", "attendee_name": "Jane Roe",
                      "attendee_email": "jane@example.com", "notes": "cleaning"});
    let (status, first) = act("book-1", "calendar:book", book.clone()).await;
    assert_eq!(
        (status, first["state"].as_str()),
        (200, Some("succeeded")),
        "{first}"
    );
    let (_, again) = act("book-1", "calendar:book", book).await;
    assert_eq!(
        again["output"], first["output"],
        "the same key answers the same booking"
    );
    let booked: Vec<Value> = google
        .live_events(CALENDAR)
        .into_iter()
        .filter(|e| e["summary"] != "Staff meeting")
        .collect();
    assert_eq!(booked.len(), 1, "one event for one key: {booked:?}");
    let id = booked[0]["id"].as_str().unwrap();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
        "a base32hex id the hub chose: {id}"
    );
    assert_eq!(first["output"]["id"], id, "{first}");

    let (status, cancelled) = act("cancel-1", "calendar:cancel", json!({"id": id})).await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("succeeded")),
        "{cancelled}"
    );
    assert!(google.live_events(CALENDAR).iter().all(|e| e["id"] != id));
    google.assert_clean();
}
