//! A job's effects on PostgreSQL: the advisory locks on what it read and wrote, the check that
//! nothing it read changed meanwhile, and the writes (records with their lookups and change
//! numbers, kv, events, follow-up jobs), in the transaction that ends the job.

use deadpool_postgres::Transaction;
use sha2::Digest as _;

use super::super::effects::new_version;
use super::super::queue::rand_suffix;
use super::super::{
    Effects, KvWrite, LookupsSet, Published, Read, ReadSeen, RecordWrite, Result, now_ms,
};
use super::queue::insert_job;
use super::text;
use crate::config::{ConnectorId, TenantId};

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
pub(super) async fn lock_values(
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
pub(super) async fn first_conflict(
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
pub(super) async fn apply_effects(
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
pub(super) fn sanitized(effects: &Effects) -> Option<Effects> {
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
