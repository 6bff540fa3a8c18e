//! The state of the tenants' webhook endpoints (`endpoint_states`): an endpoint that answered
//! `410 Gone` is disabled, with why and when, until the operator or the app enables it again.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Command, Result, Sqlite, cached_row};

use super::Disabled;
use crate::clock::now_ms;
use crate::id::TenantId;

impl Sqlite {
    /// Whether the tenant's endpoint is disabled, and why.
    ///
    /// # Errors
    /// On database failure.
    pub async fn endpoint_disabled(
        &self,
        tenant: &TenantId,
        endpoint: &str,
    ) -> Result<Option<Disabled>> {
        let (tenant, endpoint) = (tenant.clone(), endpoint.to_string());
        self.read_async(move |c| {
            cached_row(
                c,
                "SELECT disabled_at, reason FROM endpoint_states WHERE tenant=?1 AND endpoint=?2",
                params![tenant, endpoint],
                |r| {
                    Ok(Disabled {
                        disabled_at_ms: r.get(0)?,
                        reason: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Disables the tenant's endpoint with `reason`, or enables it again (`None`).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn set_endpoint_disabled(
        &self,
        tenant: &TenantId,
        endpoint: &str,
        reason: Option<String>,
    ) -> Result<()> {
        let (tenant, endpoint) = (tenant.clone(), endpoint.to_string());
        self.call(|reply| Command::EndpointState {
            tenant,
            endpoint,
            disabled: reason,
            reply,
        })
        .await
    }
}

pub(super) fn set(
    c: &Connection,
    tenant: &TenantId,
    endpoint: &str,
    disabled: Option<&str>,
) -> rusqlite::Result<()> {
    match disabled {
        Some(reason) => c
            .prepare_cached(
                "INSERT INTO endpoint_states (tenant, endpoint, disabled_at, reason)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, endpoint) DO UPDATE SET disabled_at=excluded.disabled_at,
                                                              reason=excluded.reason",
            )?
            .execute(params![tenant, endpoint, now_ms(), reason])?,
        None => c
            .prepare_cached("DELETE FROM endpoint_states WHERE tenant=?1 AND endpoint=?2")?
            .execute(params![tenant, endpoint])?,
    };
    Ok(())
}
