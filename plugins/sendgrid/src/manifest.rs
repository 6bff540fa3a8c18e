//! What the SendGrid connector declares: the Event Webhook route (ECDSA-signed, a batch split
//! into one delivery per `sg_event_id`), the `email.*` events (the names and meanings the Resend
//! connector uses), `send_email`, `check_credentials`, and the jobs `hub connect` runs.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Selector, SignatureScheme, SignedHeaders, field,
    manifest as base, route,
};

/// The route SendGrid's Event Webhook posts to.
pub const EVENTS: &str = "events";
/// The webhook's verification key (public: base64 SPKI DER, as SendGrid shows it).
pub const PUBLIC_KEY: &str = "webhook_public_key";
/// The API key `send_email` and the check use.
pub const API_KEY: &str = "api_key";
/// SendGrid's API.
pub const API: &str = "https://api.sendgrid.com";
/// Action name.
pub const SEND_EMAIL: &str = "send_email";
/// Job name.
pub const CHECK_CREDENTIALS: &str = "check_credentials";
/// The `custom_args` entry that carries the hub's idempotency key through every event.
pub const KEY_ARG: &str = "hub_key";

/// SendGrid retries a webhook for up to 24 hours, perhaps with its first timestamp: a retry is
/// stored once by `sg_event_id`, so the window only has to let it in.
const TOLERANCE_SECS: u32 = 25 * 3600;

/// The hub events, each published at most once per email (clicks once per link).
pub const EMAIL_EVENTS: [(&str, &str); 9] = [
    (
        "email.sent",
        "SendGrid accepted the email for delivery (`processed`).",
    ),
    ("email.delivered", "The receiving server accepted it."),
    (
        "email.delivery_delayed",
        "Delivery was deferred; SendGrid keeps trying.",
    ),
    ("email.bounced", "A recipient's server refused it."),
    ("email.complained", "A recipient reported it as spam."),
    ("email.opened", "A recipient opened it (once per email)."),
    (
        "email.clicked",
        "A recipient clicked a link (once per link).",
    ),
    ("email.failed", "SendGrid dropped it."),
    (
        "email.unsubscribed",
        "A recipient unsubscribed (from all email or from a group).",
    ),
];

pub fn manifest() -> Manifest {
    let mut events = route(
        EVENTS,
        SignatureScheme::EcdsaP256(SignedHeaders {
            signature: "x-twilio-email-event-webhook-signature".into(),
            timestamp: "x-twilio-email-event-webhook-timestamp".into(),
        }),
        PUBLIC_KEY,
    );
    events.tolerance_secs = TOLERANCE_SECS;
    events.split_array = true;
    events.identity = vec![Selector::Json("/sg_event_id".into())];
    events.event_type = Some(Selector::Json("/event".into()));
    Manifest {
        description: "SendGrid: the signed Event Webhook into email records whose status only \
                      moves forward, suppressions from hard bounces, spam reports and \
                      unsubscribes, and send_email on /v3/mail/send at most once per key."
            .into(),
        routes: vec![events],
        events: EMAIL_EVENTS
            .iter()
            .map(|(name, description)| EventDecl {
                name: (*name).into(),
                description: (*description).into(),
                example: plugin_sdk::email::EmailEvent::example(name, "sendgrid"),
            })
            .collect(),
        actions: vec![ActionDecl {
            name: SEND_EMAIL.into(),
            description:
                "Sends an email through /v3/mail/send (the hub's common email input; tags go \
                          as categories and custom_args)."
                    .into(),
            inputs: plugin_sdk::operation_inputs(plugin_sdk::capability::EMAIL_SEND),
            outputs: plugin_sdk::operation_outputs(plugin_sdk::capability::EMAIL_SEND),
            implements: Some(plugin_sdk::capability::EMAIL_SEND.into()),
        }],
        jobs: vec![
            JobDecl {
                name: CHECK_CREDENTIALS.into(),
                description: "Checks the API key with GET /v3/scopes.".into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::REGISTER.into(),
                description: "Registers the hub's events URL as a SendGrid Event Webhook for \
                              every event this connector handles (kept if there), turns on \
                              signing and keeps the webhook's verification key."
                    .into(),
                schedule: None,
            },
            JobDecl {
                name: crate::register::UNREGISTER.into(),
                description: "Deletes the hub's Event Webhook at SendGrid.".into(),
                schedule: None,
            },
        ],
        config: vec![
            field(
                "from",
                true,
                "The sender, `Name <address>` on a verified domain.",
            ),
            field("reply_to", false, "The default reply-to address."),
        ],
        credentials: vec![
            field(
                PUBLIC_KEY,
                false,
                "The Event Webhook's verification key: kept by `hub connect` (register_webhooks), \
                 or pasted from Settings > Mail Settings > Signed Event Webhook.",
            ),
            field(
                API_KEY,
                false,
                "An API key with mail.send, for send_email; `hub connect` also needs it to manage \
                 the Event Webhook settings.",
            ),
        ],
        oauth2: Vec::new(),
        outbound_hosts: vec![API.into()],
        ..base("sendgrid", env!("CARGO_PKG_VERSION"))
    }
}
