//! Per-day figures of a tenant's calls, emails and text messages, kept up to date by the writer
//! in the transaction of each record write (`call_days`, `email_days`, `message_days`), so the
//! analytics read a row per day instead of every record. A record's old contribution is taken
//! out and its new one put in: a call whose analysis arrives later moves from "not analyzed" to
//! "analyzed" on its day, a deleted record leaves its day.
//!
//! What counts, per kind (the fields the connectors store):
//! - `call`: its day is `start_timestamp` (or, without one, when the record was written);
//!   `direction`, `call_status` (`ended` and not `call_analysis.in_voicemail`: answered),
//!   `duration_ms`, and `call_analysis` (`call_successful`, `user_sentiment`).
//! - `email`: its day is the date of `created_at`; `status` delivered, bounced or complained.
//! - `message`: its day is `at_ms`; `status` delivered, or failed and undelivered.

use crate::id::TenantId;
use rusqlite::{Connection, OptionalExtension, params};

/// The kinds with per-day figures.
pub(super) fn counted(kind: &str) -> bool {
    matches!(kind, "call" | "email" | "message")
}

pub(super) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS call_days (
    tenant TEXT NOT NULL, day TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0, inbound INTEGER NOT NULL DEFAULT 0,
    outbound INTEGER NOT NULL DEFAULT 0, answered INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0, timed INTEGER NOT NULL DEFAULT 0,
    analyzed INTEGER NOT NULL DEFAULT 0, successful INTEGER NOT NULL DEFAULT 0,
    positive INTEGER NOT NULL DEFAULT 0, neutral INTEGER NOT NULL DEFAULT 0,
    negative INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS email_days (
    tenant TEXT NOT NULL, day TEXT NOT NULL,
    emails INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
    bounced INTEGER NOT NULL DEFAULT 0, complained INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_days (
    tenant TEXT NOT NULL, day TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;
";

/// `?1` tenant, `?2` the record's JSON, `?3` +1 or -1, `?4` when it was written (ms).
const CALL: &str = "
INSERT INTO call_days (tenant, day, calls, inbound, outbound, answered, duration_ms, timed,
                       analyzed, successful, positive, neutral, negative)
SELECT ?1, day, ?3, ?3 * (dir IS 'inbound'), ?3 * (dir IS 'outbound'),
       ?3 * (status IS 'ended' AND coalesce(voicemail, 0) = 0),
       ?3 * coalesce(duration, 0), ?3 * (duration IS NOT NULL),
       ?3 * (analysis IS NOT NULL), ?3 * (successful IS 1),
       ?3 * (sentiment IS 'Positive'), ?3 * (sentiment IS 'Neutral'), ?3 * (sentiment IS 'Negative')
FROM (SELECT date(coalesce(json_extract(?2, '$.start_timestamp'), ?4) / 1000, 'unixepoch') AS day,
             json_extract(?2, '$.direction') AS dir,
             json_extract(?2, '$.call_status') AS status,
             CASE WHEN json_type(?2, '$.duration_ms') IN ('integer', 'real')
                  THEN json_extract(?2, '$.duration_ms') END AS duration,
             json_extract(?2, '$.call_analysis') AS analysis,
             json_extract(?2, '$.call_analysis.in_voicemail') AS voicemail,
             json_extract(?2, '$.call_analysis.call_successful') AS successful,
             json_extract(?2, '$.call_analysis.user_sentiment') AS sentiment)
WHERE day IS NOT NULL
ON CONFLICT (tenant, day) DO UPDATE SET
    calls = calls + excluded.calls, inbound = inbound + excluded.inbound,
    outbound = outbound + excluded.outbound, answered = answered + excluded.answered,
    duration_ms = duration_ms + excluded.duration_ms, timed = timed + excluded.timed,
    analyzed = analyzed + excluded.analyzed, successful = successful + excluded.successful,
    positive = positive + excluded.positive, neutral = neutral + excluded.neutral,
    negative = negative + excluded.negative";

const EMAIL: &str = "
INSERT INTO email_days (tenant, day, emails, delivered, bounced, complained)
SELECT ?1, day, ?3, ?3 * (status IS 'delivered'), ?3 * (status IS 'bounced'), ?3 * (status IS 'complained')
FROM (SELECT substr(json_extract(?2, '$.created_at'), 1, 10) AS day,
             json_extract(?2, '$.status') AS status, ?4 AS unused)
WHERE day IS NOT NULL
ON CONFLICT (tenant, day) DO UPDATE SET
    emails = emails + excluded.emails, delivered = delivered + excluded.delivered,
    bounced = bounced + excluded.bounced, complained = complained + excluded.complained";

const MESSAGE: &str = "
INSERT INTO message_days (tenant, day, messages, delivered, failed)
SELECT ?1, day, ?3, ?3 * (status IS 'delivered'), ?3 * (status IN ('failed', 'undelivered'))
FROM (SELECT date(json_extract(?2, '$.at_ms') / 1000, 'unixepoch') AS day,
             json_extract(?2, '$.status') AS status, ?4 AS unused)
WHERE day IS NOT NULL
ON CONFLICT (tenant, day) DO UPDATE SET
    messages = messages + excluded.messages, delivered = delivered + excluded.delivered,
    failed = failed + excluded.failed";

fn add(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    data: &str,
    sign: i64,
    at_ms: i64,
) -> rusqlite::Result<()> {
    let sql = match kind {
        "call" => CALL,
        "email" => EMAIL,
        "message" => MESSAGE,
        _ => return Ok(()),
    };
    c.prepare_cached(sql)?
        .execute(params![tenant, data, sign, at_ms])?;
    Ok(())
}

/// Takes the stored record's contribution out of its day, before it is replaced or deleted.
pub(super) fn take_out(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    key: &str,
) -> rusqlite::Result<()> {
    let old: Option<(String, i64)> = c
        .prepare_cached(
            "SELECT data, updated_at FROM records WHERE tenant=?1 AND kind=?2 AND key=?3",
        )?
        .query_row(params![tenant, kind, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match old {
        Some((data, at)) => add(c, tenant, kind, &data, -1, at),
        None => Ok(()),
    }
}

/// Puts a record just written into its day.
pub(super) fn put_in(
    c: &Connection,
    tenant: &TenantId,
    kind: &str,
    data: &str,
    at_ms: i64,
) -> rusqlite::Result<()> {
    add(c, tenant, kind, data, 1, at_ms)
}

/// Fills the tables from the records of a database made before them.
pub(super) fn backfill(c: &Connection) -> rusqlite::Result<()> {
    let mut stmt = c.prepare(
        "SELECT tenant, kind, data, updated_at FROM records WHERE kind IN ('call', 'email', 'message')",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, TenantId>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (tenant, kind, data, at) = row?;
        add(c, &tenant, &kind, &data, 1, at)?;
    }
    Ok(())
}
