//! The verification stage: a route's signature checked natively on the raw request (the SDK's
//! generic schemes; no connector code runs), or by the connector's own `verify` for a custom
//! scheme.

use plugin_sdk::schemes;
use secrecy::ExposeSecret;

use super::{Rejection, Target};
use crate::clock::now_ms;
use crate::runtime::{Call, Delivery, Priority, SignatureScheme, TokenLocation};
use crate::state::Hub;

/// The parts of the request a signature covers.
pub(super) struct SignedRequest<'a> {
    pub(super) method: &'a str,
    /// The URL as the provider called it (the public base, the path, any path token and query).
    pub(super) url: &'a str,
    pub(super) headers: &'a [(String, String)],
    pub(super) body: &'a [u8],
    pub(super) path_token: Option<&'a str>,
}

/// Verifies the route's signature.
pub(super) async fn verify(
    hub: &Hub,
    target: &Target,
    req: &SignedRequest<'_>,
) -> Result<(), Rejection> {
    let (tenant, connector, route) = (&target.tenant, &target.loaded.id, target.route());
    let scheme = match &route.signature {
        SignatureScheme::None => return Ok(()),
        SignatureScheme::Custom => return verify_custom(hub, target, req).await,
        SignatureScheme::Channel(headers) => {
            return verify_channel(hub, target, req, headers).await;
        }
        other => {
            let config = hub.directory.tenant_config(tenant, connector);
            match native(other, |key| {
                config.as_deref().and_then(|c| config_text(c, key))
            }) {
                Some(scheme) => scheme,
                None => return Err(Rejection::Unverifiable),
            }
        }
    };
    // On a tenant-less route this finds the connector's global credential.
    let Some(secret) = hub.vault.get(tenant, connector, &route.credential) else {
        tracing::error!(
            %tenant,
            %connector,
            route = %route.name,
            "no credential `{}` for this tenant or as a global fallback: run `hub check`",
            route.credential
        );
        return Err(Rejection::Unverifiable);
    };
    let request = schemes::Request {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: req.body,
        path_token: req.path_token,
    };
    let policy = schemes::Policy {
        now_ms: now_ms() as u64,
        tolerance_secs: route.tolerance_secs,
    };
    let checked = schemes::verify(&scheme, secret.expose_secret(), &request, &policy);
    // During a rotation with overlap, what the old value signed still verifies, until the end
    // of the window.
    if matches!(checked, Err(schemes::VerifyError::Mismatch))
        && let Some(previous) = previous_secret(hub, target)
        && schemes::verify(&scheme, previous.expose_secret(), &request, &policy).is_ok()
    {
        tracing::debug!(%tenant, %connector, route = %route.name, "verified with the previous `{}`", route.credential);
        return Ok(());
    }
    match checked {
        Ok(()) => Ok(()),
        Err(schemes::VerifyError::BadBody(m)) => {
            tracing::info!(%tenant, %connector, route = %route.name, "rejected: {m}");
            Err(Rejection::BadRequest(m))
        }
        Err(schemes::VerifyError::BadSecret(m)) => {
            tracing::error!(%tenant, %connector, route = %route.name, "credential `{}` is unusable: {m}", route.credential);
            Err(Rejection::Unverifiable)
        }
        Err(e) => {
            tracing::info!(%tenant, %connector, route = %route.name, "rejected: {e}");
            Err(Rejection::BadSignature(format!("invalid signature: {e}")))
        }
    }
}

/// A push on a channel the connector opened: a channel the hub holds (else 200, nothing
/// stored), its token (the SHA-256 compared in constant time), and once the provider named it,
/// its resource. A channel past its expiry (with a minute's grace for clocks) is not held.
async fn verify_channel(
    hub: &Hub,
    target: &Target,
    req: &SignedRequest<'_>,
    headers: &crate::runtime::ChannelHeaders,
) -> Result<(), Rejection> {
    use subtle::ConstantTimeEq;
    const GRACE_MS: i64 = 60_000;
    let (tenant, connector, route) = (&target.tenant, &target.loaded.id, target.route());
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(id) = header(&headers.id).filter(|id| !id.is_empty() && id.len() <= 64) else {
        return Err(Rejection::BadSignature(format!(
            "no channel id in `{}`",
            headers.id
        )));
    };
    let key = crate::store::ChannelKey {
        tenant: tenant.clone(),
        connector: connector.clone(),
        id: id.to_string(),
    };
    let held = hub.store.channel(key).await.map_err(|e| {
        tracing::error!(%tenant, %connector, route = %route.name, "could not read the channels: {e}");
        Rejection::StoreUnavailable
    })?;
    let Some(held) = held.filter(|c| c.expires_at_ms == 0 || c.expires_at_ms + GRACE_MS > now_ms())
    else {
        tracing::debug!(%tenant, %connector, route = %route.name, "push on channel `{id}`, which this hub does not hold: dropped");
        return Err(Rejection::ChannelNotHeld);
    };
    let token = header(&headers.token).unwrap_or_default();
    let digest = crate::runtime::channel_token_digest(token);
    if !bool::from(digest.as_bytes().ct_eq(held.token_sha256.as_bytes())) {
        tracing::info!(%tenant, %connector, route = %route.name, "rejected: wrong token for channel `{id}`");
        return Err(Rejection::BadSignature(
            "invalid signature: the channel token does not match".into(),
        ));
    }
    if !headers.resource.is_empty()
        && !held.resource.is_empty()
        && header(&headers.resource) != Some(held.resource.as_str())
    {
        tracing::info!(%tenant, %connector, route = %route.name, "rejected: wrong resource for channel `{id}`");
        return Err(Rejection::BadSignature(
            "invalid signature: the resource is not the channel's".into(),
        ));
    }
    Ok(())
}

/// A config value as a scheme compares it: a string as it is, a number or boolean as written.
pub(crate) fn config_text(
    config: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn location(loc: &TokenLocation) -> schemes::TokenLocation {
    match loc {
        TokenLocation::Header(h) => schemes::TokenLocation::Header(h.clone()),
        TokenLocation::Query(q) => schemes::TokenLocation::Query(q.clone()),
        TokenLocation::Path => schemes::TokenLocation::Path,
    }
}

/// The SDK's native scheme of a route's declared one (`None` for `none` and `custom`);
/// `config` gives the tenant's connector config values a scheme compares with.
pub(crate) fn native(
    scheme: &SignatureScheme,
    config: impl Fn(&str) -> Option<String>,
) -> Option<schemes::Scheme> {
    Some(match scheme {
        SignatureScheme::None | SignatureScheme::Custom | SignatureScheme::Channel(_) => {
            return None;
        }
        SignatureScheme::StandardWebhooks => schemes::Scheme::StandardWebhooks,
        SignatureScheme::Retell => schemes::Scheme::Retell,
        SignatureScheme::Twilio => schemes::Scheme::Twilio,
        SignatureScheme::Hubspot => schemes::Scheme::HubSpot,
        SignatureScheme::SharedToken(loc) => schemes::Scheme::SharedToken(location(loc)),
        SignatureScheme::XmlToken(x) => schemes::Scheme::XmlToken(schemes::XmlToken {
            token: location(&x.token),
            namespace: x.namespace.clone(),
            element: x.element.clone(),
            expected: config(&x.config_key).unwrap_or_default(),
        }),
        SignatureScheme::EcdsaP256(h) => schemes::Scheme::EcdsaP256 {
            signature: h.signature.clone(),
            timestamp: h.timestamp.clone(),
        },
        SignatureScheme::BasicAuth => schemes::Scheme::Basic,
        SignatureScheme::Hmac(h) => schemes::Scheme::Hmac(declared(h)),
    })
}

/// The SDK's form of a route's declared HMAC.
pub(crate) fn declared(h: &crate::runtime::HmacScheme) -> schemes::Hmac {
    use crate::runtime::{HashAlgorithm, HmacTimestamp, MacEncoding};
    schemes::Hmac {
        header: h.header.clone(),
        algorithm: match h.algorithm {
            HashAlgorithm::Sha1 => schemes::Algorithm::Sha1,
            HashAlgorithm::Sha256 => schemes::Algorithm::Sha256,
            HashAlgorithm::Sha512 => schemes::Algorithm::Sha512,
        },
        encoding: match h.encoding {
            MacEncoding::Hex => schemes::Encoding::Hex,
            MacEncoding::Base64 => schemes::Encoding::Base64,
        },
        part: h.part.clone(),
        prefix: h.prefix.clone(),
        timestamp: match &h.timestamp {
            HmacTimestamp::None => schemes::Timestamp::None,
            HmacTimestamp::Part(p) => schemes::Timestamp::Part(p.clone()),
            HmacTimestamp::Header(name) => schemes::Timestamp::Header(name.clone()),
        },
        message: h.message.clone(),
    }
}

/// The tenant's `previous_<credential>` of the route, while its rotation window is open.
fn previous_secret<'h>(hub: &'h Hub, target: &Target) -> Option<&'h secrecy::SecretSlice<u8>> {
    let until = hub
        .config
        .tenants
        .get(&target.tenant)?
        .connectors
        .get(&target.loaded.id)?
        .previous_until_ms?;
    if now_ms() >= until {
        return None;
    }
    hub.vault.at(&crate::secrets::Place::Tenant {
        tenant: target.tenant.to_string(),
        connector: target.loaded.id.to_string(),
        field: format!("previous_{}", target.route().credential),
    })
}

/// A custom scheme: the connector's `verify` decides, on threads that answer at once.
async fn verify_custom(
    hub: &Hub,
    target: &Target,
    req: &SignedRequest<'_>,
) -> Result<(), Rejection> {
    let (tenant, connector, route) = (&target.tenant, &target.loaded.id, target.route());
    let config = hub
        .directory
        .tenant_config(tenant, connector)
        .unwrap_or_default();
    let delivery = Delivery {
        id: String::new(),
        route: route.name.clone(),
        method: req.method.to_string(),
        url: req.url.to_string(),
        headers: req.headers.to_vec(),
        body: req.body.to_vec(),
        received_at_ms: now_ms() as u64,
    };
    let call = Call {
        priority: Priority::Answer,
        tenant,
        connector,
        config,
    };
    match hub.runtime.verify(call, delivery).await.result {
        Ok(true) => Ok(()),
        Ok(false) => Err(Rejection::BadSignature("invalid signature".into())),
        Err(e) => {
            tracing::warn!(%tenant, %connector, route = %route.name, "custom verification failed: {e}");
            Err(Rejection::Unverifiable)
        }
    }
}
