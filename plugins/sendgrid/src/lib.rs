//! SendGrid: the Event Webhook (ECDSA P-256 signed, verified by the hub before any of this
//! runs; each event of a batch stored once by `sg_event_id`) into `email` records whose status
//! only moves forward and `suppression` records, with the `email.*` events the Resend connector
//! publishes; `send_email` on `/v3/mail/send`, at most once per key; `register_webhooks` /
//! `unregister_webhooks` ([`register`], run by `hub connect`) register that Event Webhook at
//! SendGrid and have the host keep its verification key. Written from `hub new-connector
//! sendgrid` (docs/connectors/sendgrid.md).

mod manifest;
mod merge;
mod model;
pub mod register;
mod send;
mod webhook;

use plugin_sdk::*;

/// The connector.
pub struct Sendgrid;

impl Connector for Sendgrid {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(d: Delivery) -> Result<Outcome, Error> {
        webhook::handle(&d)
    }

    fn run_action(name: String, input: String, key: String) -> Result<String, Error> {
        match name.as_str() {
            manifest::SEND_EMAIL => send::run(&input, &key),
            _ => Err(Error::permanent(format!("unknown action `{name}`"))),
        }
    }

    fn run_job(name: String, _input: String) -> Result<(), Error> {
        match name.as_str() {
            manifest::CHECK_CREDENTIALS => send::check_credentials(),
            register::REGISTER => register::register(),
            register::UNREGISTER => register::unregister(),
            _ => Err(Error::permanent(format!("unknown job `{name}`"))),
        }
    }
}

export_connector!(Sendgrid);

#[cfg(test)]
mod tests;
