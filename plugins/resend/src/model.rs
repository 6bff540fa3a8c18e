//! Resend's webhook shapes (as the OpenAPI spec `resend.yaml` documents them) and the records
//! this connector keeps: `email` (one per Resend email id) and `suppression` (one per
//! lowercase recipient address).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Record kind of an email.
pub const EMAIL: &str = "email";
/// Record kind of a suppressed recipient address.
pub const SUPPRESSION: &str = "suppression";

/// A webhook body: `{type, created_at, data}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// The event type, e.g. `email.delivered`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (ISO 8601).
    #[serde(default)]
    pub created_at: Option<String>,
    /// The event's object.
    #[serde(default)]
    pub data: Value,
}

/// A list of strings that Resend (or a caller) may send as one string or an array.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

/// `data.bounce` (`WebhookEventBounce`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bounce {
    /// `Permanent`, `Transient` or `Undetermined`.
    #[serde(rename = "type", alias = "bounce_type")]
    pub kind: Option<String>,
    /// `General`, `NoEmail`, `MailboxFull`, ...
    #[serde(rename = "subType", alias = "sub_type")]
    pub sub_type: Option<String>,
    /// The bounce message.
    pub message: Option<String>,
}

/// `data.click` (`WebhookEventClick`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Click {
    /// The URL clicked.
    pub link: Option<String>,
    /// When.
    pub timestamp: Option<String>,
}

/// `data.failed` (`WebhookEventFailed`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Failed {
    /// Why, e.g. `reached_daily_quota`.
    pub reason: Option<String>,
}

/// `data.suppressed` (`WebhookEventSuppressed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Suppressed {
    /// `previous_bounce` or `previous_complaint`.
    pub reason: Option<String>,
    /// `Suppressed` or `OnAccountSuppressionList`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Resend's explanation.
    pub message: Option<String>,
}

/// The `data` of an `email.*` event (outbound and received emails alike).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EmailData {
    /// Resend's email id: the record key.
    pub email_id: Option<String>,
    /// When the email was created.
    pub created_at: Option<String>,
    /// Sender, possibly `Name <address>`.
    pub from: Option<String>,
    /// The recipients the event concerns.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// Cc (received emails).
    #[serde(deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    /// Bcc (received emails).
    #[serde(deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Tags, `{name: value}`.
    pub tags: Option<Value>,
    /// The RFC 5322 message id (received emails).
    pub message_id: Option<String>,
    /// Present on `email.bounced`.
    pub bounce: Option<Bounce>,
    /// Present on `email.clicked`.
    pub click: Option<Click>,
    /// Present on `email.failed`.
    pub failed: Option<Failed>,
    /// Present on `email.suppressed`.
    pub suppressed: Option<Suppressed>,
}

/// The `email` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailRecord {
    /// Resend's email id.
    pub email_id: String,
    /// `outbound` (sent through Resend) or `inbound` (received on a receiving domain).
    pub direction: Option<String>,
    /// Delivery status: scheduled, sent, delivery_delayed, delivered, bounced, complained,
    /// failed, suppressed (outbound) or received (inbound). Never regresses.
    pub status: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Cc recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Bcc recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Tags, `{name: value}`.
    pub tags: Option<Value>,
    /// When Resend created the email.
    pub created_at: Option<String>,
    /// The newest event time seen.
    pub last_event_at: Option<String>,
    /// Bounce details, once bounced.
    pub bounce: Option<Bounce>,
    /// The recipients a bounce concerned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounced_recipients: Vec<String>,
    /// Why sending failed (`email.failed`).
    pub failed_reason: Option<String>,
    /// Why Resend suppressed it (`email.suppressed`).
    pub suppressed: Option<Suppressed>,
    /// Whether a recipient marked it as spam.
    pub complained: bool,
    /// Times opened.
    pub opens: u32,
    /// First open.
    pub first_opened_at: Option<String>,
    /// Times a link was clicked.
    pub clicks: u32,
    /// The distinct links clicked, first click first (at most [`MAX_LINKS`]).
    pub links: Vec<String>,
    /// The last click's link and time.
    pub last_click: Option<LastClick>,
    /// The RFC 5322 message id (received emails).
    pub message_id: Option<String>,
    /// The idempotency key of the `send_email` action that sent it.
    pub idempotency_key: Option<String>,
    /// Resend event types applied, in arrival order, each once.
    pub events_seen: Vec<String>,
    /// Hub events already published for this email (`email.clicked` once per link:
    /// `email.clicked:<link>`).
    pub published: Vec<String>,
}

/// The most recent click.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LastClick {
    /// The URL clicked.
    pub link: Option<String>,
    /// When.
    pub at: Option<String>,
}

/// Most distinct links kept per email.
pub const MAX_LINKS: usize = 50;

/// The `suppression` record: an address the tenant must not email again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuppressionRecord {
    /// The lowercase address (also the key).
    pub address: String,
    /// `bounce` (a permanent bounce), `complaint`, or `resend_suppressed` (Resend's own list).
    pub reason: String,
    /// Details: the bounce message, Resend's suppression message.
    pub detail: Option<String>,
    /// The email that caused it.
    pub email_id: Option<String>,
    /// When (the event time).
    pub at: Option<String>,
}

/// The bare address of `Name <address>` or `address`, trimmed and lowercased; `None` when
/// there is no `@`.
pub fn bare_address(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let inner = inner.trim().trim_matches('"').trim();
    (inner.contains('@') && !inner.contains(char::is_whitespace)).then(|| inner.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses() {
        assert_eq!(
            bare_address("Jane Doe <Jane.Doe@Example.com>").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(bare_address("  BOB@x.io ").as_deref(), Some("bob@x.io"));
        assert_eq!(bare_address("\"a\" <a@b.c>").as_deref(), Some("a@b.c"));
        assert_eq!(bare_address("no address"), None);
        assert_eq!(bare_address(""), None);
    }

    #[test]
    fn event_data_parses_the_documented_shapes() {
        let d: EmailData = serde_json::from_value(json!({
            "email_id": "e1", "created_at": "2024-01-01T00:00:00.000Z",
            "from": "Acme <a@acme.test>", "to": ["x@y.z"], "subject": "Hi",
            "tags": {"category": "welcome"},
            "bounce": {"diagnosticCode": ["smtp; 550"], "message": "gone", "subType": "General", "type": "Permanent"}
        }))
        .unwrap();
        assert_eq!(d.to, vec!["x@y.z"]);
        let b = d.bounce.unwrap();
        assert_eq!(b.kind.as_deref(), Some("Permanent"));
        assert_eq!(b.sub_type.as_deref(), Some("General"));
        let single: EmailData = serde_json::from_value(json!({"to": "a@b.c", "cc": null})).unwrap();
        assert_eq!(single.to, vec!["a@b.c"]);
        assert!(single.cc.is_empty());
        assert!(serde_json::from_value::<EmailData>(json!({"to": 5})).is_err());
    }
}
