//! SendGrid's Event Webhook shapes (`sendgrid_webhooks_v3.yaml`, PROVIDERS-2.md) and the records
//! this connector keeps: `email` (one per SendGrid message id, the fields the Resend connector's
//! `email` records have) and `suppression` (one per lowercase address).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Record kind of an email.
pub const EMAIL: &str = "email";
/// Record kind of a suppressed address.
pub const SUPPRESSION: &str = "suppression";
/// Most distinct links kept per email.
pub const MAX_LINKS: usize = 50;

/// One event of a batch (the route stores each on its own).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    /// The recipient.
    pub email: Option<String>,
    /// When, unix seconds.
    pub timestamp: Option<i64>,
    /// processed, dropped, delivered, deferred, bounce, open, click, spamreport, unsubscribe,
    /// group_unsubscribe, group_resubscribe.
    pub event: String,
    /// `<x-message-id>.<filter id>...`; the part before the first dot names the email.
    pub sg_message_id: Option<String>,
    /// Unique per event.
    pub sg_event_id: Option<String>,
    /// For bounces and drops: why.
    pub reason: Option<String>,
    /// For bounces: the SMTP status.
    pub status: Option<String>,
    /// For deferrals: the receiving server's answer.
    pub response: Option<String>,
    /// For bounces: `bounce` (hard) or `blocked` (soft).
    #[serde(rename = "type")]
    pub bounce_type: Option<String>,
    /// For bounces: SendGrid's classification (Invalid Address, Technical...).
    pub bounce_classification: Option<String>,
    /// For clicks: the link.
    pub url: Option<String>,
    /// A string or a list.
    pub category: Option<Value>,
    /// For group (un)subscribes: the group.
    pub asm_group_id: Option<i64>,
    /// Everything else: the send's `custom_args` among it.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Event {
    /// The email's id: `sg_message_id` up to its first dot.
    pub fn message_id(&self) -> Option<&str> {
        let id = self.sg_message_id.as_deref()?.split('.').next()?;
        (!id.is_empty()).then_some(id)
    }

    /// When, as RFC 3339 UTC.
    pub fn at(&self) -> Option<String> {
        self.timestamp.map(rfc3339)
    }
}

/// The `email` record (the fields of the Resend connector's, plus `provider`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailRecord {
    /// SendGrid's message id (`X-Message-Id`).
    pub email_id: String,
    /// `sendgrid`.
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
    /// Tags, `{name: value}` (the send's), or SendGrid's categories.
    pub tags: Option<Value>,
    /// The newest event time seen.
    pub last_event_at: Option<String>,
    /// Bounce details, once bounced.
    pub bounce: Option<Value>,
    /// Why SendGrid dropped it.
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
    /// SendGrid event types applied, in arrival order, each once.
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
    /// `bounce`, `complaint`, `unsubscribe`, `group_unsubscribe` or `dropped`.
    pub reason: String,
    /// Details: the bounce reason, the group.
    pub detail: Option<String>,
    /// The email that caused it.
    pub email_id: Option<String>,
    /// When.
    pub at: Option<String>,
    /// `sendgrid`.
    pub provider: String,
}

/// Unix seconds as RFC 3339 UTC (`2026-01-01T00:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
