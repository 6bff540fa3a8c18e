//! The hub: verified webhooks in, sandboxed WebAssembly connectors, durable records and jobs out.
//!
//! # Layout
//! - [`server`]: builds the [`Hub`] state once and serves the router until shutdown.
//! - [`ingress`]: `POST /hooks/...`: find route, rate-limit, verify, store, acknowledge.
//! - [`worker`]: claims jobs, runs connectors, retries with backoff, dead-letters.
//! - [`scheduler`]: cron schedules queue connector jobs; restarts, missed ticks, one run per tick.
//! - [`retention`]: prunes old delivery payloads, finished jobs and events in small batches.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and the bearer-guarded `/api/v1`.
//! - [`check`]: what `hub check` validates beyond parsing: connectors' declared needs per tenant.
//! - [`metrics`]: counters in the Prometheus text format.
//! - [`config`]: `hub.toml` from text to a validated [`Config`]; errors name file, line and field.
//! - [`secrets`]: the master key, sealing and opening credentials, the [`Vault`] of opened values.
//! - [`routing`]: tenant routes: events become durable action jobs with derived idempotency keys.
//! - [`runtime`]: the wasmtime sandbox: engine, compile cache, one fresh instance per call, host imports.
//! - [`store`]: the SQLite file: webhook log, job queue with leases, records, kv, events; group commit.
#![deny(unsafe_code)]

pub mod admin;
pub mod check;
pub mod config;
pub mod ingress;
pub mod metrics;
pub mod retention;
pub mod routing;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod worker;

pub use config::Config;
pub use secrets::Vault;
pub use server::run;
pub use state::{Hub, build};
