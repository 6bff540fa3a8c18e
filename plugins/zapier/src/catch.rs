//! The "Webhooks by Zapier" catch routes (`catch`, token in `x-hub-token`; `catch-path`, token
//! as the last path segment): each item becomes a `contact`, `deal` or `task` record and a
//! `zapier.contact` / `zapier.deal` / `zapier.task` event carrying the record. The host checked
//! the token before this runs.

use plugin_sdk::{Delivery, Error, Outcome, publish, records, warn};
use serde_json::Value;

use crate::body::{Fields, items};
use crate::item::{Kind, detect, key, lookups, merge};

/// Route with the token in the `x-hub-token` header.
pub const CATCH: &str = "catch";
/// Route with the token as the last path segment.
pub const CATCH_PATH: &str = "catch-path";

/// What an item is and where it is stored.
///
/// # Errors
/// The reason the item cannot be stored.
pub fn classify(fields: &Fields) -> Result<(Kind, String), String> {
    let kind = detect(fields)?;
    Ok((kind, key(kind, fields)?))
}

/// Stores one item and publishes its event; returns the stored record.
///
/// # Errors
/// Permanent if the stored record cannot be read or the new one written.
pub fn save(kind: Kind, key: &str, fields: &Fields, received_at_ms: i64) -> Result<Value, Error> {
    let stored: Option<Value> = records::get(kind.name(), key)?;
    let record = merge(kind, key, stored.as_ref(), fields, received_at_ms);
    records::upsert(kind.name(), key, &record)?;
    let found_by = lookups(kind, &record);
    if !found_by.is_empty() {
        records::set_lookups(kind.name(), key, &found_by);
    }
    publish(kind.event(), &record)?;
    Ok(record)
}

/// Handles a catch: every item it can classify is stored; the delivery is ignored (with the
/// reasons) only when none could be.
///
/// # Errors
/// Bad request for a body that is neither JSON nor a form; permanent on storage failures.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let list =
        items(delivery.header("content-type"), &delivery.body).map_err(Error::bad_request)?;
    let received = i64::try_from(delivery.received_at_ms).unwrap_or(i64::MAX);
    let (mut stored, mut reasons) = (0usize, Vec::new());
    for (i, fields) in list.iter().enumerate() {
        match classify(fields) {
            Ok((kind, key)) => {
                save(kind, &key, fields, received)?;
                stored += 1;
            }
            Err(reason) => {
                warn!("catch {}: item {i} not stored: {reason}", delivery.id);
                reasons.push(reason);
            }
        }
    }
    if stored == 0 {
        return Ok(Outcome::ignored(reasons.join("; ")));
    }
    Ok(Outcome::handled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification() {
        let f = json!({"email": "A@b.co"}).as_object().cloned().unwrap();
        assert_eq!(classify(&f), Ok((Kind::Contact, "a@b.co".to_string())));
        let d = json!({"type": "deal"}).as_object().cloned().unwrap();
        assert!(classify(&d).unwrap_err().contains("needs an `id`"));
    }
}
