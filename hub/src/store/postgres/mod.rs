//! The store on PostgreSQL: the same nouns and methods as the SQLite store, for several hub
//! processes sharing one database.
//!
//! - Connections come from a pool ([`deadpool_postgres`]) of [`tokio_postgres`] clients; a
//!   dropped connection is replaced by the pool, so the hub reconnects by itself.
//! - Webhooks are stored by group commit ([`ingest`]): whatever arrived while the previous
//!   transaction committed goes into the next one, acknowledged only after `COMMIT` returned
//!   (`synchronous_commit` on: the commit is on disk).
//! - Jobs are claimed with `FOR UPDATE SKIP LOCKED` ([`queue`]): claimers never wait for one
//!   another, each claim carries a random lease token, and only the token's holder ends the job.
//!   Expired leases are taken by whichever process claims next. Jobs end by group commit too
//!   ([`ends`]): the ends waiting are checked, written and followed by the next claims in one
//!   transaction of multi-row statements ([`rows`]).
//! - After a commit that queued work, the hub wakes its own workers at once and sends one
//!   `NOTIFY hub_work` for the others ([`Notifier`]), outside the data transaction: PostgreSQL
//!   serializes the commits of transactions that `NOTIFY` (a global lock at commit), which would
//!   undo the group commit. Notifications sent while one is on its way are folded into the
//!   next. One dedicated connection per process listens ([`listen`]); the workers' poll stays
//!   the fallback.
//! - Versioned migrations ([`schema`]), applied at start under an advisory lock so that two hubs
//!   starting together do not race; a schema newer than this binary is refused.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{Notify, mpsc};

use super::{Result, StoreError};
use crate::id::{ConnectorId, TenantId};

mod analytics;
mod audit;
mod channels;
mod connections;
mod effects;
mod ends;
mod enqueue;
mod ingest;
mod pipeline;
mod prune;
mod queue;
mod reads;
mod records;
mod replay;
mod rows;
mod schema;
mod tls;
mod versions;

use crate::config::postgres::{PostgresSettings, describe};

#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

/// How long a statement waits for a lock before it fails (ms).
const LOCK_TIMEOUT_MS: u64 = 5000;

/// The channel `NOTIFY` wakes workers on.
const WORK_CHANNEL: &str = "hub_work";
/// The channel `NOTIFY` wakes change-feed followers on.
const CHANGED_CHANNEL: &str = "hub_changed";

/// Handle to a PostgreSQL store. Clones are cheap and share the pool and the ingest writers.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    /// Host, port and database, for messages (never the password).
    target: Arc<str>,
    ingest: mpsc::Sender<ingest::Batch>,
    ends: mpsc::Sender<ends::Request>,
    notifier: Arc<Notifier>,
    /// Where the blocking reads (host calls) run their queries.
    runtime: tokio::runtime::Handle,
    /// Signalled when another transaction (of any process) queued work.
    pub work: Arc<Notify>,
    /// Signalled when records may have changed.
    pub changed: Arc<Notify>,
    /// Signalled when a hub wrote a new config version.
    pub config: Arc<Notify>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: never printed.
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

/// Checks, without changing anything, that a store could open at `config`: the server answers
/// and takes the login, its schema is not newer than this hub's, and, where the tables are yet
/// to be made, the user may create them.
///
/// # Errors
/// What stands in the way, in words.
pub async fn probe(settings: PostgresSettings) -> Result<()> {
    let where_ = settings.target();
    let connect = |reason: String| StoreError::Connect {
        target: where_.clone(),
        reason,
    };
    let tls = tls::connector(&settings).map_err(&connect)?;
    let config = &settings.config;
    let connecting = tokio::time::timeout(Duration::from_secs(10), config.connect(tls));
    let (client, connection) = match connecting.await {
        Err(_) => return Err(connect("no answer within 10 s".into())),
        Ok(Err(e)) => return Err(connect(message(&e))),
        Ok(Ok(pair)) => pair,
    };
    let task = tokio::spawn(connection);
    let result = async {
        let version = schema::version_of(&client).await?;
        if version > schema::VERSION {
            return Err(StoreError::Schema(format!(
                "the database's schema is version {version}, newer than this hub knows (up to {})",
                schema::VERSION
            )));
        }
        if version < schema::VERSION {
            let may: bool = client
                .query_one("SELECT has_schema_privilege(current_schema(), 'CREATE')", &[])
                .await?
                .get(0);
            if !may {
                return Err(StoreError::Schema(format!(
                    "user {} may not create the hub's tables in schema {} (GRANT CREATE ON SCHEMA ... TO ...)",
                    config.get_user().unwrap_or("?"),
                    client
                        .query_one("SELECT current_schema()", &[])
                        .await?
                        .get::<_, String>(0)
                )));
            }
        } else {
            privileges(&client, config).await?;
        }
        Ok(())
    }
    .await;
    drop(client);
    let _ = task.await;
    result
}

/// Refuses a user who may not read and write every table and sequence of the hub's schema
/// (a read-only role, say), naming what it lacks: found at `hub check` and at start, not at the
/// first webhook.
async fn privileges(
    client: &tokio_postgres::Client,
    config: &tokio_postgres::Config,
) -> Result<()> {
    let lacking: Vec<String> = client
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND (
                 (c.relkind IN ('r', 'p') AND NOT (has_table_privilege(c.oid, 'SELECT')
                  AND has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'UPDATE')
                  AND has_table_privilege(c.oid, 'DELETE')))
              OR (c.relkind = 'S' AND NOT (has_sequence_privilege(c.oid, 'USAGE')
                  AND has_sequence_privilege(c.oid, 'SELECT'))))
             ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    let shown = lacking
        .iter()
        .take(6)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = lacking.len().saturating_sub(6);
    Err(StoreError::Schema(format!(
        "user {} may not read and write the hub's tables: no SELECT, INSERT, UPDATE and DELETE \
         (or USAGE on a sequence) on {shown}{} (GRANT ALL ON ALL TABLES IN SCHEMA ... TO ...; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA ... TO ...)",
        config.get_user().unwrap_or("?"),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    )))
}

impl Postgres {
    /// Connects to the database at `url` (a libpq-style URL or key=value string), brings its
    /// schema up to date and starts the ingest writers and the listener. Must run inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// When the URL cannot be read, the server cannot be reached or refuses the login, or the
    /// schema cannot be created (no permission) or is newer than this hub.
    pub async fn connect(url: &str) -> Result<Postgres> {
        let settings = PostgresSettings::parse(url).map_err(|e| StoreError::Connect {
            target: describe(url),
            reason: format!("the connection string cannot be read: {e}"),
        })?;
        Postgres::connect_with(settings).await
    }

    /// [`connect`](Postgres::connect) with a parsed connection (its password set apart from
    /// the URL, say).
    ///
    /// # Errors
    /// As [`connect`](Postgres::connect).
    pub async fn connect_with(settings: PostgresSettings) -> Result<Postgres> {
        let where_ = settings.target();
        let tls = tls::connector(&settings).map_err(|reason| StoreError::Connect {
            target: where_.clone(),
            reason,
        })?;
        let mut config = settings.config;
        // A write that waits on a lock gives up after 5 s (the SQLite store's busy timeout):
        // the webhook gets a 503 and its provider retries, rather than the request hanging.
        // `synchronous_commit` is set on whatever the server or database default: a webhook is
        // acknowledged only once its commit is on disk.
        let options = format!(
            "{} -c lock_timeout={LOCK_TIMEOUT_MS} -c idle_in_transaction_session_timeout=60000 \
             -c synchronous_commit=on",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(24)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Connect {
                target: where_.clone(),
                reason: e.to_string(),
            })?;
        {
            let mut client = pool.get().await.map_err(|e| StoreError::Connect {
                target: where_.clone(),
                reason: pool_reason(&e),
            })?;
            schema::migrate(&mut client).await?;
            privileges(&client, &config).await?;
        }
        let work = Arc::new(Notify::new());
        let changed = Arc::new(Notify::new());
        let notifier = Notifier::start(pool.clone(), work.clone(), changed.clone());
        let ingest = ingest::start(pool.clone(), notifier.clone());
        let ends = ends::start(pool.clone(), notifier.clone());
        let config_changed = Arc::new(Notify::new());
        tokio::spawn(listen(
            config,
            tls,
            work.clone(),
            changed.clone(),
            config_changed.clone(),
        ));
        Ok(Postgres {
            pool,
            target: where_.into(),
            ingest,
            ends,
            notifier,
            runtime: tokio::runtime::Handle::current(),
            work,
            changed,
            config: config_changed,
        })
    }

    /// Host, port and database (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A pooled connection.
    pub(in crate::store) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Runs `f` to completion from a blocking thread (a host call of a running connector).
    fn blocking<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(f)
    }
}

/// Why the pool could not give a connection, in words (the server's own message when it sent one).
fn pool_reason(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => message(e),
        },
        other => other.to_string(),
    }
}

/// Keeps one connection listening on the hub's channels and signals the matching [`Notify`] for
/// each notification; reconnects (after a second) whenever the connection is lost.
async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls_improved::MakeRustlsConnect,
    work: Arc<Notify>,
    changed: Arc<Notify>,
    config_changed: Arc<Notify>,
) {
    use futures::StreamExt as _;
    let config_channel = versions::CONFIG_CHANNEL;
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let pump = tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(message) = stream.next().await {
                        match message {
                            Ok(message) => {
                                let _ = tx.send(message);
                            }
                            Err(e) => {
                                tracing::warn!("postgres listener connection lost: {e}");
                                break;
                            }
                        }
                    }
                });
                let listening = client
                    .batch_execute(&format!(
                        "LISTEN {WORK_CHANNEL}; LISTEN {CHANGED_CHANNEL}; LISTEN {config_channel}"
                    ))
                    .await;
                if listening.is_ok() {
                    // Whatever was queued while we were not listening.
                    wake(&work);
                    wake(&changed);
                    wake(&config_changed);
                    while let Some(message) = rx.recv().await {
                        if let tokio_postgres::AsyncMessage::Notification(n) = message {
                            match n.channel() {
                                WORK_CHANNEL => wake(&work),
                                CHANGED_CHANNEL => wake(&changed),
                                c if c == config_channel => wake(&config_changed),
                                _ => {}
                            }
                        }
                    }
                }
                pump.abort();
            }
            Err(e) => tracing::warn!("postgres listener cannot connect: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Tells this hub's workers (at once) and every other hub (by `NOTIFY`, soon) that a commit
/// queued work or changed records.
pub(super) struct Notifier {
    work: std::sync::atomic::AtomicBool,
    changed: std::sync::atomic::AtomicBool,
    kick: Notify,
    local_work: Arc<Notify>,
    local_changed: Arc<Notify>,
}

impl Notifier {
    fn start(pool: Pool, local_work: Arc<Notify>, local_changed: Arc<Notify>) -> Arc<Notifier> {
        use std::sync::atomic::Ordering;
        let notifier = Arc::new(Notifier {
            work: false.into(),
            changed: false.into(),
            kick: Notify::new(),
            local_work,
            local_changed,
        });
        let sender = Arc::downgrade(&notifier);
        tokio::spawn(async move {
            loop {
                let Some(n) = sender.upgrade() else { return };
                n.kick.notified().await;
                let mut sql = String::new();
                if n.work.swap(false, Ordering::AcqRel) {
                    sql.push_str(&format!("NOTIFY {WORK_CHANNEL};"));
                }
                if n.changed.swap(false, Ordering::AcqRel) {
                    sql.push_str(&format!("NOTIFY {CHANGED_CHANNEL};"));
                }
                drop(n);
                if !sql.is_empty()
                    && let Ok(client) = pool.get().await
                    && let Err(e) = client.batch_execute(&sql).await
                {
                    tracing::debug!("cannot notify the other hubs: {}", message(&e));
                }
                // What commits meanwhile rides on the next notification.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        notifier
    }

    /// After a commit: wake what it concerns.
    pub(super) fn committed(&self, work: bool, changed: bool) {
        use std::sync::atomic::Ordering;
        if work {
            wake(&self.local_work);
            self.work.store(true, Ordering::Release);
        }
        if changed {
            wake(&self.local_changed);
            self.changed.store(true, Ordering::Release);
        }
        if work || changed {
            self.kick.notify_one();
        }
    }
}

fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

/// Text as PostgreSQL can keep it: `text` holds no NUL character (SQLite does), so each becomes
/// U+FFFD. A webhook's identity, a record's key or a connector's error message with one is kept,
/// the same input always the same text (so it deduplicates as before).
pub(super) fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// [`text`] for an optional value.
pub(super) fn text_opt(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    s.as_deref().map(text)
}

/// A stored tenant id (checked when it was written).
fn tenant(row: &tokio_postgres::Row, i: usize) -> Result<TenantId> {
    let text: &str = row.try_get(i)?;
    if text == crate::id::ANY_TENANT {
        return Ok(TenantId::any());
    }
    TenantId::try_from(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored connector id.
fn connector(row: &tokio_postgres::Row, i: usize) -> Result<ConnectorId> {
    ConnectorId::try_from(row.try_get::<_, &str>(i)?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored state enum.
fn state<T: std::str::FromStr<Err = String>>(row: &tokio_postgres::Row, i: usize) -> Result<T> {
    row.try_get::<_, &str>(i)?
        .parse()
        .map_err(StoreError::Corrupt)
}

/// A PostgreSQL error in words: the server's message (and detail) when it sent one, else what
/// the client saw.
pub(super) fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // tokio-postgres names the step ("error performing TLS handshake"); the cause
            // (the certificate's fault, say) is in the source chain.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let next = c.to_string();
                if !text.contains(&next) {
                    text = format!("{text}: {next}");
                }
                cause = c.source();
            }
            text
        }
    }
}
