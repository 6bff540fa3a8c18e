//! Test webhooks: the request a provider would send to one of a tenant's routes, built from the
//! route's declared example (`example` in the connector's manifest; each `{{id}}` becomes a fresh
//! id, so each test is a new delivery) and signed with the tenant's own credential in the
//! route's scheme (`plugin_sdk::schemes::sign`). The console's "send a test webhook" posts it to
//! the hub itself, marked `x-hub-test: 1` so the log shows it as a test; with `forge` it is
//! signed with a wrong secret, for a negative test.

use plugin_sdk::schemes::{self, Unsigned};
use secrecy::ExposeSecret;

use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};
use crate::ingress::verify::native;
use crate::runtime::{Route, Runtime, Selector, SignatureScheme};
use crate::secrets::Vault;
use crate::state::Hub;

pub use crate::store::TEST_HEADER;

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
        "connector `{0}` verifies this route in its own code (`custom`), so the hub cannot sign a \
         test for it: declare the route's scheme instead (SignatureScheme::Hmac covers the common \
         HMAC shapes: Stripe, Calendly, Slack, Shopify, GitHub; docs/writing-a-connector.md), or \
         post a request you signed yourself, as the provider signs it"
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
    /// The event type cannot be set in the route's example.
    #[error("connector `{0}`: cannot set the event type: {1}")]
    NoEvent(String, String),
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

/// What the test request carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// The route's declared example.
    Example,
    /// The route's declared example with its event type (where the route's `event-type`
    /// selector points: a JSON pointer or a form field) set to this name.
    ExampleAs(String),
    /// This body, as it is.
    Given(Vec<u8>),
}

/// Builds and signs the test request for `tenant`'s `route` of `connector`, from the route's
/// declared example.
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
    hub.directory
        .tenant_config(tenant, connector)
        .ok_or_else(|| NoTest::NoRoute {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            route: route.to_string(),
        })?;
    let signer = Signer {
        runtime: &hub.runtime,
        vault: &hub.vault,
        public_base: &hub.public_base,
        directory: &hub.directory,
    };
    signer.sign(tenant, connector, route, &Body::Example, forge)
}

/// What signing needs: the connectors' manifests, the credentials, the URL providers call.
pub struct Signer<'a> {
    /// The loaded connectors.
    pub runtime: &'a Runtime,
    /// The opened credentials.
    pub vault: &'a Vault,
    /// `server.public_url`, without a trailing slash: URL-signing schemes sign it.
    pub public_base: &'a str,
    /// The tenants' connector config: an example's `{{config.KEY}}` is the tenant's value (the
    /// org id an XML body must carry, say).
    pub directory: &'a crate::state::Directory,
}

impl Signer<'_> {
    /// The route `hub simulate` means when none is named: the connector's only per-tenant
    /// route, or its bare URL's.
    ///
    /// # Errors
    /// When it has none or several (listed).
    pub fn only_route(&self, connector: &ConnectorId) -> Result<String, String> {
        let Some(loaded) = self.runtime.connector(connector.as_str()) else {
            return Err(format!("connector `{connector}` is not loaded"));
        };
        let routes: Vec<&str> = loaded
            .manifest
            .routes
            .iter()
            .filter(|r| r.tenant_lookup.is_none())
            .map(|r| r.name.as_str())
            .collect();
        match routes.as_slice() {
            [one] => Ok((*one).to_string()),
            // The bare URL is the connector's main route (Retell's calls, say).
            many if many.contains(&"") => Ok(String::new()),
            [] => Err(format!("connector `{connector}` has no per-tenant route")),
            many => Err(format!(
                "connector `{connector}` has several routes; name one with --route ({})",
                many.iter()
                    .map(|r| if r.is_empty() { "\"\"" } else { r })
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Builds and signs the request.
    ///
    /// # Errors
    /// [`NoTest`], saying what is missing.
    pub fn sign(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        route: &str,
        body: &Body,
        forge: bool,
    ) -> Result<TestWebhook, NoTest> {
        let no_route = || NoTest::NoRoute {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            route: route.to_string(),
        };
        let loaded = self
            .runtime
            .connector(connector.as_str())
            .ok_or_else(no_route)?;
        let decl = loaded
            .manifest
            .routes
            .iter()
            .find(|r| r.name == route && r.tenant_lookup.is_none())
            .ok_or_else(no_route)?;
        let body = match body {
            Body::Given(bytes) => bytes.clone(),
            Body::Example | Body::ExampleAs(_) => {
                let example = decl
                    .example
                    .as_ref()
                    .ok_or_else(|| NoTest::NoExample(connector.to_string()))?;
                let id = hex::encode(rand::random::<[u8; 16]>());
                let mut example = example.replace("{{id}}", &id);
                if let Some(config) = self.directory.tenant_config(tenant, connector) {
                    for (key, _) in config.iter() {
                        let placeholder = format!("{{{{config.{key}}}}}");
                        if example.contains(&placeholder) {
                            let value = crate::ingress::verify::config_text(&config, key)
                                .unwrap_or_default();
                            example = example.replace(&placeholder, &value);
                        }
                    }
                }
                match body {
                    Body::ExampleAs(event) => with_event(&example, decl, event)
                        .map_err(|why| NoTest::NoEvent(connector.to_string(), why))?,
                    _ => example.into_bytes(),
                }
            }
        };
        let path = if route.is_empty() {
            format!("/hooks/{tenant}/{connector}")
        } else {
            format!("/hooks/{tenant}/{connector}/{route}")
        };
        let content_type = if is_json(&body) {
            "application/json"
        } else if body.first() == Some(&b'<') {
            "text/xml; charset=utf-8"
        } else {
            "application/x-www-form-urlencoded"
        };
        let mut headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            (TEST_HEADER.to_string(), "1".to_string()),
        ];
        let scheme = match &decl.signature {
            SignatureScheme::None => {
                fresh_identity_headers(decl, &mut headers);
                return Ok(TestWebhook {
                    path,
                    headers,
                    body,
                });
            }
            SignatureScheme::Custom => return Err(NoTest::Custom(connector.to_string())),
            // Signing adds only what the provider adds (an XML body carries its own values).
            other => {
                native(other, |_| None).ok_or_else(|| NoTest::Custom(connector.to_string()))?
            }
        };
        let secret = self
            .vault
            .get(tenant, connector, &decl.credential)
            .ok_or_else(|| NoTest::NoCredential {
                tenant: tenant.to_string(),
                connector: connector.to_string(),
                field: decl.credential.clone(),
            })?;
        let mut key = secret.expose_secret().to_vec();
        if forge {
            key = forged(&key);
        }
        let url = format!("{}{path}", self.public_base);
        let unsigned = Unsigned {
            method: "POST",
            url: &url,
            body: &body,
            now_ms: now_ms() as u64,
        };
        let signed = schemes::sign(&scheme, &key, &unsigned)
            .map_err(|e| NoTest::BadSecret(decl.credential.clone(), e.to_string()));
        zeroize::Zeroize::zeroize(&mut key);
        let signed = signed?;
        let path = signed
            .url
            .strip_prefix(self.public_base)
            .unwrap_or(&path)
            .to_string();
        headers.extend(signed.headers);
        fresh_identity_headers(decl, &mut headers);
        Ok(TestWebhook {
            path,
            headers,
            body,
        })
    }
}

/// A wrong secret of the right shape: a Standard Webhooks `whsec_` key stays valid base64 (a
/// random one), so the request is signed, just not by the tenant's secret.
fn forged(key: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    if key.starts_with(b"whsec_") {
        let random = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>());
        return format!("whsec_{random}").into_bytes();
    }
    let mut wrong = key.to_vec();
    wrong.extend_from_slice(b"-forged");
    wrong
}

/// A fresh value for each header the route identifies deliveries by and the request does not
/// carry yet (Make's `Idempotency-Key`, say), so each test is a new delivery.
fn fresh_identity_headers(route: &Route, headers: &mut Vec<(String, String)>) {
    for selector in &route.identity {
        if let Selector::Header(name) = selector
            && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            let id = hex::encode(rand::random::<[u8; 8]>());
            headers.push((name.to_ascii_lowercase(), format!("test_{id}")));
        }
    }
}

fn is_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// The example with its event type set to `event`, where the route's `event-type` selector
/// points (a JSON pointer, or a form field).
fn with_event(example: &str, route: &Route, event: &str) -> Result<Vec<u8>, String> {
    match &route.event_type {
        Some(Selector::Json(pointer)) => {
            let mut value: serde_json::Value = serde_json::from_str(example)
                .map_err(|e| format!("its example is not JSON: {e}"))?;
            let slot = value.pointer_mut(pointer).ok_or_else(|| {
                format!(
                    "its example has nothing at {pointer}, where the route reads the event type"
                )
            })?;
            *slot = serde_json::Value::String(event.to_string());
            Ok(serde_json::to_vec(&value).unwrap_or_default())
        }
        Some(Selector::Form(field)) => {
            let mut found = false;
            let mut out = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form_urlencoded::parse(example.as_bytes()) {
                if k == field.as_str() {
                    found = true;
                    out.append_pair(&k, event);
                } else {
                    out.append_pair(&k, &v);
                }
            }
            if !found {
                out.append_pair(field, event);
            }
            Ok(out.finish().into_bytes())
        }
        Some(Selector::Header(h)) => Err(format!(
            "the route reads the event type from header `{h}`; pass a body with --body"
        )),
        Some(Selector::Query(q)) => Err(format!(
            "the route reads the event type from query parameter `{q}`; pass a body with --body"
        )),
        None => Err("the route has no event type; pass a body with --body".into()),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretSlice;

    use super::*;
    use crate::config::{Config, id};
    use crate::secrets::Place;

    fn signer_for(vault: &Vault, run: impl FnOnce(&Signer<'_>)) {
        let toml = r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://hooks.example.com/"
[connectors.retell]
builtin = true
[tenants.acme.connectors.retell]
"#;
        let config = Config::from_str(toml, std::path::Path::new("/tmp/hub.toml")).unwrap();
        let runtime = crate::state::load_runtime(&config).unwrap();
        let public_base = crate::state::public_base(&config);
        let directory = crate::state::Directory::from_config(&config);
        run(&Signer {
            runtime: &runtime,
            vault,
            public_base: &public_base,
            directory: &directory,
        });
    }

    /// Without the route's credential for the tenant, simulate says which one to seal and how;
    /// with it, the request is signed in the route's scheme and verifies with that credential.
    #[test]
    fn a_missing_credential_is_named_with_the_command_that_seals_it() {
        let (tenant, connector) = (id::<TenantId>("acme"), id::<ConnectorId>("retell"));
        signer_for(&Vault::new(), |signer| {
            let error = signer
                .sign(&tenant, &connector, "", &Body::Example, false)
                .expect_err("no credential to sign with")
                .to_string();
            assert_eq!(
                error,
                "seal credential `api_key` for the tenant first: hub seal --tenant acme --connector retell --field api_key --write"
            );
        });
        let mut vault = Vault::new();
        let place = Place::Tenant {
            tenant: "acme".into(),
            connector: "retell".into(),
            field: "api_key".into(),
        };
        vault.insert(place, SecretSlice::from(b"key_test_0000".to_vec()));
        signer_for(&vault, |signer| {
            let webhook = signer
                .sign(&tenant, &connector, "", &Body::Example, false)
                .unwrap();
            assert_eq!(webhook.path, "/hooks/acme/retell");
            let request = schemes::Request {
                method: "POST",
                url: "https://hooks.example.com/hooks/acme/retell",
                headers: &webhook.headers,
                body: &webhook.body,
                path_token: None,
            };
            schemes::verify(
                &schemes::Scheme::Retell,
                b"key_test_0000",
                &request,
                &schemes::Policy::at(now_ms() as u64),
            )
            .expect("signed with the tenant's key, as Retell signs");
        });
    }
}
