//! One HubSpot webhook event (an item of the array HubSpot posts; the host stores each item as
//! its own delivery) and what it asks of a contact. Pure.
//!
//! Fields: `eventId`, `subscriptionId`, `portalId`, `appId`, `occurredAt` (ms),
//! `subscriptionType`, `attemptNumber`, `objectId`, `changeSource`, and by type
//! `propertyName`/`propertyValue` (propertyChange) or `primaryObjectId`/`mergedObjectIds`/
//! `newObjectId` (merge). Apps on HubSpot's newer platform may send generic `object.*` types with
//! `objectTypeId`; `0-1` is the contact object.

use serde::Deserialize;
use serde_json::Value;

/// HubSpot's object type id of contacts.
pub const CONTACT_TYPE_ID: &str = "0-1";

/// A webhook event, leniently parsed (ids may come as numbers or strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookEvent {
    /// The event id (not guaranteed unique by HubSpot).
    pub event_id: Option<Value>,
    /// The app subscription that fired.
    pub subscription_id: Option<Value>,
    /// The portal (account) it happened in.
    pub portal_id: Option<Value>,
    /// When it happened (epoch ms).
    pub occurred_at: Option<Value>,
    /// E.g. `contact.propertyChange`.
    pub subscription_type: String,
    /// The object type, on generic `object.*` events.
    pub object_type_id: Option<Value>,
    /// The object it is about.
    pub object_id: Option<Value>,
    /// The property that changed.
    pub property_name: Option<String>,
    /// Its new value.
    pub property_value: Option<Value>,
    /// Merge: the contact that remains.
    pub primary_object_id: Option<Value>,
    /// Merge: the contacts merged into it.
    pub merged_object_ids: Vec<Value>,
    /// Merge: the id of the result, when HubSpot made a new one.
    pub new_object_id: Option<Value>,
}

/// What an event does to a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `contact.creation`.
    Created,
    /// `contact.propertyChange`.
    PropertyChanged,
    /// `contact.deletion`.
    Deleted,
    /// `contact.restore`.
    Restored,
    /// `contact.merge`.
    Merged,
    /// `contact.privacyDeletion`.
    PrivacyDeleted,
}

/// An id as text: a string or an integer, made of digits only (HubSpot ids are numeric).
pub fn id_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= 30 && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

impl WebhookEvent {
    /// The contact change this event is, if it is one this connector handles.
    pub fn change(&self) -> Option<Change> {
        let (object, action) = self.subscription_type.split_once('.')?;
        let is_contact = match object {
            "contact" => true,
            "object" => self
                .object_type_id
                .as_ref()
                .is_some_and(|t| t.as_str() == Some(CONTACT_TYPE_ID)),
            _ => false,
        };
        if !is_contact {
            return None;
        }
        Some(match action {
            "creation" => Change::Created,
            "propertyChange" => Change::PropertyChanged,
            "deletion" => Change::Deleted,
            "restore" => Change::Restored,
            "merge" => Change::Merged,
            "privacyDeletion" => Change::PrivacyDeleted,
            _ => return None,
        })
    }

    /// When it happened: `occurredAt`, else `fallback_ms`.
    pub fn at_ms(&self, fallback_ms: i64) -> i64 {
        self.occurred_at
            .as_ref()
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
            .unwrap_or(fallback_ms)
    }

    /// The contact it is about.
    pub fn object(&self) -> Option<String> {
        self.object_id.as_ref().and_then(id_text)
    }

    /// The portal, as text.
    pub fn portal(&self) -> Option<String> {
        self.portal_id.as_ref().and_then(id_text)
    }

    /// A merge's survivor and the contacts merged into it.
    pub fn merge_parts(&self) -> Option<(String, Vec<String>)> {
        let survivor = [
            &self.new_object_id,
            &self.primary_object_id,
            &self.object_id,
        ]
        .into_iter()
        .find_map(|v| v.as_ref().and_then(id_text))?;
        let mut losers: Vec<String> = Vec::new();
        let candidates = self
            .merged_object_ids
            .iter()
            .chain(self.primary_object_id.iter())
            .chain(self.object_id.iter());
        for id in candidates.filter_map(id_text) {
            if id != survivor && !losers.contains(&id) {
                losers.push(id);
            }
        }
        Some((survivor, losers))
    }
}

/// Whether a tenant's `portal_id` config (a string, a number or a list of them) names `portal`.
/// With no config every portal matches (the host already routed the item by it).
pub fn portal_matches(config: Option<&Value>, portal: Option<&str>) -> bool {
    let Some(config) = config else {
        return true;
    };
    let Some(portal) = portal else {
        return false;
    };
    let one = |v: &Value| id_text(v).as_deref() == Some(portal);
    match config {
        Value::Array(list) => list.iter().any(one),
        v => one(v),
    }
}

#[cfg(test)]
mod tests;
