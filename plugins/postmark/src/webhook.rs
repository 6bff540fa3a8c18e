//! Postmark's webhooks, one JSON object per request (guarded by HTTP Basic credentials the hub
//! checks; stored once by their body, which a retry repeats): Delivery, Bounce, SpamComplaint,
//! Open, Click, SubscriptionChange, and inbound email. Each merges into the `email` record (the
//! status only moves forward), writes or lifts a `suppression`, and publishes the `email.*`
//! event the Resend and SendGrid connectors publish for the same thing.

use plugin_sdk::email::advance;
use plugin_sdk::{Delivery, Error, Outcome, lookup, publish, records};
use serde_json::{Value, json};

use crate::model::{EMAIL, EmailRecord, MAX_LINKS, SUPPRESSION, SuppressionRecord, bare_address};

/// Bounce `TypeCode`s that mean the address will never accept mail: HardBounce, BadEmailAddress,
/// ManuallyDeactivated, Unsubscribe... (Postmark's table); others are soft.
const HARD_TYPES: [&str; 6] = [
    "HardBounce",
    "BadEmailAddress",
    "ManuallyDeactivated",
    "Unsubscribe",
    "SpamNotification",
    "Blocked",
];

fn note(record: &mut EmailRecord, published: &str) -> bool {
    if record.published.iter().any(|p| p == published) {
        return false;
    }
    record.published.push(published.to_string());
    true
}

/// Moves the status and, when it moved, announces it once.
fn moved(
    record: &mut EmailRecord,
    status: &str,
    event: &'static str,
    out: &mut Vec<(&'static str, Option<String>)>,
) {
    if advance(&mut record.status, status) && note(record, event) {
        out.push((event, None));
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Handles one webhook.
///
/// # Errors
/// Bad request for a body that is not a Postmark webhook; permanent when a record does not parse.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let body: Value = delivery.json()?;
    if !body.is_object() {
        return Err(Error::bad_request("a Postmark webhook is a JSON object"));
    }
    let kind = match text(&body, "RecordType") {
        Some(k) => k,
        // Inbound email carries no RecordType.
        None if body.get("FromFull").is_some()
            || text(&body, "MessageStream").as_deref() == Some("inbound") =>
        {
            "Inbound".to_string()
        }
        None => return Err(Error::bad_request("the webhook has no RecordType")),
    };
    let Some(id) = text(&body, "MessageID").filter(|id| !id.is_empty()) else {
        return Ok(Outcome::ignored(format!(
            "a {kind} webhook without a MessageID"
        )));
    };
    let recipient = text(&body, "Recipient")
        .or_else(|| text(&body, "Email"))
        .and_then(|a| bare_address(&a));
    let at = [
        "DeliveredAt",
        "BouncedAt",
        "ReceivedAt",
        "ChangedAt",
        "Date",
    ]
    .iter()
    .find_map(|k| text(&body, k));
    let mut record: EmailRecord = records::get(EMAIL, &id)?.unwrap_or_else(|| EmailRecord {
        email_id: id.clone(),
        provider: "postmark".into(),
        direction: Some(
            if kind == "Inbound" {
                "inbound"
            } else {
                "outbound"
            }
            .into(),
        ),
        ..EmailRecord::default()
    });
    if let Some(r) = &recipient
        && !record.to.contains(r)
    {
        record.to.push(r.clone());
    }
    if record.idempotency_key.is_none() {
        record.idempotency_key = body["Metadata"]["hub_key"].as_str().map(str::to_string);
    }
    if record.tags.is_none() {
        record.tags = body
            .get("Tag")
            .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
            .cloned();
    }
    if let Some(at) = &at
        && record
            .last_event_at
            .as_deref()
            .is_none_or(|l| at.as_str() > l)
    {
        record.last_event_at = Some(at.clone());
    }
    if !record.events_seen.contains(&kind) {
        record.events_seen.push(kind.clone());
    }
    let mut publish_now: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut suppress: Option<(&str, Option<String>)> = None;
    let mut unsuppress = false;
    match kind.as_str() {
        "Delivery" => moved(
            &mut record,
            "delivered",
            "email.delivered",
            &mut publish_now,
        ),
        "Bounce" => {
            let kind_of = text(&body, "Type").unwrap_or_default();
            if HARD_TYPES.contains(&kind_of.as_str()) || body["Inactive"].as_bool() == Some(true) {
                record.bounce = Some(json!({
                    "type": "Permanent",
                    "classification": kind_of,
                    "message": text(&body, "Description"),
                    "details": text(&body, "Details"),
                }));
                moved(&mut record, "bounced", "email.bounced", &mut publish_now);
                suppress = Some(("bounce", text(&body, "Description")));
            } else {
                moved(
                    &mut record,
                    "delivery_delayed",
                    "email.delivery_delayed",
                    &mut publish_now,
                );
            }
        }
        "SpamComplaint" => {
            record.complained = true;
            moved(
                &mut record,
                "complained",
                "email.complained",
                &mut publish_now,
            );
            suppress = Some(("complaint", None));
        }
        "Open" => {
            record.opens = record.opens.saturating_add(1);
            if record.first_opened_at.is_none() {
                record.first_opened_at = at.clone();
            }
            if note(&mut record, "email.opened") {
                publish_now.push(("email.opened", None));
            }
        }
        "Click" => {
            record.clicks = record.clicks.saturating_add(1);
            if let Some(link) = text(&body, "OriginalLink") {
                if !record.links.contains(&link) && record.links.len() < MAX_LINKS {
                    record.links.push(link.clone());
                }
                if note(&mut record, &format!("email.clicked:{link}")) {
                    publish_now.push(("email.clicked", Some(link)));
                }
            }
        }
        "SubscriptionChange" => {
            if body["SuppressSending"].as_bool() == Some(true) {
                suppress = Some(("unsubscribe", text(&body, "SuppressionReason")));
                if note(&mut record, "email.unsubscribed") {
                    publish_now.push(("email.unsubscribed", None));
                }
            } else {
                unsuppress = true;
            }
        }
        "Inbound" => {
            record.from = body["FromFull"]["Email"]
                .as_str()
                .map(str::to_string)
                .or_else(|| text(&body, "From"));
            record.subject = text(&body, "Subject");
            record.to = body["ToFull"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["Email"].as_str().and_then(bare_address))
                .collect();
            moved(&mut record, "received", "email.received", &mut publish_now);
        }
        other => {
            return Ok(Outcome::ignored(format!(
                "Postmark record type `{other}` is not handled"
            )));
        }
    }
    if let Some(address) = &recipient {
        if let Some((reason, detail)) = suppress {
            let s = SuppressionRecord {
                address: address.clone(),
                reason: reason.into(),
                detail,
                email_id: Some(id.clone()),
                at: at.clone(),
                provider: "postmark".into(),
            };
            records::upsert(SUPPRESSION, address, &s)?;
        } else if unsuppress {
            // Postmark reactivated the address on its own list: that lifts Postmark's
            // suppression, not one another provider keeps (a Resend bounce stays).
            let held = records::get::<SuppressionRecord>(SUPPRESSION, address)?;
            if held.is_some_and(|s| s.provider == "postmark") {
                records::delete(SUPPRESSION, address);
            }
        }
    }
    records::upsert(EMAIL, &id, &record)?;
    let found_by: Vec<Option<String>> = record.to.iter().map(|a| lookup::email(a)).collect();
    records::set_lookups(EMAIL, &id, &found_by);
    for (name, link) in publish_now {
        publish(
            name,
            &plugin_sdk::email::EmailEvent::of(name, &record, link.clone()),
        )?;
    }
    Ok(Outcome::handled())
}
