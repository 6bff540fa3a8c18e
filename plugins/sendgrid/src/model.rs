//! SendGrid's Event Webhook shapes (`sendgrid_webhooks_v3.yaml`, PROVIDERS-2.md); the records
//! it keeps are every email connector's (`plugin_sdk::email`): `email` by SendGrid message id,
//! `suppression` by address.

use serde::Deserialize;
use serde_json::{Map, Value};

pub use plugin_sdk::email::{
    EMAIL, EmailRecord, MAX_LINKS, SUPPRESSION, SuppressionRecord, bare_address,
};

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
        self.timestamp.map(plugin_sdk::time::rfc3339)
    }
}
