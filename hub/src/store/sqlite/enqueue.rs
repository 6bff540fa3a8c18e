//! A job's insert on SQLite, unless its idempotency key exists: what deliveries, effects,
//! schedules, replays and the writer all queue work with.

use rusqlite::{Connection, params};

use super::{NewJob, encode_task};
use crate::clock::now_ms;

/// Inserts `job` (under `delivery_id`, its parent's delivery, when it has one) unless its
/// idempotency key exists; its id (`None`: it existed).
pub(super) fn insert_job(
    c: &Connection,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> rusqlite::Result<Option<i64>> {
    let key = job.stored_key();
    let delivery_id = job.delivery(delivery_id);
    let n = c
        .prepare_cached(
            "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            job.tenant,
            job.connector,
            encode_task(&job.task, job.trace.as_deref()),
            delivery_id,
            key,
            job.run_at_ms,
            now_ms()
        ])?;
    Ok((n > 0).then(|| c.last_insert_rowid()))
}
