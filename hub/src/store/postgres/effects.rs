//! A job's effects on PostgreSQL, in the transaction that ends the job, in two flights of
//! statements sent together ([`pipeline`](super::pipeline)): first the advisory locks on what
//! it read and wrote, the versions of what it read (did any change meanwhile?) and the lookups
//! stored for the records it writes ([`check`]); then the writes themselves, records with their
//! lookups and change numbers, kv, events, follow-up jobs ([`writes`]).

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use sha2::Digest as _;
use tokio_postgres::Statement;

use super::super::{Effects, KvWrite, LookupsSet, Published, Read, RecordWrite, Result};
use super::enqueue::{insert_job_op, insert_job_sql};
use super::pipeline::{self, Op, Param};
use super::text;

use super::super::{new_version, rand_suffix};
use crate::clock::now_ms;
use crate::id::{ConnectorId, TenantId};

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

/// Every record and kv key `effects` reads or writes, sorted: locked in one global order, no
/// deadlock between two invocations.
fn lock_keys(tenant: &TenantId, connector: &ConnectorId, effects: &Effects) -> Vec<i64> {
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
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn owned(s: &str) -> Param {
    Box::new(s.to_owned())
}

/// What [`check`] found, under the locks it took.
pub(super) struct Checked {
    /// The first read whose version changed since the invocation read it.
    pub(super) conflict: Option<String>,
    /// The lookups stored for each record the effects write or re-index (`None`: no record).
    stored: HashMap<(String, String), Option<Vec<String>>>,
}

/// The records whose stored lookups the writes need: written with lookups, deleted, or given
/// new lookups alone.
fn needs_lookups(effects: &Effects) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lookups = super::super::last_lookups(&effects.lookups);
    let mut add = |kind: &str, key: &str| {
        if !out.iter().any(|(k, id)| k == kind && id == key) {
            out.push((kind.to_owned(), key.to_owned()));
        }
    };
    for w in &effects.records {
        let with_lookups = lookups
            .iter()
            .any(|(k, id, _)| *k == w.kind && *id == w.key);
        if w.data.is_none() || with_lookups {
            add(&w.kind, &w.key);
        }
    }
    for (kind, key, _) in &lookups {
        add(kind, key);
    }
    out
}

/// Locks what `effects` touch, then reads the versions of what they read and the lookups of
/// the records they write, all in one flight.
pub(super) async fn check(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    connector: &ConnectorId,
    effects: &Effects,
) -> Result<Checked> {
    let keys = lock_keys(tenant, connector, effects);
    let locking = !keys.is_empty();
    let needs = needs_lookups(effects);
    let mut queries = Vec::with_capacity(1 + effects.reads.len() + needs.len());
    if locking {
        let lock = tx
            .prepare_cached("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k")
            .await?;
        queries.push(Op::new(&lock, vec![Box::new(keys)]));
    }
    let record_version = tx
        .prepare_cached("SELECT version FROM records WHERE tenant=$1 AND kind=$2 AND key=$3")
        .await?;
    let kv_version = tx
        .prepare_cached("SELECT version FROM kv WHERE tenant=$1 AND connector=$2 AND key=$3")
        .await?;
    let record_lookups = tx
        .prepare_cached("SELECT lookups FROM records WHERE tenant=$1 AND kind=$2 AND key=$3")
        .await?;
    for read in &effects.reads {
        queries.push(match &read.read {
            Read::Record(kind, key) => Op::new(
                &record_version,
                vec![owned(tenant.as_str()), owned(kind), owned(key)],
            ),
            Read::Kv(key) => Op::new(
                &kv_version,
                vec![
                    owned(tenant.as_str()),
                    owned(connector.as_str()),
                    owned(key),
                ],
            ),
        });
    }
    for (kind, key) in &needs {
        queries.push(Op::new(
            &record_lookups,
            vec![owned(tenant.as_str()), owned(kind), owned(key)],
        ));
    }
    let rows = pipeline::rows(tx, &queries).await?;
    let mut rows = rows.into_iter().skip(usize::from(locking));
    let mut conflict = None;
    for read in &effects.reads {
        let version = rows.next().flatten().map_or(0, |r| r.get::<_, i64>(0));
        if conflict.is_none() && version != read.version {
            conflict = Some(match &read.read {
                Read::Record(kind, key) => format!("record {kind}/{key}"),
                Read::Kv(key) => format!("kv key {key}"),
            });
        }
    }
    let stored = needs
        .into_iter()
        .zip(rows)
        .map(|(place, row)| {
            let lookups = row.map(|r| {
                r.get::<_, Option<&str>>(0)
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default()
            });
            (place, lookups)
        })
        .collect();
    Ok(Checked { conflict, stored })
}

/// The statements the writes use, prepared once per connection (a cache hit after that).
struct Statements {
    upsert: Statement,
    upsert_with_lookups: Statement,
    set_lookups: Statement,
    delete: Statement,
    tombstone: Statement,
    lookup_gone: Statement,
    lookup_added: Statement,
    kv_put: Statement,
    kv_delete: Statement,
    event: Statement,
    job: Statement,
}

impl Statements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Statements> {
        Ok(Statements {
            upsert: tx.prepare_cached("INSERT INTO records (tenant, kind, key, data, updated_at, version, seq, job_id)
                 VALUES ($1, $2, $3, $4, $5, $6, nextval('record_seq'), $7)
                 ON CONFLICT (tenant, kind, key) DO UPDATE
                 SET data=excluded.data, updated_at=excluded.updated_at, version=excluded.version,
                     seq=excluded.seq, job_id=excluded.job_id, tx=pg_current_xact_id()").await?,
            upsert_with_lookups: tx.prepare_cached("INSERT INTO records (tenant, kind, key, data, updated_at, version, lookups, seq, job_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('record_seq'), $8)
                 ON CONFLICT (tenant, kind, key) DO UPDATE
                 SET data=excluded.data, updated_at=excluded.updated_at, version=excluded.version,
                     lookups=excluded.lookups, seq=excluded.seq, job_id=excluded.job_id,
                     tx=pg_current_xact_id()").await?,
            set_lookups: tx
                .prepare_cached("UPDATE records SET lookups=$4 WHERE tenant=$1 AND kind=$2 AND key=$3")
                .await?,
            delete: tx
                .prepare_cached("DELETE FROM records WHERE tenant=$1 AND kind=$2 AND key=$3")
                .await?,
            tombstone: tx
                .prepare_cached(
                    "INSERT INTO record_tombstones (tenant, kind, key, seq, deleted_at)
                     VALUES ($1, $2, $3, nextval('record_seq'), $4)
                     ON CONFLICT (tenant, kind, key) DO UPDATE
                     SET seq=excluded.seq, deleted_at=excluded.deleted_at, tx=pg_current_xact_id()",
                )
                .await?,
            lookup_gone: tx
                .prepare_cached(
                    "DELETE FROM record_lookups WHERE tenant=$1 AND kind=$2 AND lookup=$3 AND key=$4",
                )
                .await?,
            lookup_added: tx
                .prepare_cached(
                    "INSERT INTO record_lookups (tenant, kind, lookup, key) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .await?,
            kv_put: tx.prepare_cached("INSERT INTO kv (tenant, connector, key, value, version, marker_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, connector, key) DO UPDATE
                 SET value=excluded.value, version=excluded.version, marker_at=excluded.marker_at").await?,
            kv_delete: tx
                .prepare_cached("DELETE FROM kv WHERE tenant=$1 AND connector=$2 AND key=$3")
                .await?,
            event: tx
                .prepare_cached(
                    "INSERT INTO events (tenant, connector, name, payload, job_id, created_at, key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .await?,
            job: tx.prepare_cached(insert_job_sql()).await?,
        })
    }
}

/// The job whose end commits the effects: its id, its delivery and its idempotency key.
pub(super) type Parent<'a> = Option<(i64, Option<i64>, &'a str)>;

/// The statements that write `effects` (the caller holds [`check`]'s locks), in order.
pub(super) async fn writes(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    connector: &ConnectorId,
    job: Parent<'_>,
    effects: &Effects,
    checked: Checked,
) -> Result<Vec<Op>> {
    let s = Statements::prepare(tx).await?;
    let now = now_ms();
    let mut ops = Vec::new();
    write_records(
        &s,
        &mut ops,
        tenant,
        effects,
        (job.map(|j| j.0), now),
        checked,
    );
    for KvWrite { key, value, marker } in &effects.kv {
        let (t, c, k) = (
            owned(tenant.as_str()),
            owned(connector.as_str()),
            owned(&text(key)),
        );
        ops.push(match value {
            Some(v) => Op::new(
                &s.kv_put,
                vec![
                    t,
                    c,
                    k,
                    Box::new(v.clone()),
                    Box::new(new_version()),
                    Box::new(marker.then_some(now)),
                ],
            ),
            None => Op::new(&s.kv_delete, vec![t, c, k]),
        });
    }
    for (i, Published { name, payload }) in effects.events.iter().enumerate() {
        let key = job.map(|(_, _, k)| text(&format!("{k}:event:{i}:{name}")).into_owned());
        ops.push(Op::new(
            &s.event,
            vec![
                owned(tenant.as_str()),
                owned(connector.as_str()),
                owned(name),
                owned(payload),
                Box::new(job.map(|j| j.0)),
                Box::new(now),
                Box::new(key),
            ],
        ));
    }
    let parent = job
        .map(|(j, _, _)| format!("job:{j}"))
        .unwrap_or_else(|| format!("sync:{now}:{}", rand_suffix()));
    for (i, new_job) in effects.jobs.iter().enumerate() {
        let mut new_job = new_job.clone();
        if new_job.idempotency_key.is_none() {
            // Derived from the parent job, so a re-run of the parent does not queue twice.
            new_job.idempotency_key = Some(format!("{parent}:{i}"));
        }
        ops.push(insert_job_op(&s.job, &new_job, job.and_then(|j| j.1)));
    }
    Ok(ops)
}

fn lookups_column(lookups: &[String]) -> Option<String> {
    (!lookups.is_empty()).then(|| serde_json::to_string(lookups).unwrap_or_default())
}

fn index_lookups(
    s: &Statements,
    ops: &mut Vec<Op>,
    tenant: &TenantId,
    (kind, key): (&str, &str),
    old: &[String],
    new: &[String],
) {
    for gone in old.iter().filter(|l| !new.contains(l)) {
        let params = vec![owned(tenant.as_str()), owned(kind), owned(gone), owned(key)];
        ops.push(Op::new(&s.lookup_gone, params));
    }
    for added in new.iter().filter(|l| !old.contains(l)) {
        let params = vec![
            owned(tenant.as_str()),
            owned(kind),
            owned(added),
            owned(key),
        ];
        ops.push(Op::new(&s.lookup_added, params));
    }
}

/// Records and lookups, as the SQLite store writes them (see its `records::write`). What is
/// stored is followed through the writes (`checked.stored`): a record deleted and written
/// again in one invocation starts from no lookups.
fn write_records(
    s: &Statements,
    ops: &mut Vec<Op>,
    tenant: &TenantId,
    effects: &Effects,
    (job, now): (Option<i64>, i64),
    mut checked: Checked,
) {
    let (writes, lookups_set): (&[RecordWrite], &[LookupsSet]) =
        (&effects.records, &effects.lookups);
    let lookups = super::super::last_lookups(lookups_set);
    let wanted = |kind: &str, key: &str| {
        lookups
            .iter()
            .find(|(k, id, _)| *k == kind && *id == key)
            .map(|(_, _, l)| l.clone())
    };
    let place = |kind: &str, key: &str| (kind.to_owned(), key.to_owned());
    for (i, RecordWrite { kind, key, data }) in writes.iter().enumerate() {
        let last = !writes[i + 1..]
            .iter()
            .any(|w| w.kind == *kind && w.key == *key);
        let (t, k, id) = (owned(tenant.as_str()), owned(kind), owned(key));
        match data {
            Some(data) => match wanted(kind, key).filter(|_| last) {
                None => {
                    let stored = checked.stored.entry(place(kind, key)).or_insert(None);
                    if stored.is_none() {
                        *stored = Some(Vec::new()); // a new row: no lookups yet
                    }
                    let params = vec![
                        t,
                        k,
                        id,
                        owned(data),
                        Box::new(now),
                        Box::new(new_version()),
                        Box::new(job),
                    ];
                    ops.push(Op::new(&s.upsert, params));
                }
                Some(new) => {
                    let old = checked
                        .stored
                        .insert(place(kind, key), Some(new.clone()))
                        .flatten()
                        .unwrap_or_default();
                    index_lookups(s, ops, tenant, (kind, key), &old, &new);
                    let params = vec![
                        t,
                        k,
                        id,
                        owned(data),
                        Box::new(now),
                        Box::new(new_version()),
                        Box::new(lookups_column(&new)),
                        Box::new(job),
                    ];
                    ops.push(Op::new(&s.upsert_with_lookups, params));
                }
            },
            None => {
                let Some(old) = checked.stored.insert(place(kind, key), None).flatten() else {
                    continue; // nothing to delete: no change
                };
                index_lookups(s, ops, tenant, (kind, key), &old, &[]);
                ops.push(Op::new(&s.delete, vec![t, k, id]));
                let params = vec![
                    owned(tenant.as_str()),
                    owned(kind),
                    owned(key),
                    Box::new(now),
                ];
                ops.push(Op::new(&s.tombstone, params));
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
        match checked.stored.get(&place(kind, key)).cloned().flatten() {
            Some(old) if old != *new => {
                index_lookups(s, ops, tenant, (kind, key), &old, new);
                let params = vec![
                    owned(tenant.as_str()),
                    owned(kind),
                    owned(key),
                    Box::new(lookups_column(new)),
                ];
                ops.push(Op::new(&s.set_lookups, params));
            }
            _ => {}
        }
    }
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
