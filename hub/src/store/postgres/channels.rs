//! Push channels on PostgreSQL: the same `channels` table as on SQLite, shared by every hub on
//! the database, so a push is accepted by whichever hub it reaches.

use super::super::{ChannelKey, ChannelWrite, HeldChannel, Result};
use super::Postgres;
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

const COLUMNS: &str = "id, topic, token_sha256, resource, expires_at, opened_at";

fn held(r: &tokio_postgres::Row) -> Result<HeldChannel> {
    Ok(HeldChannel {
        id: r.try_get(0)?,
        topic: r.try_get(1)?,
        token_sha256: r.try_get(2)?,
        resource: r.try_get(3)?,
        expires_at_ms: r.try_get(4)?,
        opened_at_ms: r.try_get(5)?,
    })
}

impl Postgres {
    /// A push channel the hub holds.
    ///
    /// # Errors
    /// On database failure.
    pub async fn channel(&self, key: ChannelKey) -> Result<Option<HeldChannel>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM channels WHERE tenant=$1 AND connector=$2 AND id=$3"
                ),
                &[&key.tenant.as_str(), &key.connector.as_str(), &key.id],
            )
            .await?
            .as_ref()
            .map(held)
            .transpose()
    }

    /// A tenant's connector's push channels, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn channels(
        &self,
        tenant: TenantId,
        connector: ConnectorId,
    ) -> Result<Vec<HeldChannel>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM channels WHERE tenant=$1 AND connector=$2
                     ORDER BY opened_at, id"
                ),
                &[&tenant.as_str(), &connector.as_str()],
            )
            .await?
            .iter()
            .map(held)
            .collect()
    }

    /// Opens, keeps or closes a push channel; whether it changed anything.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn write_channel(&self, key: ChannelKey, write: ChannelWrite) -> Result<bool> {
        let client = self.client().await?;
        let (t, c, id) = (key.tenant.as_str(), key.connector.as_str(), key.id.as_str());
        let changed = match &write {
            ChannelWrite::Open {
                topic,
                token_sha256,
            } => client
                .execute(
                    "INSERT INTO channels (tenant, connector, id, topic, token_sha256, opened_at)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&t, &c, &id, topic, token_sha256, &now_ms()],
                )
                .await?,
            ChannelWrite::Keep {
                resource,
                expires_at_ms,
            } => {
                client
                    .execute(
                        "UPDATE channels SET resource=$4, expires_at=$5
                         WHERE tenant=$1 AND connector=$2 AND id=$3",
                        &[&t, &c, &id, resource, expires_at_ms],
                    )
                    .await?
            }
            ChannelWrite::Close => {
                client
                    .execute(
                        "DELETE FROM channels WHERE tenant=$1 AND connector=$2 AND id=$3",
                        &[&t, &c, &id],
                    )
                    .await?
            }
        };
        Ok(changed > 0)
    }
}

/// The schema migration that makes the table.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE channels (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    resource TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL DEFAULT 0,
    opened_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, connector, id)
);
"#;
