//! What an invocation wrote through host calls ([`Effects`]): buffered while it runs, committed
//! with its job's end in one transaction only if it succeeded, all or nothing, and only if what
//! it read is still what it saw (optimistic concurrency).

use rusqlite::{Connection, OptionalExtension};

use super::enqueue::insert_job;
use super::{Command, Result, Sqlite, events, kv, records};

use super::rand_suffix;
use super::{Effects, Read, ReadSeen};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

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
