//! What Postmark's API answers mean, for every call the connector makes. A refusal carries
//! `{ErrorCode, Message}` (HTTP 401 for a bad token, 404, 422 with the ErrorCode, 429, 500,
//! 503): 429, 5xx, ErrorCode 429 (rate limit) and 100 (maintenance) are retried; every other
//! refusal is permanent with Postmark's `Message`.

use plugin_sdk::{Error, HttpResponse};
use serde_json::Value;

/// The error a refusal from Postmark means.
pub fn api_error(status: u16, body: &[u8]) -> Error {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    let code = answer["ErrorCode"].as_i64().unwrap_or(0);
    let message = format!(
        "Postmark answered {status} (ErrorCode {code}): {}",
        answer["Message"].as_str().map_or_else(
            || String::from_utf8_lossy(body).chars().take(300).collect(),
            str::to_string
        )
    );
    if status == 429 || status >= 500 || code == 429 || code == 100 {
        Error::retryable(message)
    } else {
        Error::permanent(message)
    }
}

/// The answer when it is a 2xx, else the error it means.
///
/// # Errors
/// As [`api_error`].
pub fn checked(response: HttpResponse) -> Result<HttpResponse, Error> {
    if (200..300).contains(&response.status) {
        Ok(response)
    } else {
        Err(api_error(response.status, &response.body))
    }
}
