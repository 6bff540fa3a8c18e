//! Google Calendar API v3 (`https://www.googleapis.com/calendar/v3`): requests with the
//! `google` OAuth2 credential the host holds (it mints, caches and refreshes the access token,
//! and sends a request refused with 401 once more with a fresh one), and what Google's answers
//! and errors mean.
//!
//! Errors are `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}],
//! "status", "details"}}`. Over quota is `403` with reason `rateLimitExceeded` or
//! `userRateLimitExceeded` (domain `usageLimits`), or `429`: retried with backoff (`Retry-After`
//! when Google sends one). `400` is permanent; `401` too (the host has already refreshed once,
//! so the grant itself is refused); 408 and 5xx retry.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse, Retryable};
use serde_json::Value;

/// The API origin (the manifest's one outbound host besides the token endpoint's).
pub const ORIGIN: &str = "https://www.googleapis.com";
/// The API base.
pub const BASE: &str = "https://www.googleapis.com/calendar/v3";
/// The OAuth2 credential the host holds.
pub const GOOGLE: &str = "google";
/// Time limit of one call.
const TIMEOUT_MS: u32 = 10_000;
/// The wait after a rate limit that names none.
pub const DEFAULT_WAIT_MS: u64 = 30_000;
/// The longest wait honoured.
const MAX_WAIT_MS: u64 = 3_600_000;

/// A call to `path` (after `/calendar/v3`) with the `google` credential.
pub fn call(method: &str, path: &str) -> Request {
    Request::new(method, format!("{BASE}{path}"))
        .bearer(GOOGLE)
        .header("accept", "application/json")
        .timeout_ms(TIMEOUT_MS)
}

/// A path segment or query value, percent-encoded (RFC 3986 unreserved characters stay):
/// calendar ids carry `@` and `#`.
///
/// ```
/// assert_eq!(gcal::api::encode("en.usa#holiday@group.v.calendar.google.com"),
///            "en.usa%23holiday%40group.v.calendar.google.com");
/// ```
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?k=v&...` from pairs, in their order (empty for none).
pub fn query(pairs: &[(&str, String)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("?{}", joined.join("&"))
    }
}

/// `/calendars/{id}` with the id encoded.
pub fn calendar_path(calendar: &str) -> String {
    format!("/calendars/{}", encode(calendar))
}

/// `/calendars/{id}/events/{event}` with both encoded.
pub fn event_path(calendar: &str, event: &str) -> String {
    format!("{}/events/{}", calendar_path(calendar), encode(event))
}

/// What a Google error answer says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoogleError {
    /// `error.message`, else the start of the body.
    pub message: String,
    /// Every `errors[].reason` and `details[].reason`, as sent.
    pub reasons: Vec<String>,
}

impl GoogleError {
    /// Reads an error body; anything that is not Google's JSON becomes its first 300
    /// characters.
    pub fn read(body: &[u8]) -> GoogleError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = v.get("error").unwrap_or(&Value::Null);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        let reasons = ["errors", "details"]
            .iter()
            .filter_map(|k| error.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(|e| e.get("reason").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        GoogleError { message, reasons }
    }

    /// Whether a reason (case-insensitive, `_` ignored: `RATE_LIMIT_EXCEEDED` is
    /// `rateLimitExceeded`) is among them.
    pub fn has(&self, reason: &str) -> bool {
        let norm = |s: &str| s.replace('_', "").to_ascii_lowercase();
        let want = norm(reason);
        self.reasons.iter().any(|r| norm(r) == want)
    }

    /// Whether it is a quota refusal (`rateLimitExceeded`, `userRateLimitExceeded`,
    /// `quotaExceeded`).
    pub fn rate_limited(&self) -> bool {
        [
            "rateLimitExceeded",
            "userRateLimitExceeded",
            "quotaExceeded",
        ]
        .iter()
        .any(|r| self.has(r))
    }
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// The wait a rate-limited answer asks for: `Retry-After` in seconds, else none (the host's
/// backoff).
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    let secs = header(headers, "retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| ((secs * 1000.0).ceil() as u64).clamp(1000, MAX_WAIT_MS))
}

/// The error an answer means, if it is not a success, with the calendar it was about for the
/// message: quota refusals and 429 retry (after `Retry-After` when given), 408 and 5xx retry,
/// 404 names the calendar, every other status is permanent with Google's message.
pub fn failure(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    calendar: Option<&str>,
) -> Option<Error> {
    if (200..300).contains(&status) {
        return None;
    }
    let said = GoogleError::read(body);
    let message = format!("Google Calendar answered {status}: {}", said.message);
    Some(match status {
        429 => Error::Retryable(Retryable {
            message,
            retry_after_ms: retry_after_ms(headers),
        }),
        403 if said.rate_limited() => Error::Retryable(Retryable {
            message,
            retry_after_ms: retry_after_ms(headers),
        }),
        408 | 500..=599 => Error::Retryable(Retryable {
            message,
            retry_after_ms: retry_after_ms(headers),
        }),
        401 => Error::permanent(format!(
            "{message} (the `google` grant was refused after a fresh token: reconnect the account)"
        )),
        403 => Error::permanent(format!(
            "{message} (the grant cannot do this: check its scopes and the calendar's sharing)"
        )),
        404 => match calendar {
            Some(c) => Error::permanent(format!(
                "Google Calendar has no calendar `{c}` that this account can see ({message})"
            )),
            None => Error::permanent(message),
        },
        _ => Error::permanent(message),
    })
}

/// Ok for a 2xx answer, else [`failure`] about `calendar`.
///
/// # Errors
/// As [`failure`].
pub fn check(resp: HttpResponse, calendar: Option<&str>) -> Result<HttpResponse, Error> {
    match failure(resp.status, &resp.headers, &resp.body, calendar) {
        Some(e) => Err(e),
        None => Ok(resp),
    }
}

/// The body of a 2xx answer as a JSON object.
///
/// # Errors
/// Permanent, naming what was asked, when it is not one.
pub fn object(resp: &HttpResponse, what: &str) -> Result<Value, Error> {
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        Error::permanent(format!(
            "Google Calendar's answer to {what} is not JSON: {e}"
        ))
    })?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(Error::permanent(format!(
            "Google Calendar's answer to {what} is not a JSON object"
        )))
    }
}

/// `GET /calendars/{c}/events/{id}`: the event, or `None` when Google has none by that id.
///
/// # Errors
/// As [`failure`]; transport failures are retryable.
pub fn get_event(calendar: &str, id: &str) -> Result<Option<Value>, Error> {
    let resp = call("GET", &event_path(calendar, id)).send()?;
    if resp.status == 404 || resp.status == 410 {
        return Ok(None);
    }
    let resp = check(resp, Some(calendar))?;
    object(&resp, "an event read").map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn quota_refusals_retry_and_other_refusals_do_not() {
        let limited = body(
            json!({"error": {"code": 403, "message": "Rate Limit Exceeded",
            "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}]}}),
        );
        let e = failure(403, &[], &limited, None).unwrap();
        assert!(
            matches!(e, Error::Retryable(ref r) if r.retry_after_ms.is_none()),
            "{e:?}"
        );
        let details = body(json!({"error": {"code": 403, "message": "Quota exceeded",
            "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"}]}}));
        assert!(matches!(
            failure(403, &[], &details, None),
            Some(Error::Retryable(_))
        ));
        let headers = vec![("Retry-After".to_string(), "7".to_string())];
        let e = failure(429, &headers, b"", None).unwrap();
        assert!(matches!(e, Error::Retryable(ref r) if r.retry_after_ms == Some(7000)));
        let forbidden = body(
            json!({"error": {"code": 403, "message": "Insufficient Permission",
            "errors": [{"domain": "global", "reason": "insufficientPermissions"}]}}),
        );
        let e = failure(403, &[], &forbidden, None).unwrap();
        assert!(matches!(e, Error::Permanent(ref m) if m.contains("Insufficient Permission")));
        assert!(matches!(
            failure(503, &[], b"<html>", None),
            Some(Error::Retryable(_))
        ));
        assert!(matches!(
            failure(400, &[], b"{}", None),
            Some(Error::Permanent(_))
        ));
        assert!(
            matches!(failure(401, &[], b"{}", None), Some(Error::Permanent(m)) if m.contains("reconnect"))
        );
        assert!(failure(204, &[], b"", None).is_none());
    }

    #[test]
    fn a_missing_calendar_is_named() {
        let nf = body(json!({"error": {"code": 404, "message": "Not Found",
            "errors": [{"domain": "global", "reason": "notFound", "message": "Not Found"}]}}));
        let e = failure(404, &[], &nf, Some("frontdesk@clinic.example")).unwrap();
        assert!(
            matches!(e, Error::Permanent(ref m) if m.contains("`frontdesk@clinic.example`")),
            "{e:?}"
        );
        assert!(GoogleError::read(&nf).has("notfound"));
        assert_eq!(
            GoogleError::read(b"not json at all").message,
            "not json at all"
        );
        assert_eq!(
            query(&[
                ("timeMin", "2026-01-01T00:00:00Z".into()),
                ("q", "a b".into())
            ]),
            "?timeMin=2026-01-01T00%3A00%3A00Z&q=a%20b"
        );
        assert_eq!(
            event_path("primary", "abc"),
            "/calendars/primary/events/abc"
        );
    }
}
