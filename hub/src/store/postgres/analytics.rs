//! Figures on PostgreSQL, computed when read: a tenant's calls, emails and messages per day
//! from its records (the fields the SQLite store's `rollup` counts, with the same rules), and
//! the status view's hourly counts from the webhook log. Nothing is counted as it is written:
//! every hub would update the same counter rows in every ingest batch, and wait on each other.

use super::super::{ActivityHour, Analytics, CallDay, EmailDay, MessageDay, Result};
use super::{Postgres, connector, tenant};
use crate::id::{ConnectorId, TenantId};

/// A JSON number field as a bigint, `NULL` when it is missing or not a number.
macro_rules! number {
    ($path:literal) => {
        concat!(
            "CASE WHEN jsonb_typeof(d #> '",
            $path,
            "') = 'number' THEN (d #>> '",
            $path,
            "')::numeric::bigint END"
        )
    };
}

const CALLS: &str = concat!(
    "SELECT day, count(*), count(*) FILTER (WHERE dir = 'inbound'), count(*) FILTER (WHERE dir = 'outbound'),
            count(*) FILTER (WHERE status = 'ended' AND voicemail IS DISTINCT FROM 'true'),
            (avg(duration) / 1000.0)::float8,
            count(*) FILTER (WHERE analyzed), count(*) FILTER (WHERE successful = 'true'),
            count(*) FILTER (WHERE sentiment = 'Positive'), count(*) FILTER (WHERE sentiment = 'Neutral'),
            count(*) FILTER (WHERE sentiment = 'Negative')
     FROM (SELECT to_char(to_timestamp(coalesce(", number!("{start_timestamp}"), ", updated_at) / 1000.0)
                          AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                  d ->> 'direction' AS dir, d ->> 'call_status' AS status,
                  ", number!("{duration_ms}"), " AS duration,
                  d ? 'call_analysis' AND d -> 'call_analysis' <> 'null' AS analyzed,
                  d #>> '{call_analysis,in_voicemail}' AS voicemail,
                  d #>> '{call_analysis,call_successful}' AS successful,
                  d #>> '{call_analysis,user_sentiment}' AS sentiment
           FROM (SELECT data::jsonb AS d, updated_at FROM records WHERE tenant = $1 AND kind = 'call') r) c
     WHERE day >= $2 GROUP BY day ORDER BY day"
);

const EMAILS: &str = "
SELECT day, count(*), count(*) FILTER (WHERE status = 'delivered'),
       count(*) FILTER (WHERE status = 'bounced'), count(*) FILTER (WHERE status = 'complained')
FROM (SELECT substr(d ->> 'created_at', 1, 10) AS day, d ->> 'status' AS status
      FROM (SELECT data::jsonb AS d FROM records WHERE tenant = $1 AND kind = 'email') r) e
WHERE day IS NOT NULL AND day >= $2 GROUP BY day ORDER BY day";

const MESSAGES: &str = concat!(
    "SELECT day, count(*), count(*) FILTER (WHERE status = 'delivered'),
            count(*) FILTER (WHERE status IN ('failed', 'undelivered'))
     FROM (SELECT to_char(to_timestamp(",
    number!("{at_ms}"),
    " / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                  d ->> 'status' AS status
           FROM (SELECT data::jsonb AS d FROM records WHERE tenant = $1 AND kind = 'message') r) m
     WHERE day IS NOT NULL AND day >= $2 GROUP BY day ORDER BY day"
);

impl Postgres {
    /// The tenant's figures per day from `since` (`YYYY-MM-DD`, UTC) on.
    ///
    /// # Errors
    /// On database failure.
    pub async fn analytics(&self, tenant: TenantId, since: String) -> Result<Analytics> {
        let client = self.client().await?;
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant.as_str(), &since];
        let calls = client
            .query(CALLS, &args)
            .await?
            .iter()
            .map(|r| {
                let (calls, answered): (i64, i64) = (r.get(1), r.get(4));
                CallDay {
                    day: r.get(0),
                    calls,
                    inbound: r.get(2),
                    outbound: r.get(3),
                    answered,
                    unanswered: calls - answered,
                    avg_duration_s: r.get(5),
                    analyzed: r.get(6),
                    successful: r.get(7),
                    positive: r.get(8),
                    neutral: r.get(9),
                    negative: r.get(10),
                }
            })
            .collect();
        let emails = client
            .query(EMAILS, &args)
            .await?
            .iter()
            .map(|r| EmailDay {
                day: r.get(0),
                emails: r.get(1),
                delivered: r.get(2),
                bounced: r.get(3),
                complained: r.get(4),
            })
            .collect();
        let messages = client
            .query(MESSAGES, &args)
            .await?
            .iter()
            .map(|r| MessageDay {
                day: r.get(0),
                messages: r.get(1),
                delivered: r.get(2),
                failed: r.get(3),
            })
            .collect();
        Ok(Analytics {
            calls,
            emails,
            messages,
        })
    }

    /// Deliveries per (tenant, connector) and hour since `since_ms`, counted from the log: those
    /// received in each hour, how many of them are dead, and the last success ending in it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn activity(&self, since_ms: i64) -> Result<Vec<ActivityHour>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, connector, hour, sum(received)::bigint, sum(failed)::bigint,
                        max(last_received), max(last_done)
                 FROM (SELECT tenant, connector, received_at / 3600000 AS hour, 1 AS received,
                              (state = 'dead')::int AS failed, received_at AS last_received,
                              NULL::bigint AS last_done
                       FROM deliveries WHERE received_at >= $1
                       UNION ALL
                       SELECT tenant, connector, processed_at / 3600000, 0, 0, NULL, processed_at
                       FROM deliveries
                       WHERE received_at >= $1 - 86400000 AND processed_at >= $1
                         AND state IN ('done', 'ignored')) a
                 GROUP BY tenant, connector, hour",
                &[&since_ms],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ActivityHour {
                    tenant: tenant(r, 0)?,
                    connector: connector(r, 1)?,
                    hour: r.get(2),
                    received: r.get(3),
                    failed: r.get(4),
                    last_received_ms: r.get(5),
                    last_done_ms: r.get(6),
                })
            })
            .collect()
    }

    /// Each (tenant, connector)'s last delivery and last success (ms), ever: one index probe
    /// per pair, the pairs found by skipping through the log's unique index.
    ///
    /// # Errors
    /// On database failure.
    pub async fn last_activity(
        &self,
    ) -> Result<Vec<(TenantId, ConnectorId, Option<i64>, Option<i64>)>> {
        let rows = self
            .client()
            .await?
            .query(
                "WITH RECURSIVE pairs(t, c) AS (
                   (SELECT tenant, connector FROM deliveries ORDER BY tenant, connector LIMIT 1)
                   UNION ALL
                   SELECT next.t, next.c FROM pairs p, LATERAL (
                       SELECT tenant AS t, connector AS c FROM deliveries d
                       WHERE (d.tenant, d.connector) > (p.t, p.c)
                       ORDER BY d.tenant, d.connector LIMIT 1) next)
                 SELECT t, c,
                        (SELECT max(received_at) FROM deliveries WHERE tenant = t AND connector = c),
                        (SELECT processed_at FROM deliveries
                         WHERE tenant = t AND connector = c AND state IN ('done', 'ignored')
                         ORDER BY received_at DESC LIMIT 1)
                 FROM pairs",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((tenant(r, 0)?, connector(r, 1)?, r.get(2), r.get(3))))
            .collect()
    }
}
