//! Connected accounts on PostgreSQL: the same two tables as on SQLite (`connections`,
//! `connect_flows`). The refresh lease is one conditional `UPDATE`, so of all the hubs on the
//! database exactly one refreshes a credential at a time.

use super::super::{
    Connection, ConnectionKey, ConnectionRow, ConnectionWrite, Flow, FlowWrite, Result,
};
use super::{Postgres, connector, tenant};
use crate::clock::now_ms;
use crate::id::TenantId;

/// How long a consent flow's row is kept after it expires.
const FLOW_KEPT_MS: i64 = 86_400_000;

const FLOW_COLUMNS: &str =
    "link, tenant, connector, credential, return_to, by_whom, expires_at, verifier";

fn flow(r: &tokio_postgres::Row) -> Result<Flow> {
    Ok(Flow {
        link: r.try_get(0)?,
        tenant: tenant(r, 1)?,
        connector: connector(r, 2)?,
        credential: r.try_get(3)?,
        return_to: r.try_get(4)?,
        by: r.try_get(5)?,
        expires_at_ms: r.try_get(6)?,
        verifier: r.try_get(7)?,
    })
}

impl Postgres {
    /// A connection's stored state.
    ///
    /// # Errors
    /// On database failure.
    pub async fn connection(&self, key: ConnectionKey) -> Result<Option<Connection>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT source, refresh_token, access_token, expires_at, failed, failed_at,
                        refreshes, updated_at
                 FROM connections WHERE tenant=$1 AND connector=$2 AND credential=$3",
                &[
                    &key.tenant.as_str(),
                    &key.connector.as_str(),
                    &key.credential,
                ],
            )
            .await?;
        row.map(|r| {
            Ok(Connection {
                source: r.try_get(0)?,
                refresh_token: r.try_get(1)?,
                access_token: r.try_get(2)?,
                expires_at_ms: r.try_get(3)?,
                failed: r.try_get(4)?,
                failed_at_ms: r.try_get(5)?,
                refreshes: r.try_get(6)?,
                updated_at_ms: r.try_get(7)?,
            })
        })
        .transpose()
    }

    /// A tenant's connections.
    ///
    /// # Errors
    /// On database failure.
    pub async fn connections(&self, tenant_id: TenantId) -> Result<Vec<ConnectionRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT connector, credential, failed, failed_at, expires_at, refreshes, updated_at
                 FROM connections WHERE tenant=$1 ORDER BY connector, credential",
                &[&tenant_id.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConnectionRow {
                    connector: connector(r, 0)?,
                    credential: r.try_get(1)?,
                    failed: r.try_get(2)?,
                    failed_at_ms: r.try_get(3)?,
                    expires_at_ms: r.try_get(4)?,
                    refreshes: r.try_get(5)?,
                    updated_at_ms: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Writes a connection; whether it was written (a write under a lease the caller no
    /// longer holds is not).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn write_connection(
        &self,
        key: ConnectionKey,
        write: ConnectionWrite,
    ) -> Result<bool> {
        let client = self.client().await?;
        let (t, c, n) = (
            key.tenant.as_str(),
            key.connector.as_str(),
            key.credential.as_str(),
        );
        let now = now_ms();
        let changed = match &write {
            ConnectionWrite::Lease { holder, until_ms } => {
                client
                    .execute(
                        "INSERT INTO connections (tenant, connector, credential, updated_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        &[&t, &c, &n, &now],
                    )
                    .await?;
                client
                    .execute(
                        "UPDATE connections SET lease_holder=$4, lease_until=$5
                         WHERE tenant=$1 AND connector=$2 AND credential=$3
                           AND (lease_until IS NULL OR lease_until < $6 OR lease_holder = $4)",
                        &[&t, &c, &n, holder, until_ms, &now],
                    )
                    .await?
            }
            ConnectionWrite::Minted { holder, state } => {
                client
                    .execute(
                        "UPDATE connections SET source=$5, refresh_token=$6, access_token=$7,
                                expires_at=$8, failed=NULL, failed_at=NULL, refreshes=refreshes + 1,
                                updated_at=$9, lease_holder=NULL, lease_until=NULL
                         WHERE tenant=$1 AND connector=$2 AND credential=$3 AND lease_holder=$4",
                        &[
                            &t,
                            &c,
                            &n,
                            holder,
                            &state.source,
                            &state.refresh_token,
                            &state.access_token,
                            &state.expires_at_ms,
                            &now,
                        ],
                    )
                    .await?
            }
            ConnectionWrite::Failed { holder, reason } => {
                client
                    .execute(
                        "UPDATE connections SET failed=$5, failed_at=coalesce(failed_at, $6),
                                access_token=NULL, expires_at=0, updated_at=$6,
                                lease_holder=NULL, lease_until=NULL
                         WHERE tenant=$1 AND connector=$2 AND credential=$3 AND lease_holder=$4",
                        &[&t, &c, &n, holder, reason, &now],
                    )
                    .await?
            }
            ConnectionWrite::Release { holder } => {
                client
                    .execute(
                        "UPDATE connections SET lease_holder=NULL, lease_until=NULL
                         WHERE tenant=$1 AND connector=$2 AND credential=$3 AND lease_holder=$4",
                        &[&t, &c, &n, holder],
                    )
                    .await?
            }
            ConnectionWrite::Replace(state) => {
                client
                    .execute(
                        "INSERT INTO connections (tenant, connector, credential, source,
                                refresh_token, access_token, expires_at, refreshes, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
                         ON CONFLICT (tenant, connector, credential) DO UPDATE SET
                                source=excluded.source, refresh_token=excluded.refresh_token,
                                access_token=excluded.access_token, expires_at=excluded.expires_at,
                                failed=NULL, failed_at=NULL,
                                refreshes=connections.refreshes + 1,
                                updated_at=excluded.updated_at, lease_holder=NULL, lease_until=NULL",
                        &[
                            &t,
                            &c,
                            &n,
                            &state.source,
                            &state.refresh_token,
                            &state.access_token,
                            &state.expires_at_ms,
                            &now,
                        ],
                    )
                    .await?
            }
            ConnectionWrite::Delete => {
                client
                    .execute(
                        "DELETE FROM connections WHERE tenant=$1 AND connector=$2 AND credential=$3",
                        &[&t, &c, &n],
                    )
                    .await?
            }
        };
        Ok(changed > 0)
    }

    /// Creates, opens or spends a consent flow; the flow opened or spent (`None`: no such
    /// link or state, used, or expired).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn write_flow(&self, write: FlowWrite) -> Result<Option<Flow>> {
        let client = self.client().await?;
        match write {
            FlowWrite::Create(f) => {
                client
                    .execute(
                        "DELETE FROM connect_flows WHERE expires_at < $1",
                        &[&(now_ms() - FLOW_KEPT_MS)],
                    )
                    .await?;
                client
                    .execute(
                        "INSERT INTO connect_flows (link, tenant, connector, credential, return_to,
                                                    by_whom, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[
                            &f.link,
                            &f.tenant.as_str(),
                            &f.connector.as_str(),
                            &f.credential,
                            &f.return_to,
                            &f.by,
                            &f.expires_at_ms,
                        ],
                    )
                    .await?;
                Ok(Some(f))
            }
            FlowWrite::Open {
                link,
                state,
                verifier,
                now_ms,
            } => client
                .query_opt(
                    &format!(
                        "UPDATE connect_flows SET state=$2, verifier=$3, opened_at=$4
                         WHERE link=$1 AND opened_at IS NULL AND expires_at > $4
                         RETURNING {FLOW_COLUMNS}"
                    ),
                    &[&link, &state, &verifier, &now_ms],
                )
                .await?
                .as_ref()
                .map(flow)
                .transpose(),
            FlowWrite::Spend { state, now_ms } => client
                .query_opt(
                    &format!(
                        "UPDATE connect_flows SET spent_at=$2
                         WHERE state=$1 AND spent_at IS NULL AND expires_at > $2
                         RETURNING {FLOW_COLUMNS}"
                    ),
                    &[&state, &now_ms],
                )
                .await?
                .as_ref()
                .map(flow)
                .transpose(),
        }
    }
}

/// The schema migration that makes the tables.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE connections (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    credential TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    refresh_token TEXT,
    access_token TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    failed TEXT,
    failed_at BIGINT,
    refreshes BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    lease_holder TEXT,
    lease_until BIGINT,
    PRIMARY KEY (tenant, connector, credential)
);
CREATE TABLE connect_flows (
    link TEXT PRIMARY KEY,
    state TEXT UNIQUE,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    credential TEXT NOT NULL,
    return_to TEXT,
    by_whom TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    verifier TEXT,
    opened_at BIGINT,
    spent_at BIGINT
);
"#;
