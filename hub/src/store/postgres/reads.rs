//! Reads on PostgreSQL: what host calls read while a connector runs (blocking, on the
//! invocation's thread), the webhook log, jobs, events, schedules and endpoint states.

use super::super::{
    DeliveryFilter, DeliveryRow, Disabled, EventRow, JobCount, JobRow, Result, StoredRequest,
};
use super::{Postgres, connector, state, tenant, text};

use super::super::decode_task;
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

type Listed = Vec<(String, String, i64)>;

impl Postgres {
    /// A record's JSON and version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get_versioned(
        &self,
        tenant: &TenantId,
        kind: &str,
        key: &str,
    ) -> Result<(Option<String>, i64)> {
        self.blocking(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT data, version FROM records WHERE tenant=$1 AND kind=$2 AND key=$3",
                )
                .await?;
            let row = client
                .query_opt(&stmt, &[&tenant.as_str(), &text(kind), &text(key)])
                .await?;
            Ok(row.map_or((None, 0), |r| (Some(r.get(0)), r.get(1))))
        })
    }

    /// A record's JSON (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_get(&self, tenant: &TenantId, kind: &str, key: &str) -> Result<Option<String>> {
        Ok(self.record_get_versioned(tenant, kind, key)?.0)
    }

    /// Up to `limit` records of a kind, newest first, as `(key, json, version)` (blocking).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_list(&self, tenant: &TenantId, kind: &str, limit: u32) -> Result<Listed> {
        self.blocking(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT key, data, version FROM records WHERE tenant=$1 AND kind=$2
                     ORDER BY updated_at DESC, key LIMIT $3",
                    &[&tenant.as_str(), &text(kind), &i64::from(limit.min(1000))],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })
    }

    /// Up to `limit` records of a kind that carry `lookup`, newest first (blocking).
    ///
    /// # Errors
    /// On database failure.
    pub fn record_find(
        &self,
        tenant: &TenantId,
        kind: &str,
        lookup: &str,
        limit: u32,
    ) -> Result<Listed> {
        self.blocking(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT r.key, r.data, r.version FROM record_lookups l
                     JOIN records r ON r.tenant=l.tenant AND r.kind=l.kind AND r.key=l.key
                     WHERE l.tenant=$1 AND l.kind=$2 AND l.lookup=$3
                     ORDER BY r.updated_at DESC, r.key LIMIT $4",
                    &[
                        &tenant.as_str(),
                        &kind,
                        &lookup,
                        &i64::from(limit.min(1000)),
                    ],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })
    }

    /// A kv value and its version (0 when absent) (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get_versioned(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, i64)> {
        self.blocking(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT value, version FROM kv WHERE tenant=$1 AND connector=$2 AND key=$3",
                )
                .await?;
            let row = client
                .query_opt(&stmt, &[&tenant.as_str(), &connector.as_str(), &text(key)])
                .await?;
            Ok(row.map_or((None, 0), |r| (Some(r.get(0)), r.get(1))))
        })
    }

    /// A kv value (blocking; for host calls).
    ///
    /// # Errors
    /// On database failure.
    pub fn kv_get(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.kv_get_versioned(tenant, connector, key)?.0)
    }

    /// A delivery's stored request (blocking; for the worker).
    ///
    /// # Errors
    /// On database failure.
    pub fn delivery_request(&self, id: i64) -> Result<Option<StoredRequest>> {
        self.blocking(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached("SELECT route, url, headers, body, received_at, method FROM deliveries WHERE id=$1").await?;
            let row = client
                .query_opt(
                    &stmt,
                    &[&id],
                )
                .await?;
            Ok(row.map(|r| StoredRequest {
                route: r.get(0),
                url: r.get(1),
                headers: serde_json::from_str(r.get(2)).unwrap_or_default(),
                body: r.get(3),
                received_at_ms: r.get(4),
                method: r.get(5),
            }))
        })
    }

    /// Recent deliveries, newest first (the filters of [`DeliveryFilter`]).
    ///
    /// # Errors
    /// On database failure.
    pub async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let limit = if filter.limit == 0 {
            50
        } else {
            filter.limit.min(1000)
        } as i64;
        let search_id = filter.search.as_deref().and_then(|s| s.parse::<i64>().ok());
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                        ignored_reason, received_at, processed_at, duration_us, url,
                        strpos(headers, '\"x-hub-test\"') > 0
                 FROM deliveries
                 WHERE ($1::text IS NULL OR tenant=$1) AND ($2::text IS NULL OR connector=$2)
                   AND ($3::text IS NULL OR state=$3) AND id < coalesce($5, 9223372036854775807)
                   AND ($6::text IS NULL OR route=$6) AND ($7::text IS NULL OR event=$7)
                   AND ($8::text IS NULL OR identity=$8 OR id=$9)
                   AND ($10::bytea IS NULL OR position($10::bytea IN body) > 0)
                   AND ($11::bigint IS NULL OR received_at >= $11)
                   AND ($12::bigint IS NULL OR received_at < $12)
                 ORDER BY id DESC LIMIT $4",
                &[
                    &filter.tenant.as_ref().map(|t| t.as_str()),
                    &filter.connector.as_ref().map(|c| c.as_str()),
                    &filter.state.map(|s| s.as_str()),
                    &limit,
                    &filter.before,
                    &filter.route,
                    &filter.event,
                    &filter.search,
                    &search_id,
                    &filter.contains.as_ref().map(|c| c.as_bytes()),
                    &filter.since_ms,
                    &filter.until_ms,
                ],
            )
            .await?;
        rows.iter().map(|r| delivery_row(r, false)).collect()
    }

    /// One delivery with its headers and body.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, tenant, connector, route, event, identity, state, attempts, last_error,
                        ignored_reason, received_at, processed_at, duration_us, url, headers, body
                 FROM deliveries WHERE id=$1",
                &[&id],
            )
            .await?;
        row.map(|r| delivery_row(&r, true)).transpose()
    }

    /// One job.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at
                 FROM jobs WHERE id=$1",
                &[&id],
            )
            .await?;
        row.map(|r| job_row(&r)).transpose()
    }

    /// The jobs that belong to a delivery.
    ///
    /// # Errors
    /// On database failure.
    pub async fn jobs_for_delivery(&self, id: i64) -> Result<Vec<JobRow>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, tenant, connector, task, state, attempts, last_error, run_at
                 FROM jobs WHERE delivery_id=$1 ORDER BY id",
                &[&id],
            )
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// Number of jobs not yet finished (queued or running).
    ///
    /// # Errors
    /// On database failure.
    pub async fn pending_jobs(&self) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM jobs WHERE state IN ('queued','running')",
                &[],
            )
            .await?
            .get(0))
    }

    /// Job counts by `(tenant, connector, state)`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant, connector, state, count(*) FROM jobs GROUP BY tenant, connector, state",
                &[],
            )
            .await?;
        rows.iter().map(job_count).collect()
    }

    /// When the longest-waiting queued job became due (ms), if one is due at `now_ms`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn oldest_due(&self, now_ms: i64) -> Result<Option<i64>> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT min(run_at) FROM jobs WHERE state = 'queued' AND run_at <= $1",
                &[&now_ms],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Each (tenant, connector) with dead-lettered jobs.
    ///
    /// # Errors
    /// On database failure.
    pub async fn dead_pairs(&self) -> Result<Vec<(TenantId, ConnectorId)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT tenant, connector FROM jobs WHERE state = 'dead'",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((super::tenant(r, 0)?, super::connector(r, 1)?)))
            .collect()
    }

    /// A tenant's events, newest first, before the event `before`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn events(
        &self,
        tenant_id: TenantId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, tenant, connector, name, payload, created_at, key FROM events
                 WHERE tenant=$1 AND id < coalesce($3, 9223372036854775807) ORDER BY id DESC LIMIT $2",
                &[&tenant_id.as_str(), &(limit.clamp(1, 1000) as i64), &before],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    id: r.get(0),
                    tenant: tenant(r, 1)?,
                    connector: connector(r, 2)?,
                    name: r.get(3),
                    payload: serde_json::from_str(r.get(4)).unwrap_or(serde_json::Value::Null),
                    created_at_ms: r.get(5),
                    key: r.get(6),
                })
            })
            .collect()
    }

    /// Each of a tenant's schedules' last recorded tick (ms) and the job that tick queued.
    ///
    /// # Errors
    /// On database failure.
    pub async fn schedule_runs(&self, tenant: TenantId) -> Result<Vec<(String, i64, Option<i64>)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, last_tick_ms, last_job_id FROM schedules WHERE tenant=$1 ORDER BY name",
                &[&tenant.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Whether one of the tenant's endpoints is disabled, since when and why.
    ///
    /// # Errors
    /// On database failure.
    pub async fn endpoint_disabled(
        &self,
        tenant: &TenantId,
        endpoint: &str,
    ) -> Result<Option<Disabled>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT disabled_at, reason FROM endpoint_states WHERE tenant=$1 AND endpoint=$2",
                &[&tenant.as_str(), &endpoint],
            )
            .await?;
        Ok(row.map(|r| Disabled {
            disabled_at_ms: r.get(0),
            reason: r.get(1),
        }))
    }

    /// Disables an endpoint (with why) or enables it again (`None`).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn set_endpoint_disabled(
        &self,
        tenant: &TenantId,
        endpoint: &str,
        reason: Option<String>,
    ) -> Result<()> {
        let client = self.client().await?;
        match reason {
            Some(reason) => {
                client
                    .execute(
                        "INSERT INTO endpoint_states (tenant, endpoint, disabled_at, reason)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, endpoint) DO UPDATE SET disabled_at=excluded.disabled_at,
                                                                  reason=excluded.reason",
                        &[&tenant.as_str(), &endpoint, &now_ms(), &reason],
                    )
                    .await?
            }
            None => {
                client
                    .execute(
                        "DELETE FROM endpoint_states WHERE tenant=$1 AND endpoint=$2",
                        &[&tenant.as_str(), &endpoint],
                    )
                    .await?
            }
        };
        Ok(())
    }

    /// The schema version the database is at.
    ///
    /// # Errors
    /// On database failure.
    pub async fn schema_version(&self) -> Result<i64> {
        let client = self.client().await?;
        super::schema::version(&client).await
    }
}

fn delivery_row(r: &tokio_postgres::Row, full: bool) -> Result<DeliveryRow> {
    let (headers, body, test) = if full {
        let headers: Option<Vec<(String, String)>> = serde_json::from_str(r.get(14)).ok();
        let test = headers
            .iter()
            .flatten()
            .any(|(k, _)| k == crate::store::TEST_HEADER);
        let body: &[u8] = r.get(15);
        (
            headers,
            Some(String::from_utf8_lossy(body).into_owned()),
            test,
        )
    } else {
        (None, None, r.get(14))
    };
    Ok(DeliveryRow {
        id: r.get(0),
        tenant: tenant(r, 1)?,
        connector: connector(r, 2)?,
        route: r.get(3),
        event: r.get(4),
        identity: r.get(5),
        state: state(r, 6)?,
        attempts: r.get(7),
        last_error: r.get(8),
        ignored_reason: r.get(9),
        received_at_ms: r.get(10),
        processed_at_ms: r.get(11),
        duration_us: r.get(12),
        url: r.get(13),
        headers,
        body,
        test,
    })
}

/// A `(tenant, connector, state, count)` row.
pub(super) fn job_count(r: &tokio_postgres::Row) -> Result<JobCount> {
    Ok(JobCount {
        tenant: tenant(r, 0)?,
        connector: connector(r, 1)?,
        state: state(r, 2)?,
        count: r.get(3),
    })
}

pub(super) fn job_row(r: &tokio_postgres::Row) -> Result<JobRow> {
    Ok(JobRow {
        id: r.get(0),
        tenant: tenant(r, 1)?,
        connector: connector(r, 2)?,
        task: decode_task(r.get(3)),
        state: state(r, 4)?,
        attempts: r.get(5),
        last_error: r.get(6),
        run_at_ms: r.get(7),
    })
}
