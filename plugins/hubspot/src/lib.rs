//! `hubspot`: the HubSpot CRM connector.
//!
//! # Layout
//! - [`manifest`]: routes, events, the `upsert_contact` action, the `sync_contacts` job.
//! - [`api`]: the CRM v3 API: URLs, bodies, answers, rate-limit rules, and the calls.
//! - [`event`]: one webhook event and the contact change it is.
//! - [`contact`]: the `contact` record and its ordering rules (stale changes never win).
//! - [`store`]: records, the `contact_email` index and `hubspot.contact.*` events.
//! - [`webhook`]: handling a webhook event (fetching the contact when the event lacks data).
//! - [`apply`]: merging API answers into records (the `apply_contacts` job).
//! - [`sync`]: the incremental `sync_contacts` job.
//! - [`upsert`]: the `upsert_contact` action.
//! - [`time`]: ISO 8601 and epoch-ms timestamps.
//!
//! The host verifies HubSpot's signature (v3, falling back to v2 and v1) with the app's
//! `client_secret`, splits each POSTed array into one delivery per event, and routes each to
//! the tenant whose `portal_id` config names the event's `portalId`, before any of this runs.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod apply;
pub mod contact;
pub mod event;
pub mod manifest;
pub mod store;
pub mod sync;
pub mod time;
pub mod upsert;
pub mod webhook;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome};

/// The connector.
pub struct Hubspot;

impl Connector for Hubspot {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        match delivery.route.as_str() {
            webhook::WEBHOOK | webhook::PRIVATE => webhook::handle(&delivery),
            other => Ok(Outcome::ignored(format!("unknown route `{other}`"))),
        }
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            upsert::UPSERT_CONTACT => upsert::run(&input, &idempotency_key),
            other => Err(Error::permanent(format!("unknown action `{other}`"))),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            sync::SYNC_CONTACTS => sync::run(&input),
            apply::APPLY_CONTACTS => apply::run(&input).map(|_| ()),
            other => Err(Error::permanent(format!("unknown job `{other}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Hubspot);
