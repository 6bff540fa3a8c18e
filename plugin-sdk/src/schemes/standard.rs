//! Standard Webhooks, as sent by Svix and Resend.

use super::common::{
    b64_decode, b64_encode, check_window, ct_eq, hmac_sha256, parse_digits, require_mac,
    required_header,
};
use super::{Policy, Request, VerifyError};

pub(super) const ID: [&str; 2] = ["webhook-id", "svix-id"];
pub(super) const TIMESTAMP: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
pub(super) const SIGNATURE: [&str; 2] = ["webhook-signature", "svix-signature"];

/// The HMAC key behind a `whsec_<base64>` secret (the prefix is optional).
fn decode_secret(secret: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let text = std::str::from_utf8(secret)
        .map_err(|_| VerifyError::BadSecret("a whsec_ secret must be text".into()))?
        .trim();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    let key = b64_decode(encoded).ok_or_else(|| {
        VerifyError::BadSecret("the part after `whsec_` is not valid base64".into())
    })?;
    if key.is_empty() {
        return Err(VerifyError::BadSecret(
            "the key after `whsec_` is empty".into(),
        ));
    }
    Ok(key)
}

/// The HMAC-SHA256 of `"{id}.{timestamp}.{body}"`.
fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    require_mac(hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    ))
}

/// Signs a Standard Webhooks message: returns the `v1,<base64>` entry for the
/// `webhook-signature` header. `secret` is the `whsec_...` string; an invalid one is
/// [`VerifyError::BadSecret`].
pub fn sign_standard_webhooks(
    secret: &str,
    id: &str,
    ts_secs: u64,
    body: &[u8],
) -> Result<String, VerifyError> {
    let key = decode_secret(secret.as_bytes())?;
    let tag = mac(&key, id, &ts_secs.to_string(), body)?;
    Ok(format!("v1,{}", b64_encode(&tag)))
}

pub(crate) fn verify(secret: &[u8], req: &Request<'_>, policy: &Policy) -> Result<(), VerifyError> {
    let key = decode_secret(secret)?;
    let id = required_header(req, &ID)?;
    let timestamp = required_header(req, &TIMESTAMP)?;
    let signatures = required_header(req, &SIGNATURE)?;
    let ts_secs = parse_digits(timestamp).ok_or_else(|| {
        VerifyError::Malformed("webhook-timestamp header: expected unix seconds".into())
    })?;

    let expected = mac(&key, id, timestamp, req.body)?;
    let mut saw_v1 = false;
    let mut matched = false;
    for entry in signatures.split_ascii_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue; // another version (e.g. v1a): not ours to check
        };
        let Some(provided) = b64_decode(encoded) else {
            continue;
        };
        saw_v1 = true;
        // No early exit: every entry is compared.
        matched |= ct_eq(&expected, &provided);
    }
    if !saw_v1 {
        return Err(VerifyError::Malformed(
            "webhook-signature header: no `v1,<base64>` entry".into(),
        ));
    }
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    check_window(
        policy.now_ms / 1000,
        ts_secs,
        1,
        policy.effective_tolerance_secs(),
    )
}
