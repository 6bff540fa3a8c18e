//! `hub.toml` from text to a validated [`Config`]; every error names file, line and field.
//!
//! Parsing has two stages: `RawConfig` (in `raw.rs`) is what the user wrote, with
//! `deny_unknown_fields` everywhere; [`Config`] has absolute paths, checked values and resolved
//! references. [`Config::from_str`] does the work and is pure apart from making the config file's
//! path absolute; [`Config::from_file`] reads the file and calls it. Environment overrides such as
//! `HUB_MASTER_KEY` are read by `main`, not here.
//!
//! Credentials stay sealed in [`Config`] ([`Sealed`]); [`Config::open_vault`] opens them all into a
//! [`Vault`]. [`Config::locate`] maps any dotted path back to its line, so other modules can
//! report problems (a missing credential, a bad route) in the same `file:line:col: field:` form.
//! [`edit`] rewrites sealed values in place, keeping comments and layout.
//!
//! See `example.toml` in this folder for every field with its default.

mod capabilities;
mod checker;
mod database;
pub mod document;
pub mod edit;
mod endpoints;
mod error;
pub mod oauth;
pub mod postgres;
mod raw;
mod span;
mod tenant;
pub mod tools;
mod values;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize as _;
use url::Url;

#[cfg(test)]
pub(crate) use crate::id::id;
use crate::id::{ConnectorId, EndpointName, TenantId, TokenName};
pub use database::Database;
pub use error::{ConfigError, Location, Result};
pub use oauth::{Grant, OAuthSetting};
pub use postgres::PostgresSettings;
pub use values::{Origin, Sealed};

use crate::secrets::{self, MasterKey, Place, Vault};
use checker::Checker;
use raw::RawConfig;
use span::{Lines, Pos, SpanIndex};

/// A validated `hub.toml`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[server]`: listener, limits, key file and admin token.
    pub server: ServerConfig,
    /// `[connectors.<id>]`: every connector the hub loads.
    pub connectors: BTreeMap<ConnectorId, ConnectorConfig>,
    /// `[tenants.<id>]`: every tenant; each names only connectors declared in
    /// [`Config::connectors`].
    pub tenants: BTreeMap<TenantId, TenantConfig>,
    /// The config file as the caller named it (used in [`Location`]s).
    file: PathBuf,
    spans: SpanIndex,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to bind (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Where the admin surfaces listen (`/api/v1`, `/console`, `/metrics`, `/mcp`), when they
    /// should not share the providers' port: a loopback or private address. With it set,
    /// `listen` serves the webhooks and health alone and answers 404 for the rest.
    pub admin_listen: Option<SocketAddr>,
    /// The base URL providers call (http or https, no query); signed-URL schemes sign against it.
    pub public_url: Url,
    /// Absolute; holds the SQLite database and the compile cache (default `./data`).
    pub data_dir: PathBuf,
    /// Largest accepted request body in bytes, 1 to 64 MiB (default 1 MiB).
    pub body_limit: u64,
    /// Concurrent jobs, 0 to 1024 (default 16). 0: webhooks are stored and queued but nothing
    /// is processed (maintenance, or to measure ingest alone).
    pub workers: usize,
    /// Per-tenant ingress rate limit.
    pub rate_limit: RateLimit,
    /// Absolute path of the master key file, if configured; `HUB_MASTER_KEY` wins over it.
    pub master_key_file: Option<PathBuf>,
    /// Bearer token for the admin API ([`Place::Server`] `admin_token`); the API is off without it.
    pub admin_token: Option<Sealed>,
    /// Delivery payloads older than this many days are pruned (default 30).
    pub retention_days: u64,
    /// Audit entries older than this many days are pruned (default 365).
    pub audit_retention_days: u64,
    /// Where the hub keeps its state (`server.database`; default: SQLite in `data_dir`).
    pub database: Database,
    /// Where operational alerts go (`[server.alerts]`), if anywhere.
    pub alerts: Option<AlertsConfig>,
    /// Where traces go (`[server.telemetry]`), if anywhere.
    pub telemetry: Option<TelemetryConfig>,
}

/// `[server.telemetry]`: the OpenTelemetry collector that receives the hub's traces.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP traces URL: `endpoint` as written when its path names one, else
    /// `{endpoint}/v1/traces` (`http://127.0.0.1:4318` becomes `http://127.0.0.1:4318/v1/traces`).
    pub endpoint: Url,
    /// The `service.name` the spans carry (default `hub`).
    pub service_name: String,
    /// The share of new traces recorded, 0 to 1 (default 1); a trace a provider started follows
    /// the provider's sampled flag.
    pub sample_ratio: f64,
}

/// `[server.alerts]`: the operator's alert receiver.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// The receiver's URL ([`Place::Server`] `alerts.url`): a Slack incoming webhook is itself a
    /// secret, so it is sealed like one.
    pub url: Sealed,
    /// A Standard Webhooks secret (`whsec_...`, [`Place::Server`] `alerts.secret`) that signs
    /// each alert; none: unsigned (Slack checks nothing).
    pub secret: Option<Sealed>,
    /// One message per cause per window, then a summary (default 1 hour).
    pub window: Duration,
    /// The queue's oldest due job older than this raises an alert (default 15 minutes).
    pub queue_age: Duration,
    /// The receiver may be on a private address (one on the operator's own network).
    pub allow_private: bool,
}

/// A token bucket: `per_second` sustained, up to `burst` at once. Both at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second (default 50).
    pub per_second: u32,
    /// Bucket size (default 100).
    pub burst: u32,
}

/// `[connectors.<id>]`.
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// Where the component comes from.
    pub source: ConnectorSource,
    /// Origins the operator allows this connector to reach; the connector's own declared hosts
    /// are further limited to these.
    pub allow_hosts: Vec<Origin>,
    /// Operator stand-ins: requests to the first origin (one of `allow_hosts`) go to the second,
    /// which is trusted as named (it may be a loopback mock). For tests, mocks and egress proxies.
    pub stand_ins: Vec<(Origin, Origin)>,
    /// Linear memory limit in MiB, 1 to 1024 (default 64).
    pub memory_mb: u32,
    /// Wall-time limit per invocation, 1 ms to 10 minutes (default 10 s, `timeout_ms`).
    pub timeout: Duration,
    /// Fallback credentials for tenants that have none of their own ([`Place::Global`]).
    pub credentials: BTreeMap<String, Sealed>,
    /// Attempts before a failing job is dead-lettered (default 8).
    pub max_attempts: i64,
    /// Age after which a failing job is dead-lettered rather than retried (default 1 day).
    pub max_age: Duration,
    /// Jobs of this connector running at once, all tenants together (default 16).
    pub concurrency: usize,
    /// Jobs of this connector running at once for one tenant (default 4).
    pub tenant_concurrency: usize,
    /// Whether the jobs the connector schedules itself (its manifest's `schedule`) run for its
    /// tenants (default true); false leaves every schedule to the tenants' own.
    pub default_schedules: bool,
}

/// Where a connector's WebAssembly component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectorSource {
    /// Bundled in the hub binary under the connector's id (`builtin = true`).
    Builtin,
    /// A `.wasm` file; absolute (written relative to the config file). Not checked to exist here.
    Path(PathBuf),
}

/// `[tenants.<id>]`.
#[derive(Clone, Debug)]
pub struct TenantConfig {
    /// Display name (defaults to the id).
    pub name: String,
    /// The connectors this tenant uses, each declared under `[connectors]`.
    pub connectors: BTreeMap<ConnectorId, TenantConnector>,
    /// Time zone for the tenant's schedules (default UTC).
    pub timezone: chrono_tz::Tz,
    /// The country calling code (`"+1"`) of the tenant's phone numbers written without one, so
    /// they are found like any other (see `plugin_sdk::lookup::resolve`); without it such
    /// numbers are not lookups.
    pub phone_country_code: Option<String>,
    /// Which connector does what for the tenant (`email = "sendgrid"`): capability name ->
    /// connector, each one the tenant uses (`plugin_sdk::capability`).
    pub capabilities: BTreeMap<&'static str, ConnectorId>,
    /// Event -> action rules (`[[tenants.<id>.routes]]`).
    pub routes: Vec<RouteRule>,
    /// Cron schedules that queue connector jobs (`[[tenants.<id>.schedules]]`).
    pub schedules: Vec<Schedule>,
    /// The tenant's API tokens, by name (`[tenants.<id>.api_tokens.<name>]`): each opens this
    /// tenant alone in `/api/v1`.
    pub api_tokens: BTreeMap<TokenName, ApiToken>,
    /// Where the tenant's app receives its events (`[tenants.<id>.endpoints.<name>]`).
    pub endpoints: BTreeMap<EndpointName, Endpoint>,
    /// What its voice and chat agents may call mid-conversation, by name
    /// (`[tenants.<id>.tools]`).
    pub tools: BTreeMap<String, tools::Tool>,
}

/// `[tenants.<id>.endpoints.<name>]`: a URL of the tenant's app that receives the events it
/// subscribes to, signed per the Standard Webhooks spec.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Where to POST.
    pub url: Url,
    /// Which events: `connector:event`, `connector:prefix.*`, `connector:*` or `*`.
    pub events: Vec<EventPattern>,
    /// The signing secret (`whsec_...`, sealed at [`Place::Endpoint`] `secret`).
    pub secret: Sealed,
    /// The secret being rotated out: it signs too (a second signature) until `previous_until_ms`.
    pub previous_secret: Option<Sealed>,
    /// When the previous secret stops signing (ms since the epoch).
    pub previous_until_ms: Option<i64>,
    /// The operator allows a private or loopback address (an app on the same network).
    pub allow_private: bool,
    /// The waits before each retry; the delivery is dead-lettered after the last.
    pub retry_schedule: Vec<Duration>,
    /// Deliveries in flight to this endpoint at most.
    pub concurrency: usize,
}

/// Which events an endpoint wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPattern {
    /// Only this connector's (`None`: any).
    pub connector: Option<ConnectorId>,
    /// The event name, or its prefix when `prefix` (`call.` of `call.*`); empty for any.
    pub event: String,
    /// Whether `event` is a prefix.
    pub prefix: bool,
}

impl EventPattern {
    /// Whether `connector`'s event `name` is wanted.
    pub fn matches(&self, connector: &ConnectorId, name: &str) -> bool {
        self.connector.as_ref().is_none_or(|c| c == connector)
            && if self.prefix {
                name.starts_with(&self.event)
            } else {
                name == self.event
            }
    }
}

/// The wait before each retry of a webhook to the app, after a first attempt at once: seconds,
/// minutes, then hours, about 27 hours in all (Svix's schedule).
pub const DEFAULT_RETRY_SCHEDULE_SECS: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// `[tenants.<id>.api_tokens.<name>]`: a token the tenant's app presents as its bearer token.
#[derive(Clone, Debug)]
pub struct ApiToken {
    /// What it may do.
    pub scope: TokenScope,
    /// The token, sealed ([`Place::ApiToken`]).
    pub token: Sealed,
}

/// What a tenant's API token may do. `read` < `replay` < `act` < `manage`, each allowing what
/// the one before does; `tools` stands apart: it lists and calls the tenant's agent tools
/// (`/mcp/{tenant}`) and reads nothing else, for a voice platform's MCP node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read the tenant's deliveries, jobs, records, events and change feed.
    #[default]
    Read,
    /// Read, and replay the tenant's deliveries and jobs and queue its sync jobs.
    Replay,
    /// Replay, and ask for actions (`POST /tenants/{t}/actions`) and call the tenant's tools.
    Act,
    /// Act, and set the tenant's own credentials from the console.
    Manage,
    /// Only list and call the tenant's tools.
    Tools,
}

impl TokenScope {
    /// The scope as written in `hub.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Replay => "replay",
            TokenScope::Act => "act",
            TokenScope::Manage => "manage",
            TokenScope::Tools => "tools",
        }
    }

    /// Whether it reads the tenant's data (every scope but `tools`).
    pub fn reads(self) -> bool {
        self != TokenScope::Tools
    }

    /// Whether it replays and syncs (`replay`, `act`, `manage`).
    pub fn replays(self) -> bool {
        matches!(
            self,
            TokenScope::Replay | TokenScope::Act | TokenScope::Manage
        )
    }

    /// Whether it asks for actions (`act`, `manage`).
    pub fn acts(self) -> bool {
        matches!(self, TokenScope::Act | TokenScope::Manage)
    }

    /// Whether it calls tools (`tools`, and whatever may act).
    pub fn calls_tools(self) -> bool {
        self == TokenScope::Tools || self.acts()
    }

    /// The scope a `--scope` argument names.
    pub fn parse(text: &str) -> Option<TokenScope> {
        [
            TokenScope::Read,
            TokenScope::Replay,
            TokenScope::Act,
            TokenScope::Manage,
            TokenScope::Tools,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One route: when `source` publishes `event` (and `when` holds), run `target`'s `action` with
/// `input` rendered from the event.
#[derive(Clone, Debug)]
pub struct RouteRule {
    /// Unique within the tenant; part of every action's idempotency key.
    pub name: String,
    /// Connector that publishes the event.
    pub source: ConnectorId,
    /// Event name.
    pub event: String,
    /// Optional minijinja expression over `event`, e.g. `event.in_voicemail == false`.
    pub when: Option<String>,
    /// Connector that runs the action (for `capability:operation`, the tenant's connector
    /// for the capability).
    pub target: ConnectorId,
    /// What it runs.
    pub action: RouteAction,
    /// The action's input: strings are minijinja templates rendered against the event.
    pub input: serde_json::Map<String, serde_json::Value>,
    /// Position in the file (for error locations).
    pub index: usize,
}

/// What a route runs on its target.
#[derive(Clone, Debug)]
pub enum RouteAction {
    /// `connector:action`: that action.
    Action(String),
    /// `capability:operation` (`email:send`): the target's action that implements it, with
    /// the operation's one input shape whichever provider the target is.
    Operation(&'static plugin_sdk::capability::Operation),
}

impl std::fmt::Display for RouteAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteAction::Action(name) => f.write_str(name),
            RouteAction::Operation(op) => f.write_str(op.id),
        }
    }
}

/// What a schedule does about ticks missed while the hub was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Run once at start for all the missed ticks together.
    #[default]
    RunOnce,
    /// Forget them; wait for the next tick.
    Skip,
}

/// One cron schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Unique within the tenant.
    pub name: String,
    /// Cron expression with seconds, evaluated in the tenant's time zone.
    pub cron: cron::Schedule,
    /// Connector whose job runs.
    pub connector: ConnectorId,
    /// Job name.
    pub job: String,
    /// JSON input for the job.
    pub input: String,
    /// Missed-tick policy.
    pub missed: Missed,
    /// Position in the file (for error locations).
    pub index: usize,
}

/// `[tenants.<tenant>.connectors.<connector>]`.
#[derive(Clone, Debug)]
pub struct TenantConnector {
    /// Non-secret settings handed to the connector, from the `config` table.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The tenant's own credentials ([`Place::Tenant`]).
    pub credentials: BTreeMap<String, Sealed>,
    /// Until when (ms) a credential's `previous_<name>` still verifies webhooks (a rotation
    /// with overlap: `hub seal --rotate`, or the console's "keep the old value").
    pub previous_until_ms: Option<i64>,
    /// How the host obtains each of the connector's OAuth2 credentials for this tenant
    /// (`oauth.<name>`); their secrets are in `credentials` ([`oauth::secret_name`]).
    pub oauth: BTreeMap<String, OAuthSetting>,
}

impl Config {
    /// Reads and parses the config file at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Io`] if it cannot be read, else as [`Config::from_str`].
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Config::from_str(&text, path)
    }

    /// Parses and validates `text`, the contents of the config file `path`. Relative paths in it
    /// are resolved against `path`'s folder (made absolute using the working directory if `path`
    /// is relative); errors display `path` as given.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for TOML syntax, type errors, unknown fields, bad ids, plaintext
    /// credentials and failed checks, located at the offending line and field.
    #[allow(clippy::should_implement_trait)] // `FromStr` cannot take the path.
    pub fn from_str(text: &str, path: &Path) -> Result<Config> {
        let absolute = std::path::absolute(path).map_err(|source| ConfigError::Io {
            action: "resolve the folder of",
            path: path.to_owned(),
            source,
        })?;
        let base = absolute
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_owned);
        let (table, spans, syntax_errors) = SpanIndex::parse(text);
        let lines = Lines::new(text);
        let checker = Checker {
            file: path,
            spans: &spans,
            base,
        };
        let toml_error = |err: &toml::de::Error| {
            let (mut at, pos) = spans.at(&lines, err.span());
            let mut message = err.message().trim_end().to_owned();
            // toml points a missing field at its table; name the field itself.
            if let Some(name) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
            {
                at.push(name.to_owned());
                message = "required field is missing".to_owned();
            }
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            checker.error_at(pos, &at, message)
        };
        if let Some(err) = syntax_errors.first() {
            return Err(toml_error(err));
        }
        let raw = RawConfig::deserialize(toml::de::Deserializer::from(table))
            .map_err(|err| toml_error(&err))?;
        let mut config = raw.validate(&checker)?;
        config.spans = spans;
        Ok(config)
    }

    /// The config file as the caller named it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where the key at dotted `path` is written (e.g. `["tenants", "abc", "connectors",
    /// "retell"]`); for a path not in the file, its nearest written ancestor; else line 1.
    pub fn locate(&self, path: &[&str]) -> Location {
        self.location(self.spans.key_pos(path))
    }

    fn location(&self, pos: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
        }
    }

    /// Every sealed value with its place, in file order.
    fn sealed_values(&self) -> Vec<(Place, &Sealed)> {
        let mut out = Vec::new();
        if let Some(token) = &self.server.admin_token {
            let field = "admin_token".to_owned();
            out.push((Place::Server { field }, token));
        }
        if let Database::Postgres {
            password: Some(password),
            ..
        } = &self.server.database
        {
            let field = "database_password".to_owned();
            out.push((Place::Server { field }, password));
        }
        if let Some(alerts) = &self.server.alerts {
            let field = "alerts.url".to_owned();
            out.push((Place::Server { field }, &alerts.url));
            if let Some(secret) = &alerts.secret {
                let field = "alerts.secret".to_owned();
                out.push((Place::Server { field }, secret));
            }
        }
        for (connector, c) in &self.connectors {
            for (field, sealed) in &c.credentials {
                let place = Place::Global {
                    connector: connector.to_string(),
                    field: field.clone(),
                };
                out.push((place, sealed));
            }
        }
        for (tenant, t) in &self.tenants {
            for (name, endpoint) in &t.endpoints {
                let current = std::iter::once(("secret", &endpoint.secret));
                let previous = endpoint
                    .previous_secret
                    .iter()
                    .map(|s| ("previous_secret", s));
                for (field, sealed) in current.chain(previous) {
                    let place = Place::Endpoint {
                        tenant: tenant.to_string(),
                        name: name.to_string(),
                        field: field.to_owned(),
                    };
                    out.push((place, sealed));
                }
            }
            for (name, api_token) in &t.api_tokens {
                let place = Place::ApiToken {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                };
                out.push((place, &api_token.token));
            }
            for (connector, c) in &t.connectors {
                for (field, sealed) in &c.credentials {
                    let place = Place::Tenant {
                        tenant: tenant.to_string(),
                        connector: connector.to_string(),
                        field: field.clone(),
                    };
                    out.push((place, sealed));
                }
            }
        }
        out.sort_by_cached_key(|(place, _)| self.spans.value_pos(&place.path()));
        out
    }

    /// Opens every sealed value (admin token, global and tenant credentials) with `key`.
    ///
    /// # Errors
    /// [`ConfigError::Secret`] at the first value (in file order) that fails to open; with a wrong
    /// master key that is [`SecretError::CannotOpen`](crate::secrets::SecretError::CannotOpen),
    /// whose message says so.
    pub fn open_vault(&self, key: &MasterKey) -> Result<Vault> {
        let mut vault = Vault::new();
        for (place, sealed) in self.sealed_values() {
            let value = secrets::open(key, &place, sealed.as_str()).map_err(|error| {
                ConfigError::Secret {
                    location: self.location(self.spans.value_pos(&place.path())),
                    field: place.to_string(),
                    error,
                }
            })?;
            vault.insert(place, value);
        }
        Ok(vault)
    }
}
