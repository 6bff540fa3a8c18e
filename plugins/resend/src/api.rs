//! Resend's API surface the action uses: the origin, the credential, the `Idempotency-Key`
//! derived from an action's key, and what Resend's error answers mean
//! (`{"statusCode", "name", "message"}`, per Resend's error reference). Pure.

use plugin_sdk::{Error, Retryable};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The API origin (the manifest's one outbound host).
pub const BASE: &str = "https://api.resend.com";
/// The credential holding the tenant's Resend API key.
pub const API_KEY: &str = "api_key";
/// Resend's limit on `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// Lowercase hex SHA-256.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `Idempotency-Key` header for an action's key: the key itself when Resend accepts it
/// (1-256 visible ASCII characters), else `sha256:` and its hex digest.
pub fn idempotency_header(key: &str) -> String {
    let fits = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY
        && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if fits {
        key.to_string()
    } else {
        format!("sha256:{}", sha256_hex(key))
    }
}

/// `retry-after` in milliseconds: whole or fractional seconds (an HTTP date is not used).
pub fn retry_after_ms(value: Option<&str>) -> Option<u64> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64)
}

/// Resend's error body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiError {
    name: Option<String>,
    message: Option<String>,
}

/// What a non-2xx answer from Resend means. Retryable: 429 rate limits (after `retry-after`),
/// a concurrent request with the same idempotency key, 408 and 5xx. Quota exhaustion is
/// retryable only when Resend says when to retry. Everything else (400/422 validation,
/// 401/403 keys, 409 key reuse with another payload) is permanent with Resend's message.
pub fn api_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> Error {
    let parsed: ApiError = serde_json::from_slice(body).unwrap_or_default();
    let name = parsed.name.unwrap_or_default();
    let text = parsed
        .message
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let message = if name.is_empty() {
        format!("Resend answered {status}: {text}")
    } else {
        format!("Resend answered {status} {name}: {text}")
    };
    let wait = retry_after_ms(retry_after);
    let retry = |retry_after_ms| {
        Error::Retryable(Retryable {
            message: message.clone(),
            retry_after_ms,
        })
    };
    match (status, name.as_str()) {
        (429, "daily_quota_exceeded" | "monthly_quota_exceeded") => match wait {
            Some(ms) => retry(Some(ms)),
            None => Error::permanent(message),
        },
        (429, _) => retry(wait),
        (409, "concurrent_idempotent_requests") => retry(Some(wait.unwrap_or(1_000))),
        (408, _) => retry(wait),
        (s, _) if s >= 500 => retry(wait),
        _ => Error::permanent(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_fit_resend() {
        assert_eq!(
            idempotency_header("action:acme:resend:k1"),
            "action:acme:resend:k1"
        );
        let long = "k".repeat(300);
        let h = idempotency_header(&long);
        assert!(h.starts_with("sha256:") && h.len() == 71, "{h}");
        assert_eq!(h, idempotency_header(&long), "stable");
        assert_ne!(h, idempotency_header(&"k".repeat(301)));
        assert!(idempotency_header("naïve").starts_with("sha256:"));
        assert_eq!(idempotency_header(&"a".repeat(256)).len(), 256);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn retry_ms(e: &Error) -> Option<Option<u64>> {
        match e {
            Error::Retryable(r) => Some(r.retry_after_ms),
            _ => None,
        }
    }

    #[test]
    fn errors_map_to_retry_or_dead_letter() {
        let e = api_error(
            429,
            Some("2"),
            br#"{"statusCode":429,"name":"rate_limit_exceeded","message":"Too many requests"}"#,
        );
        assert_eq!(retry_ms(&e), Some(Some(2000)));
        let e = api_error(
            422,
            None,
            br#"{"statusCode":422,"name":"validation_error","message":"Invalid `to` field."}"#,
        );
        assert!(
            matches!(&e, Error::Permanent(m) if m == "Resend answered 422 validation_error: Invalid `to` field."),
            "{e:?}"
        );
        assert!(matches!(api_error(400, None, b"{}"), Error::Permanent(_)));
        assert!(matches!(api_error(403, None, b"nope"), Error::Permanent(m) if m.contains("nope")));
        assert_eq!(retry_ms(&api_error(500, None, b"")), Some(None));
        assert_eq!(
            retry_ms(&api_error(503, Some("1.5"), b"")),
            Some(Some(1500))
        );
        let quota = br#"{"name":"daily_quota_exceeded","message":"quota"}"#;
        assert!(matches!(api_error(429, None, quota), Error::Permanent(_)));
        assert_eq!(
            retry_ms(&api_error(429, Some("3600"), quota)),
            Some(Some(3_600_000))
        );
        let busy = br#"{"name":"concurrent_idempotent_requests","message":"busy"}"#;
        assert_eq!(retry_ms(&api_error(409, None, busy)), Some(Some(1000)));
        let reuse = br#"{"name":"invalid_idempotent_request","message":"other payload"}"#;
        assert!(matches!(api_error(409, None, reuse), Error::Permanent(_)));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
