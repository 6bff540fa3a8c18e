//! A job's insert on PostgreSQL, unless its idempotency key exists: as a statement to send with
//! others (the effects of a job's end), or on its own.

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::super::{NewJob, Result, encode_task};
use super::pipeline::Op;
use super::text;
use crate::clock::now_ms;

/// Inserts a job unless its idempotency key exists; `RETURNING id` (no row: it existed).
pub(super) fn insert_job_sql() -> &'static str {
    "INSERT INTO jobs (tenant, connector, task, delivery_id, idempotency_key, run_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
}

/// The insert of `job` (see [`insert_job_sql`]), as a statement to send with others.
pub(super) fn insert_job_op(statement: &Statement, job: &NewJob, delivery_id: Option<i64>) -> Op {
    let key = job.stored_key();
    let delivery_id = job.delivery(delivery_id);
    Op::new(
        statement,
        vec![
            Box::new(job.tenant.to_string()),
            Box::new(job.connector.to_string()),
            Box::new(text(&encode_task(&job.task, job.trace.as_deref())).into_owned()),
            Box::new(delivery_id),
            Box::new(text(&key).into_owned()),
            Box::new(job.run_at_ms),
            Box::new(now_ms()),
        ],
    )
}

/// Inserts a job unless its idempotency key exists; its id (`None`: it existed).
pub(super) async fn insert_job(
    c: &impl GenericClient,
    job: &NewJob,
    delivery_id: Option<i64>,
) -> Result<Option<i64>> {
    let stmt = c.prepare_cached(insert_job_sql()).await?;
    let op = insert_job_op(&stmt, job, delivery_id);
    let params: Vec<&(dyn ToSql + Sync)> = op.params.iter().map(|p| p.as_ref() as _).collect();
    let row = c.query_opt(&op.statement, &params).await?;
    Ok(row.map(|r| r.get(0)))
}
