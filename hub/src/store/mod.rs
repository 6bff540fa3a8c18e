//! The hub's durable state: the webhook log, the job queue with leases, connector records with
//! their lookups, the scoped kv store, published events, schedules' last ticks, replays and
//! retention. Callers see one handle, [`Store`], whose methods speak those nouns (never SQL), and
//! the nouns' types.
//!
//! # Layout
//! - `model`: the nouns and the logic both backends share, apart from any SQL.
//! - `sqlite`: the embedded backend, one file with a writer thread and group commit.
//! - `postgres`: the backend for several hubs on one database.
//! - `handle`: [`Store`], which hands each call to the backend the config names.
//! - `migrate`: a SQLite history copied into PostgreSQL.
//!
//! Both backends pass one contract suite (`contract`), each test run on each.

use std::path::PathBuf;
use std::sync::Arc;

pub mod backup;
mod handle;
pub mod migrate;
mod model;
pub mod postgres;
pub(crate) mod sqlite;

pub use handle::Store;
pub(crate) use model::*;
pub use model::{
    ActivityHour, Analytics, AuditEntry, AuditFilter, AuditRow, CallDay, Change, Changes,
    ChannelKey, ChannelWrite, ConfigVersion, Connection, ConnectionKey, ConnectionRow,
    ConnectionWrite, DeadFilter, DeliveryDetail, DeliveryFilter, DeliveryRow, DeliveryState,
    Disabled, Effects, EmailDay, EventRow, Flow, FlowWrite, HeldChannel, Ingested, Job, JobCount,
    JobDetail, JobEnd, JobFilter, JobReplay, JobRow, JobState, KvWrite, Lease, LookupsSet,
    MessageDay, NewDelivery, NewJob, Pruned, Published, Pushed, Read, ReadSeen, RecordFilter,
    RecordRow, RecordWrite, Replay, Replayed, StoredRequest, Task, TickClaim, TickOutcome,
    VersionPush, schedule_key, since_day, window,
};
pub use sqlite::Sqlite;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (disk full, locked, corrupt...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A job was to be ended under a lease that is no longer the caller's: it expired and
    /// another claim took the job. Nothing was written; the new holder ends it.
    #[error("job {job}: the lease expired and another worker holds it now; nothing written")]
    LeaseLost {
        /// The job.
        job: i64,
    },
    /// PostgreSQL said no (a lost connection, a constraint, no permission...).
    #[error("database error: {}", postgres::message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had (the server is down or unreachable).
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database could not be reached or refused the login, at open.
    #[error("cannot open the database at {target}: {reason}")]
    Connect {
        /// Host, port and database (never the password).
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The database's schema is not one this hub can use (newer than it knows, say).
    #[error("{0}")]
    Schema(String),
    /// A stored value is not what the hub wrote (edited by hand?).
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
    /// The writer thread is gone (the hub is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// Committed, but the disk did not confirm it (`fsync` failed): not acknowledged.
    #[error("cannot sync the database to disk: {0}")]
    Sync(#[source] std::io::Error),
    /// The write transaction this request shared with others could not begin, commit or be
    /// synced: nothing of it was kept. The cause is shared by every request of the batch.
    #[error("the write transaction failed: {0}")]
    Batch(#[source] Arc<StoreError>),
    /// Could not create the data directory.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The header that marks a test webhook (`crate::simulate`): the log shows its delivery as a test.
pub const TEST_HEADER: &str = "x-hub-test";

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod contract;
#[cfg(test)]
mod tests;
