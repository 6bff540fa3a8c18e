//! `zapier`: the Zapier connector.
//!
//! # Layout
//! - [`manifest`]: routes, events, the `notify` action, the `deliver` job, the `token` credential.
//! - [`body`]: reading JSON, JSON-array and form bodies and query strings into fields.
//! - [`item`]: what a caught item is (contact, deal, task), its key, and how it merges.
//! - [`catch`]: the `catch` / `catch-path` routes: items into records and `zapier.*` events.
//! - [`subscription`]: REST-hook `subscription` records and what a subscribe must hold.
//! - [`hooks`]: the synchronous `subscribe`, `unsubscribe` and `sample` routes.
//! - [`sample`]: recent payloads (or records) for Zapier's "perform list".
//! - [`notify`]: the `notify` action and its `deliver` retry job.
//!
//! Every route is guarded by the tenant's `token` credential, checked by the host in constant
//! time before any of this runs.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod body;
pub mod catch;
pub mod hooks;
pub mod item;
pub mod manifest;
pub mod notify;
pub mod sample;
pub mod subscription;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome, Reply};

/// The connector.
pub struct Zapier;

impl Connector for Zapier {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        match delivery.route.as_str() {
            catch::CATCH | catch::CATCH_PATH => catch::handle(&delivery),
            // Answered (and committed) synchronously by `respond`; nothing is left to do.
            hooks::SUBSCRIBE | hooks::UNSUBSCRIBE | hooks::SAMPLE => Ok(Outcome::handled()),
            other => Ok(Outcome::ignored(format!("unknown route `{other}`"))),
        }
    }

    fn respond(delivery: Delivery) -> Result<Reply, Error> {
        hooks::respond(&delivery)
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            notify::NOTIFY => notify::notify(&input, &idempotency_key),
            other => Err(Error::permanent(format!("unknown action `{other}`"))),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            notify::DELIVER => notify::deliver(&input),
            other => Err(Error::permanent(format!("unknown job `{other}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Zapier);
