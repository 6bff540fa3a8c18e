//! `salesforce`: the Salesforce CRM connector.
//!
//! # Layout
//! - [`manifest`]: the `outbound` route, events with examples, the upsert actions, the jobs,
//!   config, the `salesforce` OAuth2 credential.
//! - [`config`]: the tenant's config keys, read and checked.
//! - [`api`]: REST URLs, SOQL, the calls and their answers' shapes.
//! - [`limits`]: what each answer means, the org's API usage and the slowing it asks for.
//! - [`record`]: the record an sObject becomes, and the newest-`SystemModstamp`-wins merge.
//! - [`store`]: a record applied through the host: written with lookups, announced once.
//! - [`index`]: the kv index of a type's held ids, for the re-list's diff.
//! - [`outbound`]: Outbound Messages: the `Ack`, and each notification applied once.
//! - [`sync`]: the `sync` job (SOQL by `SystemModstamp`, pages, continuations, the cursor).
//! - [`pass`]: one invocation of a sync run: its budget and the query pages it reads.
//! - [`deletions`]: a sync's deletions: `/deleted/`, or a re-list diffed with the index.
//! - [`refresh`]: the `refresh_record` job (one record read whole).
//! - [`upsert`]: `upsert_contact` (`crm:upsert_contact`) and `upsert_lead`.
//! - [`check`]: the `check_credentials` job.
//!
//! The host holds the grant (it mints the token by JWT bearer, client credentials or a refresh
//! token, attaches it, and re-mints once on a 401) and checks each outbound message's path
//! token and org id, and that it is well-formed XML, before any of this runs: no token of any
//! kind enters the connector.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod check;
pub mod config;
pub mod deletions;
pub mod index;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod pass;
pub mod record;
pub mod refresh;
pub mod store;
pub mod sync;
pub mod upsert;

use plugin_sdk::{Connector, Delivery, Error, Manifest, Outcome, Reply};

/// The connector.
pub struct Salesforce;

impl Connector for Salesforce {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error> {
        match delivery.route.as_str() {
            outbound::ROUTE => outbound::handle(&delivery),
            other => Ok(Outcome::ignored(format!("unknown route `{other}`"))),
        }
    }

    fn respond(delivery: Delivery) -> Result<Reply, Error> {
        match delivery.route.as_str() {
            outbound::ROUTE => Ok(outbound::respond()),
            other => Err(Error::permanent(format!("route `{other}` answers nothing"))),
        }
    }

    fn run_action(name: String, input: String, idempotency_key: String) -> Result<String, Error> {
        match name.as_str() {
            upsert::UPSERT_CONTACT => {
                upsert::run(upsert::Target::Contact, &input, &idempotency_key)
            }
            upsert::UPSERT_LEAD => upsert::run(upsert::Target::Lead, &input, &idempotency_key),
            other => Err(Error::permanent(format!("unknown action `{other}`"))),
        }
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        match name.as_str() {
            sync::SYNC => sync::run(&input),
            refresh::REFRESH_RECORD => refresh::run(&input),
            check::CHECK => check::run(),
            other => Err(Error::permanent(format!("unknown job `{other}`"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
use plugin_sdk::export_connector;

// The component exports only exist on the WebAssembly target: natively (unit tests) the
// `cdylib` cannot carry WIT export names, and nothing would call them anyway.
#[cfg(target_arch = "wasm32")]
export_connector!(Salesforce);
