//! The org's API limits, and what every Salesforce answer means: [`take`] is the one function
//! each answer goes through.
//!
//! - Every answer carries `Sforce-Limit-Info: api-usage=N/M` (the rolling 24-hour usage and
//!   allocation): kept in kv (`limits.api_usage`) in whole percent, written only when the
//!   percent moves, since every invocation reads it and a value another invocation changed
//!   makes the reader run again. A reading older than an hour is not trusted.
//! - `403` with `errorCode` `REQUEST_LIMIT_EXCEEDED` (the allocation or the concurrency limit;
//!   no `Retry-After`): retryable after [`LIMIT_WAIT_MS`], never permanent. Another `403` is
//!   permanent (the user lacks a permission).
//! - `401` reaches the connector only after the host minted a new token and retried once:
//!   retryable, naming `INVALID_SESSION_ID`.
//! - `408`, `429` and `5xx` are retryable; other statuses permanent, with Salesforce's message.
//!
//! Slowing: above 80 % of the allocation `sync` continuations wait ([`sync_delay_ms`]), a `sync`
//! starting above 95 % defers itself ([`sync_start_wait_ms`]); upserts wait only at 100 %
//! ([`upsert_wait_ms`]): a user is waiting for them.

use plugin_sdk::{Error, HttpResponse, Retryable, kv, now_ms};
use serde_json::Value;

/// kv key of the last reading: `<percent>@<epoch ms>`.
pub const USAGE_KEY: &str = "limits.api_usage";
/// The wait after `REQUEST_LIMIT_EXCEEDED`.
pub const LIMIT_WAIT_MS: u64 = 5 * 60_000;

/// The tenant's config key that replaces [`LIMIT_WAIT_MS`], in seconds.
pub const LIMIT_WAIT_SECS: &str = "limit_wait_secs";

/// How long a call refused with `REQUEST_LIMIT_EXCEEDED` waits: the tenant's `limit_wait_secs`,
/// else [`LIMIT_WAIT_MS`].
pub fn limit_wait_ms() -> u64 {
    plugin_sdk::config::<u64>(LIMIT_WAIT_SECS)
        .ok()
        .flatten()
        .map_or(LIMIT_WAIT_MS, |s| s.saturating_mul(1000))
}
/// How long a reading is trusted.
pub const FRESH_MS: u64 = 60 * 60_000;
/// The header.
pub const HEADER: &str = "sforce-limit-info";

const MINUTE: u64 = 60_000;

/// What a Salesforce error body says: its first `{errorCode, message}` (REST answers a JSON
/// array of them; OAuth errors an object with `error`, `error_description`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SfError {
    /// `errorCode` (`REQUEST_LIMIT_EXCEEDED`, `NOT_FOUND`...), empty when none.
    pub code: String,
    /// `message`, else the start of the body.
    pub message: String,
}

impl SfError {
    /// Reads an error body; anything else becomes its first 300 characters.
    pub fn read(body: &[u8]) -> SfError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let first = match &v {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        };
        let get = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_string);
        let code = get("errorCode")
            .or_else(|| get("error"))
            .unwrap_or_default();
        let message = get("message")
            .or_else(|| get("error_description"))
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        SfError { code, message }
    }

    /// `CODE: message`, or the message alone.
    pub fn describe(&self) -> String {
        if self.code.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.code, self.message)
        }
    }
}

/// `(used, allocation)` from a `Sforce-Limit-Info` value (`api-usage=10018/100000`, possibly
/// with `; per-app-api-usage=...` or `, api-bursts=...` beside it).
pub fn parse_header(value: &str) -> Option<(u64, u64)> {
    value
        .split([';', ','])
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))
        .and_then(|v| v.split_once('/'))
        .and_then(|(n, m)| Some((n.trim().parse().ok()?, m.trim().parse().ok()?)))
        .filter(|(_, m)| *m > 0)
}

/// The usage in whole percent (rounded down; past 100 when over).
pub fn percent(used: u64, allocation: u64) -> u64 {
    used.saturating_mul(100) / allocation.max(1)
}

/// The last trusted reading, in percent.
pub fn current_percent() -> Option<u64> {
    let text = kv::get_string(USAGE_KEY)?;
    let (pct, at) = text.split_once('@')?;
    let (pct, at): (u64, u64) = (pct.parse().ok()?, at.parse().ok()?);
    (now_ms().saturating_sub(at) < FRESH_MS).then_some(pct)
}

/// Keeps the answer's reading when its percent differs from the one held (or that is stale).
pub fn observe(headers: &[(String, String)]) {
    let Some((used, allocation)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(HEADER))
        .and_then(|(_, v)| parse_header(v))
    else {
        return;
    };
    let pct = percent(used, allocation);
    if current_percent() != Some(pct) {
        kv::set(USAGE_KEY, format!("{pct}@{}", now_ms()).as_bytes());
    }
}

/// How long a `sync` continuation waits at a usage: none below 90 %, 5 minutes to 95 %,
/// 30 minutes to 100 %, an hour beyond.
pub fn sync_delay_ms(percent: u64) -> u64 {
    match percent {
        0..=89 => 0,
        90..=94 => 5 * MINUTE,
        95..=99 => 30 * MINUTE,
        _ => 60 * MINUTE,
    }
}

/// The wait a `sync` starting now defers itself by: above 95 %, the continuation's delay.
pub fn sync_start_wait_ms() -> Option<u64> {
    current_percent().filter(|p| *p > 95).map(sync_delay_ms)
}

/// The wait an upsert defers itself by: only at 100 % and over, an hour.
pub fn upsert_wait_ms() -> Option<u64> {
    current_percent().filter(|p| *p >= 100).map(sync_delay_ms)
}

/// The error an answer means, if it is not a success nor a status in `pass` (which the caller
/// reads itself).
pub fn classify(status: u16, body: &[u8], pass: &[u16]) -> Option<Error> {
    classify_waiting(status, body, pass, limit_wait_ms)
}

/// [`classify`], with the wait after `REQUEST_LIMIT_EXCEEDED` from `wait_ms` (read only then).
pub fn classify_waiting(
    status: u16,
    body: &[u8],
    pass: &[u16],
    wait_ms: impl FnOnce() -> u64,
) -> Option<Error> {
    if (200..300).contains(&status) || pass.contains(&status) {
        return None;
    }
    let said = SfError::read(body);
    let message = format!("Salesforce answered {status}: {}", said.describe());
    Some(match status {
        403 if said.code == "REQUEST_LIMIT_EXCEEDED" => Error::Retryable(Retryable {
            message: format!("{message} (the org's API limit; waiting)"),
            retry_after_ms: Some(wait_ms()),
        }),
        401 => Error::Retryable(Retryable {
            message: format!(
                "{message} (INVALID_SESSION_ID after the host minted a fresh token: check the \
                 `salesforce` grant and that `instance_url` is the org the token is for)"
            ),
            retry_after_ms: None,
        }),
        408 | 429 | 500..=599 => Error::retryable(message),
        403 => Error::permanent(format!(
            "{message} (the integration user lacks a permission for this)"
        )),
        _ => Error::permanent(message),
    })
}

/// Every Salesforce answer goes through here: its usage is kept, then it is the response (a
/// 2xx or a status in `pass`) or the error it means ([`classify`]).
///
/// # Errors
/// As [`classify`].
pub fn take(resp: HttpResponse, pass: &[u16]) -> Result<HttpResponse, Error> {
    observe(&resp.headers);
    match classify(resp.status, &resp.body, pass) {
        Some(e) => Err(e),
        None => Ok(resp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_header("api-usage=10018/100000"),
            Some((10018, 100_000))
        );
        assert_eq!(
            parse_header("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)"),
            Some((25, 5000))
        );
        assert_eq!(parse_header("per-app-api-usage=17/250"), None);
        assert_eq!(parse_header("api-usage=1/0"), None);
        assert_eq!(
            parse_header("api-bursts=1/750, api-usage=9/10"),
            Some((9, 10))
        );
        assert_eq!(percent(95_000, 100_000), 95);
        assert_eq!(percent(100_500, 100_000), 100);
    }

    #[test]
    fn delays_grow_with_usage() {
        assert_eq!(sync_delay_ms(50), 0);
        assert_eq!(sync_delay_ms(85), 0);
        assert_eq!(sync_delay_ms(90), 300_000);
        assert_eq!(sync_delay_ms(96), 1_800_000);
        assert_eq!(sync_delay_ms(100), 3_600_000);
    }

    #[test]
    fn answers_mean_what_salesforce_says() {
        let limit = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        let e = classify_waiting(403, limit, &[], || LIMIT_WAIT_MS).unwrap();
        assert!(
            matches!(e, Error::Retryable(ref r) if r.retry_after_ms == Some(LIMIT_WAIT_MS)),
            "{e:?}"
        );
        let denied = br#"[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert!(
            matches!(classify_waiting(403, denied, &[], || LIMIT_WAIT_MS), Some(Error::Permanent(m)) if m.contains("INSUFFICIENT_ACCESS"))
        );
        let session =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert!(
            matches!(classify_waiting(401, session, &[], || LIMIT_WAIT_MS), Some(Error::Retryable(r)) if r.message.contains("INVALID_SESSION_ID"))
        );
        assert!(matches!(
            classify_waiting(503, b"<html>", &[], || LIMIT_WAIT_MS),
            Some(Error::Retryable(_))
        ));
        assert!(matches!(
            classify_waiting(400, b"[]", &[], || LIMIT_WAIT_MS),
            Some(Error::Permanent(_))
        ));
        assert!(classify_waiting(300, b"[]", &[300], || LIMIT_WAIT_MS).is_none());
        assert!(classify_waiting(204, b"", &[], || LIMIT_WAIT_MS).is_none());
        let oauth = SfError::read(br#"{"error":"invalid_grant","error_description":"expired"}"#);
        assert_eq!(oauth.describe(), "invalid_grant: expired");
    }
}
