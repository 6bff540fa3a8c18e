//! The hub's durable state: the webhook log, the job queue with leases, connector records with
//! their lookups, the scoped kv store, published events, schedules' last ticks, replays and
//! retention. Callers see one handle, [`Store`], whose methods speak those nouns (never SQL), and
//! the nouns' types; a second backend (PostgreSQL) fits behind the same methods.
//!
//! Today's backend is one SQLite file (WAL), and this module is the only user of rusqlite. Every
//! write goes through one writer thread that commits whatever requests are waiting in one
//! transaction (group commit: concurrent webhooks share one fsync) and answers each only after
//! its commit; for webhooks, after the sync thread made it durable. Checkpoints run on a third
//! thread; reads use a small pool of read connections. Nothing holds a lock across an await:
//! callers await a oneshot answer.
//!
//! # Layout
//! One file per concern, each with its nouns, its `impl Store` methods and its SQL:
//! - `deliveries`: the webhook log: ingest with deduplication, the log's reads.
//! - `queue`: jobs: enqueue, claim with leases, finish (and claim the next), inspection.
//! - `effects`: what an invocation wrote, committed with its job's end, all or nothing.
//! - `records`, `kv`, `events`: the three things connectors write, and their reads.
//! - `schedule`: cron schedules' last ticks and the once-per-tick claim.
//! - `replay`: manual replay and job history. `prune`: retention batches.
//! - `analytics`: a tenant's calls, emails and messages per day; `rollup` keeps them, per day,
//!   as records are written.
//! - `writer`: the writer thread, its commands and its group commit; `schema`: tables and
//!   migrations, in one place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use tokio::sync::{Notify, mpsc, oneshot};

mod analytics;
mod changes;
mod deliveries;
mod effects;
mod endpoints;
mod events;
mod handle;
mod kv;
pub mod migrate;
pub mod postgres;
mod prune;
mod queue;
mod records;
mod replay;
mod rollup;
mod schedule;
mod schema;
mod writer;

pub use analytics::{ActivityHour, Analytics, CallDay, EmailDay, MessageDay, since_day, window};
pub use changes::{Change, Changes};
pub use deliveries::{
    DeliveryFilter, DeliveryRow, DeliveryState, Ingested, NewDelivery, StoredRequest,
};
pub use effects::{Effects, KvWrite, LookupsSet, Published, Read, ReadSeen, RecordWrite};
pub use endpoints::Disabled;
pub use events::EventRow;
pub use prune::Pruned;
pub use queue::{Job, JobCount, JobEnd, JobRow, JobState, Lease, NewJob, Task};
pub use records::{RecordFilter, RecordRow};
pub use replay::{DeadFilter, DeliveryDetail, JobDetail, JobFilter, JobReplay, Replay, Replayed};
pub use schedule::{TickClaim, TickOutcome, schedule_key};

pub use handle::Store;
use writer::{Command, Reply};

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
    Sync(std::io::Error),
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

/// The SQLite store: one file, one writer thread. Clones are cheap and share the writer and the
/// read pool.
#[derive(Clone)]
pub struct Sqlite {
    writer: mpsc::Sender<Command>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<PathBuf>,
    /// Signalled after a commit that queued work.
    pub work: Arc<Notify>,
    /// Signalled after a commit that may have changed records (the change feed's followers).
    pub changed: Arc<Notify>,
}

impl Sqlite {
    /// Opens (creating if needed) `hub.db` in `data_dir` and starts the writer thread.
    ///
    /// # Errors
    /// When the directory cannot be created or the database cannot be opened.
    pub fn open(data_dir: &Path) -> Result<Sqlite> {
        let path = data_dir.join("hub.db");
        // Made private before SQLite opens it: its WAL and shared-memory files take its mode.
        crate::files::private_dir(data_dir)
            .and_then(|()| crate::files::private_file(&path))
            .map_err(|source| StoreError::DataDir {
                path: data_dir.to_owned(),
                source,
            })?;
        let conn = schema::open_conn(&path)?;
        let at: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if at > schema::VERSION {
            return Err(StoreError::Schema(format!(
                "{} is at schema version {at}, newer than this hub knows (up to {}): it was \
                 written by a newer hub; run that one, or restore a backup made for this one",
                path.display(),
                schema::VERSION
            )));
        }
        schema::create(&conn)?;
        conn.pragma_update(None, "user_version", schema::VERSION)?;
        // Checkpoints run on their own thread and connection, so the writer never stops to copy
        // the WAL back into the database while webhooks wait for their commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = schema::open_conn(&path)?;
        let (tx, rx) = mpsc::channel(8192);
        let (poke, poked) = std::sync::mpsc::sync_channel(1);
        let work = Arc::new(Notify::new());
        let notify = work.clone();
        let changed = Arc::new(Notify::new());
        let notify_changed = changed.clone();
        let spawn_error = |e| StoreError::DataDir {
            path: path.clone(),
            source: e,
        };
        std::thread::Builder::new()
            .name("hub-db-checkpoint".into())
            .spawn(move || writer::checkpoint_loop(checkpoints, poked))
            .map_err(spawn_error)?;
        std::thread::Builder::new()
            .name("hub-db-writer".into())
            .spawn(move || writer::writer_loop(conn, rx, notify, notify_changed, poke))
            .map_err(spawn_error)?;
        Ok(Sqlite {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path),
            work,
            changed,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the database is at.
    ///
    /// # Errors
    /// On database failure.
    pub async fn schema_version(&self) -> Result<i64> {
        self.read_async(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    fn call_blocking<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .blocking_send(make(tx))
            .map_err(|_| StoreError::WriterGone)?;
        rx.blocking_recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on a pooled read connection (blocking).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => schema::open_conn(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 16 {
            pool.push(conn);
        }
        Ok(out?)
    }

    /// Runs a read on a blocking thread.
    async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read(f))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }
}

/// `query_row` on a cached statement: the worker's and host calls' reads run thousands of times
/// a second, each parse would cost more than the read.
pub(crate) fn cached_row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// `Display`, `FromStr` (naming every state when the text is none of them) and the SQL
/// conversions of a state enum, from its `ALL` and `as_str`: states are stored as their text.
macro_rules! state_text {
    ($state:ident, $what:literal) => {
        impl std::fmt::Display for $state {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $state {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                $state::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| {
                        let all: Vec<&str> = $state::ALL.iter().map(|s| s.as_str()).collect();
                        format!("no {} `{s}` (states: {})", $what, all.join(", "))
                    })
            }
        }

        impl rusqlite::types::ToSql for $state {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $state {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}
use crate::id::{ConnectorId, TenantId};
use state_text;

// Ids are stored as their text; a stored id was checked when it was written.
impl ToSql for TenantId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for TenantId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        if text == crate::id::ANY_TENANT {
            return Ok(TenantId::any());
        }
        TenantId::try_from(text).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for ConnectorId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ConnectorId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        ConnectorId::try_from(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod contract;
#[cfg(test)]
mod tests;
