//! Reading and writing `contact` records and their lookups through the host, and publishing
//! the `hubspot.contact.*` events.
//!
//! A live contact is found by its email and phone numbers (`ContactRecord::lookups`), from this
//! connector and the tenant's others; a deleted, merged or erased one by nothing.

use plugin_sdk::{Error, publish, records};
use serde_json::{Value, json};

use crate::contact::ContactRecord;

/// Record kind of a contact (keyed by HubSpot object id).
pub const CONTACT: &str = "contact";

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

/// A contact being changed.
pub struct Loaded {
    /// The record (new and empty when none was stored).
    pub record: ContactRecord,
    /// Whether it was stored before.
    pub existed: bool,
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
    Ok(Loaded { record, existed })
}

/// Stores the record with its lookups.
///
/// # Errors
/// Permanent if the record cannot be serialized.
pub fn save(loaded: &mut Loaded) -> Result<(), Error> {
    let record = &mut loaded.record;
    record.refresh();
    records::upsert(CONTACT, &record.id, &*record)?;
    records::set_lookups(CONTACT, &record.id, &record.lookups());
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
