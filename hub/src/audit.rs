//! The audit trail's writer: who did what, when, from where (see [`crate::store::AuditEntry`]).
//! Read through `GET /api/v1/audit` and the console; pruned past `server.audit_retention_days`.
//!
//! Written beside the request, not in its path: an entry the store cannot take is logged with
//! what it says (never a secret: entries name what was done, not values), and the request it
//! records is not failed for it.

use crate::store::{AuditEntry, Store};

/// Appends `entry` to the trail.
pub fn record(store: &Store, entry: AuditEntry) {
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.audit_write(entry.clone()).await {
            tracing::warn!(
                actor = %entry.actor,
                action = %entry.action,
                target = %entry.target,
                "the audit trail cannot take an entry: {e}"
            );
        }
    });
}
