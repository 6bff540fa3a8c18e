//! The hub's own Event Webhook at SendGrid (`register_webhooks`, `unregister_webhooks`), on
//! SendGrid's webhook settings API (`/v3/user/webhooks/event/settings`, with the tenant's API
//! key): one webhook posting every event this connector handles to the tenant's `events` route,
//! with signing turned on. Turning signing on answers the webhook's verification key
//! (`public_key`); the host keeps it as `webhook_public_key` (`capture`: sealed into
//! `hub.toml`, the route verifies with it after the reload that follows the job). The key is
//! public, but it is kept like any credential: the connector never reads it back and no record
//! holds it.
//!
//! Registering is idempotent: a webhook already posting to the hub's URL is kept (enabled and
//! given every event again if someone changed it, its key taken again, so a run that failed
//! after SendGrid created it completes the next time), another one with the same URL is
//! removed, and only a missing one is created. Unregistering deletes the webhooks posting to the
//! hub's URL, and no other.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse, records, route_url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::manifest::{API, API_KEY, EVENTS, PUBLIC_KEY};
use crate::send::api_error;
use crate::webhook::KNOWN;

/// The job that registers the hub's webhook.
pub const REGISTER: &str = "register_webhooks";
/// The job that removes it.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The record kind kept for the registration (its id, URL and events; never the key).
pub const KIND: &str = "webhook";
/// Where SendGrid keeps Event Webhooks.
const SETTINGS: &str = "/v3/user/webhooks/event/settings";
/// The name a created webhook shows in SendGrid's dashboard.
const FRIENDLY_NAME: &str = "The hub";

/// One webhook of `GET .../settings/all` (SendGrid's "no webhooks" example is `[{}]`: every
/// field may be missing).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Listed {
    id: String,
    url: String,
    enabled: bool,
    /// Present, and not empty, only when signing is on.
    public_key: Option<String>,
    /// The event flags among the rest.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Listed {
    fn signed(&self) -> bool {
        self.public_key.as_deref().is_some_and(|k| !k.is_empty())
    }

    /// Enabled, with every event the connector handles.
    fn complete(&self) -> bool {
        self.enabled && flags().all(|f| self.rest.get(f) == Some(&Value::Bool(true)))
    }
}

/// `GET .../settings/all`.
#[derive(Default, Deserialize)]
#[serde(default)]
struct All {
    webhooks: Vec<Listed>,
}

/// The settings flag of each event the connector handles (the event `spamreport` is the flag
/// `spam_report`).
fn flags() -> impl Iterator<Item = &'static str> {
    KNOWN
        .iter()
        .map(|e| if *e == "spamreport" { "spam_report" } else { e })
}

/// The body that creates (with a name) or repairs the hub's webhook.
fn settings(url: &str, named: bool) -> Value {
    let mut body = json!({ "enabled": true, "url": url });
    if named {
        body["friendly_name"] = json!(FRIENDLY_NAME);
    }
    for f in flags() {
        body[f] = Value::Bool(true);
    }
    body
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn checked(resp: HttpResponse) -> Result<HttpResponse, Error> {
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    Err(api_error(
        resp.status,
        resp.header("x-ratelimit-reset"),
        &resp.body,
    ))
}

/// The tenant's webhooks posting to `url`.
fn registered(url: &str) -> Result<Vec<Listed>, Error> {
    let all: All = checked(
        Request::get(format!("{API}{SETTINGS}/all"))
            .bearer(API_KEY)
            .send()?,
    )?
    .json()?;
    Ok(all
        .webhooks
        .into_iter()
        .filter(|w| !w.id.is_empty() && same_url(&w.url, url))
        .collect())
}

/// Creates the webhook; its id.
fn create(url: &str) -> Result<String, Error> {
    let resp = Request::post(format!("{API}{SETTINGS}"))
        .bearer(API_KEY)
        .json(&settings(url, true))?
        .send()?;
    // SendGrid allows one webhook per URL and names the one that has it: another run
    // registered it since the list was read.
    if resp.status == 400
        && let Ok(answer) = serde_json::from_slice::<Value>(&resp.body)
        && let Some(id) = answer["errors"].as_array().and_then(|errors| {
            errors.iter().find_map(|e| {
                let theirs = e["url"].as_str().is_some_and(|u| same_url(u, url));
                e["id"].as_str().filter(|id| theirs && !id.is_empty())
            })
        })
    {
        return Ok(id.to_string());
    }
    let created: Listed = checked(resp)?.json()?;
    if created.id.is_empty() {
        return Err(Error::permanent(
            "SendGrid created the Event Webhook but answered no id",
        ));
    }
    Ok(created.id)
}

/// Deletes one webhook and its record; one already gone is what was wanted.
fn remove(id: &str) -> Result<(), Error> {
    let resp = Request::new("DELETE", format!("{API}{SETTINGS}/{id}"))
        .bearer(API_KEY)
        .send()?;
    if resp.status != 404 {
        checked(resp)?;
    }
    records::delete(KIND, id);
    Ok(())
}

/// `register_webhooks`.
///
/// # Errors
/// SendGrid's refusals, mapped as for sending (429 waits for `X-RateLimit-Reset`, 5xx retries,
/// other 4xx are permanent with SendGrid's messages).
pub fn register() -> Result<(), Error> {
    let url = route_url(EVENTS);
    let found = registered(&url)?;
    // One signed already is the one to keep.
    let keep = found.iter().position(Listed::signed).unwrap_or(0);
    let (id, signed) = match found.get(keep) {
        None => (create(&url)?, false),
        Some(w) => {
            if !w.complete() {
                checked(
                    Request::new("PATCH", format!("{API}{SETTINGS}/{}", w.id))
                        .bearer(API_KEY)
                        .json(&settings(&url, false))?
                        .send()?,
                )?;
            }
            (w.id.clone(), w.signed())
        }
    };
    for (i, extra) in found.iter().enumerate() {
        if i != keep {
            remove(&extra.id)?;
        }
    }
    // The key: turning signing on answers it; a webhook signed already is read, not toggled.
    let signing = format!("{API}{SETTINGS}/signed/{id}");
    let signing = if signed {
        Request::get(signing)
    } else {
        Request::new("PATCH", signing).json(&json!({ "enabled": true }))?
    };
    checked(
        signing
            .bearer(API_KEY)
            .capture("/public_key", PUBLIC_KEY)
            .send()?,
    )?;
    let events: Vec<&str> = flags().collect();
    records::upsert(
        KIND,
        &id,
        &json!({ "id": id, "url": url, "events": events, "signed": true }),
    )
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`].
pub fn unregister() -> Result<(), Error> {
    let url = route_url(EVENTS);
    for w in registered(&url)? {
        remove(&w.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use plugin_sdk::harness::{Answer, Harness};
    use serde_json::{Value, json};

    use crate::Sendgrid;

    const URL: &str = "https://hub.example/hooks/acme/sendgrid/events";
    const ALL: &str = "https://api.sendgrid.com/v3/user/webhooks/event/settings/all";
    const SETTINGS: &str = "https://api.sendgrid.com/v3/user/webhooks/event/settings";
    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";

    fn hub() -> Harness<Sendgrid> {
        Harness::<Sendgrid>::new()
            .tenant("acme")
            .credential("api_key", "SG.test")
    }

    /// A listed webhook posting to `url`, with every event on.
    fn listed(id: &str, url: &str, key: Option<&str>) -> Value {
        let mut w = json!({ "id": id, "url": url, "enabled": true, "friendly_name": "x",
            "processed": true, "delivered": true, "deferred": true, "bounce": true, "dropped": true,
            "open": true, "click": true, "spam_report": true, "unsubscribe": true,
            "group_unsubscribe": true, "group_resubscribe": true });
        if let Some(k) = key {
            w["public_key"] = json!(k);
        }
        w
    }

    fn calls(hub: &Harness<Sendgrid>) -> Vec<String> {
        hub.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }

    #[test]
    fn a_missing_webhook_is_created_with_every_event_signed_and_its_key_kept_by_the_host() {
        let mut hub = hub();
        let other = listed("w-other", "https://else.example/x", Some("k"));
        hub.on(
            "GET",
            ALL,
            Answer::json(200, &json!({ "max_allowed": 5, "webhooks": [other] })),
        );
        hub.on(
            "POST",
            SETTINGS,
            Answer::json(201, &json!({ "id": "w-1", "url": URL, "enabled": true })),
        );
        hub.on(
            "PATCH",
            &format!("{SETTINGS}/signed/w-1"),
            Answer::json(200, &json!({ "id": "w-1", "public_key": KEY })),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        assert_eq!(
            calls(&hub),
            [
                format!("GET {ALL}"),
                format!("POST {SETTINGS}"),
                format!("PATCH {SETTINGS}/signed/w-1"),
            ]
        );
        let sent = hub.requests();
        assert_eq!(sent[0].header("authorization"), Some("Bearer SG.test"));
        let created = sent[1].json();
        assert_eq!(
            (&created["url"], &created["enabled"]),
            (&json!(URL), &json!(true))
        );
        for flag in [
            "processed",
            "delivered",
            "deferred",
            "bounce",
            "dropped",
            "open",
            "click",
            "spam_report",
            "unsubscribe",
            "group_unsubscribe",
            "group_resubscribe",
        ] {
            assert_eq!(created[flag], true, "{flag}: {created}");
        }
        assert!(created.get("spamreport").is_none(), "{created}");
        assert_eq!(sent[2].json(), json!({ "enabled": true }));
        assert_eq!(
            hub.kept(),
            vec![("webhook_public_key".to_string(), KEY.to_string())]
        );
        let record: Value = hub.record("webhook", "w-1").unwrap();
        assert_eq!(record["url"], URL);
        assert!(!record.to_string().contains(KEY));
    }

    #[test]
    fn an_existing_signed_webhook_is_kept_its_key_read_and_a_duplicate_removed() {
        let mut hub = hub();
        let webhooks = json!([
            listed("w-0", URL, None),
            listed("w-other", "https://else.example/x", Some("k")),
            listed("w-1", URL, Some(KEY)),
        ]);
        hub.on(
            "GET",
            ALL,
            Answer::json(200, &json!({ "webhooks": webhooks })),
        );
        hub.on("DELETE", &format!("{SETTINGS}/w-0"), Answer::status(204));
        hub.on(
            "GET",
            &format!("{SETTINGS}/signed/w-1"),
            Answer::json(200, &json!({ "id": "w-1", "public_key": KEY })),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        assert_eq!(
            calls(&hub),
            [
                format!("GET {ALL}"),
                format!("DELETE {SETTINGS}/w-0"),
                format!("GET {SETTINGS}/signed/w-1"),
            ],
            "nothing created, the signed one kept as it is"
        );
        assert_eq!(
            hub.kept(),
            vec![("webhook_public_key".to_string(), KEY.to_string())]
        );
        assert!(hub.record::<Value>("webhook", "w-1").is_some());
    }

    #[test]
    fn a_changed_webhook_is_repaired_and_signed_and_a_lost_race_adopts_the_winner() {
        let mut hub = hub();
        let mut changed = listed("w-1", URL, None);
        changed["enabled"] = json!(false);
        changed["click"] = json!(false);
        hub.on(
            "GET",
            ALL,
            Answer::json(200, &json!({ "webhooks": [changed] })),
        );
        hub.on(
            "PATCH",
            &format!("{SETTINGS}/w-1"),
            Answer::json(200, &json!({ "id": "w-1" })),
        );
        hub.on(
            "PATCH",
            &format!("{SETTINGS}/signed/w-1"),
            Answer::json(200, &json!({ "id": "w-1", "public_key": KEY })),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        let repair = &hub.requests()[1];
        assert_eq!(repair.url, format!("{SETTINGS}/w-1"));
        assert_eq!(
            (&repair.json()["enabled"], &repair.json()["click"]),
            (&json!(true), &json!(true))
        );
        assert!(
            repair.json().get("friendly_name").is_none(),
            "their name is left alone"
        );
        assert_eq!(hub.kept().len(), 1);

        // Created elsewhere between the list and the create: SendGrid names it.
        let mut hub = super::tests::hub();
        hub.on("GET", ALL, Answer::json(200, &json!({ "webhooks": [{}] })));
        hub.on("POST", SETTINGS, Answer::json(400, &json!({ "errors": [{ "id": "w-9",
            "message": "Webhook at 'x' already exists. Please provide a unique URL.", "url": URL }] })));
        hub.on(
            "PATCH",
            &format!("{SETTINGS}/signed/w-9"),
            Answer::json(200, &json!({ "id": "w-9", "public_key": KEY })),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        assert!(hub.record::<Value>("webhook", "w-9").is_some());
    }

    #[test]
    fn refusals_are_mapped_like_sending() {
        let mut hub = hub();
        hub.on(
            "GET",
            ALL,
            Answer::json(
                403,
                &json!({ "errors": [{ "field": null, "message": "access forbidden" }] }),
            ),
        );
        let err = hub.job("register_webhooks", &json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "permanent: SendGrid answered 403: access forbidden"
        );
        let mut hub = super::tests::hub();
        hub.on("GET", ALL, Answer::status(503));
        assert!(
            hub.job("register_webhooks", &json!({}))
                .unwrap_err()
                .is_retryable()
        );
        assert!(hub.kept().is_empty());
    }

    #[test]
    fn unregister_deletes_only_the_hubs_webhooks_and_one_already_gone_is_fine() {
        let mut hub = hub();
        let webhooks = json!([
            listed("w-1", URL, Some(KEY)),
            listed("w-other", "https://else.example/x", Some("k")),
            listed("w-2", &format!("{URL}/"), None),
        ]);
        hub.put_record("webhook", "w-1", &json!({ "id": "w-1", "url": URL }));
        hub.on(
            "GET",
            ALL,
            Answer::json(200, &json!({ "webhooks": webhooks })),
        );
        hub.on("DELETE", &format!("{SETTINGS}/w-1"), Answer::status(204));
        hub.on(
            "DELETE",
            &format!("{SETTINGS}/w-2"),
            Answer::json(
                404,
                &json!({ "errors": [{ "message": "Invalid id provided." }] }),
            ),
        );
        hub.job("unregister_webhooks", &json!({})).unwrap();
        assert_eq!(
            calls(&hub),
            [
                format!("GET {ALL}"),
                format!("DELETE {SETTINGS}/w-1"),
                format!("DELETE {SETTINGS}/w-2"),
            ]
        );
        assert!(hub.records("webhook").is_empty());
    }
}
