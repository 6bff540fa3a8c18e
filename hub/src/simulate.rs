//! Test webhooks: the request a provider would send to one of a tenant's routes, built from the
//! route's declared example (`example` in the connector's manifest; each `{{id}}` becomes a fresh
//! id, so each test is a new delivery) and signed with the tenant's own credential in the
//! route's scheme (`plugin_sdk::schemes::sign`). The console's "send a test webhook" posts it to
//! the hub itself, marked `x-hub-test: 1` so the log shows it as a test; with `forge` it is
//! signed with a wrong secret, for a negative test.

use plugin_sdk::schemes::{self, Unsigned};
use secrecy::ExposeSecret;

use crate::config::{ConnectorId, TenantId};
use crate::ingress::verify::native;
use crate::runtime::SignatureScheme;
use crate::state::Hub;
use crate::store::now_ms;

/// The header that marks a test webhook in the log.
pub const TEST_HEADER: &str = "x-hub-test";

/// A signed test request.
#[derive(Debug, Clone)]
pub struct TestWebhook {
    /// Path and query on the hub (`/hooks/{tenant}/{connector}[/{route}]...`).
    pub path: String,
    /// Every header to send (content type, signature, the test mark).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why no test webhook can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoTest {
    /// The tenant does not use the connector, or it has no such route.
    #[error("tenant {tenant} has no route `{route}` on connector `{connector}`")]
    NoRoute {
        /// Tenant.
        tenant: String,
        /// Connector.
        connector: String,
        /// Route.
        route: String,
    },
    /// The route declares no example request.
    #[error("connector `{0}` declares no example request for this route")]
    NoExample(String),
    /// The connector verifies the route itself: the hub cannot sign for it.
    #[error(
        "connector `{0}` verifies this route in its own code; the hub cannot sign a test for it"
    )]
    Custom(String),
    /// The route's credential is not set for the tenant.
    #[error(
        "seal credential `{field}` for the tenant first: hub seal --tenant {tenant} --connector {connector} --field {field} --write"
    )]
    NoCredential {
        /// Tenant.
        tenant: String,
        /// Connector.
        connector: String,
        /// Credential.
        field: String,
    },
    /// The credential cannot sign in the route's scheme.
    #[error("credential `{0}` cannot sign: {1}")]
    BadSecret(String, String),
}

/// Every (connector, route) of the tenant that can send a test webhook.
pub fn routes(hub: &Hub, tenant: &TenantId) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (connector, loaded) in hub.tenant_connectors(tenant) {
        for r in &loaded.manifest.routes {
            if r.example.is_some()
                && r.tenant_lookup.is_none()
                && !matches!(r.signature, SignatureScheme::Custom)
            {
                out.push((connector.to_string(), r.name.clone()));
            }
        }
    }
    out
}

/// Builds and signs the test request for `tenant`'s `route` of `connector`.
///
/// # Errors
/// [`NoTest`], saying what is missing.
pub fn build(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
    route: &str,
    forge: bool,
) -> Result<TestWebhook, NoTest> {
    let no_route = || NoTest::NoRoute {
        tenant: tenant.to_string(),
        connector: connector.to_string(),
        route: route.to_string(),
    };
    hub.directory
        .tenant_config(tenant, connector)
        .ok_or_else(no_route)?;
    let loaded = hub
        .runtime
        .connector(connector.as_str())
        .ok_or_else(no_route)?;
    let decl = loaded
        .manifest
        .routes
        .iter()
        .find(|r| r.name == route && r.tenant_lookup.is_none())
        .ok_or_else(no_route)?;
    let example = decl
        .example
        .as_ref()
        .ok_or_else(|| NoTest::NoExample(connector.to_string()))?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let body = example.replace("{{id}}", &id).into_bytes();
    let path = if route.is_empty() {
        format!("/hooks/{tenant}/{connector}")
    } else {
        format!("/hooks/{tenant}/{connector}/{route}")
    };
    let json = matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    );
    let content_type = if json {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut headers = vec![
        ("content-type".to_string(), content_type.to_string()),
        (TEST_HEADER.to_string(), "1".to_string()),
    ];
    let scheme = match &decl.signature {
        SignatureScheme::None => {
            return Ok(TestWebhook {
                path,
                headers,
                body,
            });
        }
        SignatureScheme::Custom => return Err(NoTest::Custom(connector.to_string())),
        other => native(other).ok_or_else(|| NoTest::Custom(connector.to_string()))?,
    };
    let secret = hub
        .vault
        .get(tenant, connector, &decl.credential)
        .ok_or_else(|| NoTest::NoCredential {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            field: decl.credential.clone(),
        })?;
    let mut key = secret.expose_secret().to_vec();
    if forge {
        key.extend_from_slice(b"-forged");
    }
    let url = format!("{}{path}", hub.public_base);
    let unsigned = Unsigned {
        method: "POST",
        url: &url,
        body: &body,
        now_ms: now_ms() as u64,
    };
    let signed = schemes::sign(&scheme, &key, &unsigned)
        .map_err(|e| NoTest::BadSecret(decl.credential.clone(), e.to_string()))?;
    zeroize::Zeroize::zeroize(&mut key);
    let path = signed
        .url
        .strip_prefix(&hub.public_base)
        .unwrap_or(&path)
        .to_string();
    headers.extend(signed.headers);
    Ok(TestWebhook {
        path,
        headers,
        body,
    })
}
