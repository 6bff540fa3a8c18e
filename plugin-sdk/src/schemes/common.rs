//! Building blocks shared by the schemes: MACs and digests, constant-time comparison, lenient
//! base64, defensive header and timestamp parsing, URL query lookup.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Request, VerifyError};

/// Standard-alphabet base64 that encodes with padding and decodes with or without it.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 (standard alphabet, padded).
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes base64 (standard alphabet, padding optional); `None` if invalid.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

/// HMAC-`D` of the concatenation of `parts`. `None` only if the key is refused, which HMAC
/// never does (it accepts keys of any length); callers fail closed on `None`.
fn hmac_parts<D>(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>>
where
    D: hmac::EagerHash,
{
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).ok()?;
    for part in parts {
        Mac::update(&mut mac, part);
    }
    Some(mac.finalize().into_bytes().to_vec())
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    hmac_parts::<Sha256>(key, parts)
}

/// HMAC of the concatenation of `parts` with the declared scheme's hash.
pub(crate) fn hmac_any(
    algorithm: super::Algorithm,
    key: &[u8],
    parts: &[&[u8]],
) -> Option<Vec<u8>> {
    match algorithm {
        super::Algorithm::Sha1 => hmac_parts::<sha1::Sha1>(key, parts),
        super::Algorithm::Sha256 => hmac_parts::<Sha256>(key, parts),
        super::Algorithm::Sha512 => hmac_parts::<sha2::Sha512>(key, parts),
    }
}

/// HMAC-SHA1 of the concatenation of `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Option<Vec<u8>> {
    hmac_parts::<sha1::Sha1>(key, parts)
}

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        Digest::update(&mut hasher, part);
    }
    hasher.finalize().to_vec()
}

/// Constant-time equality (for equal lengths). An empty `expected` never matches, so a
/// computation that failed closed can never be satisfied by an empty signature.
pub(crate) fn ct_eq(expected: &[u8], provided: &[u8]) -> bool {
    !expected.is_empty() && bool::from(expected.ct_eq(provided))
}

/// The MAC to compare against, or `BadSecret` if it could not be computed.
pub(crate) fn require_mac(mac: Option<Vec<u8>>) -> Result<Vec<u8>, VerifyError> {
    mac.ok_or_else(|| VerifyError::BadSecret("the MAC key was refused".into()))
}

/// The first of `names` present on `req`. Absent -> `Missing`, empty -> `Malformed`.
pub(crate) fn required_header<'a>(
    req: &Request<'a>,
    names: &[&str],
) -> Result<&'a str, VerifyError> {
    let label = names.join(" or ");
    match names.iter().find_map(|name| req.header(name)) {
        None => Err(VerifyError::Missing(format!("{label} header"))),
        Some("") => Err(VerifyError::Malformed(format!(
            "{label} header: it is empty"
        ))),
        Some(value) => Ok(value),
    }
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces) into a `u64`.
pub(crate) fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Checks `|now - ts| <= tolerance`, all in the same unit; `unit_per_sec` converts the
/// difference to seconds for the error.
pub(crate) fn check_window(
    now: u64,
    ts: u64,
    unit_per_sec: u32,
    tolerance_secs: u32,
) -> Result<(), VerifyError> {
    let diff = i128::from(now) - i128::from(ts);
    let limit = i128::from(tolerance_secs) * i128::from(unit_per_sec);
    if diff.abs() <= limit {
        return Ok(());
    }
    let age = diff / i128::from(unit_per_sec.max(1));
    let age_secs = i64::try_from(age).unwrap_or(if age > 0 { i64::MAX } else { i64::MIN });
    Err(VerifyError::Stale {
        age_secs,
        tolerance_secs,
    })
}

/// The query string of `url` (between `?` and `#`), if any.
pub(crate) fn query_of(url: &str) -> Option<&str> {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    without_fragment.split_once('?').map(|(_, query)| query)
}

/// The decoded value of the first query parameter of `url` called `name`.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = query_of(url)?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
