//! HubSpot: `x-hubspot-signature-v3` (HMAC, timestamped) and the legacy `x-hubspot-signature`
//! v1 / v2 (plain SHA-256) signatures.

use super::common::{
    b64_decode, b64_encode, check_window, ct_eq, hmac_sha256, parse_digits, require_mac,
    required_header, sha256,
};
use super::{Policy, Request, VerifyError};

pub(super) const V3: &str = "x-hubspot-signature-v3";
pub(super) const TIMESTAMP: &str = "x-hubspot-request-timestamp";
pub(super) const LEGACY: &str = "x-hubspot-signature";
pub(super) const VERSION: &str = "x-hubspot-signature-version";

/// The HMAC-SHA256 of `method ++ uri ++ body ++ timestamp`.
fn mac_v3(secret: &[u8], method: &str, uri: &str, body: &[u8], ts: &str) -> Option<Vec<u8>> {
    hmac_sha256(
        secret,
        &[method.as_bytes(), uri.as_bytes(), body, ts.as_bytes()],
    )
}

/// Signs a HubSpot v3 request: returns the `x-hubspot-signature-v3` value (base64) for a
/// request sent with `x-hubspot-request-timestamp: <ts_ms>`.
#[must_use]
pub fn sign_hubspot_v3(secret: &[u8], method: &str, uri: &str, body: &[u8], ts_ms: u64) -> String {
    mac_v3(secret, method, uri, body, &ts_ms.to_string())
        .map(|tag| b64_encode(&tag))
        .unwrap_or_default()
}

/// Signs a HubSpot v1 request: returns the `x-hubspot-signature` value,
/// lowercase hex SHA-256(secret ++ body).
#[must_use]
pub fn sign_hubspot_v1(secret: &[u8], body: &[u8]) -> String {
    hex::encode(sha256(&[secret, body]))
}

/// Signs a HubSpot v2 request: returns the `x-hubspot-signature` value,
/// lowercase hex SHA-256(secret ++ method ++ uri ++ body).
#[must_use]
pub fn sign_hubspot_v2(secret: &[u8], method: &str, uri: &str, body: &[u8]) -> String {
    hex::encode(sha256(&[secret, method.as_bytes(), uri.as_bytes(), body]))
}

/// The URI with the characters HubSpot decodes before signing v3 turned back from `%XX`.
fn hubspot_decoded(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some((before, after)) = rest.split_once('%') {
        out.push_str(before);
        let decoded = after.get(..2).and_then(|code| {
            Some(match code.to_ascii_uppercase().as_str() {
                "3A" => ':',
                "2F" => '/',
                "3F" => '?',
                "40" => '@',
                "21" => '!',
                "24" => '$',
                "27" => '\'',
                "28" => '(',
                "29" => ')',
                "2A" => '*',
                "2C" => ',',
                "3B" => ';',
                _ => return None,
            })
        });
        match decoded {
            Some(ch) => {
                out.push(ch);
                rest = after.get(2..).unwrap_or_default();
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn verify_v3(
    secret: &[u8],
    req: &Request<'_>,
    policy: &Policy,
    signature: &str,
) -> Result<(), VerifyError> {
    let ts_text = required_header(req, &[TIMESTAMP])?;
    let ts_ms = parse_digits(ts_text).ok_or_else(|| {
        VerifyError::Malformed(format!("{TIMESTAMP} header: expected unix milliseconds"))
    })?;
    let provided = b64_decode(signature)
        .ok_or_else(|| VerifyError::Malformed(format!("{V3} header: not base64")))?;

    let decoded = hubspot_decoded(req.url);
    let mut uris = vec![req.url];
    if decoded != req.url {
        uris.push(&decoded);
    }
    let mut matched = false;
    for uri in uris {
        let expected = require_mac(mac_v3(secret, req.method, uri, req.body, ts_text))?;
        matched |= ct_eq(&expected, &provided);
    }
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    check_window(
        policy.now_ms,
        ts_ms,
        1000,
        policy.effective_tolerance_secs(),
    )
}

fn verify_legacy(secret: &[u8], req: &Request<'_>) -> Result<(), VerifyError> {
    let signature = required_header(req, &[LEGACY])?;
    let provided = hex::decode(signature)
        .map_err(|_| VerifyError::Malformed(format!("{LEGACY} header: not hex")))?;
    let expected = match req.header(VERSION) {
        None | Some("") => sha256(&[secret, req.body]),
        Some(v) if v.eq_ignore_ascii_case("v1") => sha256(&[secret, req.body]),
        Some(v) if v.eq_ignore_ascii_case("v2") => {
            sha256(&[secret, req.method.as_bytes(), req.url.as_bytes(), req.body])
        }
        Some(_) => {
            return Err(VerifyError::Malformed(format!(
                "{VERSION} header: expected v1 or v2"
            )));
        }
    };
    if ct_eq(&expected, &provided) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

pub(crate) fn verify(secret: &[u8], req: &Request<'_>, policy: &Policy) -> Result<(), VerifyError> {
    match req.header(V3) {
        Some(signature) => {
            if signature.is_empty() {
                return Err(VerifyError::Malformed(format!("{V3} header: it is empty")));
            }
            verify_v3(secret, req, policy, signature)
        }
        None if req.header(LEGACY).is_none() => {
            Err(VerifyError::Missing(format!("{V3} or {LEGACY} header")))
        }
        None => verify_legacy(secret, req),
    }
}

#[cfg(test)]
mod decode_tests {
    use super::hubspot_decoded;

    #[test]
    fn decodes_only_the_listed_characters() {
        assert_eq!(
            hubspot_decoded("https://h/p?a=%3a%2F%40x%20y%25%2"),
            "https://h/p?a=:/@x%20y%25%2"
        );
        assert_eq!(hubspot_decoded("%"), "%");
        assert_eq!(hubspot_decoded("%3"), "%3");
        assert_eq!(hubspot_decoded("%é3A"), "%é3A");
        assert_eq!(hubspot_decoded("%%3B"), "%;");
    }
}
