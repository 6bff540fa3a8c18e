//! `retell`: the Retell AI connector.
//!
//! - Route `""` (`/hooks/{tenant}/retell`) takes Retell's call webhooks (`call_started`,
//!   `call_ended`, `call_analyzed`, `transcript_updated`, `transfer_*`), keeps one `call`
//!   record per call ([`merge`] never lets it regress) and publishes `call.started`,
//!   `call.ended` and `call.analyzed` once each. An end or analysis without a transcript is
//!   completed with get-call, inline or in the `fetch_call` job.
//! - Route `chat` takes chat agents' webhooks (`chat_*`) into `chat` records.
//! - Route `inbound` answers the inbound-call webhook synchronously with dynamic variables.
//! - Route `tools` takes agents' custom functions; the hub answers each with the tenant's tool
//!   (`[tenants.T.tools]`), as the route's `tool-calls` says where to find name and arguments.
//! - Jobs `sync_agents`, `sync_phone_numbers` and `backfill_calls` pull from the API.
//! - Jobs `register_webhooks` / `unregister_webhooks` ([`register`]) point the tenant's agents
//!   (and, with `inbound_variables`, its numbers' inbound webhook) at the hub, or away again.
//!
//! The host verifies `x-retell-signature` with the `api_key` credential before any of this runs.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod inbound;
pub mod jobs;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod register;
pub mod store;
pub mod webhook;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome, Reply};

/// The connector.
pub struct Retell;

impl Connector for Retell {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        webhook::handle(&delivery)
    }

    fn respond(delivery: Delivery) -> Result<Reply, Error> {
        inbound::respond(&delivery)
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            register::REGISTER => register::register(),
            register::UNREGISTER => register::unregister(),
            _ => jobs::run(&name, &input),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Retell);
