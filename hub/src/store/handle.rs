//! [`Store`]: the one handle the rest of the hub holds, on either backend. Its methods are the
//! store's contract; each runs the backend's method of the same name and signature, so a
//! method one backend lacks does not compile. `contract.rs` tests the same behaviour of both.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

use super::postgres::Postgres;
use super::*;
use crate::id::{ConnectorId, TenantId};

/// Handle to the hub's durable state. Clones are cheap and share the backend.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Signalled after a commit that queued work (on PostgreSQL: by any hub).
    pub work: Arc<Notify>,
    /// Signalled after a commit that may have changed records (the change feed's followers).
    pub changed: Arc<Notify>,
    /// Signalled after this process ended a job (an action's waiters; a job another hub ends
    /// is seen by polling).
    pub ended: Arc<Notify>,
    /// On PostgreSQL: signalled when any hub wrote a config version (never on SQLite, where
    /// one hub owns the store).
    pub config: Arc<Notify>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

impl Store {
    /// Opens (creating if needed) the SQLite store `hub.db` in `data_dir`.
    ///
    /// # Errors
    /// When the directory cannot be created or the database cannot be opened.
    pub fn open(data_dir: &Path) -> Result<Store> {
        let sqlite = Sqlite::open(data_dir)?;
        Ok(Store {
            work: sqlite.work.clone(),
            changed: sqlite.changed.clone(),
            ended: Arc::default(),
            config: Arc::default(),
            backend: Backend::Sqlite(sqlite),
        })
    }

    /// Connects to the PostgreSQL store at `url`, migrating its schema. Must run in a tokio
    /// runtime.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses the login, or the schema cannot be made.
    pub async fn connect(url: &str) -> Result<Store> {
        let pg = Postgres::connect(url).await?;
        Ok(Store {
            work: pg.work.clone(),
            changed: pg.changed.clone(),
            ended: Arc::default(),
            config: pg.config.clone(),
            backend: Backend::Postgres(pg),
        })
    }

    /// [`connect`](Store::connect) with a parsed connection (its password set apart).
    ///
    /// # Errors
    /// As [`connect`](Store::connect).
    pub async fn connect_with(settings: crate::config::PostgresSettings) -> Result<Store> {
        let pg = Postgres::connect_with(settings).await?;
        Ok(Store {
            work: pg.work.clone(),
            changed: pg.changed.clone(),
            ended: Arc::default(),
            config: pg.config.clone(),
            backend: Backend::Postgres(pg),
        })
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether several hubs may share this store (PostgreSQL).
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Which backend this is, for messages: `sqlite PATH` or `postgres HOST:PORT/DB`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => format!("sqlite {}", s.path().display()),
            Backend::Postgres(p) => format!("postgres {}", p.target()),
        }
    }
}

/// `Store`'s methods, each the backend's of the same name: `async` ones awaited, blocking
/// ones (host calls, on the invocation's thread) called.
macro_rules! contract {
    ($(
        $(#[$doc:meta])*
        $(async $(@$async:tt)?)? fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        impl Store {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// When the database fails (or cannot commit, for a write).
                pub $(async $($async)?)? fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.backend {
                        Backend::Sqlite(s) => s.$name($($arg),*) $(.await $($async)?)?,
                        Backend::Postgres(p) => p.$name($($arg),*) $(.await $($async)?)?,
                    }
                }
            )*
        }
    };
}

contract! {
    /// Stores deliveries durably (deduplicated) and queues each new one for its connector;
    /// returns once they are committed (and on disk).
    async fn ingest(&self, deliveries: Vec<NewDelivery>) -> Result<Vec<Ingested>>;
    /// A delivery's stored request (blocking; for the worker).
    fn delivery_request(&self, id: i64) -> Result<Option<StoredRequest>>;
    /// Recent deliveries, newest first.
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>>;
    /// One delivery with its headers and body.
    async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>>;
    /// Commits the effects of a synchronous invocation (a `respond` on a sync route).
    async fn apply(&self, tenant: &TenantId, connector: &ConnectorId, effects: Effects) -> Result<()>;
    /// Whether one of the tenant's endpoints is disabled, since when and why.
    async fn endpoint_disabled(&self, tenant: &TenantId, endpoint: &str) -> Result<Option<Disabled>>;
    /// Disables an endpoint (with why) or enables it again (`None`).
    async fn set_endpoint_disabled(&self, tenant: &TenantId, endpoint: &str, reason: Option<String>) -> Result<()>;
    /// A tenant's events, newest first, before the event `before`.
    async fn events(&self, tenant: TenantId, before: Option<i64>, limit: usize) -> Result<Vec<EventRow>>;
    /// The events the tenant's jobs (by idempotency key) published.
    async fn events_of_jobs(&self, tenant: TenantId, job_keys: Vec<String>) -> Result<Vec<EventRow>>;
    /// A kv value and its version (0 when absent) (blocking; for host calls).
    fn kv_get_versioned(&self, tenant: &TenantId, connector: &ConnectorId, key: &str) -> Result<(Option<Vec<u8>>, i64)>;
    /// A kv value (blocking; for host calls).
    fn kv_get(&self, tenant: &TenantId, connector: &ConnectorId, key: &str) -> Result<Option<Vec<u8>>>;
    /// Prunes at most `limit` of each kind older than `cutoff_ms`, each kind in its own
    /// transaction.
    async fn prune_batch(&self, cutoff_ms: i64, limit: usize) -> Result<Pruned>;
    /// Queues a job; `None` when a job with the same idempotency key exists.
    async fn enqueue(&self, job: NewJob) -> Result<Option<i64>>;
    /// Queues a job from a blocking thread.
    fn enqueue_blocking(&self, job: NewJob) -> Result<Option<i64>>;
    /// Claims up to `limit` ready jobs (or jobs whose lease expired), under a new lease.
    async fn claim(&self, limit: usize, lease_ms: i64) -> Result<Vec<Job>>;
    /// Ends a claimed job with its effects, all or nothing; [`StoreError::LeaseLost`] when
    /// the lease is no longer the caller's.
    async fn finish(&self, lease: Lease, effects: Effects, end: JobEnd, duration_us: i64) -> Result<()>;
    /// `finish`, and in the same transaction claim the next ready job for the same worker.
    async fn finish_and_claim(&self, lease: Lease, effects: Effects, end: JobEnd, duration_us: i64, lease_ms: i64) -> Result<Option<Job>>;
    /// One job.
    async fn job(&self, id: i64) -> Result<Option<JobRow>>;
    /// The jobs that belong to a delivery.
    async fn jobs_for_delivery(&self, id: i64) -> Result<Vec<JobRow>>;
    /// Number of jobs not yet finished (queued or running).
    async fn pending_jobs(&self) -> Result<i64>;
    /// Job counts by `(tenant, connector, state)` for a status view, queued and running ones
    /// up to `cap`.
    async fn queue_counts(&self, cap: i64) -> Result<Vec<JobCount>>;
    /// Job counts by `(tenant, connector, state)`.
    async fn job_counts(&self) -> Result<Vec<JobCount>>;
    /// When the longest-waiting queued job became due (ms), if one is due at `now_ms`.
    async fn oldest_due(&self, now_ms: i64) -> Result<Option<i64>>;
    /// Each (tenant, connector) with dead-lettered jobs.
    async fn dead_pairs(&self) -> Result<Vec<(TenantId, ConnectorId)>>;
    /// Up to `limit` records of a kind, newest first, as `(key, json, version)` (blocking).
    fn record_list(&self, tenant: &TenantId, kind: &str, limit: u32) -> Result<Vec<(String, String, i64)>>;
    /// Up to `limit` records of a kind that carry `lookup`, newest first (blocking).
    fn record_find(&self, tenant: &TenantId, kind: &str, lookup: &str, limit: u32) -> Result<Vec<(String, String, i64)>>;
    /// A record's JSON and version (0 when absent) (blocking; for host calls).
    fn record_get_versioned(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<(Option<String>, i64)>;
    /// A record's JSON (blocking; for host calls).
    fn record_get(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<Option<String>>;
    /// Records of a tenant, last changed first: all, one kind, or one kind's found by a lookup.
    async fn records(&self, tenant: TenantId, filter: RecordFilter) -> Result<Vec<RecordRow>>;
    /// The kinds of record a tenant has, in order.
    async fn record_kinds(&self, tenant: TenantId) -> Result<Vec<String>>;
    /// One record of a tenant.
    async fn record(&self, tenant: TenantId, kind: String, key: String) -> Result<Option<RecordRow>>;
    /// The records a tenant's jobs last wrote.
    async fn records_of_jobs(&self, tenant: TenantId, jobs: Vec<i64>) -> Result<Vec<RecordRow>>;
    /// The tenant's records changed after cursor `after`, in change order.
    async fn changes(&self, tenant: TenantId, after: i64, kinds: Option<Vec<String>>, limit: usize) -> Result<Changes>;
    /// Replays a delivery, a job, or a set of dead jobs; `None` when the named one does not
    /// exist.
    async fn replay(&self, what: Replay) -> Result<Option<Replayed>>;
    /// How many dead jobs `filter` matches (a bulk replay's preview).
    async fn count_dead(&self, filter: DeadFilter) -> Result<i64>;
    /// Jobs, newest first, with their keys, timings and replay history.
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobDetail>>;
    /// One delivery with its payload, prune time and jobs.
    async fn delivery_detail(&self, id: i64) -> Result<Option<DeliveryDetail>>;
    /// The last tick recorded for a schedule; a new one is recorded as having ticked at
    /// `now_ms`.
    async fn schedule_start(&self, tenant: &TenantId, name: &str, now_ms: i64) -> Result<i64>;
    /// Claims a tick: each tick runs once, whichever hubs share the store.
    async fn claim_tick(&self, claim: TickClaim) -> Result<TickOutcome>;
    /// Each of a tenant's schedules' last recorded tick (ms) and the job that tick queued.
    async fn schedule_runs(&self, tenant: TenantId) -> Result<Vec<(String, i64, Option<i64>)>>;
    /// Each (tenant, connector)'s last delivery and last success (ms), ever.
    async fn last_activity(&self) -> Result<Vec<(TenantId, ConnectorId, Option<i64>, Option<i64>)>>;
    /// Deliveries per (tenant, connector) and hour since `since_ms`.
    async fn activity(&self, since_ms: i64) -> Result<Vec<ActivityHour>>;
    /// The tenant's figures per day from `since` (`YYYY-MM-DD`, UTC) on.
    async fn analytics(&self, tenant: TenantId, since: String) -> Result<Analytics>;
    /// The schema version the database is at.
    async fn schema_version(&self) -> Result<i64>;
    /// An OAuth2 credential's stored tokens and health.
    async fn connection(&self, key: ConnectionKey) -> Result<Option<Connection>>;
    /// A tenant's OAuth2 connections.
    async fn connections(&self, tenant: TenantId) -> Result<Vec<ConnectionRow>>;
    /// Writes a connection (leased writes only by the lease's holder); whether it was written.
    async fn write_connection(&self, key: ConnectionKey, write: ConnectionWrite) -> Result<bool>;
    /// Creates, opens (once) or spends (once) a consent flow; the flow opened or spent.
    async fn write_flow(&self, write: FlowWrite) -> Result<Option<Flow>>;
    /// A push channel the hub holds, if it does.
    async fn channel(&self, key: ChannelKey) -> Result<Option<HeldChannel>>;
    /// A tenant's connector's push channels, oldest first.
    async fn channels(&self, tenant: TenantId, connector: ConnectorId) -> Result<Vec<HeldChannel>>;
    /// Opens, keeps or closes a push channel; whether it changed anything.
    async fn write_channel(&self, key: ChannelKey, write: ChannelWrite) -> Result<bool>;
    /// Writes a config version on top of `push.base` (stale: not written, the newest named).
    async fn config_push(&self, push: VersionPush) -> Result<Pushed>;
    /// A config version with its document (`None`: the newest).
    async fn config_version(&self, number: Option<i64>) -> Result<Option<ConfigVersion>>;
    /// Appends an entry to the audit trail.
    async fn audit_write(&self, entry: AuditEntry) -> Result<()>;
    /// Audit entries `filter` matches, newest first.
    async fn audit(&self, filter: AuditFilter) -> Result<Vec<AuditRow>>;
    /// Deletes up to `limit` audit entries older than `cutoff_ms`; how many.
    async fn prune_audit(&self, cutoff_ms: i64, limit: usize) -> Result<usize>;
    /// Config versions older than `before`, newest first, without their documents.
    async fn config_versions(&self, before: Option<i64>, limit: usize) -> Result<Vec<ConfigVersion>>;
}

impl Store {
    /// Replays the dead jobs `filter` matches, in batches, telling `progress` the running
    /// total after each.
    ///
    /// # Errors
    /// When the database cannot commit; batches committed before stay replayed.
    pub async fn replay_dead(
        &self,
        filter: DeadFilter,
        progress: impl Fn(Replayed) + Send,
    ) -> Result<Replayed> {
        match &self.backend {
            Backend::Sqlite(s) => s.replay_dead(filter, progress).await,
            Backend::Postgres(p) => p.replay_dead(filter, progress).await,
        }
    }
}
