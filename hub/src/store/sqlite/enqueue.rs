//! A job's insert on SQLite, unless its idempotency key exists: what deliveries, effects,
//! schedules, replays and the writer all queue work with.

use rusqlite::{Connection, params};

use super::{NewJob, Task, encode_task, rand_suffix};
use crate::clock::now_ms;

pub(super) fn insert_job(
    c: &Connection,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    let key = match &job.idempotency_key {
        Some(k) => k.clone(),
        None => format!("anon:{}:{}", now_ms(), rand_suffix()),
    };
    let delivery_id = delivery_id.or(match job.task {
        Task::Delivery { delivery_id } => Some(delivery_id),
        _ => None,
    });
    let n = c
        .prepare_cached(
            "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            job.tenant,
            job.connector,
            encode_task(&job.task),
            delivery_id,
            key,
            job.run_at_ms,
            now_ms()
        ])?;
    Ok((n > 0).then(|| c.last_insert_rowid()))
}
