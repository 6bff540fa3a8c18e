//! Handling one stored, verified HubSpot webhook event (the host split HubSpot's array and
//! routed each item to the tenant whose `portal_id` it names).
//!
//! - `contact.creation`: fetches the contact (the event carries no data) into its record.
//! - `contact.propertyChange`: sets the property unless the record holds a newer value.
//! - `contact.deletion` / `contact.restore`: tombstone / revive (restore fetches the data when
//!   the record has none).
//! - `contact.merge`: the merged contacts point at the survivor, which is fetched.
//! - `contact.privacyDeletion`: erases the record's properties and its email index entry.
//! - anything else (companies, deals, associations): ignored.
//!
//! A fetch that is needed and fails retryably fails the delivery, so the host retries it.

use plugin_sdk::{Delivery, Error, Outcome, config, warn};
use serde_json::{Value, json};

use crate::api;
use crate::apply::apply_fetched;
use crate::contact::value_text;
use crate::event::{Change, WebhookEvent, portal_matches};
use crate::store::{self, Loaded};

/// The tenant-less route every portal's app webhooks come to (`/hooks/_/hubspot/webhook`).
pub const WEBHOOK: &str = "webhook";
/// A per-tenant route for a portal's own private app (`/hooks/{tenant}/hubspot/private`),
/// verified with that tenant's `client_secret`.
pub const PRIVATE: &str = "private";
/// Config key: the tenant's portal id (or a list of them).
pub const PORTAL_ID: &str = "portal_id";
/// Config key: contact properties to keep besides email, firstname, lastname and phone.
pub const PROPERTIES: &str = "properties";
/// Time limit of a fetch while handling a webhook.
const FETCH_TIMEOUT_MS: u32 = 4_000;

/// The contact properties this tenant keeps.
///
/// # Errors
/// Permanent when the `properties` config is not a list of strings.
pub fn wanted_properties() -> Result<Vec<String>, Error> {
    let extra: Option<Vec<String>> = config(PROPERTIES)?;
    Ok(api::properties(&extra.unwrap_or_default()))
}

/// Fetches a contact into its record; `required` makes a failed fetch fail the delivery.
fn fetch_into(loaded: &mut Loaded, props: &[String], required: bool) -> Result<bool, Error> {
    let id = loaded.record.id.clone();
    match api::get_contact(&id, props, FETCH_TIMEOUT_MS) {
        Ok(Some(contact)) if contact.id.is_empty() || contact.id == id => {
            apply_fetched(loaded, &contact);
            Ok(true)
        }
        Ok(Some(other)) => {
            warn!(
                "contact {id}: HubSpot answered with contact {}; not applied",
                other.id
            );
            Ok(false)
        }
        Ok(None) => {
            warn!("contact {id}: HubSpot has no such live contact");
            Ok(false)
        }
        Err(e) if !required => {
            warn!(
                "contact {id}: fetch failed, keeping the event's data: {}",
                api::describe(&e)
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Handles one event.
///
/// # Errors
/// Bad request for an item that is not a HubSpot event; retryable when a needed fetch failed
/// for a passing reason; permanent for misconfiguration or unreadable records.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let ev: WebhookEvent = delivery.json()?;
    let Some(change) = ev.change() else {
        return Ok(Outcome::ignored(format!(
            "`{}` is not a contact event this connector handles",
            ev.subscription_type
        )));
    };
    let portals: Option<Value> = config(PORTAL_ID)?;
    if !portal_matches(portals.as_ref(), ev.portal().as_deref()) {
        return Ok(Outcome::ignored(format!(
            "portal {} is not this tenant's",
            ev.portal().unwrap_or_else(|| "(none)".into())
        )));
    }
    let at = ev.at_ms(i64::try_from(delivery.received_at_ms).unwrap_or(i64::MAX));
    let props = wanted_properties()?;
    if change == Change::Merged {
        return merged(&ev, at, &props);
    }
    let id = ev
        .object()
        .ok_or_else(|| Error::bad_request("the event has no usable objectId"))?;
    let mut loaded = store::load(&id)?;
    if let Some(p) = ev.portal() {
        loaded.record.portal_id = Some(p);
    }
    match change {
        Change::Created => created(loaded, at, &props),
        Change::PropertyChanged => property_changed(&ev, loaded, at),
        Change::Deleted => deleted(loaded, at),
        Change::Restored => restored(loaded, at, &props),
        Change::PrivacyDeleted => privacy_deleted(loaded, at),
        Change::Merged => Ok(Outcome::handled()),
    }
}

fn erased() -> Result<Outcome, Error> {
    Ok(Outcome::ignored(
        "the contact was erased on a privacy request",
    ))
}

fn created(mut loaded: Loaded, at: i64, props: &[String]) -> Result<Outcome, Error> {
    if loaded.record.privacy_deleted {
        return erased();
    }
    fetch_into(&mut loaded, props, true)?;
    loaded.record.created_at_ms.get_or_insert(at);
    store::save(&mut loaded)?;
    if !loaded.record.deleted {
        store::announce(store::CREATED, &loaded.record, json!({}))?;
    }
    Ok(Outcome::handled())
}

fn property_changed(ev: &WebhookEvent, mut loaded: Loaded, at: i64) -> Result<Outcome, Error> {
    let name = ev
        .property_name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::bad_request("a propertyChange without propertyName"))?;
    if loaded.record.privacy_deleted {
        return erased();
    }
    if !loaded.record.accepts(&name, at) {
        return Ok(Outcome::ignored(format!(
            "`{name}` changed at {at}, before the stored value (out of order)"
        )));
    }
    let value = ev.property_value.as_ref().and_then(value_text);
    let changed = loaded.record.set_property(&name, value.clone(), at);
    store::save(&mut loaded)?;
    if changed && !loaded.record.deleted {
        store::announce(
            store::UPDATED,
            &loaded.record,
            json!({ "property": name, "value": value }),
        )?;
    }
    Ok(Outcome::handled())
}

fn deleted(mut loaded: Loaded, at: i64) -> Result<Outcome, Error> {
    if !loaded.record.mark_deleted(at) {
        return Ok(Outcome::ignored(
            "already deleted, or restored after this deletion",
        ));
    }
    store::save(&mut loaded)?;
    store::announce(store::DELETED, &loaded.record, json!({}))?;
    Ok(Outcome::handled())
}

fn restored(mut loaded: Loaded, at: i64, props: &[String]) -> Result<Outcome, Error> {
    if loaded.record.privacy_deleted {
        return erased();
    }
    let revived = loaded.record.mark_restored(at);
    if !revived && loaded.record.deleted {
        return Ok(Outcome::ignored("deleted again after this restore"));
    }
    let required = loaded.record.properties.is_empty();
    fetch_into(&mut loaded, props, required)?;
    let announce = revived || !loaded.existed;
    store::save(&mut loaded)?;
    if announce {
        store::announce(store::RESTORED, &loaded.record, json!({}))?;
    }
    Ok(Outcome::handled())
}

fn privacy_deleted(mut loaded: Loaded, at: i64) -> Result<Outcome, Error> {
    if !loaded.record.privacy_delete(at) {
        return erased();
    }
    store::save(&mut loaded)?;
    store::announce(store::PRIVACY_DELETED, &loaded.record, json!({}))?;
    Ok(Outcome::handled())
}

fn merged(ev: &WebhookEvent, at: i64, props: &[String]) -> Result<Outcome, Error> {
    let (survivor, losers) = ev
        .merge_parts()
        .ok_or_else(|| Error::bad_request("a merge without contact ids"))?;
    let mut kept = store::load(&survivor)?;
    if kept.record.privacy_deleted {
        return erased();
    }
    fetch_into(&mut kept, props, true)?;
    for id in &losers {
        let mut gone = store::load(id)?;
        if let Some(p) = ev.portal() {
            gone.record.portal_id = Some(p);
        }
        if gone.record.mark_merged_into(&survivor, at) || !gone.existed {
            store::save(&mut gone)?;
        }
    }
    // Saved last: its index entry is re-checked against what the losers' saves left.
    if let Some(p) = ev.portal() {
        kept.record.portal_id = Some(p);
    }
    kept.record.add_merged(&losers);
    store::save(&mut kept)?;
    store::announce(store::MERGED, &kept.record, json!({ "merged_ids": losers }))?;
    Ok(Outcome::handled())
}
