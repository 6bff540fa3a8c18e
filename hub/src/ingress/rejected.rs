//! The last refused webhook requests, for the operator: when, the path's tenant, connector and
//! route, the status and why, in a bounded ring in memory. No body and no header is kept: a
//! refused request was not verified, so what it carried is nobody's data to keep.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::Rejection;
use crate::clock::now_ms;

/// How many refusals the ring keeps.
pub const KEPT: usize = 1000;

/// One refused request.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// When (ms).
    pub at_ms: i64,
    /// The tenant, connector and route of the path, as sent (at most 100 characters each).
    pub tenant: String,
    /// See `tenant`.
    pub connector: String,
    /// See `tenant`.
    pub route: String,
    /// The status answered.
    pub status: u16,
    /// `signature`, `too_large`, `not_found`, `rate_limited`, `bad_request`, `method`,
    /// `unavailable`, `reply` or `stale_channel`.
    pub cause: &'static str,
    /// What was wrong, as the provider was told.
    pub detail: String,
}

/// The ring.
#[derive(Default)]
pub struct Refusals(Mutex<VecDeque<Refusal>>);

fn cut(s: &str) -> String {
    s.chars().take(100).collect()
}

impl Refusals {
    /// Keeps a refusal (the oldest goes when the ring is full).
    pub fn push(&self, (tenant, connector, route): (&str, &str, &str), rejection: &Rejection) {
        let cause = match rejection {
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed(_) => "method",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::RateLimited { .. } => "rate_limited",
            Rejection::BadSignature(_) | Rejection::Unverifiable => "signature",
            Rejection::ChannelNotHeld => "stale_channel",
            Rejection::BadRequest(_) => "bad_request",
            Rejection::StoreUnavailable => "unavailable",
            Rejection::ReplyBadRequest(_) | Rejection::ReplyRefused(_) | Rejection::ReplyFailed => {
                "reply"
            }
        };
        let refusal = Refusal {
            at_ms: now_ms(),
            tenant: cut(tenant),
            connector: cut(connector),
            route: cut(route),
            status: rejection.status().as_u16(),
            cause,
            detail: cut(&rejection.message()),
        };
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= KEPT {
            ring.pop_front();
        }
        ring.push_back(refusal);
    }

    /// The refusals `keep` lets through, newest first, at most `limit`.
    pub fn newest(&self, limit: usize, keep: impl Fn(&Refusal) -> bool) -> Vec<Refusal> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter()
            .rev()
            .filter(|r| keep(r))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_no_more() {
        let ring = Refusals::default();
        for i in 0..KEPT + 5 {
            ring.push(("t", &format!("c{i}"), ""), &Rejection::NotFound);
        }
        let all = ring.newest(usize::MAX, |_| true);
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].connector, format!("c{}", KEPT + 4));
        assert_eq!(all[0].status, 404);
        let signed = Rejection::BadSignature("the signature does not match".into());
        ring.push(("alpha", "retell", ""), &signed);
        let alpha = ring.newest(10, |r| r.tenant == "alpha");
        assert_eq!(alpha.len(), 1);
        assert_eq!((alpha[0].cause, alpha[0].status), ("signature", 401));
        assert_eq!(alpha[0].detail, "the signature does not match");
    }
}
