//! Jobs on PostgreSQL: queued once per idempotency key, claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease token, ended with their effects by the token's holder only (many ends per
//! transaction, see [`ends`](super::ends)); schedule ticks claimed once across every process.

use deadpool_postgres::GenericClient;

use super::super::{
    Effects, Job, JobEnd, Lease, NewJob, Result, TickClaim, TickOutcome, schedule_key,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::effects::{self, Checks, sanitized};
use super::enqueue::insert_job;
use super::pipeline::{self, Op, Param};
use super::{Postgres, connector, rows, tenant};

use super::super::{StoredRequest, decode_task, decode_trace, new_version};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

/// Expired leases, then ready jobs in due order, each found through its partial index and locked
/// without waiting for (or being seen by) another claimer; `MATERIALIZED` so the planner cannot
/// fold the locking select into the update and lock more rows than it claims. The log shows the
/// claimed deliveries as being processed, and reads their requests, in the same statement. Expired leases go first: a job
/// whose hub died is the oldest work there is, and behind a backlog it would wait for the whole
/// queue. A queued job's `lease_until` is a deferral's hold (`JobEnd::Defer`): it keeps its
/// place in line but is not claimed before then.
const CLAIM: &str = "
WITH ready AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $1
      AND (lease_until IS NULL OR lease_until <= $1)
    ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED),
expired AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1
    LIMIT $2 FOR UPDATE SKIP LOCKED),
picked AS MATERIALIZED (
    SELECT id FROM expired UNION ALL SELECT id FROM ready LIMIT $2),
claimed AS (
    UPDATE jobs SET state = 'running', lease_until = $3, lease_token = $4, attempts = jobs.attempts + 1
    FROM picked WHERE jobs.id = picked.id
    RETURNING jobs.id, jobs.tenant, jobs.connector, jobs.task, jobs.attempts, jobs.idempotency_key,
              jobs.created_at, jobs.run_at, jobs.delivery_id),
processing AS (
    UPDATE deliveries SET state = 'processing'
    WHERE id IN (SELECT delivery_id FROM claimed WHERE task LIKE '{\"kind\":\"delivery\"%')
      AND state IN ('received', 'retrying'))
SELECT c.*, d.route, d.url, d.headers, d.body, d.received_at, d.method
FROM claimed c LEFT JOIN deliveries d
  ON d.id = c.delivery_id AND c.task LIKE '{\"kind\":\"delivery\"%'";

/// The claim of up to `limit` jobs under a new lease, as a statement to send with others, and
/// the lease's token.
pub(super) async fn claim_op(
    c: &impl GenericClient,
    limit: usize,
    lease_ms: i64,
) -> Result<(Op, i64)> {
    let now = now_ms();
    let token = new_version();
    let stmt = c.prepare_cached(CLAIM).await?;
    let params: Vec<Param> = vec![
        Box::new(now),
        Box::new(limit as i64),
        Box::new(now + lease_ms),
        Box::new(token),
    ];
    Ok((Op::new(&stmt, params), token))
}

/// The jobs a claim's rows name, in due order.
pub(super) fn claimed(rows: &[Row], token: i64) -> Result<Vec<Job>> {
    let mut jobs = Vec::with_capacity(rows.len());
    for r in rows {
        jobs.push(Job {
            id: r.get(0),
            lease_token: token,
            tenant: tenant(r, 1)?,
            connector: connector(r, 2)?,
            task: decode_task(r.get(3)),
            attempts: r.get(4),
            idempotency_key: r.get(5),
            created_at_ms: r.get(6),
            run_at_ms: r.get(7),
            trace: decode_trace(r.get(3)),
            request: r.get::<_, Option<String>>(9).map(|route| {
                Box::new(StoredRequest {
                    route,
                    url: r.get(10),
                    headers: serde_json::from_str(r.get(11)).unwrap_or_default(),
                    body: r.get(12),
                    received_at_ms: r.get(13),
                    method: r.get(14),
                })
            }),
        });
    }
    jobs.sort_by_key(|j| (j.run_at_ms, j.id));
    Ok(jobs)
}

async fn claim(c: &impl GenericClient, limit: usize, lease_ms: i64) -> Result<Vec<Job>> {
    let (op, token) = claim_op(c, limit, lease_ms).await?;
    let params: Vec<&(dyn ToSql + Sync)> = op.params.iter().map(|p| p.as_ref() as _).collect();
    let rows = c.query(&op.statement, &params).await?;
    claimed(&rows, token)
}

impl Postgres {
    /// Queues a job; `None` when a job with the same idempotency key exists.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn enqueue(&self, job: NewJob) -> Result<Option<i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id = insert_job(&tx, &job, None).await?;
        tx.commit().await?;
        self.notifier.committed(id.is_some(), false);
        Ok(id)
    }

    /// Queues a job from a blocking thread.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub fn enqueue_blocking(&self, job: NewJob) -> Result<Option<i64>> {
        self.blocking(self.enqueue(job))
    }

    /// Claims up to `limit` ready jobs, or jobs whose lease expired (their worker died), each
    /// under this claim's new lease token.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn claim(&self, limit: usize, lease_ms: i64) -> Result<Vec<Job>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let jobs = claim(&tx, limit, lease_ms).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    /// Ends a claimed job, committing its effects with its end state, all or nothing.
    ///
    /// # Errors
    /// When the database cannot commit (the lease expires and the job runs again), or
    /// [`StoreError::LeaseLost`].
    pub async fn finish(
        &self,
        lease: Lease,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
    ) -> Result<()> {
        self.end_job(lease, &effects, &end, duration_us, None)
            .await
            .map(drop)
    }

    /// [`finish`](Postgres::finish), and in the same transaction claim the next ready job.
    ///
    /// # Errors
    /// As [`finish`](Postgres::finish).
    pub async fn finish_and_claim(
        &self,
        lease: Lease,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
        lease_ms: i64,
    ) -> Result<Option<Job>> {
        self.end_job(lease, &effects, &end, duration_us, Some(lease_ms))
            .await
    }

    /// Commits the effects of a synchronous invocation (a `respond` on a sync route).
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn apply(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        effects: Effects,
    ) -> Result<()> {
        let clean = sanitized(&effects);
        let effects = clean.as_ref().unwrap_or(&effects);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let checks = Checks::new(&[(tenant, connector, effects)]);
        let flight = checks.ops(&tx).await?;
        let rows = pipeline::all(&tx, &flight).await?;
        let checked = checks.read(rows).pop().expect("one check");
        let plan = effects::plan(tenant, connector, None, effects, checked, now_ms());
        let ops = rows::statements(&tx, &[plan], now_ms()).await?;
        pipeline::run(&tx, &ops, None).await?;
        tx.commit().await?;
        self.notifier
            .committed(!effects.jobs.is_empty(), !effects.records.is_empty());
        Ok(())
    }

    /// The last tick recorded for a schedule; a new schedule is recorded as having ticked at
    /// `now_ms`.
    ///
    /// # Errors
    /// When the database cannot commit.
    pub async fn schedule_start(&self, tenant: &TenantId, name: &str, now_ms: i64) -> Result<i64> {
        let client = self.client().await?;
        start(&client, tenant, name, now_ms).await
    }

    /// Claims a tick: the compare-and-set of the schedule's last tick (its row lock orders
    /// concurrent claims) and its job, keyed by the tick (`ON CONFLICT DO NOTHING`), in one
    /// transaction: each tick runs once, cluster-wide.
    ///
    /// # Errors
    /// When the database cannot commit; nothing is claimed then.
    pub async fn claim_tick(&self, t: TickClaim) -> Result<TickOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let moved = tx
            .execute(
                "UPDATE schedules SET last_tick_ms=$4 WHERE tenant=$1 AND name=$2 AND last_tick_ms=$3",
                &[&t.tenant.as_str(), &t.name, &t.expected_ms, &t.tick_ms],
            )
            .await?;
        let outcome = if moved == 0 {
            let current = tx
                .query_opt(
                    "SELECT last_tick_ms FROM schedules WHERE tenant=$1 AND name=$2",
                    &[&t.tenant.as_str(), &t.name],
                )
                .await?;
            let current = match current {
                Some(r) => r.get(0),
                None => start(&tx, &t.tenant, &t.name, t.tick_ms).await?,
            };
            TickOutcome::Lost {
                current_ms: current,
            }
        } else if let Some((connector, task)) = &t.run {
            let running = tx
                .query_opt(
                    "SELECT j.id FROM schedules s JOIN jobs j ON j.id = s.last_job_id
                     WHERE s.tenant=$1 AND s.name=$2 AND j.state IN ('queued','running')",
                    &[&t.tenant.as_str(), &t.name],
                )
                .await?;
            match running {
                Some(r) => TickOutcome::Overlap(r.get(0)),
                None => {
                    let key = schedule_key(&t.tenant, &t.name, t.tick_ms);
                    let job = NewJob {
                        tenant: t.tenant.clone(),
                        connector: connector.clone(),
                        task: task.clone(),
                        run_at_ms: now_ms(),
                        idempotency_key: Some(key.clone()),
                        trace: None,
                    };
                    let id = match insert_job(&tx, &job, None).await? {
                        Some(id) => id,
                        None => tx
                            .query_one("SELECT id FROM jobs WHERE idempotency_key=$1", &[&key])
                            .await?
                            .get(0),
                    };
                    tx.execute(
                        &tx.prepare_cached(
                            "UPDATE schedules SET last_job_id=$3 WHERE tenant=$1 AND name=$2",
                        )
                        .await?,
                        &[&t.tenant.as_str(), &t.name, &id],
                    )
                    .await?;
                    TickOutcome::Queued(id)
                }
            }
        } else {
            TickOutcome::Advanced
        };
        tx.commit().await?;
        self.notifier
            .committed(matches!(outcome, TickOutcome::Queued(_)), false);
        Ok(outcome)
    }
}

async fn start(c: &impl GenericClient, tenant: &TenantId, name: &str, now_ms: i64) -> Result<i64> {
    c.execute(
        &c.prepare_cached(
            "INSERT INTO schedules (tenant, name, last_tick_ms, created_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (tenant, name) DO NOTHING",
        )
        .await?,
        &[&tenant.as_str(), &name, &now_ms],
    )
    .await?;
    Ok(c.query_one(
        &c.prepare_cached("SELECT last_tick_ms FROM schedules WHERE tenant=$1 AND name=$2")
            .await?,
        &[&tenant.as_str(), &name],
    )
    .await?
    .get(0))
}
