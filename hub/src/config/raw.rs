//! Stage one: [`RawConfig`], exactly what the user wrote, and its checks into a [`Config`].
//!
//! Every struct denies unknown fields. Defaults live here; the checks that need more than one
//! value's type (ranges, references, paths) run in [`RawConfig::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::checker::Checker;
use super::span::SpanIndex;
use super::tenant::RawTenant;
use super::{
    AlertsConfig, Config, ConfigError, ConnectorConfig, ConnectorSource, Origin, RateLimit, Sealed,
    ServerConfig, TelemetryConfig,
};
use crate::id::{ConnectorId, TenantId};

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
    admin_listen: Option<String>,
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
    #[serde(default = "default_audit_retention_days")]
    audit_retention_days: u64,
    database: Option<String>,
    database_password: Option<Sealed>,
    alerts: Option<RawAlerts>,
    telemetry: Option<RawTelemetry>,
}

/// `[server.telemetry]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    endpoint: String,
    #[serde(default = "default_service_name")]
    service_name: String,
    #[serde(default = "default_sample_ratio")]
    sample_ratio: f64,
}

fn default_service_name() -> String {
    "hub".to_owned()
}

fn default_sample_ratio() -> f64 {
    1.0
}

/// `[server.alerts]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    url: Sealed,
    secret: Option<Sealed>,
    #[serde(default = "default_alert_window")]
    window_secs: u64,
    #[serde(default = "default_queue_age")]
    queue_age_secs: u64,
    #[serde(default)]
    allow_private: bool,
}

fn default_alert_window() -> u64 {
    3600
}

fn default_queue_age() -> u64 {
    900
}

fn default_retention_days() -> u64 {
    30
}

fn default_audit_retention_days() -> u64 {
    365
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
    #[serde(default = "yes")]
    default_schedules: bool,
    #[serde(default)]
    credentials: BTreeMap<String, Sealed>,
}

fn yes() -> bool {
    true
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
        // What differs between hosts sharing one file (a container, a sibling hub) may come from
        // the environment, which wins over the file.
        let env = |var| std::env::var(var).ok().filter(|v| !v.is_empty());
        let listen: SocketAddr = if let Some(text) = env("HUB_LISTEN") {
            text.parse().map_err(|_| ConfigError::Env {
                var: "HUB_LISTEN",
                message: format!(
                    "invalid listen address {text:?}: expected IP:PORT, like \"0.0.0.0:8080\""
                ),
            })?
        } else {
            self.listen.parse().map_err(|_| {
            c.value(
                &at("listen"),
                format!(
                    "invalid listen address {:?}: expected IP:PORT, like \"127.0.0.1:8080\" or \"[::]:8080\"",
                    self.listen
                ),
            )
            })?
        };
        let data_dir = match env("HUB_DATA_DIR") {
            Some(dir) if std::path::Path::new(&dir).is_absolute() => std::path::PathBuf::from(dir),
            Some(dir) => {
                return Err(ConfigError::Env {
                    var: "HUB_DATA_DIR",
                    message: format!("{dir:?} is not an absolute path"),
                });
            }
            None => c.path(&at("data_dir"), &self.data_dir)?,
        };
        let admin_listen: Option<SocketAddr> = match &self.admin_listen {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    c.value(
                        &at("admin_listen"),
                        format!(
                            "invalid listen address {text:?}: expected IP:PORT, like \"127.0.0.1:8081\""
                        ),
                    )
                })?;
                if addr == listen {
                    return Err(c.value(
                        &at("admin_listen"),
                        "the same address as server.listen: give the admin surfaces a port of their own",
                    ));
                }
                Some(addr)
            }
        };
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
            admin_listen,
            public_url,
            data_dir,
            body_limit: c.in_range(&at("body_limit"), self.body_limit, 1, 64 * MIB, " bytes")?,
            workers: c.in_range(&at("workers"), self.workers, 0, 1024, "")? as usize,
            retention_days: c.in_range(
                &at("retention_days"),
                self.retention_days,
                1,
                36_500,
                " days",
            )?,
            audit_retention_days: c.in_range(
                &at("audit_retention_days"),
                self.audit_retention_days,
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
            master_key_file: match (env("HUB_MASTER_KEY_FILE"), &self.master_key_file) {
                (Some(file), _) if std::path::Path::new(&file).is_absolute() => Some(file.into()),
                (Some(file), _) => {
                    return Err(ConfigError::Env {
                        var: "HUB_MASTER_KEY_FILE",
                        message: format!("{file:?} is not an absolute path"),
                    });
                }
                (None, Some(file)) => Some(c.path(&at("master_key_file"), file)?),
                (None, None) => None,
            },
            admin_token: self.admin_token,
            database: super::database::parse(c, self.database.as_deref(), self.database_password)?,
            alerts: match self.alerts {
                None => None,
                Some(a) => {
                    let at = |f| ["server", "alerts", f];
                    Some(AlertsConfig {
                        url: a.url,
                        secret: a.secret,
                        window: Duration::from_secs(c.in_range(
                            &at("window_secs"),
                            a.window_secs,
                            10,
                            7 * 86_400,
                            " seconds",
                        )?),
                        queue_age: Duration::from_secs(c.in_range(
                            &at("queue_age_secs"),
                            a.queue_age_secs,
                            10,
                            7 * 86_400,
                            " seconds",
                        )?),
                        allow_private: a.allow_private,
                    })
                }
            },
            telemetry: match self.telemetry {
                None => None,
                Some(t) => Some(t.validate(c)?),
            },
        })
    }
}

impl RawTelemetry {
    fn validate(self, c: &Checker<'_>) -> Result<TelemetryConfig, ConfigError> {
        let at = |f| ["server", "telemetry", f];
        let mut endpoint = Url::parse(&self.endpoint)
            .map_err(|e| c.value(&at("endpoint"), format!("not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(c.value(
                &at("endpoint"),
                "must be the collector's OTLP/HTTP URL, like \"http://127.0.0.1:4318\"",
            ));
        }
        if endpoint.path() == "/" {
            endpoint.set_path("/v1/traces");
        }
        if self.service_name.trim().is_empty() {
            return Err(c.value(&at("service_name"), "must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(c.value(
                &at("sample_ratio"),
                format!("{} is not between 0 and 1", self.sample_ratio),
            ));
        }
        Ok(TelemetryConfig {
            endpoint,
            service_name: self.service_name,
            sample_ratio: self.sample_ratio,
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
            if !allow_hosts.iter().any(|a| a.covers(&origin)) {
                return Err(c.key(
                    &[at[0], at[1], "stand_ins", &from],
                    "a stand-in must replace an origin listed in `allow_hosts` (or under a wildcard origin there)",
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
            default_schedules: self.default_schedules,
        })
    }
}
