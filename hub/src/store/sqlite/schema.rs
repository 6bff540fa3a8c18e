//! The SQLite schema in one place: the tables, how a connection is opened, and the migrations
//! that bring a database made by an earlier release up to date.

use std::path::Path;

use rusqlite::{Connection, params};

/// The schema version this hub makes (`PRAGMA user_version`). Databases from before versions
/// (0) are brought up to date by [`create`]'s checks; a database past this number was written
/// by a newer hub and is refused. A change to the schema adds a step to `migrate` and one here.
pub(in crate::store) const VERSION: i64 = 1;

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
    seq INTEGER,
    PRIMARY KEY (tenant, kind, key)
);
CREATE TABLE IF NOT EXISTS record_tombstones (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_by_seq ON record_tombstones (tenant, seq);
CREATE INDEX IF NOT EXISTS tombstones_by_time ON record_tombstones (deleted_at);
CREATE TABLE IF NOT EXISTS endpoint_states (
    tenant TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    disabled_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (tenant, endpoint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS activity (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    hour INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_received_ms INTEGER,
    last_done_ms INTEGER,
    PRIMARY KEY (tenant, connector, hour)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activity_by_hour ON activity (hour);
"#;

pub(super) fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
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

/// Creates what is missing of [`SCHEMA`] and migrates what an earlier release made.
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    let had_activity: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name='activity'",
        [],
        |r| r.get(0),
    )?;
    let had_days: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name='call_days'",
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(super::rollup::TABLES)?;
    conn.execute_batch(super::connections::TABLES)?;
    conn.execute_batch(super::versions::TABLES)?;
    conn.execute_batch(super::audit::TABLES)?;
    if !had_days {
        super::rollup::backfill(conn)?;
    }
    if !had_activity {
        // The hourly counts a status view reads, from the last two days of a log made before them.
        conn.execute(
            "INSERT INTO activity (tenant, connector, hour, received, failed, last_received_ms, last_done_ms)
             SELECT tenant, connector, received_at / 3600000, count(*), sum(state = 'dead'), max(received_at),
                    max(CASE WHEN state IN ('done', 'ignored') THEN processed_at END)
             FROM deliveries WHERE received_at >= ?1 GROUP BY 1, 2, 3",
            [crate::clock::now_ms() - 48 * 3_600_000],
        )?;
    }
    migrate(conn)
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
    // The change feed: every record write takes the next number of `record_seq`, in the
    // transaction of the write. Records from before it are numbered in their row order.
    if add_column(conn, "records", "seq", "INTEGER")? {
        conn.execute_batch("UPDATE records SET seq = rowid")?;
    }
    conn.execute_batch(
        "INSERT INTO counters (name, value) SELECT 'record_seq', coalesce(max(seq), 0) FROM records
         WHERE true ON CONFLICT (name) DO NOTHING;
         CREATE INDEX IF NOT EXISTS records_by_seq ON records (tenant, seq);",
    )?;
    // Which job last wrote a record: a delivery's page in the console lists what it wrote.
    add_column(conn, "records", "job_id", "INTEGER")?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS records_by_job ON records (job_id) WHERE job_id IS NOT NULL",
    )?;
    // The token of the claim that holds a running job (`Lease`): only its holder ends it.
    add_column(conn, "jobs", "lease_token", "INTEGER")?;
    // Nothing reads deliveries by time but retention, which has `deliveries_unpruned`; the index
    // cost a page write per webhook batch.
    conn.execute_batch("DROP INDEX IF EXISTS deliveries_by_time")?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS deliveries_unpruned ON deliveries (received_at)
         WHERE pruned_at IS NULL",
    )
}

/// Adds `column` to `table` unless a database from an earlier release already has it; whether
/// it added it.
fn add_column(conn: &Connection, table: &str, column: &str, kind: &str) -> rusqlite::Result<bool> {
    let present: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name=?2",
        params![table, column],
        |r| r.get(0),
    )?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(!present)
}
