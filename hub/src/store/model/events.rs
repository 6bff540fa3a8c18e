//! Published events (`events`): what connectors announced (`call.analyzed`), each kept once
//! per key so a replay that publishes again lists it once; the tenant's list, newest first.

use serde::Serialize;

use crate::id::{ConnectorId, TenantId};

/// An event row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// Event id.
    pub id: i64,
    /// Tenant id.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Connector that published it.
    #[schema(value_type = String)]
    pub connector: ConnectorId,
    /// Event name.
    pub name: String,
    /// JSON payload.
    pub payload: serde_json::Value,
    /// Stable across re-runs of what published it: the publishing job's idempotency key, the
    /// event's position and name (`delivery:42:event:0:call.analyzed`); the route jobs it
    /// triggered are keyed by it and `:route:{name}`.
    /// `None` for events of a synchronous reply, which nothing re-runs.
    pub key: Option<String>,
    /// When (ms).
    pub created_at_ms: i64,
}
