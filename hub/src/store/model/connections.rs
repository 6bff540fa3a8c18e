//! The nouns of connected accounts: an OAuth2 credential's tokens as the hub holds them
//! ([`Connection`], sealed; one row per tenant, connector and credential, shared by every hub
//! on the store, with the lease that lets one refresh at a time), and the one-time links and
//! `state`s of the consent flow ([`Flow`]).

use serde::Serialize;

use crate::id::{ConnectorId, TenantId};

/// Which OAuth2 credential: a tenant's connector's credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The connector.
    pub connector: ConnectorId,
    /// The OAuth2 credential's name.
    pub credential: String,
}

impl std::fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenant {} connector {} credential {}",
            self.tenant, self.connector, self.credential
        )
    }
}

/// An OAuth2 credential's tokens and health, as stored. Tokens are sealed
/// ([`Place::Stored`](crate::secrets::Place::Stored)); nothing here is plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// Which grant in `hub.toml` the tokens came from (a digest, never the grant's secrets): a
    /// new grant there (a new consent, a pasted token) supersedes what is stored.
    pub source: String,
    /// The newest refresh token (rotated by the provider), sealed.
    pub refresh_token: Option<String>,
    /// The current access token, sealed.
    pub access_token: Option<String>,
    /// When the access token expires (ms).
    pub expires_at_ms: i64,
    /// Why the connection needs reconnecting (the provider refused the grant), if it does.
    pub failed: Option<String>,
    /// Since when.
    pub failed_at_ms: Option<i64>,
    /// Tokens minted so far.
    pub refreshes: i64,
    /// Last written (ms).
    pub updated_at_ms: i64,
}

/// A connection with its key, for a tenant's list.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionRow {
    /// The connector.
    #[schema(value_type = String)]
    pub connector: ConnectorId,
    /// The OAuth2 credential's name.
    pub credential: String,
    /// Whether it needs reconnecting, and why.
    pub failed: Option<String>,
    /// Since when (ms).
    pub failed_at_ms: Option<i64>,
    /// When the current access token expires (ms; 0: none held).
    pub expires_at_ms: i64,
    /// Tokens minted so far.
    pub refreshes: i64,
    /// Last change (ms).
    pub updated_at_ms: i64,
}

/// A write to a connection. Each that names a lease `holder` happens only while it holds the
/// lease, and answers whether it did.
#[derive(Clone, Debug)]
pub enum ConnectionWrite {
    /// Takes the refresh lease until `until_ms` if it is free or expired (making the row if
    /// there is none).
    Lease {
        /// Who takes it.
        holder: String,
        /// Until when.
        until_ms: i64,
    },
    /// Stores newly minted tokens (and clears any failure), releasing the lease.
    Minted {
        /// The lease holder.
        holder: String,
        /// The new state.
        state: Connection,
    },
    /// Marks the connection as needing reconnection, releasing the lease.
    Failed {
        /// The lease holder.
        holder: String,
        /// Why.
        reason: String,
    },
    /// Releases the lease, changing nothing else.
    Release {
        /// The lease holder.
        holder: String,
    },
    /// Replaces the row whatever the lease (a consent flow's new grant).
    Replace(Connection),
    /// Deletes the row (a disconnect).
    Delete,
}

/// A consent flow: a one-time link, then, once opened, the `state` it sent the user off with.
#[derive(Clone, Debug)]
pub struct Flow {
    /// SHA-256 (hex) of the link's secret part.
    pub link: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The connector.
    pub connector: ConnectorId,
    /// The OAuth2 credential.
    pub credential: String,
    /// Where to send the user when done (one of the tenant's allowed `return_to`), if anywhere.
    pub return_to: Option<String>,
    /// Who asked for the link (a token's name, `console`).
    pub by: String,
    /// When the link and the state stop working (ms).
    pub expires_at_ms: i64,
    /// The PKCE verifier, sealed, once the link was opened.
    pub verifier: Option<String>,
}

/// A write to consent flows.
#[derive(Clone, Debug)]
pub enum FlowWrite {
    /// A new link.
    Create(Flow),
    /// Opens the link (once, before it expires): records the digest of the `state` and the
    /// sealed PKCE verifier. Answers the flow.
    Open {
        /// The link's digest.
        link: String,
        /// The state's digest.
        state: String,
        /// The sealed verifier.
        verifier: String,
        /// Now (ms).
        now_ms: i64,
    },
    /// Spends the `state` (once, before it expires). Answers the flow.
    Spend {
        /// The state's digest.
        state: String,
        /// Now (ms).
        now_ms: i64,
    },
}
