//! A tenant's capabilities (`email = "sendgrid"` in `[tenants.<id>]`): which of its connectors
//! sends its email, its SMS, keeps its CRM contacts, so a route writes `action = "email:send"`
//! and runs whichever provider the tenant uses (`plugin_sdk::capability`). Here: what the user
//! wrote, checked against the connectors the tenant uses, each error located at its field.
//! Whether the named connector implements the operation is known once connectors load
//! (`hub check`, `check.rs`).

use std::collections::BTreeMap;

use plugin_sdk::capability::{self, Capability, Operation};

use super::checker::Checker;
use super::{ConfigError, RouteAction, TenantConnector};
use crate::id::ConnectorId;

/// The capability keys of `[tenants.<id>]`, as written.
pub(super) struct RawCapabilities<'a> {
    /// `(capability, connector)` for each key given.
    pub given: Vec<(&'static str, &'a ConnectorId)>,
}

/// The tenant `at`'s capabilities, each naming a connector the tenant uses.
pub(super) fn validate(
    c: &Checker<'_>,
    at: [&str; 2],
    connectors: &BTreeMap<ConnectorId, TenantConnector>,
    raw: RawCapabilities<'_>,
) -> Result<BTreeMap<&'static str, ConnectorId>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, connector) in raw.given {
        if !connectors.contains_key(connector) {
            let used: Vec<&str> = connectors.keys().map(ConnectorId::as_str).collect();
            return Err(c.value(
                &[at[0], at[1], name],
                format!(
                    "this tenant does not use connector `{connector}` (it uses: {}); add a \
                     [tenants.{}.connectors.{connector}] table first",
                    if used.is_empty() {
                        "none".into()
                    } else {
                        used.join(", ")
                    },
                    at[1]
                ),
            ));
        }
        out.insert(name, connector.clone());
    }
    Ok(out)
}

/// A route's `action = "capability:operation"` (e.g. `email:send`) as the tenant's connector
/// for it and the operation; `None` when `to` names no capability (it is a connector's action).
pub(super) fn route_action(
    c: &Checker<'_>,
    here: &[&str],
    tenant: &str,
    capabilities: &BTreeMap<&'static str, ConnectorId>,
    to: &str,
    op: &str,
) -> Result<Option<(ConnectorId, RouteAction)>, ConfigError> {
    let Some(cap) = capability::capability(to) else {
        return Ok(None);
    };
    let Some(operation) = cap
        .operations
        .iter()
        .find(|o| o.id.split_once(':').is_some_and(|(_, name)| name == op))
    else {
        return Err(c.value(here, no_operation(cap, op)));
    };
    let Some(target) = capabilities.get(cap.name) else {
        return Err(c.value(
            here,
            format!(
                "`{}` runs the tenant's {} connector, and this tenant names none: add \
                 `{} = \"<connector>\"` to [tenants.{tenant}]",
                operation.id, cap.name, cap.name
            ),
        ));
    };
    Ok(Some((target.clone(), RouteAction::Operation(operation))))
}

fn no_operation(cap: &Capability, op: &str) -> String {
    let ops: Vec<&str> = cap.operations.iter().map(|o: &Operation| o.id).collect();
    if ops.is_empty() {
        format!(
            "capability `{}` has no operations yet, so no `{}:{op}`",
            cap.name, cap.name
        )
    } else {
        format!(
            "capability `{}` has no operation `{op}` (it has: {})",
            cap.name,
            ops.join(", ")
        )
    }
}

/// Refuses a connector named like a capability: `email:send` would be ambiguous.
pub(super) fn check_connector_name(c: &Checker<'_>, id: &ConnectorId) -> Result<(), ConfigError> {
    if capability::capability(id.as_str()).is_some() {
        return Err(c.key(
            &["connectors", id.as_str()],
            format!(
                "`{id}` is the name of a capability (a route's `{id}:...` runs the tenant's {id} \
                 connector): give this connector another name"
            ),
        ));
    }
    Ok(())
}
