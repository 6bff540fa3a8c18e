//! `calcom`: the Cal.com connector.
//!
//! # Layout
//! - [`manifest`]: the HMAC-signed route, events with examples, actions, jobs, config.
//! - [`api`]: API v2: requests with each endpoint's `cal-api-version`, errors and rate limits,
//!   bookings read into observations.
//! - [`booking`]: the `booking` record, its status order, lookups and event payloads.
//! - [`merge`]: the merge rules (newest wins, status forward only, reschedule chain, events
//!   once), pure.
//! - [`store`]: an observation applied through the host: record, lookups, events.
//! - [`webhook`]: Cal.com's webhooks as observations.
//! - [`event_type`]: which event type and zone an action means (input, else config).
//! - [`slots`]: the `get_slots` action (`calendar:get_slots`).
//! - [`book`]: the `create_booking` action (`calendar:book`), at most once per key.
//! - [`change`]: `cancel_booking` (`calendar:cancel`) and `reschedule_booking`.
//! - [`reconcile`]: the `reconcile_bookings` job (Cal.com never retries a webhook).
//! - [`register`]: `register_webhooks`, `unregister_webhooks`, `check_credentials`.
//! - [`time`]: RFC 3339 to epoch ms and back.
//!
//! The host verifies `X-Cal-Signature-256` (hex HMAC-SHA256 of the raw body) with the
//! `webhook_secret` credential before any of this runs, and attaches the `api_key` credential
//! to API calls.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod book;
pub mod booking;
pub mod change;
pub mod event_type;
pub mod manifest;
pub mod merge;
pub mod reconcile;
pub mod register;
pub mod slots;
pub mod store;
pub mod time;
pub mod webhook;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome};

/// The connector.
pub struct Calcom;

impl Connector for Calcom {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        webhook::handle(&delivery)
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            slots::GET_SLOTS => slots::run(&input),
            book::CREATE_BOOKING => book::run(&input, &idempotency_key),
            change::CANCEL_BOOKING => change::cancel(&input, &idempotency_key),
            change::RESCHEDULE_BOOKING => change::reschedule(&input, &idempotency_key),
            other => Err(Error::permanent(format!("unknown action `{other}`"))),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            reconcile::RECONCILE => reconcile::run(&input),
            register::REGISTER => register::register(),
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
export_connector!(Calcom);
