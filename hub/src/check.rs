//! `hub check`: everything a config must satisfy beyond parsing. Each connector loads and
//! describes itself; each tenant must give each connector it uses the credentials and config
//! keys the connector declares as required (a tenant's own credential, or the connector's global
//! fallback) and seal no credential it does not declare; every sealed value must open under the
//! master key; every route names an event its
//! source publishes and an action (with inputs) its target offers, or a capability operation
//! (`email:send`, with the operation's inputs) the tenant's connector for it implements, and its
//! condition and input templates render against the source's declared example event; every
//! schedule names a job; every tool's action exists for the tenant and takes the tool's inputs,
//! all it requires among them.

use crate::config::{Config, RouteAction, RouteRule, Schedule, TenantConnector};
use crate::id::{ConnectorId, TenantId};
use crate::runtime::{Loaded, Runtime};
use crate::secrets::Vault;

/// Problems found, each `file:line:col: field: message`: per tenant, each connector's declared
/// needs, then each route, then each schedule.
pub fn check(config: &Config, runtime: &Runtime, vault: &Vault) -> Vec<String> {
    let mut problems = Vec::new();
    for (tenant_id, tenant) in &config.tenants {
        for (connector_id, tc) in &tenant.connectors {
            if let Some(loaded) = runtime.connector(connector_id.as_str()) {
                let place = (tenant_id, connector_id);
                connector_needs(config, vault, place, tc, loaded, &mut problems);
            }
        }
        for route in &tenant.routes {
            route_reaches(config, runtime, tenant_id.as_str(), route, &mut problems);
        }
        for schedule in &tenant.schedules {
            schedule_job(config, runtime, tenant_id.as_str(), schedule, &mut problems);
        }
        for (name, tool) in &tenant.tools {
            tool_reaches(
                config,
                runtime,
                (tenant_id.as_str(), tenant),
                name,
                tool,
                &mut problems,
            );
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The credentials and config keys `loaded` requires of the tenant, no credential it does not
/// declare, and the credential each of its routes is verified with.
fn connector_needs(
    config: &Config,
    vault: &Vault,
    (tenant_id, connector_id): (&TenantId, &ConnectorId),
    tc: &TenantConnector,
    loaded: &Loaded,
    problems: &mut Vec<String>,
) {
    let (t, c) = (tenant_id.as_str(), connector_id.as_str());
    let here = config.locate(&["tenants", t, "connectors", c]);
    for cred in loaded.manifest.credentials.iter().filter(|f| f.required) {
        if vault.get(tenant_id, connector_id, &cred.name).is_none() {
            problems.push(format!(
                "{here}: tenants.{t}.connectors.{c}.credentials.{}: connector `{c}` requires credential `{}` ({}); \
                 seal one for the tenant or as connectors.{c}.credentials.{} (hub seal)",
                cred.name, cred.name, cred.description, cred.name
            ));
        }
    }
    // A sealed credential the connector never asks for is a typo or a leftover: the
    // connector would find the name it declares unset.
    let oauth_names = || loaded.manifest.oauth2.iter().map(|d| d.name.as_str());
    for name in tc.credentials.keys() {
        let declared = |n: &str| loaded.manifest.credentials.iter().any(|f| f.name == n);
        let rotated = name.strip_prefix("previous_").is_some_and(declared);
        let oauth_part = crate::config::oauth::is_secret_part(name, oauth_names());
        if !declared(name) && !rotated && !oauth_part {
            let names: Vec<&str> = loaded
                .manifest
                .credentials
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            problems.push(format!(
                "{}: tenants.{t}.connectors.{c}.credentials.{name}: connector `{c}` declares no credential `{name}` (it declares: {})",
                config.locate(&["tenants", t, "connectors", c, "credentials", name]),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        }
    }
    oauth_needs(
        config,
        vault,
        (tenant_id, connector_id),
        tc,
        loaded,
        problems,
    );
    for key in loaded.manifest.config.iter().filter(|f| f.required) {
        if !tc.config.contains_key(&key.name) {
            problems.push(format!(
                "{here}: tenants.{t}.connectors.{c}.config.{}: connector `{c}` requires config key `{}` ({})",
                key.name, key.name, key.description
            ));
        }
    }
    // A connector that registers its webhooks itself keeps the secret that verifies them when
    // `hub connect` runs: until then its routes answer 401, which is no error in the file.
    let registers = loaded
        .manifest
        .jobs
        .iter()
        .any(|j| j.name == crate::connections::registration::REGISTER);
    for route in loaded.manifest.routes.iter().filter(|_| !registers) {
        let scheme_needs_key = !matches!(
            route.signature,
            crate::runtime::SignatureScheme::None | crate::runtime::SignatureScheme::Channel(_)
        );
        if scheme_needs_key
            && vault
                .get(tenant_id, connector_id, &route.credential)
                .is_none()
        {
            problems.push(format!(
                "{here}: tenants.{t}.connectors.{c}.credentials.{}: route `{}` is verified with credential `{}`, which is not configured",
                route.credential, route.name, route.credential
            ));
        }
    }
}

/// Each `oauth.<name>` table names an OAuth2 credential the connector declares, with a grant
/// it supports, and the secrets that grant needs are sealed and parse.
fn oauth_needs(
    config: &Config,
    vault: &Vault,
    (tenant_id, connector_id): (&TenantId, &ConnectorId),
    tc: &TenantConnector,
    loaded: &Loaded,
    problems: &mut Vec<String>,
) {
    let (t, c) = (tenant_id.as_str(), connector_id.as_str());
    for (name, setting) in &tc.oauth {
        let at = config.locate(&["tenants", t, "connectors", c, "oauth", name]);
        let Some(decl) = loaded.manifest.oauth2.iter().find(|d| &d.name == name) else {
            let names: Vec<&str> = loaded
                .manifest
                .oauth2
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            problems.push(format!(
                "{at}: tenants.{t}.connectors.{c}.oauth.{name}: connector `{c}` declares no OAuth2 credential `{name}` (it declares: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
            continue;
        };
        if !crate::connections::declares(decl, setting.grant) {
            problems.push(format!(
                "{}: tenants.{t}.connectors.{c}.oauth.{name}.grant: connector `{c}` does not support the {} grant for `{name}`",
                config.locate(&["tenants", t, "connectors", c, "oauth", name, "grant"]),
                setting.grant.as_str()
            ));
            continue;
        }
        let key = crate::store::ConnectionKey {
            tenant: tenant_id.clone(),
            connector: connector_id.clone(),
            credential: name.clone(),
        };
        for (field, message) in crate::connections::check_setting(vault, &key, setting) {
            let place = ["tenants", t, "connectors", c, "credentials", field.as_str()];
            problems.push(format!(
                "{}: tenants.{t}.connectors.{c}.credentials.{field}: {message}",
                config.locate(&place)
            ));
        }
    }
}

/// A route names an event its source publishes and an action (or capability operation) its
/// target offers, with the inputs it takes; its condition and input render on the example.
fn route_reaches(
    config: &Config,
    runtime: &Runtime,
    t: &str,
    route: &RouteRule,
    problems: &mut Vec<String>,
) {
    let idx = route.index.to_string();
    let at = |field: &str| {
        let mut path = vec!["tenants", t, "routes", idx.as_str()];
        let first = field.split('.').next().unwrap_or(field);
        path.push(first);
        format!("{}: tenants.{t}.routes.{idx}.{field}", config.locate(&path))
    };
    let Some(source) = runtime.connector(route.source.as_str()) else {
        return;
    };
    let Some(event) = source
        .manifest
        .events
        .iter()
        .find(|e| e.name == route.event)
    else {
        let known: Vec<&str> = source
            .manifest
            .events
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        problems.push(format!(
            "{}: connector `{}` publishes no event `{}` (it publishes: {})",
            at("on"),
            route.source,
            route.event,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
        return;
    };
    let Some(target) = runtime.connector(route.target.as_str()) else {
        return;
    };
    let inputs: Vec<(&str, bool, &str)> = match &route.action {
        RouteAction::Action(name) => {
            let Some(action) = target.manifest.actions.iter().find(|a| a.name == *name) else {
                let known: Vec<&str> = target
                    .manifest
                    .actions
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                problems.push(format!(
                    "{}: connector `{}` offers no action `{name}` (it offers: {})",
                    at("action"),
                    route.target,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ));
                return;
            };
            action
                .inputs
                .iter()
                .map(|f| (f.name.as_str(), f.required, f.description.as_str()))
                .collect()
        }
        RouteAction::Operation(op) => {
            if crate::runtime::implementing(&target.manifest, op.id).is_none() {
                let able: Vec<&str> = runtime
                    .connectors()
                    .filter(|l| crate::runtime::implementing(&l.manifest, op.id).is_some())
                    .map(|l| l.id.as_str())
                    .collect();
                problems.push(format!(
                    "{}: tenants.{t}.{}: connector `{}` implements no `{}`, which route `{}` runs (loaded connectors that do: {})",
                    config.locate(&["tenants", t, op.capability]),
                    op.capability,
                    route.target,
                    op.id,
                    route.name,
                    if able.is_empty() { "none loaded".into() } else { able.join(", ") }
                ));
                return;
            }
            op.inputs
                .iter()
                .map(|i| (i.name, i.required, i.description))
                .collect()
        }
    };
    let runs = match &route.action {
        RouteAction::Action(name) => format!("action `{}:{name}`", route.target),
        RouteAction::Operation(op) => format!("`{}`", op.id),
    };
    for key in route.input.keys() {
        if !inputs.iter().any(|(name, ..)| name == key) {
            let known: Vec<&str> = inputs.iter().map(|(name, ..)| *name).collect();
            problems.push(format!(
                "{}: {runs} takes no input `{key}` (it takes: {}){}",
                at(&format!("input.{key}")),
                known.join(", "),
                if matches!(route.action, RouteAction::Operation(_)) {
                    "; a connector's own inputs need its own action, `connector:action`"
                } else {
                    ""
                }
            ));
        }
    }
    for (name, _, description) in inputs.iter().filter(|(_, required, _)| *required) {
        if !route.input.contains_key(*name) {
            problems.push(format!(
                "{}: {runs} requires input `{name}` ({description})",
                at("input"),
            ));
        }
    }
    if let Err((field, message)) = crate::routing::check(route, &event.example) {
        problems.push(format!("{}: {message}", at(&field)));
    }
}

/// A schedule names a job its connector has.
fn schedule_job(
    config: &Config,
    runtime: &Runtime,
    t: &str,
    schedule: &Schedule,
    problems: &mut Vec<String>,
) {
    let idx = schedule.index.to_string();
    let Some(connector) = runtime.connector(schedule.connector.as_str()) else {
        return;
    };
    if !connector
        .manifest
        .jobs
        .iter()
        .any(|j| j.name == schedule.job)
    {
        let known: Vec<&str> = connector
            .manifest
            .jobs
            .iter()
            .map(|j| j.name.as_str())
            .collect();
        problems.push(format!(
            "{}: tenants.{t}.schedules.{idx}.job: connector `{}` has no job `{}` (it has: {})",
            config.locate(&["tenants", t, "schedules", &idx, "job"]),
            schedule.connector,
            schedule.job,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    }
}

/// An action tool names an action the tenant can run, gives only inputs it takes, and every
/// input it requires.
fn tool_reaches(
    config: &Config,
    runtime: &Runtime,
    (t, tenant): (&str, &crate::config::TenantConfig),
    name: &str,
    tool: &crate::config::tools::Tool,
    problems: &mut Vec<String>,
) {
    let crate::config::tools::ToolDoes::Act { action, input } = &tool.does else {
        return;
    };
    let at = |field: &str| {
        format!(
            "{}: tenants.{t}.tools.{name}.{field}",
            config.locate(&["tenants", t, "tools", name])
        )
    };
    let inputs = match crate::actions::resolve(tenant, runtime, action) {
        Ok((_, _, inputs)) => inputs,
        Err(why) => {
            problems.push(format!("{}: {why}", at("action")));
            return;
        }
    };
    for key in input.keys() {
        if !inputs.iter().any(|(n, _)| n == key) {
            let known: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            problems.push(format!(
                "{}: `{action}` takes no input `{key}` (it takes: {})",
                at(&format!("input.{key}")),
                known.join(", ")
            ));
        }
    }
    for (required, _) in inputs.iter().filter(|(_, r)| *r) {
        if !input.contains_key(required) {
            problems.push(format!(
                "{}: `{action}` requires input `{required}`",
                at("input")
            ));
        }
    }
}
