//! Inbound messages (route `sms`): Twilio's form-encoded webhook becomes a `message` record and
//! a `message.received` event; opt-out and opt-in keywords write or delete an `opt_out` record.
//! The synchronous answer is TwiML: an empty `<Response/>`, or the tenant's `auto_reply`.
//!
//! `respond` runs first (while Twilio waits) and only reads; `handle` runs for the stored
//! delivery and does every write, so nothing happens twice.

use plugin_sdk::{Delivery, Error, Outcome, Reply, config, kv, publish, records, tenant, warn};

use crate::address::{channel, normalize};
use crate::model::{
    MESSAGE, MESSAGE_RECEIVED, Media, MessageRecord, OPT_OUT, OPTED_IN, OPTED_OUT, OptEvent,
    OptOutRecord, message_event,
};
use crate::plan::ACCOUNT_SID;

/// Config key: the text to answer every inbound message with (none: an empty `<Response/>`).
pub const AUTO_REPLY: &str = "auto_reply";
/// Twilio's default opt-out keywords (REVOKE and OPTOUT since May 2025).
pub const OPT_OUT_KEYWORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// Twilio's default opt-in keywords.
pub const OPT_IN_KEYWORDS: [&str; 3] = ["START", "UNSTOP", "YES"];
/// The empty TwiML answer.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

/// An inbound message, as Twilio posts it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inbound {
    /// `MessageSid`.
    pub sid: String,
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: Option<String>,
    /// `Body`.
    pub body: Option<String>,
    /// `MediaUrl{N}` with `MediaContentType{N}`.
    pub media: Vec<Media>,
    /// `NumSegments`.
    pub num_segments: Option<String>,
    /// `ProfileName` (WhatsApp).
    pub profile_name: Option<String>,
    /// `WaId` (WhatsApp).
    pub wa_id: Option<String>,
    /// `AccountSid`.
    pub account_sid: Option<String>,
    /// `MessagingServiceSid`.
    pub messaging_service_sid: Option<String>,
    /// `OptOutType` (Advanced Opt-Out: `STOP`, `START`, `HELP`).
    pub opt_out_type: Option<String>,
}

/// The first non-empty value of a form field.
pub fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// Reads Twilio's inbound form.
///
/// # Errors
/// Bad request without `MessageSid` (or `SmsMessageSid`) or `From`.
pub fn parse(form: &[(String, String)]) -> Result<Inbound, Error> {
    let sid = field(form, "MessageSid")
        .or_else(|| field(form, "SmsMessageSid"))
        .ok_or_else(|| Error::bad_request("inbound message without `MessageSid`"))?;
    let from =
        field(form, "From").ok_or_else(|| Error::bad_request("inbound message without `From`"))?;
    let num_media: usize = field(form, "NumMedia")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(20);
    let media = (0..num_media)
        .filter_map(|i| {
            Some(Media {
                url: field(form, &format!("MediaUrl{i}"))?,
                content_type: field(form, &format!("MediaContentType{i}")),
            })
        })
        .collect();
    Ok(Inbound {
        sid,
        from: normalize(&from),
        to: field(form, "To").map(|t| normalize(&t)),
        body: form
            .iter()
            .find(|(k, _)| k == "Body")
            .map(|(_, v)| v.clone()),
        media,
        num_segments: field(form, "NumSegments"),
        profile_name: field(form, "ProfileName"),
        wa_id: field(form, "WaId"),
        account_sid: field(form, "AccountSid"),
        messaging_service_sid: field(form, "MessagingServiceSid"),
        opt_out_type: field(form, "OptOutType"),
    })
}

/// An opt-out or opt-in keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// Stop messaging this address.
    OptOut,
    /// Messaging may resume.
    OptIn,
}

/// The keyword a message is, if any: Twilio's `OptOutType` when it sends one, else the whole
/// text (trimmed, case-insensitive, trailing `.`/`!` ignored) matched against Twilio's lists.
/// Only single-word messages count, as with Twilio.
pub fn keyword(body: Option<&str>, opt_out_type: Option<&str>) -> Option<(Keyword, String)> {
    match opt_out_type.map(str::to_ascii_uppercase).as_deref() {
        Some("STOP") => return Some((Keyword::OptOut, "STOP".into())),
        Some("START") => return Some((Keyword::OptIn, "START".into())),
        _ => {}
    }
    let word = body?
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_uppercase();
    if OPT_OUT_KEYWORDS.contains(&word.as_str()) {
        Some((Keyword::OptOut, word))
    } else if OPT_IN_KEYWORDS.contains(&word.as_str()) {
        Some((Keyword::OptIn, word))
    } else {
        None
    }
}

/// Escapes text for XML content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// The TwiML answer: empty, or one `<Message>`.
pub fn twiml(message: Option<&str>) -> String {
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        None => EMPTY_TWIML.to_string(),
        Some(m) => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>"#,
            xml_escape(m)
        ),
    }
}

/// Merges an inbound message into its record (fresh, or stored by an earlier attempt or a
/// replay); true when `message.received` is due.
pub fn merge_inbound(
    stored: Option<MessageRecord>,
    m: &Inbound,
    at_ms: u64,
    kw: Option<Keyword>,
) -> (MessageRecord, bool) {
    let mut r = stored.unwrap_or_default();
    r.sid.clone_from(&m.sid);
    r.direction = Some("inbound".into());
    r.channel = Some(channel(&m.from).as_str().into());
    r.status.get_or_insert_with(|| "received".into());
    r.from = Some(m.from.clone());
    r.to.clone_from(&m.to);
    r.body.clone_from(&m.body);
    r.media.clone_from(&m.media);
    r.num_segments.clone_from(&m.num_segments);
    r.profile_name.clone_from(&m.profile_name);
    r.wa_id.clone_from(&m.wa_id);
    r.account_sid.clone_from(&m.account_sid);
    r.messaging_service_sid.clone_from(&m.messaging_service_sid);
    r.keyword = kw.map(|k| (if k == Keyword::OptOut { "out" } else { "in" }).to_string());
    r.at_ms.get_or_insert(at_ms);
    let due = r.due(MESSAGE_RECEIVED);
    (r, due)
}

/// Whether the tenant's Twilio account (config `account_sid`) differs from the one in the
/// request; the reason to ignore it if so.
pub fn foreign_account(configured: Option<&str>, posted: Option<&str>) -> Option<String> {
    match (configured, posted) {
        (Some(c), Some(p)) if c != p => Some(format!("account {p} is not this tenant's")),
        _ => None,
    }
}

/// The kv key remembering when the last keyword from `address` was received.
fn keyword_clock(address: &str) -> String {
    format!("keyword-at:{address}")
}

/// Applies an opt-out or opt-in keyword unless a later keyword from the same address was
/// already applied (Twilio may deliver STOP and START out of order).
fn apply_keyword(
    m: &Inbound,
    kw: Keyword,
    word: String,
    at_ms: u64,
    tenant: &str,
) -> Result<(), Error> {
    let clock = keyword_clock(&m.from);
    let last = kv::get_string(&clock).and_then(|s| s.parse::<u64>().ok());
    if last.is_some_and(|l| l > at_ms) {
        warn!(
            "ignoring {word} from {}: a later keyword was applied",
            m.from
        );
        return Ok(());
    }
    kv::set(&clock, at_ms.to_string().as_bytes());
    let existing: Option<OptOutRecord> = records::get(OPT_OUT, &m.from)?;
    let event = OptEvent {
        tenant: tenant.into(),
        address: m.from.clone(),
        channel: channel(&m.from).as_str().into(),
        keyword: word.clone(),
        message_sid: m.sid.clone(),
    };
    match kw {
        Keyword::OptOut => {
            let record = OptOutRecord {
                address: m.from.clone(),
                channel: event.channel.clone(),
                keyword: word,
                message_sid: m.sid.clone(),
                at_ms,
            };
            records::upsert(OPT_OUT, &m.from, &record)?;
            if existing.is_none() {
                publish(OPTED_OUT, &event)?;
            }
        }
        Keyword::OptIn => {
            if existing.is_some() {
                records::delete(OPT_OUT, &m.from);
                publish(OPTED_IN, &event)?;
            }
        }
    }
    Ok(())
}

/// Handles a stored inbound message.
///
/// # Errors
/// Bad request for a form without `MessageSid` or `From`; permanent for unreadable records or
/// config.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let m = parse(&delivery.form())?;
    let configured: Option<String> = config(ACCOUNT_SID)?;
    if let Some(reason) = foreign_account(configured.as_deref(), m.account_sid.as_deref()) {
        return Ok(Outcome::ignored(reason));
    }
    let kw = keyword(m.body.as_deref(), m.opt_out_type.as_deref());
    let stored: Option<MessageRecord> = records::get(MESSAGE, &m.sid)?;
    let at_ms = delivery.received_at_ms;
    let (record, due) = merge_inbound(stored, &m, at_ms, kw.as_ref().map(|(k, _)| *k));
    let tenant = tenant();
    if due {
        publish(
            MESSAGE_RECEIVED,
            &message_event(&record, MESSAGE_RECEIVED, &tenant),
        )?;
    }
    if let Some((k, word)) = kw {
        apply_keyword(&m, k, word, at_ms, &tenant)?;
    }
    record.save()?;
    Ok(Outcome::handled())
}

/// The TwiML answer Twilio waits for. Never fails: a problem with config or records degrades
/// to the empty answer. No auto-reply to keywords (Twilio answers those itself) or to an
/// opted-out sender.
///
/// # Errors
/// None in practice; the signature is the contract's.
pub fn respond(delivery: &Delivery) -> Result<Reply, Error> {
    let form = delivery.form();
    let body = field(&form, "Body");
    let quiet = keyword(body.as_deref(), field(&form, "OptOutType").as_deref()).is_some()
        || field(&form, "From").is_some_and(|from| {
            records::get::<OptOutRecord>(OPT_OUT, &normalize(&from))
                .map(|r| r.is_some())
                .unwrap_or(false)
        });
    let reply: Option<String> = if quiet {
        None
    } else {
        config(AUTO_REPLY).unwrap_or_else(|e| {
            warn!("config `{AUTO_REPLY}` is unusable ({e:?}); answering with an empty Response");
            None
        })
    };
    Ok(Reply::new(200, "text/xml", twiml(reply.as_deref())))
}

#[cfg(test)]
mod tests;
