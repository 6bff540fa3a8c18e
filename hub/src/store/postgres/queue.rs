//! Jobs on PostgreSQL: queued once per idempotency key, claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease token, ended with their effects in one transaction by the token's holder only;
//! schedule ticks claimed once across every process.

use deadpool_postgres::{GenericClient, Transaction};

use super::super::{
    Effects, Job, JobEnd, JobState, Lease, NewJob, Result, TickClaim, TickOutcome, schedule_key,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::effects::{self, sanitized};
use super::enqueue::insert_job;
use super::pipeline::{self, Op, Param};
use super::{Postgres, connector, tenant, text, text_opt};

use super::super::{Handover, Outcome, decode_task, decode_trace, new_version};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

/// Expired leases, then ready jobs in due order, each found through its partial index and locked
/// without waiting for (or being seen by) another claimer; `MATERIALIZED` so the planner cannot
/// fold the locking select into the update and lock more rows than it claims. The log shows the
/// claimed deliveries as being processed, in the same statement. Expired leases go first: a job
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
SELECT * FROM claimed";

/// The claim of up to `limit` jobs under a new lease, as a statement to send with others, and
/// the lease's token.
async fn claim_op(c: &impl GenericClient, limit: usize, lease_ms: i64) -> Result<(Op, i64)> {
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
fn claimed(rows: &[Row], token: i64) -> Result<Vec<Job>> {
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

/// Ends a job under `lease` in `tx`, and claims the next one behind it when `next` says so:
/// the lease check, then (for a success) the locks and checks of its effects, then every write
/// with the claim, each flight sent as one ([`pipeline`]). `None`: the lease was lost; else
/// whether work was queued, whether records changed, and the next job.
async fn end(
    tx: &Transaction<'_>,
    lease: Lease,
    effects: &Effects,
    end: &JobEnd,
    duration_us: i64,
    next: Option<i64>,
) -> Result<Option<(bool, bool, Option<Job>)>> {
    let now = now_ms();
    let job = lease.job;
    let held = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT tenant, connector, delivery_id, idempotency_key, task FROM jobs
                 WHERE id=$1 AND state='running' AND lease_token=$2 FOR UPDATE",
            )
            .await?,
            &[&job, &lease.token],
        )
        .await?;
    let Some(held) = held else { return Ok(None) };
    let (tenant, connector) = (tenant(&held, 0)?, connector(&held, 1)?);
    let delivery: Option<i64> = held.get(2);
    let job_key: String = held.get(3);
    let is_delivery = held.get::<_, &str>(4).starts_with("{\"kind\":\"delivery\"");
    let claim = match next {
        Some(lease_ms) => Some(claim_op(tx, 1, lease_ms).await?),
        None => None,
    };
    let requeue = tx
        .prepare_cached(
            "UPDATE jobs SET state='queued', lease_until=NULL, run_at=$2,
             attempts=GREATEST(attempts-1, 0), last_error=COALESCE($3, last_error) WHERE id=$1",
        )
        .await?;
    let mut ops = Vec::new();
    let mut requeued = false;
    match end {
        JobEnd::Defer { at_ms } => {
            // Its place in line kept (`run_at` as it was), held until `at_ms`.
            let defer = tx
                .prepare_cached(
                    "UPDATE jobs SET state='queued', lease_until=$2,
                     attempts=GREATEST(attempts-1, 0) WHERE id=$1",
                )
                .await?;
            ops.push(Op::new(&defer, vec![Box::new(job), Box::new(*at_ms)]));
            requeued = true;
        }
        JobEnd::Done { .. } => {
            let checked = effects::check(tx, &tenant, &connector, effects).await?;
            if let Some(changed) = &checked.conflict {
                let error =
                    format!("conflict: {changed} changed during the attempt; running again");
                let at = now + 5 + (rand::random::<u64>() % 45) as i64;
                ops.push(Op::new(
                    &requeue,
                    vec![
                        Box::new(job),
                        Box::new(at),
                        Box::new(Some(text(&error).into_owned())),
                    ],
                ));
                requeued = true;
            } else {
                let parent = Some((job, delivery, job_key.as_str()));
                ops = effects::writes(tx, &tenant, &connector, parent, effects, checked).await?;
            }
        }
        // A dead job's effects are the hub's own (an action's `action.failed` event and the
        // webhooks it queues), never a failed invocation's.
        JobEnd::Dead { .. } if !effects.events.is_empty() || !effects.jobs.is_empty() => {
            let checked = effects::check(tx, &tenant, &connector, effects).await?;
            let parent = Some((job, delivery, job_key.as_str()));
            ops = effects::writes(tx, &tenant, &connector, parent, effects, checked).await?;
        }
        _ => {}
    }
    if !requeued {
        let Outcome {
            job_state,
            delivery_state,
            error,
            ignored,
            run_at,
            result,
        } = Outcome::of(end);
        let finished = (job_state != JobState::Queued).then_some(now);
        let ended = tx
            .prepare_cached(
                "UPDATE jobs SET state=$2, last_error=$3, lease_until=NULL, run_at=COALESCE($4, run_at),
                 finished_at=$5, result=$6 WHERE id=$1",
            )
            .await?;
        let params: Vec<Param> = vec![
            Box::new(job),
            Box::new(job_state.as_str()),
            Box::new(text_opt(&error).map(|e| e.into_owned())),
            Box::new(run_at),
            Box::new(finished),
            Box::new(text_opt(&result).map(|r| r.into_owned())),
        ];
        ops.push(Op::new(&ended, params));
        if is_delivery && let Some(delivery) = delivery {
            let handled = tx
                .prepare_cached(
                    "UPDATE deliveries SET state=$2, last_error=$3, ignored_reason=$4,
                     attempts=attempts+1, processed_at=$5, duration_us=$6 WHERE id=$1",
                )
                .await?;
            let params: Vec<Param> = vec![
                Box::new(delivery),
                Box::new(delivery_state.as_str()),
                Box::new(text_opt(&error).map(|e| e.into_owned())),
                Box::new(text_opt(&ignored).map(|i| i.into_owned())),
                Box::new(now),
                Box::new(duration_us),
            ];
            ops.push(Op::new(&handled, params));
        }
    }
    let rows = pipeline::run(tx, &ops, claim.as_ref().map(|(op, _)| op)).await?;
    let next = match (claim, rows) {
        (Some((_, token)), Some(rows)) => claimed(&rows, token)?.pop(),
        _ => None,
    };
    if requeued {
        return Ok(Some((true, false, next)));
    }
    let done = matches!(end, JobEnd::Done { .. });
    let ended = done || matches!(end, JobEnd::Dead { .. });
    Ok(Some((
        matches!(end, JobEnd::Retry { .. }) || (ended && !effects.jobs.is_empty()),
        done && !effects.records.is_empty(),
        next,
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
        let ended = end(&tx, lease, effects, job_end, duration_us, next_lease_ms).await?;
        let Some((work, changed, next)) = ended else {
            tx.rollback().await?;
            return Handover::LeaseLost.into_next(lease);
        };
        tx.commit().await?;
        self.notifier.committed(work, changed);
        Handover::Done(next).into_next(lease)
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
        let checked = effects::check(&tx, tenant, connector, &effects).await?;
        let ops = effects::writes(&tx, tenant, connector, None, &effects, checked).await?;
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
