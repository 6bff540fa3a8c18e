//! The merge rule for `email` records, the suppressions an event implies, and the hub events
//! it makes due. Pure: no host calls.
//!
//! Resend's webhooks arrive late, twice or out of order, so a record never regresses:
//! - the status only moves up `scheduled < sent < delivery_delayed < delivered`, and on to a
//!   terminal state (`bounced`, `failed`, `suppressed`, `complained`), which then stays;
//!   a late `email.sent` after `email.delivered` changes nothing but `events_seen`;
//! - `email.opened` and `email.clicked` count and remember links, never touching the status;
//! - fields the event carries fill gaps and never erase what the record has;
//! - each hub event is published once per email (`email.clicked` once per distinct link), and
//!   only when the event moved the record: a stale `email.sent` is not announced.

use crate::model::{
    Bounce, EmailData, EmailRecord, LastClick, MAX_LINKS, SuppressionRecord, bare_address,
};

/// What applying one event produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The merged record.
    pub record: EmailRecord,
    /// Hub events to publish now (already noted in `record.published`).
    pub publish: Vec<&'static str>,
    /// Suppression records to write.
    pub suppress: Vec<SuppressionRecord>,
}

/// Every `email.*` event type Resend sends; each is also the name of the hub event.
pub const EMAIL_EVENTS: [&str; 11] = [
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.bounced",
    "email.complained",
    "email.opened",
    "email.clicked",
    "email.failed",
    "email.scheduled",
    "email.suppressed",
    "email.received",
];

/// The static name of a known `email.*` event type.
pub fn known_event(kind: &str) -> Option<&'static str> {
    EMAIL_EVENTS.iter().copied().find(|e| *e == kind)
}

/// The order of delivery statuses; terminal ones rank highest.
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

/// Whether a status is final: nothing moves it afterwards.
pub fn is_terminal(status: &str) -> bool {
    rank(status) >= 10
}

/// Moves the status to `incoming` if that is progress; returns whether it moved.
pub fn advance(current: &mut Option<String>, incoming: &str) -> bool {
    let moves = match current.as_deref() {
        None => true,
        Some(c) => !is_terminal(c) && rank(incoming) > rank(c),
    };
    if moves {
        *current = Some(incoming.to_string());
    }
    moves
}

/// Whether a bounce is permanent (a hard bounce): Resend's `type: Permanent` (spellings such
/// as `hard` or `hard_bounce` are accepted too).
pub fn is_hard_bounce(bounce: &Bounce) -> bool {
    bounce.kind.as_deref().is_some_and(|k| {
        matches!(
            k.to_ascii_lowercase().as_str(),
            "permanent" | "hard" | "hard_bounce" | "hardbounce"
        )
    })
}

fn fill<T>(slot: &mut Option<T>, value: &Option<T>)
where
    T: Clone,
{
    if slot.is_none() {
        slot.clone_from(value);
    }
}

fn fill_list(slot: &mut Vec<String>, value: &[String]) {
    if slot.is_empty() {
        slot.extend(value.iter().cloned());
    }
}

fn later(a: Option<String>, b: Option<&str>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) if b > a.as_str() => Some(b.to_string()),
        (Some(a), _) => Some(a),
        (None, b) => b.map(str::to_string),
    }
}

/// Marks `name` published unless it already was; true if it is due now.
fn due(record: &mut EmailRecord, name: &'static str) -> bool {
    if record.published.iter().any(|p| p == name) {
        return false;
    }
    record.published.push(name.to_string());
    true
}

/// Applies one `email.*` event (`kind`, at `event_at`) to the stored record.
pub fn apply(
    stored: Option<EmailRecord>,
    kind: &'static str,
    event_at: Option<&str>,
    data: &EmailData,
) -> Applied {
    let mut r = stored.unwrap_or_default();
    if r.email_id.is_empty() {
        r.email_id = data.email_id.clone().unwrap_or_default();
    }
    let short = kind.strip_prefix("email.").unwrap_or(kind);
    if r.direction.is_none() {
        let dir = if short == "received" {
            "inbound"
        } else {
            "outbound"
        };
        r.direction = Some(dir.into());
    }
    fill(&mut r.from, &data.from);
    fill_list(&mut r.to, &data.to);
    fill_list(&mut r.cc, &data.cc);
    fill_list(&mut r.bcc, &data.bcc);
    fill(&mut r.subject, &data.subject);
    fill(&mut r.tags, &data.tags);
    fill(&mut r.created_at, &data.created_at);
    fill(&mut r.message_id, &data.message_id);
    r.last_event_at = later(r.last_event_at.take(), event_at);

    let mut publish = Vec::new();
    let mut suppress = Vec::new();
    let impacted: Vec<String> = if data.to.is_empty() {
        r.to.clone()
    } else {
        data.to.clone()
    };
    let suppression = |reason: &str, detail: Option<String>| -> Vec<SuppressionRecord> {
        impacted
            .iter()
            .filter_map(|a| bare_address(a))
            .map(|address| SuppressionRecord {
                address,
                reason: reason.into(),
                detail: detail.clone(),
                email_id: data.email_id.clone(),
                at: event_at.map(str::to_string),
            })
            .collect()
    };
    match short {
        "opened" => {
            r.opens = r.opens.saturating_add(1);
            if r.first_opened_at.is_none() {
                r.first_opened_at = event_at.map(str::to_string);
            }
            if due(&mut r, kind) {
                publish.push(kind);
            }
        }
        "clicked" => {
            r.clicks = r.clicks.saturating_add(1);
            let click = data.click.clone().unwrap_or_default();
            let new_link = match &click.link {
                Some(l) if !r.links.contains(l) && r.links.len() < MAX_LINKS => {
                    r.links.push(l.clone());
                    true
                }
                Some(_) => false,
                None => !r.published.iter().any(|p| p == kind),
            };
            r.last_click = Some(LastClick {
                link: click.link,
                at: click.timestamp.or_else(|| event_at.map(str::to_string)),
            });
            if new_link {
                due(&mut r, kind);
                publish.push(kind);
            }
        }
        "complained" => {
            let first = !r.complained;
            r.complained = true;
            advance(&mut r.status, short);
            suppress = suppression("complaint", None);
            if first && due(&mut r, kind) {
                publish.push(kind);
            }
        }
        _ => {
            let moved = advance(&mut r.status, short);
            match short {
                "bounced" => {
                    if let Some(b) = &data.bounce {
                        if moved || r.bounce.is_none() {
                            r.bounce = Some(b.clone());
                            r.bounced_recipients.clone_from(&impacted);
                        }
                        if is_hard_bounce(b) {
                            suppress = suppression("bounce", b.message.clone());
                        }
                    }
                }
                "failed" => {
                    let reason = data.failed.as_ref().and_then(|f| f.reason.clone());
                    fill(&mut r.failed_reason, &reason);
                }
                "suppressed" => {
                    if let Some(s) = &data.suppressed {
                        fill(&mut r.suppressed, &Some(s.clone()));
                        let detail = s.reason.clone().or_else(|| s.message.clone());
                        suppress = suppression("resend_suppressed", detail);
                    }
                }
                _ => {}
            }
            if moved && due(&mut r, kind) {
                publish.push(kind);
            }
        }
    }
    if !r.events_seen.iter().any(|e| e == kind) {
        r.events_seen.push(kind.to_string());
    }
    Applied {
        record: r,
        publish,
        suppress,
    }
}

#[cfg(test)]
mod tests;
