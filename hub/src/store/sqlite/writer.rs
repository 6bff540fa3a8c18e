//! The writer thread and its group commit: every write is a [`Command`] sent to one thread,
//! which applies whatever commands are waiting in one transaction (each in a savepoint, so one
//! that fails rolls back alone), commits once, and answers each after the commit; a batch with
//! webhooks only once the sync thread ([`Syncer`]) has made the WAL durable. Checkpoints run on a
//! thread of their own ([`checkpoint_loop`]).

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot};

use super::deliveries::insert_deliveries;
use super::effects::apply_effects;
use super::enqueue::insert_job;
use super::queue::{claim, finish};
use super::{
    Effects, Ingested, Job, JobEnd, NewDelivery, NewJob, StoreError, TickClaim, TickOutcome,
    connections, endpoints, prune, replay, schedule,
};
use super::{Handover, Lease};
use crate::id::{ConnectorId, TenantId};

/// Where a command's answer goes.
pub(super) type Reply<T> = oneshot::Sender<super::Result<T>>;

/// One write request to the writer thread.
pub(super) enum Command {
    /// Commit a synchronous invocation's effects.
    Apply {
        tenant: TenantId,
        connector: ConnectorId,
        effects: Effects,
        reply: Reply<()>,
    },
    /// Deliveries, each with its headers already as JSON (serialized on the caller's thread,
    /// not the writer's).
    Ingest(Vec<(NewDelivery, String)>, Reply<Vec<Ingested>>),
    Enqueue(NewJob, Reply<Option<i64>>),
    Claim {
        limit: usize,
        lease_ms: i64,
        reply: Reply<Vec<Job>>,
    },
    Finish {
        lease: Lease,
        effects: Effects,
        end: JobEnd,
        duration_us: i64,
        /// Also claim the next ready job, with this lease.
        next_lease_ms: Option<i64>,
        reply: Reply<Handover>,
    },
    ScheduleStart {
        tenant: TenantId,
        name: String,
        now_ms: i64,
        reply: Reply<i64>,
    },
    ClaimTick(TickClaim, Reply<TickOutcome>),
    Replay(replay::ReplayStep, Reply<replay::StepDone>),
    Prune {
        part: prune::Part,
        cutoff_ms: i64,
        limit: usize,
        reply: Reply<usize>,
    },
    /// Disable an endpoint (with why) or enable it again (`None`).
    EndpointState {
        tenant: TenantId,
        endpoint: String,
        disabled: Option<String>,
        reply: Reply<()>,
    },
    /// A write to an OAuth2 connection; whether it happened.
    Connection {
        key: crate::store::ConnectionKey,
        write: crate::store::ConnectionWrite,
        reply: Reply<bool>,
    },
    /// A write to a push channel; whether it changed anything.
    Channel {
        key: crate::store::ChannelKey,
        write: crate::store::ChannelWrite,
        reply: Reply<bool>,
    },
    /// An audit entry.
    Audit {
        entry: crate::store::AuditEntry,
        reply: Reply<()>,
    },
    /// Audit entries pruned.
    PruneAudit {
        cutoff_ms: i64,
        limit: usize,
        reply: Reply<usize>,
    },
    /// A new config version.
    ConfigPush {
        push: crate::store::VersionPush,
        reply: Reply<crate::store::Pushed>,
    },
    /// A write to a consent flow; the flow it found.
    Flow {
        write: crate::store::FlowWrite,
        reply: Reply<Option<crate::store::Flow>>,
    },
}

/// The writer thread: takes every waiting command, applies them in savepoints ([`apply_batch`]),
/// commits once, then answers. A command that fails rolls back alone; a failed commit fails them
/// all.
pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    work: Arc<Notify>,
    changed: Arc<Notify>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    const MAX_BATCH: usize = 1024;
    let syncer = Syncer::start(
        conn.path().map(|p| PathBuf::from(format!("{p}-wal"))),
        work.clone(),
    );
    if syncer.is_none() {
        // No sync thread: every commit waits for the disk itself.
        if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
            tracing::error!("cannot make commits durable: {e}");
        }
    }
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let mut queued_work = false;
        // A batch holding a webhook is answered only once the WAL is on disk: the provider gets
        // its 2xx only for what survives power loss. The sync happens on the syncer thread while
        // this one goes on with the next batch. A batch of job bookkeeping only is answered at
        // once (WAL keeps it across a crash of the process; after a power loss the job simply
        // runs again, its effects being idempotent); the next sync covers it too.
        let durable = batch.iter().any(|c| matches!(c, Command::Ingest(..)));
        // Followers of the change feed wake after a commit that may have written records.
        let records = batch.iter().any(|c| match c {
            Command::Apply { effects, .. } | Command::Finish { effects, .. } => {
                !effects.records.is_empty()
            }
            _ => false,
        });
        let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                let e = Arc::new(StoreError::from(e));
                for cmd in batch {
                    fail(cmd, &e);
                }
                continue;
            }
        };
        apply_batch(&tx, batch, &mut answers, &mut queued_work);
        let commit = tx.commit().map_err(|e| Arc::new(StoreError::from(e)));
        if records && commit.is_ok() {
            changed.notify_waiters();
        }
        match (commit, &syncer) {
            (Ok(()), Some(syncer)) if durable => syncer.after_sync(answers, queued_work),
            (commit, _) => {
                for answer in answers {
                    answer(commit.as_ref().err());
                }
                if commit.is_ok() && queued_work {
                    work.notify_waiters();
                    work.notify_one();
                }
            }
        }
        // A full channel means a checkpoint is already due.
        let _ = checkpoint.try_send(());
    }
}

/// An answer to a writer command, given once its transaction is committed (and synced, for a
/// durable one), or with the error that stopped it.
type Answer = Box<dyn FnOnce(Option<&Arc<StoreError>>) + Send>;

/// Makes committed webhooks durable off the writer thread (pipelined group commit): the writer
/// commits with `synchronous=NORMAL` and hands the batch's answers here; this thread syncs the
/// WAL file once for every batch waiting and only then answers them, while the writer already
/// builds the next batch. Equivalent to `synchronous=FULL` for the answered batches (a sync of
/// the WAL makes every frame written before it durable), at the cost of the writer never
/// waiting for the disk.
struct Syncer {
    batches: std::sync::mpsc::Sender<(Vec<Answer>, bool)>,
}

impl Syncer {
    /// `None` for an in-memory database (nothing to sync): the writer then answers at commit.
    fn start(wal: Option<PathBuf>, work: Arc<Notify>) -> Option<Syncer> {
        let wal = wal?;
        let (batches, waiting) = std::sync::mpsc::channel::<(Vec<Answer>, bool)>();
        std::thread::Builder::new()
            .name("hub-db-sync".into())
            .spawn(move || {
                let mut file: Option<std::fs::File> = None;
                while let Ok(first) = waiting.recv() {
                    let mut ready = vec![first];
                    ready.extend(waiting.try_iter());
                    let synced = match &file {
                        Some(f) => f.sync_data(),
                        None => std::fs::File::open(&wal).and_then(|f| {
                            f.sync_data()?;
                            file = Some(f);
                            Ok(())
                        }),
                    };
                    let error = synced.err().map(|e| {
                        tracing::error!("cannot sync the database to disk: {e}");
                        Arc::new(StoreError::Sync(e))
                    });
                    let mut queued_work = false;
                    for (answers, queued) in ready {
                        queued_work |= queued;
                        for answer in answers {
                            answer(error.as_ref());
                        }
                    }
                    if error.is_none() && queued_work {
                        work.notify_waiters();
                        work.notify_one();
                    }
                }
            })
            .ok()?;
        Some(Syncer { batches })
    }

    /// Answers `answers` after the next sync of the WAL.
    fn after_sync(&self, answers: Vec<Answer>, queued_work: bool) {
        if let Err(std::sync::mpsc::SendError((answers, _))) =
            self.batches.send((answers, queued_work))
        {
            let gone = Arc::new(StoreError::WriterGone);
            for answer in answers {
                answer(Some(&gone));
            }
        }
    }
}

/// Copies the WAL back into the database after commits, off the writer thread: at most every
/// 50 ms while commits keep coming, never while the hub is idle. `PASSIVE` never blocks the
/// writer; if the WAL still grows past 64 MiB (readers keeping old snapshots), a `RESTART`
/// checkpoint waits for them so the file cannot grow without bound.
pub(super) fn checkpoint_loop(conn: Connection, poked: std::sync::mpsc::Receiver<()>) {
    const WAL_LIMIT_PAGES: i64 = 16_384;
    while poked.recv().is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = poked.try_recv();
        let log_pages = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
            .unwrap_or(0);
        if log_pages > WAL_LIMIT_PAGES
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        {
            tracing::warn!("database checkpoint failed: {e}");
        }
    }
    // The writer has stopped: fold the WAL into the database for a clean shutdown.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Answers a command of a batch whose transaction could not begin.
fn fail(cmd: Command, e: &Arc<StoreError>) {
    let err = || StoreError::Batch(e.clone());
    match cmd {
        Command::Ingest(_, r) => drop(r.send(Err(err()))),
        Command::Enqueue(_, r) => drop(r.send(Err(err()))),
        Command::Claim { reply, .. } => drop(reply.send(Err(err()))),
        Command::Finish { reply, .. } => drop(reply.send(Err(err()))),
        Command::Apply { reply, .. } => drop(reply.send(Err(err()))),
        Command::ScheduleStart { reply, .. } => drop(reply.send(Err(err()))),
        Command::ClaimTick(_, r) => drop(r.send(Err(err()))),
        Command::Replay(_, r) => drop(r.send(Err(err()))),
        Command::Prune { reply, .. } => drop(reply.send(Err(err()))),
        Command::EndpointState { reply, .. } => drop(reply.send(Err(err()))),
        Command::Connection { reply, .. } => drop(reply.send(Err(err()))),
        Command::Flow { reply, .. } => drop(reply.send(Err(err()))),
        Command::Channel { reply, .. } => drop(reply.send(Err(err()))),
        Command::ConfigPush { reply, .. } => drop(reply.send(Err(err()))),
        Command::Audit { reply, .. } => drop(reply.send(Err(err()))),
        Command::PruneAudit { reply, .. } => drop(reply.send(Err(err()))),
    }
}

/// Queues the answer to one command for after the commit.
fn answer<T: Send + 'static>(
    answers: &mut Vec<Answer>,
    reply: Reply<T>,
    result: rusqlite::Result<T>,
) {
    answers.push(Box::new(move |commit_err| {
        let out = match (result, commit_err) {
            (Err(e), _) => Err(StoreError::from(e)),
            (Ok(_), Some(e)) => Err(StoreError::Batch(e.clone())),
            (Ok(v), None) => Ok(v),
        };
        let _ = reply.send(out);
    }));
}

/// Runs `f` in a savepoint: if it fails, what it wrote is undone and the transaction goes on.
fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    // Cached statements: a batch holds hundreds of savepoints, not worth parsing each time.
    tx.prepare_cached("SAVEPOINT cmd")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE cmd")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
            Err(e)
        }
    }
}

/// Applies a batch: its webhooks first, together, then every other command in order.
///
/// A savepoint copies each page it is the first to touch, so one savepoint per webhook copied
/// the same table and index pages once per webhook. The batch's webhooks share one savepoint
/// instead; only if that fails (it does not, short of a full disk or a broken file) is each
/// applied alone, so one bad webhook cannot fail the others.
fn apply_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: Vec<Command>,
    answers: &mut Vec<Answer>,
    queued_work: &mut bool,
) {
    let mut webhooks = Vec::new();
    let mut others = Vec::new();
    for cmd in batch {
        match cmd {
            Command::Ingest(deliveries, reply) => webhooks.push((deliveries, reply)),
            other => others.push(other),
        }
    }
    let together = match webhooks.len() {
        0 | 1 => None,
        _ => in_savepoint(tx, |c| {
            webhooks
                .iter()
                .map(|(deliveries, _)| insert_deliveries(c, deliveries))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ok(),
    };
    match together {
        Some(results) => {
            for ((_, reply), result) in webhooks.into_iter().zip(results) {
                *queued_work |= result.iter().any(|i| matches!(i, Ingested::Stored(_)));
                answer(answers, reply, Ok(result));
            }
        }
        None => {
            for (deliveries, reply) in webhooks {
                apply(tx, Command::Ingest(deliveries, reply), answers, queued_work);
            }
        }
    }
    for cmd in others {
        apply(tx, cmd, answers, queued_work);
    }
}

/// Applies one command inside a savepoint and queues its answer for after the commit.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    cmd: Command,
    answers: &mut Vec<Answer>,
    queued_work: &mut bool,
) {
    match cmd {
        Command::Apply {
            tenant,
            connector,
            effects,
            reply,
        } => {
            if !effects.jobs.is_empty() {
                *queued_work = true;
            }
            let result = in_savepoint(tx, |c| {
                apply_effects(c, &tenant, &connector, None, &effects)
            });
            answer(answers, reply, result);
        }
        Command::Ingest(deliveries, reply) => {
            let result = in_savepoint(tx, |c| insert_deliveries(c, &deliveries));
            if matches!(&result, Ok(v) if v.iter().any(|i: &Ingested| matches!(i, Ingested::Stored(_))))
            {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Enqueue(job, reply) => {
            let result = in_savepoint(tx, |c| insert_job(c, &job, None));
            if matches!(result, Ok(Some(_))) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Claim {
            limit,
            lease_ms,
            reply,
        } => {
            let result = in_savepoint(tx, |c| claim(c, limit, lease_ms));
            answer(answers, reply, result);
        }
        Command::Finish {
            lease,
            effects,
            end,
            duration_us,
            next_lease_ms,
            reply,
        } => {
            if !effects.jobs.is_empty() || matches!(end, JobEnd::Retry { .. }) {
                *queued_work = true;
            }
            let result =
                in_savepoint(tx, |c| finish(c, lease, &effects, &end, duration_us)).map(|held| {
                    match held {
                        // A failed claim leaves the job's end committed; the worker claims later.
                        true => Handover::Done(
                            next_lease_ms
                                .and_then(|lease| in_savepoint(tx, |c| claim(c, 1, lease)).ok())
                                .and_then(|mut jobs| jobs.pop()),
                        ),
                        false => Handover::LeaseLost,
                    }
                });
            answer(answers, reply, result);
        }
        Command::ScheduleStart {
            tenant,
            name,
            now_ms,
            reply,
        } => {
            let result = in_savepoint(tx, |c| schedule::start(c, &tenant, &name, now_ms));
            answer(answers, reply, result);
        }
        Command::ClaimTick(claim, reply) => {
            let result = in_savepoint(tx, |c| schedule::claim(c, &claim));
            if matches!(result, Ok(TickOutcome::Queued(_))) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Replay(step, reply) => {
            let result = in_savepoint(tx, |c| replay::step(c, &step));
            if matches!(&result, Ok(done) if done.queued_work()) {
                *queued_work = true;
            }
            answer(answers, reply, result);
        }
        Command::Prune {
            part,
            cutoff_ms,
            limit,
            reply,
        } => {
            let result = in_savepoint(tx, |c| prune::batch(c, part, cutoff_ms, limit));
            answer(answers, reply, result);
        }
        Command::EndpointState {
            tenant,
            endpoint,
            disabled,
            reply,
        } => {
            let result = in_savepoint(tx, |c| {
                endpoints::set(c, &tenant, &endpoint, disabled.as_deref())
            });
            answer(answers, reply, result);
        }
        Command::Connection { key, write, reply } => {
            let result = in_savepoint(tx, |c| connections::write(c, &key, &write));
            answer(answers, reply, result);
        }
        Command::Flow { write, reply } => {
            let result = in_savepoint(tx, |c| connections::write_flow(c, &write));
            answer(answers, reply, result);
        }
        Command::Channel { key, write, reply } => {
            let result = in_savepoint(tx, |c| connections::write_channel(c, &key, &write));
            answer(answers, reply, result);
        }
        Command::Audit { entry, reply } => {
            let result = in_savepoint(tx, |c| super::audit::write(c, &entry));
            answer(answers, reply, result);
        }
        Command::PruneAudit {
            cutoff_ms,
            limit,
            reply,
        } => {
            let result = in_savepoint(tx, |c| super::audit::prune(c, cutoff_ms, limit));
            answer(answers, reply, result);
        }
        Command::ConfigPush { push, reply } => {
            let result = in_savepoint(tx, |c| super::versions::push(c, &push));
            answer(answers, reply, result);
        }
    }
}
