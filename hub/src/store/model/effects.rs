//! What an invocation wrote through host calls ([`Effects`]): buffered while it runs, committed
//! with its job's end in one transaction only if it succeeded, all or nothing, and only if what
//! it read is still what it saw (optimistic concurrency).

use super::NewJob;

/// Writes an invocation made through host calls; committed with the job's end, all or nothing.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// Record upserts and deletions, in order.
    pub records: Vec<RecordWrite>,
    /// kv writes, in order.
    pub kv: Vec<KvWrite>,
    /// Events published, in order.
    pub events: Vec<Published>,
    /// Jobs to queue.
    pub jobs: Vec<NewJob>,
    /// Records' lookups replaced (`record-set-lookups`), written with the record when the
    /// invocation also writes it, else to the record as stored; a record that does not exist
    /// takes none.
    pub lookups: Vec<LookupsSet>,
    /// What the invocation read, with the version it saw. At commit, if any of these changed
    /// meanwhile (a concurrent invocation wrote it), nothing is applied and the job runs again:
    /// optimistic concurrency, so two deliveries for one call never lose an update.
    pub reads: Vec<ReadSeen>,
    /// Credentials the host keeps for the tenant once the invocation succeeds (generated, or
    /// captured from a provider's answer): sealed into `hub.toml` by the worker, never stored
    /// in the database.
    pub credentials: Vec<(String, secrecy::SecretString)>,
}

/// One record written (`record-put`) or deleted (`record-delete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Kind, e.g. `call`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// The JSON object; `None` deletes.
    pub data: Option<String>,
}

/// A record's lookups, replaced (`record-set-lookups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupsSet {
    /// Kind of the record.
    pub kind: String,
    /// Key of the record.
    pub key: String,
    /// Its lookups from now on (`phone:+14155550100`).
    pub lookups: Vec<String>,
}

/// One event published (`publish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Event name, e.g. `call.analyzed`.
    pub name: String,
    /// JSON payload.
    pub payload: String,
}

/// One kv write of an invocation.
#[derive(Debug, Clone)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// An idempotency marker (`kv-set-marker`): deleted by retention with the finished jobs.
    pub marker: bool,
}

/// A value an invocation read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    /// A record `(kind, key)`.
    Record(String, String),
    /// A kv key.
    Kv(String),
}

/// A value an invocation read, and the version it saw (0: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSeen {
    /// What was read.
    pub read: Read,
    /// Its version then.
    pub version: i64,
}

/// A fresh version for a written value: random and never 0 (0 means absent), so a value that
/// changes — even deleted and written again — never shows a version a reader saw before.
pub(crate) fn new_version() -> i64 {
    (rand::random::<u64>() >> 1) as i64 | 1
}
