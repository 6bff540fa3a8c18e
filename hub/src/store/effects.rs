//! What an invocation wrote through host calls ([`Effects`]): buffered while it runs, committed
//! with its job's end in one transaction only if it succeeded, all or nothing, and only if what
//! it read is still what it saw (optimistic concurrency).

use rusqlite::{Connection, OptionalExtension};

use super::queue::{insert_job, rand_suffix};
use super::{Command, NewJob, Result, Sqlite, events, kv, records};

use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

/// Writes an invocation made through host calls; committed with the job's end, all or nothing.
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// Record upserts and deletions, in order.
    pub records: Vec<RecordWrite>,
    /// kv writes, in order.
    pub kv: Vec<KvWrite>,
    /// Events published, in order.
    pub events: Vec<Published>,
    /// Jobs to queue.
    pub jobs: Vec<NewJob>,
    /// Records' lookups replaced (`record-set-lookups`), written with the record when the
    /// invocation also writes it, else to the record as stored; a record that does not exist
    /// takes none.
    pub lookups: Vec<LookupsSet>,
    /// What the invocation read, with the version it saw. At commit, if any of these changed
    /// meanwhile (a concurrent invocation wrote it), nothing is applied and the job runs again:
    /// optimistic concurrency, so two deliveries for one call never lose an update.
    pub reads: Vec<ReadSeen>,
}

/// One record written (`record-put`) or deleted (`record-delete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Kind, e.g. `call`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// The JSON object; `None` deletes.
    pub data: Option<String>,
}

/// A record's lookups, replaced (`record-set-lookups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupsSet {
    /// Kind of the record.
    pub kind: String,
    /// Key of the record.
    pub key: String,
    /// Its lookups from now on (`phone:+14155550100`).
    pub lookups: Vec<String>,
}

/// One event published (`publish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Event name, e.g. `call.analyzed`.
    pub name: String,
    /// JSON payload.
    pub payload: String,
}

/// One kv write of an invocation.
#[derive(Debug, Clone)]
pub struct KvWrite {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// An idempotency marker (`kv-set-marker`): deleted by retention with the finished jobs.
    pub marker: bool,
}

/// A value an invocation read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    /// A record `(kind, key)`.
    Record(String, String),
    /// A kv key.
    Kv(String),
}

/// A value an invocation read, and the version it saw (0: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSeen {
    /// What was read.
    pub read: Read,
    /// Its version then.
    pub version: i64,
}

impl Sqlite {
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
        let (tenant, connector) = (tenant.clone(), connector.clone());
        self.call(|reply| Command::Apply {
            tenant,
            connector,
            effects,
            reply,
        })
        .await
    }
}

/// A fresh version for a written value: random and never 0 (0 means absent), so a value that
/// changes — even deleted and written again — never shows a version a reader saw before.
pub(super) fn new_version() -> i64 {
    (rand::random::<u64>() >> 1) as i64 | 1
}

/// The first read whose version changed since the invocation read it.
pub(super) fn first_conflict(
    c: &Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    reads: &[ReadSeen],
) -> rusqlite::Result<Option<String>> {
    for ReadSeen { read, version } in reads {
        let now = match read {
            Read::Record(kind, key) => records::version(c, tenant, kind, key)?,
            Read::Kv(key) => kv::version(c, tenant, connector, key)?,
        };
        if now != *version {
            return Ok(Some(match read {
                Read::Record(kind, key) => format!("record {kind}/{key}"),
                Read::Kv(key) => format!("kv key {key}"),
            }));
        }
    }
    Ok(None)
}

/// Writes an invocation's effects for (tenant, connector); `job` is the job that made them.
pub(super) fn apply_effects(
    c: &Connection,
    tenant: &TenantId,
    connector: &ConnectorId,
    job: Option<i64>,
    effects: &Effects,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let parent = job
        .map(|j| format!("job:{j}"))
        .unwrap_or_else(|| format!("sync:{now}:{}", rand_suffix()));
    // Jobs a delivery's handling queues (route actions, follow-ups) belong to that delivery; its
    // events are keyed by the job's idempotency key, as the route jobs they trigger are.
    let (delivery, job_key): (Option<i64>, Option<String>) = match job {
        Some(j) => c
            .prepare_cached("SELECT delivery_id, idempotency_key FROM jobs WHERE id=?1")?
            .query_row([j], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .map_or((None, None), |(d, k)| (d, Some(k))),
        None => (None, None),
    };
    records::write(c, tenant, &effects.records, &effects.lookups, (job, now))?;
    kv::write(c, tenant, connector, &effects.kv, now)?;
    events::write(
        c,
        tenant,
        connector,
        (job, job_key.as_deref()),
        &effects.events,
        now,
    )?;
    for (i, new_job) in effects.jobs.iter().enumerate() {
        let mut new_job = new_job.clone();
        if new_job.idempotency_key.is_none() {
            // Derived from the parent job, so a re-run of the parent does not queue twice.
            new_job.idempotency_key = Some(format!("{parent}:{i}"));
        }
        insert_job(c, &new_job, delivery)?;
    }
    Ok(())
}
