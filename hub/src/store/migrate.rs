//! Moving an install from SQLite to PostgreSQL (`hub migrate-store`): every table of `hub.db`
//! copied into an empty PostgreSQL store with `COPY ... FROM STDIN (FORMAT binary)`, ids kept
//! (and the id sequences moved past them), then each table's rows counted on both sides.
//!
//! The change feed's cursors do not carry over (PostgreSQL orders changes by transaction, see
//! `postgres::records`): the feed's horizon is set past the copy, so an app that follows from
//! an old cursor is told (410) to read the records again, and misses nothing.

use std::path::Path;
use std::pin::pin;

use rusqlite::types::ValueRef;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::postgres::Postgres;
use super::{Result, StoreError};

/// A column's type on PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}

/// Every table of the store, by name (a backup's manifest counts each).
pub(crate) fn table_names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(name, _)| *name)
}

/// Each table: its name, and its columns with their types (the PostgreSQL schema's order).
const TABLES: &[(&str, &[(&str, Kind)])] = {
    use Kind::*;
    &[
        (
            "deliveries",
            &[
                ("id", Int),
                ("tenant", Text),
                ("connector", Text),
                ("route", Text),
                ("method", Text),
                ("identity", Text),
                ("event", Text),
                ("url", Text),
                ("headers", Text),
                ("body", Bytes),
                ("received_at", Int),
                ("state", Text),
                ("attempts", Int),
                ("last_error", Text),
                ("ignored_reason", Text),
                ("processed_at", Int),
                ("duration_us", Int),
                ("pruned_at", Int),
            ],
        ),
        (
            "jobs",
            &[
                ("id", Int),
                ("tenant", Text),
                ("connector", Text),
                ("task", Text),
                ("delivery_id", Int),
                ("idempotency_key", Text),
                ("state", Text),
                ("run_at", Int),
                ("lease_until", Int),
                ("lease_token", Int),
                ("attempts", Int),
                ("last_error", Text),
                ("created_at", Int),
                ("finished_at", Int),
                ("result", Text),
            ],
        ),
        (
            "records",
            &[
                ("tenant", Text),
                ("kind", Text),
                ("key", Text),
                ("data", Text),
                ("updated_at", Int),
                ("version", Int),
                ("lookups", Text),
                ("seq", Int),
                ("job_id", Int),
            ],
        ),
        (
            "record_tombstones",
            &[
                ("tenant", Text),
                ("kind", Text),
                ("key", Text),
                ("seq", Int),
                ("deleted_at", Int),
            ],
        ),
        (
            "record_lookups",
            &[
                ("tenant", Text),
                ("kind", Text),
                ("lookup", Text),
                ("key", Text),
            ],
        ),
        (
            "kv",
            &[
                ("tenant", Text),
                ("connector", Text),
                ("key", Text),
                ("value", Bytes),
                ("version", Int),
                ("marker_at", Int),
            ],
        ),
        (
            "events",
            &[
                ("id", Int),
                ("tenant", Text),
                ("connector", Text),
                ("name", Text),
                ("payload", Text),
                ("job_id", Int),
                ("created_at", Int),
                ("key", Text),
            ],
        ),
        (
            "schedules",
            &[
                ("tenant", Text),
                ("name", Text),
                ("last_tick_ms", Int),
                ("last_job_id", Int),
                ("created_at", Int),
            ],
        ),
        (
            "job_replays",
            &[
                ("job_id", Int),
                ("replayed_at", Int),
                ("state", Text),
                ("attempts", Int),
                ("last_error", Text),
                ("finished_at", Int),
            ],
        ),
        (
            "endpoint_states",
            &[
                ("tenant", Text),
                ("endpoint", Text),
                ("disabled_at", Int),
                ("reason", Text),
            ],
        ),
    ]
};

/// The id sequences to move past the copied ids: (sequence, table, column).
const SEQUENCES: &[(&str, &str, &str)] = &[
    ("deliveries_id_seq", "deliveries", "id"),
    ("jobs_id_seq", "jobs", "id"),
    ("events_id_seq", "events", "id"),
    ("record_seq", "records", "seq"),
];

/// One table copied: its name and its rows on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: &'static str,
    /// Rows in SQLite.
    pub from: i64,
    /// Rows in PostgreSQL after the copy.
    pub to: i64,
}

/// Copies the SQLite store in `data_dir` into the (empty) PostgreSQL store at `target`,
/// telling `progress` each table as it is done.
///
/// # Errors
/// When the SQLite store cannot be read, the target is not empty, or a copy fails (the target
/// is then left as it was: the copy is one transaction).
pub async fn sqlite_to_postgres(
    data_dir: &Path,
    target: crate::config::PostgresSettings,
    progress: impl Fn(&Copied),
) -> Result<Vec<Copied>> {
    let file = data_dir.join("hub.db");
    if !file.exists() {
        return Err(StoreError::Schema(format!(
            "no SQLite store at {}",
            file.display()
        )));
    }
    // Brought up to date first (a store from an older hub has every column the copy reads).
    drop(super::Sqlite::open(data_dir)?);
    let source =
        rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pg = Postgres::connect_with(target).await?;
    let mut client = pg.client().await?;
    for (table, _) in TABLES {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        if n > 0 {
            return Err(StoreError::Schema(format!(
                "the target already holds {n} rows in {table}: migrate-store copies into an empty database"
            )));
        }
    }
    let tx = client.transaction().await?;
    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let types: Vec<Type> = columns
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Int => Type::INT8,
                Kind::Text => Type::TEXT,
                Kind::Bytes => Type::BYTEA,
            })
            .collect();
        let sink = tx
            .copy_in(&format!(
                "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ))
            .await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        let select = names
            .iter()
            .map(|n| match (*table, *n) {
                // Rows from before the change feed have no number: their order is their rowid.
                ("records", "seq") => "coalesce(seq, rowid)".to_string(),
                (_, n) => n.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = source.prepare(&format!("SELECT {select} FROM {table}"))?;
        let mut rows = stmt.query([])?;
        let mut from = 0i64;
        while let Some(row) = rows.next()? {
            let mut values: Vec<Value> = Vec::with_capacity(columns.len());
            for (i, (name, kind)) in columns.iter().enumerate() {
                values.push(
                    value(row.get_ref(i)?, *kind)
                        .map_err(|why| StoreError::Corrupt(format!("{table}.{name}: {why}")))?,
                );
            }
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::param).collect();
            writer.as_mut().write(&params).await?;
            from += 1;
        }
        writer.as_mut().finish().await?;
        let to: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        let done = Copied { table, from, to };
        progress(&done);
        if from != to {
            return Err(StoreError::Schema(format!(
                "{table}: {from} rows read, {to} written; nothing was kept"
            )));
        }
        copied.push(done);
    }
    for (sequence, table, column) in SEQUENCES {
        tx.execute(
            &format!(
                "SELECT setval('{sequence}', coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .await?;
    }
    // Old cursors of the feed are SQLite's numbers: past the horizon they are told to re-read.
    tx.execute(
        "INSERT INTO counters (name, value)
         VALUES ('changes_horizon', pg_current_xact_id()::text::bigint + 1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(copied)
}

/// A value on its way to PostgreSQL.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Text(v) => v,
            Value::Bytes(v) => v,
        }
    }
}

/// A SQLite value as the column's PostgreSQL type (SQLite does not enforce types; the hub
/// wrote these, so anything else is corruption and named).
fn value(v: ValueRef<'_>, kind: Kind) -> std::result::Result<Value, String> {
    let text = |bytes: &[u8]| super::postgres::text(&String::from_utf8_lossy(bytes)).into_owned();
    Ok(match (kind, v) {
        (Kind::Int, ValueRef::Null) => Value::Int(None),
        (Kind::Int, ValueRef::Integer(i)) => Value::Int(Some(i)),
        (Kind::Int, ValueRef::Real(f)) => Value::Int(Some(f as i64)),
        (Kind::Int, other) => {
            return Err(format!(
                "expected an integer, found {:?}",
                other.data_type()
            ));
        }
        (Kind::Text, ValueRef::Null) => Value::Text(None),
        (Kind::Text, ValueRef::Text(t) | ValueRef::Blob(t)) => Value::Text(Some(text(t))),
        (Kind::Text, ValueRef::Integer(i)) => Value::Text(Some(i.to_string())),
        (Kind::Text, ValueRef::Real(f)) => Value::Text(Some(f.to_string())),
        (Kind::Bytes, ValueRef::Null) => Value::Bytes(None),
        (Kind::Bytes, ValueRef::Blob(b) | ValueRef::Text(b)) => Value::Bytes(Some(b.to_vec())),
        (Kind::Bytes, other) => {
            return Err(format!("expected bytes, found {:?}", other.data_type()));
        }
    })
}
