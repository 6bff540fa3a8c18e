//! Retell AI: `x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(body ++ ms)>`.

use super::common::{check_window, ct_eq, hmac_sha256, parse_digits, require_mac, required_header};
use super::{Policy, Request, VerifyError};

pub(super) const HEADER: &str = "x-retell-signature";

/// The HMAC-SHA256 of `body ++ decimal(ts_ms)`.
fn mac(key: &[u8], body: &[u8], ts_ms: u64) -> Option<Vec<u8>> {
    hmac_sha256(key, &[body, ts_ms.to_string().as_bytes()])
}

/// Signs a Retell webhook: returns the whole `x-retell-signature` header value,
/// `v=<ts_ms>,d=<lowercase hex>`.
#[must_use]
pub fn sign_retell(key: &[u8], body: &[u8], ts_ms: u64) -> String {
    let digest = mac(key, body, ts_ms).map(hex::encode).unwrap_or_default();
    format!("v={ts_ms},d={digest}")
}

/// The `(timestamp, digest)` of a header value, `v=<digits>,d=<hex>` (either order, spaces
/// around parts tolerated).
fn parse_header(value: &str) -> Result<(u64, Vec<u8>), VerifyError> {
    let mut ts = None;
    let mut digest = None;
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("v", v)) if ts.is_none() => ts = Some(v.trim()),
            Some(("d", d)) if digest.is_none() => digest = Some(d.trim()),
            _ => {}
        }
    }
    let ts = ts.ok_or_else(|| malformed("no `v=<timestamp>` part"))?;
    let digest = digest.ok_or_else(|| malformed("no `d=<digest>` part"))?;
    let ts = parse_digits(ts).ok_or_else(|| malformed("`v` is not a unix timestamp in ms"))?;
    let digest = hex::decode(digest).map_err(|_| malformed("`d` is not hex"))?;
    if digest.len() != 32 {
        return Err(malformed("`d` is not a 64-character SHA-256 digest"));
    }
    Ok((ts, digest))
}

fn malformed(what: &str) -> VerifyError {
    VerifyError::Malformed(format!("{HEADER} header: {what}"))
}

pub(crate) fn verify(secret: &[u8], req: &Request<'_>, policy: &Policy) -> Result<(), VerifyError> {
    let value = required_header(req, &[HEADER])?;
    let (ts_ms, provided) = parse_header(value)?;
    let expected = require_mac(mac(secret, req.body, ts_ms))?;
    if !ct_eq(&expected, &provided) {
        return Err(VerifyError::Mismatch);
    }
    check_window(
        policy.now_ms,
        ts_ms,
        1000,
        policy.effective_tolerance_secs(),
    )
}
