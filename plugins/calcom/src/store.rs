//! Applying an observation through the host: read the `booking` record, merge
//! ([`crate::merge`]), write it with its lookups when it changed, publish what became due. The
//! one path webhooks, actions and the reconcile job share.

use plugin_sdk::{Error, publish, records, tenant};

use crate::booking::{BOOKING, BookingRecord};
use crate::merge::{Merged, Observation, merge};

/// Merges `seen` into its booking's record, stores it (with its attendees' email and phone
/// lookups) and publishes the events it made due.
///
/// # Errors
/// Permanent when the stored record does not parse or the record cannot be written.
pub fn apply(seen: &Observation) -> Result<Merged, Error> {
    if seen.uid.is_empty() {
        return Err(Error::bad_request("a booking without a uid"));
    }
    let stored: Option<BookingRecord> = records::get(BOOKING, &seen.uid)?;
    let merged = merge(stored, seen);
    if merged.changed {
        records::upsert(BOOKING, &merged.record.uid, &merged.record)?;
        records::set_lookups(BOOKING, &merged.record.uid, &merged.record.lookups());
    }
    if !merged.publish.is_empty() {
        let tenant = tenant();
        for event in &merged.publish {
            publish(event, &merged.record.payload(event, &tenant))?;
        }
    }
    Ok(merged)
}
