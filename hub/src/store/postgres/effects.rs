//! A job's effects on PostgreSQL, in the transaction that ends the job (with the others of its
//! batch, see [`ends`](super::ends)): what they lock and check ([`Checks`]: advisory locks on
//! what they read and write, the versions of what they read, the lookups stored for the records
//! they write, for a whole batch in three statements), and what they write ([`plan`]: rows, which
//! [`rows`](super::rows) turns into multi-row statements).

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use sha2::Digest as _;
use tokio_postgres::Row;

use super::super::{Effects, KvWrite, NewJob, Published, Read, RecordWrite};
use super::pipeline::Op;
use super::text;
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

/// Every record and kv key `effects` reads or writes, sorted and distinct. Locked in one global
/// order (no deadlock between two transactions); a batch holds no two job ends that share one.
pub(super) fn lock_keys(tenant: &TenantId, connector: &ConnectorId, effects: &Effects) -> Vec<i64> {
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

/// What [`Checks`] found for one job's effects, under the locks it took.
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

/// Three columns of a probe: (tenant, kind or connector, key), each value asked once.
#[derive(Default)]
struct Probes {
    columns: [Vec<String>; 3],
    index: HashMap<[String; 3], usize>,
}

impl Probes {
    fn add(&mut self, probe: [&str; 3]) -> usize {
        let probe = probe.map(str::to_owned);
        if let Some(i) = self.index.get(&probe) {
            return *i;
        }
        let i = self.columns[0].len();
        for (column, value) in self.columns.iter_mut().zip(probe.iter()) {
            column.push(value.clone());
        }
        self.index.insert(probe, i);
        i
    }

    fn is_empty(&self) -> bool {
        self.columns[0].is_empty()
    }

    fn op(&self, statement: &tokio_postgres::Statement) -> Op {
        let [a, b, c] = self.columns.clone();
        Op::new(statement, vec![Box::new(a), Box::new(b), Box::new(c)])
    }
}

/// One job's reads and needed lookups, as indexes into the batch's probes.
struct Asked {
    /// (record probe or kv probe, index, what it is in words, the version the invocation saw).
    reads: Vec<(bool, usize, String, i64)>,
    needs: Vec<((String, String), usize)>,
}

/// The checks of a batch's effects: one statement takes every advisory lock (sorted), one reads
/// every record's version and lookups, one every kv key's version; sent in one flight.
pub(super) struct Checks {
    keys: Vec<i64>,
    records: Probes,
    kv: Probes,
    asked: Vec<Asked>,
}

impl Checks {
    /// The checks of each `(tenant, connector, effects)`, in order.
    pub(super) fn new(items: &[(&TenantId, &ConnectorId, &Effects)]) -> Checks {
        let (mut records, mut kv) = (Probes::default(), Probes::default());
        let mut keys = Vec::new();
        let mut asked = Vec::with_capacity(items.len());
        for (tenant, connector, effects) in items {
            keys.extend(lock_keys(tenant, connector, effects));
            let t = tenant.as_str();
            let reads = effects
                .reads
                .iter()
                .map(|r| match &r.read {
                    Read::Record(kind, key) => (
                        true,
                        records.add([t, kind, key]),
                        format!("record {kind}/{key}"),
                        r.version,
                    ),
                    Read::Kv(key) => (
                        false,
                        kv.add([t, connector.as_str(), key]),
                        format!("kv key {key}"),
                        r.version,
                    ),
                })
                .collect();
            let needs = needs_lookups(effects)
                .into_iter()
                .map(|(kind, key)| {
                    let i = records.add([t, &kind, &key]);
                    ((kind, key), i)
                })
                .collect();
            asked.push(Asked { reads, needs });
        }
        keys.sort_unstable();
        keys.dedup();
        Checks {
            keys,
            records,
            kv,
            asked,
        }
    }

    /// The statements, in the order [`read`](Checks::read) takes their rows.
    pub(super) async fn ops(&self, tx: &Transaction<'_>) -> super::super::Result<Vec<Op>> {
        let mut ops = Vec::new();
        if !self.keys.is_empty() {
            let lock = tx
                .prepare_cached(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k",
                )
                .await?;
            ops.push(Op::new(&lock, vec![Box::new(self.keys.clone())]));
        }
        if !self.records.is_empty() {
            let versions = tx
                .prepare_cached(
                    "SELECT r.version, r.lookups
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(tenant, kind, key, i)
                     LEFT JOIN records r ON r.tenant = q.tenant AND r.kind = q.kind AND r.key = q.key
                     ORDER BY q.i",
                )
                .await?;
            ops.push(self.records.op(&versions));
        }
        if !self.kv.is_empty() {
            let versions = tx
                .prepare_cached(
                    "SELECT k.version
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(tenant, connector, key, i)
                     LEFT JOIN kv k ON k.tenant = q.tenant AND k.connector = q.connector AND k.key = q.key
                     ORDER BY q.i",
                )
                .await?;
            ops.push(self.kv.op(&versions));
        }
        Ok(ops)
    }

    /// Each job's [`Checked`], from the rows of [`ops`](Checks::ops)' statements.
    pub(super) fn read(self, rows: Vec<Vec<Row>>) -> Vec<Checked> {
        let mut rows = rows.into_iter().skip(usize::from(!self.keys.is_empty()));
        let records = if self.records.is_empty() {
            Vec::new()
        } else {
            rows.next().unwrap_or_default()
        };
        let kv = if self.kv.is_empty() {
            Vec::new()
        } else {
            rows.next().unwrap_or_default()
        };
        let version = |row: Option<&Row>| row.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0);
        self.asked
            .into_iter()
            .map(|asked| {
                let conflict = asked
                    .reads
                    .into_iter()
                    .find(|(record, i, _, seen)| {
                        let stored = if *record { records.get(*i) } else { kv.get(*i) };
                        version(stored) != *seen
                    })
                    .map(|(_, _, what, _)| what);
                let stored = asked
                    .needs
                    .into_iter()
                    .map(|(place, i)| {
                        let row = records
                            .get(i)
                            .filter(|r| r.get::<_, Option<i64>>(0).is_some());
                        let lookups = row.map(|r| {
                            r.get::<_, Option<&str>>(1)
                                .and_then(|j| serde_json::from_str(j).ok())
                                .unwrap_or_default()
                        });
                        (place, lookups)
                    })
                    .collect();
                Checked { conflict, stored }
            })
            .collect()
    }
}

/// A record's change, with the rows of its lookup index that go and come.
pub(super) enum Change {
    /// Written; `Some(column)`: its lookups replaced too.
    Put {
        data: String,
        lookups: Option<Option<String>>,
    },
    /// Deleted (a tombstone for the change feed).
    Delete,
    /// Its lookups alone replaced.
    Lookups(Option<String>),
}

/// One row (or record with its lookups) that a job's effects write, in order.
pub(super) enum Write {
    Record {
        kind: String,
        key: String,
        change: Change,
        gone: Vec<String>,
        added: Vec<String>,
    },
    Kv {
        key: String,
        value: Option<Vec<u8>>,
        marker: bool,
    },
    Event {
        name: String,
        payload: String,
        key: Option<String>,
    },
    Job(NewJob),
}

/// What one job's (or one synchronous invocation's) effects write.
pub(super) struct Plan {
    pub(super) tenant: String,
    pub(super) connector: String,
    /// The job whose end commits them.
    pub(super) job: Option<i64>,
    /// That job's delivery, which its follow-up jobs belong to.
    pub(super) delivery: Option<i64>,
    pub(super) writes: Vec<Write>,
}

impl Plan {
    /// The writes in runs that touch each record and kv key at most once, in order: a run's
    /// rows can go in multi-row statements whatever their order within it.
    pub(super) fn runs(&self) -> Vec<&[Write]> {
        let mut runs = Vec::new();
        let mut seen: std::collections::HashSet<(bool, &str, &str)> = Default::default();
        let mut start = 0;
        for (i, w) in self.writes.iter().enumerate() {
            let place = match w {
                Write::Record { kind, key, .. } => Some((true, kind.as_str(), key.as_str())),
                Write::Kv { key, .. } => Some((false, "", key.as_str())),
                _ => None,
            };
            if let Some(place) = place
                && !seen.insert(place)
            {
                runs.push(&self.writes[start..i]);
                start = i;
                seen.clear();
                seen.insert(place);
            }
        }
        runs.push(&self.writes[start..]);
        runs
    }
}

/// The job whose end commits the effects: its id, its delivery and its idempotency key.
pub(super) type Parent<'a> = Option<(i64, Option<i64>, &'a str)>;

fn lookups_column(lookups: &[String]) -> Option<String> {
    (!lookups.is_empty()).then(|| serde_json::to_string(lookups).unwrap_or_default())
}

fn diff(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let gone = old.iter().filter(|l| !new.contains(l)).cloned().collect();
    let added = new.iter().filter(|l| !old.contains(l)).cloned().collect();
    (gone, added)
}

/// What `effects` write (the caller holds [`Checks`]' locks): records with their lookups, as the
/// SQLite store writes them (see its `records::write`), then kv, events and follow-up jobs.
/// What is stored is followed through the writes (`checked.stored`): a record deleted and
/// written again in one invocation starts from no lookups.
pub(super) fn plan(
    tenant: &TenantId,
    connector: &ConnectorId,
    job: Parent<'_>,
    effects: &Effects,
    mut checked: Checked,
    now: i64,
) -> Plan {
    let mut writes = Vec::new();
    let records: &[RecordWrite] = &effects.records;
    let lookups = super::super::last_lookups(&effects.lookups);
    let wanted = |kind: &str, key: &str| {
        lookups
            .iter()
            .find(|(k, id, _)| *k == kind && *id == key)
            .map(|(_, _, l)| l.clone())
    };
    let place = |kind: &str, key: &str| (kind.to_owned(), key.to_owned());
    let record = |kind: &str, key: &str, change, (gone, added)| Write::Record {
        kind: kind.to_owned(),
        key: key.to_owned(),
        change,
        gone,
        added,
    };
    for (i, RecordWrite { kind, key, data }) in records.iter().enumerate() {
        let last = !records[i + 1..]
            .iter()
            .any(|w| w.kind == *kind && w.key == *key);
        match data {
            Some(data) => match wanted(kind, key).filter(|_| last) {
                None => {
                    let stored = checked.stored.entry(place(kind, key)).or_insert(None);
                    if stored.is_none() {
                        *stored = Some(Vec::new()); // a new row: no lookups yet
                    }
                    let change = Change::Put {
                        data: data.clone(),
                        lookups: None,
                    };
                    writes.push(record(kind, key, change, Default::default()));
                }
                Some(new) => {
                    let old = checked
                        .stored
                        .insert(place(kind, key), Some(new.clone()))
                        .flatten()
                        .unwrap_or_default();
                    let change = Change::Put {
                        data: data.clone(),
                        lookups: Some(lookups_column(&new)),
                    };
                    writes.push(record(kind, key, change, diff(&old, &new)));
                }
            },
            None => {
                let Some(old) = checked.stored.insert(place(kind, key), None).flatten() else {
                    continue; // nothing to delete: no change
                };
                writes.push(record(kind, key, Change::Delete, diff(&old, &[])));
            }
        }
    }
    for (kind, key, new) in &lookups {
        if records
            .iter()
            .any(|w| w.kind == *kind && w.key == *key && w.data.is_some())
        {
            continue;
        }
        match checked.stored.get(&place(kind, key)).cloned().flatten() {
            Some(old) if old != *new => {
                let change = Change::Lookups(lookups_column(new));
                writes.push(record(kind, key, change, diff(&old, new)));
            }
            _ => {}
        }
    }
    for KvWrite { key, value, marker } in &effects.kv {
        writes.push(Write::Kv {
            key: text(key).into_owned(),
            value: value.clone(),
            marker: *marker,
        });
    }
    for (i, Published { name, payload }) in effects.events.iter().enumerate() {
        let key = job.map(|(_, _, k)| text(&format!("{k}:event:{i}:{name}")).into_owned());
        writes.push(Write::Event {
            name: name.clone(),
            payload: payload.clone(),
            key,
        });
    }
    let parent = job
        .map(|(j, _, _)| format!("job:{j}"))
        .unwrap_or_else(|| format!("sync:{now}:{}", super::super::rand_suffix()));
    for (i, new_job) in effects.jobs.iter().enumerate() {
        let mut new_job = new_job.clone();
        if new_job.idempotency_key.is_none() {
            // Derived from the parent job, so a re-run of the parent does not queue twice.
            new_job.idempotency_key = Some(format!("{parent}:{i}"));
        }
        writes.push(Write::Job(new_job));
    }
    Plan {
        tenant: tenant.to_string(),
        connector: connector.to_string(),
        job: job.map(|j| j.0),
        delivery: job.and_then(|j| j.1),
        writes,
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
