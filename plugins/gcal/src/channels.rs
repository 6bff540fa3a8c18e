//! Push channels: `watch_events` opens one on a calendar's events, `renew_channels` replaces
//! them before they expire (Google never renews a channel), and stopping one ends it at Google
//! and at the host.
//!
//! Opening follows the host's order, since Google's first push (`sync`) can beat its answer to
//! the watch: [`channel::open`] first (the host makes and holds the token), then
//! `POST /calendars/{id}/events/watch` `{id, type: "web_hook", address, token, expiration?}`
//! sent with the token as a `{channel-token:ID}` placeholder the host fills in, then
//! [`channel::keep`] with the `resourceId` and `expiration` (ms, a string) Google answered,
//! which may differ from the expiration asked for. A watch that fails closes the channel.
//!
//! Renewal overlaps: the new channel is opened and watched first; only once Google accepted it
//! is the old one stopped (`POST /channels/stop {id, resourceId}`; a 404 means it is gone
//! already) and closed, then a `sync` picks up whatever changed meanwhile. A failed new watch
//! leaves the old channel held and working.

use plugin_sdk::{Error, channel, enqueue_job, info, route_url, tenant, warn};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api;
use crate::config;
use crate::push::ROUTE;
use crate::sync::{self, SYNC, SyncInput};
use crate::time::now_ms;

/// The job that opens a channel.
pub const WATCH_EVENTS: &str = "watch_events";
/// The job that renews channels before they expire.
pub const RENEW_CHANNELS: &str = "renew_channels";
/// How long before its expiry a channel is renewed, at least (half its life when that is
/// longer): a day of hourly runs to get it done.
pub const RENEW_MARGIN_MS: i64 = 24 * 3_600_000;
/// A channel Google never accepted is closed after this long.
pub const HALF_OPEN_MS: i64 = 3_600_000;
/// The expiry assumed when Google's answer names none.
const ASSUMED_LIFE_MS: i64 = 24 * 3_600_000;

/// A job input naming a calendar.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CalendarInput {
    /// The calendar (default: config `calendar_id`).
    pub calendar_id: Option<String>,
}

/// Parses a job input naming a calendar; empty or `null` is the configured one.
///
/// # Errors
/// Bad request when it is not the job's JSON shape.
pub fn calendar_input(job: &str, input: &str) -> Result<CalendarInput, Error> {
    let t = input.trim();
    if t.is_empty() || t == "null" {
        return Ok(CalendarInput::default());
    }
    serde_json::from_str(t).map_err(|e| Error::bad_request(format!("`{job}` input: {e}")))
}

/// A fresh channel id: `gcal-` and 40 hex digits of a hash of tenant, calendar, time and try.
pub fn fresh_id(tenant: &str, calendar: &str, now: i64, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{tenant}\n{calendar}\n{now}\n{attempt}").as_bytes());
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("gcal-{hex}")
}

/// Google's `expiration`: ms since the epoch, a string (`int64` in the discovery document), or
/// a number.
pub fn expiration_ms(v: &Value) -> Option<u64> {
    match v.get("expiration")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Opens a channel on `calendar`'s events and answers its id.
///
/// # Errors
/// Google's refusal of the watch (the channel is closed again); permanent when the host
/// refuses the channel or the answer has no `resourceId`.
pub fn watch(calendar: &str) -> Result<String, Error> {
    let now = now_ms();
    let tenant = tenant();
    let mut id = fresh_id(&tenant, calendar, now, 0);
    let mut attempt = 0;
    while channel::list().iter().any(|c| c.id == id) {
        attempt += 1;
        id = fresh_id(&tenant, calendar, now, attempt);
    }
    channel::open(&id, calendar)?;
    match watch_open(&id, calendar, now) {
        Ok(()) => Ok(id),
        Err(e) => {
            channel::close(&id);
            Err(e)
        }
    }
}

fn watch_open(id: &str, calendar: &str, now: i64) -> Result<(), Error> {
    let mut body = json!({
        "id": id,
        "type": "web_hook",
        "address": route_url(ROUTE),
        "token": channel::token(id),
    });
    if let Some(ttl) = config::channel_ttl_secs()? {
        body["expiration"] = json!((now + ttl * 1000).to_string());
    }
    let path = format!("{}/events/watch", api::calendar_path(calendar));
    let resp = api::call("POST", &path).json(&body)?.fill_body().send()?;
    let resp = api::check(resp, Some(calendar))?;
    let answer = api::object(&resp, "a watch")?;
    let resource = answer
        .get("resourceId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            Error::permanent("Google accepted the watch but answered no `resourceId`")
        })?;
    let expires = expiration_ms(&answer).unwrap_or_else(|| {
        warn!("{WATCH_EVENTS}: Google named no expiration for `{id}`; renewing within a day");
        u64::try_from(now + ASSUMED_LIFE_MS).unwrap_or(0)
    });
    if let Err(e) = channel::keep(id, resource, expires) {
        // Held no more (closed meanwhile): end it at Google too.
        let _ = stop(id, resource);
        return Err(e);
    }
    info!("{WATCH_EVENTS}: channel `{id}` on `{calendar}` until {expires}");
    Ok(())
}

/// Stops a channel at Google (`POST /channels/stop`); a 404 means it is gone already.
///
/// # Errors
/// Google's refusal, as [`api::failure`].
pub fn stop(id: &str, resource: &str) -> Result<(), Error> {
    let resp = api::call("POST", "/channels/stop")
        .json(&json!({ "id": id, "resourceId": resource }))?
        .send()?;
    if resp.status == 404 {
        return Ok(());
    }
    api::check(resp, None).map(|_| ())
}

/// Queues the first sync of a calendar that has none yet.
///
/// # Errors
/// Permanent when the input cannot be written.
pub fn ensure_synced(calendar: &str) -> Result<(), Error> {
    if !sync::started(calendar) {
        let input = SyncInput {
            calendar_id: Some(calendar.to_string()),
            run: None,
        };
        enqueue_job(SYNC, &input, 0)?;
    }
    Ok(())
}

/// `watch_events`: a new channel on the calendar, and its first sync if it has none.
///
/// # Errors
/// As [`watch`].
pub fn watch_events(input: &str) -> Result<(), Error> {
    let input = calendar_input(WATCH_EVENTS, input)?;
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    watch(&calendar)?;
    ensure_synced(&calendar)
}

/// Whether a held channel is due for renewal at `now`: within [`RENEW_MARGIN_MS`] of its
/// expiry, or past half its life. A channel Google gave less than a day is always due, so an
/// hourly `renew_channels` replaces it before it lapses.
pub fn due(c: &channel::Channel, now: i64) -> bool {
    let (opened, expires) = (
        i64::try_from(c.opened_ms).unwrap_or(0),
        i64::try_from(c.expires_ms).unwrap_or(i64::MAX),
    );
    let margin = RENEW_MARGIN_MS.max(expires.saturating_sub(opened).max(0) / 2);
    expires.saturating_sub(now) <= margin
}

/// Whether a held channel is live: Google accepted it and it has not expired.
pub fn live(c: &channel::Channel, now: i64) -> bool {
    !c.resource.is_empty() && i64::try_from(c.expires_ms).unwrap_or(i64::MAX) > now
}

/// `renew_channels`.
///
/// # Errors
/// The first failure met (a failed new watch, a stop Google refused), after trying every
/// channel; the old channels stay held for the next run.
pub fn renew() -> Result<(), Error> {
    let now = now_ms();
    let held = channel::list();
    let mut first_error = None;
    let mut renewed: Vec<String> = Vec::new();
    for old in &held {
        if old.resource.is_empty() {
            if now - i64::try_from(old.opened_ms).unwrap_or(0) > HALF_OPEN_MS {
                warn!(
                    "{RENEW_CHANNELS}: channel `{}` was never accepted; closed",
                    old.id
                );
                channel::close(&old.id);
            }
            continue;
        }
        if !due(old, now) {
            continue;
        }
        // Replaced already: in this run, or by a channel not due (a stop that failed before).
        let replaced = renewed.contains(&old.topic)
            || channel::list()
                .iter()
                .any(|c| c.id != old.id && c.topic == old.topic && live(c, now) && !due(c, now));
        if !replaced {
            if let Err(e) = watch(&old.topic) {
                warn!(
                    "{RENEW_CHANNELS}: no new channel for `{}`; `{}` stays",
                    old.topic, old.id
                );
                first_error.get_or_insert(e);
                continue;
            }
            renewed.push(old.topic.clone());
        }
        match stop(&old.id, &old.resource) {
            Ok(()) => channel::close(&old.id),
            Err(e) => {
                warn!(
                    "{RENEW_CHANNELS}: `{}` could not be stopped; it stays held until next time",
                    old.id
                );
                first_error.get_or_insert(e);
            }
        }
    }
    for calendar in renewed {
        let input = SyncInput {
            calendar_id: Some(calendar),
            run: None,
        };
        enqueue_job(SYNC, &input, 0)?;
    }
    first_error.map_or(Ok(()), Err)
}

/// Stops and closes every held channel (`unregister_webhooks`). A channel Google refuses to
/// stop for good (the grant is gone) is closed anyway: it expires at Google by itself and the
/// host drops its pushes; one Google could not stop for now stays held, and the job fails so
/// the host tries again.
///
/// # Errors
/// The first retryable failure.
pub fn stop_all() -> Result<(), Error> {
    let mut retry = None;
    for c in channel::list() {
        if c.resource.is_empty() {
            channel::close(&c.id);
            continue;
        }
        match stop(&c.id, &c.resource) {
            Ok(()) => channel::close(&c.id),
            Err(e @ Error::Retryable(_)) => {
                retry.get_or_insert(e);
            }
            Err(e) => {
                warn!(
                    "{}: channel `{}` closed without stopping it at Google: {e:?}",
                    crate::register::UNREGISTER,
                    c.id
                );
                channel::close(&c.id);
            }
        }
    }
    retry.map_or(Ok(()), Err)
}
