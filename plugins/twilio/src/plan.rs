//! What `send_message` sends: its input, the tenant's sender config, and the plan (recipient,
//! sender, content) with its form fields in Twilio's names (`CreateMessageRequest` in
//! `twilio_api_v2010.json`). Pure.

use plugin_sdk::{Error, config, require_config};
use serde::{Deserialize, Deserializer};

use crate::address::{Channel, channel, is_e164, is_sid, normalize, number};

/// Config key: the Twilio Account SID (`AC...`).
pub const ACCOUNT_SID: &str = "account_sid";
/// Config key: the sender number (E.164).
pub const FROM: &str = "from";
/// Config key: a Messaging Service SID (`MG...`) to send from instead of `from`.
pub const MESSAGING_SERVICE_SID: &str = "messaging_service_sid";
/// Config key: the WhatsApp sender (`whatsapp:+E164`); default: `from` with the prefix.
pub const WHATSAPP_FROM: &str = "whatsapp_from";
/// Twilio's limit on `Body`.
pub const MAX_BODY_CHARS: usize = 1600;
/// Twilio's limit on `MediaUrl`s.
pub const MAX_MEDIA: usize = 10;

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

/// The action's input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageInput {
    /// `+E164` for SMS, `whatsapp:+E164` for WhatsApp.
    pub to: String,
    /// Text (up to 1600 characters).
    #[serde(default)]
    pub body: Option<String>,
    /// Media URL(s), a string or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub media_url: Vec<String>,
}

/// The tenant's sending config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// `account_sid`.
    pub account_sid: String,
    /// `from`.
    pub from: Option<String>,
    /// `messaging_service_sid`.
    pub messaging_service_sid: Option<String>,
    /// `whatsapp_from`.
    pub whatsapp_from: Option<String>,
}

impl Sender {
    /// Reads the tenant's config.
    ///
    /// # Errors
    /// Permanent when `account_sid` is missing or any key has the wrong shape.
    pub fn from_config() -> Result<Sender, Error> {
        Ok(Sender {
            account_sid: require_config(ACCOUNT_SID)?,
            from: config(FROM)?,
            messaging_service_sid: config(MESSAGING_SERVICE_SID)?,
            whatsapp_from: config(WHATSAPP_FROM)?,
        })
    }
}

/// One message, ready to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Normalized recipient.
    pub to: String,
    /// `From`, unless a Messaging Service sends.
    pub from: Option<String>,
    /// `MessagingServiceSid`, when it sends.
    pub messaging_service_sid: Option<String>,
    /// `Body`, if any.
    pub body: Option<String>,
    /// `MediaUrl`s.
    pub media: Vec<String>,
    /// The channel.
    pub channel: Channel,
}

/// Parses the action input.
///
/// # Errors
/// Permanent, naming the problem.
pub fn parse_input(input: &str) -> Result<SendMessageInput, Error> {
    serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("send_message input is not valid: {e}")))
}

fn bad(message: impl Into<String>) -> Error {
    Error::permanent(message)
}

/// Decides recipient, sender and content. WhatsApp (`to` starts with `whatsapp:`) sends from
/// `whatsapp_from`, else the Messaging Service, else `whatsapp:` + `from`; SMS from the
/// Messaging Service, else `from`.
///
/// # Errors
/// Permanent for an invalid recipient, sender or account SID, no sender at all, an SMS
/// sender with a `whatsapp:` prefix, neither body nor media, or Twilio's limits exceeded.
pub fn plan(input: &SendMessageInput, sender: &Sender) -> Result<Plan, Error> {
    if !is_sid(&sender.account_sid, "AC") {
        return Err(bad(
            "config `account_sid` is not an Account SID (AC + 32 hex digits)",
        ));
    }
    let to = normalize(&input.to);
    if !is_e164(&number(&to)) {
        return Err(bad(format!("`to` `{}` is not an E.164 number", input.to)));
    }
    let ch = channel(&to);
    let service = sender
        .messaging_service_sid
        .clone()
        .filter(|s| !s.is_empty());
    if let Some(s) = &service
        && !is_sid(s, "MG")
    {
        return Err(bad(
            "config `messaging_service_sid` is not a Messaging Service SID (MG...)",
        ));
    }
    let from = |addr: &str| -> Result<String, Error> {
        let n = number(addr);
        if !is_e164(&n) {
            return Err(bad(format!("sender `{addr}` is not an E.164 number")));
        }
        Ok(match ch {
            Channel::Whatsapp => format!("whatsapp:{n}"),
            Channel::Sms => n,
        })
    };
    let (from, messaging_service_sid) = match (ch, &sender.whatsapp_from, &service, &sender.from) {
        (Channel::Whatsapp, Some(w), _, _) => (Some(from(w)?), None),
        (_, _, Some(s), _) => (None, Some(s.clone())),
        (Channel::Sms, _, None, Some(f)) if channel(f) == Channel::Whatsapp => {
            return Err(bad(
                "config `from` is a WhatsApp address; SMS needs a phone number",
            ));
        }
        (_, _, None, Some(f)) => (Some(from(f)?), None),
        (_, _, None, None) => {
            return Err(bad(
                "set config `from` or `messaging_service_sid` to send messages",
            ));
        }
    };
    let body = input.body.clone().filter(|b| !b.trim().is_empty());
    if body
        .as_ref()
        .is_some_and(|b| b.chars().count() > MAX_BODY_CHARS)
    {
        return Err(bad(format!(
            "`body` is longer than {MAX_BODY_CHARS} characters"
        )));
    }
    let media: Vec<String> = input
        .media_url
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if media.len() > MAX_MEDIA {
        return Err(bad(format!("at most {MAX_MEDIA} `media_url`s")));
    }
    if let Some(u) = media
        .iter()
        .find(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        return Err(bad(format!("`media_url` `{u}` is not an http(s) URL")));
    }
    if body.is_none() && media.is_empty() {
        return Err(bad("give `body` or `media_url`"));
    }
    Ok(Plan {
        to,
        from,
        messaging_service_sid,
        body,
        media,
        channel: ch,
    })
}

/// The form fields, in Twilio's names.
pub fn form_fields(plan: &Plan, status_callback: &str) -> Vec<(&'static str, String)> {
    let mut f = vec![("To", plan.to.clone())];
    if let Some(from) = &plan.from {
        f.push(("From", from.clone()));
    }
    if let Some(s) = &plan.messaging_service_sid {
        f.push(("MessagingServiceSid", s.clone()));
    }
    if let Some(b) = &plan.body {
        f.push(("Body", b.clone()));
    }
    for m in &plan.media {
        f.push(("MediaUrl", m.clone()));
    }
    f.push(("StatusCallback", status_callback.to_string()));
    f
}

#[cfg(test)]
mod tests;
