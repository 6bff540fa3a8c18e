//! Reading and writing `contact` records and their email index through the host, and
//! publishing the `hubspot.contact.*` events.
//!
//! The index is a `contact_email` record per lower-cased email, `{"contact_id", "email",
//! "source": "hubspot"}`, kept for live contacts whose email is known: moved when the email
//! changes, removed when the contact is deleted, merged away or erased.

use plugin_sdk::{Error, publish, records};
use serde_json::{Value, json};

use crate::contact::ContactRecord;

/// Record kind of a contact (keyed by HubSpot object id).
pub const CONTACT: &str = "contact";
/// Record kind of the email index (keyed by lower-cased email).
pub const EMAIL_INDEX: &str = "contact_email";

/// Event: a contact was created in HubSpot.
pub const CREATED: &str = "hubspot.contact.created";
/// Event: a contact property changed (not sent for stale changes).
pub const UPDATED: &str = "hubspot.contact.updated";
/// Event: a contact was deleted.
pub const DELETED: &str = "hubspot.contact.deleted";
/// Event: a deleted contact was restored.
pub const RESTORED: &str = "hubspot.contact.restored";
/// Event: contacts were merged into this one.
pub const MERGED: &str = "hubspot.contact.merged";
/// Event: a contact was erased on a privacy request (the payload holds only its id).
pub const PRIVACY_DELETED: &str = "hubspot.contact.privacy_deleted";
/// Event: `upsert_contact` wrote a contact.
pub const UPSERTED: &str = "hubspot.contact.upserted";

/// A contact being changed: the record and the email it was indexed under when loaded.
pub struct Loaded {
    /// The record (new and empty when none was stored).
    pub record: ContactRecord,
    /// Whether it was stored before.
    pub existed: bool,
    indexed: Option<String>,
}

/// Loads a contact, or starts an empty one.
///
/// # Errors
/// Permanent if the stored record does not parse.
pub fn load(id: &str) -> Result<Loaded, Error> {
    let stored: Option<ContactRecord> = records::get(CONTACT, id)?;
    let existed = stored.is_some();
    let mut record = stored.unwrap_or_else(|| ContactRecord::new(id));
    if record.id.is_empty() {
        record.id = id.to_string();
    }
    record.source = "hubspot".into();
    let indexed = record.indexed_email().map(str::to_string);
    Ok(Loaded {
        record,
        existed,
        indexed,
    })
}

fn index_points_to(email: &str, id: &str) -> Result<bool, Error> {
    let entry: Option<Value> = records::get(EMAIL_INDEX, email)?;
    Ok(entry
        .as_ref()
        .and_then(|v| v.get("contact_id"))
        .and_then(Value::as_str)
        == Some(id))
}

/// Stores the record and moves its index entry.
///
/// # Errors
/// Permanent if a record cannot be read or serialized.
pub fn save(loaded: &mut Loaded) -> Result<(), Error> {
    let record = &mut loaded.record;
    record.refresh();
    records::upsert(CONTACT, &record.id, &*record)?;
    records::set_lookups(CONTACT, &record.id, &record.lookups());
    let now = record.indexed_email().map(str::to_string);
    if let Some(old) = loaded.indexed.as_deref()
        && now.as_deref() != Some(old)
        && index_points_to(old, &record.id)?
    {
        records::delete(EMAIL_INDEX, old);
    }
    if let Some(email) = now.as_deref()
        && (loaded.indexed.as_deref() != Some(email) || !index_points_to(email, &record.id)?)
    {
        let entry = json!({ "contact_id": record.id, "email": email, "source": "hubspot" });
        records::upsert(EMAIL_INDEX, email, &entry)?;
    }
    loaded.indexed = now;
    loaded.existed = true;
    Ok(())
}

/// Publishes a contact event with the record's summary, plus `extra` fields.
///
/// # Errors
/// Permanent if the payload cannot be serialized.
pub fn announce(event: &str, record: &ContactRecord, extra: Value) -> Result<(), Error> {
    let mut payload = if event == PRIVACY_DELETED {
        json!({ "id": record.id, "portal_id": record.portal_id })
    } else {
        record.summary()
    };
    if let (Some(map), Value::Object(more)) = (payload.as_object_mut(), extra) {
        map.extend(more);
    }
    publish(event, &payload)
}
