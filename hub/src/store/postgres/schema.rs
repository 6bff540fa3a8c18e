//! The PostgreSQL schema as numbered migrations: version N of the schema is what the first N
//! entries of [`MIGRATIONS`] make. `hub_schema` holds the version a database is at; a hub
//! applies the entries past it at start, each in its own transaction, under an advisory lock
//! (two hubs starting at once: one migrates, the other waits and finds it done). A database at
//! a version past the end of the list was made by a newer hub and is refused.
//!
//! Entries are never edited once released: a change is a new entry.

use super::super::{Result, StoreError};

/// The advisory lock migrations hold (any constant; "hub" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_7562;

/// The migrations, oldest first.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite store as of its change feed and lease tokens.
    r#"
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    route TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT 'POST',
    identity TEXT NOT NULL,
    event TEXT,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'received',
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    ignored_reason TEXT,
    processed_at BIGINT,
    duration_us BIGINT,
    pruned_at BIGINT,
    UNIQUE (tenant, connector, identity)
);
CREATE INDEX deliveries_unpruned ON deliveries (received_at) WHERE pruned_at IS NULL;
-- The status view counts the log by hour, and each source's last delivery.
CREATE INDEX deliveries_by_time ON deliveries (received_at);
CREATE INDEX deliveries_by_source ON deliveries (tenant, connector, received_at);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    task TEXT NOT NULL,
    delivery_id BIGINT,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'queued',
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    lease_token BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    result TEXT
);
-- The claim reads only ready jobs and expired leases, each through its own partial index.
CREATE INDEX jobs_queued ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (tenant, connector) WHERE state = 'dead';
CREATE INDEX jobs_by_delivery ON jobs (delivery_id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE SEQUENCE record_seq;
-- `tx`: the transaction that last wrote the row; the change feed's order (see `changes`).
CREATE TABLE records (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    lookups TEXT,
    seq BIGINT NOT NULL,
    job_id BIGINT,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (tenant, kind, key)
);
CREATE INDEX records_by_seq ON records (tenant, seq);
CREATE INDEX records_by_tx ON records (tenant, tx);
CREATE INDEX records_by_job ON records (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX records_by_time ON records (tenant, kind, updated_at DESC, key);
CREATE TABLE record_tombstones (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (tenant, kind, key)
);
CREATE INDEX tombstones_by_tx ON record_tombstones (tenant, tx);
CREATE INDEX tombstones_by_time ON record_tombstones (deleted_at);
CREATE TABLE record_lookups (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    lookup TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, lookup, key)
);
CREATE TABLE kv (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    key TEXT NOT NULL,
    value BYTEA NOT NULL,
    version BIGINT NOT NULL,
    marker_at BIGINT,
    PRIMARY KEY (tenant, connector, key)
);
CREATE INDEX kv_markers ON kv (marker_at) WHERE marker_at IS NOT NULL;
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    job_id BIGINT,
    created_at BIGINT NOT NULL,
    key TEXT
);
CREATE INDEX events_by_time ON events (created_at);
CREATE UNIQUE INDEX events_by_key ON events (key) WHERE key IS NOT NULL;
CREATE TABLE schedules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    last_tick_ms BIGINT NOT NULL,
    last_job_id BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE job_replays (
    job_id BIGINT NOT NULL,
    replayed_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    finished_at BIGINT
);
CREATE INDEX job_replays_by_job ON job_replays (job_id);
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE endpoint_states (
    tenant TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    disabled_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (tenant, endpoint)
);
"#,
    // 2: connected accounts (OAuth2 tokens and the consent flow).
    super::connections::MIGRATION,
    // 3: push channels.
    super::channels::MIGRATION,
    // 4: config versions.
    super::versions::MIGRATION,
    // 5: the audit trail.
    super::audit::MIGRATION,
];

/// The schema version this hub makes and reads.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`VERSION`], or refuses one that is past it.
pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    // Unlocked either way (the lock is the session's: a pooled connection outlives this).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<()> {
    if version_of(client).await? == VERSION {
        // Up to date: nothing to create (and a user without CREATE may still run the hub).
        return Ok(());
    }
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS hub_schema (version BIGINT NOT NULL)")
        .await
        .map_err(|e| StoreError::Schema(format!(
            "cannot create the hub's tables: {} (the database user needs CREATE on the database's schema)",
            super::message(&e)
        )))?;
    let at: Option<i64> = client
        .query_opt("SELECT version FROM hub_schema", &[])
        .await?
        .map(|r| r.get(0));
    let at = at.unwrap_or(0);
    if at > VERSION {
        return Err(StoreError::Schema(format!(
            "the database's schema is version {at}, newer than this hub knows (up to {VERSION}): \
             it was made by a newer hub; run that one, or restore a backup made for this one"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        let version = i as i64 + 1;
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Schema(format!(
                "schema migration {version} failed: {}",
                super::message(&e)
            ))
        })?;
        tx.execute("DELETE FROM hub_schema", &[]).await?;
        tx.execute("INSERT INTO hub_schema (version) VALUES ($1)", &[&version])
            .await?;
        tx.commit().await?;
        tracing::info!("database schema migrated to version {version}");
    }
    Ok(())
}

/// The version a database is at (0: a database the hub never used).
pub(super) async fn version(client: &deadpool_postgres::Object) -> Result<i64> {
    version_of(client).await
}

/// [`version`] on a plain client.
pub(super) async fn version_of(client: &tokio_postgres::Client) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('hub_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM hub_schema", &[])
        .await?
        .map_or(0, |r| r.get(0)))
}
