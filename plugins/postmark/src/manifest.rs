//! What the Postmark connector declares: the webhook route (HTTP Basic credentials from the
//! webhook URL, checked by the hub), the `email.*` events, `send_email`, `check_credentials`, and
//! the jobs `hub connect` runs ([`crate::register`]).

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Selector, SignatureScheme, field, manifest as base,
    route,
};

/// The route Postmark's webhooks post to.
pub const WEBHOOK: &str = "webhook";
/// The `user:password` of the webhook URL.
pub const WEBHOOK_AUTH: &str = "webhook_auth";
/// The server token `send_email` and the check use.
pub const SERVER_TOKEN: &str = "server_token";
/// Postmark's API.
pub const API: &str = "https://api.postmarkapp.com";
/// Action name.
pub const SEND_EMAIL: &str = "send_email";
/// Job name.
pub const CHECK_CREDENTIALS: &str = "check_credentials";

const EMAIL_EVENTS: [(&str, &str); 8] = [
    ("email.delivered", "The receiving server accepted it."),
    (
        "email.delivery_delayed",
        "A soft bounce; Postmark may still deliver.",
    ),
    ("email.bounced", "A hard bounce."),
    ("email.complained", "A recipient reported it as spam."),
    ("email.opened", "A recipient opened it (once per email)."),
    (
        "email.clicked",
        "A recipient clicked a link (once per link).",
    ),
    (
        "email.unsubscribed",
        "Sending to a recipient was suppressed (SubscriptionChange).",
    ),
    ("email.received", "An inbound email arrived."),
];

/// The header that names one webhook across Postmark's retries.
const TRACE_ID: &str = "x-pm-webhook-trace-id";

/// A Delivery webhook as Postmark sends it, for test webhooks.
const EXAMPLE: &str = r#"{"RecordType":"Delivery","ServerID":23,"MessageStream":"outbound","MessageID":"883953f4-6105-42a2-a16a-77a8eac{{id}}","Recipient":"jane@example.com","Tag":"follow_up","DeliveredAt":"2026-01-01T00:00:00Z","Details":"Test delivery webhook details","Metadata":{"hub_key":"test"}}"#;

pub fn manifest() -> Manifest {
    let mut webhook = route(WEBHOOK, SignatureScheme::BasicAuth, WEBHOOK_AUTH);
    // Postmark's trace id is the same on every retry of one webhook; a request without it
    // (a hand-made test, say) is identified by its body, never refused: a 400 drops the event.
    webhook.identity = vec![Selector::Header(TRACE_ID.into())];
    webhook.identity_optional = true;
    webhook.event_type = Some(Selector::Json("/RecordType".into()));
    webhook.example = Some(EXAMPLE.into());
    Manifest {
        description: "Postmark: webhooks (Delivery, Bounce, SpamComplaint, Open, Click, \
                      SubscriptionChange, inbound) into email records whose status only moves \
                      forward and suppressions; send_email on /email at most once per key."
            .into(),
        routes: vec![webhook],
        events: EMAIL_EVENTS
            .iter()
            .map(|(name, description)| EventDecl {
                name: (*name).into(),
                description: (*description).into(),
                example: plugin_sdk::email::EmailEvent::example(name, "postmark"),
            })
            .collect(),
        actions: vec![ActionDecl {
            name: SEND_EMAIL.into(),
            description:
                "Sends an email through POST /email (the hub's common email input; the first \
                          tag is Postmark's Tag, all go in Metadata)."
                    .into(),
            inputs: plugin_sdk::operation_inputs(plugin_sdk::capability::EMAIL_SEND),
            outputs: plugin_sdk::operation_outputs(plugin_sdk::capability::EMAIL_SEND),
            implements: Some(plugin_sdk::capability::EMAIL_SEND.into()),
        }],
        jobs: vec![
            JobDecl {
                name: CHECK_CREDENTIALS.into(),
                description: "Checks the server token with GET /server.".into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::REGISTER.into(),
                description: "Registers the hub's webhook URL at Postmark for every trigger the \
                              connector handles on the message stream (kept if there, with fresh \
                              Basic credentials), and has the hub keep them as webhook_auth."
                    .into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::UNREGISTER.into(),
                description: "Removes the hub's webhook URL from Postmark.".into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::VERIFY.into(),
                description: "Has Postmark test the hub's webhook once the hub holds its \
                              credentials (queued by register_webhooks)."
                    .into(),
                schedule: None,
            },
        ],
        config: vec![
            field(
                "from",
                true,
                "The sender, `Name <address>` with a confirmed sender signature.",
            ),
            field("reply_to", false, "The default reply-to address."),
            field(
                "message_stream",
                false,
                "The message stream (default `outbound`).",
            ),
        ],
        credentials: vec![
            field(
                WEBHOOK_AUTH,
                false,
                "The webhook URL's `user:password`: generated and kept by `hub connect` \
                 (register_webhooks), or sealed by hand for a webhook made in Postmark's dashboard \
                 (https://user:password@<hub>/hooks/<tenant>/postmark/webhook).",
            ),
            field(
                SERVER_TOKEN,
                false,
                "The server's API token, for send_email and for registering the webhook \
                 (`hub connect`).",
            ),
        ],
        oauth2: Vec::new(),
        outbound_hosts: vec![API.into()],
        ..base("postmark", env!("CARGO_PKG_VERSION"))
    }
}
