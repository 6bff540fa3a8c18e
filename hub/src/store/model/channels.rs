//! Push channels: what a connector asked a provider to push to (Google Calendar's `watch`), held
//! by the hub so a push is accepted only on a channel it holds, with that channel's token. The
//! token itself is never stored: it is 32 random bytes, so its SHA-256 is what a push is checked
//! against, and a leaked database gives no token.

use serde::Serialize;

use crate::id::{ConnectorId, TenantId};

/// Which channel: a tenant's connector's channel id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The connector.
    pub connector: ConnectorId,
    /// The connector's id for the channel.
    pub id: String,
}

/// A channel as held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldChannel {
    /// The connector's id for it.
    pub id: String,
    /// What it watches, in the connector's terms (a calendar id).
    pub topic: String,
    /// SHA-256 of its token (hex).
    #[serde(skip)]
    pub token_sha256: String,
    /// The provider's id of the watched resource ("" until the provider answered).
    pub resource: String,
    /// When the provider stops sending (ms; 0 until the provider answered).
    pub expires_at_ms: i64,
    /// When it was opened (ms).
    pub opened_at_ms: i64,
}

/// A write to a channel.
#[derive(Clone, Debug)]
pub enum ChannelWrite {
    /// Holds a new channel (refused, `false`, if the id is held already).
    Open {
        /// What it watches.
        topic: String,
        /// SHA-256 of its token (hex).
        token_sha256: String,
    },
    /// Records the provider's answer.
    Keep {
        /// The watched resource's id.
        resource: String,
        /// When it expires (ms).
        expires_at_ms: i64,
    },
    /// Stops holding it.
    Close,
}
