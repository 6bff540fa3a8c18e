//! Connected accounts on SQLite: `connections` (an OAuth2 credential's sealed tokens, health
//! and refresh lease), `connect_flows` (the consent flow's one-time links and states) and
//! `channels` (the push channels connectors opened, by their tokens' digests).

use rusqlite::{Connection as Conn, OptionalExtension, Row, params};

use super::{Command, Result, Sqlite, cached_row};
use crate::clock::now_ms;
use crate::id::ConnectorId;
use crate::id::TenantId;
use crate::store::model::{
    ChannelKey, ChannelWrite, Connection, ConnectionKey, ConnectionRow, ConnectionWrite, Flow,
    FlowWrite, HeldChannel,
};

/// How long a consent flow's row is kept after it expires (for the console's history).
const FLOW_KEPT_MS: i64 = 86_400_000;

impl Sqlite {
    /// A connection's stored state.
    ///
    /// # Errors
    /// On database failure.
    pub async fn connection(&self, key: ConnectionKey) -> Result<Option<Connection>> {
        self.read_async(move |c| {
            cached_row(
                c,
                "SELECT source, refresh_token, access_token, expires_at, failed, failed_at,
                        refreshes, updated_at
                 FROM connections WHERE tenant=?1 AND connector=?2 AND credential=?3",
                params![key.tenant, key.connector, key.credential],
                |r| {
                    Ok(Connection {
                        source: r.get(0)?,
                        refresh_token: r.get(1)?,
                        access_token: r.get(2)?,
                        expires_at_ms: r.get(3)?,
                        failed: r.get(4)?,
                        failed_at_ms: r.get(5)?,
                        refreshes: r.get(6)?,
                        updated_at_ms: r.get(7)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// A tenant's connections.
    ///
    /// # Errors
    /// On database failure.
    pub async fn connections(&self, tenant: TenantId) -> Result<Vec<ConnectionRow>> {
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT connector, credential, failed, failed_at, expires_at, refreshes, updated_at
                 FROM connections WHERE tenant=?1 ORDER BY connector, credential",
            )?;
            let rows = stmt.query_map(params![tenant], |r| {
                Ok(ConnectionRow {
                    connector: r.get(0)?,
                    credential: r.get(1)?,
                    failed: r.get(2)?,
                    failed_at_ms: r.get(3)?,
                    expires_at_ms: r.get(4)?,
                    refreshes: r.get(5)?,
                    updated_at_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
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
        self.call(|reply| Command::Connection { key, write, reply })
            .await
    }

    /// Creates, opens or spends a consent flow; the flow opened or spent (`None`: no such
    /// link or state, used, or expired).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn write_flow(&self, write: FlowWrite) -> Result<Option<Flow>> {
        self.call(|reply| Command::Flow { write, reply }).await
    }

    /// A push channel the hub holds.
    ///
    /// # Errors
    /// On database failure.
    pub async fn channel(&self, key: ChannelKey) -> Result<Option<HeldChannel>> {
        self.read_async(move |c| {
            cached_row(
                c,
                &format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels
                     WHERE tenant=?1 AND connector=?2 AND id=?3"
                ),
                params![key.tenant, key.connector, key.id],
                held_channel,
            )
            .optional()
        })
        .await
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
        self.read_async(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE tenant=?1 AND connector=?2
                 ORDER BY opened_at, id"
            ))?;
            let rows = stmt.query_map(params![tenant, connector], held_channel)?;
            rows.collect()
        })
        .await
    }

    /// Opens, keeps or closes a push channel; whether it changed anything.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn write_channel(&self, key: ChannelKey, write: ChannelWrite) -> Result<bool> {
        self.call(|reply| Command::Channel { key, write, reply })
            .await
    }
}

const CHANNEL_COLUMNS: &str = "id, topic, token_sha256, resource, expires_at, opened_at";

fn held_channel(r: &Row<'_>) -> rusqlite::Result<HeldChannel> {
    Ok(HeldChannel {
        id: r.get(0)?,
        topic: r.get(1)?,
        token_sha256: r.get(2)?,
        resource: r.get(3)?,
        expires_at_ms: r.get(4)?,
        opened_at_ms: r.get(5)?,
    })
}

/// Applies a channel write (on the writer's connection).
pub(super) fn write_channel(
    c: &Conn,
    key: &ChannelKey,
    write: &ChannelWrite,
) -> rusqlite::Result<bool> {
    let k = params![key.tenant, key.connector, key.id];
    let changed = match write {
        ChannelWrite::Open {
            topic,
            token_sha256,
        } => c
            .prepare_cached(
                "INSERT INTO channels (tenant, connector, id, topic, token_sha256, opened_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![k[0], k[1], k[2], topic, token_sha256, now_ms()])?,
        ChannelWrite::Keep {
            resource,
            expires_at_ms,
        } => c
            .prepare_cached(
                "UPDATE channels SET resource=?4, expires_at=?5
                 WHERE tenant=?1 AND connector=?2 AND id=?3",
            )?
            .execute(params![k[0], k[1], k[2], resource, expires_at_ms])?,
        ChannelWrite::Close => c
            .prepare_cached("DELETE FROM channels WHERE tenant=?1 AND connector=?2 AND id=?3")?
            .execute(k)?,
    };
    Ok(changed > 0)
}

/// Applies a connection write (on the writer's connection).
pub(super) fn write(
    c: &Conn,
    key: &ConnectionKey,
    write: &ConnectionWrite,
) -> rusqlite::Result<bool> {
    let k = params![key.tenant, key.connector, key.credential];
    let now = now_ms();
    let changed = match write {
        ConnectionWrite::Lease { holder, until_ms } => {
            c.prepare_cached(
                "INSERT INTO connections (tenant, connector, credential, updated_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![k[0], k[1], k[2], now])?;
            c.prepare_cached(
                "UPDATE connections SET lease_holder=?4, lease_until=?5
                 WHERE tenant=?1 AND connector=?2 AND credential=?3
                   AND (lease_until IS NULL OR lease_until < ?6 OR lease_holder = ?4)",
            )?
            .execute(params![k[0], k[1], k[2], holder, until_ms, now])?
        }
        ConnectionWrite::Minted { holder, state } => c
            .prepare_cached(
                "UPDATE connections SET source=?5, refresh_token=?6, access_token=?7, expires_at=?8,
                        failed=NULL, failed_at=NULL, refreshes=refreshes + 1, updated_at=?9,
                        lease_holder=NULL, lease_until=NULL
                 WHERE tenant=?1 AND connector=?2 AND credential=?3 AND lease_holder=?4",
            )?
            .execute(params![
                k[0],
                k[1],
                k[2],
                holder,
                state.source,
                state.refresh_token,
                state.access_token,
                state.expires_at_ms,
                now
            ])?,
        ConnectionWrite::Failed { holder, reason } => c
            .prepare_cached(
                "UPDATE connections SET failed=?5, failed_at=coalesce(failed_at, ?6),
                        access_token=NULL, expires_at=0, updated_at=?6,
                        lease_holder=NULL, lease_until=NULL
                 WHERE tenant=?1 AND connector=?2 AND credential=?3 AND lease_holder=?4",
            )?
            .execute(params![k[0], k[1], k[2], holder, reason, now])?,
        ConnectionWrite::Release { holder } => c
            .prepare_cached(
                "UPDATE connections SET lease_holder=NULL, lease_until=NULL
                 WHERE tenant=?1 AND connector=?2 AND credential=?3 AND lease_holder=?4",
            )?
            .execute(params![k[0], k[1], k[2], holder])?,
        ConnectionWrite::Replace(state) => c
            .prepare_cached(
                "INSERT INTO connections (tenant, connector, credential, source, refresh_token,
                        access_token, expires_at, refreshes, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)
                 ON CONFLICT (tenant, connector, credential) DO UPDATE SET
                        source=excluded.source, refresh_token=excluded.refresh_token,
                        access_token=excluded.access_token, expires_at=excluded.expires_at,
                        failed=NULL, failed_at=NULL, refreshes=refreshes + 1,
                        updated_at=excluded.updated_at, lease_holder=NULL, lease_until=NULL",
            )?
            .execute(params![
                k[0],
                k[1],
                k[2],
                state.source,
                state.refresh_token,
                state.access_token,
                state.expires_at_ms,
                now
            ])?,
        ConnectionWrite::Delete => c
            .prepare_cached(
                "DELETE FROM connections WHERE tenant=?1 AND connector=?2 AND credential=?3",
            )?
            .execute(k)?,
    };
    Ok(changed > 0)
}

const FLOW_COLUMNS: &str =
    "link, tenant, connector, credential, return_to, by_whom, expires_at, verifier";

fn flow(r: &Row<'_>) -> rusqlite::Result<Flow> {
    Ok(Flow {
        link: r.get(0)?,
        tenant: r.get(1)?,
        connector: r.get(2)?,
        credential: r.get(3)?,
        return_to: r.get(4)?,
        by: r.get(5)?,
        expires_at_ms: r.get(6)?,
        verifier: r.get(7)?,
    })
}

/// Applies a consent-flow write (on the writer's connection).
pub(super) fn write_flow(c: &Conn, write: &FlowWrite) -> rusqlite::Result<Option<Flow>> {
    match write {
        FlowWrite::Create(f) => {
            c.prepare_cached("DELETE FROM connect_flows WHERE expires_at < ?1")?
                .execute(params![now_ms() - FLOW_KEPT_MS])?;
            c.prepare_cached(
                "INSERT INTO connect_flows (link, tenant, connector, credential, return_to, by_whom,
                                            expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                f.link,
                f.tenant,
                f.connector,
                f.credential,
                f.return_to,
                f.by,
                f.expires_at_ms
            ])?;
            Ok(Some(f.clone()))
        }
        FlowWrite::Open {
            link,
            state,
            verifier,
            now_ms,
        } => c
            .prepare_cached(&format!(
                "UPDATE connect_flows SET state=?2, verifier=?3, opened_at=?4
                 WHERE link=?1 AND opened_at IS NULL AND expires_at > ?4
                 RETURNING {FLOW_COLUMNS}"
            ))?
            .query_row(params![link, state, verifier, now_ms], flow)
            .optional(),
        FlowWrite::Spend { state, now_ms } => c
            .prepare_cached(&format!(
                "UPDATE connect_flows SET spent_at=?2
                 WHERE state=?1 AND spent_at IS NULL AND expires_at > ?2
                 RETURNING {FLOW_COLUMNS}"
            ))?
            .query_row(params![state, now_ms], flow)
            .optional(),
    }
}

/// The tables, for the schema.
pub(super) const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS connections (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    credential TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    refresh_token TEXT,
    access_token TEXT,
    expires_at INTEGER NOT NULL DEFAULT 0,
    failed TEXT,
    failed_at INTEGER,
    refreshes INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    lease_holder TEXT,
    lease_until INTEGER,
    PRIMARY KEY (tenant, connector, credential)
);
CREATE TABLE IF NOT EXISTS connect_flows (
    link TEXT PRIMARY KEY,
    state TEXT UNIQUE,
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    credential TEXT NOT NULL,
    return_to TEXT,
    by_whom TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    verifier TEXT,
    opened_at INTEGER,
    spent_at INTEGER
);
CREATE TABLE IF NOT EXISTS channels (
    tenant TEXT NOT NULL,
    connector TEXT NOT NULL,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    resource TEXT NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL DEFAULT 0,
    opened_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, connector, id)
);
"#;
