//! The merge rule for `email` records, the suppressions an event implies, and the hub events it
//! makes due; the Resend connector's rules adapted to SendGrid's events. Pure: no host calls.
//!
//! SendGrid batches, retries for a day and sends duplicates, so a record never regresses: the
//! status only moves up `sent < delivery_delayed < delivered`, then on to a terminal state
//! (`bounced`, `failed`, `complained`), which stays; opens and clicks count without touching it;
//! each hub event is published once per email (clicks once per link), and only when the event
//! moved the record.

use serde_json::{Value, json};

use plugin_sdk::email::advance;

use crate::manifest::KEY_ARG;
use crate::model::{EmailRecord, Event, MAX_LINKS, SuppressionRecord, bare_address};

/// What one event produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The merged record, when the event concerns an email.
    pub record: Option<EmailRecord>,
    /// Hub events to publish now, with the clicked link for `email.clicked`.
    pub publish: Vec<(&'static str, Option<String>)>,
    /// Suppressions to write.
    pub suppress: Vec<SuppressionRecord>,
    /// Addresses to take off the list (`group_resubscribe`).
    pub unsuppress: Vec<String>,
}

/// The status an event moves to, and the hub event that announces it.
fn status_of(event: &Event) -> Option<(&'static str, &'static str)> {
    Some(match event.event.as_str() {
        "processed" => ("sent", "email.sent"),
        "deferred" => ("delivery_delayed", "email.delivery_delayed"),
        "delivered" => ("delivered", "email.delivered"),
        // `blocked` is a soft bounce: SendGrid may still deliver.
        "bounce" if event.bounce_type.as_deref() == Some("blocked") => {
            ("delivery_delayed", "email.delivery_delayed")
        }
        "bounce" => ("bounced", "email.bounced"),
        "dropped" => ("failed", "email.failed"),
        "spamreport" => ("complained", "email.complained"),
        _ => return None,
    })
}

/// Whether a drop means the address is on SendGrid's own lists (a bounce, an unsubscribe, a
/// spam report before).
fn dropped_for_the_address(reason: &str) -> bool {
    let r = reason.trim().to_ascii_lowercase();
    // SendGrid says `Invalid` alone for an invalid address; `Invalid SMTPAPI header` is about
    // the message, not the address.
    r == "invalid"
        || [
            "bounced address",
            "unsubscribed address",
            "spam reporting address",
        ]
        .iter()
        .any(|s| r.contains(s))
}

fn suppression(event: &Event, reason: &str, detail: Option<String>) -> Option<SuppressionRecord> {
    Some(SuppressionRecord {
        address: bare_address(event.email.as_deref()?)?,
        reason: reason.into(),
        detail,
        email_id: event.message_id().map(str::to_string),
        at: event.at(),
        provider: "sendgrid".into(),
    })
}

fn note(record: &mut EmailRecord, published: &str) -> bool {
    if record.published.iter().any(|p| p == published) {
        return false;
    }
    record.published.push(published.to_string());
    true
}

/// Applies one event to the stored record (if any).
pub fn apply(event: &Event, stored: Option<EmailRecord>) -> Applied {
    let mut out = Applied {
        record: None,
        publish: Vec::new(),
        suppress: Vec::new(),
        unsuppress: Vec::new(),
    };
    match event.event.as_str() {
        "bounce" if event.bounce_type.as_deref() != Some("blocked") => {
            out.suppress
                .extend(suppression(event, "bounce", event.reason.clone()));
        }
        "spamreport" => out.suppress.extend(suppression(event, "complaint", None)),
        "unsubscribe" => out.suppress.extend(suppression(event, "unsubscribe", None)),
        "group_unsubscribe" => out.suppress.extend(suppression(
            event,
            "group_unsubscribe",
            event.asm_group_id.map(|g| format!("group {g}")),
        )),
        "group_resubscribe" => out
            .unsuppress
            .extend(event.email.as_deref().and_then(bare_address)),
        "dropped" if event.reason.as_deref().is_some_and(dropped_for_the_address) => {
            out.suppress
                .extend(suppression(event, "dropped", event.reason.clone()));
        }
        _ => {}
    }
    let Some(id) = event.message_id() else {
        return out;
    };
    let mut record = stored.unwrap_or_else(|| EmailRecord {
        email_id: id.to_string(),
        provider: "sendgrid".into(),
        direction: Some("outbound".into()),
        ..EmailRecord::default()
    });
    if let Some(to) = event.email.as_deref().and_then(bare_address)
        && !record.to.contains(&to)
    {
        record.to.push(to);
    }
    if record.idempotency_key.is_none() {
        record.idempotency_key = event
            .rest
            .get(KEY_ARG)
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if record.tags.is_none() {
        record.tags = event.category.clone();
    }
    if let Some(at) = event.at()
        && record
            .last_event_at
            .as_deref()
            .is_none_or(|l| at.as_str() > l)
    {
        record.last_event_at = Some(at);
    }
    if !record.events_seen.contains(&event.event) {
        record.events_seen.push(event.event.clone());
    }
    if let Some((status, announce)) = status_of(event)
        && advance(&mut record.status, status)
    {
        match status {
            "bounced" => {
                record.bounce = Some(json!({
                    "type": "Permanent",
                    "classification": event.bounce_classification,
                    "message": event.reason,
                    "status": event.status,
                }));
            }
            "failed" => record.failed_reason = event.reason.clone(),
            "complained" => record.complained = true,
            _ => {}
        }
        if note(&mut record, announce) {
            out.publish.push((announce, None));
        }
    }
    match event.event.as_str() {
        "open" => {
            record.opens = record.opens.saturating_add(1);
            if record.first_opened_at.is_none() {
                record.first_opened_at = event.at();
            }
            if note(&mut record, "email.opened") {
                out.publish.push(("email.opened", None));
            }
        }
        "click" => {
            record.clicks = record.clicks.saturating_add(1);
            if let Some(url) = &event.url {
                if !record.links.contains(url) && record.links.len() < MAX_LINKS {
                    record.links.push(url.clone());
                }
                if note(&mut record, &format!("email.clicked:{url}")) {
                    out.publish.push(("email.clicked", Some(url.clone())));
                }
            }
        }
        "unsubscribe" | "group_unsubscribe" if note(&mut record, "email.unsubscribed") => {
            out.publish.push(("email.unsubscribed", None));
        }
        _ => {}
    }
    out.record = Some(record);
    out
}
