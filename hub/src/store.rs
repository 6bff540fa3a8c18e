//! The hub's durable state in one SQLite file (WAL): the webhook log (`deliveries`), the job
//! queue with leases (`jobs`), connector `records`, the scoped `kv` store and published `events`.
//!
//! The only user of rusqlite. Every write goes through one writer thread that commits whatever
//! requests are waiting in one transaction (group commit: concurrent webhooks share one fsync),
//! and answers each request only after its commit — for webhooks, after the sync thread has made
//! it durable, while the writer goes on with the next batch. Checkpoints run on a third thread. Reads use a small pool of read connections.
//! Nothing here holds a lock across an await: callers await a oneshot answer.
//!
//! Submodules hold the SQL of narrower concerns: `schedule` (cron schedules' last ticks and
//! the tick claim), `replay` (manual replay, job inspection), `prune` (retention batches).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};

mod prune;
mod replay;
mod schedule;

pub use prune::Pruned;
pub use replay::{DeadFilter, DeliveryDetail, JobDetail, JobFilter, JobReplay, Replay, Replayed};
pub use schedule::{TickClaim, TickOutcome, schedule_key};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (disk full, locked, corrupt...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread is gone (the hub is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// Committed, but the disk did not confirm it (`fsync` failed): not acknowledged.
    #[error("cannot sync the database to disk: {0}")]
    Sync(std::io::Error),
    /// Could not create the data directory.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A verified webhook, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Tenant id.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// Route name ("" for the bare URL).
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// The provider's identity for this delivery; a second delivery with the same identity for
    /// the same tenant and connector is a duplicate.
    pub identity: String,
    /// The provider's event type, when the route says where to find it.
    pub event: Option<String>,
    /// The URL the provider called.
    pub url: String,
    /// Headers, secrets removed.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at_ms: i64,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored for the first time, and queued for its connector.
    Stored(i64),
    /// Already stored under this id; nothing changed.
    Duplicate(i64),
}

impl Ingested {
    /// The delivery id either way.
    pub fn id(self) -> i64 {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id,
        }
    }
}

/// What a job asks a connector to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Handle a stored delivery.
    Delivery {
        /// The delivery id.
        delivery_id: i64,
    },
    /// Run a connector job.
    Job {
        /// Job name.
        name: String,
        /// JSON input.
        input: String,
    },
    /// Run a connector action.
    Action {
        /// Action name.
        name: String,
        /// JSON input.
        input: String,
    },
    /// Run a tenant route (see `routing`): evaluate it against the event, then run its action.
    Route {
        /// Route name.
        route: String,
        /// The triggering event's JSON payload.
        event: String,
    },
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Tenant id.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// What to do.
    pub task: Task,
    /// Earliest start.
    pub run_at_ms: i64,
    /// A job with the same key is queued once.
    pub idempotency_key: Option<String>,
}

/// A claimed job: the caller holds its lease until `finish`.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: i64,
    /// Tenant id.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// What to do.
    pub task: Task,
    /// Attempts so far, including this one.
    pub attempts: i64,
    /// The idempotency key (for actions: handed to the connector).
    pub idempotency_key: String,
    /// When the job was first queued (ms).
    pub created_at_ms: i64,
}

/// Writes an invocation made through host calls; committed with the job's end, all or nothing.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// `(kind, key, json)` record upserts; `None` deletes.
    pub records: Vec<(String, String, Option<String>)>,
    /// kv writes, in order.
    pub kv: Vec<KvWrite>,
    /// `(name, json payload)` events.
    pub events: Vec<(String, String)>,
    /// Jobs to queue.
    pub jobs: Vec<NewJob>,
    /// `(kind, key, lookups)`: a record's lookups replaced (`record-set-lookups`), written with
    /// the record when the invocation also writes it, else to the record as stored; a record
    /// that does not exist takes none.
    pub lookups: Vec<(String, String, Vec<String>)>,
    /// What the invocation read, with the version it saw (0: absent). At commit, if any of these
    /// changed meanwhile (a concurrent invocation wrote it), nothing is applied and the job runs
    /// again: optimistic concurrency, so two deliveries for one call never lose an update.
    pub reads: Vec<(Read, i64)>,
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

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobEnd {
    /// Done; for deliveries, optionally ignored with a reason.
    Done {
        /// Why the connector did not act, if it did not.
        ignored: Option<String>,
        /// What an action answered (its provider's id for what it did, say), kept on the job.
        result: Option<String>,
    },
    /// Failed; try again at this time.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        at_ms: i64,
    },
    /// Failed for good.
    Dead {
        /// What went wrong.
        error: String,
    },
    /// Not run (a concurrency limit was reached): back to the queue, the attempt not counted.
    Defer {
        /// When to try again.
        at_ms: i64,
    },
}

/// One row of the webhook log.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: i64,
    /// Tenant id.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// Route name.
    pub route: String,
    /// Event type, if known.
    pub event: Option<String>,
    /// Dedup identity.
    pub identity: String,
    /// `received`, `processing`, `done`, `ignored`, `retrying`, `dead`.
    pub state: String,
    /// Processing attempts.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Why it was ignored.
    pub ignored_reason: Option<String>,
    /// Arrival time (ms).
    pub received_at_ms: i64,
    /// When processing finished (ms).
    pub processed_at_ms: Option<i64>,
    /// Duration of the last attempt (µs).
    pub duration_us: Option<i64>,
    /// The URL called.
    pub url: String,
    /// Headers (secrets removed); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// Raw body as text (lossy); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Filter for listing deliveries.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this connector.
    pub connector: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// A record row.
#[derive(Debug, Clone, Serialize)]
pub struct RecordRow {
    /// Kind, e.g. `call`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// The JSON object.
    pub data: serde_json::Value,
    /// The lookups it is found by (`phone:+14155550100`, `email:jane@example.com`).
    pub lookups: Vec<String>,
    /// Last write (ms).
    pub updated_at_ms: i64,
}

/// Which records to list: all of the tenant's, one kind, or one kind's found by a lookup.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records of `kind` that carry this lookup.
    pub lookup: Option<String>,
    /// At most this many (1 to 1,000).
    pub limit: usize,
}

/// An event row.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    /// Event id.
    pub id: i64,
    /// Tenant id.
    pub tenant: String,
    /// Connector that published it.
    pub connector: String,
    /// Event name.
    pub name: String,
    /// JSON payload.
    pub payload: serde_json::Value,
    /// Stable across re-runs of what published it: the publishing job's idempotency key, the
    /// event's position and name (`delivery:42:event:0:call.analyzed`); the route jobs it
    /// triggered are keyed by it and `:route:{name}`.
    /// `None` for events of a synchronous reply, which nothing re-runs.
    pub key: Option<String>,
    /// When (ms).
    pub created_at_ms: i64,
}

/// A job row for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    /// Job id.
    pub id: i64,
    /// Tenant id.
    pub tenant: String,
    /// Connector id.
    pub connector: String,
    /// The task.
    pub task: Task,
    /// `queued`, `running`, `done`, `dead`.
    pub state: String,
    /// Attempts.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Next run (ms).
    pub run_at_ms: i64,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Apply {
        tenant: String,
        connector: String,
        effects: Effects,
        reply: Reply<()>,
    },
    /// Deliveries, each with its headers already as JSON (serialized on the caller's thread,
    /// not the writer's).
    Ingest(Vec<(NewDelivery, String)>, Reply<Vec<Ingested>>),
    Enqueue(NewJob, Reply<Option<i64>>),
    Claim {
        limit: usize,
        lease_ms: i64,
        reply: Reply<Vec<Job>>,
    },
    Finish {
        job: i64,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
        /// Also claim the next ready job, with this lease.
        next_lease_ms: Option<i64>,
        reply: Reply<Option<Job>>,
    },
    ScheduleStart {
        tenant: String,
        name: String,
        now_ms: i64,
        reply: Reply<i64>,
    },
    ClaimTick(TickClaim, Reply<TickOutcome>),
    Replay(replay::ReplayStep, Reply<replay::StepDone>),
    Prune {
        part: prune::Part,
        cutoff_ms: i64,
        limit: usize,
        reply: Reply<usize>,
    },
}

/// Handle to the database. Clones are cheap and share the writer and the read pool.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Command>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<PathBuf>,
    /// Signalled after a commit that queued work.
    pub work: Arc<Notify>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT 'POST',
    identity TEXT NOT NULL,
    event TEXT,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'received',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    ignored_reason TEXT,
    processed_at INTEGER,
    duration_us INTEGER,
    pruned_at INTEGER,
    UNIQUE (tenant, connector, identity)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    task TEXT NOT NULL,
    delivery_id INTEGER,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'queued',
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_at);
CREATE INDEX IF NOT EXISTS jobs_by_delivery ON jobs (delivery_id);
CREATE TABLE IF NOT EXISTS records (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    lookups TEXT,
    PRIMARY KEY (tenant, kind, key)
);
CREATE TABLE IF NOT EXISTS record_lookups (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    lookup TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, lookup, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    marker_at INTEGER,
    PRIMARY KEY (tenant, connector, key)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    job_id INTEGER,
    created_at INTEGER NOT NULL,
    key TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (created_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS schedules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    last_tick_ms INTEGER NOT NULL,
    last_job_id INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS job_replays (
    job_id INTEGER NOT NULL,
    replayed_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS job_replays_by_job ON job_replays (job_id);
"#;

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: commits do not wait for the disk; the writer's syncer makes a webhook durable
    // before it is acknowledged (see `Syncer`), and checkpoints sync as they go.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint journals in memory: the writer opens one per command, and each copies every
    // page it touches; on a temporary file that spilled into `pwrite`s once a batch passed 64 KiB.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A fixed plan per statement: otherwise a new value for `LIMIT ?` (a claim of one job after
    // a claim of many) made SQLite re-parse and re-plan the statement on every claim.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // The writer alone uses some 30 statements; the default cache of 16 would re-parse them.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) `hub.db` in `data_dir` and starts the writer thread.
    ///
    /// # Errors
    /// When the directory cannot be created or the database cannot be opened.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("hub.db");
        let conn = open_conn(&path)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        // Checkpoints run on their own thread and connection, so the writer never stops to copy
        // the WAL back into the database while webhooks wait for their commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = open_conn(&path)?;
        let (tx, rx) = mpsc::channel(8192);
        let (poke, poked) = std::sync::mpsc::sync_channel(1);
        let work = Arc::new(Notify::new());
        let notify = work.clone();
        let spawn_error = |e| StoreError::DataDir {
            path: path.clone(),
            source: e,
        };
        std::thread::Builder::new()
            .name("hub-db-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoints, poked))
            .map_err(spawn_error)?;
        std::thread::Builder::new()
            .name("hub-db-writer".into())
            .spawn(move || writer_loop(conn, rx, notify, poke))
            .map_err(spawn_error)?;
        Ok(Store {
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path),
            work,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Stores deliveries durably (deduplicated) and queues each new one for its connector.
    /// Returns once the transaction holding them is committed.
    ///
    /// # Errors
    /// When the database cannot commit: the caller must not acknowledge.
    pub async fn ingest(&self, deliveries: Vec<NewDelivery>) -> Result<Vec<Ingested>> {
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let headers = serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into());
                (d, headers)
            })
            .collect();
        self.call(|r| Command::Ingest(deliveries, r)).await
    }

    /// Queues a job; `None` when a job with the same idempotency key exists.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn enqueue(&self, job: NewJob) -> Result<Option<i64>> {
        self.call(|r| Command::Enqueue(job, r)).await
    }

    /// Claims up to `limit` ready jobs (or jobs whose lease expired: their worker died).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn claim(&self, limit: usize, lease_ms: i64) -> Result<Vec<Job>> {
        self.call(|r| Command::Claim {
            limit,
            lease_ms,
            reply: r,
        })
        .await
    }

    /// Ends a claimed job, committing its effects with its end state, all or nothing.
    ///
    /// # Errors
    /// When the database cannot commit: the lease expires and the job runs again.
    pub async fn finish(
        &self,
        job: i64,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
    ) -> Result<()> {
        self.call(|r| Command::Finish {
            job,
            effects,
            end,
            duration_us,
            next_lease_ms: None,
            reply: r,
        })
        .await
        .map(drop)
    }

    /// [`finish`](Store::finish), and in the same transaction claim the next ready job (if
    /// any) for the same worker: one writer round trip per job instead of two.
    ///
    /// # Errors
    /// When the database cannot commit: the lease expires and the job runs again.
    pub async fn finish_and_claim(
        &self,
        job: i64,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
        lease_ms: i64,
    ) -> Result<Option<Job>> {
        self.call(|r| Command::Finish {
            job,
            effects,
            end,
            duration_us,
            next_lease_ms: Some(lease_ms),
            reply: r,
        })
        .await
    }

    /// Commits the effects of a synchronous invocation (a `respond` on a sync route).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn apply(&self, tenant: &str, connector: &str, effects: Effects) -> Result<()> {
        let (tenant, connector) = (tenant.to_string(), connector.to_string());
        self.call(|reply| Command::Apply {
            tenant,
            connector,
            effects,
            reply,
        })
        .await
    }

    /// Up to `limit` records of a kind, newest first, as `(key, json, version)` (blocking; host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_list(
        &self,
        tenant: &str,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, data, version FROM records WHERE tenant=?1 AND kind=?2 ORDER BY updated_at DESC, key LIMIT ?3",
            )?;
            stmt.query_map(params![tenant, kind, limit.min(1000)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
        })
    }

    /// Up to `limit` records of a kind that carry `lookup`, newest first, as `(key, json,
    /// version)` (blocking; host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_find(
        &self,
        tenant: &str,
        kind: &str,
        lookup: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.key, r.data, r.version FROM record_lookups l
                 JOIN records r ON r.tenant=l.tenant AND r.kind=l.kind AND r.key=l.key
                 WHERE l.tenant=?1 AND l.kind=?2 AND l.lookup=?3
                 ORDER BY r.updated_at DESC, r.key LIMIT ?4",
            )?;
            stmt.query_map(params![tenant, kind, lookup, limit.min(1000)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
    }

    /// Queues a job from a blocking thread.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub fn enqueue_blocking(&self, job: NewJob) -> Result<Option<i64>> {
        self.call_blocking(|r| Command::Enqueue(job, r))
    }

    /// Runs a read on a pooled read connection (blocking).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path)?,
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

    /// A record's JSON and version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get_versioned(
        &self,
        tenant: &str,
        kind: &str,
        key: &str,
    ) -> Result<(Option<String>, i64)> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT data, version FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
                params![tenant, kind, key],
                |r| Ok((Some(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map(|o| o.unwrap_or((None, 0)))
        })
    }

    /// A kv value and its version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get_versioned(
        &self,
        tenant: &str,
        connector: &str,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, i64)> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT value, version FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3",
                params![tenant, connector, key],
                |r| Ok((Some(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map(|o| o.unwrap_or((None, 0)))
        })
    }

    /// A record's JSON (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get(&self, tenant: &str, kind: &str, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT data FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
                params![tenant, kind, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// A kv value (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get(&self, tenant: &str, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT value FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3",
                params![tenant, connector, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// A delivery's stored request (blocking; for the worker).
    ///
    /// # Errors
    /// On database failure.
    pub fn delivery_request(&self, id: i64) -> Result<Option<StoredRequest>> {
        self.read(|c| {
            cached_row(
                c,
                "SELECT route, url, headers, body, received_at, method FROM deliveries WHERE id=?1",
                [id],
                |r| {
                    let headers: String = r.get(2)?;
                    Ok(StoredRequest {
                        route: r.get(0)?,
                        url: r.get(1)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        body: r.get(3)?,
                        received_at_ms: r.get(4)?,
                        method: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Recent deliveries, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                        ignored_reason, received_at, processed_at, duration_us, url
                 FROM deliveries
                 WHERE (?1 IS NULL OR tenant=?1) AND (?2 IS NULL OR connector=?2)
                   AND (?3 IS NULL OR state=?3)
                 ORDER BY id DESC LIMIT ?4",
            )?;
            let limit = if filter.limit == 0 {
                50
            } else {
                filter.limit.min(1000)
            } as i64;
            stmt.query_map(
                params![filter.tenant, filter.connector, filter.state, limit],
                |r| delivery_row(r, false),
            )?
            .collect()
        })
        .await
    }

    /// One delivery with its headers and body.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>> {
        self.read_async(move |c| {
            cached_row(
                c,
                "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                        ignored_reason, received_at, processed_at, duration_us, url, headers, body
                 FROM deliveries WHERE id=?1",
                [id],
                |r| delivery_row(r, true),
            )
            .optional()
        })
        .await
    }

    /// The jobs that belong to a delivery.
    ///
    /// # Errors
    /// On database failure.
    pub async fn jobs_for_delivery(&self, id: i64) -> Result<Vec<JobRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at
                 FROM jobs WHERE delivery_id=?1 ORDER BY id",
            )?;
            stmt.query_map([id], job_row)?.collect()
        })
        .await
    }

    /// Records of a tenant, newest first: all, one kind, or one kind's found by a lookup.
    ///
    /// # Errors
    /// On database failure.
    pub async fn records(&self, tenant: String, filter: RecordFilter) -> Result<Vec<RecordRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, key, data, updated_at, lookups
                 FROM records r
                 WHERE tenant=?1 AND (?2 IS NULL OR kind=?2)
                   AND (?3 IS NULL OR key IN (SELECT key FROM record_lookups
                                              WHERE tenant=?1 AND kind=?2 AND lookup=?3))
                 ORDER BY updated_at DESC LIMIT ?4",
            )?;
            let limit = filter.limit.clamp(1, 1000) as i64;
            stmt.query_map(params![tenant, filter.kind, filter.lookup, limit], |r| {
                let data: String = r.get(2)?;
                let lookups: Option<String> = r.get(4)?;
                Ok(RecordRow {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                    lookups: lookups
                        .and_then(|l| serde_json::from_str(&l).ok())
                        .unwrap_or_default(),
                    updated_at_ms: r.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// Events of a tenant, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn events(&self, tenant: String, limit: usize) -> Result<Vec<EventRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant, connector, name, payload, created_at, key FROM events
                 WHERE tenant=?1 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![tenant, limit.clamp(1, 1000) as i64], |r| {
                let payload: String = r.get(4)?;
                Ok(EventRow {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    connector: r.get(2)?,
                    name: r.get(3)?,
                    payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                    key: r.get(6)?,
                    created_at_ms: r.get(5)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// Number of jobs not yet finished (queued or running).
    ///
    /// # Errors
    /// On database failure.
    pub async fn pending_jobs(&self) -> Result<i64> {
        self.read_async(|c| {
            cached_row(
                c,
                "SELECT count(*) FROM jobs WHERE state IN ('queued','running')",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Job counts by `(tenant, connector, state)`, for health views.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job_counts(&self) -> Result<Vec<(String, String, String, i64)>> {
        self.read_async(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT tenant, connector, state, count(*) FROM jobs GROUP BY tenant, connector, state",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect()
        })
        .await
    }
}

/// A delivery's request as stored.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Route name.
    pub route: String,
    /// URL called.
    pub url: String,
    /// Headers (secrets removed).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// Arrival (ms).
    pub received_at_ms: i64,
    /// HTTP method.
    pub method: String,
}

fn delivery_row(r: &rusqlite::Row<'_>, full: bool) -> rusqlite::Result<DeliveryRow> {
    let (headers, body) = if full {
        let h: String = r.get(14)?;
        let b: Vec<u8> = r.get(15)?;
        (
            serde_json::from_str(&h).ok(),
            Some(String::from_utf8_lossy(&b).into_owned()),
        )
    } else {
        (None, None)
    };
    Ok(DeliveryRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        route: r.get(3)?,
        event: r.get(4)?,
        identity: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        ignored_reason: r.get(9)?,
        received_at_ms: r.get(10)?,
        processed_at_ms: r.get(11)?,
        duration_us: r.get(12)?,
        url: r.get(13)?,
        headers,
        body,
    })
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let task: String = r.get(3)?;
    Ok(JobRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        task: decode_task(&task),
        state: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        run_at_ms: r.get(7)?,
    })
}

fn encode_task(task: &Task) -> String {
    serde_json::to_string(task).unwrap_or_default()
}

fn decode_task(s: &str) -> Task {
    #[derive(serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum T {
        Delivery { delivery_id: i64 },
        Job { name: String, input: String },
        Action { name: String, input: String },
        Route { route: String, event: String },
    }
    match serde_json::from_str::<T>(s) {
        Ok(T::Delivery { delivery_id }) => Task::Delivery { delivery_id },
        Ok(T::Job { name, input }) => Task::Job { name, input },
        Ok(T::Action { name, input }) => Task::Action { name, input },
        Ok(T::Route { route, event }) => Task::Route { route, event },
        Err(_) => Task::Job {
            name: "<unreadable task>".into(),
            input: s.into(),
        },
    }
}

/// `query_row` on a cached statement: the worker's and host calls' reads run thousands of times
/// a second, each parse would cost more than the read.
fn cached_row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// The writer thread: takes every waiting command, applies them in savepoints ([`apply_batch`]),
/// commits once, then answers. A command that fails rolls back alone; a failed commit fails them
/// all.
fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    work: Arc<Notify>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    const MAX_BATCH: usize = 1024;
    let syncer = Syncer::start(
        conn.path().map(|p| PathBuf::from(format!("{p}-wal"))),
        work.clone(),
    );
    if syncer.is_none() {
        // No sync thread: every commit waits for the disk itself.
        if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
            tracing::error!("cannot make commits durable: {e}");
        }
    }
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let mut queued_work = false;
        // A batch holding a webhook is answered only once the WAL is on disk: the provider gets
        // its 2xx only for what survives power loss. The sync happens on the syncer thread while
        // this one goes on with the next batch. A batch of job bookkeeping only is answered at
        // once (WAL keeps it across a crash of the process; after a power loss the job simply
        // runs again, its effects being idempotent); the next sync covers it too.
        let durable = batch.iter().any(|c| matches!(c, Command::Ingest(..)));
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = StoreError::from(e);
                for cmd in batch {
                    fail(cmd, &e);
                }
                continue;
            }
        };
        apply_batch(&tx, batch, &mut answers, &mut queued_work);
        let commit = tx.commit().map_err(StoreError::from);
        match (commit, &syncer) {
            (Ok(()), Some(syncer)) if durable => syncer.after_sync(answers, queued_work),
            (commit, _) => {
                for answer in answers {
                    answer(commit.as_ref().err());
                }
                if commit.is_ok() && queued_work {
                    work.notify_waiters();
                    work.notify_one();
                }
            }
        }
        // A full channel means a checkpoint is already due.
        let _ = checkpoint.try_send(());
    }
}

/// An answer to a writer command, given once its transaction is committed (and synced, for a
/// durable one), or with the error that stopped it.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Makes committed webhooks durable off the writer thread (pipelined group commit): the writer
/// commits with `synchronous=NORMAL` and hands the batch's answers here; this thread syncs the
/// WAL file once for every batch waiting and only then answers them, while the writer already
/// builds the next batch. Equivalent to `synchronous=FULL` for the answered batches (a sync of
/// the WAL makes every frame written before it durable), at the cost of the writer never
/// waiting for the disk.
struct Syncer {
    batches: std::sync::mpsc::Sender<(Vec<Answer>, bool)>,
}

impl Syncer {
    /// `None` for an in-memory database (nothing to sync): the writer then answers at commit.
    fn start(wal: Option<PathBuf>, work: Arc<Notify>) -> Option<Syncer> {
        let wal = wal?;
        let (batches, waiting) = std::sync::mpsc::channel::<(Vec<Answer>, bool)>();
        std::thread::Builder::new()
            .name("hub-db-sync".into())
            .spawn(move || {
                let mut file: Option<std::fs::File> = None;
                while let Ok(first) = waiting.recv() {
                    let mut ready = vec![first];
                    ready.extend(waiting.try_iter());
                    let synced = match &file {
                        Some(f) => f.sync_data(),
                        None => std::fs::File::open(&wal).and_then(|f| {
                            f.sync_data()?;
                            file = Some(f);
                            Ok(())
                        }),
                    };
                    let error = synced.err().map(|e| {
                        tracing::error!("cannot sync the database to disk: {e}");
                        StoreError::Sync(e)
                    });
                    let mut queued_work = false;
                    for (answers, queued) in ready {
                        queued_work |= queued;
                        for answer in answers {
                            answer(error.as_ref());
                        }
                    }
                    if error.is_none() && queued_work {
                        work.notify_waiters();
                        work.notify_one();
                    }
                }
            })
            .ok()?;
        Some(Syncer { batches })
    }

    /// Answers `answers` after the next sync of the WAL.
    fn after_sync(&self, answers: Vec<Answer>, queued_work: bool) {
        if let Err(std::sync::mpsc::SendError((answers, _))) =
            self.batches.send((answers, queued_work))
        {
            for answer in answers {
                answer(Some(&StoreError::WriterGone));
            }
        }
    }
}

/// Copies the WAL back into the database after commits, off the writer thread: at most every
/// 50 ms while commits keep coming, never while the hub is idle. `PASSIVE` never blocks the
/// writer; if the WAL still grows past 64 MiB (readers keeping old snapshots), a `RESTART`
/// checkpoint waits for them so the file cannot grow without bound.
fn checkpoint_loop(conn: Connection, poked: std::sync::mpsc::Receiver<()>) {
    const WAL_LIMIT_PAGES: i64 = 16_384;
    while poked.recv().is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = poked.try_recv();
        let log_pages = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
            .unwrap_or(0);
        if log_pages > WAL_LIMIT_PAGES
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        {
            tracing::warn!("database checkpoint failed: {e}");
        }
    }
    // The writer has stopped: fold the WAL into the database for a clean shutdown.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn fail(cmd: Command, e: &StoreError) {
    let err = || StoreError::Sqlite(rusqlite::Error::InvalidParameterName(e.to_string()));
    match cmd {
        Command::Ingest(_, r) => drop(r.send(Err(err()))),
        Command::Enqueue(_, r) => drop(r.send(Err(err()))),
        Command::Claim { reply, .. } => drop(reply.send(Err(err()))),
        Command::Finish { reply, .. } => drop(reply.send(Err(err()))),
        Command::Apply { reply, .. } => drop(reply.send(Err(err()))),
        Command::ScheduleStart { reply, .. } => drop(reply.send(Err(err()))),
        Command::ClaimTick(_, r) => drop(r.send(Err(err()))),
        Command::Replay(_, r) => drop(r.send(Err(err()))),
        Command::Prune { reply, .. } => drop(reply.send(Err(err()))),
    }
}

/// Queues the answer to one command for after the commit.
fn answer<T: Send + 'static>(
    answers: &mut Vec<Answer>,
    reply: Reply<T>,
    result: rusqlite::Result<T>,
) {
    answers.push(Box::new(move |commit_err| {
        let out = match (result, commit_err) {
            (Err(e), _) => Err(StoreError::from(e)),
            (Ok(_), Some(e)) => Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterName(
                format!("commit failed: {e}"),
            ))),
            (Ok(v), None) => Ok(v),
        };
        let _ = reply.send(out);
    }));
}

/// Runs `f` in a savepoint: if it fails, what it wrote is undone and the transaction goes on.
fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    // Cached statements: a batch holds hundreds of savepoints, not worth parsing each time.
    tx.prepare_cached("SAVEPOINT cmd")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE cmd")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
            Err(e)
        }
    }
}

/// Applies a batch: its webhooks first, together, then every other command in order.
///
/// A savepoint copies each page it is the first to touch, so one savepoint per webhook copied
/// the same table and index pages once per webhook. The batch's webhooks share one savepoint
/// instead; only if that fails (it does not, short of a full disk or a broken file) is each
/// applied alone, so one bad webhook cannot fail the others.
fn apply_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: Vec<Command>,
    answers: &mut Vec<Answer>,
    queued_work: &mut bool,
) {
    let mut webhooks = Vec::new();
    let mut others = Vec::new();
    for cmd in batch {
        match cmd {
            Command::Ingest(deliveries, reply) => webhooks.push((deliveries, reply)),
            other => others.push(other),
        }
    }
    let together = match webhooks.len() {
        0 | 1 => None,
        _ => in_savepoint(tx, |c| {
            webhooks
                .iter()
                .map(|(deliveries, _)| insert_deliveries(c, deliveries))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ok(),
    };
    match together {
        Some(results) => {
            for ((_, reply), result) in webhooks.into_iter().zip(results) {
                *queued_work |= result.iter().any(|i| matches!(i, Ingested::Stored(_)));
                answer(answers, reply, Ok(result));
            }
        }
        None => {
            for (deliveries, reply) in webhooks {
                apply(tx, Command::Ingest(deliveries, reply), answers, queued_work);
            }
        }
    }
    for cmd in others {
        apply(tx, cmd, answers, queued_work);
    }
}

/// Applies one command inside a savepoint and queues its answer for after the commit.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    cmd: Command,
    answers: &mut Vec<Answer>,
    queued_work: &mut bool,
) {
    match cmd {
        Command::Apply {
            tenant,
            connector,
            effects,
            reply,
        } => {
            if !effects.jobs.is_empty() {
                *queued_work = true;
            }
            let result = in_savepoint(tx, |c| {
                apply_effects(c, &tenant, &connector, None, &effects)
            });
            answer(answers, reply, result);
        }
        Command::Ingest(deliveries, reply) => {
            let result = in_savepoint(tx, |c| insert_deliveries(c, &deliveries));
            if matches!(&result, Ok(v) if v.iter().any(|i: &Ingested| matches!(i, Ingested::Stored(_))))
            {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Enqueue(job, reply) => {
            let result = in_savepoint(tx, |c| insert_job(c, &job, None));
            if matches!(result, Ok(Some(_))) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Claim {
            limit,
            lease_ms,
            reply,
        } => {
            let result = in_savepoint(tx, |c| claim(c, limit, lease_ms));
            answer(answers, reply, result);
        }
        Command::Finish {
            job,
            effects,
            end,
            duration_us,
            next_lease_ms,
            reply,
        } => {
            if !effects.jobs.is_empty() || matches!(end, JobEnd::Retry { .. }) {
                *queued_work = true;
            }
            let result =
                in_savepoint(tx, |c| finish(c, job, &effects, &end, duration_us)).map(|()| {
                    // A failed claim leaves the job's end committed; the worker claims later.
                    next_lease_ms
                        .and_then(|lease| in_savepoint(tx, |c| claim(c, 1, lease)).ok())
                        .and_then(|mut jobs| jobs.pop())
                });
            answer(answers, reply, result);
        }
        Command::ScheduleStart {
            tenant,
            name,
            now_ms,
            reply,
        } => {
            let result = in_savepoint(tx, |c| schedule::start(c, &tenant, &name, now_ms));
            answer(answers, reply, result);
        }
        Command::ClaimTick(claim, reply) => {
            let result = in_savepoint(tx, |c| schedule::claim(c, &claim));
            if matches!(result, Ok(TickOutcome::Queued(_))) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Replay(step, reply) => {
            let result = in_savepoint(tx, |c| replay::step(c, &step));
            if matches!(&result, Ok(done) if done.queued_work()) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Prune {
            part,
            cutoff_ms,
            limit,
            reply,
        } => {
            let result = in_savepoint(tx, |c| prune::batch(c, part, cutoff_ms, limit));
            answer(answers, reply, result);
        }
    }
}

/// Brings a database made by an earlier version up to [`SCHEMA`]: columns added since, and the
/// indexes on them.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    add_column(conn, "deliveries", "pruned_at", "INTEGER")?;
    // Idempotency markers (`kv-set-marker`) carry the time they were written, for retention.
    add_column(conn, "kv", "marker_at", "INTEGER")?;
    // What actions answered, kept on their jobs.
    add_column(conn, "jobs", "result", "TEXT")?;
    // A record's lookups (a JSON list; `record_lookups` indexes them).
    add_column(conn, "records", "lookups", "TEXT")?;
    // An event's key (its job's idempotency key, position and name): a replay publishes it once.
    add_column(conn, "events", "key", "TEXT")?;
    conn.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (key) WHERE key IS NOT NULL",
    )?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS kv_markers ON kv (marker_at) WHERE marker_at IS NOT NULL",
    )?;
    // Nothing reads deliveries by time but retention, which has `deliveries_unpruned`; the index
    // cost a page write per webhook batch.
    conn.execute_batch("DROP INDEX IF EXISTS deliveries_by_time")?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS deliveries_unpruned ON deliveries (received_at)
         WHERE pruned_at IS NULL",
    )
}

/// Adds `column` to `table` unless a database from an earlier release already has it.
fn add_column(conn: &Connection, table: &str, column: &str, kind: &str) -> rusqlite::Result<()> {
    let present: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name=?2",
        params![table, column],
        |r| r.get(0),
    )?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(())
}

fn insert_deliveries(
    c: &Connection,
    deliveries: &[(NewDelivery, String)],
) -> rusqlite::Result<Vec<Ingested>> {
    deliveries
        .iter()
        .map(|(d, headers)| insert_delivery(c, d, headers))
        .collect()
}

fn insert_delivery(c: &Connection, d: &NewDelivery, headers: &str) -> rusqlite::Result<Ingested> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO deliveries (tenant, connector, route, identity, event, url, headers, body, received_at, method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (tenant, connector, identity) DO NOTHING",
        )?
        .execute(params![
            d.tenant,
            d.connector,
            d.route,
            d.identity,
            d.event,
            d.url,
            headers,
            d.body,
            d.received_at_ms,
            d.method
        ])?;
    if inserted == 0 {
        let id = c
            .prepare_cached(
                "SELECT id FROM deliveries WHERE tenant=?1 AND connector=?2 AND identity=?3",
            )?
            .query_row(params![d.tenant, d.connector, d.identity], |r| r.get(0))?;
        return Ok(Ingested::Duplicate(id));
    }
    let id = c.last_insert_rowid();
    let job = NewJob {
        tenant: d.tenant.clone(),
        connector: d.connector.clone(),
        task: Task::Delivery { delivery_id: id },
        run_at_ms: d.received_at_ms,
        idempotency_key: Some(format!("delivery:{id}")),
    };
    insert_job(c, &job, Some(id))?;
    Ok(Ingested::Stored(id))
}

fn insert_job(
    c: &Connection,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    let key = match &job.idempotency_key {
        Some(k) => k.clone(),
        None => format!("anon:{}:{}", now_ms(), rand_suffix()),
    };
    let delivery_id = delivery_id.or(match job.task {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    });
    let n = c
        .prepare_cached(
            "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            job.tenant,
            job.connector,
            encode_task(&job.task),
            delivery_id,
            key,
            job.run_at_ms,
            now_ms()
        ])?;
    Ok((n > 0).then(|| c.last_insert_rowid()))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed) ^ rand::random::<u64>()
}

/// Two selects, each walking `jobs_ready` in order, rather than one `OR` filter: with an `OR`
/// SQLite sorts the whole queue on every claim (13 ms at 100k queued, in the writer thread).
fn claim(c: &Connection, limit: usize, lease_ms: i64) -> rusqlite::Result<Vec<Job>> {
    let now = now_ms();
    let mut stmt = c.prepare_cached(
        "UPDATE jobs SET state='running', lease_until=?1, attempts=attempts+1
         WHERE id IN (SELECT id FROM (SELECT id FROM jobs WHERE state='queued' AND run_at<=?2
                                      ORDER BY run_at LIMIT ?3)
                      UNION ALL
                      SELECT id FROM (SELECT id FROM jobs WHERE state='running' AND lease_until<?2
                                      LIMIT ?3)
                      LIMIT ?3)
         RETURNING id, tenant, connector, task, attempts, idempotency_key, created_at",
    )?;
    let rows = stmt.query_map(params![now + lease_ms, now, limit as i64], |r| {
        let task: String = r.get(3)?;
        Ok(Job {
            id: r.get(0)?,
            tenant: r.get(1)?,
            connector: r.get(2)?,
            task: decode_task(&task),
            attempts: r.get(4)?,
            idempotency_key: r.get(5)?,
            created_at_ms: r.get(6)?,
        })
    })?;
    let jobs: Vec<Job> = rows.collect::<rusqlite::Result<_>>()?;
    // The log shows claimed deliveries as being processed, in the same transaction.
    for job in &jobs {
        if let Task::Delivery { delivery_id } = job.task {
            c.prepare_cached(
                "UPDATE deliveries SET state='processing' WHERE id=?1 AND state IN ('received','retrying')",
            )?
            .execute([delivery_id])?;
        }
    }
    Ok(jobs)
}

fn finish(
    c: &Connection,
    job: i64,
    effects: &Effects,
    end: &JobEnd,
    duration_us: i64,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let (tenant, connector): (String, String) = c
        .prepare_cached("SELECT tenant, connector FROM jobs WHERE id=?1")?
        .query_row([job], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if let JobEnd::Defer { at_ms } = end {
        c.prepare_cached(
            "UPDATE jobs SET state='queued', lease_until=NULL, run_at=?2, attempts=MAX(attempts-1, 0) WHERE id=?1",
        )?
        .execute(params![job, at_ms])?;
        return Ok(());
    }
    // Effects only count when the job succeeded: a failed attempt leaves no trace but its error.
    if let JobEnd::Done { .. } = end {
        if let Some(changed) = first_conflict(c, &tenant, &connector, &effects.reads)? {
            // Another invocation wrote what this one read: apply nothing and run it again soon.
            // The attempt does not count against the job's limit.
            let error = format!("conflict: {changed} changed during the attempt; running again");
            let at = now + 5 + (rand::random::<u64>() % 45) as i64;
            c.prepare_cached(
                "UPDATE jobs SET state='queued', lease_until=NULL, run_at=?2, attempts=MAX(attempts-1, 0), last_error=?3
                 WHERE id=?1",
            )?
            .execute(params![job, at, error])?;
            return Ok(());
        }
        apply_effects(c, &tenant, &connector, Some(job), effects)?;
    }
    let (job_state, delivery_state, error, ignored, run_at) = match end {
        JobEnd::Done { ignored, .. } => (
            "done",
            if ignored.is_some() { "ignored" } else { "done" },
            None,
            ignored.clone(),
            None,
        ),
        JobEnd::Retry { error, at_ms } => (
            "queued",
            "retrying",
            Some(error.clone()),
            None,
            Some(*at_ms),
        ),
        JobEnd::Dead { error } => ("dead", "dead", Some(error.clone()), None, None),
        JobEnd::Defer { at_ms } => ("queued", "retrying", None, None, Some(*at_ms)),
    };
    let result = match end {
        JobEnd::Done { result, .. } => result.as_deref().map(kept_result),
        _ => None,
    };
    c.prepare_cached(
        "UPDATE jobs SET state=?2, last_error=?3, lease_until=NULL, run_at=COALESCE(?4, run_at),
                finished_at=CASE WHEN ?2='queued' THEN NULL ELSE ?5 END, result=?6
         WHERE id=?1",
    )?
    .execute(params![job, job_state, error, run_at, now, result])?;
    c.prepare_cached(
        "UPDATE deliveries SET state=?2, last_error=?3, ignored_reason=?4, attempts=attempts+1,
                processed_at=?5, duration_us=?6
         WHERE id=(SELECT delivery_id FROM jobs WHERE id=?1 AND task LIKE '{\"kind\":\"delivery\"%')",
    )?
    .execute(params![job, delivery_state, error, ignored, now, duration_us])?;
    Ok(())
}

/// A fresh version for a written value: random and never 0 (0 means absent), so a value that
/// changes — even deleted and written again — never shows a version a reader saw before.
/// The most of an action's answer a job keeps.
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// An action's answer as the job keeps it: whole up to [`MAX_RESULT_BYTES`], else a note of its
/// size (a cut JSON text would not parse).
fn kept_result(result: &str) -> String {
    if result.len() <= MAX_RESULT_BYTES {
        return result.to_string();
    }
    serde_json::json!({ "truncated": true, "bytes": result.len() }).to_string()
}

fn new_version() -> i64 {
    (rand::random::<u64>() >> 1) as i64 | 1
}

/// The first read whose version changed since the invocation read it.
fn first_conflict(
    c: &Connection,
    tenant: &str,
    connector: &str,
    reads: &[(Read, i64)],
) -> rusqlite::Result<Option<String>> {
    for (read, seen) in reads {
        let now: i64 = match read {
            Read::Record(kind, key) => c
                .prepare_cached(
                    "SELECT version FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
                )?
                .query_row(params![tenant, kind, key], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
            Read::Kv(key) => c
                .prepare_cached(
                    "SELECT version FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3",
                )?
                .query_row(params![tenant, connector, key], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        };
        if now != *seen {
            return Ok(Some(match read {
                Read::Record(kind, key) => format!("record {kind}/{key}"),
                Read::Kv(key) => format!("kv key {key}"),
            }));
        }
    }
    Ok(None)
}

/// A record's lookups, sorted (`None` if there is no such record).
fn stored_lookups(
    c: &Connection,
    tenant: &str,
    kind: &str,
    key: &str,
) -> rusqlite::Result<Option<Vec<String>>> {
    let json: Option<Option<String>> = c
        .prepare_cached("SELECT lookups FROM records WHERE tenant=?1 AND kind=?2 AND key=?3")?
        .query_row(params![tenant, kind, key], |r| r.get(0))
        .optional()?;
    Ok(json.map(|j| {
        j.and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default()
    }))
}

/// A record's `lookups` column: its lookups as a JSON list, `NULL` for none.
fn lookups_column(lookups: &[String]) -> Option<String> {
    (!lookups.is_empty()).then(|| serde_json::to_string(lookups).unwrap_or_default())
}

/// Replaces a record's lookups `old` (as stored in its row) with `new` in the index; the caller
/// writes `new` to the row, from which the next replacement knows what to remove.
fn index_lookups(
    c: &Connection,
    tenant: &str,
    kind: &str,
    key: &str,
    old: &[String],
    new: &[String],
) -> rusqlite::Result<()> {
    for gone in old.iter().filter(|l| !new.contains(l)) {
        c.prepare_cached(
            "DELETE FROM record_lookups WHERE tenant=?1 AND kind=?2 AND lookup=?3 AND key=?4",
        )?
        .execute(params![tenant, kind, gone, key])?;
    }
    for added in new.iter().filter(|l| !old.contains(l)) {
        c.prepare_cached(
            "INSERT OR IGNORE INTO record_lookups (tenant, kind, lookup, key) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![tenant, kind, added, key])?;
    }
    Ok(())
}

/// Writes an invocation's effects for (tenant, connector); `job` is the job that made them.
fn apply_effects(
    c: &Connection,
    tenant: &str,
    connector: &str,
    job: Option<i64>,
    effects: &Effects,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let parent = job
        .map(|j| format!("job:{j}"))
        .unwrap_or_else(|| format!("sync:{now}:{}", rand_suffix()));
    // Jobs a delivery's handling queues (route actions, follow-ups) belong to that delivery; its
    // events are keyed by the job's idempotency key, as the route jobs they trigger are.
    let (delivery, job_key): (Option<i64>, Option<String>) = match job {
        Some(j) => c
            .prepare_cached("SELECT delivery_id, idempotency_key FROM jobs WHERE id=?1")?
            .query_row([j], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .map_or((None, None), |(d, k)| (d, Some(k))),
        None => (None, None),
    };
    // Each record's lookups as the invocation last set them, sorted and distinct.
    let mut lookups: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for (kind, key, list) in effects.lookups.iter().rev() {
        if !lookups.iter().any(|(k, id, _)| k == kind && id == key) {
            let mut list = list.clone();
            list.sort();
            list.dedup();
            lookups.push((kind, key, list));
        }
    }
    let wanted = |kind: &str, key: &str| {
        lookups
            .iter()
            .find(|(k, id, _)| *k == kind && *id == key)
            .map(|(_, _, l)| l)
    };
    for (i, (kind, key, data)) in effects.records.iter().enumerate() {
        // A record written for the last time here takes its new lookups in the same write.
        let last = !effects.records[i + 1..]
            .iter()
            .any(|(k, id, _)| k == kind && id == key);
        match data {
            Some(data) => match wanted(kind, key).filter(|_| last) {
                None => c
                    .prepare_cached(
                        "INSERT INTO records (tenant, kind, key, data, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at, version=excluded.version",
                    )?
                    .execute(params![tenant, kind, key, data, now, new_version()])?,
                Some(new) => {
                    let old = stored_lookups(c, tenant, kind, key)?.unwrap_or_default();
                    index_lookups(c, tenant, kind, key, &old, new)?;
                    let list = lookups_column(new);
                    c.prepare_cached(
                        "INSERT INTO records (tenant, kind, key, data, updated_at, version, lookups)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at,
                             version=excluded.version, lookups=excluded.lookups",
                    )?
                    .execute(params![tenant, kind, key, data, now, new_version(), list])?
                }
            },
            None => {
                if let Some(old) = stored_lookups(c, tenant, kind, key)? {
                    index_lookups(c, tenant, kind, key, &old, &[])?;
                }
                c.prepare_cached("DELETE FROM records WHERE tenant=?1 AND kind=?2 AND key=?3")?
                    .execute(params![tenant, kind, key])?
            }
        };
    }
    // Lookups set without the record being written here: only for a record that exists.
    for (kind, key, new) in &lookups {
        if effects
            .records
            .iter()
            .any(|(k, id, d)| k == kind && id == key && d.is_some())
        {
            continue;
        }
        match stored_lookups(c, tenant, kind, key)? {
            Some(old) if old != *new => {
                index_lookups(c, tenant, kind, key, &old, new)?;
                let list = lookups_column(new);
                c.prepare_cached(
                    "UPDATE records SET lookups=?4 WHERE tenant=?1 AND kind=?2 AND key=?3",
                )?
                .execute(params![tenant, kind, key, list])?;
            }
            _ => {}
        }
    }
    for KvWrite { key, value, marker } in &effects.kv {
        match value {
            Some(v) => c
                .prepare_cached(
                    "INSERT INTO kv (tenant, connector, key, value, version, marker_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant, connector, key) DO UPDATE
                     SET value=excluded.value, version=excluded.version, marker_at=excluded.marker_at",
                )?
                .execute(params![tenant, connector, key, v, new_version(), marker.then(now_ms)])?,
            None => c
                .prepare_cached("DELETE FROM kv WHERE tenant=?1 AND connector=?2 AND key=?3")?
                .execute(params![tenant, connector, key])?,
        };
    }
    for (i, (name, payload)) in effects.events.iter().enumerate() {
        // A replay publishes what the first run did: kept once. The route jobs the event
        // triggers are keyed `{key}:route:{route}` (`routing::jobs_for_events`).
        let key = job_key.as_ref().map(|k| format!("{k}:event:{i}:{name}"));
        c.prepare_cached(
            "INSERT INTO events (tenant, connector, name, payload, job_id, created_at, key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![tenant, connector, name, payload, job, now, key])?;
    }
    for (i, new_job) in effects.jobs.iter().enumerate() {
        let mut new_job = new_job.clone();
        if new_job.idempotency_key.is_none() {
            // Derived from the parent job, so a re-run of the parent does not queue twice.
            new_job.idempotency_key = Some(format!("{parent}:{i}"));
        }
        insert_job(c, &new_job, delivery)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_answer_is_kept_whole_up_to_64_kib_then_as_a_note_of_its_size() {
        let small = r#"{"id":"re_1"}"#;
        assert_eq!(kept_result(small), small);
        let big = "x".repeat(MAX_RESULT_BYTES + 1);
        let kept: serde_json::Value = serde_json::from_str(&kept_result(&big)).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({ "truncated": true, "bytes": MAX_RESULT_BYTES + 1 })
        );
    }

    fn delivery(identity: &str) -> NewDelivery {
        NewDelivery {
            tenant: "t1".into(),
            connector: "c1".into(),
            route: String::new(),
            method: "POST".into(),
            identity: identity.into(),
            event: Some("e".into()),
            url: "http://x/hooks/t1/c1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            received_at_ms: now_ms(),
        }
    }

    #[tokio::test]
    async fn records_are_found_by_their_lookups_until_replaced_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec =
            |key: &str, data: Option<&str>| ("contact".into(), key.into(), data.map(String::from));
        let set = |key: &str, lookups: &[&str]| {
            let lookups = lookups.iter().map(|l| l.to_string()).collect();
            ("contact".to_string(), key.to_string(), lookups)
        };
        let phone = "phone:+14155550100";
        let found = |tenant: &str, lookup: &str| {
            let rows = store.record_find(tenant, "contact", lookup, 10).unwrap();
            rows.into_iter().map(|(k, _, _)| k).collect::<Vec<_>>()
        };
        // Two connectors' contacts with the same phone; lookups of a record that does not exist
        // are not kept.
        let effects = |records, lookups| Effects {
            records,
            lookups,
            ..Default::default()
        };
        let hubspot = effects(
            vec![rec("151", Some("{}"))],
            vec![set("151", &[phone, "email:a@x.io"])],
        );
        store.apply("t1", "hubspot", hubspot).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let zapier = effects(
            vec![rec("a@x.io", Some("{}"))],
            vec![set("a@x.io", &[phone]), set("ghost", &[phone])],
        );
        store.apply("t1", "zapier", zapier).await.unwrap();
        assert_eq!(
            found("t1", phone),
            ["a@x.io", "151"],
            "newest first, either connector's"
        );
        assert_eq!(found("t1", "email:a@x.io"), ["151"]);
        assert!(
            found("t2", phone).is_empty(),
            "another tenant finds nothing"
        );

        // Replaced: the old lookups go. Deleted: the record's lookups go with it.
        store
            .apply(
                "t1",
                "hubspot",
                effects(vec![], vec![set("151", &["email:b@x.io"])]),
            )
            .await
            .unwrap();
        assert_eq!(found("t1", phone), ["a@x.io"]);
        assert_eq!(found("t1", "email:b@x.io"), ["151"]);
        store
            .apply("t1", "zapier", effects(vec![rec("a@x.io", None)], vec![]))
            .await
            .unwrap();
        assert!(found("t1", phone).is_empty());
        // A record written again after its delete has no lookups until they are set again.
        store
            .apply(
                "t1",
                "zapier",
                effects(vec![rec("a@x.io", Some("{}"))], vec![]),
            )
            .await
            .unwrap();
        assert!(found("t1", phone).is_empty());
    }

    #[tokio::test]
    async fn duplicate_is_stored_once_and_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.ingest(vec![delivery("x")]).await.unwrap();
        let b = store.ingest(vec![delivery("x")]).await.unwrap();
        assert!(matches!(a[0], Ingested::Stored(_)));
        assert_eq!(b[0], Ingested::Duplicate(a[0].id()));
        let jobs = store.claim(10, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].task,
            Task::Delivery {
                delivery_id: a[0].id()
            }
        );
    }

    #[tokio::test]
    async fn concurrent_ingests_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut handles = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.ingest(vec![delivery(&format!("id{i}"))]).await
            }));
        }
        for h in handles {
            assert!(matches!(h.await.unwrap().unwrap()[0], Ingested::Stored(_)));
        }
        let rows = store
            .deliveries(DeliveryFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 200);
    }

    #[tokio::test]
    async fn webhooks_committed_together_are_deduplicated_against_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(
                    async move { s.ingest(vec![delivery(&format!("id{}", i % 50))]).await },
                )
            })
            .collect();
        let mut stored = std::collections::HashMap::new();
        let mut duplicates = Vec::new();
        for h in handles {
            match h.await.unwrap().unwrap()[0] {
                Ingested::Stored(id) => assert!(stored.insert(id, ()).is_none()),
                Ingested::Duplicate(id) => duplicates.push(id),
            }
        }
        assert_eq!((stored.len(), duplicates.len()), (50, 50));
        assert!(duplicates.iter().all(|id| stored.contains_key(id)));
        assert_eq!(store.claim(1000, 60_000).await.unwrap().len(), 50);
    }

    #[tokio::test]
    async fn a_webhook_that_cannot_be_stored_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Another connection makes one identity impossible to store.
        Connection::open(dir.path().join("hub.db"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.identity = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let s = store.clone();
                let id = if i == 50 {
                    "poison".to_string()
                } else {
                    format!("id{i}")
                };
                tokio::spawn(async move { (i, s.ingest(vec![delivery(&id)]).await) })
            })
            .collect();
        for h in handles {
            match h.await.unwrap() {
                (50, result) => assert!(result.is_err(), "the poisoned webhook is refused"),
                (_, result) => assert!(matches!(result.unwrap()[0], Ingested::Stored(_))),
            }
        }
        assert_eq!(store.claim(1000, 60_000).await.unwrap().len(), 99);
    }

    #[tokio::test]
    async fn expired_lease_is_claimed_again_and_effects_commit_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.ingest(vec![delivery("x")]).await.unwrap();
        let first = store.claim(1, -1).await.unwrap(); // lease already expired: a crashed worker
        assert_eq!(first.len(), 1);
        let again = store.claim(1, 60_000).await.unwrap();
        assert_eq!(again.len(), 1, "a job whose lease expired is claimed again");
        assert_eq!(again[0].attempts, 2);
        let effects = Effects {
            records: vec![("call".into(), "c1".into(), Some("{\"a\":1}".into()))],
            ..Default::default()
        };
        let retry = JobEnd::Retry {
            error: "boom".into(),
            at_ms: now_ms(),
        };
        store
            .finish(again[0].id, effects.clone(), retry, 5)
            .await
            .unwrap();
        assert_eq!(
            store.record_get("t1", "call", "c1").unwrap(),
            None,
            "failed attempt leaves no record"
        );
        let third = store.claim(1, 60_000).await.unwrap();
        store
            .finish(
                third[0].id,
                effects,
                JobEnd::Done {
                    ignored: None,
                    result: None,
                },
                5,
            )
            .await
            .unwrap();
        assert_eq!(
            store.record_get("t1", "call", "c1").unwrap().as_deref(),
            Some("{\"a\":1}")
        );
        let row = store.delivery(1).await.unwrap().unwrap();
        assert_eq!(row.state, "done");
    }

    #[tokio::test]
    async fn a_stale_read_applies_nothing_and_the_job_runs_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .ingest(vec![delivery("a"), delivery("b")])
            .await
            .unwrap();
        let jobs = store.claim(2, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 2);
        // Both attempts read record call/c1 while it was absent (version 0) and write it.
        let write = |v: &str| Effects {
            records: vec![("call".into(), "c1".into(), Some(v.into()))],
            reads: vec![(Read::Record("call".into(), "c1".into()), 0)],
            ..Default::default()
        };
        let done = JobEnd::Done {
            ignored: None,
            result: None,
        };
        store
            .finish(jobs[0].id, write("{\"n\":1}"), done.clone(), 1)
            .await
            .unwrap();
        store
            .finish(jobs[1].id, write("{\"n\":2}"), done, 1)
            .await
            .unwrap();
        assert_eq!(
            store.record_get("t1", "call", "c1").unwrap().as_deref(),
            Some("{\"n\":1}"),
            "the stale write is not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let again = store.claim(2, 60_000).await.unwrap();
        assert_eq!(again.len(), 1, "the conflicting job is queued again");
        assert_eq!(again[0].id, jobs[1].id);
        assert_eq!(
            again[0].attempts, 1,
            "a conflict does not count as a failed attempt"
        );
    }

    #[tokio::test]
    async fn finishing_a_job_hands_over_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .ingest(vec![delivery("a"), delivery("b")])
            .await
            .unwrap();
        let first = store.claim(1, 60_000).await.unwrap().remove(0);
        let done = JobEnd::Done {
            ignored: None,
            result: None,
        };
        let next = store
            .finish_and_claim(first.id, Effects::default(), done.clone(), 1, 60_000)
            .await
            .unwrap()
            .expect("the second delivery's job comes with the first one's end");
        assert_ne!(next.id, first.id);
        assert_eq!(next.attempts, 1);
        assert!(
            store.claim(5, 60_000).await.unwrap().is_empty(),
            "the handed-over job is leased, not claimable again"
        );
        let after = store
            .finish_and_claim(next.id, Effects::default(), done, 1, 60_000)
            .await
            .unwrap();
        assert!(after.is_none(), "an empty queue hands over nothing");
        assert_eq!(store.delivery(1).await.unwrap().unwrap().state, "done");
        assert_eq!(store.delivery(2).await.unwrap().unwrap().state, "done");
    }

    #[tokio::test]
    async fn the_wal_is_folded_back_by_its_own_thread_while_webhooks_keep_coming() {
        // The writer never checkpoints (`wal_autocheckpoint = 0`); the checkpoint thread copies
        // the WAL back into the database on its own. How far it keeps up while webhooks come
        // depends on the CPU it gets (a busy machine lets the WAL grow, up to the 64 MiB that
        // forces a RESTART), so the test asserts that it does the copying, within a bound.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = dir.path().join("hub.db");
        for round in 0..40 {
            let batch = (0..100)
                .map(|i| NewDelivery {
                    body: vec![b'x'; 8 * 1024],
                    ..delivery(&format!("r{round}-{i}"))
                })
                .collect();
            store.ingest(batch).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let written = 40 * 100 * 8 * 1024;
        let started = std::time::Instant::now();
        loop {
            let size = std::fs::metadata(&db).unwrap().len();
            if size >= written / 2 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the database file is {size} bytes after {written} bytes of bodies: not checkpointed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
