//! The hub's own webhook at Resend (`register_webhooks`, `unregister_webhooks`): Resend's
//! webhooks API (`/webhooks`) creates an endpoint and answers its signing secret, which the
//! host keeps as `webhook_secret` (the connector never reads it: `capture`).
//!
//! Registering is idempotent: the tenant's hub URL already registered is kept (and its secret
//! taken again, so a run that failed after Resend created it completes the next time), a second
//! registration of the same URL (left by hand, or by a run that failed halfway) is removed, and
//! only a missing one is created. Unregistering removes every registration of the hub's URL.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, records, route_url};
use serde::Deserialize;
use serde_json::json;

use crate::api::{API_KEY, BASE, api_error};
use crate::manifest::WEBHOOK_SECRET;
use crate::merge::EMAIL_EVENTS;

/// The job that registers the hub's webhook.
pub const REGISTER: &str = "register_webhooks";
/// The job that removes it.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The record kind kept for the registration (its id, URL and events; never the secret).
pub const KIND: &str = "webhook";

/// One webhook of `GET /webhooks`.
#[derive(Deserialize)]
struct Listed {
    id: String,
    endpoint: String,
}

/// A page of `GET /webhooks`.
#[derive(Deserialize)]
struct Page {
    data: Vec<Listed>,
    #[serde(default)]
    has_more: bool,
}

fn checked(resp: plugin_sdk::HttpResponse) -> Result<plugin_sdk::HttpResponse, Error> {
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    let retry_after = resp.header("retry-after").map(str::to_string);
    Err(api_error(resp.status, retry_after.as_deref(), &resp.body))
}

/// The tenant's registrations of `url`, across pages.
fn registered(url: &str) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page_url = match &after {
            Some(a) => format!("{BASE}/webhooks?limit=100&after={a}"),
            None => format!("{BASE}/webhooks?limit=100"),
        };
        let page: Page = checked(Request::get(page_url).bearer(API_KEY).send()?)?.json()?;
        found.extend(
            page.data
                .iter()
                .filter(|w| w.endpoint == url)
                .map(|w| w.id.clone()),
        );
        match (page.has_more, page.data.last()) {
            (true, Some(last)) => after = Some(last.id.clone()),
            _ => return Ok(found),
        }
    }
}

/// `register_webhooks`.
///
/// # Errors
/// Resend's refusals, mapped as for sending (429 and 5xx retry; a bad key is permanent).
pub fn register() -> Result<(), Error> {
    let url = route_url("");
    let mut ids = registered(&url)?;
    let id = if ids.is_empty() {
        let created: serde_json::Value = checked(
            Request::post(format!("{BASE}/webhooks"))
                .bearer(API_KEY)
                .json(&json!({ "endpoint": url, "events": EMAIL_EVENTS }))?
                .capture("/signing_secret", WEBHOOK_SECRET)
                .send()?,
        )?
        .json()?;
        created["id"].as_str().unwrap_or_default().to_string()
    } else {
        let keep = ids.remove(0);
        for extra in ids {
            checked(
                Request::new("DELETE", format!("{BASE}/webhooks/{extra}"))
                    .bearer(API_KEY)
                    .send()?,
            )?;
        }
        // Its secret again: the host may not have kept it the first time.
        checked(
            Request::get(format!("{BASE}/webhooks/{keep}"))
                .bearer(API_KEY)
                .capture("/signing_secret", WEBHOOK_SECRET)
                .send()?,
        )?;
        keep
    };
    records::upsert(
        KIND,
        &id,
        &json!({ "id": id, "endpoint": url, "events": EMAIL_EVENTS }),
    )
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`].
pub fn unregister() -> Result<(), Error> {
    let url = route_url("");
    for id in registered(&url)? {
        let resp = Request::new("DELETE", format!("{BASE}/webhooks/{id}"))
            .bearer(API_KEY)
            .send()?;
        // Already gone is what was wanted.
        if resp.status != 404 {
            checked(resp)?;
        }
        records::delete(KIND, &id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use plugin_sdk::harness::{Answer, Harness};
    use serde_json::json;

    use crate::Resend;

    fn hub() -> Harness<Resend> {
        Harness::<Resend>::new()
            .tenant("acme")
            .credential("api_key", "re_test")
    }

    #[test]
    fn a_missing_registration_is_created_and_its_secret_kept_by_the_host() {
        let mut hub = hub();
        hub.on(
            "GET",
            "https://api.resend.com/webhooks?",
            Answer::json(
                200,
                &json!({ "object": "list", "has_more": false, "data": [] }),
            ),
        );
        hub.on(
            "POST",
            "https://api.resend.com/webhooks",
            Answer::json(
                201,
                &json!({ "object": "webhook", "id": "w-1", "signing_secret": "whsec_abc" }),
            ),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        assert_eq!(
            hub.kept(),
            vec![("webhook_secret".to_string(), "whsec_abc".to_string())]
        );
        let created = &hub.requests()[1];
        assert_eq!(
            created.json()["endpoint"],
            "https://hub.example/hooks/acme/resend"
        );
        assert_eq!(created.json()["events"].as_array().unwrap().len(), 11);
        let record: serde_json::Value = hub.record("webhook", "w-1").unwrap();
        assert!(!record.to_string().contains("whsec_abc"));
    }

    #[test]
    fn an_existing_registration_is_kept_and_a_duplicate_removed() {
        let mut hub = hub();
        let url = "https://hub.example/hooks/acme/resend";
        hub.on("GET", "https://api.resend.com/webhooks?", Answer::json(200, &json!({ "object": "list", "has_more": false,
            "data": [{ "id": "w-1", "endpoint": url }, { "id": "w-other", "endpoint": "https://else.example/x" }, { "id": "w-2", "endpoint": url }] })));
        hub.on(
            "DELETE",
            "https://api.resend.com/webhooks/w-2",
            Answer::json(
                200,
                &json!({ "object": "webhook", "id": "w-2", "deleted": true }),
            ),
        );
        hub.on("GET", "https://api.resend.com/webhooks/w-1", Answer::json(200, &json!({ "object": "webhook", "id": "w-1", "endpoint": url, "signing_secret": "whsec_1" })));
        hub.job("register_webhooks", &json!({})).unwrap();
        let methods: Vec<String> = hub
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert!(
            !methods.iter().any(|m| m.starts_with("POST")),
            "{methods:?}"
        );
        assert!(
            methods.contains(&"DELETE https://api.resend.com/webhooks/w-2".to_string()),
            "{methods:?}"
        );
        assert_eq!(
            hub.kept(),
            vec![("webhook_secret".to_string(), "whsec_1".to_string())]
        );
    }
}
