//! Signed deliveries: [`Harness::signed_webhook`] signs a delivery in its route's scheme with the
//! credential given to the harness, as the provider would; [`Harness::check_signature`] checks
//! one as the hub does before any connector code runs (natively for a declared scheme, through
//! the connector's own `verify` for a `custom` one), at the harness's clock.

use super::Harness;
use crate::schemes::{self, Policy, Request, Unsigned};
use crate::{Connector, Delivery, HmacTimestamp, MacEncoding, SignatureScheme, TokenLocation};

/// Where a declared token is, natively.
fn location(loc: &TokenLocation) -> schemes::TokenLocation {
    match loc {
        TokenLocation::Header(h) => schemes::TokenLocation::Header(h.clone()),
        TokenLocation::Query(q) => schemes::TokenLocation::Query(q.clone()),
        TokenLocation::Path => schemes::TokenLocation::Path,
    }
}

/// The native scheme of a declared one (`None` for `none` and `custom`); `config` gives the
/// tenant's config values a scheme compares with.
fn native(
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
        SignatureScheme::Hmac(h) => schemes::Scheme::Hmac(schemes::Hmac {
            header: h.header.clone(),
            algorithm: match h.algorithm {
                crate::HashAlgorithm::Sha1 => schemes::Algorithm::Sha1,
                crate::HashAlgorithm::Sha256 => schemes::Algorithm::Sha256,
                crate::HashAlgorithm::Sha512 => schemes::Algorithm::Sha512,
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
        }),
    })
}

impl<C: Connector> Harness<C> {
    /// A config value as the host hands it to a connector: a string as it is, anything else
    /// as JSON.
    fn config_text(&self, key: &str) -> Option<String> {
        self.state.borrow().config.get(key).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The route's declared scheme and credential, and the credential's value.
    fn scheme_of(&self, route: &str) -> (SignatureScheme, String, Option<Vec<u8>>, u32) {
        let s = self.state.borrow();
        let r = s
            .manifest
            .routes
            .iter()
            .find(|r| r.name == route)
            .unwrap_or_else(|| panic!("the manifest declares no route `{route}`"));
        let secret = s.credentials.get(&r.credential).cloned();
        (
            r.signature.clone(),
            r.credential.clone(),
            secret,
            r.tolerance_secs,
        )
    }

    /// [`Harness::webhook`], signed in the route's scheme with the credential it names, at the
    /// harness's clock: what the provider would send. Panics for a route whose scheme the hub
    /// cannot sign (`custom`, whose check is the connector's own; `ecdsa-p256`, whose credential
    /// is a public key) or whose credential the harness was not given.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Shop;
    /// # impl Connector for Shop {
    /// #     fn manifest() -> Manifest { Manifest {
    /// #         routes: vec![route("", SignatureScheme::Hmac(HmacScheme::timestamped("x-signature")), "signing_secret")],
    /// #         credentials: vec![field("signing_secret", true, "")], ..manifest("shop", "0.1.0") } }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let mut hub = plugin_sdk::harness::Harness::<Shop>::new().credential("signing_secret", "s3cret");
    /// hub.at(1_700_000_000_000);
    /// let d = hub.signed_webhook("", r#"{"id":"evt_1"}"#);
    /// assert!(d.header("x-signature").unwrap().starts_with("t=1700000000,v1="));
    /// assert!(hub.check_signature(&d).is_ok());
    /// ```
    pub fn signed_webhook(&mut self, route: &str, body: impl Into<Vec<u8>>) -> Delivery {
        let mut d = self.webhook(route, body);
        let (declared, credential, secret, _) = self.scheme_of(route);
        if matches!(declared, SignatureScheme::None) {
            return d;
        }
        if matches!(declared, SignatureScheme::Channel(_)) {
            panic!("route `{route}` takes pushes on held channels: make one with `push`");
        }
        let Some(scheme) = native(&declared, |k| self.config_text(k)) else {
            panic!(
                "route `{route}` is verified by the connector's own `verify`: sign its deliveries \
                 in the test (with_header), or declare the scheme (SignatureScheme::Hmac) so the \
                 hub and the harness sign it"
            );
        };
        let secret = secret.unwrap_or_else(|| {
            panic!("give the harness the route's credential: .credential(\"{credential}\", ...)")
        });
        let unsigned = Unsigned {
            method: &d.method,
            url: &d.url,
            body: &d.body,
            now_ms: self.now(),
        };
        let signed = schemes::sign(&scheme, &secret, &unsigned)
            .unwrap_or_else(|e| panic!("route `{route}` cannot be signed: {e}"));
        d.url = signed.url;
        for (name, value) in signed.headers {
            d = d.with_header(&name, &value);
        }
        d
    }

    /// Whether the hub would take `delivery` on its route, checked at the harness's clock: a
    /// declared scheme natively, as the hub does; a `custom` one through the connector's
    /// `verify`. `Err` says why not, in the hub's words.
    ///
    /// # Errors
    /// The reason the hub would answer 401 with.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// // `demo` verifies in its own code (`custom`): the check runs its `verify`.
    /// let d = hub.webhook("events", "{}");
    /// assert!(hub.check_signature(&d).is_err());
    /// assert_eq!(hub.check_signature(&d.with_header("x-ok", "yes")), Ok(()));
    /// ```
    pub fn check_signature(&mut self, delivery: &Delivery) -> Result<(), String> {
        let (declared, credential, secret, tolerance_secs) = self.scheme_of(&delivery.route);
        if matches!(declared, SignatureScheme::Custom) {
            return match self.verify(delivery.clone()) {
                Ok(true) => Ok(()),
                Ok(false) => Err("the connector's verify refused it".into()),
                Err(e) => Err(format!("the connector's verify failed: {e:?}")),
            };
        }
        if let SignatureScheme::Channel(headers) = &declared {
            return self.check_push(delivery, headers);
        }
        let Some(scheme) = native(&declared, |k| self.config_text(k)) else {
            return Ok(());
        };
        let secret = secret.ok_or_else(|| format!("no credential `{credential}` given"))?;
        let path_token = delivery.url.rsplit('/').next();
        let request = Request {
            method: &delivery.method,
            url: &delivery.url,
            headers: &delivery.headers,
            body: &delivery.body,
            path_token,
        };
        let policy = Policy {
            now_ms: self.now(),
            tolerance_secs,
        };
        schemes::verify(&scheme, &secret, &request, &policy).map_err(|e| e.to_string())
    }
}

impl<C: Connector> Harness<C> {
    /// A push on channel `channel` (one the connector opened) to a `channel` route, as the
    /// provider sends it: no body, the channel's id, token and resource in the route's headers.
    /// Add the provider's other headers with `with_header`.
    ///
    /// # Panics
    /// When the route is not a `channel` route or the channel is not held.
    pub fn push(&mut self, route: &str, channel: &str) -> Delivery {
        let (declared, _, _, _) = self.scheme_of(route);
        let SignatureScheme::Channel(headers) = declared else {
            panic!("route `{route}` is not a `channel` route");
        };
        let held = self
            .state
            .borrow()
            .channels
            .iter()
            .find(|c| c.channel.id == channel)
            .cloned()
            .unwrap_or_else(|| panic!("no channel `{channel}` is held"));
        let mut d = self.webhook(route, Vec::new());
        d.headers.clear();
        d = d
            .with_header(&headers.id, channel)
            .with_header(&headers.token, &held.token);
        if !headers.resource.is_empty() {
            d = d.with_header(&headers.resource, &held.channel.resource);
        }
        d
    }

    /// The hub's check of a push: a held channel, its token, its resource once known.
    fn check_push(
        &self,
        delivery: &Delivery,
        headers: &crate::ChannelHeaders,
    ) -> Result<(), String> {
        let id = delivery.header(&headers.id).unwrap_or_default();
        let state = self.state.borrow();
        let Some(held) = state.channels.iter().find(|c| c.channel.id == id) else {
            return Err(format!(
                "channel `{id}` is not held (answered 200, nothing stored)"
            ));
        };
        if delivery.header(&headers.token) != Some(held.token.as_str()) {
            return Err("the channel token does not match".into());
        }
        if !headers.resource.is_empty()
            && !held.channel.resource.is_empty()
            && delivery.header(&headers.resource) != Some(held.channel.resource.as_str())
        {
            return Err("the resource does not match the channel's".into());
        }
        Ok(())
    }
}
