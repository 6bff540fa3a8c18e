//! One Event Webhook event (the host split the batch and stored each event once by its
//! `sg_event_id`): the email record merged, suppressions written or lifted, hub events published.

use plugin_sdk::{Delivery, Error, Outcome, publish, records};

use crate::merge::apply;
use crate::model::{EMAIL, EmailRecord, Event, SUPPRESSION, SuppressionRecord};

/// The events SendGrid sends (the webhook registered by `hub connect` asks for each).
pub const KNOWN: [&str; 11] = [
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "open",
    "click",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
];

/// Handles one event.
///
/// # Errors
/// Bad request for a body that is not an event object; permanent when a record does not parse.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let event: Event = delivery.json()?;
    if !KNOWN.contains(&event.event.as_str()) {
        return Ok(Outcome::ignored(format!(
            "SendGrid event `{}` is not one this connector knows",
            event.event
        )));
    }
    let stored: Option<EmailRecord> = match event.message_id() {
        Some(id) => records::get(EMAIL, id)?,
        None => None,
    };
    let applied = apply(&event, stored);
    for s in &applied.suppress {
        records::upsert(SUPPRESSION, &s.address, s)?;
    }
    // A resubscribe to a group undoes that group's unsubscribe, not a bounce, a complaint or
    // another provider's suppression of the address.
    for address in &applied.unsuppress {
        let held = records::get::<SuppressionRecord>(SUPPRESSION, address)?;
        if held.is_some_and(|s| s.provider == "sendgrid" && s.reason == "group_unsubscribe") {
            records::delete(SUPPRESSION, address);
        }
    }
    if let Some(record) = &applied.record {
        records::upsert(EMAIL, &record.email_id, record)?;
        let to: Vec<Option<String>> = record
            .to
            .iter()
            .map(|a| plugin_sdk::lookup::email(a))
            .collect();
        records::set_lookups(EMAIL, &record.email_id, &to);
        for (name, link) in &applied.publish {
            publish(
                name,
                &plugin_sdk::email::EmailEvent::of(name, record, link.clone()),
            )?;
        }
    }
    Ok(Outcome::handled())
}
