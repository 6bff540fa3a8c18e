//! The hub: verified webhooks in, sandboxed WebAssembly connectors, durable records and jobs out.
//!
//! Data flows one way: [`ingress`] -> [`store`] -> [`worker`] -> [`runtime`] -> [`store`], and
//! out through [`admin`] and [`console`]; actions asked for through the API come in as jobs
//! ([`actions`]) and take the same path. Every surface shares one [`Hub`] ([`state`]), built once.
//!
//! # Layout
//! - [`id`]: [`TenantId`](id::TenantId) and [`ConnectorId`](id::ConnectorId), checked once, typed throughout.
//! - [`clock`]: milliseconds since the epoch, the unit of every stored time.
//! - [`config`]: `hub.toml` from text to a validated [`Config`]; errors name file, line and field.
//! - [`files`]: the data directory and its files, private to the operator (`0700`, `0600`).
//! - [`auth`]: who calls `/api/v1`: the admin, or a tenant's app with its token's scope.
//! - [`secrets`]: the master key, sealing and opening credentials, the [`Vault`] of opened values,
//!   and the redactor that masks each of them wherever text leaves the hub.
//! - [`state`]: the shared [`Hub`] (config, store, runtime, vault, tenant directory, rate limiter).
//! - [`server`]: the router of every HTTP surface; runs workers, scheduler and retention; drains.
//! - [`reload`]: live config: the hub that serves now, rebuilt whole from an edited `hub.toml`.
//! - [`ingress`]: `/hooks/...` as stages: route, rate limit, verify, select, store, answer.
//! - [`store`]: the database: webhook log, job queue with leases, records, kv, events; its nouns
//!   (`model`) apart from the two backends (`sqlite`, `postgres`); SQLite's backup and restore.
//! - [`worker`]: claims jobs, runs each task kind in the sandbox, retries with backoff, dead-letters.
//! - [`runtime`]: the wasmtime sandbox: engine, compile cache, one fresh instance per call, host imports.
//! - [`routing`]: tenant routes: events become durable action jobs with derived idempotency keys.
//! - [`outbox`]: webhooks to the tenants' apps: fan-out, Standard Webhooks signatures, sending.
//! - [`actions`]: actions asked for from outside (the API, agents' tool calls): resolved, checked,
//!   queued once per key, waited for; their outcomes published as events.
//! - [`connections`]: connected accounts: the OAuth2 tokens the host holds for connectors (minted,
//!   cached, refreshed once across every hub), and the consent flow at `/connect`.
//! - [`tools`]: the tools a tenant's agents call mid-conversation: a lookup, or an action.
//! - [`mcp`]: `/mcp/{tenant}`, the tenant's tools as an MCP server (the official SDK, `rmcp`).
//! - [`simulate`]: test webhooks: a route's declared example, signed with the tenant's credential.
//! - [`fixtures`]: recorded invocations run through the real sandbox (`hub test-connector`).
//! - [`scheduler`]: cron schedules queue connector jobs; restarts, missed ticks, one run per tick.
//! - [`alerts`]: what an operator must hear of (dead letters, disabled endpoints, accounts to
//!   reconnect, a stuck queue), de-duplicated and rate-limited, posted to `[server.alerts]`.
//! - [`retention`]: prunes old delivery payloads, finished jobs and events in small batches.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and the bearer-guarded `/api/v1`.
//! - [`console`]: the operator's web console at `/console`: log, jobs, tenants, analytics.
//! - [`check`]: what `hub check` validates beyond parsing: connectors' declared needs per tenant.
//! - [`metrics`]: Prometheus counters and histograms (metrics-exporter-prometheus), served at `/metrics`.
#![deny(unsafe_code)]

pub mod actions;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod check;
pub mod clock;
pub mod config;
pub mod connections;
pub mod console;
pub mod database;
pub mod files;
pub mod fixtures;
pub mod id;
pub mod ingress;
pub mod mcp;
pub mod metrics;
pub mod outbox;
pub mod reload;
pub mod retention;
pub mod routing;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod simulate;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod worker;

pub use config::Config;
pub use secrets::Vault;
pub use server::run;
pub use state::{Hub, build};
