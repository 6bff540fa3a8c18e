//! Retention in the database: bounded batches, one kind per write transaction. Delivery payloads are
//! emptied (body to an empty blob, headers to `[]`, `pruned_at` set) but their log rows stay;
//! finished jobs (done or dead) are deleted with their replay history; events are deleted; so are
//! the connectors' idempotency markers (`kv-set-marker`), which guard those jobs; and the
//! status view's hourly counts (`activity`). Deleting a
//! finished job also forgets its idempotency key: past the retention age, a job queued again with
//! the same key runs again. The schedule of batches is [`crate::retention`]'s.

/// What one pruning batch (or a whole pass) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Delivery payloads emptied.
    pub deliveries: usize,
    /// Finished jobs deleted.
    pub jobs: usize,
    /// Events deleted.
    pub events: usize,
    /// Idempotency markers deleted.
    pub markers: usize,
    /// Deleted records' tombstones dropped from the change feed.
    pub tombstones: usize,
    /// Hours of the status view's counts dropped.
    pub hours: usize,
}

impl Pruned {
    /// Whether nothing was pruned.
    pub fn is_empty(&self) -> bool {
        *self == Pruned::default()
    }
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Pruned) {
        self.deliveries += o.deliveries;
        self.jobs += o.jobs;
        self.events += o.events;
        self.markers += o.markers;
        self.tombstones += o.tombstones;
        self.hours += o.hours;
    }
}
