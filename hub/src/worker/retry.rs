//! What a failed attempt leads to: a retry with exponential backoff (honouring the provider's
//! `Retry-After`), or the dead letter once the connector's attempt or age limit is reached.

use crate::clock::now_ms;
use crate::runtime::{CallError, ConnectorError};
use crate::store::JobEnd;

/// How long a job that needs a connection to be reconnected waits before it looks again.
pub const RECONNECT_WAIT_MS: i64 = 15_000;

/// Attempts before a crashing connector (trap) is dead-lettered.
pub const MAX_TRAP_ATTEMPTS: i64 = 3;

/// Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at one hour, at least `floor`.
pub fn backoff_ms(attempts: i64, floor_ms: Option<u64>) -> i64 {
    let exp = 1_000i64
        .saturating_mul(1i64 << (attempts.clamp(1, 22) - 1))
        .min(3_600_000);
    let jittered = exp / 2 + (rand::random::<u64>() % (exp as u64 / 2 + 1)) as i64;
    jittered.max(floor_ms.unwrap_or(0).min(i64::MAX as u64) as i64)
}

/// What a failed attempt leads to: retryable failures and crashes retry with backoff until the
/// connector's attempt or age limit; permanent and bad-request failures are dead at once.
pub(super) fn end_for_failure(
    e: &CallError,
    attempts: i64,
    max_attempts: i64,
    too_old: bool,
) -> JobEnd {
    let error = e.to_string();
    let retry = |floor: Option<u64>| JobEnd::Retry {
        error: error.clone(),
        at_ms: now_ms() + backoff_ms(attempts, floor),
    };
    if let CallError::Disconnected(_) = e {
        // Nothing the job can do: it waits, spending no attempt, until the account is
        // reconnected (or the job grows too old).
        if !too_old {
            return JobEnd::Defer {
                at_ms: now_ms() + RECONNECT_WAIT_MS,
            };
        }
    }
    if too_old {
        return JobEnd::Dead {
            error: format!("{error} (gave up: the job is older than the connector's max_age_secs)"),
        };
    }
    match e {
        CallError::Connector(ConnectorError::Retryable(r)) if attempts < max_attempts => {
            retry(r.retry_after_ms)
        }
        CallError::Trapped(_) if attempts < MAX_TRAP_ATTEMPTS.min(max_attempts) => retry(None),
        CallError::Unavailable(_) if attempts < max_attempts => retry(None),
        _ => JobEnd::Dead { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Retryable;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for attempts in 1..10 {
            let b = backoff_ms(attempts, None);
            let exp = 1000 * (1 << (attempts - 1));
            assert!(b >= exp / 2 && b <= exp, "attempt {attempts}: {b}");
        }
        assert!(backoff_ms(1, Some(30_000)) >= 30_000);
        assert!(backoff_ms(40, None) <= 3_600_000);
    }

    #[test]
    fn failures_map_to_retry_or_dead() {
        let retryable = CallError::Connector(ConnectorError::Retryable(Retryable {
            message: "x".into(),
            retry_after_ms: None,
        }));
        assert!(matches!(
            end_for_failure(&retryable, 1, 8, false),
            JobEnd::Retry { .. }
        ));
        assert!(matches!(
            end_for_failure(&retryable, 8, 8, false),
            JobEnd::Dead { .. }
        ));
        assert!(
            matches!(end_for_failure(&retryable, 1, 8, true), JobEnd::Dead { .. }),
            "too old"
        );
        let permanent = CallError::Connector(ConnectorError::Permanent("no".into()));
        assert!(matches!(
            end_for_failure(&permanent, 1, 8, false),
            JobEnd::Dead { .. }
        ));
        let trap = CallError::Trapped("loop".into());
        assert!(matches!(
            end_for_failure(&trap, 1, 8, false),
            JobEnd::Retry { .. }
        ));
        assert!(matches!(
            end_for_failure(&trap, MAX_TRAP_ATTEMPTS, 8, false),
            JobEnd::Dead { .. }
        ));
    }
}
