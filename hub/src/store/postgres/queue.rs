//! Jobs on PostgreSQL: queued once per idempotency key, claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease token, ended with their effects in one transaction by the token's holder only;
//! schedule ticks claimed once across every process.

use deadpool_postgres::{GenericClient, Transaction};
use sha2::Digest as _;

use super::super::effects::new_version;
use super::super::queue::{Ended, Outcome, decode_task, encode_task, rand_suffix};
use super::super::{
    Effects, Job, JobEnd, JobState, KvWrite, Lease, LookupsSet, NewJob, Published, Read, ReadSeen,
    RecordWrite, Result, Task, TickClaim, TickOutcome, now_ms, schedule_key,
};
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

async fn insert_job(
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

/// A 64-bit name for one value a connector reads or writes, for a transaction-scoped advisory
/// lock: invocations that touch the same record or kv key commit one after the other.
fn lock_key(parts: &[&str]) -> i64 {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    i64::from_be_bytes(h.finalize()[..8].try_into().unwrap_or([0; 8]))
}

/// Locks every record and kv key `effects` reads or writes, in one global order (no deadlock
/// between two invocations), for the rest of the transaction.
async fn lock_values(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    connector: &ConnectorId,
    effects: &Effects,
) -> Result<()> {
    let record = |kind: &str, key: &str| lock_key(&["r", tenant.as_str(), kind, key]);
    let kv = |key: &str| lock_key(&["k", tenant.as_str(), connector.as_str(), key]);
    let mut keys: Vec<i64> = effects
        .reads
        .iter()
        .map(|r| match &r.read {
            Read::Record(kind, key) => record(kind, key),
            Read::Kv(key) => kv(key),
        })
        .chain(effects.records.iter().map(|w| record(&w.kind, &w.key)))
        .chain(effects.lookups.iter().map(|l| record(&l.kind, &l.key)))
        .chain(effects.kv.iter().map(|w| kv(&w.key)))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let stmt = tx
        .prepare_cached("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k")
        .await?;
    tx.query_one(&stmt, &[&keys]).await?;
    Ok(())
}

/// The first read whose version changed since the invocation read it.
async fn first_conflict(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    connector: &ConnectorId,
    reads: &[ReadSeen],
) -> Result<Option<String>> {
    for ReadSeen { read, version } in reads {
        let row = match read {
            Read::Record(kind, key) => {
                tx.query_opt(
                    &tx.prepare_cached(
                        "SELECT version FROM records WHERE tenant=$1 AND kind=$2 AND key=$3",
                    )
                    .await?,
                    &[&tenant.as_str(), kind, key],
                )
                .await?
            }
            Read::Kv(key) => {
                tx.query_opt(
                    &tx.prepare_cached(
                        "SELECT version FROM kv WHERE tenant=$1 AND connector=$2 AND key=$3",
                    )
                    .await?,
                    &[&tenant.as_str(), &connector.as_str(), key],
                )
                .await?
            }
        };
        if row.map_or(0, |r| r.get::<_, i64>(0)) != *version {
            return Ok(Some(match read {
                Read::Record(kind, key) => format!("record {kind}/{key}"),
                Read::Kv(key) => format!("kv key {key}"),
            }));
        }
    }
    Ok(None)
}

/// Writes an invocation's effects (the caller holds [`lock_values`]); whether it queued jobs
/// and whether it wrote records.
async fn apply_effects(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    connector: &ConnectorId,
    job: Option<(i64, Option<i64>, &str)>,
    effects: &Effects,
) -> Result<()> {
    let now = now_ms();
    let parent = job
        .map(|(j, _, _)| format!("job:{j}"))
        .unwrap_or_else(|| format!("sync:{now}:{}", rand_suffix()));
    write_records(
        tx,
        tenant,
        &effects.records,
        &effects.lookups,
        (job.map(|j| j.0), now),
    )
    .await?;
    for KvWrite { key, value, marker } in &effects.kv {
        match value {
            Some(v) => {
                tx.execute(&tx.prepare_cached("INSERT INTO kv (tenant, connector, key, value, version, marker_at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant, connector, key) DO UPDATE
                     SET value=excluded.value, version=excluded.version, marker_at=excluded.marker_at").await?,
                    &[&tenant.as_str(), &connector.as_str(), &text(key), v, &new_version(), &marker.then_some(now)],
                )
                .await?
            }
            None => {
                tx.execute(&tx.prepare_cached("DELETE FROM kv WHERE tenant=$1 AND connector=$2 AND key=$3").await?,
                    &[&tenant.as_str(), &connector.as_str(), &text(key)],
                )
                .await?
            }
        };
    }
    for (i, Published { name, payload }) in effects.events.iter().enumerate() {
        let key = job.map(|(_, _, k)| format!("{k}:event:{i}:{name}"));
        let key = key.as_deref().map(text);
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO events (tenant, connector, name, payload, job_id, created_at, key)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .await?,
            &[
                &tenant.as_str(),
                &connector.as_str(),
                name,
                payload,
                &job.map(|j| j.0),
                &now,
                &key,
            ],
        )
        .await?;
    }
    for (i, new_job) in effects.jobs.iter().enumerate() {
        let mut new_job = new_job.clone();
        if new_job.idempotency_key.is_none() {
            // Derived from the parent job, so a re-run of the parent does not queue twice.
            new_job.idempotency_key = Some(format!("{parent}:{i}"));
        }
        insert_job(tx, &new_job, job.and_then(|j| j.1)).await?;
    }
    Ok(())
}

/// A record's lookups as stored (`None`: no such record).
async fn stored_lookups(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    kind: &str,
    key: &str,
) -> Result<Option<Vec<String>>> {
    let row = tx
        .query_opt(
            "SELECT lookups FROM records WHERE tenant=$1 AND kind=$2 AND key=$3",
            &[&tenant.as_str(), &kind, &key],
        )
        .await?;
    Ok(row.map(|r| {
        r.get::<_, Option<&str>>(0)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }))
}

async fn index_lookups(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    (kind, key): (&str, &str),
    old: &[String],
    new: &[String],
) -> Result<()> {
    for gone in old.iter().filter(|l| !new.contains(l)) {
        tx.execute(
            &tx.prepare_cached(
                "DELETE FROM record_lookups WHERE tenant=$1 AND kind=$2 AND lookup=$3 AND key=$4",
            )
            .await?,
            &[&tenant.as_str(), &kind, gone, &key],
        )
        .await?;
    }
    for added in new.iter().filter(|l| !old.contains(l)) {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO record_lookups (tenant, kind, lookup, key) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            )
            .await?,
            &[&tenant.as_str(), &kind, added, &key],
        )
        .await?;
    }
    Ok(())
}

fn lookups_column(lookups: &[String]) -> Option<String> {
    (!lookups.is_empty()).then(|| serde_json::to_string(lookups).unwrap_or_default())
}

/// Records and lookups, as the SQLite store writes them (see its `records::write`).
async fn write_records(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    writes: &[RecordWrite],
    lookups_set: &[LookupsSet],
    (job, now): (Option<i64>, i64),
) -> Result<()> {
    let lookups = super::super::records::last_lookups(lookups_set);
    let wanted = |kind: &str, key: &str| {
        lookups
            .iter()
            .find(|(k, id, _)| *k == kind && *id == key)
            .map(|(_, _, l)| l.clone())
    };
    for (i, RecordWrite { kind, key, data }) in writes.iter().enumerate() {
        let last = !writes[i + 1..]
            .iter()
            .any(|w| w.kind == *kind && w.key == *key);
        match data {
            Some(data) => match wanted(kind, key).filter(|_| last) {
                None => {
                    tx.execute(&tx.prepare_cached("INSERT INTO records (tenant, kind, key, data, updated_at, version, seq, job_id)
                         VALUES ($1, $2, $3, $4, $5, $6, nextval('record_seq'), $7)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at, version=excluded.version,
                             seq=excluded.seq, job_id=excluded.job_id, tx=pg_current_xact_id()").await?,
                        &[&tenant.as_str(), kind, key, data, &now, &new_version(), &job],
                    )
                    .await?;
                }
                Some(new) => {
                    let old = stored_lookups(tx, tenant, kind, key)
                        .await?
                        .unwrap_or_default();
                    index_lookups(tx, tenant, (kind, key), &old, &new).await?;
                    tx.execute(&tx.prepare_cached("INSERT INTO records (tenant, kind, key, data, updated_at, version, lookups, seq, job_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('record_seq'), $8)
                         ON CONFLICT (tenant, kind, key) DO UPDATE
                         SET data=excluded.data, updated_at=excluded.updated_at, version=excluded.version,
                             lookups=excluded.lookups, seq=excluded.seq, job_id=excluded.job_id,
                             tx=pg_current_xact_id()").await?,
                        &[&tenant.as_str(), kind, key, data, &now, &new_version(), &lookups_column(&new), &job],
                    )
                    .await?;
                }
            },
            None => {
                let Some(old) = stored_lookups(tx, tenant, kind, key).await? else {
                    continue; // nothing to delete: no change
                };
                index_lookups(tx, tenant, (kind, key), &old, &[]).await?;
                tx.execute(
                    &tx.prepare_cached(
                        "DELETE FROM records WHERE tenant=$1 AND kind=$2 AND key=$3",
                    )
                    .await?,
                    &[&tenant.as_str(), kind, key],
                )
                .await?;
                tx.execute(
                    &tx.prepare_cached(
                        "INSERT INTO record_tombstones (tenant, kind, key, seq, deleted_at)
                     VALUES ($1, $2, $3, nextval('record_seq'), $4)
                     ON CONFLICT (tenant, kind, key) DO UPDATE
                     SET seq=excluded.seq, deleted_at=excluded.deleted_at, tx=pg_current_xact_id()",
                    )
                    .await?,
                    &[&tenant.as_str(), kind, key, &now],
                )
                .await?;
            }
        }
    }
    for (kind, key, new) in &lookups {
        if writes
            .iter()
            .any(|w| w.kind == *kind && w.key == *key && w.data.is_some())
        {
            continue;
        }
        match stored_lookups(tx, tenant, kind, key).await? {
            Some(old) if old != *new => {
                index_lookups(tx, tenant, (kind, key), &old, new).await?;
                tx.execute(
                    &tx.prepare_cached(
                        "UPDATE records SET lookups=$4 WHERE tenant=$1 AND kind=$2 AND key=$3",
                    )
                    .await?,
                    &[&tenant.as_str(), kind, key, &lookups_column(new)],
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `effects` with every NUL turned to U+FFFD (see [`text`]); `None` when none has one (the
/// usual case: nothing is copied).
fn sanitized(effects: &Effects) -> Option<Effects> {
    let nul = |s: &str| s.contains('\0');
    let dirty = effects
        .records
        .iter()
        .any(|w| nul(&w.kind) || nul(&w.key) || w.data.as_deref().is_some_and(nul))
        || effects.kv.iter().any(|w| nul(&w.key))
        || effects
            .lookups
            .iter()
            .any(|l| nul(&l.kind) || nul(&l.key) || l.lookups.iter().any(|x| nul(x)))
        || effects.reads.iter().any(|r| match &r.read {
            Read::Record(kind, key) => nul(kind) || nul(key),
            Read::Kv(key) => nul(key),
        });
    if !dirty {
        return None;
    }
    let t = |s: &String| text(s).into_owned();
    let mut clean = effects.clone();
    for w in &mut clean.records {
        (w.kind, w.key, w.data) = (t(&w.kind), t(&w.key), w.data.as_ref().map(t));
    }
    for w in &mut clean.kv {
        w.key = t(&w.key);
    }
    for l in &mut clean.lookups {
        (l.kind, l.key) = (t(&l.kind), t(&l.key));
        l.lookups = l.lookups.iter().map(t).collect();
    }
    for r in &mut clean.reads {
        r.read = match &r.read {
            Read::Record(kind, key) => Read::Record(t(kind), t(key)),
            Read::Kv(key) => Read::Kv(t(key)),
        };
    }
    Some(clean)
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
