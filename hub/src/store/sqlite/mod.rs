//! The store on SQLite: one file (WAL) and this module the only user of rusqlite. Every write
//! goes through one writer thread that commits whatever requests are waiting in one transaction
//! (group commit: concurrent webhooks share one fsync) and answers each only after its commit;
//! for webhooks, after the sync thread made it durable. Checkpoints run on a third thread; reads
//! use a small pool of read connections. Nothing holds a lock across an await: callers await a
//! oneshot answer.
//!
//! # Layout
//! One file per concern, each with its `impl Sqlite` methods and its SQL (the nouns are the
//! store's `model`):
//! - `deliveries`: ingest with deduplication, the log's reads.
//! - `enqueue`: a job's insert, unless its idempotency key exists.
//! - `queue`: claim with leases, finish (and claim the next), inspection.
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

use super::model::*;
use super::{Result, StoreError};
use crate::id::{ConnectorId, TenantId};

mod analytics;
mod audit;
mod changes;
mod connections;
mod deliveries;
mod effects;
mod endpoints;
mod enqueue;
mod events;
mod kv;
mod prune;
mod queue;
mod records;
mod replay;
mod rollup;
mod schedule;
pub(crate) mod schema;
mod versions;
mod writer;

use writer::{Command, Reply};

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

/// The SQL conversions of a state enum: stored as its text, read back through its `FromStr`.
macro_rules! stored_as_text {
    ($state:ident) => {
        impl ToSql for $state {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $state {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    };
}

stored_as_text!(DeliveryState);
stored_as_text!(JobState);

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
