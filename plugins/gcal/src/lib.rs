//! `gcal`: the Google Calendar connector.
//!
//! # Layout
//! - [`manifest`]: the `push` channel route, events with examples, actions, jobs, config, the
//!   `google` OAuth2 credential.
//! - [`api`]: Calendar API v3 requests with the host-held grant, errors and rate limits.
//! - [`config`]: the tenant's config keys, read and checked.
//! - [`event`]: the `event` record read from Google's `Event`, its lookups and payloads.
//! - [`index`]: the kv index of a calendar's held events, for the re-list's diff.
//! - [`store`]: an event applied through the host: newest version kept, published once.
//! - [`sync`]: the `sync` job (syncToken, pages, continuations, 410 and the diff).
//! - [`push`]: Google's pushes, into `sync` jobs.
//! - [`channels`]: `watch_events`, `renew_channels`, stopping channels.
//! - [`register`]: `register_webhooks`, `unregister_webhooks`, `check_credentials`.
//! - [`slots`]: the `get_slots` action (`calendar:get_slots`) from freeBusy.
//! - [`book`]: the `create_event` action (`calendar:book`), at most once per key.
//! - [`change`]: `update_event` and `cancel_event` (`calendar:cancel`).
//! - [`time`]: RFC 3339 and dates to epoch ms and back.
//! - [`zone`]: IANA zones' offsets from their POSIX rules; [`tzdata`]: the table.
//!
//! The host holds the grant (it mints, caches and refreshes the token and attaches it) and the
//! channels' tokens, and checks each push against the channels it holds before any of this
//! runs: no token of any kind enters the connector.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod book;
pub mod change;
pub mod channels;
pub mod config;
pub mod event;
pub mod index;
pub mod manifest;
pub mod push;
pub mod register;
pub mod slots;
pub mod store;
pub mod sync;
pub mod time;
pub mod tzdata;
pub mod zone;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome};

/// The connector.
pub struct Gcal;

impl Connector for Gcal {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        push::handle(&delivery)
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            slots::GET_SLOTS => slots::run(&input),
            book::CREATE_EVENT => book::run(&input, &idempotency_key),
            change::UPDATE_EVENT => change::update(&input, &idempotency_key),
            change::CANCEL_EVENT => change::cancel(&input, &idempotency_key),
            other => Err(Error::permanent(format!("unknown action `{other}`"))),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            sync::SYNC => sync::run(&input),
            channels::WATCH_EVENTS => channels::watch_events(&input),
            channels::RENEW_CHANNELS => channels::renew(),
            register::REGISTER => register::register(&input),
            register::UNREGISTER => register::unregister(),
            register::CHECK => register::check_credentials(),
            other => Err(Error::permanent(format!("unknown job `{other}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Gcal);
