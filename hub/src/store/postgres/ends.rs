//! Job ends on PostgreSQL by group commit, as webhooks are stored ([`ingest`](super::ingest)):
//! workers hand their finished jobs to a channel; each of a few committer tasks takes what is
//! waiting and ends it all in one transaction, in three flights of statements whatever the
//! number of jobs, and answers each worker only once `COMMIT` returned.
//!
//! 1. The leases: one `SELECT ... FOR UPDATE` over every job of the batch; a job whose lease is
//!    no longer its worker's is answered [`StoreError::LeaseLost`] and writes nothing, the others
//!    go on.
//! 2. The advisory locks of every record and kv key the effects touch, and the versions and
//!    lookups of what they read and write ([`Checks`]).
//! 3. Each job's effects ([`rows`](super::rows): one statement per kind of row), its end (one
//!    `UPDATE ... FROM unnest` for the jobs, one for their deliveries, one for those queued
//!    again), and the claims of the next jobs for the workers that asked, in one statement.
//!
//! An attempt's effects stay all or nothing (a job whose read changed meanwhile is queued again
//! and writes nothing), and two ends that touch the same record or kv key never share a batch:
//! the second waits for the next one, so each is checked against what the first wrote. A batch
//! that fails as a whole (a value the server refuses, say) is tried again one job per
//! transaction, so one bad job fails alone.

use std::collections::HashSet;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::super::{Effects, Job, JobEnd, JobState, Lease, Outcome, Result, StoreError};
use super::effects::{self, Checks, Plan, sanitized};
use super::pipeline::{self, Op, Param};
use super::queue::{claim_op, claimed};
use super::{Notifier, connector, tenant, text, text_opt};
use crate::clock::now_ms;

/// Jobs a committer ends in one transaction, at most.
const MAX_BATCH: usize = 256;
/// Committer tasks: one writing while another waits for its commit.
const COMMITTERS: usize = 2;

/// One job's end, and where its answer goes: the next job when one was asked for (`next`: its
/// lease in ms) and ready.
pub(super) struct Request {
    pub(super) lease: Lease,
    pub(super) effects: Effects,
    pub(super) end: JobEnd,
    pub(super) duration_us: i64,
    pub(super) next: Option<i64>,
    pub(super) reply: oneshot::Sender<Result<Option<Job>>>,
}

/// Starts the committers; ends go into the returned channel.
pub(super) fn start(pool: Pool, notifier: std::sync::Arc<Notifier>) -> mpsc::Sender<Request> {
    let (tx, rx) = mpsc::channel::<Request>(8192);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    for _ in 0..COMMITTERS {
        let (pool, rx, notifier) = (pool.clone(), rx.clone(), notifier.clone());
        tokio::spawn(async move {
            // Ends that shared a key with one in the batch before: first in the next.
            let mut waiting: Vec<Request> = Vec::new();
            loop {
                // With ends left from the last batch, never wait for the channel (the other
                // committer may be waiting on it): add what is there, if anything.
                let rx = match waiting.is_empty() {
                    true => Some(rx.lock().await),
                    false => rx.try_lock().ok(),
                };
                if let Some(mut rx) = rx {
                    if waiting.is_empty() {
                        let Some(first) = rx.recv().await else { return };
                        waiting.push(first);
                    }
                    while waiting.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(next) => waiting.push(next),
                            Err(_) => break,
                        }
                    }
                }
                let batch = std::mem::take(&mut waiting);
                waiting = commit(&pool, &notifier, batch).await;
            }
        });
    }
    tx
}

/// Whether an end commits effects: a success's, or a dead job's own (an action's
/// `action.failed` event and the webhooks it queues), never a failed invocation's.
fn effects_checked(end: &JobEnd) -> bool {
    match end {
        JobEnd::Done { .. } => true,
        JobEnd::Dead { .. } => true,
        JobEnd::Retry { .. } | JobEnd::Defer { .. } => false,
    }
}

/// Commits one batch and answers each of its workers; the ends left for the next batch.
async fn commit(pool: &Pool, notifier: &Notifier, batch: Vec<Request>) -> Vec<Request> {
    match transaction(pool, &batch).await {
        Ok(ended) => answer(notifier, batch, ended),
        Err(e) if batch.len() == 1 => {
            let r = batch.into_iter().next().expect("one request");
            let _ = r.reply.send(Err(e));
            Vec::new()
        }
        Err(e) => {
            tracing::debug!("a batch of job ends failed ({e}); ending its jobs one by one");
            for r in batch {
                let one = vec![r];
                match transaction(pool, &one).await {
                    Ok(ended) => drop(answer(notifier, one, ended)),
                    Err(e) => {
                        let r = one.into_iter().next().expect("one request");
                        let _ = r.reply.send(Err(e));
                    }
                }
            }
            Vec::new()
        }
    }
}

/// What became of one end in a committed batch.
enum Answer {
    /// Ended; the next job, when one was asked for and ready.
    Ended(Option<Box<Job>>),
    /// Its lease was no longer its worker's: nothing written.
    Lost,
    /// It touches a key an earlier end of the batch touches: it goes in the next batch.
    Later,
}

/// What a committed batch did: each end's answer, whether work was queued, whether records
/// changed.
struct Ended {
    answers: Vec<Answer>,
    work: bool,
    changed: bool,
}

/// Answers the ends of a committed batch; those for the next batch.
fn answer(notifier: &Notifier, batch: Vec<Request>, ended: Ended) -> Vec<Request> {
    notifier.committed(ended.work, ended.changed);
    let mut later = Vec::new();
    for (r, answer) in batch.into_iter().zip(ended.answers) {
        let reply = match answer {
            Answer::Ended(next) => Ok(next.map(|j| *j)),
            Answer::Lost => Err(StoreError::LeaseLost { job: r.lease.job }),
            Answer::Later => {
                later.push(r);
                continue;
            }
        };
        let _ = r.reply.send(reply);
    }
    later
}

/// A job of the batch whose lease held: what its row says.
struct Held {
    tenant: crate::id::TenantId,
    connector: crate::id::ConnectorId,
    delivery: Option<i64>,
    key: String,
    is_delivery: bool,
}

/// Columns of the jobs queued again (a conflict, a deferral).
#[derive(Default)]
struct Requeued {
    id: Vec<i64>,
    hold: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    error: Vec<Option<String>>,
}

/// Columns of the jobs ended.
#[derive(Default)]
struct JobsEnded {
    id: Vec<i64>,
    state: Vec<String>,
    error: Vec<Option<String>>,
    run_at: Vec<Option<i64>>,
    finished: Vec<Option<i64>>,
    result: Vec<Option<String>>,
}

/// Columns of the deliveries their jobs ended.
#[derive(Default)]
struct DeliveriesEnded {
    id: Vec<i64>,
    state: Vec<String>,
    error: Vec<Option<String>>,
    ignored: Vec<Option<String>>,
    duration_us: Vec<i64>,
}

/// What a batch writes to its jobs' rows and their deliveries'.
#[derive(Default)]
struct Ends {
    requeued: Requeued,
    jobs: JobsEnded,
    deliveries: DeliveriesEnded,
}

impl Ends {
    fn requeue(&mut self, job: i64, hold: Option<i64>, run_at: Option<i64>, error: Option<String>) {
        let r = &mut self.requeued;
        r.id.push(job);
        r.hold.push(hold);
        r.run_at.push(run_at);
        r.error.push(error);
    }

    fn end(&mut self, job: i64, held: &Held, end: &JobEnd, duration_us: i64, now: i64) {
        let o = Outcome::of(end);
        let error = text_opt(&o.error).map(|e| e.into_owned());
        let j = &mut self.jobs;
        j.id.push(job);
        j.state.push(o.job_state.as_str().to_owned());
        j.error.push(error.clone());
        j.run_at.push(o.run_at);
        j.finished
            .push((o.job_state != JobState::Queued).then_some(now));
        j.result.push(text_opt(&o.result).map(|r| r.into_owned()));
        if held.is_delivery
            && let Some(delivery) = held.delivery
        {
            let d = &mut self.deliveries;
            // Two jobs of one delivery in a batch (a replay): one `UPDATE ... FROM` row each
            // would leave which one lands to chance; the later end is the delivery's state.
            if let Some(i) = d.id.iter().position(|&id| id == delivery) {
                d.id.remove(i);
                d.state.remove(i);
                d.error.remove(i);
                d.ignored.remove(i);
                d.duration_us.remove(i);
            }
            d.id.push(delivery);
            d.state.push(o.delivery_state.as_str().to_owned());
            d.error.push(error);
            d.ignored.push(text_opt(&o.ignored).map(|i| i.into_owned()));
            d.duration_us.push(duration_us);
        }
    }

    async fn ops(self, tx: &Transaction<'_>, now: i64) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        if !self.requeued.id.is_empty() {
            let r = self.requeued;
            let params: Vec<Param> = vec![
                Box::new(r.id),
                Box::new(r.hold),
                Box::new(r.run_at),
                Box::new(r.error),
            ];
            // A deferral keeps its place in line (`run_at` as it was), held until then; a
            // conflict runs again soon. Neither counts as an attempt.
            let sql = "UPDATE jobs j SET state = 'queued', lease_until = x.hold,
                       run_at = COALESCE(x.run_at, j.run_at), attempts = GREATEST(j.attempts - 1, 0),
                       last_error = COALESCE(x.error, j.last_error)
                       FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS x(id, hold, run_at, error)
                       WHERE j.id = x.id";
            ops.push(Op::new(&tx.prepare_cached(sql).await?, params));
        }
        if !self.jobs.id.is_empty() {
            let j = self.jobs;
            let params: Vec<Param> = vec![
                Box::new(j.id),
                Box::new(j.state),
                Box::new(j.error),
                Box::new(j.run_at),
                Box::new(j.finished),
                Box::new(j.result),
            ];
            let sql = "UPDATE jobs j SET state = x.state, last_error = x.error, lease_until = NULL,
                       run_at = COALESCE(x.run_at, j.run_at), finished_at = x.finished, result = x.result
                       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
                            AS x(id, state, error, run_at, finished, result)
                       WHERE j.id = x.id";
            ops.push(Op::new(&tx.prepare_cached(sql).await?, params));
        }
        if !self.deliveries.id.is_empty() {
            let d = self.deliveries;
            let params: Vec<Param> = vec![
                Box::new(d.id),
                Box::new(d.state),
                Box::new(d.error),
                Box::new(d.ignored),
                Box::new(d.duration_us),
                Box::new(now),
            ];
            let sql = "UPDATE deliveries d SET state = x.state, last_error = x.error,
                       ignored_reason = x.ignored, attempts = d.attempts + 1, processed_at = $6,
                       duration_us = x.duration
                       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                            AS x(id, state, error, ignored, duration)
                       WHERE d.id = x.id";
            ops.push(Op::new(&tx.prepare_cached(sql).await?, params));
        }
        Ok(ops)
    }
}

/// Ends every job of `batch` whose lease held, in one transaction.
async fn transaction(pool: &Pool, batch: &[Request]) -> Result<Ended> {
    let now = now_ms();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut answers: Vec<Answer> = batch.iter().map(|_| Answer::Lost).collect();

    // Flight 1: the leases. The ends that share no key with an earlier one go on.
    let held = leases(&tx, batch).await?;
    let mut taken: HashSet<i64> = HashSet::new();
    let mut going: Vec<usize> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let Some(h) = &held[i] else { continue };
        let keys = if effects_checked(&r.end) {
            effects::lock_keys(&h.tenant, &h.connector, &r.effects)
        } else {
            Vec::new()
        };
        if keys.iter().any(|k| taken.contains(k)) {
            answers[i] = Answer::Later;
        } else {
            taken.extend(keys);
            going.push(i);
        }
    }

    // Flight 2: the locks and checks of every going end's effects.
    let checked: Vec<usize> = going
        .iter()
        .copied()
        .filter(|&i| effects_checked(&batch[i].end))
        .collect();
    let items: Vec<_> = checked
        .iter()
        .filter_map(|&i| {
            let h = held[i].as_ref()?;
            Some((&h.tenant, &h.connector, &batch[i].effects))
        })
        .collect();
    let checks = Checks::new(&items);
    let flight = checks.ops(&tx).await?;
    let rows = pipeline::all(&tx, &flight).await?;
    let mut results = checks.read(rows).into_iter();
    let mut checks: Vec<Option<effects::Checked>> = (0..batch.len()).map(|_| None).collect();
    for &i in &checked {
        checks[i] = results.next();
    }

    // Flight 3: the effects, the ends, the claims.
    let (mut plans, mut ends) = (Vec::<Plan>::new(), Ends::default());
    let (mut work, mut changed, mut wanting) = (false, false, 0usize);
    for &i in &going {
        let (r, Some(h)) = (&batch[i], &held[i]) else {
            continue;
        };
        let job = r.lease.job;
        match (&r.end, checks[i].take()) {
            (JobEnd::Defer { at_ms }, _) => {
                ends.requeue(job, Some(*at_ms), None, None);
                work = true;
            }
            (JobEnd::Done { .. }, Some(c)) if c.conflict.is_some() => {
                let what = c.conflict.as_deref().unwrap_or_default();
                let error = format!("conflict: {what} changed during the attempt; running again");
                let at = now + 5 + (rand::random::<u64>() % 45) as i64;
                ends.requeue(job, None, Some(at), Some(text(&error).into_owned()));
                work = true;
            }
            (end, c) => {
                let done = matches!(end, JobEnd::Done { .. });
                let with_effects =
                    done || !r.effects.events.is_empty() || !r.effects.jobs.is_empty();
                if let Some(c) = c.filter(|_| with_effects) {
                    let parent = Some((job, h.delivery, h.key.as_str()));
                    plans.push(effects::plan(
                        &h.tenant,
                        &h.connector,
                        parent,
                        &r.effects,
                        c,
                        now,
                    ));
                }
                ends.end(job, h, end, r.duration_us, now);
                work |= matches!(end, JobEnd::Retry { .. })
                    || (with_effects && !r.effects.jobs.is_empty());
                changed |= done && !r.effects.records.is_empty();
            }
        }
        if r.next.is_some() {
            wanting += 1;
        }
    }
    let mut ops = super::rows::statements(&tx, &plans, now).await?;
    ops.extend(ends.ops(&tx, now).await?);
    let lease_ms = going.iter().filter_map(|&i| batch[i].next).max();
    let claim = match lease_ms {
        Some(lease_ms) if wanting > 0 => Some(claim_op(&tx, wanting, lease_ms).await?),
        _ => None,
    };
    let rows = pipeline::run(&tx, &ops, claim.as_ref().map(|(op, _)| op)).await?;
    tx.commit().await?;

    let mut next = match (claim, rows) {
        (Some((_, token)), Some(rows)) => claimed(&rows, token)?.into_iter(),
        _ => Vec::new().into_iter(),
    };
    for &i in &going {
        answers[i] = Answer::Ended(batch[i].next.and_then(|_| next.next()).map(Box::new));
    }
    Ok(Ended {
        answers,
        work,
        changed,
    })
}

/// The rows of the batch's jobs whose lease is still their worker's, locked; `None` for the
/// others.
async fn leases(tx: &Transaction<'_>, batch: &[Request]) -> Result<Vec<Option<Held>>> {
    let (ids, tokens): (Vec<i64>, Vec<i64>) =
        batch.iter().map(|r| (r.lease.job, r.lease.token)).unzip();
    let rows = tx
        .query(
            &tx.prepare_cached(
                "SELECT j.id, j.tenant, j.connector, j.delivery_id, j.idempotency_key,
                        j.task LIKE '{\"kind\":\"delivery\"%'
                 FROM jobs j JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, token)
                   ON j.id = l.id AND j.lease_token = l.token
                 WHERE j.state = 'running' ORDER BY j.id FOR UPDATE OF j",
            )
            .await?,
            &[&ids, &tokens],
        )
        .await?;
    let mut held: Vec<Option<Held>> = batch.iter().map(|_| None).collect();
    for row in &rows {
        let id: i64 = row.get(0);
        if let Some(i) = batch.iter().position(|r| r.lease.job == id) {
            held[i] = Some(Held {
                tenant: tenant(row, 1)?,
                connector: connector(row, 2)?,
                delivery: row.get(3),
                key: row.get(4),
                is_delivery: row.get::<_, Option<bool>>(5).unwrap_or(false),
            });
        }
    }
    Ok(held)
}

impl super::Postgres {
    /// Hands a job's end to the committers and waits for its commit.
    pub(super) async fn end_job(
        &self,
        lease: Lease,
        effects: &Effects,
        end: &JobEnd,
        duration_us: i64,
        next: Option<i64>,
    ) -> Result<Option<Job>> {
        let effects = sanitized(effects).unwrap_or_else(|| effects.clone());
        let (reply, answer) = oneshot::channel();
        let request = Request {
            lease,
            effects,
            end: end.clone(),
            duration_us,
            next,
            reply,
        };
        self.ends
            .send(request)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}
