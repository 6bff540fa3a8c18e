//! Salesforce Outbound Messages: SOAP 1.1 posts of 1 to 100 notifications, each a record's
//! current state (`Notification { Id, sObject xsi:type="sf:<Type>" }`), sent at least once, in
//! no order, until answered with the `Ack`.
//!
//! The host checks the path token and that `OrganizationId` is the tenant's `org_id`, and
//! refuses malformed XML, before any of this runs; it stores the delivery, then runs
//! [`respond`] for the `Ack` (so Salesforce stops resending only once the message is durable),
//! then [`handle`]. Each notification:
//! - without an `Id` (or an sObject with an Id): skipped with a warning, the others applied;
//! - already applied (kv marker `n:<Id>` holding the same content): skipped; Salesforce
//!   resends even after a valid Ack. A resend with newer content under the same Id (the record
//!   changed while the notification was queued) is applied;
//! - of a type the tenant does not list in `sobjects`: skipped with a warning;
//! - otherwise merged into the record, the newest `SystemModstamp` winning; a version without a
//!   `SystemModstamp` merges its fields and queues `refresh_record` for the whole record.
//!
//! Parsed namespace-aware with `plugin_sdk::xml` (no DOCTYPE, bounded depth and size), never by
//! prefix: the sObject's fields are its children in `urn:sobject.enterprise.soap.sforce.com`.

use std::collections::BTreeMap;

use plugin_sdk::xml::{self, Element};
use plugin_sdk::{Delivery, Error, Outcome, Reply, enqueue_job, info, kv, warn};
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::record::{Merged, id18};
use crate::refresh::{REFRESH_RECORD, RefreshInput};
use crate::store::Store;

/// The route's name: `/hooks/{tenant}/salesforce/outbound/{token}`.
pub const ROUTE: &str = "outbound";
/// The credential the route's path token is compared with.
pub const OUTBOUND_TOKEN: &str = "outbound_token";
/// SOAP 1.1's envelope namespace.
pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The outbound messaging namespace.
pub const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
/// The namespace of the sObjects' fields (the enterprise WSDL's).
pub const SOBJECT_NS: &str = "urn:sobject.enterprise.soap.sforce.com";
/// XML Schema instance (`xsi:type`, `xsi:nil`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The most notifications Salesforce puts in one message.
pub const MAX_NOTIFICATIONS: usize = 100;
/// The answer that tells Salesforce the message is kept, byte for byte.
pub const ACK: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;
/// Its content type.
pub const ACK_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// One notification, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The notification's Id (dedupe key).
    pub id: String,
    /// The sObject type (`Contact`, from `xsi:type="sf:Contact"`).
    pub sobject: String,
    /// The record's 18-character Id.
    pub record_id: String,
    /// The fields sent, by API name (`xsi:nil` ones as null).
    pub fields: Map<String, Value>,
}

/// A message, read: each notification, or why it is skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `OrganizationId` (checked by the host already).
    pub org_id: String,
    /// The notifications in order.
    pub notifications: Vec<Result<Notification, String>>,
}

/// The synchronous answer: the `Ack`.
pub fn respond() -> Reply {
    Reply::new(200, ACK_CONTENT_TYPE, ACK)
}

/// A field element's value: null for `xsi:nil="true"`, an object for one with elements inside
/// (a related record), else its text as written.
pub fn field_value(e: &Element) -> Value {
    if e.attribute(XSI, "nil") == Some("true") {
        return Value::Null;
    }
    if e.children.is_empty() {
        return Value::String(e.text.clone());
    }
    let mut map = Map::new();
    if let Some(t) = e.attribute(XSI, "type") {
        map.insert("type".into(), Value::String(type_name(t).to_string()));
    }
    for c in &e.children {
        map.insert(c.name.clone(), field_value(c));
    }
    Value::Object(map)
}

/// `Contact` from `sf:Contact`.
pub fn type_name(xsi_type: &str) -> &str {
    xsi_type.rsplit(':').next().unwrap_or(xsi_type).trim()
}

fn notification(n: &Element) -> Result<Notification, String> {
    let id = n
        .text_of(OUTBOUND_NS, "Id")
        .filter(|s| !s.is_empty())
        .ok_or("a notification without an Id")?
        .to_string();
    let so = n
        .child(OUTBOUND_NS, "sObject")
        .ok_or_else(|| format!("notification {id} has no sObject"))?;
    let sobject = so
        .attribute(XSI, "type")
        .map(type_name)
        .filter(|t| crate::config::valid_api_name(t))
        .ok_or_else(|| format!("notification {id}'s sObject has no xsi:type naming its type"))?
        .to_string();
    let mut fields = Map::new();
    for f in so.children.iter() {
        if f.namespace.as_deref() == Some(SOBJECT_NS) && f.name != "fieldsToNull" {
            fields.insert(f.name.clone(), field_value(f));
        }
    }
    let record_id = fields
        .get("Id")
        .and_then(Value::as_str)
        .and_then(id18)
        .ok_or_else(|| format!("notification {id}'s {sobject} has no Id"))?;
    fields.insert("Id".into(), Value::String(record_id.clone()));
    Ok(Notification {
        id,
        sobject,
        record_id,
        fields,
    })
}

/// Reads a message.
///
/// # Errors
/// A message saying why the body is not an outbound message.
pub fn parse(body: &[u8]) -> Result<Message, String> {
    let doc = xml::parse(body).map_err(|e| format!("the body is not XML: {e}"))?;
    if !doc.is(SOAP_ENV, "Envelope") {
        return Err("the body is not a SOAP envelope".into());
    }
    let n = doc
        .child(SOAP_ENV, "Body")
        .and_then(|b| b.child(OUTBOUND_NS, "notifications"))
        .ok_or("the envelope holds no outbound `notifications`")?;
    let org_id = n
        .text_of(OUTBOUND_NS, "OrganizationId")
        .unwrap_or("")
        .to_string();
    let items: Vec<&Element> = n.children(OUTBOUND_NS, "Notification").collect();
    if items.is_empty() {
        return Err("the message has no Notification".into());
    }
    if items.len() > MAX_NOTIFICATIONS {
        return Err(format!(
            "the message has {} notifications; Salesforce sends at most {MAX_NOTIFICATIONS}",
            items.len()
        ));
    }
    Ok(Message {
        org_id,
        notifications: items.into_iter().map(notification).collect(),
    })
}

/// A short fingerprint of a notification's content (FNV-1a 64 over its type and fields in
/// name order): what the dedupe marker holds.
pub fn fingerprint(sobject: &str, fields: &Map<String, Value>) -> String {
    let sorted: BTreeMap<&String, &Value> = fields.iter().collect();
    let text = format!(
        "{sobject}\n{}",
        serde_json::to_string(&sorted).unwrap_or_default()
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The kv key of a notification's dedupe marker.
pub fn marker_key(notification_id: &str) -> String {
    format!("n:{notification_id}")
}

/// What became of a message's notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Written (new, changed, or a newer version).
    pub written: usize,
    /// Applied, but the record already held this.
    pub unchanged: usize,
    /// Older than the held record.
    pub stale: usize,
    /// Applied before (same notification, same content).
    pub duplicate: usize,
    /// Without an Id, of an unlisted type, or unreadable.
    pub skipped: usize,
}

impl Tally {
    /// One line for the log and the ignored reason.
    pub fn describe(&self) -> String {
        let parts = [
            (self.written, "written"),
            (self.unchanged, "unchanged"),
            (self.stale, "out of order (older than the record held)"),
            (self.duplicate, "already applied"),
            (self.skipped, "skipped"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Handles a stored outbound message.
///
/// # Errors
/// Bad request when the body is not an outbound message; permanent for a wrong config or an
/// unreadable held record.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let message = parse(&delivery.body).map_err(Error::bad_request)?;
    let settings = Settings::load()?;
    let mut tally = Tally::default();
    for item in message.notifications {
        let n = match item {
            Ok(n) => n,
            Err(why) => {
                warn!("outbound message {}: {why}; skipped", delivery.id);
                tally.skipped += 1;
                continue;
            }
        };
        let Some(sobject) = settings.listed(&n.sobject).map(str::to_string) else {
            warn!(
                "outbound message {}: notification {} is a {}, which config `sobjects` does not list; skipped",
                delivery.id, n.id, n.sobject
            );
            tally.skipped += 1;
            continue;
        };
        let key = marker_key(&n.id);
        let print = fingerprint(&sobject, &n.fields);
        if kv::get_string(&key).as_deref() == Some(print.as_str()) {
            tally.duplicate += 1;
            continue;
        }
        let without_stamp = !n.fields.contains_key("SystemModstamp");
        let merged = Store::new(&sobject).apply(&n.record_id, n.fields)?;
        if without_stamp {
            let input = RefreshInput {
                sobject: sobject.clone(),
                id: n.record_id.clone(),
            };
            enqueue_job(REFRESH_RECORD, &input, 0)?;
        }
        kv::set_marker(&key, print.as_bytes());
        match merged {
            Merged::Created | Merged::Updated | Merged::Touched => tally.written += 1,
            Merged::Unchanged => tally.unchanged += 1,
            Merged::Stale => tally.stale += 1,
        }
    }
    if tally.skipped > 0 {
        warn!("outbound message {}: {}", delivery.id, tally.describe());
    } else {
        info!("outbound message {}: {}", delivery.id, tally.describe());
    }
    if tally.written == 0 {
        return Ok(Outcome::ignored(format!(
            "nothing written: {}",
            tally.describe()
        )));
    }
    Ok(Outcome::handled())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>00D000000000001AAA</OrganizationId><ActionId>04k000000000001AAA</ActionId><SessionId xsi:nil="true"/>
  <Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
   <sf:Id>003000000000001</sf:Id><sf:Email>ada@example.com</sf:Email><sf:Phone xsi:nil="true"/></sObject></Notification>
  <Notification><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>003000000000002AAA</sf:Id></sObject></Notification>
  <Notification><Id>04l000000000003AAA</Id><sObject xmlns:q="urn:sobject.enterprise.soap.sforce.com" xsi:type="q:Lead"><q:Id>00Q000000000003AAA</q:Id><Email>not-a-field@x.io</Email></sObject></Notification>
 </notifications></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn reads_notifications_by_namespace() {
        let m = parse(MESSAGE.as_bytes()).unwrap();
        assert_eq!(m.org_id, "00D000000000001AAA");
        let [first, second, third] = &m.notifications[..] else {
            panic!("three notifications")
        };
        let first = first.as_ref().unwrap();
        assert_eq!(
            (first.id.as_str(), first.sobject.as_str()),
            ("04l000000000001AAA", "Contact")
        );
        assert_eq!(first.record_id, "003000000000001AAA");
        assert_eq!(first.fields["Email"], "ada@example.com");
        assert_eq!(first.fields["Phone"], Value::Null);
        assert!(second.as_ref().unwrap_err().contains("without an Id"));
        let lead = third.as_ref().unwrap();
        assert_eq!(lead.sobject, "Lead");
        assert!(
            !lead.fields.contains_key("Email"),
            "an element in no namespace is not a field"
        );
    }

    #[test]
    fn refuses_what_is_not_an_outbound_message() {
        assert!(parse(b"<a/>").unwrap_err().contains("SOAP"));
        assert!(parse(b"not xml").unwrap_err().contains("not XML"));
        let empty = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>x</OrganizationId></notifications></e:Body></e:Envelope>"#;
        assert!(
            parse(empty.as_bytes())
                .unwrap_err()
                .contains("no Notification")
        );
        // `notifications` in no namespace is not Salesforce's, whatever it looks like.
        let unbound = MESSAGE.replace(
            r#"<notifications xmlns="http://soap.sforce.com/2005/09/outbound">"#,
            "<notifications>",
        );
        assert!(
            parse(unbound.as_bytes())
                .unwrap_err()
                .contains("no outbound")
        );
    }

    #[test]
    fn the_ack_and_fingerprints() {
        let r = respond();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers,
            [(
                "content-type".to_string(),
                "text/xml; charset=utf-8".to_string()
            )]
        );
        assert!(
            r.body.starts_with(b"<soapenv:Envelope") && r.body.ends_with(b"</soapenv:Envelope>")
        );
        let mut a = Map::new();
        a.insert("Id".into(), Value::String("1".into()));
        a.insert("Email".into(), Value::String("x".into()));
        let mut b = Map::new();
        b.insert("Email".into(), Value::String("x".into()));
        b.insert("Id".into(), Value::String("1".into()));
        assert_eq!(fingerprint("Contact", &a), fingerprint("Contact", &b));
        assert_ne!(fingerprint("Contact", &a), fingerprint("Lead", &a));
        assert_eq!(marker_key("04l1"), "n:04l1");
    }
}
