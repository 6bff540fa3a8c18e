//! The hub's own webhook at Cal.com (`register_webhooks`, `unregister_webhooks`) through
//! `/v2/webhooks` (no `cal-api-version`), and `check_credentials`.
//!
//! What is registered: the tenant's route URL (`/hooks/{tenant}/calcom`), every trigger the
//! connector handles, `active`, version `2021-10-20`, and a signing secret the hub chooses: the
//! host generates it (`generate_credential`, a random token) as `webhook_secret` and the
//! connector sends it on as `{credential:webhook_secret}`, filled in by the host
//! (`fill_body`); it is sealed into `hub.toml` once the job succeeds, and the connector never
//! sees it.
//!
//! Registering is idempotent: a registration of the hub's URL is kept and updated (`PATCH`:
//! its triggers, `active`, and a new secret, since the old one cannot be read back into the
//! host), a second one is removed, and only a missing one is created. Until the hub reloads
//! with the new secret, Cal.com's webhooks signed with it are refused: the reconcile job finds
//! what they said. Unregistering removes every registration of the hub's URL.

use plugin_sdk::{
    Error, SecretForm, generate_credential, http::credential_url, records, route_url,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{self, check};
use crate::manifest::WEBHOOK_SECRET;
use crate::webhook::TRIGGERS;

/// The job that registers the hub's webhook.
pub const REGISTER: &str = "register_webhooks";
/// The job that removes it.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The job the console's **Test** button runs.
pub const CHECK: &str = "check_credentials";
/// The record kind kept per registration (its id, URL and triggers; never the secret).
pub const KIND: &str = "webhook";
/// The only payload version Cal.com has.
pub const VERSION: &str = "2021-10-20";
/// Registrations per page (Cal.com's maximum).
const TAKE: usize = 250;

/// One webhook of `GET /v2/webhooks`.
#[derive(Deserialize)]
struct Listed {
    id: Value,
    #[serde(rename = "subscriberUrl", default)]
    subscriber_url: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    data: Vec<Listed>,
}

/// Every trigger the connector handles, in Cal.com's names.
pub fn triggers() -> Vec<&'static str> {
    TRIGGERS.iter().map(|(name, _)| *name).collect()
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// The ids of the registrations of `url`, across pages.
fn registered(url: &str) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let mut skip = 0;
    loop {
        let path = format!("/webhooks?take={TAKE}&skip={skip}");
        let page: List = check(api::call("GET", &path, None).send()?)?.json()?;
        found.extend(
            page.data
                .iter()
                .filter(|w| same_url(&w.subscriber_url, url))
                .map(|w| id_text(&w.id)),
        );
        if page.data.len() < TAKE {
            return Ok(found);
        }
        skip += TAKE;
    }
}

/// Removes one registration; one already gone is what was wanted.
fn remove(id: &str) -> Result<(), Error> {
    let resp = api::call("DELETE", &format!("/webhooks/{}", api::encode(id)), None).send()?;
    if resp.status != 404 {
        check(resp)?;
    }
    records::delete(KIND, id);
    Ok(())
}

/// `register_webhooks`.
///
/// # Errors
/// Cal.com's refusals (429 waits, 5xx retries, a bad key is permanent); permanent when the
/// manifest's credential cannot be generated.
pub fn register() -> Result<(), Error> {
    let url = route_url("");
    let mut ids = registered(&url)?;
    generate_credential(WEBHOOK_SECRET, SecretForm::Token)?;
    let secret = credential_url(WEBHOOK_SECRET);
    let id = if ids.is_empty() {
        let body = json!({ "subscriberUrl": url, "triggers": triggers(), "active": true,
                           "secret": secret, "version": VERSION });
        let created: Value = check(
            api::call("POST", "/webhooks", None)
                .json(&body)?
                .fill_body()
                .send()?,
        )?
        .json()?;
        created
            .pointer("/data/id")
            .map(id_text)
            .ok_or_else(|| Error::permanent("Cal.com created the webhook but answered no id"))?
    } else {
        let keep = ids.remove(0);
        for extra in &ids {
            remove(extra)?;
        }
        let body = json!({ "triggers": triggers(), "active": true, "secret": secret });
        check(
            api::call("PATCH", &format!("/webhooks/{}", api::encode(&keep)), None)
                .json(&body)?
                .fill_body()
                .send()?,
        )?;
        keep
    };
    records::upsert(
        KIND,
        &id,
        &json!({ "id": id, "subscriber_url": url, "triggers": triggers(), "active": true }),
    )
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`].
pub fn unregister() -> Result<(), Error> {
    for id in registered(&route_url(""))? {
        remove(&id)?;
    }
    Ok(())
}

/// `check_credentials`: `GET /v2/me` with the API key; writes nothing.
///
/// # Errors
/// Cal.com's refusal, with its message (a wrong key: permanent).
pub fn check_credentials() -> Result<(), Error> {
    check(api::call("GET", "/me", None).send()?).map(|_| ())
}

#[cfg(test)]
mod tests {
    use plugin_sdk::harness::{Answer, Harness};
    use serde_json::{Value, json};

    use crate::Calcom;

    const URL: &str = "https://hub.example/hooks/acme/calcom";

    fn hub() -> Harness<Calcom> {
        Harness::<Calcom>::new().credential("api_key", "cal_live_test")
    }

    fn listed(hooks: &[(i64, &str)]) -> Answer {
        let data: Vec<Value> = hooks
            .iter()
            .map(|(id, url)| {
                json!({"id": id, "userId": 7, "subscriberUrl": url, "active": true,
                                    "triggers": ["BOOKING_CREATED"], "payloadTemplate": null})
            })
            .collect();
        Answer::json(200, &json!({"status": "success", "data": data}))
    }

    #[test]
    fn a_missing_registration_is_created_with_a_secret_the_host_chose() {
        let mut hub = hub();
        hub.on(
            "GET",
            "https://api.cal.com/v2/webhooks?",
            listed(&[(3, "https://else.example/x")]),
        );
        hub.on(
            "POST",
            "https://api.cal.com/v2/webhooks",
            Answer::json(
                201,
                &json!({"status": "success", "data": {"id": 41, "userId": 7, "subscriberUrl": URL,
                "active": true, "triggers": [], "payloadTemplate": null}}),
            ),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        let kept = hub.kept();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].0, "webhook_secret");
        let sent = hub.requests();
        assert_eq!(
            sent[0].url,
            "https://api.cal.com/v2/webhooks?take=250&skip=0"
        );
        assert_eq!(sent[0].header("cal-api-version"), None);
        let created = sent[1].json();
        assert_eq!(created["subscriberUrl"], URL);
        assert_eq!(
            created["secret"],
            kept[0].1.as_str(),
            "the host filled the secret in"
        );
        assert_eq!(created["active"], true);
        assert_eq!(created["version"], "2021-10-20");
        assert_eq!(
            created["triggers"],
            json!([
                "BOOKING_CREATED",
                "BOOKING_RESCHEDULED",
                "BOOKING_CANCELLED",
                "BOOKING_REQUESTED",
                "BOOKING_REJECTED",
                "BOOKING_NO_SHOW_UPDATED",
                "MEETING_STARTED",
                "MEETING_ENDED"
            ])
        );
        assert_eq!(
            sent[1].header("authorization"),
            Some("Bearer cal_live_test")
        );
        let record: Value = hub.record("webhook", "41").unwrap();
        assert_eq!(record["subscriber_url"], URL);
        assert!(!record.to_string().contains(&kept[0].1));
        // The new secret verifies what Cal.com signs with it.
        let d = hub.signed_webhook(
            "",
            r#"{"triggerEvent":"PING","createdAt":"2026-01-01T00:00:00Z","payload":{}}"#,
        );
        assert_eq!(hub.check_signature(&d), Ok(()));
    }

    #[test]
    fn an_existing_registration_is_kept_with_a_new_secret_and_a_duplicate_removed() {
        let mut hub = hub();
        hub.on(
            "GET",
            "https://api.cal.com/v2/webhooks?",
            listed(&[
                (41, URL),
                (3, "https://else.example/x"),
                (42, &format!("{URL}/")),
            ]),
        );
        hub.on(
            "DELETE",
            "https://api.cal.com/v2/webhooks/42",
            Answer::json(200, &json!({"status": "success", "data": {}})),
        );
        hub.on(
            "PATCH",
            "https://api.cal.com/v2/webhooks/41",
            Answer::json(200, &json!({"status": "success", "data": {"id": 41}})),
        );
        hub.job("register_webhooks", &json!({})).unwrap();
        hub.job("register_webhooks", &json!({})).unwrap();
        let calls: Vec<String> = hub
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert!(!calls.iter().any(|c| c.starts_with("POST")), "{calls:?}");
        assert!(
            calls.contains(&"DELETE https://api.cal.com/v2/webhooks/42".to_string()),
            "{calls:?}"
        );
        let patch = hub
            .requests()
            .into_iter()
            .rfind(|r| r.method == "PATCH")
            .unwrap();
        assert_eq!(patch.json()["active"], true);
        let kept = hub.kept();
        assert_eq!(kept.len(), 2, "a secret per run");
        assert_eq!(
            patch.json()["secret"],
            kept[1].1.as_str(),
            "the newest, filled in"
        );
        assert_eq!(hub.records("webhook").len(), 1);
    }

    #[test]
    fn unregistering_removes_the_hubs_registrations_only() {
        let mut hub = hub();
        hub.put_record("webhook", "41", &json!({"id": "41"}));
        hub.on(
            "GET",
            "https://api.cal.com/v2/webhooks?",
            listed(&[(41, URL), (3, "https://else.example/x")]),
        );
        hub.on(
            "DELETE",
            "https://api.cal.com/v2/webhooks/41",
            Answer::status(404),
        );
        hub.job("unregister_webhooks", &json!({})).unwrap();
        let deletes: Vec<String> = hub
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.url.clone())
            .collect();
        assert_eq!(deletes, ["https://api.cal.com/v2/webhooks/41"]);
        assert!(hub.records("webhook").is_empty());
        // A bad key is said plainly.
        hub.on(
            "GET",
            "https://api.cal.com/v2/me",
            Answer::json(
                401,
                &json!({"status": "error", "error": {"message": "Invalid API Key"}}),
            ),
        );
        let e = hub.job("check_credentials", &json!({})).unwrap_err();
        assert!(
            e.is_permanent() && e.to_string().contains("Invalid API Key"),
            "{e}"
        );
    }
}
