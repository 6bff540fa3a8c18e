//! The hub's own webhook at Postmark (`register_webhooks`, `unregister_webhooks`,
//! `verify_webhooks`), through Postmark's webhooks API with the server token.
//!
//! What is registered: the tenant's `webhook` route (`/hooks/{tenant}/postmark/webhook`) on the
//! configured message stream (`outbound` unless `message_stream` says otherwise), with every
//! trigger the connector handles (Open, Click, Delivery, Bounce, SpamComplaint,
//! SubscriptionChange).
//!
//! How the secret is kept: Postmark signs nothing, so the route checks HTTP Basic credentials.
//! The host generates them (`generate_credential`, `hub:<token>`) as the `webhook_auth`
//! credential and seals them into `hub.toml` once the job succeeds; the connector hands them on
//! as `https://{credential:webhook_auth}@<hub>/...`, the form Postmark documents for Basic
//! credentials ("adding the user name and password to the URL"), filled in by the host
//! (`fill_body`). The URL carries both halves of the one `user:password` secret, which
//! `HttpAuth{Username, Password}` would need split, and no placeholder can split it.
//!
//! Registering is idempotent: a registration of the hub's URL (with any credentials) is kept
//! and updated (`PUT`) with freshly generated credentials, since the old ones cannot be read
//! back into the host; a second one on the same stream is removed (one on another stream is
//! kept and updated too: the tenant has one `webhook_auth`); only a missing one is created.
//! One made by hand with other credentials in Postmark's Basic auth fields
//! (`HttpAuth`) is replaced instead (removed, created again), as the URL's credentials might
//! not override them.
//!
//! Postmark tests every enabled trigger when a webhook is saved, which would fail while the new
//! credentials are not yet in force (the host keeps them after the job), so it is saved with
//! `Verify: false`, and `verify_webhooks` asks Postmark to test it a few seconds later, once the
//! hub has reloaded (an unverified webhook receives no events).
//!
//! Unregistering removes every registration of the hub's URL, and nothing else.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, Retryable, SecretForm, config, enqueue_job, generate_credential};
use plugin_sdk::{records, route_url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::checked;
use crate::manifest::{API, SERVER_TOKEN, WEBHOOK, WEBHOOK_AUTH};

/// The job that registers the hub's webhook.
pub const REGISTER: &str = "register_webhooks";
/// The job that removes it.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The job that has Postmark test the registration once the hub holds its credentials.
pub const VERIFY: &str = "verify_webhooks";
/// The record kind kept per registration (its id, bare URL, stream, triggers; never the secret).
pub const KIND: &str = "webhook";
/// How long after registering the test runs: the credentials are kept, and the hub reloaded,
/// after the registering job ends.
pub const VERIFY_DELAY_MS: u64 = 3_000;

/// The triggers the connector handles (`webhook::handle`), in Postmark's order.
pub const TRIGGERS: [&str; 6] = [
    "Open",
    "Click",
    "Delivery",
    "Bounce",
    "SpamComplaint",
    "SubscriptionChange",
];

/// Every handled trigger, enabled: every open is counted, and content is not needed.
fn triggers() -> Value {
    json!({
        "Open": { "Enabled": true, "PostFirstOpenOnly": false },
        "Click": { "Enabled": true },
        "Delivery": { "Enabled": true },
        "Bounce": { "Enabled": true, "IncludeContent": false },
        "SpamComplaint": { "Enabled": true, "IncludeContent": false },
        "SubscriptionChange": { "Enabled": true },
    })
}

/// One webhook of `GET /webhooks`. Postmark also answers its `HttpAuth` password, never read.
#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "ID")]
    id: u64,
    #[serde(rename = "Url", default)]
    url: String,
    #[serde(rename = "MessageStream", default)]
    message_stream: String,
    #[serde(rename = "HttpAuth", default)]
    http_auth: Option<HttpAuthUser>,
}

impl Listed {
    /// Whether its `HttpAuth` fields hold credentials other than the hub's (a webhook made by
    /// hand with Postmark's Basic auth fields): the URL's credentials might not override them.
    fn foreign_auth(&self) -> bool {
        self.http_auth
            .as_ref()
            .is_some_and(|a| !a.username.is_empty() && a.username != "hub")
    }
}

/// The user half of a webhook's `HttpAuth`.
#[derive(Deserialize)]
struct HttpAuthUser {
    #[serde(rename = "Username", default)]
    username: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(rename = "Webhooks", default)]
    webhooks: Vec<Listed>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: u64,
}

/// `verify_webhooks`' input.
#[derive(Deserialize)]
struct VerifyInput {
    ids: Vec<u64>,
}

/// A call to Postmark's API with the server token.
fn call(method: &str, path: &str) -> Request {
    Request::new(method, format!("{API}{path}"))
        .credential_header("x-postmark-server-token", SERVER_TOKEN)
        .header("accept", "application/json")
}

/// The URL without its userinfo: `https://user:pass@host/p` is `https://host/p`.
fn bare(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.trim_end_matches('/').to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{}", rest.trim_end_matches('/'))
}

/// The hub's URL with the generated credentials as its userinfo, as a placeholder the host
/// fills in.
fn with_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{{credential:{WEBHOOK_AUTH}}}@{rest}"),
        None => url.to_string(),
    }
}

/// The server's registrations of `url` (on any stream), in Postmark's order.
fn registered(url: &str) -> Result<Vec<Listed>, Error> {
    let list: List = checked(call("GET", "/webhooks").send()?)?.json()?;
    Ok(list
        .webhooks
        .into_iter()
        .filter(|w| bare(&w.url) == url)
        .collect())
}

/// Removes one registration; one already gone is what was wanted.
fn remove(id: u64) -> Result<(), Error> {
    let response = call("DELETE", &format!("/webhooks/{id}")).send()?;
    if response.status != 404 {
        checked(response)?;
    }
    records::delete(KIND, &id.to_string());
    Ok(())
}

/// `register_webhooks`.
///
/// # Errors
/// Postmark's refusals, mapped as for sending (429 and 5xx retry; a bad token is permanent).
pub fn register() -> Result<(), Error> {
    let url = route_url(WEBHOOK);
    let stream: String = config("message_stream")?.unwrap_or_else(|| "outbound".into());
    // One registration per stream: later ones of the same stream are duplicates.
    let mut kept: Vec<Listed> = Vec::new();
    for w in registered(&url)? {
        if kept.iter().any(|k| k.message_stream == w.message_stream) {
            remove(w.id)?;
        } else {
            kept.push(w);
        }
    }
    generate_credential(WEBHOOK_AUTH, SecretForm::BasicAuth)?;
    let authed = with_credentials(&url);
    let mut saved: Vec<(u64, String)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for w in kept {
        if w.foreign_auth() {
            remove(w.id)?;
            missing.push(w.message_stream);
            continue;
        }
        checked(
            call("PUT", &format!("/webhooks/{}", w.id))
                .json(&json!({ "Url": authed, "Triggers": triggers(), "Verify": false }))?
                .fill_body()
                .send()?,
        )?;
        saved.push((w.id, w.message_stream));
    }
    if !saved.iter().any(|(_, s)| *s == stream) && !missing.contains(&stream) {
        missing.push(stream);
    }
    for stream in missing {
        let body = json!({
            "Url": authed, "MessageStream": stream, "Triggers": triggers(), "Verify": false,
        });
        let created: Created =
            checked(call("POST", "/webhooks").json(&body)?.fill_body().send()?)?.json()?;
        saved.push((created.id, stream));
    }
    for (id, stream) in &saved {
        records::upsert(
            KIND,
            &id.to_string(),
            &json!({
                "id": id, "url": url, "message_stream": stream,
                "triggers": TRIGGERS, "verified": false,
            }),
        )?;
    }
    let ids: Vec<u64> = saved.iter().map(|(id, _)| *id).collect();
    enqueue_job(VERIFY, &json!({ "ids": ids }), VERIFY_DELAY_MS)
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`].
pub fn unregister() -> Result<(), Error> {
    for w in registered(&route_url(WEBHOOK))? {
        remove(w.id)?;
    }
    Ok(())
}

/// `verify_webhooks`: `POST /webhooks/{id}/verify` for each registration, which has Postmark
/// test every enabled trigger. A registration gone since (404) needs nothing.
///
/// # Errors
/// Retryable while a trigger fails (the hub may not have reloaded with the new credentials
/// yet), naming each failed trigger and its status; Postmark's refusals as for [`register`].
pub fn verify(input: &str) -> Result<(), Error> {
    let input: VerifyInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("verify_webhooks input: {e}")))?;
    let mut failed = Vec::new();
    for id in input.ids {
        let response = call("POST", &format!("/webhooks/{id}/verify")).send()?;
        if response.status == 404 {
            continue;
        }
        let answer: Value = checked(response)?.json()?;
        if answer["Success"].as_bool() == Some(true) {
            let key = id.to_string();
            if let Some(mut record) = records::get::<Value>(KIND, &key)? {
                record["verified"] = Value::Bool(true);
                records::upsert(KIND, &key, &record)?;
            }
            continue;
        }
        for r in answer["Results"].as_array().into_iter().flatten() {
            if r["Success"].as_bool() != Some(true) {
                failed.push(format!(
                    "webhook {id} {}: {} {}",
                    r["TriggerType"].as_str().unwrap_or("?"),
                    r["StatusCode"],
                    r["Message"].as_str().unwrap_or_default()
                ));
            }
        }
        if answer["Results"].as_array().is_none_or(Vec::is_empty) {
            failed.push(format!("webhook {id}: {}", answer["Message"]));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Retryable(Retryable {
        message: format!(
            "Postmark's test of the hub's webhook failed ({}): the hub must be reachable at \
             its public_url and hold the credentials `hub connect` kept",
            failed.join("; ")
        ),
        retry_after_ms: Some(VERIFY_DELAY_MS),
    }))
}

#[cfg(test)]
mod tests;
