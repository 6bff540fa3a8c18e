//! `hub backup` and `hub restore` for the SQLite store: a consistent copy taken while the hub
//! serves (SQLite's online backup API, page by page, never a file copy of a database being
//! written), carrying a manifest (schema version, when, each table's rows) inside it; and a
//! restore into an empty data directory that refuses a newer schema, checks the copy's integrity
//! and its counts against the manifest before it becomes `hub.db`. Idempotency keys travel with
//! the jobs, so a restored hub acts on nothing twice. On PostgreSQL the database's own tools do
//! this (`pg_dump`, point-in-time recovery: docs/operations.md).

use std::path::{Path, PathBuf};

use rusqlite::backup::NO_PROGRESS;
use rusqlite::{Connection, MAIN_DB, OpenFlags, params};

use super::migrate::table_names;
use super::sqlite::schema;
use crate::clock::now_ms;

/// What a backup holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The store's schema version.
    pub schema_version: i64,
    /// When the copy was taken (ms).
    pub taken_at_ms: i64,
    /// Each table's rows, in the copy.
    pub counts: Vec<(String, i64)>,
}

/// The table a backup keeps its manifest in; a restore drops it.
const MANIFEST: &str = "hub_backup_manifest";

/// The partial file a copy is written to before it is complete.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn counts(conn: &Connection) -> anyhow::Result<Vec<(String, i64)>> {
    table_names()
        .map(|table| {
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok((table.to_string(), n))
        })
        .collect()
}

fn integrity(conn: &Connection, what: &Path) -> anyhow::Result<()> {
    let said: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        said == "ok",
        "{} fails SQLite's integrity check: {said}",
        what.display()
    );
    Ok(())
}

/// Copies the store in `data_dir` to `to` while the hub may be serving, and writes the manifest
/// into the copy. `to` must not exist; on any failure nothing is left at `to`.
///
/// # Errors
/// No store in `data_dir`, `to` taken or unwritable (a full disk, say), a failed copy.
pub fn backup(data_dir: &Path, to: &Path) -> anyhow::Result<Manifest> {
    let source = data_dir.join("hub.db");
    anyhow::ensure!(source.is_file(), "no SQLite store at {}", source.display());
    anyhow::ensure!(!to.exists(), "{} exists: name a new file", to.display());
    let tmp = partial(to);
    let _ = std::fs::remove_file(&tmp);
    let taken = (|| -> anyhow::Result<Manifest> {
        let src = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(30))?;
        crate::files::private_file(&tmp)?;
        src.backup(MAIN_DB, &tmp, NO_PROGRESS)?;
        let copy = Connection::open(&tmp)?;
        integrity(&copy, &tmp)?;
        let manifest = Manifest {
            schema_version: copy.pragma_query_value(None, "user_version", |r| r.get(0))?,
            taken_at_ms: now_ms(),
            counts: counts(&copy)?,
        };
        copy.execute_batch(&format!(
            "CREATE TABLE {MANIFEST} (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        ))?;
        let mut put = copy.prepare(&format!(
            "INSERT INTO {MANIFEST} (key, value) VALUES (?1, ?2)"
        ))?;
        put.execute(params!["schema_version", manifest.schema_version])?;
        put.execute(params!["taken_at_ms", manifest.taken_at_ms])?;
        for (table, n) in &manifest.counts {
            put.execute(params![format!("rows:{table}"), n])?;
        }
        drop(put);
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        drop(copy);
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, to)?;
        Ok(manifest)
    })();
    if taken.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    taken
}

/// The manifest a backup file carries.
///
/// # Errors
/// The file is no hub backup (no manifest), or unreadable.
pub fn manifest_of(from: &Path) -> anyhow::Result<Manifest> {
    let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let rows: Vec<(String, i64)> = conn
        .prepare(&format!("SELECT key, value FROM {MANIFEST}"))
        .map_err(|_| {
            anyhow::anyhow!(
                "{} is not a hub backup (it has no manifest)",
                from.display()
            )
        })?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    Ok(Manifest {
        schema_version: value("schema_version").unwrap_or(0),
        taken_at_ms: value("taken_at_ms").unwrap_or(0),
        counts: rows
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("rows:").map(|t| (t.to_string(), *v)))
            .collect(),
    })
}

/// Restores the backup `from` as the store of `data_dir`, which must hold no store: checked
/// (schema not newer than this hub's, integrity, every table's rows as the manifest says),
/// then moved into place.
///
/// # Errors
/// A store already there, a file that is no backup or fails a check, an unwritable directory.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let target = data_dir.join("hub.db");
    for existing in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        let p = data_dir.join(existing);
        anyhow::ensure!(
            !p.exists(),
            "{} exists: restore into a data directory without a store (move it away first)",
            p.display()
        );
    }
    let manifest = manifest_of(from)?;
    anyhow::ensure!(
        manifest.schema_version <= schema::VERSION,
        "{} holds schema version {}, newer than this hub knows (up to {}): restore it with that hub",
        from.display(),
        manifest.schema_version,
        schema::VERSION
    );
    crate::files::private_dir(data_dir)?;
    let tmp = partial(&target);
    let _ = std::fs::remove_file(&tmp);
    let restored = (|| -> anyhow::Result<()> {
        let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        crate::files::private_file(&tmp)?;
        src.backup(MAIN_DB, &tmp, NO_PROGRESS)?;
        let copy = Connection::open(&tmp)?;
        integrity(&copy, from)?;
        copy.execute_batch(&format!("DROP TABLE {MANIFEST}"))?;
        let found = counts(&copy)?;
        for (table, expected) in &manifest.counts {
            let got = found
                .iter()
                .find(|(t, _)| t == table)
                .map_or(0, |(_, n)| *n);
            anyhow::ensure!(
                got == *expected,
                "{}: table {table} has {got} rows, the manifest says {expected}",
                from.display()
            );
        }
        drop(copy);
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        Ok(())
    })();
    if restored.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    restored.map(|()| manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDelivery, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_restores_whole_and_refuses_what_it_should() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        let deliveries = (0..50)
            .map(|i| NewDelivery::test(&format!("d{i}")))
            .collect();
        store.ingest(deliveries).await.unwrap();
        let file = dir.path().join("hub-backup.db");
        let manifest = backup(&data, &file).unwrap();
        let rows = |m: &Manifest, t: &str| m.counts.iter().find(|(n, _)| n == t).map(|(_, n)| *n);
        assert_eq!(rows(&manifest, "deliveries"), Some(50));
        assert_eq!(manifest_of(&file).unwrap(), manifest);
        assert!(
            backup(&data, &file)
                .unwrap_err()
                .to_string()
                .contains("exists")
        );

        // Into a store's directory: refused, nothing touched.
        let e = restore(&file, &data).unwrap_err().to_string();
        assert!(e.contains("without a store"), "{e}");
        let fresh = dir.path().join("fresh");
        assert_eq!(restore(&file, &fresh).unwrap(), manifest);
        drop(store);
        let again = Store::open(&fresh).unwrap();
        let back = again
            .deliveries(crate::store::DeliveryFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(back.len(), 50);

        // A file that is no backup, and one whose rows do not match its manifest.
        let e = restore(&fresh.join("hub.db"), &dir.path().join("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a hub backup"), "{e}");
        let tampered = dir.path().join("tampered.db");
        std::fs::copy(&file, &tampered).unwrap();
        Connection::open(&tampered)
            .unwrap()
            .execute("DELETE FROM deliveries WHERE id = 1", [])
            .unwrap();
        let e = restore(&tampered, &dir.path().join("y"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table deliveries has 49 rows, the manifest says 50"),
            "{e}"
        );
        assert!(
            !dir.path().join("y/hub.db").exists() && !dir.path().join("y/hub.db.partial").exists()
        );

        // A destination that cannot be written: a clear error, no partial file.
        let e = backup(&fresh, Path::new("/proc/hub-backup.db")).unwrap_err();
        assert!(!Path::new("/proc/hub-backup.db.partial").exists(), "{e}");
    }
}
