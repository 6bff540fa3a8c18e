//! The record an sObject becomes, and the rules that keep it right as versions arrive out of
//! order. Pure: [`merge`] decides, [`crate::store`] writes.
//!
//! A record's kind is the lower-case sObject name (`contact`, `lead`, `account`,
//! `opportunity`, `invoice__c`) and its key the 18-character Id. It keeps the fields as
//! Salesforce sent them (REST's typed JSON, or an outbound message's text) and what other
//! connectors read of a person (`name`, `firstname`, `lastname`, lower-case `email`, `phone`,
//! `mobile_phone`: Retell's greeting finds `firstname`/`lastname`).
//!
//! The newest `SystemModstamp` wins: an older version changes nothing; an equal one merges its
//! fields; a version without one (an outbound message that did not send it) merges its fields
//! and the caller reads the record again. A field's value is compared loosely (`50` and
//! `"50"`, two spellings of one instant are the same value), so the same state read over SOAP
//! and over REST is not a change. A deleted record stays as a tombstone (`deleted`, no
//! lookups) that only a version newer than its deletion revives (an undelete).

use plugin_sdk::lookup;
use plugin_sdk::time::{format_ms, parse_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `source` every record carries.
pub const SOURCE: &str = "salesforce";

/// The record of an sObject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SfRecord {
    /// The 18-character Id.
    pub id: String,
    /// Always `salesforce`.
    pub source: String,
    /// The sObject type's API name (`Contact`).
    #[serde(rename = "type")]
    pub sobject: String,
    /// `Name`, else first and last name.
    pub name: Option<String>,
    /// `FirstName`.
    pub firstname: Option<String>,
    /// `LastName`.
    pub lastname: Option<String>,
    /// `Email`, trimmed and lower-case.
    pub email: Option<String>,
    /// `Phone`.
    pub phone: Option<String>,
    /// `MobilePhone`.
    pub mobile_phone: Option<String>,
    /// The fields, as Salesforce sent them (no `attributes`).
    pub fields: Map<String, Value>,
    /// `SystemModstamp`, RFC 3339 UTC.
    pub system_modstamp: Option<String>,
    /// `SystemModstamp` in epoch ms.
    pub system_modstamp_ms: Option<i64>,
    /// Whether Salesforce deleted it.
    pub deleted: bool,
    /// When it was deleted (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<i64>,
}

/// The record kind of an sObject type.
pub fn kind(sobject: &str) -> String {
    sobject.to_ascii_lowercase()
}

/// Whether the kind's records carry email and phone lookups (people).
pub fn is_person(kind: &str) -> bool {
    matches!(kind, "contact" | "lead")
}

/// The 18-character form of an Id (15 characters gain their case-checksum suffix); `None` for
/// anything that is not an Id.
///
/// ```
/// assert_eq!(salesforce::record::id18("001A0000006Vm9r").as_deref(), Some("001A0000006Vm9rIAC"));
/// assert_eq!(salesforce::record::id18("003000000000001").as_deref(), Some("003000000000001AAA"));
/// assert_eq!(salesforce::record::id18("001D000000IRFmaIAH").as_deref(), Some("001D000000IRFmaIAH"));
/// assert_eq!(salesforce::record::id18("x"), None);
/// ```
pub fn id18(id: &str) -> Option<String> {
    let id = id.trim();
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        18 => Some(id.to_string()),
        15 => {
            const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
            let mut out = id.to_string();
            for chunk in id.as_bytes().chunks(5) {
                let bits = chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_ascii_uppercase())
                    .fold(0usize, |acc, (i, _)| acc | (1 << i));
                out.push(char::from(ALPHABET.get(bits).copied().unwrap_or(b'A')));
            }
            Some(out)
        }
        _ => None,
    }
}

/// A field's text, when it is a non-empty string or a number.
fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The epoch ms of a value that is an instant.
fn instant(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_ms)
}

/// Whether two field values are the same value: equal, or scalars whose text is the same
/// (a number, a boolean, a text), or two spellings of one instant.
pub fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(x) => Some(x.to_string()),
        _ => None,
    };
    match (scalar(a), scalar(b)) {
        (Some(x), Some(y)) if x == y => true,
        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => p == q,
            _ => matches!((instant(a), instant(b)), (Some(p), Some(q)) if p == q),
        },
        _ => false,
    }
}

impl SfRecord {
    /// An empty record of a type.
    pub fn new(sobject: &str, id: &str) -> SfRecord {
        SfRecord {
            id: id.to_string(),
            source: SOURCE.into(),
            sobject: sobject.to_string(),
            ..SfRecord::default()
        }
    }

    /// The record's kind.
    pub fn kind(&self) -> String {
        kind(&self.sobject)
    }

    /// Derives the summary fields from `fields`.
    pub fn refresh(&mut self) {
        let f = &self.fields;
        self.firstname = text(f, "FirstName");
        self.lastname = text(f, "LastName");
        self.name = text(f, "Name").or_else(|| {
            let both: Vec<&str> = [self.firstname.as_deref(), self.lastname.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            (!both.is_empty()).then(|| both.join(" "))
        });
        self.email = text(f, "Email").and_then(|e| lookup::normalize_email(&e));
        self.phone = text(f, "Phone");
        self.mobile_phone = text(f, "MobilePhone");
        let stamp = f.get("SystemModstamp").and_then(instant);
        if let Some(ms) = stamp {
            self.system_modstamp_ms = Some(ms);
            self.system_modstamp = Some(format_ms(ms));
        }
        self.source = SOURCE.into();
    }

    /// The lookups it is found by: a live contact's or lead's email and phone numbers.
    pub fn lookups(&self) -> Vec<Option<String>> {
        if self.deleted || !is_person(&self.kind()) {
            return Vec::new();
        }
        vec![
            self.email.as_deref().and_then(lookup::email),
            self.phone.as_deref().and_then(lookup::phone),
            self.mobile_phone.as_deref().and_then(lookup::phone),
        ]
    }
}

/// The fields of a REST record or an sObject as kept: without `attributes`.
pub fn clean(mut fields: Map<String, Value>) -> Map<String, Value> {
    fields.remove("attributes");
    fields
}

/// What merging a version into the held record decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// A record not held before (or a tombstone revived): stored, announced.
    Created,
    /// A field changed: stored, announced.
    Updated,
    /// Only the version moved (the fields read are the same): stored quietly.
    Touched,
    /// Nothing changed.
    Unchanged,
    /// Older than the held record (or than its deletion): ignored.
    Stale,
}

/// Merges `fields` (one version of record `id` of `sobject`) into `held`: the record to keep
/// and what happened. `fields` may lack `SystemModstamp`.
pub fn merge(
    held: Option<&SfRecord>,
    sobject: &str,
    id: &str,
    fields: Map<String, Value>,
) -> (SfRecord, Merged) {
    let incoming = fields.get("SystemModstamp").and_then(instant);
    let Some(held) = held else {
        let mut r = SfRecord::new(sobject, id);
        r.fields = fields;
        r.fields.insert("Id".into(), Value::String(id.to_string()));
        r.refresh();
        return (r, Merged::Created);
    };
    if held.deleted {
        let deleted_at = held.deleted_at_ms.or(held.system_modstamp_ms);
        return match (incoming, deleted_at) {
            (Some(new), Some(at)) if new > at => {
                let mut r = held.clone();
                r.deleted = false;
                r.deleted_at_ms = None;
                r.fields.extend(fields);
                r.refresh();
                (r, Merged::Created)
            }
            (Some(_), None) => {
                let mut r = held.clone();
                r.deleted = false;
                r.fields.extend(fields);
                r.refresh();
                (r, Merged::Created)
            }
            _ => (held.clone(), Merged::Stale),
        };
    }
    if let (Some(new), Some(old)) = (incoming, held.system_modstamp_ms)
        && new < old
    {
        return (held.clone(), Merged::Stale);
    }
    let mut r = held.clone();
    let mut changed = false;
    for (name, value) in fields {
        let same = r
            .fields
            .get(&name)
            .is_some_and(|old| same_value(old, &value));
        if !same {
            // The version itself moving is not a change of the record's data.
            changed |= name != "SystemModstamp";
            r.fields.insert(name, value);
        }
    }
    r.refresh();
    let moved = r.system_modstamp_ms != held.system_modstamp_ms;
    let merged = match (changed, moved) {
        (true, _) => Merged::Updated,
        (false, true) => Merged::Touched,
        (false, false) if r != *held => Merged::Touched,
        (false, false) => Merged::Unchanged,
    };
    (r, merged)
}

/// When a record was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedAt {
    /// At this time, as Salesforce reported it (`/deleted/`'s `deletedDate`): a held version
    /// newer than it was written after an undelete, and stays.
    Reported(i64),
    /// Found gone now (a read answered 404, a re-list did not list it): whatever is held.
    FoundGone(i64),
}

/// Marks a held record deleted (a tombstone); `None` when it already is, or when the held
/// version is newer than a reported deletion (an undelete since).
pub fn tombstone(held: &SfRecord, at: DeletedAt) -> Option<SfRecord> {
    if held.deleted {
        return None;
    }
    let at_ms = match at {
        DeletedAt::Reported(ms) if held.system_modstamp_ms.is_some_and(|m| m > ms) => return None,
        DeletedAt::Reported(ms) => ms,
        // The hub's clock may lag Salesforce's: the deletion is after the version held.
        DeletedAt::FoundGone(ms) => ms.max(held.system_modstamp_ms.unwrap_or(ms)),
    };
    let mut r = held.clone();
    r.deleted = true;
    r.deleted_at_ms = Some(at_ms);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    const ID: &str = "003000000000001AAA";

    #[test]
    fn a_new_record_reads_its_person() {
        let (r, m) = merge(
            None,
            "Contact",
            ID,
            fields(json!({"FirstName": "Ada", "LastName": "Lovelace",
            "Email": " Ada@Example.COM ", "Phone": "(415) 555-0100", "MobilePhone": "+1 415 555 0199",
            "SystemModstamp": "2026-01-02T03:04:05.000+0000"})),
        );
        assert_eq!(m, Merged::Created);
        assert_eq!(r.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(r.email.as_deref(), Some("ada@example.com"));
        assert_eq!(r.system_modstamp.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(r.fields["Id"], ID);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "Contact");
        assert_eq!(v["source"], "salesforce");
        assert_eq!(v["mobile_phone"], "+1 415 555 0199");
        let mut l: Vec<String> = r.lookups().into_iter().flatten().collect();
        l.sort();
        assert_eq!(
            l,
            [
                "email:ada@example.com",
                "phone:+14155550199",
                "phone:national:4155550100"
            ]
        );
        let (account, _) = merge(
            None,
            "Account",
            "001000000000001AAA",
            fields(json!({"Name": "Acme", "Phone": "+14155550100"})),
        );
        assert!(account.lookups().is_empty());
    }

    #[test]
    fn the_newest_version_wins() {
        let (held, _) = merge(
            None,
            "Contact",
            ID,
            fields(json!({"Email": "new@x.io", "SystemModstamp": "2026-01-02T00:00:00.000Z"})),
        );
        let (_, older) = merge(
            Some(&held),
            "Contact",
            ID,
            fields(json!({"Email": "old@x.io", "SystemModstamp": "2026-01-01T00:00:00.000Z"})),
        );
        assert_eq!(older, Merged::Stale);
        let (same, m) = merge(
            Some(&held),
            "Contact",
            ID,
            fields(json!({"Title": "CTO", "SystemModstamp": "2026-01-02T00:00:00.000+0000"})),
        );
        assert_eq!(m, Merged::Updated);
        assert_eq!(
            (same.email.as_deref(), same.fields["Title"].as_str()),
            (Some("new@x.io"), Some("CTO"))
        );
        let (_, again) = merge(
            Some(&same),
            "Contact",
            ID,
            fields(json!({"Title": "CTO", "SystemModstamp": "2026-01-02T00:00:00Z"})),
        );
        assert_eq!(again, Merged::Unchanged);
        let (moved, touched) = merge(
            Some(&same),
            "Contact",
            ID,
            fields(json!({"Title": "CTO", "SystemModstamp": "2026-01-03T00:00:00Z"})),
        );
        assert_eq!(touched, Merged::Touched);
        assert_eq!(moved.system_modstamp_ms, Some(1_767_398_400_000));
        let (no_stamp, m) = merge(Some(&moved), "Contact", ID, fields(json!({"Title": "CEO"})));
        assert_eq!(m, Merged::Updated);
        assert_eq!(no_stamp.system_modstamp_ms, moved.system_modstamp_ms);
    }

    #[test]
    fn soap_text_and_rest_json_are_the_same_state() {
        assert!(same_value(&json!(50), &json!("50")));
        assert!(same_value(&json!(50.0), &json!("50")));
        assert!(same_value(&json!(true), &json!("true")));
        assert!(same_value(
            &json!("2026-01-02T00:00:00.000+0000"),
            &json!("2026-01-02T00:00:00.000Z")
        ));
        assert!(!same_value(&json!("a"), &json!("b")));
        assert!(!same_value(&json!(null), &json!("")));
    }

    #[test]
    fn tombstones_fall_only_to_newer_versions() {
        let (held, _) = merge(
            None,
            "Lead",
            ID,
            fields(json!({"Email": "a@x.io", "SystemModstamp": "2026-01-02T00:00:00Z"})),
        );
        let dead = tombstone(&held, DeletedAt::Reported(1_767_398_400_000)).unwrap();
        assert!(dead.deleted && dead.lookups().is_empty());
        assert!(tombstone(&dead, DeletedAt::Reported(1_767_398_400_001)).is_none());
        assert!(
            tombstone(&held, DeletedAt::Reported(1_767_225_600_000)).is_none(),
            "deleted before this version"
        );
        let gone = tombstone(&held, DeletedAt::FoundGone(1_767_225_600_000)).unwrap();
        assert_eq!(
            gone.deleted_at_ms, held.system_modstamp_ms,
            "gone now, after what is held"
        );
        let (_, stale) = merge(
            Some(&dead),
            "Lead",
            ID,
            fields(json!({"SystemModstamp": "2026-01-02T12:00:00Z"})),
        );
        assert_eq!(stale, Merged::Stale);
        let (_, no_stamp) = merge(Some(&dead), "Lead", ID, fields(json!({"Email": "b@x.io"})));
        assert_eq!(no_stamp, Merged::Stale);
        let (back, revived) = merge(
            Some(&dead),
            "Lead",
            ID,
            fields(json!({"SystemModstamp": "2026-01-04T00:00:00Z"})),
        );
        assert_eq!(revived, Merged::Created);
        assert!(!back.deleted && back.email.is_some());
    }
}
