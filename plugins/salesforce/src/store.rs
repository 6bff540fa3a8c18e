//! Applying what Salesforce says of a record through the host: read the held record, merge by
//! [`crate::record::merge`], write it with its lookups when it changed, keep the sync's index,
//! and publish `salesforce.<kind>.changed` / `.deleted` (`salesforce.record.*` for types
//! other than contact, lead, account and opportunity) once per change. The one path the
//! outbound messages, the sync, `refresh_record` and the upserts share.
//!
//! A store made for the first import of a type is quiet: it writes records without announcing
//! them (an org's whole history is not news), as HubSpot's sync is.

use plugin_sdk::{Error, now_ms, publish, records};
use serde_json::{Map, Value};

use crate::index::Index;
use crate::record::{self, DeletedAt, Merged, SfRecord};

/// Kinds with events of their own; the rest publish `salesforce.record.*`.
pub const NAMED_KINDS: [&str; 4] = ["contact", "lead", "account", "opportunity"];
/// The suffix of a change event.
pub const CHANGED: &str = "changed";
/// The suffix of a deletion event.
pub const DELETED: &str = "deleted";

/// The event for a kind: `salesforce.contact.changed`, `salesforce.record.deleted`...
pub fn event_name(kind: &str, what: &str) -> String {
    let group = if NAMED_KINDS.contains(&kind) {
        kind
    } else {
        "record"
    };
    format!("salesforce.{group}.{what}")
}

/// An event's payload: the record and `change` (`created`, `updated`, `deleted`).
pub fn payload(record: &SfRecord, change: &str) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("change".into(), Value::String(change.into()));
    }
    v
}

/// One type's records as an invocation writes them.
#[derive(Debug)]
pub struct Store {
    sobject: String,
    kind: String,
    index: Option<Index>,
    quiet: bool,
}

impl Store {
    /// The store of `sobject`, announcing changes, without the index.
    pub fn new(sobject: &str) -> Store {
        Store {
            sobject: sobject.to_string(),
            kind: record::kind(sobject),
            index: None,
            quiet: false,
        }
    }

    /// The store the sync writes with: it keeps the index; `quiet` for a first import.
    pub fn for_sync(sobject: &str, quiet: bool) -> Store {
        let kind = record::kind(sobject);
        Store {
            sobject: sobject.to_string(),
            index: Some(Index::new(&kind)),
            kind,
            quiet,
        }
    }

    /// The kind written.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The index, for a sync's store.
    pub fn index(&mut self) -> Option<&mut Index> {
        self.index.as_mut()
    }

    /// The held record of `id`.
    ///
    /// # Errors
    /// Permanent when it does not parse.
    pub fn held(&self, id: &str) -> Result<Option<SfRecord>, Error> {
        records::get(&self.kind, id)
    }

    fn write(&mut self, r: &SfRecord) -> Result<(), Error> {
        records::upsert(&self.kind, &r.id, r)?;
        if record::is_person(&self.kind) {
            records::set_lookups(&self.kind, &r.id, &r.lookups());
        }
        Ok(())
    }

    fn announce(&self, what: &str, r: &SfRecord, change: &str) -> Result<(), Error> {
        if self.quiet {
            return Ok(());
        }
        publish(&event_name(&self.kind, what), &payload(r, change))
    }

    /// Applies one version (`fields`, as Salesforce sent them) of record `id`.
    ///
    /// # Errors
    /// Permanent when the held record does not parse.
    pub fn apply(&mut self, id: &str, fields: Map<String, Value>) -> Result<Merged, Error> {
        let held = self.held(id)?;
        let (r, merged) = record::merge(held.as_ref(), &self.sobject, id, record::clean(fields));
        match merged {
            Merged::Created => {
                self.write(&r)?;
                self.announce(CHANGED, &r, "created")?;
            }
            Merged::Updated => {
                self.write(&r)?;
                self.announce(CHANGED, &r, "updated")?;
            }
            Merged::Touched => self.write(&r)?,
            Merged::Unchanged | Merged::Stale => {}
        }
        if !r.deleted
            && let Some(index) = self.index.as_mut()
        {
            index.ensure(id, now_ms() as i64);
        }
        Ok(merged)
    }

    /// Marks record `id` deleted, publishing `.deleted` once; whether it did (a record never
    /// held, already deleted, or undeleted since a reported deletion is left as it is).
    ///
    /// # Errors
    /// As [`Store::apply`].
    pub fn delete(&mut self, id: &str, at: DeletedAt) -> Result<bool, Error> {
        if let Some(index) = self.index.as_mut() {
            index.remove(id);
        }
        let Some(held) = self.held(id)? else {
            return Ok(false);
        };
        let Some(dead) = record::tombstone(&held, at) else {
            return Ok(false);
        };
        self.write(&dead)?;
        self.announce(DELETED, &dead, "deleted")?;
        Ok(true)
    }

    /// Writes the index buckets this invocation changed.
    pub fn flush(&mut self) {
        if let Some(index) = self.index.as_mut() {
            index.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert_eq!(event_name("contact", CHANGED), "salesforce.contact.changed");
        assert_eq!(
            event_name("opportunity", DELETED),
            "salesforce.opportunity.deleted"
        );
        assert_eq!(
            event_name("invoice__c", CHANGED),
            "salesforce.record.changed"
        );
        let r = SfRecord::new("Invoice__c", "a00000000000001AAA");
        let p = payload(&r, "created");
        assert_eq!(
            (p["type"].as_str(), p["change"].as_str()),
            (Some("Invoice__c"), Some("created"))
        );
    }
}
