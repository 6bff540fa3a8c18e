//! REST-hook subscriptions: one `subscription` record per Zap listening to an event, keyed by
//! its id. What a subscribe request must hold (pure, tested) and the store glue.
//!
//! Zapier's target URLs are `https://hooks.zapier.com/...`; the connector declares only that
//! origin, so a subscription to anything else could never be served and is refused up front.

use plugin_sdk::{Error, records};
use serde::{Deserialize, Serialize};

use crate::body::{Fields, text};

/// Record kind of a subscription.
pub const KIND: &str = "subscription";
/// The origin Zapier's target URLs live on (the connector's one outbound host).
pub const TARGET_ORIGIN: &str = "https://hooks.zapier.com";
/// Most subscriptions a tenant may hold.
pub const MAX_SUBSCRIPTIONS: u32 = 1000;
/// Longest target URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Longest event name accepted.
const MAX_EVENT_LEN: usize = 100;

/// Where a subscribe request may put the target URL.
pub const TARGET_FIELDS: [&str; 5] = ["target_url", "targetUrl", "hookUrl", "hook_url", "url"];
/// Where a request may put the event name.
pub const EVENT_FIELDS: [&str; 3] = ["event", "event_type", "trigger"];
/// Where an unsubscribe request may put the subscription id.
pub const ID_FIELDS: [&str; 3] = ["id", "subscription_id", "subscriptionId"];

/// A Zap listening to one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// The id answered to Zapier, which it sends back to unsubscribe.
    pub id: String,
    /// Where deliveries are POSTed.
    pub target_url: String,
    /// The event name the Zap listens to (what `notify` is called with).
    pub event: String,
    /// When it was made (epoch ms).
    #[serde(default)]
    pub created_at_ms: i64,
}

/// Checks a target URL.
///
/// # Errors
/// Why it is refused.
pub fn check_target(url: &str) -> Result<(), String> {
    if !url.starts_with(&format!("{TARGET_ORIGIN}/")) {
        return Err(format!("the target URL must start with {TARGET_ORIGIN}/"));
    }
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the target URL is not usable".into());
    }
    Ok(())
}

/// Checks an event name: 1 to 100 of `A-Z a-z 0-9 . _ : -`.
///
/// # Errors
/// Why it is refused.
pub fn check_event(event: &str) -> Result<(), String> {
    let ok = !event.is_empty()
        && event.len() <= MAX_EVENT_LEN
        && event
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{event}` is not an event name (1 to {MAX_EVENT_LEN} of letters, digits, `._:-`)"
        ))
    }
}

/// The target URL and event of a subscribe request.
///
/// # Errors
/// Why the request is refused.
pub fn parse_subscribe(fields: &Fields) -> Result<(String, String), String> {
    let target = text(fields, &TARGET_FIELDS).ok_or("no `target_url`")?;
    check_target(&target)?;
    let event = text(fields, &EVENT_FIELDS).ok_or("no `event`")?;
    check_event(&event)?;
    Ok((target, event))
}

/// The subscription with this target and event, if any (Zapier retrying a subscribe).
pub fn find_same<'a>(
    list: &'a [Subscription],
    target: &str,
    event: &str,
) -> Option<&'a Subscription> {
    list.iter()
        .find(|s| s.target_url == target && s.event == event)
}

/// The id of a subscription made by delivery `delivery_id`: stable, so a retried subscribe
/// (stored once) answers the same id.
pub fn new_id(delivery_id: &str) -> String {
    format!("sub_{delivery_id}")
}

/// Every subscription of the tenant (up to [`MAX_SUBSCRIPTIONS`]).
pub fn all() -> Vec<Subscription> {
    records::list::<Subscription>(KIND, MAX_SUBSCRIPTIONS)
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

/// One subscription.
///
/// # Errors
/// Permanent if the stored record does not parse.
pub fn get(id: &str) -> Result<Option<Subscription>, Error> {
    records::get(KIND, id)
}

/// Stores a subscription.
///
/// # Errors
/// Permanent if it cannot be serialized.
pub fn save(s: &Subscription) -> Result<(), Error> {
    records::upsert(KIND, &s.id, s)
}

/// Removes a subscription.
pub fn remove(id: &str) {
    records::delete(KIND, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(v: serde_json::Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn targets() {
        assert!(check_target("https://hooks.zapier.com/hooks/standard/1/abc/").is_ok());
        for bad in [
            "http://hooks.zapier.com/hooks/x",
            "https://hooks.zapier.com.evil.io/x",
            "https://hooks.zapier.com",
            "https://example.com/hooks",
            "https://hooks.zapier.com/a b",
        ] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events() {
        assert!(check_event("call.analyzed").is_ok());
        assert!(check_event("hubspot.contact:created-v2_x").is_ok());
        assert!(check_event("").is_err());
        assert!(check_event("a b").is_err());
        assert!(check_event(&"e".repeat(101)).is_err());
    }

    #[test]
    fn subscribe_requests() {
        let ok = f(
            json!({"hookUrl": "https://hooks.zapier.com/hooks/standard/1/a/", "event": "call.analyzed"}),
        );
        assert_eq!(
            parse_subscribe(&ok).unwrap(),
            (
                "https://hooks.zapier.com/hooks/standard/1/a/".to_string(),
                "call.analyzed".to_string()
            )
        );
        assert!(
            parse_subscribe(&f(json!({"event": "x"})))
                .unwrap_err()
                .contains("target_url")
        );
        assert!(
            parse_subscribe(&f(json!({"target_url": "https://hooks.zapier.com/h/1"})))
                .unwrap_err()
                .contains("event")
        );
    }

    #[test]
    fn same_subscription_is_found_and_ids_are_stable() {
        let s = Subscription {
            id: "sub_1".into(),
            target_url: "https://hooks.zapier.com/h/1".into(),
            event: "e".into(),
            created_at_ms: 0,
        };
        let list = vec![s.clone()];
        assert_eq!(
            find_same(&list, "https://hooks.zapier.com/h/1", "e"),
            Some(&s)
        );
        assert_eq!(find_same(&list, "https://hooks.zapier.com/h/1", "f"), None);
        assert_eq!(new_id("17"), "sub_17");
        let back: Subscription =
            serde_json::from_value(json!({"id": "a", "target_url": "t", "event": "e"})).unwrap();
        assert_eq!(back.created_at_ms, 0);
    }
}
