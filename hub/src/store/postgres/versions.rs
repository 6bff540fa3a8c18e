//! Config versions on PostgreSQL: the same `config_versions` table as on SQLite, shared by every
//! hub on the database. The newest version is what every hub runs: a push notifies
//! [`CONFIG_CHANNEL`] in its transaction, so each hub hears of it as it commits.

use super::super::{ConfigVersion, Pushed, Result, VersionPush};
use super::Postgres;
use crate::clock::now_ms;

/// The channel a new version is announced on.
pub(super) const CONFIG_CHANNEL: &str = "hub_config";

const COLUMNS: &str = "number, applied_at, actor, reason";

fn version(r: &tokio_postgres::Row, with_document: bool) -> Result<ConfigVersion> {
    Ok(ConfigVersion {
        number: r.try_get(0)?,
        applied_at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        reason: r.try_get(3)?,
        document: if with_document {
            r.try_get(4)?
        } else {
            String::new()
        },
    })
}

impl Postgres {
    /// Writes a new config version on top of `push.base`, and tells every hub.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn config_push(&self, push: VersionPush) -> Result<Pushed> {
        let mut client = self.client().await?;
        loop {
            let tx = client.transaction().await?;
            let newest: i64 = tx
                .query_one("SELECT coalesce(max(number), 0) FROM config_versions", &[])
                .await?
                .get(0);
            if push.base.is_some_and(|base| base != newest) {
                return Ok(Pushed::Stale { newest });
            }
            let number = newest + 1;
            // Two pushes on the same newest: the number's key lets one in; the other reads again.
            let written = tx
                .execute(
                    "INSERT INTO config_versions (number, applied_at, actor, reason, document)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (number) DO NOTHING",
                    &[
                        &number,
                        &now_ms(),
                        &push.actor,
                        &push.reason,
                        &push.document,
                    ],
                )
                .await?;
            if written == 1 {
                tx.batch_execute(&format!("NOTIFY {CONFIG_CHANNEL}"))
                    .await?;
                tx.commit().await?;
                return Ok(Pushed::Written(number));
            }
            tx.rollback().await?;
        }
    }

    /// A version with its document (`None`: the newest); `None` if there is none.
    ///
    /// # Errors
    /// On database failure.
    pub async fn config_version(&self, number: Option<i64>) -> Result<Option<ConfigVersion>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, document FROM config_versions
                     WHERE $1::bigint IS NULL OR number=$1 ORDER BY number DESC LIMIT 1"
                ),
                &[&number],
            )
            .await?
            .as_ref()
            .map(|r| version(r, true))
            .transpose()
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
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM config_versions WHERE $1::bigint IS NULL OR number<$1
                     ORDER BY number DESC LIMIT $2"
                ),
                &[&before, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| version(r, false))
            .collect()
    }
}

/// The schema migration that makes the table.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE config_versions (
    number BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    document TEXT NOT NULL
);
"#;
