//! What every email connector shares, so an `email` record, a suppression and a send mean the
//! same whichever provider a tenant uses: the record shapes, the order a status moves in (never
//! back), and the common `send_email` input (`to, cc, bcc, reply_to, subject, html, text, tags,
//! headers`).
//!
//! ```
//! use plugin_sdk::email::{advance, rank};
//! let mut status = Some("delivered".to_string());
//! assert!(!advance(&mut status, "sent"), "a late `sent` does not regress it");
//! assert!(advance(&mut status, "bounced"));
//! assert!(rank("bounced") > rank("delivered"));
//! ```

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Record kind of an email.
pub const EMAIL: &str = "email";
/// Record kind of a suppressed address (the tenant's, whichever provider wrote it).
pub const SUPPRESSION: &str = "suppression";
/// Most distinct links kept per email.
pub const MAX_LINKS: usize = 50;

/// The order of delivery statuses; the terminal ones (`bounced`, `failed`, `suppressed`,
/// `complained`) rank highest.
///
/// ```
/// assert!(plugin_sdk::email::rank("delivered") > plugin_sdk::email::rank("delivery_delayed"));
/// ```
pub fn rank(status: &str) -> u8 {
    match status {
        "scheduled" => 1,
        "sent" | "received" => 2,
        "delivery_delayed" => 3,
        "delivered" => 4,
        "bounced" | "failed" | "suppressed" | "complained" => 10,
        _ => 0,
    }
}

/// Moves `current` to `incoming` if that is progress (and `current` is not terminal); whether
/// it moved.
///
/// ```
/// let mut s = None;
/// assert!(plugin_sdk::email::advance(&mut s, "sent"));
/// assert_eq!(s.as_deref(), Some("sent"));
/// ```
pub fn advance(current: &mut Option<String>, incoming: &str) -> bool {
    let moves = current
        .as_deref()
        .is_none_or(|c| rank(c) < 10 && rank(incoming) > rank(c));
    if moves {
        *current = Some(incoming.to_string());
    }
    moves
}

/// The bare lowercase address of `Name <address>` or `address`; `None` for anything that is
/// not a plausible address ([`crate::lookup::normalize_email`]).
///
/// ```
/// assert_eq!(plugin_sdk::email::bare_address("Jane <Jane@Example.com>").as_deref(), Some("jane@example.com"));
/// assert_eq!(plugin_sdk::email::bare_address("jane@"), None);
/// ```
pub fn bare_address(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    crate::lookup::normalize_email(inner.trim().trim_matches('"'))
}

/// A list of addresses given as one string or an array.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The common `send_email` input every email connector takes and translates.
///
/// ```
/// let input: plugin_sdk::email::EmailInput =
///     serde_json::from_str(r#"{"to": "jane@example.com", "subject": "Hi", "text": "Hello"}"#).unwrap();
/// assert_eq!(input.to, ["jane@example.com"]);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailInput {
    /// Recipients (`Name <address>` or `address`).
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// Cc recipients.
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    /// Bcc recipients.
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    /// Reply-to address (default: the connector's config).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Subject line.
    pub subject: String,
    /// HTML body (this or `text` is required).
    #[serde(default)]
    pub html: Option<String>,
    /// Plain-text body.
    #[serde(default)]
    pub text: Option<String>,
    /// `{name: value}` tags.
    #[serde(default)]
    pub tags: Option<Map<String, Value>>,
    /// `{name: value}` extra headers.
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
}

/// The `email` record (the fields of the Resend connector's, plus `provider`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailRecord {
    /// The provider's message id.
    pub email_id: String,
    /// The connector that keeps it (`sendgrid`, `postmark`).
    pub provider: String,
    /// `outbound`.
    pub direction: Option<String>,
    /// sent, delivery_delayed, delivered, bounced, complained, failed; never regresses.
    pub status: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Tags: the send's `{name: value}`, or the provider's own.
    pub tags: Option<Value>,
    /// The newest event time seen.
    pub last_event_at: Option<String>,
    /// Bounce details, once bounced.
    pub bounce: Option<Value>,
    /// Why the provider could not send it.
    pub failed_reason: Option<String>,
    /// Whether a recipient reported it as spam.
    pub complained: bool,
    /// Times opened.
    pub opens: u32,
    /// First open.
    pub first_opened_at: Option<String>,
    /// Times a link was clicked.
    pub clicks: u32,
    /// The distinct links clicked, first first (at most [`MAX_LINKS`]).
    pub links: Vec<String>,
    /// The idempotency key of the `send_email` that sent it (from `custom_args`).
    pub idempotency_key: Option<String>,
    /// Provider event types applied, in arrival order, each once.
    pub events_seen: Vec<String>,
    /// Hub events already published for this email.
    pub published: Vec<String>,
}

impl EmailRecord {
    /// The record of an email `provider` accepted under `id`: the stored one (a webhook may
    /// have come first) or a new outbound one, with the sender, subject, each recipient once,
    /// and the `send_email` idempotency key that sent it.
    pub fn sent(
        stored: Option<EmailRecord>,
        provider: &str,
        id: &str,
        from: String,
        subject: Option<String>,
        recipients: Vec<String>,
        key: &str,
    ) -> EmailRecord {
        let mut record = stored.unwrap_or_else(|| EmailRecord {
            email_id: id.to_string(),
            provider: provider.into(),
            direction: Some("outbound".into()),
            ..EmailRecord::default()
        });
        record.from = Some(from);
        record.subject = subject;
        for a in recipients {
            if !record.to.contains(&a) {
                record.to.push(a);
            }
        }
        record.idempotency_key = Some(key.to_string());
        record
    }
}

/// The `suppression` record: an address the tenant must not email again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuppressionRecord {
    /// The lowercase address (also the key).
    pub address: String,
    /// `bounce`, `complaint`, `unsubscribe`, `group_unsubscribe` or `dropped`.
    pub reason: String,
    /// Details: the bounce description, the suppression reason.
    pub detail: Option<String>,
    /// The email that caused it.
    pub email_id: Option<String>,
    /// When.
    pub at: Option<String>,
    /// The connector that keeps it (`sendgrid`, `postmark`).
    pub provider: String,
}

/// The fields every connector's `email.*` event payload carries, whichever provider published
/// it, so a route on `email.bounced` reads the same for Resend, SendGrid and Postmark.
pub const EVENT_FIELDS: &[&str] = &[
    "event",
    "email_id",
    "provider",
    "status",
    "from",
    "to",
    "subject",
    "tags",
    "at",
    "bounce",
    "link",
    "failed_reason",
    "opens",
    "clicks",
    "idempotency_key",
];

/// The payload of an `email.*` event (`email.delivered`, `email.bounced`...): the email record
/// as it stands after the provider event, with the link a click concerns. Its fields are
/// [`EVENT_FIELDS`].
///
/// ```
/// use plugin_sdk::email::{EmailEvent, EmailRecord, EVENT_FIELDS};
/// let record = EmailRecord { email_id: "m1".into(), provider: "postmark".into(), ..Default::default() };
/// let event = serde_json::to_value(EmailEvent::of("email.delivered", &record, None)).unwrap();
/// assert!(EVENT_FIELDS.iter().all(|f| event.get(f).is_some()));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailEvent {
    /// The hub event name (`email.delivered`).
    pub event: String,
    /// The provider's message id.
    pub email_id: String,
    /// The connector that published it (`sendgrid`).
    pub provider: String,
    /// The email's status after this event.
    pub status: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Tags.
    pub tags: Option<Value>,
    /// When the provider saw it (the newest event time).
    pub at: Option<String>,
    /// Bounce details, once bounced.
    pub bounce: Option<Value>,
    /// The link clicked (`email.clicked`).
    pub link: Option<String>,
    /// Why the provider could not send it.
    pub failed_reason: Option<String>,
    /// Opens so far.
    pub opens: u32,
    /// Clicks so far.
    pub clicks: u32,
    /// The `send_email` idempotency key, when the hub sent it.
    pub idempotency_key: Option<String>,
}

impl EmailEvent {
    /// The event `name` of `record`, about `link` for a click.
    pub fn of(name: &str, record: &EmailRecord, link: Option<String>) -> Self {
        EmailEvent {
            event: name.to_string(),
            email_id: record.email_id.clone(),
            provider: record.provider.clone(),
            status: record.status.clone(),
            from: record.from.clone(),
            to: record.to.clone(),
            subject: record.subject.clone(),
            tags: record.tags.clone(),
            at: record.last_event_at.clone(),
            bounce: record.bounce.clone(),
            link,
            failed_reason: record.failed_reason.clone(),
            opens: record.opens,
            clicks: record.clicks,
            idempotency_key: record.idempotency_key.clone(),
        }
    }

    /// An example of event `name` from `provider`, for a connector's manifest.
    pub fn example(name: &str, provider: &str) -> String {
        let record = EmailRecord {
            email_id: "14c5d75ce93".into(),
            provider: provider.into(),
            direction: Some("outbound".into()),
            status: Some(
                match name {
                    "email.sent" => "sent",
                    "email.delivery_delayed" => "delivery_delayed",
                    "email.bounced" => "bounced",
                    "email.complained" => "complained",
                    "email.failed" => "failed",
                    "email.received" => "received",
                    _ => "delivered",
                }
                .into(),
            ),
            from: Some("Acme Dental <hello@acme.example>".into()),
            to: vec!["jane@example.com".into()],
            subject: Some("Your appointment on Monday".into()),
            last_event_at: Some("2026-01-01T00:00:00Z".into()),
            idempotency_key: Some("follow-up:call_1".into()),
            ..Default::default()
        };
        let link = (name == "email.clicked").then(|| "https://acme.example/book".to_string());
        serde_json::to_string(&EmailEvent::of(name, &record, link)).unwrap_or_else(|_| "{}".into())
    }
}
