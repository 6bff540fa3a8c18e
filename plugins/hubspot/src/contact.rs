//! The `contact` record (keyed by HubSpot object id) and the rules that keep it right when
//! events arrive late, twice or out of order. Pure.
//!
//! - Every property remembers when its value was true (`property_times`, epoch ms: the event's
//!   `occurredAt`, or a fetched object's `updatedAt`). A value older than the stored one is
//!   refused, so an old `propertyChange` never overwrites a newer value; the same time again
//!   applies (a duplicate changes nothing).
//! - Deletion, restore and merge-away change `deleted` only when newer than its last change
//!   (`state_at_ms`). A fetched live object newer than that revives a deleted record.
//! - A privacy deletion (GDPR) erases every property and refuses all later data for good.

use std::collections::BTreeMap;

use plugin_sdk::lookup;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A HubSpot contact as the hub keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactRecord {
    /// The HubSpot object id (the record key).
    pub id: String,
    /// Always `hubspot` (the `contact` kind is shared with other connectors).
    pub source: String,
    /// The portal (HubSpot account) it lives in.
    pub portal_id: Option<String>,
    /// Lower-cased `email` property.
    pub email: Option<String>,
    /// `firstname` property.
    pub firstname: Option<String>,
    /// `lastname` property.
    pub lastname: Option<String>,
    /// `phone` property.
    pub phone: Option<String>,
    /// Every property known, as HubSpot sends them (strings; `None` when cleared).
    pub properties: BTreeMap<String, Option<String>>,
    /// When each property's value was current (epoch ms).
    pub property_times: BTreeMap<String, i64>,
    /// When the contact was created (epoch ms), if known.
    pub created_at_ms: Option<i64>,
    /// The newest change applied (epoch ms).
    pub updated_at_ms: i64,
    /// Deleted, merged away or privacy-deleted.
    pub deleted: bool,
    /// When `deleted` last changed (epoch ms).
    pub state_at_ms: i64,
    /// The contact this one was merged into.
    pub merged_into: Option<String>,
    /// Contacts merged into this one.
    pub merged_ids: Vec<String>,
    /// Erased on a privacy (GDPR) request: holds no personal data and takes none.
    pub privacy_deleted: bool,
}

/// A property value from JSON: strings as they are, numbers and booleans printed, null and
/// structures as no value.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl ContactRecord {
    /// An empty record for an id.
    pub fn new(id: &str) -> Self {
        ContactRecord {
            id: id.into(),
            source: "hubspot".into(),
            ..Default::default()
        }
    }

    /// Whether a value of `name` as of `at_ms` would be taken: not privacy-deleted, and not
    /// older than the stored value.
    pub fn accepts(&self, name: &str, at_ms: i64) -> bool {
        !self.privacy_deleted && self.property_times.get(name).is_none_or(|t| at_ms >= *t)
    }

    /// Sets one property as of `at_ms`; false when refused (see [`Self::accepts`]) or when the
    /// value is unchanged (its time still moves on).
    pub fn set_property(&mut self, name: &str, value: Option<String>, at_ms: i64) -> bool {
        if !self.accepts(name, at_ms) {
            return false;
        }
        self.property_times.insert(name.to_string(), at_ms);
        self.updated_at_ms = self.updated_at_ms.max(at_ms);
        let changed = self.properties.get(name) != Some(&value);
        self.properties.insert(name.to_string(), value);
        self.refresh();
        changed
    }

    /// Applies a live object's properties as of `at_ms` (its `updatedAt`); a deleted record
    /// older than that comes back. Returns whether anything changed.
    pub fn apply_snapshot(&mut self, properties: &Map<String, Value>, at_ms: i64) -> bool {
        if self.privacy_deleted {
            return false;
        }
        let mut changed = false;
        for (name, value) in properties {
            changed |= self.set_property(name, value_text(value), at_ms);
        }
        if self.deleted && self.merged_into.is_none() && at_ms > self.state_at_ms {
            self.deleted = false;
            self.state_at_ms = at_ms;
            changed = true;
        }
        changed
    }

    fn set_state(&mut self, deleted: bool, at_ms: i64) -> bool {
        if at_ms < self.state_at_ms || self.deleted == deleted {
            return false;
        }
        self.deleted = deleted;
        self.state_at_ms = at_ms;
        self.updated_at_ms = self.updated_at_ms.max(at_ms);
        true
    }

    /// A deletion at `at_ms`; false when stale or already deleted.
    pub fn mark_deleted(&mut self, at_ms: i64) -> bool {
        self.set_state(true, at_ms)
    }

    /// A restore at `at_ms`; false when stale, not deleted, or privacy-deleted.
    pub fn mark_restored(&mut self, at_ms: i64) -> bool {
        if self.privacy_deleted || !self.set_state(false, at_ms) {
            return false;
        }
        self.merged_into = None;
        true
    }

    /// Merged into `survivor` at `at_ms`; false when stale.
    pub fn mark_merged_into(&mut self, survivor: &str, at_ms: i64) -> bool {
        if at_ms < self.state_at_ms || self.merged_into.as_deref() == Some(survivor) {
            return false;
        }
        self.merged_into = Some(survivor.to_string());
        self.deleted = true;
        self.state_at_ms = at_ms;
        self.updated_at_ms = self.updated_at_ms.max(at_ms);
        true
    }

    /// Notes contacts merged into this one.
    pub fn add_merged(&mut self, ids: &[String]) {
        for id in ids {
            if *id != self.id && !self.merged_ids.contains(id) {
                self.merged_ids.push(id.clone());
            }
        }
    }

    /// Erases every property for a privacy deletion at `at_ms`; false if already erased.
    pub fn privacy_delete(&mut self, at_ms: i64) -> bool {
        if self.privacy_deleted {
            return false;
        }
        self.properties.clear();
        self.property_times.clear();
        self.privacy_deleted = true;
        self.deleted = true;
        self.state_at_ms = self.state_at_ms.max(at_ms);
        self.updated_at_ms = self.updated_at_ms.max(at_ms);
        self.refresh();
        true
    }

    fn prop(&self, name: &str) -> Option<String> {
        self.properties
            .get(name)
            .cloned()
            .flatten()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Recomputes the top-level fields from the properties.
    pub fn refresh(&mut self) {
        self.email = self.prop("email").map(|e| e.to_lowercase());
        self.firstname = self.prop("firstname");
        self.lastname = self.prop("lastname");
        self.phone = self.prop("phone");
    }

    /// The lookups the tenant's connectors find the contact by (`email:`, and `phone:` for
    /// `phone` and `mobilephone` in E.164, or national for the hub to complete with the
    /// tenant's country code): none once deleted, merged away or erased.
    pub fn lookups(&self) -> Vec<Option<String>> {
        if self.deleted {
            return Vec::new();
        }
        vec![
            self.email.as_deref().and_then(lookup::email),
            self.phone.as_deref().and_then(lookup::phone),
            self.prop("mobilephone").as_deref().and_then(lookup::phone),
        ]
    }

    /// The payload of the `hubspot.contact.*` events.
    pub fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "portal_id": self.portal_id,
            "email": self.email,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "phone": self.phone,
            "properties": self.properties,
            "deleted": self.deleted,
            "merged_into": self.merged_into,
            "updated_at_ms": self.updated_at_ms,
        })
    }
}

#[cfg(test)]
mod tests;
