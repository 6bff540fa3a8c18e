//! The records this connector keeps: `email` (one per Postmark MessageID, the fields the Resend
//! and SendGrid connectors' `email` records have) and `suppression` (one per lowercase address).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Record kind of an email.
pub const EMAIL: &str = "email";
/// Record kind of a suppressed address.
pub const SUPPRESSION: &str = "suppression";
/// Most distinct links kept per email.
pub const MAX_LINKS: usize = 50;

/// The `email` record (the fields of the Resend connector's, plus `provider`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailRecord {
    /// Postmark's MessageID.
    pub email_id: String,
    /// `postmark`.
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
    /// Tags: the send's `{name: value}`, or Postmark's `Tag`.
    pub tags: Option<Value>,
    /// The newest event time seen.
    pub last_event_at: Option<String>,
    /// Bounce details, once bounced.
    pub bounce: Option<Value>,
    /// Why Postmark could not send it.
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
    /// Postmark record types applied, in arrival order, each once.
    pub events_seen: Vec<String>,
    /// Hub events already published for this email.
    pub published: Vec<String>,
}

/// The `suppression` record: an address the tenant must not email again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuppressionRecord {
    /// The lowercase address (also the key).
    pub address: String,
    /// `bounce`, `complaint`, `unsubscribe` or `inactive` (Postmark refused the recipient).
    pub reason: String,
    /// Details: the bounce description, the suppression reason.
    pub detail: Option<String>,
    /// The email that caused it.
    pub email_id: Option<String>,
    /// When.
    pub at: Option<String>,
    /// `postmark`.
    pub provider: String,
}

/// The bare lowercase address of `Name <address>` or `address`; `None` for anything that is
/// not a plausible address (`plugin_sdk::lookup::normalize_email`).
pub fn bare_address(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    plugin_sdk::lookup::normalize_email(inner.trim().trim_matches('"'))
}
