//! A tenant's figures per day: calls (direction, answered or not, duration, the post-call
//! analysis), emails (their delivery status) and text messages (theirs), from the per-day rows
//! the writer keeps as records are written (`rollup`: which fields count). Days are UTC dates.
//! Each query reads a row per day of one tenant. Also the status view's hourly counts of
//! deliveries (`activity`), which the writer keeps as deliveries are stored and end.

use rusqlite::params;

use super::{ActivityHour, Analytics, CallDay, EmailDay, HOUR_MS, MessageDay};
use super::{Result, Sqlite};
use crate::id::{ConnectorId, TenantId};

const CALLS: &str = "
SELECT day, calls, inbound, outbound, answered,
       CASE WHEN timed > 0 THEN duration_ms / 1000.0 / timed END,
       analyzed, successful, positive, neutral, negative
FROM call_days WHERE tenant = ?1 AND day >= ?2 AND calls > 0 ORDER BY day";

const EMAILS: &str = "
SELECT day, emails, delivered, bounced, complained
FROM email_days WHERE tenant = ?1 AND day >= ?2 AND emails > 0 ORDER BY day";

const MESSAGES: &str = "
SELECT day, messages, delivered, failed
FROM message_days WHERE tenant = ?1 AND day >= ?2 AND messages > 0 ORDER BY day";

const ACTIVITY: &str = "
SELECT tenant, connector, hour, received, failed, last_received_ms, last_done_ms
FROM activity WHERE hour >= ?1 / 3600000";

/// Counts `n` deliveries received in `hour` (the writer, as it stores them).
pub(super) fn count_received(
    c: &rusqlite::Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    hour: i64,
    n: i64,
    last_ms: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO activity (tenant, connector, hour, received, failed, last_received_ms)
         VALUES (?1, ?2, ?3, ?4, 0, ?5)
         ON CONFLICT (tenant, connector, hour) DO UPDATE
         SET received = received + excluded.received,
             last_received_ms = max(coalesce(last_received_ms, 0), excluded.last_received_ms)",
    )?
    .execute(params![tenant, connector, hour, n, last_ms])?;
    Ok(())
}

/// Counts a delivery's end (the writer, as it commits it): a dead one as failed in the hour it
/// arrived, a handled one as the connector's last success.
pub(super) fn count_ended(
    c: &rusqlite::Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    state: super::DeliveryState,
    received_at_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    use super::DeliveryState as S;
    let (hour, failed, done) = match state {
        S::Dead => (received_at_ms / HOUR_MS, 1, None),
        S::Done | S::Ignored => (now_ms / HOUR_MS, 0, Some(now_ms)),
        _ => return Ok(()),
    };
    c.prepare_cached(
        "INSERT INTO activity (tenant, connector, hour, received, failed, last_done_ms)
         VALUES (?1, ?2, ?3, 0, ?4, ?5)
         ON CONFLICT (tenant, connector, hour) DO UPDATE
         SET failed = failed + excluded.failed,
             last_done_ms = max(coalesce(last_done_ms, 0), coalesce(excluded.last_done_ms, 0))",
    )?
    .execute(params![tenant, connector, hour, failed, done])?;
    Ok(())
}

impl Sqlite {
    /// Each (tenant, connector)'s last delivery and last success (ms), ever.
    ///
    /// # Errors
    /// On database failure.
    pub async fn last_activity(
        &self,
    ) -> Result<Vec<(TenantId, ConnectorId, Option<i64>, Option<i64>)>> {
        self.read_async(|c| {
            c.prepare_cached(
                "SELECT tenant, connector, max(last_received_ms), max(last_done_ms)
                 FROM activity GROUP BY tenant, connector",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect()
        })
        .await
    }

    /// Deliveries per (tenant, connector) and hour since `since_ms` (a status view's window).
    ///
    /// # Errors
    /// On database failure.
    pub async fn activity(&self, since_ms: i64) -> Result<Vec<ActivityHour>> {
        self.read_async(move |c| {
            c.prepare_cached(ACTIVITY)?
                .query_map([since_ms], |r| {
                    Ok(ActivityHour {
                        tenant: r.get(0)?,
                        connector: r.get(1)?,
                        hour: r.get(2)?,
                        received: r.get(3)?,
                        failed: r.get(4)?,
                        last_received_ms: r.get(5)?,
                        last_done_ms: r.get(6)?,
                    })
                })?
                .collect()
        })
        .await
    }

    /// The tenant's figures per day from `since` (`YYYY-MM-DD`, UTC) on.
    ///
    /// # Errors
    /// On database failure.
    pub async fn analytics(&self, tenant: TenantId, since: String) -> Result<Analytics> {
        self.read_async(move |c| {
            let calls = c
                .prepare_cached(CALLS)?
                .query_map(params![tenant, since], |r| {
                    let calls: i64 = r.get(1)?;
                    let answered: i64 = r.get::<_, Option<i64>>(4)?.unwrap_or(0);
                    Ok(CallDay {
                        day: r.get(0)?,
                        calls,
                        inbound: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                        outbound: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                        answered,
                        unanswered: calls - answered,
                        avg_duration_s: r.get(5)?,
                        analyzed: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                        successful: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                        positive: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                        neutral: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
                        negative: r.get::<_, Option<i64>>(10)?.unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let emails = c
                .prepare_cached(EMAILS)?
                .query_map(params![tenant, since], |r| {
                    Ok(EmailDay {
                        day: r.get(0)?,
                        emails: r.get(1)?,
                        delivered: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                        bounced: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                        complained: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let messages = c
                .prepare_cached(MESSAGES)?
                .query_map(params![tenant, since], |r| {
                    Ok(MessageDay {
                        day: r.get(0)?,
                        messages: r.get(1)?,
                        delivered: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                        failed: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Analytics {
                calls,
                emails,
                messages,
            })
        })
        .await
    }
}
