//! Signing a request the way each provider signs it: the inverse of [`verify`](super::verify),
//! for test tooling (`hub simulate`, the console's "send a test webhook", benchmarks). Every
//! scheme's output is checked against its own verification in the tests below.

use super::common::sha256;
use super::{Scheme, TokenLocation, VerifyError, parse_form};
use super::{sign_hubspot_v3, sign_retell, sign_standard_webhooks, sign_twilio};

/// A request as the provider would send it, before signing.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    /// `POST`, usually.
    pub method: &'a str,
    /// The URL the provider calls (the hub's public URL for the route).
    pub url: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// When it is signed (ms since the epoch).
    pub now_ms: u64,
}

/// What to send: the URL (a token scheme may carry the secret in it) and the headers to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The URL to call.
    pub url: String,
    /// Headers to send besides the body's content type.
    pub headers: Vec<(String, String)>,
}

/// Signs `req` with `secret` in `scheme`'s wire format.
///
/// # Errors
/// [`VerifyError::BadSecret`] when the secret cannot sign in this scheme (a `whsec_` secret
/// that is not base64, a token that is not text).
///
/// # Example
/// ```
/// use plugin_sdk::schemes::{Policy, Request, Scheme, Unsigned, sign, verify};
/// let body = br#"{"event":"call_started"}"#;
/// let unsigned = Unsigned { method: "POST", url: "https://hub.example/hooks/t/retell", body, now_ms: 1_700_000_000_000 };
/// let signed = sign(&Scheme::Retell, b"key_123", &unsigned).unwrap();
/// let request = Request { method: "POST", url: &signed.url, headers: &signed.headers, body, path_token: None };
/// assert!(verify(&Scheme::Retell, b"key_123", &request, &Policy::at(1_700_000_000_000)).is_ok());
/// ```
pub fn sign(scheme: &Scheme, secret: &[u8], req: &Unsigned<'_>) -> Result<Signed, VerifyError> {
    let text =
        || std::str::from_utf8(secret).map_err(|_| VerifyError::BadSecret("it is not text".into()));
    let header = |name: &str, value: String| (name.to_string(), value);
    let mut url = req.url.to_string();
    let headers = match scheme {
        Scheme::StandardWebhooks => {
            let digest = sha256(&[req.body, &req.now_ms.to_be_bytes()]);
            let id = format!("msg_{}", hex::encode(digest.get(..12).unwrap_or(&digest)));
            let ts = req.now_ms / 1000;
            let signature = sign_standard_webhooks(text()?, &id, ts, req.body)?;
            // Both names: Standard Webhooks' `webhook-*` and Svix's `svix-*` (Resend sends
            // those), the same values, so a route identified by either finds its id.
            vec![
                header("webhook-id", id.clone()),
                header("webhook-timestamp", ts.to_string()),
                header("webhook-signature", signature.clone()),
                header("svix-id", id),
                header("svix-timestamp", ts.to_string()),
                header("svix-signature", signature),
            ]
        }
        Scheme::Retell => vec![header(
            "x-retell-signature",
            sign_retell(secret, req.body, req.now_ms),
        )],
        Scheme::Twilio => {
            let json = matches!(
                req.body.iter().find(|b| !b.is_ascii_whitespace()),
                Some(b'{' | b'[')
            );
            let params = if json {
                // A JSON body: its hash rides in the URL, which alone is signed.
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}bodySHA256={}", hex::encode(sha256(&[req.body])));
                Vec::new()
            } else {
                parse_form(req.body)
            };
            vec![header(
                "x-twilio-signature",
                sign_twilio(secret, &url, &params),
            )]
        }
        Scheme::HubSpot => vec![
            header(
                "x-hubspot-signature-v3",
                sign_hubspot_v3(secret, req.method, &url, req.body, req.now_ms),
            ),
            header("x-hubspot-request-timestamp", req.now_ms.to_string()),
        ],
        // The XML body carries its own value: only the token is added.
        Scheme::SharedToken(location)
        | Scheme::XmlToken(super::XmlToken {
            token: location, ..
        }) => match location {
            TokenLocation::Header(name) => vec![header(name, text()?.to_string())],
            TokenLocation::Query(name) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let value: String = form_value(text()?);
                url = format!("{url}{sep}{name}={value}");
                Vec::new()
            }
            TokenLocation::Path => {
                url = format!("{}/{}", url.trim_end_matches('/'), form_value(text()?));
                Vec::new()
            }
        },
        Scheme::Basic => vec![header("authorization", super::basic_authorization(secret))],
        Scheme::Hmac(declared) => super::sign_hmac(declared, secret, req.body, req.now_ms),
        // The hub holds the provider's public key: it verifies, it cannot sign. Tests sign
        // with a private key through `sign_ecdsa_p256`.
        Scheme::EcdsaP256 { .. } => {
            return Err(VerifyError::BadSecret(
                "the route's credential is the provider's public key, which cannot sign".into(),
            ));
        }
    };
    Ok(Signed { url, headers })
}

/// `text` percent-encoded for a query value or path segment (unreserved characters kept).
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemes::{Policy, Request, verify};

    const NOW: u64 = 1_764_000_000_000;

    /// Signs, then verifies the result as the hub would: with the secret, and with another.
    fn round_trip(scheme: Scheme, secret: &[u8], other: &[u8], body: &[u8]) -> Signed {
        let url = "https://hub.example/hooks/acme/conn/route";
        let unsigned = Unsigned {
            method: "POST",
            url,
            body,
            now_ms: NOW,
        };
        let signed = sign(&scheme, secret, &unsigned).unwrap();
        let path_token = signed
            .url
            .strip_prefix(url)
            .and_then(|t| t.strip_prefix('/'));
        let path_token = path_token.filter(|t| !t.is_empty() && !t.starts_with('?'));
        let request = Request {
            method: "POST",
            url: &signed.url,
            headers: &signed.headers,
            body,
            path_token,
        };
        let policy = Policy::at(NOW + 1_000);
        assert_eq!(
            verify(&scheme, secret, &request, &policy),
            Ok(()),
            "{scheme:?}: {signed:?}"
        );
        assert!(
            verify(&scheme, other, &request, &policy).is_err(),
            "{scheme:?} with another secret"
        );
        signed
    }

    #[test]
    fn every_scheme_signs_what_it_verifies() {
        let json = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
        let svix = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let other = b"whsec_dGhlIG90aGVyIHNlY3JldCBvZiBhbm90aGVy";
        let signed = round_trip(Scheme::StandardWebhooks, svix, other, json);
        assert_eq!(
            signed.headers[1],
            ("webhook-timestamp".into(), (NOW / 1000).to_string())
        );
        round_trip(Scheme::Retell, b"key_a", b"key_b", json);
        let form = b"MessageSid=SM1&From=%2B14155550100&Body=Hi+there";
        round_trip(Scheme::Twilio, b"token_a", b"token_b", form);
        let signed = round_trip(Scheme::Twilio, b"token_a", b"token_b", json);
        assert!(signed.url.contains("?bodySHA256="), "{}", signed.url);
        round_trip(Scheme::HubSpot, b"secret_a", b"secret_b", json);
        let header = TokenLocation::Header("x-hub-token".into());
        round_trip(Scheme::SharedToken(header), b"tok a", b"tok b", json);
        let query = TokenLocation::Query("token".into());
        let signed = round_trip(Scheme::SharedToken(query), b"tok/a+b", b"tok", json);
        assert!(signed.url.ends_with("?token=tok%2Fa%2Bb"), "{}", signed.url);
        let signed = round_trip(
            Scheme::SharedToken(TokenLocation::Path),
            b"pathtok",
            b"other",
            json,
        );
        assert!(signed.url.ends_with("/route/pathtok"));
    }

    #[test]
    fn a_secret_that_cannot_sign_says_so() {
        let unsigned = Unsigned {
            method: "POST",
            url: "https://h/x",
            body: b"{}",
            now_ms: NOW,
        };
        assert!(matches!(
            sign(&Scheme::StandardWebhooks, b"whsec_!!!", &unsigned),
            Err(VerifyError::BadSecret(_))
        ));
    }
}
