//! What the connector declares: one Svix-signed route, the `email.*` events, the `send_email`
//! action, config, credentials and its one outbound host. Pure: `describe` runs without host
//! access.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Route, Selector, SignatureScheme, field,
    manifest as base, route,
};

use crate::api::{API_KEY, BASE};
use crate::merge::EMAIL_EVENTS;
use crate::send::{FROM, REPLY_TO, SEND_EMAIL};
use crate::webhook::example;

/// The credential holding the webhook signing secret (`whsec_...`).
pub const WEBHOOK_SECRET: &str = "webhook_secret";

/// The one route, `/hooks/{tenant}/resend`: Standard Webhooks (Svix) signatures, a delivery
/// identified by `svix-id` (stable across Resend's retries), the event type at `/type`.
pub fn routes() -> Vec<Route> {
    let mut hook = route("", SignatureScheme::StandardWebhooks, WEBHOOK_SECRET);
    hook.tolerance_secs = 300;
    hook.identity = vec![Selector::Header("svix-id".into())];
    hook.event_type = Some(Selector::Json("/type".into()));
    hook.example = Some(
        r#"{"type":"email.delivered","created_at":"2026-12-01T09:30:00.000Z","data":{"email_id":"4ef9a417-02e9-4d39-ad75-{{id}}","from":"Clinic <hello@example.com>","to":["jane@example.com"],"subject":"Your appointment","created_at":"2026-12-01T09:29:58.000Z"}}"#.into(),
    );
    vec![hook]
}

fn describe_event(name: &str) -> &'static str {
    match name {
        "email.sent" => "Resend accepted the email and is delivering it.",
        "email.delivered" => "The recipient's mail server accepted the email.",
        "email.delivery_delayed" => "Delivery is delayed by a temporary problem.",
        "email.bounced" => {
            "The email bounced (`bounce.type` Permanent also suppresses the address)."
        }
        "email.complained" => "A recipient marked the email as spam (the address is suppressed).",
        "email.opened" => "The email was first opened (open tracking).",
        "email.clicked" => "A link in the email was clicked, once per distinct link.",
        "email.failed" => "Resend could not send the email (`failed_reason`).",
        "email.scheduled" => "The email is scheduled for later.",
        "email.suppressed" => "Resend suppressed the email (an address on its suppression list).",
        "email.received" => "An email arrived on a receiving domain.",
        _ => "",
    }
}

/// The `send_email` action.
pub fn send_email_action() -> ActionDecl {
    ActionDecl {
        name: SEND_EMAIL.into(),
        description: "Sends an email from the tenant's `from` through Resend (never twice for \
                      one idempotency key; refused for suppressed recipients). \
                      Returns `{\"id\": ...}`."
            .into(),
        inputs: vec![
            field("to", true, "Recipient address, or a list (at most 50)."),
            field("subject", true, "Subject line."),
            field("html", false, "HTML body (give html, text or both)."),
            field("text", false, "Plain-text body."),
            field("cc", false, "Cc address or list."),
            field("bcc", false, "Bcc address or list."),
            field(
                "reply_to",
                false,
                "Reply-to address or list; default: the tenant's `reply_to`.",
            ),
            field("tags", false, "Tags: {name: value} or [{name, value}]."),
            field("headers", false, "Extra email headers: {name: value}."),
            field(
                "scheduled_at",
                false,
                "Send later: ISO 8601 or e.g. \"in 1 hour\".",
            ),
        ],
        outputs: plugin_sdk::operation_outputs(plugin_sdk::capability::EMAIL_SEND),
        implements: Some(plugin_sdk::capability::EMAIL_SEND.into()),
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Resend email: Svix-signed webhooks into non-regressing `email` records, \
                      `suppression` records for hard bounces and complaints, email.* events, \
                      and the send_email action."
            .into(),
        routes: routes(),
        events: EMAIL_EVENTS
            .iter()
            .map(|name| EventDecl {
                name: (*name).into(),
                description: describe_event(name).into(),
                example: example(name),
            })
            .collect(),
        actions: vec![send_email_action()],
        config: vec![
            field(
                FROM,
                true,
                "Sender for send_email: `Name <address@your-verified-domain>`.",
            ),
            field(
                REPLY_TO,
                false,
                "Default reply-to address (or list) for send_email.",
            ),
        ],
        credentials: vec![
            field(API_KEY, true, "Resend API key (`re_...`) for sending."),
            field(
                WEBHOOK_SECRET,
                false,
                "The webhook's signing secret (`whsec_...`): kept by `hub connect` (register_webhooks), or sealed from the Resend dashboard.",
            ),
        ],
        jobs: vec![
            JobDecl {
                name: crate::register::REGISTER.into(),
                description: "Registers the hub's URL as a Resend webhook for every email event (kept if there), and keeps its signing secret.".into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::UNREGISTER.into(),
                description: "Removes the hub's webhook at Resend.".into(),
                schedule: None,
            },
        ],
        oauth2: Vec::new(),
        outbound_hosts: vec![BASE.into()],
        ..base("resend", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_matches_the_contract() {
        let m = manifest();
        assert_eq!(m.name, "resend");
        assert_eq!(m.routes.len(), 1);
        let r = &m.routes[0];
        assert_eq!(r.name, "");
        assert!(matches!(r.signature, SignatureScheme::StandardWebhooks));
        assert_eq!(r.credential, "webhook_secret");
        assert!(matches!(&r.identity[..], [Selector::Header(h)] if h == "svix-id"));
        assert!(matches!(&r.event_type, Some(Selector::Json(p)) if p == "/type"));
        assert!(!r.sync_reply && !r.split_array && r.tenant_lookup.is_none());
    }

    #[test]
    fn declarations() {
        let m = manifest();
        assert_eq!(m.events.len(), 11);
        for e in &m.events {
            assert!(!e.description.is_empty(), "{}", e.name);
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["event"], e.name.as_str());
            // Comparable with every email connector's events.
            for field in plugin_sdk::email::EVENT_FIELDS {
                assert!(v.get(field).is_some(), "{}: no `{field}`", e.name);
            }
            assert_eq!(v["provider"], "resend");
        }
        assert_eq!(m.actions.len(), 1);
        let inputs: Vec<(&str, bool)> = m.actions[0]
            .inputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        let op = plugin_sdk::capability::operation(plugin_sdk::capability::EMAIL_SEND).unwrap();
        plugin_sdk::capability::conforms(op, &inputs).unwrap();
        assert_eq!(m.actions[0].name, "send_email");
        let required: Vec<&str> = m.actions[0]
            .inputs
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(required, vec!["to", "subject"]);
        let config: Vec<(&str, bool)> = m
            .config
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(config, vec![("from", true), ("reply_to", false)]);
        let creds: Vec<&str> = m.credentials.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(creds, vec!["api_key", "webhook_secret"]);
        assert_eq!(m.outbound_hosts, vec!["https://api.resend.com"]);
    }
}
