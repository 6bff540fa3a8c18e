//! `resend`: the Resend email connector.
//!
//! - Route `""` (`/hooks/{tenant}/resend`) takes Resend's Svix-signed webhooks. Every `email.*`
//!   event merges into one `email` record per email id that never regresses ([`merge`]);
//!   permanent bounces and complaints (and Resend's own suppressions) write a `suppression`
//!   record per lowercase address; the matching `email.*` hub events are published once.
//! - Action `send_email` sends through `POST /emails` with the tenant's `from`, an
//!   `Idempotency-Key` derived from the action's key, and refuses suppressed recipients.
//!
//! - Jobs `register_webhooks` / `unregister_webhooks` ([`register`]) register the hub's URL at
//!   Resend and have the host keep the signing secret Resend answers.
//!
//! The host verifies the `svix-*` headers with the `webhook_secret` credential before any of
//! this runs, and attaches the `api_key` credential to API calls.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod register;
pub mod send;
pub mod webhook;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome};

/// The connector.
pub struct Resend;

impl Connector for Resend {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        webhook::handle(&delivery)
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            send::SEND_EMAIL => send::run(&input, &idempotency_key),
            _ => Err(Error::permanent(format!("unknown action `{name}`"))),
        }
    }

    fn run_job(name: String, _input: String) -> Result<(), Error> {
        match name.as_str() {
            register::REGISTER => register::register(),
            register::UNREGISTER => register::unregister(),
            _ => Err(Error::permanent(format!("unknown job `{name}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Resend);
