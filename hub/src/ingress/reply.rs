//! The answer of a `sync-reply` route: the connector's `respond` runs while the provider waits
//! (Retell's inbound call webhook wants the call's variables), and its writes are committed
//! before the answer goes out.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Rejection;

use crate::id::{ConnectorId, TenantId};
use crate::runtime::{Call, CallError, ConnectorError, Delivery, Priority};
use crate::state::Hub;

/// Runs the connector's `respond` for the stored delivery `id` and answers with its reply.
pub(super) async fn respond(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
    id: i64,
    delivery: Delivery,
) -> Result<Response, Rejection> {
    let config = hub
        .directory
        .tenant_config(tenant, connector)
        .ok_or(Rejection::NotFound)?;
    let call = Call {
        priority: Priority::Answer,
        tenant,
        connector,
        config,
    };
    let called = hub.runtime.respond(call, delivery).await;
    let reply = match called.result {
        Ok(reply) => reply,
        Err(e) => {
            tracing::warn!(%tenant, %connector, delivery = id, "synchronous reply failed: {e}");
            return Err(match e {
                CallError::Connector(ConnectorError::BadRequest(m)) => {
                    Rejection::ReplyBadRequest(m)
                }
                CallError::Connector(
                    ConnectorError::Permanent(m) | ConnectorError::Declined(m),
                ) => Rejection::ReplyRefused(m),
                _ => Rejection::ReplyFailed,
            });
        }
    };
    if let Err(e) = hub.store.apply(tenant, connector, called.effects).await {
        tracing::error!(%tenant, %connector, delivery = id, "could not store the reply's effects: {e}");
        return Err(Rejection::StoreUnavailable);
    }
    let mut resp = Response::new(axum::body::Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
