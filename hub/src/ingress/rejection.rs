//! [`Rejection`]: every way the ingress refuses a webhook request, and the one place that turns
//! each into its status, body and headers. Providers retry on 429 and 5xx (and most on any
//! non-2xx), so the contract is: 404 for anything unknown (the same body whatever is unknown),
//! 405 for a method the route does not take, 413 for a body over the limit, 429 with
//! `Retry-After` over the tenant's rate, 401 for a signature that fails or cannot be checked, 400
//! for a body the route cannot read, and 503 with `Retry-After` when the store cannot commit
//! (never a 2xx for what is not durable). One refusal is a 200: a push on a channel the hub no
//! longer holds, which the provider keeps sending until the channel expires whatever it hears.

use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics::{Counter, Metrics};

/// Why a webhook request is refused.
#[derive(Debug)]
pub enum Rejection {
    /// No such tenant, connector or route, or the route is not reached this way: 404, the same
    /// body either way, so a prober learns nothing about which tenants exist.
    NotFound,
    /// The route takes no such method: 405.
    MethodNotAllowed(Method),
    /// The declared body is over the limit: 413.
    TooLarge {
        /// Bytes declared.
        declared: u64,
        /// Bytes allowed.
        limit: usize,
    },
    /// The tenant (or a tenant-less route's connector) is over its rate: 429.
    RateLimited {
        /// When a token is back.
        retry_after: Duration,
    },
    /// The signature does not verify: 401, saying why.
    BadSignature(String),
    /// The signature cannot be checked (no usable credential, or a custom check that failed to
    /// run): 401, without detail; the log says what is wrong.
    Unverifiable,
    /// A push on a channel the hub does not hold (stopped, expired, or never opened): 200,
    /// nothing stored. A provider keeps pushing on a stopped channel until it expires; any
    /// other status only makes it retry or count failures.
    ChannelNotHeld,
    /// The request cannot be read as the route needs: 400.
    BadRequest(String),
    /// The store could not commit: 503 with `Retry-After`, so the provider tries again.
    StoreUnavailable,
    /// On a `sync-reply` route, the connector refused the request as malformed: 400.
    ReplyBadRequest(String),
    /// On a `sync-reply` route, the connector refused it for good: 422.
    ReplyRefused(String),
    /// On a `sync-reply` route, the connector could not answer (the delivery is stored): 500.
    ReplyFailed,
}

/// Seconds a provider is asked to wait after a 503.
const STORE_RETRY_AFTER: &str = "5";

impl Rejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::BadSignature(_) | Rejection::Unverifiable => StatusCode::UNAUTHORIZED,
            Rejection::ChannelNotHeld => StatusCode::OK,
            Rejection::BadRequest(_) | Rejection::ReplyBadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::ReplyRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::ReplyFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The counter of `/metrics` this rejection adds to, if any.
    pub fn counter<'m>(&self, metrics: &'m Metrics) -> Option<&'m Counter> {
        match self {
            Rejection::NotFound => Some(&metrics.rejected_not_found),
            Rejection::RateLimited { .. } => Some(&metrics.rate_limited),
            Rejection::BadSignature(_) | Rejection::Unverifiable => {
                Some(&metrics.rejected_signature)
            }
            Rejection::ChannelNotHeld => Some(&metrics.stale_channel),
            Rejection::BadRequest(_) => Some(&metrics.rejected_bad_request),
            Rejection::StoreUnavailable => Some(&metrics.store_failures),
            Rejection::MethodNotAllowed(_)
            | Rejection::TooLarge { .. }
            | Rejection::ReplyBadRequest(_)
            | Rejection::ReplyRefused(_)
            | Rejection::ReplyFailed => None,
        }
    }

    pub(super) fn message(&self) -> String {
        match self {
            Rejection::NotFound => "not found".into(),
            Rejection::MethodNotAllowed(method) => format!("{method} is not accepted here"),
            Rejection::TooLarge { declared, limit } => {
                format!("the body is {declared} bytes; the limit is {limit}")
            }
            Rejection::RateLimited { .. } => "rate limited".into(),
            Rejection::BadSignature(why) => why.clone(),
            Rejection::Unverifiable => "signature cannot be verified".into(),
            Rejection::ChannelNotHeld => "not a channel this hub holds; nothing stored".into(),
            Rejection::BadRequest(why)
            | Rejection::ReplyBadRequest(why)
            | Rejection::ReplyRefused(why) => why.clone(),
            Rejection::StoreUnavailable => {
                "the hub cannot store this delivery now; retry later".into()
            }
            Rejection::ReplyFailed => {
                "the connector could not answer; the delivery is stored".into()
            }
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Rejection::RateLimited { retry_after } => {
                HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()).ok()
            }
            Rejection::StoreUnavailable => Some(HeaderValue::from_static(STORE_RETRY_AFTER)),
            _ => None,
        };
        let mut response = (
            self.status(),
            axum::Json(json!({ "error": self.message() })),
        )
            .into_response();
        if let Some(v) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// Answers 413 to a request whose declared Content-Length is over the limit. A body up to
/// twice the limit is read and dropped first: a client still sending when the answer comes
/// would otherwise see its connection reset instead of the 413. A larger one is not read at all
/// (the connection is closed after the answer).
pub(super) async fn refuse_oversized(
    axum::extract::State((limit, refusals)): axum::extract::State<(
        usize,
        std::sync::Arc<super::rejected::Refusals>,
    )>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use http_body_util::BodyExt;

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let Some(declared) = declared.filter(|n| *n > limit as u64) else {
        return next.run(req).await;
    };
    let req_path = req.uri().path().to_string();
    if declared <= 2 * limit as u64 {
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    }
    let rejection = Rejection::TooLarge { declared, limit };
    let mut parts = req_path.trim_start_matches("/hooks/").split('/');
    let (t, c, r) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    refusals.push((t, c, r), &rejection);
    rejection.into_response()
}
