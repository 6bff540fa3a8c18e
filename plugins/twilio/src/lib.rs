//! `twilio`: the Twilio SMS and WhatsApp connector.
//!
//! - Route `sms` (`/hooks/{tenant}/twilio/sms`) takes inbound messages: a `message` record
//!   and a `message.received` event each; opt-out keywords write an `opt_out` record keyed by
//!   the sender, opt-in keywords delete it ([`inbound`]). Twilio waits for the TwiML answer
//!   `respond` computes.
//! - Route `status` takes status callbacks into the outbound message's record, which never
//!   regresses ([`status`]).
//! - Action `send_message` sends an SMS or WhatsApp message, at most once per idempotency
//!   key as far as Twilio lets us tell ([`send`]).
//! - Jobs `register_webhooks` / `unregister_webhooks` ([`register`]) point the tenant's number's
//!   `SmsUrl` at the `sms` route (`hub connect`) and take it back (`--undo`).
//!
//! The host verifies `X-Twilio-Signature` with the `auth_token` credential (over the URL
//! Twilio called, from the hub's public URL) before any of this runs.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod address;
pub mod inbound;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod register;
pub mod send;
pub mod status;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome, Reply};

/// The connector.
pub struct Twilio;

impl Connector for Twilio {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        match delivery.route.as_str() {
            manifest::SMS_ROUTE => inbound::handle(&delivery),
            manifest::STATUS_ROUTE => status::handle(&delivery),
            other => Ok(Outcome::ignored(format!("no route `{other}`"))),
        }
    }

    fn respond(delivery: Delivery) -> Result<Reply, Error> {
        inbound::respond(&delivery)
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            send::SEND_MESSAGE => send::run(&input, &idempotency_key),
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
export_connector!(Twilio);
