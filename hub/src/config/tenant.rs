//! A tenant's sections of `hub.toml`, as written ([`RawTenant`]) and checked, one function per
//! section: its connectors, time zone, phone country code, capabilities, routes, schedules,
//! endpoints and API tokens.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::checker::{Checker, split_pair, to_json};
use super::{
    ApiToken, ConfigError, ConnectorConfig, Missed, RouteAction, RouteRule, Schedule, Sealed,
    TenantConfig, TenantConnector, TokenScope,
};
use crate::id::{ConnectorId, EndpointName, TenantId, TokenName};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
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
    /// The tools its agents may call, by name: a built-in's name or a table.
    #[serde(default)]
    tools: BTreeMap<String, toml::Value>,
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
    /// How the host obtains each OAuth2 credential's access token.
    #[serde(default)]
    oauth: BTreeMap<String, super::oauth::RawOAuth>,
}

impl RawTenant {
    /// Checks a tenant's sections, each by its own function, into a [`TenantConfig`].
    pub(super) fn validate(
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
        let connectors = connectors(c, at, declared, self.connectors)?;
        let timezone = timezone(c, at, self.timezone.as_deref())?;
        let phone_country_code = phone_country_code(c, at, self.phone_country_code)?;
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
        let routes = routes(c, at, &connectors, &capabilities, self.routes)?;
        let schedules = schedules(c, at, &connectors, self.schedules)?;
        let endpoints = super::endpoints::validate(c, at, &connectors, self.endpoints)?;
        let api_tokens = api_tokens(self.api_tokens);
        let tools = super::tools::validate(c, at, &connectors, &capabilities, self.tools)?;
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
            tools,
        })
    }
}

/// `[tenants.<id>.connectors.<c>]`: each a declared connector; config to JSON; the rotation window.
fn connectors(
    c: &Checker<'_>,
    at: [&str; 2],
    declared: &BTreeMap<ConnectorId, ConnectorConfig>,
    raw: BTreeMap<ConnectorId, RawTenantConnector>,
) -> Result<BTreeMap<ConnectorId, TenantConnector>, ConfigError> {
    let mut connectors = BTreeMap::new();
    for (cid, raw) in raw {
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
        let mut oauth = BTreeMap::new();
        for (name, table) in raw.oauth {
            let path = [here[0], here[1], here[2], here[3], "oauth", name.as_str()];
            oauth.insert(name.clone(), super::oauth::validate(c, &path, table)?);
        }
        connectors.insert(
            cid,
            TenantConnector {
                config,
                credentials: raw.credentials,
                previous_until_ms,
                oauth,
            },
        );
    }
    Ok(connectors)
}

/// `timezone`: an IANA name (UTC when absent).
fn timezone(
    c: &Checker<'_>,
    at: [&str; 2],
    tz: Option<&str>,
) -> Result<chrono_tz::Tz, ConfigError> {
    let timezone = match tz {
        None => chrono_tz::UTC,
        Some(tz) => tz.parse::<chrono_tz::Tz>().map_err(|_| {
            c.value(
                &[at[0], at[1], "timezone"],
                format!("unknown time zone `{tz}` (use an IANA name such as `America/New_York`)"),
            )
        })?,
    };
    Ok(timezone)
}

/// `phone_country_code`: a `+` and 1 to 3 digits.
fn phone_country_code(
    c: &Checker<'_>,
    at: [&str; 2],
    code: Option<String>,
) -> Result<Option<String>, ConfigError> {
    let phone_country_code = match code {
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
    Ok(phone_country_code)
}

/// `[[tenants.<id>.routes]]`: each from an event of a connector the tenant uses to an action
/// (or capability operation) it can reach, named once.
fn routes(
    c: &Checker<'_>,
    at: [&str; 2],
    connectors: &BTreeMap<ConnectorId, TenantConnector>,
    capabilities: &BTreeMap<&'static str, ConnectorId>,
    raw: Vec<RawRoute>,
) -> Result<Vec<RouteRule>, ConfigError> {
    let mut routes = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
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
            capabilities,
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
    Ok(routes)
}

/// `[[tenants.<id>.schedules]]`: a cron with seconds, a connector the tenant uses, named once.
fn schedules(
    c: &Checker<'_>,
    at: [&str; 2],
    connectors: &BTreeMap<ConnectorId, TenantConnector>,
    raw: Vec<RawSchedule>,
) -> Result<Vec<Schedule>, ConfigError> {
    let mut schedules = Vec::new();
    for (i, sch) in raw.into_iter().enumerate() {
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
        if sch.name.trim().is_empty() || schedules.iter().any(|x: &Schedule| x.name == sch.name) {
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
    Ok(schedules)
}

/// `[tenants.<id>.api_tokens.<name>]`: a scope and a sealed token.
fn api_tokens(raw: BTreeMap<TokenName, RawApiToken>) -> BTreeMap<TokenName, ApiToken> {
    raw.into_iter()
        .map(|(name, t)| {
            let token = ApiToken {
                scope: t.scope,
                token: t.token,
            };
            (name, token)
        })
        .collect()
}
