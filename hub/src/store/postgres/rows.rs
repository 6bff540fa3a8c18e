//! Effects as multi-row statements: the rows that many job ends write, gathered into columns
//! ([`Rows`]) and sent as one statement per kind of row (`INSERT ... SELECT FROM unnest(...)`,
//! `UPDATE ... FROM unnest(...)`, `DELETE ... USING unnest(...)`), whatever the number of jobs.
//!
//! A statement may touch each row once (`ON CONFLICT DO UPDATE` refuses a second), so the rows
//! go in runs ([`Plan::runs`]) that write each record and kv key once: the jobs of a batch touch
//! disjoint keys (see [`ends`](super::ends)), and a job that writes one record twice has its
//! second write in a second run, sent after the first.

use deadpool_postgres::Transaction;

use super::super::{Result, encode_task, new_version};
use super::effects::{Change, Plan, Write};
use super::pipeline::{Op, Param};
use super::text;
use crate::clock::now_ms;

/// Record columns: tenant, kind, key.
#[derive(Default)]
struct Places {
    tenant: Vec<String>,
    kind: Vec<String>,
    key: Vec<String>,
}

impl Places {
    fn push(&mut self, tenant: &str, kind: &str, key: &str) {
        self.tenant.push(tenant.to_owned());
        self.kind.push(kind.to_owned());
        self.key.push(key.to_owned());
    }

    fn params(&self) -> Vec<Param> {
        vec![
            Box::new(self.tenant.clone()),
            Box::new(self.kind.clone()),
            Box::new(self.key.clone()),
        ]
    }

    fn is_empty(&self) -> bool {
        self.key.is_empty()
    }
}

/// Records written: their places, data, versions, jobs and (for `with_lookups`) lookups.
#[derive(Default)]
struct Puts {
    at: Places,
    data: Vec<String>,
    version: Vec<i64>,
    job: Vec<Option<i64>>,
    lookups: Vec<Option<String>>,
}

impl Puts {
    fn params(&self, now: i64, with_lookups: bool) -> Vec<Param> {
        let mut params = self.at.params();
        params.push(Box::new(self.data.clone()));
        params.push(Box::new(self.version.clone()));
        params.push(Box::new(self.job.clone()));
        params.push(Box::new(now));
        if with_lookups {
            params.push(Box::new(self.lookups.clone()));
        }
        params
    }
}

/// The rows of one run of many jobs' writes, by statement.
#[derive(Default)]
pub(super) struct Rows {
    /// Lookup index rows removed / added: tenant, kind, key, and the lookup.
    gone: (Places, Vec<String>),
    added: (Places, Vec<String>),
    deleted: Places,
    put: Puts,
    put_with_lookups: Puts,
    relooked: (Places, Vec<Option<String>>),
    /// kv: tenant, connector (as `kind`), key; value, marker.
    kv_put: (Places, Vec<Vec<u8>>, Vec<Option<i64>>),
    kv_deleted: Places,
    events: Events,
    jobs: Jobs,
}

/// Events published: tenant, connector, name, payload, job, key.
#[derive(Default)]
struct Events(
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<Option<i64>>,
    Vec<Option<String>>,
);

/// Jobs queued: tenant, connector, task, delivery, idempotency key, due.
#[derive(Default)]
struct Jobs(
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<Option<i64>>,
    Vec<String>,
    Vec<i64>,
);

impl Rows {
    /// Adds one run of `plan`'s writes.
    pub(super) fn add(&mut self, plan: &Plan, run: &[Write], now: i64) {
        let t = plan.tenant.as_str();
        for w in run {
            match w {
                Write::Record {
                    kind,
                    key,
                    change,
                    gone,
                    added,
                } => {
                    for l in gone {
                        self.gone.0.push(t, kind, key);
                        self.gone.1.push(l.clone());
                    }
                    for l in added {
                        self.added.0.push(t, kind, key);
                        self.added.1.push(l.clone());
                    }
                    match change {
                        Change::Put { data, lookups } => {
                            let puts = match lookups {
                                None => &mut self.put,
                                Some(_) => &mut self.put_with_lookups,
                            };
                            puts.at.push(t, kind, key);
                            puts.data.push(data.clone());
                            puts.version.push(new_version());
                            puts.job.push(plan.job);
                            puts.lookups.push(lookups.clone().flatten());
                        }
                        Change::Delete => self.deleted.push(t, kind, key),
                        Change::Lookups(column) => {
                            self.relooked.0.push(t, kind, key);
                            self.relooked.1.push(column.clone());
                        }
                    }
                }
                Write::Kv { key, value, marker } => match value {
                    Some(value) => {
                        self.kv_put.0.push(t, &plan.connector, key);
                        self.kv_put.1.push(value.clone());
                        self.kv_put.2.push(marker.then_some(now));
                    }
                    None => self.kv_deleted.push(t, &plan.connector, key),
                },
                Write::Event { name, payload, key } => {
                    let e = &mut self.events;
                    e.0.push(t.to_owned());
                    e.1.push(plan.connector.clone());
                    e.2.push(name.clone());
                    e.3.push(payload.clone());
                    e.4.push(plan.job);
                    e.5.push(key.clone());
                }
                Write::Job(job) => {
                    let j = &mut self.jobs;
                    j.0.push(job.tenant.to_string());
                    j.1.push(job.connector.to_string());
                    j.2.push(text(&encode_task(&job.task, job.trace.as_deref())).into_owned());
                    j.3.push(job.delivery(plan.delivery));
                    j.4.push(text(&job.stored_key()).into_owned());
                    j.5.push(job.run_at_ms);
                }
            }
        }
    }

    /// The statements, one per kind of row present, in an order where none undoes another.
    pub(super) async fn ops(&self, tx: &Transaction<'_>, now: i64) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        let mut push = async |sql: &str, params: Vec<Param>| -> Result<()> {
            ops.push(Op::new(&tx.prepare_cached(sql).await?, params));
            Ok(())
        };
        if !self.gone.0.is_empty() {
            let mut params = self.gone.0.params();
            params.push(Box::new(self.gone.1.clone()));
            push(
                "DELETE FROM record_lookups l
                 USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(tenant, kind, key, lookup)
                 WHERE l.tenant = x.tenant AND l.kind = x.kind AND l.lookup = x.lookup AND l.key = x.key",
                params,
            )
            .await?;
        }
        if !self.deleted.is_empty() {
            push(
                "DELETE FROM records r USING unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, kind, key)
                 WHERE r.tenant = x.tenant AND r.kind = x.kind AND r.key = x.key",
                self.deleted.params(),
            )
            .await?;
            let mut params = self.deleted.params();
            params.push(Box::new(now));
            push(
                "INSERT INTO record_tombstones (tenant, kind, key, seq, deleted_at)
                 SELECT x.tenant, x.kind, x.key, nextval('record_seq'), $4
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, kind, key)
                 ON CONFLICT (tenant, kind, key) DO UPDATE
                 SET seq = excluded.seq, deleted_at = excluded.deleted_at, tx = pg_current_xact_id()",
                params,
            )
            .await?;
        }
        if !self.put.at.is_empty() {
            push(
                "INSERT INTO records (tenant, kind, key, data, updated_at, version, seq, job_id)
                 SELECT x.tenant, x.kind, x.key, x.data, $7, x.version, nextval('record_seq'), x.job
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
                      AS x(tenant, kind, key, data, version, job)
                 ON CONFLICT (tenant, kind, key) DO UPDATE
                 SET data = excluded.data, updated_at = excluded.updated_at, version = excluded.version,
                     seq = excluded.seq, job_id = excluded.job_id, tx = pg_current_xact_id()",
                self.put.params(now, false),
            )
            .await?;
        }
        if !self.put_with_lookups.at.is_empty() {
            push(
                "INSERT INTO records (tenant, kind, key, data, updated_at, version, lookups, seq, job_id)
                 SELECT x.tenant, x.kind, x.key, x.data, $7, x.version, x.lookups, nextval('record_seq'), x.job
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $8::text[])
                      AS x(tenant, kind, key, data, version, job, lookups)
                 ON CONFLICT (tenant, kind, key) DO UPDATE
                 SET data = excluded.data, updated_at = excluded.updated_at, version = excluded.version,
                     lookups = excluded.lookups, seq = excluded.seq, job_id = excluded.job_id,
                     tx = pg_current_xact_id()",
                self.put_with_lookups.params(now, true),
            )
            .await?;
        }
        if !self.relooked.0.is_empty() {
            let mut params = self.relooked.0.params();
            params.push(Box::new(self.relooked.1.clone()));
            push(
                "UPDATE records r SET lookups = x.lookups
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(tenant, kind, key, lookups)
                 WHERE r.tenant = x.tenant AND r.kind = x.kind AND r.key = x.key",
                params,
            )
            .await?;
        }
        if !self.added.0.is_empty() {
            let mut params = self.added.0.params();
            params.push(Box::new(self.added.1.clone()));
            push(
                "INSERT INTO record_lookups (tenant, kind, lookup, key)
                 SELECT x.tenant, x.kind, x.lookup, x.key
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(tenant, kind, key, lookup)
                 ON CONFLICT DO NOTHING",
                params,
            )
            .await?;
        }
        if !self.kv_put.0.is_empty() {
            let mut params = self.kv_put.0.params();
            params.push(Box::new(self.kv_put.1.clone()));
            params.push(Box::new(self.kv_put.2.clone()));
            let versions: Vec<i64> = self.kv_put.1.iter().map(|_| new_version()).collect();
            params.push(Box::new(versions));
            push(
                "INSERT INTO kv (tenant, connector, key, value, version, marker_at)
                 SELECT x.tenant, x.connector, x.key, x.value, x.version, x.marker
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[])
                      AS x(tenant, connector, key, value, marker, version)
                 ON CONFLICT (tenant, connector, key) DO UPDATE
                 SET value = excluded.value, version = excluded.version, marker_at = excluded.marker_at",
                params,
            )
            .await?;
        }
        if !self.kv_deleted.is_empty() {
            push(
                "DELETE FROM kv k USING unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, connector, key)
                 WHERE k.tenant = x.tenant AND k.connector = x.connector AND k.key = x.key",
                self.kv_deleted.params(),
            )
            .await?;
        }
        if !self.events.0.is_empty() {
            let e = &self.events;
            push(
                "INSERT INTO events (tenant, connector, name, payload, job_id, created_at, key)
                 SELECT x.tenant, x.connector, x.name, x.payload, x.job, $7, x.key
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
                      AS x(tenant, connector, name, payload, job, key)
                 ON CONFLICT DO NOTHING",
                vec![
                    Box::new(e.0.clone()),
                    Box::new(e.1.clone()),
                    Box::new(e.2.clone()),
                    Box::new(e.3.clone()),
                    Box::new(e.4.clone()),
                    Box::new(e.5.clone()),
                    Box::new(now),
                ],
            )
            .await?;
        }
        if !self.jobs.0.is_empty() {
            let j = &self.jobs;
            push(
                "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
                 SELECT x.tenant, x.connector, x.task, x.delivery, x.key, x.run_at, $7
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])
                      AS x(tenant, connector, task, delivery, key, run_at)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                vec![
                    Box::new(j.0.clone()),
                    Box::new(j.1.clone()),
                    Box::new(j.2.clone()),
                    Box::new(j.3.clone()),
                    Box::new(j.4.clone()),
                    Box::new(j.5.clone()),
                    Box::new(now_ms()),
                ],
            )
            .await?;
        }
        Ok(ops)
    }
}

/// Every plan's writes as statements: each plan's first runs together, then their second
/// runs, and so on.
pub(super) async fn statements(tx: &Transaction<'_>, plans: &[Plan], now: i64) -> Result<Vec<Op>> {
    let mut runs: Vec<Rows> = Vec::new();
    for plan in plans {
        for (i, run) in plan.runs().into_iter().enumerate() {
            if runs.len() <= i {
                runs.push(Rows::default());
            }
            runs[i].add(plan, run, now);
        }
    }
    let mut ops = Vec::new();
    for rows in &runs {
        ops.extend(rows.ops(tx, now).await?);
    }
    Ok(ops)
}
