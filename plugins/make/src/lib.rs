//! Make.com: scenarios post to the hub, and the hub triggers scenarios. Written from
//! `hub new-connector make --scheme token` (docs/connectors/make.md).
//!
//! - Make -> hub: a scenario's HTTP module posts to `/hooks/{tenant}/make` with the tenant's
//!   token in `x-hub-token` and `Idempotency-Key: {{executionId}}` (nothing in Make signs), so
//!   a retried post is stored once; each becomes a `scenario_post` record and a
//!   `make.received` event routes can act on.
//! - hub -> Make: `trigger_webhook` posts to the scenario's custom webhook; `run_scenario` runs
//!   one through `POST /api/v2/scenarios/{id}/run`. At most once per idempotency key.

mod inbound;
mod manifest;
mod outbound;

use plugin_sdk::*;

/// The connector.
pub struct Make;

impl Connector for Make {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(d: Delivery) -> Result<Outcome, Error> {
        inbound::handle(&d)
    }

    fn run_action(name: String, input: String, key: String) -> Result<String, Error> {
        match name.as_str() {
            manifest::TRIGGER_WEBHOOK => outbound::trigger_webhook(&input, &key),
            manifest::RUN_SCENARIO => outbound::run_scenario(&input, &key),
            _ => Err(Error::permanent(format!("unknown action `{name}`"))),
        }
    }

    fn run_job(name: String, _input: String) -> Result<(), Error> {
        match name.as_str() {
            manifest::CHECK_CREDENTIALS => outbound::check_credentials(),
            _ => Err(Error::permanent(format!("unknown job `{name}`"))),
        }
    }
}

export_connector!(Make);

#[cfg(test)]
mod tests;
