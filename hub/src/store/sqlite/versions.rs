//! Config versions on SQLite: `config_versions`, one row per applied config (see
//! [`crate::store::ConfigVersion`]). The writer thread numbers them, so two pushes never get
//! the same number and a stale base is refused.

use rusqlite::{Connection as Conn, OptionalExtension, Row, params};

use super::{Command, Result, Sqlite, cached_row};
use crate::clock::now_ms;
use crate::store::model::{ConfigVersion, Pushed, VersionPush};

impl Sqlite {
    /// Writes a new config version on top of `push.base`.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn config_push(&self, push: VersionPush) -> Result<Pushed> {
        self.call(|reply| Command::ConfigPush { push, reply }).await
    }

    /// A version with its document (`None`: the newest); `None` if there is none.
    ///
    /// # Errors
    /// On database failure.
    pub async fn config_version(&self, number: Option<i64>) -> Result<Option<ConfigVersion>> {
        self.read_async(move |c| {
            let sql = format!(
                "SELECT {COLUMNS}, document FROM config_versions
                 WHERE ?1 IS NULL OR number=?1 ORDER BY number DESC LIMIT 1"
            );
            cached_row(c, &sql, params![number], |r| version(r, true)).optional()
        })
        .await
    }

    /// Up to `limit` versions older than `before` (all: `None`), newest first, without their
    /// documents.
    ///
    /// # Errors
    /// On database failure.
    pub async fn config_versions(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ConfigVersion>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM config_versions WHERE ?1 IS NULL OR number<?1
                 ORDER BY number DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![before, limit as i64], |r| version(r, false))?;
            rows.collect()
        })
        .await
    }
}

const COLUMNS: &str = "number, applied_at, actor, reason";

fn version(r: &Row<'_>, with_document: bool) -> rusqlite::Result<ConfigVersion> {
    Ok(ConfigVersion {
        number: r.get(0)?,
        applied_at_ms: r.get(1)?,
        actor: r.get(2)?,
        reason: r.get(3)?,
        document: if with_document {
            r.get(4)?
        } else {
            String::new()
        },
    })
}

/// Writes a version (on the writer's connection).
pub(super) fn push(c: &Conn, push: &VersionPush) -> rusqlite::Result<Pushed> {
    let newest: i64 = cached_row(
        c,
        "SELECT coalesce(max(number), 0) FROM config_versions",
        [],
        |r| r.get(0),
    )?;
    if push.base.is_some_and(|base| base != newest) {
        return Ok(Pushed::Stale { newest });
    }
    let number = newest + 1;
    c.prepare_cached(
        "INSERT INTO config_versions (number, applied_at, actor, reason, document)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        number,
        now_ms(),
        push.actor,
        push.reason,
        push.document
    ])?;
    Ok(Pushed::Written(number))
}

/// The table, for the schema.
pub(super) const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS config_versions (
    number INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    document TEXT NOT NULL
);
"#;
