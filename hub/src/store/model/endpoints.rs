//! The state of the tenants' webhook endpoints (`endpoint_states`): an endpoint that answered
//! `410 Gone` is disabled, with why and when, until the operator or the app enables it again.

use serde::Serialize;

/// Why and since when an endpoint is disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Disabled {
    /// When (ms).
    pub disabled_at_ms: i64,
    /// Why.
    pub reason: String,
}
