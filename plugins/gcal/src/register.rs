//! The jobs the hub runs on connect and disconnect (`hub connect`, the consent flow, the
//! console's **Test**): `register_webhooks` watches the configured calendar (a live channel
//! already held is kept, and `renew_channels` renews it: registering twice opens nothing twice)
//! and queues its first sync; `unregister_webhooks` stops and closes every held channel;
//! `check_credentials` proves the grant with one cheap read.
//!
//! Google has no webhook secret to register: each channel's token is made and held by the
//! host ([`plugin_sdk::channel`]).

use plugin_sdk::{Error, channel};

use crate::api;
use crate::channels::{self, CalendarInput, calendar_input};
use crate::config;
use crate::time::now_ms;

/// The job that watches the configured calendar.
pub const REGISTER: &str = "register_webhooks";
/// The job that stops every channel.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The job the console's **Test** button runs.
pub const CHECK: &str = "check_credentials";

/// `register_webhooks`.
///
/// # Errors
/// As [`channels::watch`].
pub fn register(input: &str) -> Result<(), Error> {
    let CalendarInput { calendar_id } = calendar_input(REGISTER, input)?;
    let calendar = config::calendar_id(calendar_id.as_deref())?;
    let now = now_ms();
    let live = channel::list()
        .iter()
        .any(|c| c.topic == calendar && channels::live(c, now));
    if !live {
        channels::watch(&calendar)?;
    }
    channels::ensure_synced(&calendar)
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`channels::stop_all`].
pub fn unregister() -> Result<(), Error> {
    channels::stop_all()
}

/// `check_credentials`: `GET /calendars/{id}/events?maxResults=1` with the grant (the
/// calendar's metadata, `GET /calendars/{id}`, needs a scope the connector does not ask for);
/// writes nothing.
///
/// # Errors
/// Google's refusal, with its message (a refused grant or a calendar the account cannot see:
/// permanent).
pub fn check_credentials() -> Result<(), Error> {
    let calendar = config::calendar_id(None)?;
    let path = format!("{}/events?maxResults=1", api::calendar_path(&calendar));
    let resp = api::call("GET", &path).send()?;
    api::check(resp, Some(&calendar)).map(|_| ())
}
