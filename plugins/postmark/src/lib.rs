//! Postmark: webhooks guarded by HTTP Basic credentials in the webhook URL (the hub checks them,
//! in constant time, before any of this runs) into `email` records whose status only moves
//! forward and `suppression` records, with the `email.*` events the Resend and SendGrid
//! connectors publish; `send_email` on `POST /email`, at most once per key; the jobs `hub
//! connect` runs, which register the hub's webhook URL at Postmark with Basic credentials the
//! host generates and keeps ([`register`]). Written from `hub new-connector postmark`.

mod api;
mod manifest;
mod model;
mod register;
mod send;
mod webhook;

use plugin_sdk::*;

/// The connector.
pub struct Postmark;

impl Connector for Postmark {
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

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            manifest::CHECK_CREDENTIALS => send::check_credentials(),
            register::REGISTER => register::register(),
            register::UNREGISTER => register::unregister(),
            register::VERIFY => register::verify(&input),
            _ => Err(Error::permanent(format!("unknown job `{name}`"))),
        }
    }
}

export_connector!(Postmark);

#[cfg(test)]
mod tests;
