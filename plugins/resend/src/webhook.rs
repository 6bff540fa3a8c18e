//! Handling a stored, verified Resend webhook: `email.*` events merge into the `email` record
//! ([`crate::merge`]), write the suppressions they imply and publish the hub events they make
//! due; `contact.*`, `domain.*` and unknown types are ignored with a reason.

use plugin_sdk::{Delivery, Error, Outcome, publish, records, tenant};
use serde::Serialize;

use crate::merge::{self, known_event};
use crate::model::{Bounce, EMAIL, EmailData, EmailRecord, Envelope, SUPPRESSION};

/// The payload of every `email.*` hub event: the fields every email connector's events carry
/// (`plugin_sdk::email::EmailEvent`), and what Resend tells besides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailEvent {
    /// The common fields (`provider` = `resend`).
    #[serde(flatten)]
    pub common: plugin_sdk::email::EmailEvent,
    /// The hub tenant.
    pub tenant: String,
    /// `outbound` or `inbound`.
    pub direction: Option<String>,
    /// The recipients the event concerns, as Resend listed them.
    pub recipients: Vec<String>,
}

/// Builds the payload of `event` for a merged record and the event's data.
pub fn payload(
    record: &EmailRecord,
    event: &str,
    tenant: &str,
    at: Option<&str>,
    data: &EmailData,
) -> EmailEvent {
    let common = plugin_sdk::email::EmailEvent {
        event: event.into(),
        email_id: record.email_id.clone(),
        provider: "resend".into(),
        status: record.status.clone(),
        from: record.from.clone(),
        to: record.to.clone(),
        subject: record.subject.clone(),
        tags: record.tags.clone(),
        at: at.map(str::to_string),
        bounce: data
            .bounce
            .as_ref()
            .and_then(|b| serde_json::to_value(b).ok()),
        link: data.click.as_ref().and_then(|c| c.link.clone()),
        failed_reason: data.failed.as_ref().and_then(|f| f.reason.clone()),
        opens: record.opens,
        clicks: record.clicks,
        idempotency_key: record.idempotency_key.clone(),
    };
    EmailEvent {
        common,
        tenant: tenant.into(),
        direction: record.direction.clone(),
        recipients: data.to.clone(),
    }
}

/// An example payload of `event`, for the manifest.
pub fn example(event: &'static str) -> String {
    let mut data = EmailData {
        email_id: Some("4ef9a417-02e9-4d39-ad75-9611e0fcc33c".into()),
        created_at: Some("2026-03-01T10:00:00.000Z".into()),
        from: Some("Acme Dental <hello@acme.example>".into()),
        to: vec!["jane@example.com".into()],
        subject: Some("Your appointment on Monday".into()),
        tags: Some(serde_json::json!({"category": "follow_up"})),
        ..Default::default()
    };
    if event == "email.bounced" {
        data.bounce = Some(Bounce {
            kind: Some("Permanent".into()),
            sub_type: Some("General".into()),
            message: Some("The recipient's mail server permanently rejected the email.".into()),
        });
    }
    if event == "email.clicked" {
        data.click = Some(crate::model::Click {
            link: Some("https://acme.example/book".into()),
            timestamp: Some("2026-03-01T10:05:00.000Z".into()),
        });
    }
    let at = "2026-03-01T10:00:02.000Z";
    let applied = merge::apply(None, event, Some(at), &data);
    serde_json::to_string(&payload(&applied.record, event, "acme", Some(at), &data))
        .unwrap_or_else(|_| "{}".into())
}

/// What a webhook event type is to this connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `email.*` event it handles.
    Email(&'static str),
    /// A documented event it does not use (`contact.*`, `domain.*`).
    Unused,
    /// Anything else.
    Unknown,
}

/// Classifies a Resend event type.
pub fn classify(kind: &str) -> Kind {
    if let Some(k) = known_event(kind) {
        Kind::Email(k)
    } else if kind.starts_with("contact.") || kind.starts_with("domain.") {
        Kind::Unused
    } else {
        Kind::Unknown
    }
}

/// Handles one delivery.
///
/// # Errors
/// Bad request for a body that is not Resend's shape or an email event without `email_id`;
/// permanent for an unreadable stored record.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let envelope: Envelope = delivery.json()?;
    let kind = match classify(&envelope.kind) {
        Kind::Email(k) => k,
        Kind::Unused => {
            return Ok(Outcome::ignored(format!(
                "`{}` events are not used by this connector",
                envelope.kind
            )));
        }
        Kind::Unknown => {
            return Ok(Outcome::ignored(format!(
                "unknown event type `{}`",
                envelope.kind
            )));
        }
    };
    let data: EmailData = serde_json::from_value(envelope.data)
        .map_err(|e| Error::bad_request(format!("`{kind}` has a malformed `data`: {e}")))?;
    let email_id = data
        .email_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::bad_request(format!("`{kind}` has no `data.email_id`")))?;
    let stored: Option<EmailRecord> = records::get(EMAIL, &email_id)?;
    let at = envelope.created_at.as_deref();
    let applied = merge::apply(stored, kind, at, &data);
    for s in &applied.suppress {
        records::upsert(SUPPRESSION, &s.address, s)?;
    }
    if !applied.publish.is_empty() {
        let tenant = tenant();
        for name in &applied.publish {
            publish(name, &payload(&applied.record, name, &tenant, at, &data))?;
        }
    }
    records::upsert(EMAIL, &email_id, &applied.record)?;
    Ok(Outcome::handled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn classification() {
        assert_eq!(classify("email.delivered"), Kind::Email("email.delivered"));
        assert_eq!(classify("contact.updated"), Kind::Unused);
        assert_eq!(classify("domain.created"), Kind::Unused);
        assert_eq!(classify("email.teleported"), Kind::Unknown);
        assert_eq!(classify(""), Kind::Unknown);
    }

    #[test]
    fn examples_are_complete_payloads() {
        for e in merge::EMAIL_EVENTS {
            let v: Value = serde_json::from_str(&example(e)).unwrap();
            assert_eq!(v["event"], e);
            assert_eq!(v["email_id"], "4ef9a417-02e9-4d39-ad75-9611e0fcc33c");
            assert_eq!(v["tenant"], "acme");
            assert!(v["to"].is_array());
        }
        let bounced: Value = serde_json::from_str(&example("email.bounced")).unwrap();
        assert_eq!(bounced["status"], "bounced");
        assert_eq!(bounced["bounce"]["type"], "Permanent");
        let clicked: Value = serde_json::from_str(&example("email.clicked")).unwrap();
        assert_eq!(clicked["link"], "https://acme.example/book");
        assert_eq!(clicked["clicks"], 1);
    }
}
