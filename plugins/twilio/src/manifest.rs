//! What the connector declares: the `sms` and `status` routes (Twilio signatures), the
//! message and opt-out events, the `send_message` action, the `register_webhooks` and
//! `unregister_webhooks` jobs, config, the `auth_token` credential and its one outbound host.
//! Pure: `describe` runs without host access.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Route, Selector, SignatureScheme, field,
    manifest as base, route,
};
use serde_json::json;

use crate::inbound::AUTO_REPLY;
use crate::model::{
    MESSAGE_DELIVERED, MESSAGE_FAILED, MESSAGE_READ, MESSAGE_RECEIVED, MESSAGE_SENT, OPTED_IN,
    OPTED_OUT,
};
use crate::plan::{ACCOUNT_SID, FROM, MESSAGING_SERVICE_SID, WHATSAPP_FROM};
use crate::register::{REGISTER, UNREGISTER};
use crate::send::{AUTH_TOKEN, BASE, SEND_MESSAGE};

/// Route of inbound messages (answered synchronously with TwiML).
pub const SMS_ROUTE: &str = "sms";
/// Route of status callbacks.
pub const STATUS_ROUTE: &str = "status";

fn form(name: &str) -> Selector {
    Selector::Form(name.into())
}

/// The routes. Twilio signs the URL it called and the sorted form fields; it sends no
/// timestamp, so a retry is recognised by `MessageSid` (plus `MessageStatus` for callbacks).
pub fn routes() -> Vec<Route> {
    let mut sms = route(SMS_ROUTE, SignatureScheme::Twilio, AUTH_TOKEN);
    sms.identity = vec![form("MessageSid")];
    sms.event_type = Some(form("SmsStatus"));
    sms.sync_reply = true;
    sms.example = Some(
        "MessageSid=SM{{id}}&SmsSid=SM{{id}}&From=%2B14155550100&To=%2B14155550199&Body=Hello+from+a+test&SmsStatus=received&NumMedia=0&NumSegments=1".into(),
    );
    let mut status = route(STATUS_ROUTE, SignatureScheme::Twilio, AUTH_TOKEN);
    status.identity = vec![form("MessageSid"), form("MessageStatus")];
    status.event_type = Some(form("MessageStatus"));
    status.example = Some(
        "MessageSid=SM{{id}}&MessageStatus=delivered&From=%2B14155550199&To=%2B14155550100".into(),
    );
    vec![sms, status]
}

fn message_example(event: &str, direction: &str, status: &str) -> String {
    let inbound = direction == "inbound";
    json!({
        "event": event, "tenant": "acme", "sid": "SM0123456789abcdef0123456789abcdef",
        "direction": direction, "channel": "sms", "status": status,
        "from": if inbound { "+14155550111" } else { "+14155550100" },
        "to": if inbound { "+14155550100" } else { "+14155550111" },
        "body": if inbound { "Can I move my appointment to Tuesday?" } else { "See you Monday at 10am." },
        "media_urls": [], "profile_name": null,
        "error_code": if status == "undelivered" { json!("30003") } else { json!(null) },
        "keyword": null,
        "idempotency_key": if inbound { json!(null) } else { json!("action:acme:twilio:call_123-sms") },
    })
    .to_string()
}

fn event(name: &str, description: &str, example: String) -> EventDecl {
    EventDecl {
        name: name.into(),
        description: description.into(),
        example,
    }
}

fn opt_example() -> String {
    json!({"tenant": "acme", "address": "+14155550111", "channel": "sms", "keyword": "STOP",
           "message_sid": "SM0123456789abcdef0123456789abcdef"})
    .to_string()
}

/// The `send_message` action.
pub fn send_message_action() -> ActionDecl {
    ActionDecl {
        name: SEND_MESSAGE.into(),
        description: "Sends an SMS, or a WhatsApp message to a `whatsapp:` address, from the \
                      tenant's number or Messaging Service (never twice for one idempotency \
                      key; refused for opted-out recipients). Returns `{\"sid\", \"status\"}`."
            .into(),
        inputs: vec![
            field(
                "to",
                true,
                "Recipient: +E164 for SMS, whatsapp:+E164 for WhatsApp.",
            ),
            field(
                "body",
                false,
                "Text, up to 1600 characters (give body, media_url or both).",
            ),
            field(
                "media_url",
                false,
                "Public URL of media to attach, or a list (at most 10).",
            ),
        ],
        outputs: vec![
            field("id", true, "Twilio's SID for the message (also as `sid`)."),
            field("sid", true, "Twilio's SID for the message."),
            field(
                "status",
                true,
                "Its status when sent (`queued`, `accepted`...).",
            ),
        ],
        implements: Some(plugin_sdk::capability::SMS_SEND.into()),
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Twilio SMS and WhatsApp: inbound messages into `message` records with a \
                      TwiML reply, opt-out keywords into `opt_out` records, status callbacks, \
                      and the send_message action."
            .into(),
        routes: routes(),
        events: vec![
            event(
                MESSAGE_RECEIVED,
                "A message (SMS or WhatsApp) arrived.",
                message_example(MESSAGE_RECEIVED, "inbound", "received"),
            ),
            event(
                MESSAGE_SENT,
                "send_message handed a message to Twilio.",
                message_example(MESSAGE_SENT, "outbound", "queued"),
            ),
            event(
                MESSAGE_DELIVERED,
                "Twilio reported an outbound message delivered.",
                message_example(MESSAGE_DELIVERED, "outbound", "delivered"),
            ),
            event(
                MESSAGE_FAILED,
                "An outbound message failed or was undelivered (`error_code`).",
                message_example(MESSAGE_FAILED, "outbound", "undelivered"),
            ),
            event(
                MESSAGE_READ,
                "A WhatsApp message was read.",
                message_example(MESSAGE_READ, "outbound", "read"),
            ),
            event(
                OPTED_OUT,
                "An address texted an opt-out keyword (STOP, ...).",
                opt_example(),
            ),
            event(
                OPTED_IN,
                "An opted-out address texted START, UNSTOP or YES.",
                opt_example().replace("STOP", "START"),
            ),
        ],
        actions: vec![send_message_action()],
        config: vec![
            field(ACCOUNT_SID, true, "The Twilio Account SID (AC...)."),
            field(
                FROM,
                false,
                "Sender number (+E164); also the WhatsApp sender unless `whatsapp_from` is set. \
                 `hub connect` points its incoming messages (SmsUrl) at the hub.",
            ),
            field(
                MESSAGING_SERVICE_SID,
                false,
                "Send through this Messaging Service (MG...) instead of `from`.",
            ),
            field(WHATSAPP_FROM, false, "WhatsApp sender (whatsapp:+E164)."),
            field(
                AUTO_REPLY,
                false,
                "Text to answer every inbound message with (not keywords).",
            ),
        ],
        credentials: vec![field(
            AUTH_TOKEN,
            true,
            "The account's Auth Token: verifies webhook signatures and authenticates API calls \
             (`hub connect` too: Twilio signs with it, so registering keeps no other secret).",
        )],
        jobs: vec![
            JobDecl {
                name: REGISTER.into(),
                description: "Points the tenant's number (`from`) at the hub: its SmsUrl at the \
                              `sms` route (left alone when already there; its StatusCallback, \
                              the number's voice call status URL, is never touched), and clears \
                              it from a number the hub set earlier that is no longer `from`."
                    .into(),
                schedule: None,
            },
            JobDecl {
                name: UNREGISTER.into(),
                description: "Clears the SmsUrl of the tenant's numbers where it still points at \
                              the hub."
                    .into(),
                schedule: None,
            },
        ],
        oauth2: Vec::new(),
        outbound_hosts: vec![BASE.into()],
        ..base("twilio", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        let m = manifest();
        assert_eq!(m.name, "twilio");
        let [sms, status] = &m.routes[..] else {
            panic!("two routes")
        };
        assert_eq!(sms.name, "sms");
        assert!(sms.sync_reply);
        assert!(matches!(&sms.identity[..], [Selector::Form(a)] if a == "MessageSid"));
        assert_eq!(status.name, "status");
        assert!(!status.sync_reply);
        assert!(
            matches!(&status.identity[..], [Selector::Form(a), Selector::Form(b)] if a == "MessageSid" && b == "MessageStatus")
        );
        for r in &m.routes {
            assert!(matches!(r.signature, SignatureScheme::Twilio));
            assert_eq!(r.credential, "auth_token");
            assert!(!r.split_array && r.tenant_lookup.is_none());
        }
    }

    #[test]
    fn declarations() {
        let m = manifest();
        let names: Vec<&str> = m.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "message.received",
                "message.sent",
                "message.delivered",
                "message.failed",
                "message.read",
                "recipient.opted_out",
                "recipient.opted_in"
            ]
        );
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["tenant"], "acme", "{}", e.name);
        }
        assert_eq!(m.actions[0].name, "send_message");
        let config: Vec<(&str, bool)> = m
            .config
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(config[0], ("account_sid", true));
        assert!(config[1..].iter().all(|(_, r)| !r));
        assert_eq!(m.credentials[0].name, "auth_token");
        assert_eq!(m.credentials.len(), 1, "nothing for `hub connect` to keep");
        let jobs: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(jobs, vec!["register_webhooks", "unregister_webhooks"]);
        assert_eq!(m.outbound_hosts, vec!["https://api.twilio.com"]);
    }
}
