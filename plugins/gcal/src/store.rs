//! Applying what Google says of an event through the host: read the held `event` record, keep
//! the newer version, write it with its lookups when it changed, keep the calendar's index,
//! and publish once. The one path the sync, the actions and the re-list's diff share.
//!
//! - A version already held (same etag and `updated`) changes nothing and publishes nothing,
//!   so a re-sync of the same data is silent.
//! - An older version than the one held (by `updated`) is ignored: an action's answer and a
//!   sync page can arrive in either order.
//! - `calendar.event.changed` for a new or changed event (`change`: `created` or `updated`);
//!   `calendar.event.cancelled` when a held event that was not cancelled is, once. A
//!   cancellation of an event never held is not kept: there is nothing to announce.

use plugin_sdk::{Error, publish, records, tenant};

use crate::event::{CANCELLED, CHANGED, EVENT, EventRecord, key};
use crate::index::Index;
use crate::time::now_ms;

/// What applying did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Held as it was.
    Unchanged,
    /// Older than what is held: ignored.
    Stale,
    /// New: stored, `calendar.event.changed` published.
    Created,
    /// Changed: stored, `calendar.event.changed` published.
    Updated,
    /// Cancelled: stored, `calendar.event.cancelled` published.
    Cancelled,
    /// A cancellation of something not held, or already cancelled: nothing to announce.
    Ignored,
}

/// One calendar's events as an invocation writes them.
#[derive(Debug)]
pub struct Store {
    calendar: String,
    index: Index,
    mark: Option<i64>,
    tenant: Option<String>,
}

impl Store {
    /// The store of `calendar`; `mark` is the id of the full listing run applying, if one is.
    pub fn new(calendar: &str, mark: Option<i64>) -> Store {
        Store {
            calendar: calendar.to_string(),
            index: Index::new(calendar),
            mark,
            tenant: None,
        }
    }

    /// The calendar.
    pub fn calendar(&self) -> &str {
        &self.calendar
    }

    /// The index (for the re-list's diff).
    pub fn index(&mut self) -> &mut Index {
        &mut self.index
    }

    fn tenant(&mut self) -> String {
        self.tenant.get_or_insert_with(tenant).clone()
    }

    fn announce(&mut self, event: &str, change: &str, record: &EventRecord) -> Result<(), Error> {
        let tenant = self.tenant();
        publish(event, &record.payload(event, change, &tenant))
    }

    fn write(&mut self, record: &EventRecord) -> Result<(), Error> {
        let key = record.key();
        records::upsert(EVENT, &key, record)?;
        records::set_lookups(EVENT, &key, &record.lookups());
        if record.is_cancelled() {
            self.index.remove(&record.id);
        } else {
            let mark = self.mark.unwrap_or_else(now_ms);
            self.index.put(&record.id, record.end_ms(), mark);
        }
        Ok(())
    }

    /// The held record of an event of this calendar.
    ///
    /// # Errors
    /// Permanent when it does not parse.
    pub fn held(&self, id: &str) -> Result<Option<EventRecord>, Error> {
        records::get(EVENT, &key(&self.calendar, id))
    }

    /// Applies what Google says of an event (the record read from it).
    ///
    /// # Errors
    /// Permanent when the held record does not parse or a write fails.
    pub fn apply(&mut self, seen: EventRecord) -> Result<Applied, Error> {
        let held = self.held(&seen.id)?;
        if let (Some(h), Some(s)) = (
            held.as_ref().and_then(EventRecord::updated_ms),
            seen.updated_ms(),
        ) && s < h
        {
            if let Some(h) = &held
                && !h.is_cancelled()
                && !seen.is_cancelled()
            {
                // Listed, so still there: the run's mark says so.
                let mark = self.mark.unwrap_or_else(now_ms);
                self.index.put(&h.id, h.end_ms(), mark);
            }
            return Ok(Applied::Stale);
        }
        if seen.is_cancelled() {
            return match held {
                Some(h) if !h.is_cancelled() => {
                    let out = h.cancelled_by(&seen);
                    self.write(&out)?;
                    self.announce(CANCELLED, "cancelled", &out)?;
                    Ok(Applied::Cancelled)
                }
                Some(h) => {
                    self.index.remove(&h.id);
                    if !h.same_version(&h.cancelled_by(&seen)) {
                        records::upsert(EVENT, &h.key(), &h.cancelled_by(&seen))?;
                    }
                    Ok(Applied::Ignored)
                }
                None => Ok(Applied::Ignored),
            };
        }
        let mut seen = seen;
        let mark = self.mark.unwrap_or_else(now_ms);
        if let Some(h) = &held {
            // What only the connector knew (the phone it booked with) stays.
            if seen.phone.is_none() {
                seen.phone.clone_from(&h.phone);
            }
            if *h == seen {
                self.index.put(&seen.id, seen.end_ms(), mark);
                return Ok(Applied::Unchanged);
            }
            if h.same_version(&seen) {
                // The same version read differently (a zone learnt since): kept, not news.
                self.write(&seen)?;
                return Ok(Applied::Unchanged);
            }
        }
        self.write(&seen)?;
        let (applied, change) = match &held {
            Some(h) if !h.is_cancelled() => (Applied::Updated, "updated"),
            _ => (Applied::Created, "created"),
        };
        self.announce(CHANGED, change, &seen)?;
        Ok(applied)
    }

    /// Cancels a held event Google no longer lists or has deleted (the re-list's diff, the
    /// cancel action), publishing `calendar.event.cancelled` once.
    ///
    /// # Errors
    /// As [`Store::apply`].
    pub fn cancel(&mut self, id: &str, reason: Option<&str>) -> Result<Applied, Error> {
        match self.held(id)? {
            Some(h) if !h.is_cancelled() => {
                let seen = EventRecord {
                    id: id.to_string(),
                    calendar_id: self.calendar.clone(),
                    cancellation_reason: reason.map(str::to_string),
                    ..EventRecord::default()
                };
                let out = h.cancelled_by(&seen);
                self.write(&out)?;
                self.announce(CANCELLED, "cancelled", &out)?;
                Ok(Applied::Cancelled)
            }
            _ => {
                self.index.remove(id);
                Ok(Applied::Ignored)
            }
        }
    }

    /// Writes the index buckets this invocation changed.
    pub fn flush(&mut self) {
        self.index.flush();
    }
}
