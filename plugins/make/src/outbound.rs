//! The hub triggering Make: `trigger_webhook` posts to the tenant's custom webhook (its URL a
//! sealed credential the host fills in), `run_scenario` runs a scenario through Make's API
//! (`Authorization: Token`). Each acts at most once per idempotency key: what it did is kept
//! under a marker, and an answer lost after the request left is not retried (Make has no
//! idempotency of its own, so the scenario might run twice); 429 and 5xx are retried.

use plugin_sdk::http::{self, Request};
use plugin_sdk::{Error, HttpError, HttpResponse, kv, require_config};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::manifest::{API_TOKEN, WEBHOOK_API_KEY, WEBHOOK_URL, ZONES};

/// The input of `trigger_webhook`.
#[derive(Debug, Deserialize)]
struct Trigger {
    data: Value,
}

/// The input of `run_scenario`.
#[derive(Debug, Deserialize)]
struct Run {
    scenario_id: Value,
    #[serde(default)]
    data: Option<Value>,
}

/// Make's answer to a run.
#[derive(Debug, Deserialize)]
struct Started {
    #[serde(rename = "executionId")]
    execution_id: String,
}

fn input<T: serde::de::DeserializeOwned>(action: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::bad_request(format!("{action} input: {e}")))
}

/// The organization's zone, from the config.
///
/// # Errors
/// Permanent when it is missing or not one of Make's zones.
pub fn zone() -> Result<String, Error> {
    let zone: String = require_config("zone")?;
    if !ZONES.contains(&zone.as_str()) {
        return Err(Error::permanent(format!(
            "config key `zone` is `{zone}`; Make's zones are {}",
            ZONES.join(", ")
        )));
    }
    Ok(zone)
}

/// Sends a request that must not act twice: an answer lost after it left is permanent.
fn send_once(request: Request, what: &str) -> Result<HttpResponse, Error> {
    let response = match request.try_send() {
        Ok(r) => r,
        Err(HttpError::Timeout) => {
            return Err(Error::permanent(format!(
                "{what}: Make did not answer in time, and may have acted: not retried, so it \
                 cannot run twice (look in the scenario's history before replaying this job)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    response.error_for_status().map_err(|e| match e {
        Error::Permanent(m) => Error::Permanent(format!("{what}: {m}")),
        other => other,
    })
}

/// `trigger_webhook`.
///
/// # Errors
/// Bad request for a malformed input; permanent for a missing credential or a 4xx;
/// retryable for 429 and 5xx.
pub fn trigger_webhook(input_text: &str, key: &str) -> Result<String, Error> {
    let marker = format!("triggered:{key}");
    if kv::get(&marker).is_some() {
        return Ok(json!({ "accepted": true, "duplicate": true }).to_string());
    }
    let trigger: Trigger = input("trigger_webhook", input_text)?;
    let mut request = Request::post(http::credential_url(WEBHOOK_URL))
        .header("idempotency-key", key)
        .json(&trigger.data)?;
    if plugin_sdk::config::<bool>("send_api_key")?.unwrap_or(false) {
        request = request.credential_header("x-make-apikey", WEBHOOK_API_KEY);
    }
    send_once(request, "the custom webhook")?;
    kv::set_marker(&marker, b"accepted");
    Ok(json!({ "accepted": true }).to_string())
}

/// `run_scenario`.
///
/// # Errors
/// As [`trigger_webhook`]; permanent when `zone` is not configured.
pub fn run_scenario(input_text: &str, key: &str) -> Result<String, Error> {
    let marker = format!("ran:{key}");
    if let Some(id) = kv::get_string(&marker) {
        return Ok(json!({ "execution_id": id, "duplicate": true }).to_string());
    }
    let run: Run = input("run_scenario", input_text)?;
    let id = match &run.scenario_id {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
        other => {
            return Err(Error::bad_request(format!(
                "run_scenario input: scenario_id must be a scenario's number, not {other}"
            )));
        }
    };
    let url = format!("https://{}.make.com/api/v2/scenarios/{id}/run", zone()?);
    let body = json!({ "data": run.data.unwrap_or_else(|| json!({})), "responsive": false });
    let request = Request::post(url)
        .authorization("Token", API_TOKEN)
        .json(&body)?;
    let started: Started = send_once(request, &format!("scenario {id}"))?.json()?;
    kv::set_marker(&marker, started.execution_id.as_bytes());
    Ok(json!({ "execution_id": started.execution_id }).to_string())
}

/// `check_credentials`: Make's `GET /users/me` with the API token.
///
/// # Errors
/// Make's answer when it refuses the token.
pub fn check_credentials() -> Result<(), Error> {
    let url = format!("https://{}.make.com/api/v2/users/me", zone()?);
    Request::get(url)
        .authorization("Token", API_TOKEN)
        .send()?
        .error_for_status()?;
    Ok(())
}
