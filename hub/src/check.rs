//! `hub check`: everything a config must satisfy beyond parsing. Each connector loads and
//! describes itself; each tenant must give each connector it uses the credentials and config
//! keys the connector declares as required (a tenant's own credential, or the connector's global
//! fallback); every sealed value must open under the master key.

use crate::config::Config;
use crate::runtime::Runtime;
use crate::secrets::Vault;

/// Problems found, each `file:line:col: field: message`.
pub fn check(config: &Config, runtime: &Runtime, vault: &Vault) -> Vec<String> {
    let mut problems = Vec::new();
    for (tenant_id, tenant) in &config.tenants {
        for (connector_id, tc) in &tenant.connectors {
            let (t, c) = (tenant_id.as_str(), connector_id.as_str());
            let Some(loaded) = runtime.connector(c) else {
                continue;
            };
            let here = config.locate(&["tenants", t, "connectors", c]);
            for cred in loaded.manifest.credentials.iter().filter(|f| f.required) {
                if vault.get(t, c, &cred.name).is_none() {
                    problems.push(format!(
                        "{here}: tenants.{t}.connectors.{c}.credentials.{}: connector `{c}` requires credential `{}` ({}); \
                         seal one for the tenant or as connectors.{c}.credentials.{} (hub seal)",
                        cred.name, cred.name, cred.description, cred.name
                    ));
                }
            }
            for key in loaded.manifest.config.iter().filter(|f| f.required) {
                if !tc.config.contains_key(&key.name) {
                    problems.push(format!(
                        "{here}: tenants.{t}.connectors.{c}.config.{}: connector `{c}` requires config key `{}` ({})",
                        key.name, key.name, key.description
                    ));
                }
            }
            for route in &loaded.manifest.routes {
                let scheme_needs_key =
                    !matches!(route.signature, crate::runtime::SignatureScheme::None);
                if scheme_needs_key && vault.get(t, c, &route.credential).is_none() {
                    problems.push(format!(
                        "{here}: tenants.{t}.connectors.{c}.credentials.{}: route `{}` is verified with credential `{}`, which is not configured",
                        route.credential, route.name, route.credential
                    ));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}
