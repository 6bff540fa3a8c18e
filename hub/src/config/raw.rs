//! Stage one: [`RawConfig`], exactly what the user wrote, and its checks into a [`Config`].
//!
//! Every struct denies unknown fields. Defaults live here; the checks that need more than one
//! value's type (ranges, references, paths) run in [`RawConfig::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::span::{Pos, SpanIndex, dotted};
use super::{
    ApiToken, Config, ConfigError, ConnectorConfig, ConnectorId, ConnectorSource, EndpointName,
    Location, Missed, Origin, RateLimit, RouteAction, RouteRule, Schedule, Sealed, ServerConfig,
    TenantConfig, TenantConnector, TenantId, TokenName, TokenScope,
};

const MIB: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    server: RawServer,
    #[serde(default)]
    connectors: BTreeMap<ConnectorId, RawConnector>,
    #[serde(default)]
    tenants: BTreeMap<TenantId, RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
    public_url: String,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default = "default_body_limit")]
    body_limit: u64,
    #[serde(default = "default_workers")]
    workers: u64,
    #[serde(default)]
    rate_limit: RawRateLimit,
    master_key_file: Option<String>,
    admin_token: Option<Sealed>,
    #[serde(default = "default_retention_days")]
    retention_days: u64,
    database: Option<String>,
    database_password: Option<Sealed>,
}

fn default_retention_days() -> u64 {
    30
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_data_dir() -> String {
    "./data".to_owned()
}
fn default_body_limit() -> u64 {
    MIB
}
fn default_workers() -> u64 {
    16
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default = "default_per_second")]
    per_second: u32,
    #[serde(default = "default_burst")]
    burst: u32,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        RawRateLimit {
            per_second: default_per_second(),
            burst: default_burst(),
        }
    }
}
fn default_per_second() -> u32 {
    50
}
fn default_burst() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    #[serde(default)]
    builtin: bool,
    path: Option<String>,
    /// Checked in [`RawConnector::validate`] so an error can point at the element.
    #[serde(default)]
    allow_hosts: Vec<String>,
    /// Declared origin -> stand-in URL (a local mock or a proxy).
    #[serde(default)]
    stand_ins: BTreeMap<String, String>,
    #[serde(default = "default_memory_mb")]
    memory_mb: u32,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u64,
    #[serde(default = "default_max_age_secs")]
    max_age_secs: u64,
    #[serde(default = "default_concurrency")]
    concurrency: u64,
    #[serde(default = "default_tenant_concurrency")]
    tenant_concurrency: u64,
    #[serde(default)]
    credentials: BTreeMap<String, Sealed>,
}

fn default_memory_mb() -> u32 {
    64
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u64 {
    8
}
fn default_max_age_secs() -> u64 {
    86_400
}
fn default_concurrency() -> u64 {
    16
}
fn default_tenant_concurrency() -> u64 {
    4
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: Option<String>,
    timezone: Option<String>,
    phone_country_code: Option<String>,
    /// The connector that sends the tenant's email (`email:send`).
    email: Option<ConnectorId>,
    /// The connector that sends its text messages (`sms:send`).
    sms: Option<ConnectorId>,
    /// The connector that keeps its CRM contacts (`crm:upsert_contact`).
    crm: Option<ConnectorId>,
    /// The connector that keeps its calendar.
    calendar: Option<ConnectorId>,
    #[serde(default)]
    connectors: BTreeMap<ConnectorId, RawTenantConnector>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
    #[serde(default)]
    api_tokens: BTreeMap<TokenName, RawApiToken>,
    #[serde(default)]
    endpoints: BTreeMap<EndpointName, super::endpoints::RawEndpoint>,
}

/// `[tenants.<id>.api_tokens.<name>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiToken {
    #[serde(default)]
    scope: TokenScope,
    token: Sealed,
}

/// `[[tenants.<id>.routes]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    on: String,
    when: Option<String>,
    action: String,
    #[serde(default)]
    input: toml::Table,
}

/// `[[tenants.<id>.schedules]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    cron: String,
    connector: ConnectorId,
    job: String,
    #[serde(default)]
    input: toml::Table,
    #[serde(default)]
    missed: Missed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenantConnector {
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    credentials: BTreeMap<String, Sealed>,
    /// Until when (RFC 3339) the `previous_<name>` credentials still verify webhooks.
    #[serde(default)]
    previous_until: Option<String>,
}

/// Builds errors located through the span index.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) spans: &'a SpanIndex,
    /// The absolute folder of the config file; relative paths resolve against it.
    pub(super) base: PathBuf,
}

impl Checker<'_> {
    pub(super) fn error_at(&self, pos: Pos, path: &[&str], message: String) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                file: self.file.to_owned(),
                line: pos.line,
                col: pos.col,
            },
            field: dotted(path),
            message,
        }
    }

    /// An error about the value at `path` (pointing at the value).
    pub(super) fn value(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        self.error_at(self.spans.value_pos(path), path, message.into())
    }

    /// An error about the key at `path` (pointing at the key).
    pub(super) fn key(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        self.error_at(self.spans.key_pos(path), path, message.into())
    }

    fn in_range<T: PartialOrd + std::fmt::Display>(
        &self,
        path: &[&str],
        value: T,
        min: T,
        max: T,
        unit: &str,
    ) -> Result<T, ConfigError> {
        if value < min || value > max {
            return Err(self.value(path, format!("must be {min} to {max}{unit}, found {value}")));
        }
        Ok(value)
    }

    fn path(&self, path: &[&str], text: &str) -> Result<PathBuf, ConfigError> {
        if text.is_empty() {
            return Err(self.value(path, "must not be empty"));
        }
        // `base` is absolute, so the result is too; `.` components are dropped for tidiness.
        Ok(self
            .base
            .join(text)
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect())
    }
}

impl RawConfig {
    /// Checks values and references and turns this into a [`Config`] (minus its span index).
    pub(super) fn validate(self, c: &Checker<'_>) -> Result<Config, ConfigError> {
        let server = self.server.validate(c)?;
        let mut connectors = BTreeMap::new();
        for (id, raw) in self.connectors {
            super::capabilities::check_connector_name(c, &id)?;
            let connector = raw.validate(c, &["connectors", id.as_str()])?;
            connectors.insert(id, connector);
        }
        let mut tenants = BTreeMap::new();
        for (id, raw) in self.tenants {
            let tenant = raw.validate(c, &id, &connectors)?;
            tenants.insert(id, tenant);
        }
        Ok(Config {
            server,
            connectors,
            tenants,
            file: c.file.to_owned(),
            spans: SpanIndex::default(),
        })
    }
}

impl RawServer {
    fn validate(self, c: &Checker<'_>) -> Result<ServerConfig, ConfigError> {
        let at = |field| ["server", field];
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            c.value(
                &at("listen"),
                format!(
                    "invalid listen address {:?}: expected IP:PORT, like \"127.0.0.1:8080\" or \"[::]:8080\"",
                    self.listen
                ),
            )
        })?;
        let public_url = Url::parse(&self.public_url)
            .map_err(|e| c.value(&at("public_url"), format!("not a URL: {e}")))?;
        if !matches!(public_url.scheme(), "http" | "https") || public_url.host().is_none() {
            return Err(c.value(
                &at("public_url"),
                "must be an http or https URL with a host, like \"https://hub.example.com\"",
            ));
        }
        if public_url.query().is_some() || public_url.fragment().is_some() {
            return Err(c.value(&at("public_url"), "must not have a query or fragment"));
        }
        let rate = ["server", "rate_limit"];
        Ok(ServerConfig {
            listen,
            public_url,
            data_dir: c.path(&at("data_dir"), &self.data_dir)?,
            body_limit: c.in_range(&at("body_limit"), self.body_limit, 1, 64 * MIB, " bytes")?,
            workers: c.in_range(&at("workers"), self.workers, 0, 1024, "")? as usize,
            retention_days: c.in_range(
                &at("retention_days"),
                self.retention_days,
                1,
                36_500,
                " days",
            )?,
            rate_limit: RateLimit {
                per_second: c.in_range(
                    &[rate[0], rate[1], "per_second"],
                    self.rate_limit.per_second,
                    1,
                    u32::MAX,
                    "",
                )?,
                burst: c.in_range(
                    &[rate[0], rate[1], "burst"],
                    self.rate_limit.burst,
                    1,
                    u32::MAX,
                    "",
                )?,
            },
            master_key_file: match &self.master_key_file {
                Some(file) => Some(c.path(&at("master_key_file"), file)?),
                None => None,
            },
            admin_token: self.admin_token,
            database: super::database::parse(c, self.database.as_deref(), self.database_password)?,
        })
    }
}

impl RawConnector {
    fn validate(self, c: &Checker<'_>, at: &[&str]) -> Result<ConnectorConfig, ConfigError> {
        let field = |name| [at[0], at[1], name];
        let source = match (self.builtin, &self.path) {
            (true, Some(_)) => {
                return Err(c.key(
                    &field("path"),
                    "set either `builtin = true` (bundled in the hub) or `path` (a .wasm file), not both",
                ));
            }
            (true, None) => ConnectorSource::Builtin,
            (false, Some(path)) => ConnectorSource::Path(c.path(&field("path"), path)?),
            (false, None) => {
                return Err(c.key(
                    at,
                    "say where the connector comes from: `builtin = true` or `path = \"plugins/name.wasm\"`",
                ));
            }
        };
        let mut allow_hosts = Vec::with_capacity(self.allow_hosts.len());
        for (i, host) in self.allow_hosts.into_iter().enumerate() {
            let index = i.to_string();
            let origin = Origin::try_from(host)
                .map_err(|msg| c.value(&[at[0], at[1], "allow_hosts", &index], msg))?;
            allow_hosts.push(origin);
        }
        let mut stand_ins = Vec::with_capacity(self.stand_ins.len());
        for (from, to) in self.stand_ins {
            let origin = Origin::try_from(from.clone())
                .map_err(|msg| c.key(&[at[0], at[1], "stand_ins", &from], msg))?;
            if !allow_hosts.contains(&origin) {
                return Err(c.key(
                    &[at[0], at[1], "stand_ins", &from],
                    "a stand-in must replace an origin listed in `allow_hosts`",
                ));
            }
            let target = Origin::try_from(to)
                .map_err(|msg| c.value(&[at[0], at[1], "stand_ins", &from], msg))?;
            stand_ins.push((origin, target));
        }
        Ok(ConnectorConfig {
            source,
            allow_hosts,
            stand_ins,
            memory_mb: c.in_range(&field("memory_mb"), self.memory_mb, 1, 1024, " MiB")?,
            timeout: Duration::from_millis(c.in_range(
                &field("timeout_ms"),
                self.timeout_ms,
                1,
                600_000,
                " ms",
            )?),
            credentials: self.credentials,
            max_attempts: c.in_range(&field("max_attempts"), self.max_attempts, 1, 100, "")? as i64,
            max_age: Duration::from_secs(c.in_range(
                &field("max_age_secs"),
                self.max_age_secs,
                1,
                30 * 86_400,
                " s",
            )?),
            concurrency: c.in_range(&field("concurrency"), self.concurrency, 1, 1024, "")? as usize,
            tenant_concurrency: c.in_range(
                &field("tenant_concurrency"),
                self.tenant_concurrency,
                1,
                1024,
                "",
            )? as usize,
        })
    }
}

impl RawTenant {
    fn validate(
        self,
        c: &Checker<'_>,
        id: &TenantId,
        declared: &BTreeMap<ConnectorId, ConnectorConfig>,
    ) -> Result<TenantConfig, ConfigError> {
        let at = ["tenants", id.as_str()];
        let name = self.name.unwrap_or_else(|| id.to_string());
        if name.trim().is_empty() {
            return Err(c.value(&[at[0], at[1], "name"], "must not be empty"));
        }
        let mut connectors = BTreeMap::new();
        for (cid, raw) in self.connectors {
            let here = [at[0], at[1], "connectors", cid.as_str()];
            if !declared.contains_key(&cid) {
                let known: Vec<&str> = declared.keys().map(ConnectorId::as_str).collect();
                return Err(c.key(
                    &here,
                    format!(
                        "unknown connector `{cid}`: declare it in a [connectors.{cid}] table (declared: {})",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                ));
            }
            let mut config = serde_json::Map::new();
            for (key, value) in raw.config {
                let path = [here[0], here[1], here[2], here[3], "config", key.as_str()];
                config.insert(key.clone(), to_json(c, &path, value)?);
            }
            let previous_until_ms = match &raw.previous_until {
                None => None,
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|err| {
                            c.value(
                                &[here[0], here[1], here[2], here[3], "previous_until"],
                                format!("an RFC 3339 time such as 2026-12-08T00:00:00Z: {err}"),
                            )
                        })?
                        .timestamp_millis(),
                ),
            };
            connectors.insert(
                cid,
                TenantConnector {
                    config,
                    credentials: raw.credentials,
                    previous_until_ms,
                },
            );
        }
        let timezone = match &self.timezone {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse::<chrono_tz::Tz>().map_err(|_| {
                c.value(
                    &[at[0], at[1], "timezone"],
                    format!(
                        "unknown time zone `{tz}` (use an IANA name such as `America/New_York`)"
                    ),
                )
            })?,
        };
        let phone_country_code = match self.phone_country_code {
            Some(code) if !plugin_sdk::lookup::is_country_code(&code) => {
                return Err(c.value(
                    &[at[0], at[1], "phone_country_code"],
                    format!(
                        "`{code}` is not a country calling code (a `+` and 1 to 3 digits, like \"+1\" or \"+44\")"
                    ),
                ));
            }
            code => code,
        };
        let given = [
            ("email", &self.email),
            ("sms", &self.sms),
            ("crm", &self.crm),
            ("calendar", &self.calendar),
        ]
        .into_iter()
        .filter_map(|(name, c)| c.as_ref().map(|c| (name, c)))
        .collect();
        let capabilities = super::capabilities::validate(
            c,
            at,
            &connectors,
            super::capabilities::RawCapabilities { given },
        )?;
        let mut routes = Vec::new();
        for (i, r) in self.routes.into_iter().enumerate() {
            let index = i.to_string();
            let here = |f: &'static str| [at[0], at[1], "routes", index.as_str(), f];
            let uses = |cid: &str| connectors.get_key_value(cid).map(|(id, _)| id.clone());
            let (from, event) = split_pair(&r.on).ok_or_else(|| {
                c.value(
                    &here("on"),
                    "write `connector:event`, e.g. `retell:call.analyzed`",
                )
            })?;
            let Some(source) = uses(from) else {
                return Err(c.value(
                    &here("on"),
                    format!("this tenant does not use connector `{from}`"),
                ));
            };
            let (to, action) = split_pair(&r.action).ok_or_else(|| {
                c.value(
                    &here("action"),
                    "write `connector:action` (e.g. `resend:send_email`) or \
                     `capability:operation` (e.g. `email:send`)",
                )
            })?;
            let (target, action) = match super::capabilities::route_action(
                c,
                &here("action"),
                at[1],
                &capabilities,
                to,
                action,
            )? {
                Some(resolved) => resolved,
                None => match uses(to) {
                    Some(target) => (target, RouteAction::Action(action.to_string())),
                    None => {
                        return Err(c.value(
                            &here("action"),
                            format!(
                                "this tenant does not use connector `{to}` (and `{to}` is no \
                                 capability: email, sms, crm, calendar)"
                            ),
                        ));
                    }
                },
            };
            if r.name.trim().is_empty() || routes.iter().any(|x: &RouteRule| x.name == r.name) {
                return Err(c.value(
                    &here("name"),
                    "route names must be non-empty and unique within a tenant",
                ));
            }
            let mut input = serde_json::Map::new();
            for (key, value) in r.input {
                let path = [
                    at[0],
                    at[1],
                    "routes",
                    index.as_str(),
                    "input",
                    key.as_str(),
                ];
                input.insert(key.clone(), to_json(c, &path, value)?);
            }
            routes.push(RouteRule {
                name: r.name,
                source,
                event: event.to_string(),
                when: r.when,
                target,
                action,
                input,
                index: i,
            });
        }
        let mut schedules = Vec::new();
        for (i, sch) in self.schedules.into_iter().enumerate() {
            let index = i.to_string();
            let here = |f: &'static str| [at[0], at[1], "schedules", index.as_str(), f];
            let cron = sch.cron.parse::<cron::Schedule>().map_err(|e| {
                c.value(
                    &here("cron"),
                    format!(
                        "not a cron expression with seconds (`sec min hour day month weekday`): {e}"
                    ),
                )
            })?;
            if !connectors.contains_key(sch.connector.as_str()) {
                return Err(c.value(
                    &here("connector"),
                    format!("this tenant does not use connector `{}`", sch.connector),
                ));
            }
            if sch.name.trim().is_empty() || schedules.iter().any(|x: &Schedule| x.name == sch.name)
            {
                return Err(c.value(
                    &here("name"),
                    "schedule names must be non-empty and unique within a tenant",
                ));
            }
            let mut input = serde_json::Map::new();
            for (key, value) in sch.input {
                let path = [
                    at[0],
                    at[1],
                    "schedules",
                    index.as_str(),
                    "input",
                    key.as_str(),
                ];
                input.insert(key.clone(), to_json(c, &path, value)?);
            }
            schedules.push(Schedule {
                name: sch.name,
                cron,
                connector: sch.connector,
                job: sch.job,
                input: serde_json::Value::Object(input).to_string(),
                missed: sch.missed,
                index: i,
            });
        }
        let endpoints = super::endpoints::validate(c, at, &connectors, self.endpoints)?;
        let api_tokens = self
            .api_tokens
            .into_iter()
            .map(|(name, t)| {
                let token = ApiToken {
                    scope: t.scope,
                    token: t.token,
                };
                (name, token)
            })
            .collect();
        Ok(TenantConfig {
            name,
            connectors,
            timezone,
            phone_country_code,
            capabilities,
            routes,
            schedules,
            api_tokens,
            endpoints,
        })
    }
}

/// `a:b` into `("a", "b")`, both non-empty.
pub(super) fn split_pair(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.split_once(':')?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// Converts a tenant's connector config to JSON, the form connectors read. Datetimes become
/// strings; NaN and infinities have no JSON form and are refused.
fn to_json(
    c: &Checker<'_>,
    path: &[&str],
    value: toml::Value,
) -> Result<serde_json::Value, ConfigError> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| c.value(path, "NaN and infinite numbers are not allowed here"))?,
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let index = i.to_string();
                let mut inner = path.to_vec();
                inner.push(&index);
                out.push(to_json(c, &inner, item)?);
            }
            J::Array(out)
        }
        toml::Value::Table(table) => {
            let mut out = serde_json::Map::new();
            for (key, item) in table {
                let mut inner = path.to_vec();
                inner.push(&key);
                let converted = to_json(c, &inner, item)?;
                out.insert(key, converted);
            }
            J::Object(out)
        }
    })
}
