//! Jobs on PostgreSQL: queued once per idempotency key, claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease token, ended with their effects in one transaction by the token's holder only;
//! schedule ticks claimed once across every process.

use deadpool_postgres::{GenericClient, Transaction};

use super::super::effects::new_version;
use super::super::queue::{Ended, Outcome, decode_task, encode_task, rand_suffix};
use super::super::{
    Effects, Job, JobEnd, JobState, Lease, NewJob, Result, Task, TickClaim, TickOutcome, now_ms,
    schedule_key,
};
use super::effects::{apply_effects, first_conflict, lock_values, sanitized};
use super::{Postgres, connector, tenant, text, text_opt};
use crate::config::{ConnectorId, TenantId};

/// Inserts a job unless its idempotency key exists; `RETURNING id` (no row: it existed).
pub(super) fn insert_job_sql() -> &'static str {
    "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
}

/// Ready jobs in due order and expired leases, each found through its partial index and locked
/// without waiting for (or being seen by) another claimer; `MATERIALIZED` so the planner cannot
/// fold the locking select into the update and lock more rows than it claims.
const CLAIM: &str = "
WITH ready AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $1
    ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED),
expired AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1
    LIMIT $2 FOR UPDATE SKIP LOCKED),
picked AS MATERIALIZED (
    SELECT id FROM ready UNION ALL SELECT id FROM expired LIMIT $2)
UPDATE jobs SET state = 'running', lease_until = $3, lease_token = $4, attempts = jobs.attempts + 1
FROM picked WHERE jobs.id = picked.id
RETURNING jobs.id, jobs.tenant, jobs.connector, jobs.task, jobs.attempts, jobs.idempotency_key,
          jobs.created_at, jobs.run_at, jobs.delivery_id";

pub(super) async fn insert_job(
    c: &impl GenericClient,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> Result<Option<i64>> {
    let key = match &job.idempotency_key {
        Some(k) => k.clone(),
        None => format!("anon:{}:{}", now_ms(), rand_suffix()),
    };
    let delivery_id = delivery_id.or(match job.task {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    });
    let stmt = c.prepare_cached(insert_job_sql()).await?;
    let row = c
        .query_opt(
            &stmt,
            &[
                &job.tenant.as_str(),
                &job.connector.as_str(),
                &text(&encode_task(&job.task)),
                &delivery_id,
                &text(&key),
                &job.run_at_ms,
                &now_ms(),
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn claim(c: &impl GenericClient, limit: usize, lease_ms: i64) -> Result<Vec<Job>> {
    let now = now_ms();
    let token = new_version();
    let stmt = c.prepare_cached(CLAIM).await?;
    let rows = c
        .query(&stmt, &[&now, &(limit as i64), &(now + lease_ms), &token])
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    let mut deliveries = Vec::new();
    for r in &rows {
        if let Some(d) = r.get::<_, Option<i64>>(8)
            && r.get::<_, &str>(3).starts_with("{\"kind\":\"delivery\"")
        {
            deliveries.push(d);
        }
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
        });
    }
    jobs.sort_by_key(|j| (j.run_at_ms, j.id));
    if !deliveries.is_empty() {
        // The log shows claimed deliveries as being processed, in the same transaction.
        let stmt = c
            .prepare_cached(
                "UPDATE deliveries SET state='processing'
                 WHERE id = ANY($1) AND state IN ('received','retrying')",
            )
            .await?;
        c.execute(&stmt, &[&deliveries]).await?;
    }
    Ok(jobs)
}

/// Ends a job under `lease` in `tx`.
async fn end(
    tx: &Transaction<'_>,
    lease: Lease,
    effects: &Effects,
    end: &JobEnd,
    duration_us: i64,
) -> Result<Option<(bool, bool)>> {
    let now = now_ms();
    let job = lease.job;
    let held = tx
        .query_opt(
            "SELECT tenant, connector, delivery_id, idempotency_key, task FROM jobs
             WHERE id=$1 AND state='running' AND lease_token=$2 FOR UPDATE",
            &[&job, &lease.token],
        )
        .await?;
    let Some(held) = held else { return Ok(None) };
    let (tenant, connector) = (tenant(&held, 0)?, connector(&held, 1)?);
    let delivery: Option<i64> = held.get(2);
    let job_key: String = held.get(3);
    let is_delivery = held.get::<_, &str>(4).starts_with("{\"kind\":\"delivery\"");
    if let JobEnd::Defer { at_ms } = end {
        tx.execute(&tx.prepare_cached("UPDATE jobs SET state='queued', lease_until=NULL, run_at=$2, attempts=GREATEST(attempts-1, 0) WHERE id=$1").await?,
            &[&job, at_ms],
        )
        .await?;
        return Ok(Some((true, false)));
    }
    if let JobEnd::Done { .. } = end {
        lock_values(tx, &tenant, &connector, effects).await?;
        if let Some(changed) = first_conflict(tx, &tenant, &connector, &effects.reads).await? {
            let error = format!("conflict: {changed} changed during the attempt; running again");
            let at = now + 5 + (rand::random::<u64>() % 45) as i64;
            tx.execute(&tx.prepare_cached("UPDATE jobs SET state='queued', lease_until=NULL, run_at=$2, attempts=GREATEST(attempts-1, 0), last_error=$3
                 WHERE id=$1").await?,
                &[&job, &at, &text(&error)],
            )
            .await?;
            return Ok(Some((true, false)));
        }
        apply_effects(
            tx,
            &tenant,
            &connector,
            Some((job, delivery, &job_key)),
            effects,
        )
        .await?;
    }
    let Outcome {
        job_state,
        delivery_state,
        error,
        ignored,
        run_at,
        result,
    } = Outcome::of(end);
    let finished = (job_state != JobState::Queued).then_some(now);
    tx.execute(&tx.prepare_cached("UPDATE jobs SET state=$2, last_error=$3, lease_until=NULL, run_at=COALESCE($4, run_at),
                finished_at=$5, result=$6
         WHERE id=$1").await?,
        &[
            &job,
            &job_state.as_str(),
            &text_opt(&error),
            &run_at,
            &finished,
            &text_opt(&result),
        ],
    )
    .await?;
    if is_delivery && let Some(delivery) = delivery {
        tx.execute(&tx.prepare_cached("UPDATE deliveries SET state=$2, last_error=$3, ignored_reason=$4, attempts=attempts+1,
                    processed_at=$5, duration_us=$6
             WHERE id=$1").await?,
            &[
                &delivery,
                &delivery_state.as_str(),
                &text_opt(&error),
                &text_opt(&ignored),
                &now,
                &duration_us,
            ],
        )
        .await?;
    }
    let done = matches!(end, JobEnd::Done { .. });
    Ok(Some((
        matches!(end, JobEnd::Retry { .. }) || (done && !effects.jobs.is_empty()),
        done && !effects.records.is_empty(),
    )))
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
        self.end(lease, &effects, &end, duration_us, None)
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
        self.end(lease, &effects, &end, duration_us, Some(lease_ms))
            .await
    }

    async fn end(
        &self,
        lease: Lease,
        effects: &Effects,
        job_end: &JobEnd,
        duration_us: i64,
        next_lease_ms: Option<i64>,
    ) -> Result<Option<Job>> {
        let clean = sanitized(effects);
        let effects = clean.as_ref().unwrap_or(effects);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((work, changed)) = end(&tx, lease, effects, job_end, duration_us).await? else {
            tx.rollback().await?;
            return Ended::LeaseLost.into_next(lease);
        };
        let next = match next_lease_ms {
            Some(lease_ms) => claim(&tx, 1, lease_ms).await?.pop(),
            None => None,
        };
        tx.commit().await?;
        self.notifier.committed(work, changed);
        Ended::Ended(next).into_next(lease)
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_values(&tx, tenant, connector, &effects).await?;
        apply_effects(&tx, tenant, connector, None, &effects).await?;
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
