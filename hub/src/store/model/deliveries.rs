//! The webhook log (`deliveries`): a verified webhook is stored once per (tenant, connector,
//! identity), and queued for its connector in the same transaction; the log's reads.

use serde::Serialize;

use crate::id::{ConnectorId, TenantId};

/// Where a delivery is in its handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Stored, its job not yet claimed.
    Received,
    /// Its job is running.
    Processing,
    /// Handled.
    Done,
    /// Handled: the connector did not act on it, and said why.
    Ignored,
    /// An attempt failed; another is queued.
    Retrying,
    /// Failed for good (dead letter).
    Dead,
}

impl DeliveryState {
    /// Every state, in the order a delivery goes through them.
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Received,
        DeliveryState::Processing,
        DeliveryState::Done,
        DeliveryState::Ignored,
        DeliveryState::Retrying,
        DeliveryState::Dead,
    ];

    /// The state as stored and shown: `received`, `processing`, `done`, `ignored`, `retrying`,
    /// `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Received => "received",
            DeliveryState::Processing => "processing",
            DeliveryState::Done => "done",
            DeliveryState::Ignored => "ignored",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Dead => "dead",
        }
    }
}

super::state_text!(DeliveryState, "delivery state");

/// A verified webhook, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// Route name ("" for the bare URL).
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// The provider's identity for this delivery; a second delivery with the same identity for
    /// the same tenant and connector is a duplicate.
    pub identity: String,
    /// The provider's event type, when the route says where to find it.
    pub event: Option<String>,
    /// The URL the provider called.
    pub url: String,
    /// Headers, secrets removed.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at_ms: i64,
    /// The `traceparent` of the request's span, when traces are exported: the delivery's job
    /// continues it.
    pub trace: Option<String>,
}

#[cfg(test)]
impl NewDelivery {
    /// For the hub's tests: a JSON `{}` for tenant `t1`, connector `c1`, event `e`, received now.
    pub(crate) fn test(identity: &str) -> NewDelivery {
        NewDelivery {
            tenant: crate::config::id("t1"),
            connector: crate::config::id("c1"),
            route: String::new(),
            method: "POST".into(),
            identity: identity.into(),
            event: Some("e".into()),
            url: "http://x/hooks/t1/c1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            received_at_ms: crate::clock::now_ms(),
            trace: None,
        }
    }
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored for the first time, and queued for its connector.
    Stored(i64),
    /// Already stored under this id; nothing changed.
    Duplicate(i64),
}

impl Ingested {
    /// The delivery id either way.
    pub fn id(self) -> i64 {
        match self {
            Ingested::Stored(id) | Ingested::Duplicate(id) => id,
        }
    }
}

/// One row of the webhook log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: i64,
    /// Tenant id.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Connector id.
    #[schema(value_type = String)]
    pub connector: ConnectorId,
    /// Route name.
    pub route: String,
    /// Event type, if known.
    pub event: Option<String>,
    /// Dedup identity.
    pub identity: String,
    /// Where it is in its handling.
    pub state: DeliveryState,
    /// Processing attempts.
    pub attempts: i64,
    /// Last error.
    pub last_error: Option<String>,
    /// Why it was ignored.
    pub ignored_reason: Option<String>,
    /// Arrival time (ms).
    pub received_at_ms: i64,
    /// When processing finished (ms).
    pub processed_at_ms: Option<i64>,
    /// Duration of the last attempt (µs).
    pub duration_us: Option<i64>,
    /// The URL called.
    pub url: String,
    /// Headers (secrets removed); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pub headers: Option<Vec<(String, String)>>,
    /// Raw body as text (lossy); only in single-delivery reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A test webhook (sent from the console, marked `x-hub-test`), not the provider's.
    #[serde(default)]
    pub test: bool,
}

/// Filter for listing deliveries.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only this connector.
    pub connector: Option<ConnectorId>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only this route.
    pub route: Option<String>,
    /// Only this event type.
    pub event: Option<String>,
    /// Only the delivery with this id or this identity (`call_id:event`...).
    pub search: Option<String>,
    /// Only deliveries whose body holds this text (a scan: bounded by `limit` and the time range).
    pub contains: Option<String>,
    /// Only deliveries received at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only deliveries received before this time (ms).
    pub until_ms: Option<i64>,
    /// Only deliveries older than this one (a page's keyset: ids descend).
    pub before: Option<i64>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// A delivery's request as stored.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Route name.
    pub route: String,
    /// URL called.
    pub url: String,
    /// Headers (secrets removed).
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// Arrival (ms).
    pub received_at_ms: i64,
    /// HTTP method.
    pub method: String,
}
