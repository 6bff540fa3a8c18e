//! The change feed: a tenant's records in the order they changed. Every record write takes the
//! next change number (`seq`) in its own transaction (`records::write`); a deletion leaves a
//! tombstone with its number. A record changed several times since a cursor is listed once, at
//! its latest change. Retention drops old tombstones and moves the feed's horizon: a cursor from
//! before it may have missed a deletion, and is told so ([`Changes::expired`]).

use serde::Serialize;

/// One changed record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// Its change number: the cursor after it.
    pub seq: i64,
    /// Kind, e.g. `call`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// Deleted (a tombstone: no data).
    pub deleted: bool,
    /// The record as it is now; `None` for a deletion.
    pub data: Option<serde_json::Value>,
    /// Its version (changes with every write); `None` for a deletion.
    pub version: Option<i64>,
    /// Its lookups.
    pub lookups: Vec<String>,
    /// When it changed (ms).
    pub changed_at_ms: i64,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The changes after the cursor, oldest first.
    pub changes: Vec<Change>,
    /// The cursor is older than the feed's horizon: deletions it has not seen were dropped
    /// by retention, so the app must read the records again (and follow from `latest`).
    pub expired: bool,
    /// The newest change number of any tenant so far: where a fresh reader starts following.
    pub latest: i64,
}
