//! The records this connector keeps: `message` (one per Twilio message SID, inbound and
//! outbound) and `opt_out` (one per address that texted an opt-out keyword), and the payloads
//! of the events it publishes.

use plugin_sdk::{Error, records};
use serde::{Deserialize, Serialize};

/// Record kind of a message.
pub const MESSAGE: &str = "message";
/// Record kind of an opted-out address.
pub const OPT_OUT: &str = "opt_out";

/// Hub event: a message arrived.
pub const MESSAGE_RECEIVED: &str = "message.received";
/// Hub event: `send_message` handed a message to Twilio.
pub const MESSAGE_SENT: &str = "message.sent";
/// Hub event: Twilio reported an outbound message delivered.
pub const MESSAGE_DELIVERED: &str = "message.delivered";
/// Hub event: an outbound message failed or was undelivered.
pub const MESSAGE_FAILED: &str = "message.failed";
/// Hub event: a WhatsApp message was read.
pub const MESSAGE_READ: &str = "message.read";
/// Hub event: an address texted an opt-out keyword.
pub const OPTED_OUT: &str = "recipient.opted_out";
/// Hub event: an opted-out address texted an opt-in keyword.
pub const OPTED_IN: &str = "recipient.opted_in";

/// One media attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Media {
    /// Where Twilio serves it (inbound) or where it was fetched from (outbound).
    pub url: String,
    /// Its MIME type, when known.
    pub content_type: Option<String>,
}

/// The `message` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageRecord {
    /// Twilio's message SID (`SM...`/`MM...`), the key.
    pub sid: String,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// `sms` or `whatsapp` (from the `whatsapp:` address prefix).
    pub channel: Option<String>,
    /// Twilio's status; for outbound messages it never regresses.
    pub status: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// Recipient address.
    pub to: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// Media.
    pub media: Vec<Media>,
    /// Segments (inbound).
    pub num_segments: Option<String>,
    /// WhatsApp profile name of the sender.
    pub profile_name: Option<String>,
    /// WhatsApp id of the sender.
    pub wa_id: Option<String>,
    /// Twilio's error code of a failed or undelivered message.
    pub error_code: Option<String>,
    /// The Twilio account.
    pub account_sid: Option<String>,
    /// The Messaging Service, if one was used.
    pub messaging_service_sid: Option<String>,
    /// `out` or `in` when the text was an opt-out or opt-in keyword.
    pub keyword: Option<String>,
    /// The `send_message` idempotency key, for messages the hub sent.
    pub idempotency_key: Option<String>,
    /// When the hub received it (inbound) or sent it (outbound), epoch ms.
    pub at_ms: Option<u64>,
    /// When a status callback last changed it, epoch ms.
    pub updated_at_ms: Option<u64>,
    /// Statuses reported, in arrival order, each once.
    pub statuses_seen: Vec<String>,
    /// Hub events already published for this message.
    pub published: Vec<String>,
}

impl MessageRecord {
    /// The lookups the message is found by: the number of the other party (the sender of an
    /// inbound message, the recipient of an outbound one), so a contact's messages are found
    /// by the contact's phone.
    pub fn lookups(&self) -> Vec<Option<String>> {
        let other = match self.direction.as_deref() {
            Some("inbound") => self.from.as_deref(),
            Some(_) => self.to.as_deref(),
            None => None,
        };
        vec![other.and_then(crate::address::lookup)]
    }

    /// Stores the record with its lookups.
    ///
    /// # Errors
    /// Permanent if it cannot be serialized.
    pub fn save(&self) -> Result<(), Error> {
        records::upsert(MESSAGE, &self.sid, self)?;
        records::set_lookups(MESSAGE, &self.sid, &self.lookups());
        Ok(())
    }

    /// Marks `name` published unless it already was; true if it is due now.
    pub fn due(&mut self, name: &str) -> bool {
        if self.published.iter().any(|p| p == name) {
            return false;
        }
        self.published.push(name.to_string());
        true
    }
}

/// The `opt_out` record: Twilio blocks (and this connector refuses) messages to this address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptOutRecord {
    /// The address, e.g. `+14155550100` or `whatsapp:+14155550100` (also the key).
    pub address: String,
    /// `sms` or `whatsapp`.
    pub channel: String,
    /// The keyword texted, upper case.
    pub keyword: String,
    /// The message that carried it.
    pub message_sid: String,
    /// When the hub received it, epoch ms.
    pub at_ms: u64,
}

/// The payload of the `message.*` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageEvent {
    /// The hub event name.
    pub event: String,
    /// The hub tenant.
    pub tenant: String,
    /// Twilio's message SID.
    pub sid: String,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// `sms` or `whatsapp`.
    pub channel: Option<String>,
    /// Twilio's status.
    pub status: Option<String>,
    /// Sender.
    pub from: Option<String>,
    /// Recipient.
    pub to: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// Media URLs.
    pub media_urls: Vec<String>,
    /// WhatsApp profile name.
    pub profile_name: Option<String>,
    /// Error code of a failed message.
    pub error_code: Option<String>,
    /// `out`/`in` for opt-out/opt-in keywords.
    pub keyword: Option<String>,
    /// The `send_message` idempotency key.
    pub idempotency_key: Option<String>,
}

/// Builds the payload of `event` for a record.
pub fn message_event(record: &MessageRecord, event: &str, tenant: &str) -> MessageEvent {
    MessageEvent {
        event: event.into(),
        tenant: tenant.into(),
        sid: record.sid.clone(),
        direction: record.direction.clone(),
        channel: record.channel.clone(),
        status: record.status.clone(),
        from: record.from.clone(),
        to: record.to.clone(),
        body: record.body.clone(),
        media_urls: record.media.iter().map(|m| m.url.clone()).collect(),
        profile_name: record.profile_name.clone(),
        error_code: record.error_code.clone(),
        keyword: record.keyword.clone(),
        idempotency_key: record.idempotency_key.clone(),
    }
}

/// The payload of `recipient.opted_out` and `recipient.opted_in`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptEvent {
    /// The hub tenant.
    pub tenant: String,
    /// The address.
    pub address: String,
    /// `sms` or `whatsapp`.
    pub channel: String,
    /// The keyword texted.
    pub keyword: String,
    /// The message that carried it.
    pub message_sid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_found_by_the_other_partys_number() {
        let inbound = MessageRecord {
            direction: Some("inbound".into()),
            from: Some("whatsapp:+14155550111".into()),
            to: Some("whatsapp:+14155550100".into()),
            ..Default::default()
        };
        assert_eq!(inbound.lookups(), [Some("phone:+14155550111".to_string())]);
        let outbound = MessageRecord {
            direction: Some("outbound".into()),
            from: Some("+14155550100".into()),
            to: Some("+14155550122".into()),
            ..Default::default()
        };
        assert_eq!(outbound.lookups(), [Some("phone:+14155550122".to_string())]);
        assert_eq!(MessageRecord::default().lookups(), [None]);
    }
}
