//! Native, constant-time verification of the generic webhook signature schemes.
//!
//! This module owns the wire formats the hub checks on the **raw request bytes** before any
//! connector code runs: Standard Webhooks (Svix / Resend), Retell, Twilio, HubSpot (v1, v2 and
//! v3 signatures), shared tokens (header, query parameter or secret path segment), and the
//! declared HMAC shapes (Stripe, Calendly, Slack, Shopify, GitHub and their like: [`Hmac`]). It also
//! owns the matching signing helpers (for unit tests, benchmarks and test tooling) and a small
//! `application/x-www-form-urlencoded` parser.
//!
//! Guarantees:
//! - every comparison of a MAC, digest or token is constant time (`subtle`);
//! - parsing never panics, whatever the headers, URL or body contain: bad input becomes a
//!   [`VerifyError`];
//! - error messages name the header or parameter at fault but never echo secret material or
//!   header values.
//!
//! The entry point is [`verify`]; the exact protocols are documented on each [`Scheme`] variant.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::fmt;

mod basic;
mod common;
mod declared;
mod ecdsa;
mod hubspot;
mod retell;
mod sign;
mod standard;
mod token;
mod twilio;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use basic::basic_authorization;
pub use declared::{Algorithm, Encoding, Hmac, Timestamp, sign_hmac};
pub use ecdsa::{ecdsa_p256_public_key, sign_ecdsa_p256};
pub use hubspot::{sign_hubspot_v1, sign_hubspot_v2, sign_hubspot_v3};
pub use retell::sign_retell;
pub use sign::{Signed, Unsigned, sign};
pub use standard::sign_standard_webhooks;
pub use twilio::sign_twilio;

/// The timestamp tolerance used when [`Policy::tolerance_secs`] is 0: five minutes, the window
/// every supported provider documents.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Every header name the schemes read by themselves (a shared token is also read from the header
/// its route names). Property tests and fuzzers draw header names from this list, so a new
/// scheme's headers are exercised without another list to keep in step.
pub const HEADERS_READ: &[&str] = &[
    standard::ID[0],
    standard::TIMESTAMP[0],
    standard::SIGNATURE[0],
    standard::ID[1],
    standard::TIMESTAMP[1],
    standard::SIGNATURE[1],
    retell::HEADER,
    twilio::HEADER,
    hubspot::V3,
    hubspot::TIMESTAMP,
    hubspot::LEGACY,
    hubspot::VERSION,
    "authorization",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
];

/// The parts of an HTTP request a scheme may read.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method as received, e.g. `"POST"`.
    pub method: &'a str,
    /// The full URL as the provider called it: `scheme://host[:port]/path?query`. Schemes that
    /// sign the URL (Twilio, HubSpot v2/v3) need the hub's public URL here, not the one a reverse
    /// proxy forwarded.
    pub url: &'a str,
    /// Request headers. Names should be lower-case; lookups are case-insensitive anyway.
    pub headers: &'a [(String, String)],
    /// The raw body bytes, exactly as received (never re-serialised).
    pub body: &'a [u8],
    /// The last path segment, for [`TokenLocation::Path`].
    pub path_token: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The value of the first header called `name` (ASCII case-insensitive), with surrounding
    /// whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// Where a [`Scheme::SharedToken`] is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// In the named header. For `authorization`, a `Bearer ` prefix is also accepted.
    Header(String),
    /// In the named query parameter of [`Request::url`].
    Query(String),
    /// As the secret last path segment, [`Request::path_token`].
    Path,
}

/// A webhook signature scheme the host can verify natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// Standard Webhooks, as used by Svix and Resend. Headers `webhook-id`, `webhook-timestamp`
    /// (unix seconds) and `webhook-signature`, each falling back to its `svix-` twin. The
    /// signature header is a space-separated list of `v1,<base64 HMAC-SHA256>` entries over
    /// `"{id}.{timestamp}.{body}"`; any matching `v1` entry is accepted. The secret is the
    /// `whsec_<base64 key>` string.
    StandardWebhooks,
    /// Retell AI. Header `x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(body ++ ms)>`,
    /// keyed with the Retell API key.
    Retell,
    /// Twilio. Header `x-twilio-signature: base64(HMAC-SHA1(auth token, url ++ sorted form
    /// params))`; JSON bodies are bound through the URL's `bodySHA256` parameter instead. The
    /// URL is also tried with its default port added or its port removed. No timestamp.
    Twilio,
    /// HubSpot. `x-hubspot-signature-v3` (base64 HMAC-SHA256 over method, URI, body and the
    /// `x-hubspot-request-timestamp` ms value) when present; otherwise the legacy
    /// `x-hubspot-signature` with `x-hubspot-signature-version` `v1` (default) or `v2`.
    HubSpot,
    /// A per-tenant shared token (no signature), e.g. for Zapier. The token is compared with
    /// the secret in constant time, independently of their lengths.
    SharedToken(TokenLocation),
    /// ECDSA P-256 over SHA-256 of the `timestamp` header's bytes followed directly by the raw
    /// body; the `signature` header is a base64 DER signature, the timestamp unix seconds
    /// (SendGrid's Event Webhook). The secret is the provider's public key, base64 SPKI DER.
    EcdsaP256 {
        /// The header carrying the signature.
        signature: String,
        /// The header carrying the signed timestamp.
        timestamp: String,
    },
    /// HTTP Basic credentials (`Authorization: Basic ...`, from a `https://user:pass@...`
    /// webhook URL, as Postmark sends them). The secret is `user:password`, compared in
    /// constant time.
    Basic,
    /// A declared HMAC: which header, which hash and encoding, where the timestamp is and what
    /// message is signed ([`Hmac`]). The secret is the signing secret as the provider shows it.
    Hmac(Hmac),
    /// A shared token and an element of an XML body ([`XmlToken`]): Salesforce's outbound
    /// messages, which carry no signature. The secret is the token.
    XmlToken(XmlToken),
}

/// What [`Scheme::XmlToken`] checks: the token first (a caller without it learns nothing of
/// how the body is read), then the body as XML (`crate::xml`'s rules: malformed is
/// [`VerifyError::BadBody`]), then the first `{namespace}element` equal to `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlToken {
    /// Where the token is.
    pub token: TokenLocation,
    /// The element's namespace (`""`: none).
    pub namespace: String,
    /// The element's local name.
    pub element: String,
    /// The value it must hold (the tenant's, from its config), compared in constant time.
    pub expected: String,
}

impl Scheme {
    /// A short, stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Retell => "retell",
            Scheme::Twilio => "twilio",
            Scheme::HubSpot => "hubspot",
            Scheme::SharedToken(_) => "shared-token",
            Scheme::EcdsaP256 { .. } => "ecdsa-p256",
            Scheme::Basic => "basic",
            Scheme::Hmac(_) => "hmac",
            Scheme::XmlToken(_) => "xml-token",
        }
    }
}

/// Time-related verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The current time, in unix milliseconds.
    pub now_ms: u64,
    /// How far a signed timestamp may be from `now_ms`, in either direction, in seconds.
    /// 0 means [`DEFAULT_TOLERANCE_SECS`].
    pub tolerance_secs: u32,
}

impl Policy {
    /// A policy at `now_ms` with the default tolerance.
    pub const fn at(now_ms: u64) -> Self {
        Policy {
            now_ms,
            tolerance_secs: 0,
        }
    }

    /// The tolerance actually applied, in seconds (0 is replaced by the default).
    pub const fn effective_tolerance_secs(&self) -> u32 {
        if self.tolerance_secs == 0 {
            DEFAULT_TOLERANCE_SECS
        } else {
            self.tolerance_secs
        }
    }
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header or parameter is absent; the string names it, e.g.
    /// `"x-retell-signature header"`.
    Missing(String),
    /// A header or parameter is present but cannot be parsed; the string says which and how.
    Malformed(String),
    /// The signed timestamp is outside the tolerance window. `age_secs` is positive for a
    /// timestamp in the past and negative for one in the future.
    Stale {
        /// Age of the signed timestamp relative to now, in seconds.
        age_secs: i64,
        /// The tolerance that was applied, in seconds.
        tolerance_secs: u32,
    },
    /// The signature or token does not match.
    Mismatch,
    /// The configured secret itself is unusable (empty, or a `whsec_` secret that is not base64).
    BadSecret(String),
    /// The body is not what the scheme reads (an XML body that is not well formed): a bad
    /// request rather than a bad signature.
    BadBody(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Missing(what) => write!(f, "missing {what}"),
            VerifyError::Malformed(what) => write!(f, "malformed {what}"),
            VerifyError::Stale {
                age_secs,
                tolerance_secs,
            } => {
                let amount = age_secs.unsigned_abs();
                let direction = if *age_secs >= 0 {
                    "old"
                } else {
                    "in the future"
                };
                write!(
                    f,
                    "signed timestamp is {amount} s {direction}, outside the {tolerance_secs} s \
                     tolerance (a replayed request, or a clock out of sync)"
                )
            }
            VerifyError::Mismatch => f.write_str(
                "signature does not match (wrong secret configured, or the body or URL was \
                 changed on the way)",
            ),
            VerifyError::BadSecret(why) => write!(f, "the configured secret is unusable: {why}"),
            VerifyError::BadBody(why) => write!(f, "unreadable body: {why}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies `req` against `scheme` with `secret`.
///
/// `secret` is the scheme's key as configured: the `whsec_...` string for
/// [`Scheme::StandardWebhooks`], the API key for Retell, the auth token for Twilio, the app
/// client secret for HubSpot, the token itself for [`Scheme::SharedToken`]. An empty secret is
/// always [`VerifyError::BadSecret`].
///
/// Parsing errors come first ([`VerifyError::Missing`] / [`VerifyError::Malformed`]), then the
/// signature ([`VerifyError::Mismatch`]); only an authentic request can be reported
/// [`VerifyError::Stale`].
pub fn verify(
    scheme: &Scheme,
    secret: &[u8],
    req: &Request<'_>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::BadSecret("it is empty".into()));
    }
    match scheme {
        Scheme::StandardWebhooks => standard::verify(secret, req, policy),
        Scheme::Retell => retell::verify(secret, req, policy),
        Scheme::Twilio => twilio::verify(secret, req),
        Scheme::HubSpot => hubspot::verify(secret, req, policy),
        Scheme::SharedToken(location) => token::verify(location, secret, req),
        Scheme::EcdsaP256 {
            signature,
            timestamp,
        } => ecdsa::verify(signature, timestamp, secret, req, policy),
        Scheme::Basic => basic::verify(secret, req),
        Scheme::Hmac(declared) => declared::verify(declared, secret, req, policy),
        Scheme::XmlToken(check) => token::verify_xml(check, secret, req),
    }
}

/// Parses an `application/x-www-form-urlencoded` body into `(name, value)` pairs, in order.
/// `+` is a space, `%XX` is percent-decoded, invalid UTF-8 is replaced (never an error).
#[must_use]
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}
