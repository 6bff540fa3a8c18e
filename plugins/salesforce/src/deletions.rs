//! A sync run's deletions, after its query: what Salesforce deleted since the last check, or,
//! when that cannot be known, a full re-list of ids compared with the index of held ones.
//!
//! - **Check**: `GET /sobjects/<T>/deleted/?start=<last check>&end=<now>`; each id answered is
//!   marked deleted (`salesforce.<kind>.deleted`), and the check moves to `latestDateCovered`.
//!   A type's first run only notes its start (nothing was held before it); a window is at least
//!   two minutes, reaching back before the last check when runs are close (Salesforce counts in
//!   whole minutes; a deletion read twice is applied once).
//! - **Re-list** when the last check is older than 29 days (Salesforce keeps 30),
//!   `earliestDateAvailable` is after it, or Salesforce answers `EXCEEDED_ID_LIMIT` (over
//!   600,000 ids) or `INVALID_REPLICATION_DATE`: `SELECT Id FROM <T>`, paged through its
//!   locator with continuations, marks each listed id in the index ([`crate::index`]) with the
//!   re-list's start; then every held id not marked since is deleted, at most 500 per
//!   invocation. The check then starts from the re-list's start: what was deleted while the
//!   re-list ran is found by the next check.

use plugin_sdk::time::{format_at, parse_ms};
use plugin_sdk::{Error, info, now_ms, warn};

use crate::api::{self, DeletedPage};
use crate::index::BUCKETS;
use crate::limits::SfError;
use crate::pass::Pass;
use crate::record::{DeletedAt, id18};
use crate::sync::{SYNC, Step};

/// A last check older than this re-lists.
pub const RELIST_AFTER_MS: i64 = 29 * 86_400_000;
/// The shortest check window: a shorter one starts earlier.
pub const MIN_WINDOW_MS: i64 = 2 * 60_000;
/// Deletions the diff makes per invocation.
pub const DELETES_PER_RUN: usize = 500;

/// Error codes of `/deleted/` that only a re-list answers.
pub const RELIST_CODES: [&str; 2] = ["EXCEEDED_ID_LIMIT", "INVALID_REPLICATION_DATE"];

fn relist_now(pass: &Pass<'_>, why: &str) -> Option<Step> {
    info!(
        "{SYNC}: {}: {why}; listing every id to find deletions",
        pass.sobject
    );
    Some(Step::Relist {
        started_ms: now_ms() as i64,
        next: None,
    })
}

/// The deletions check: `None` when the run is over, else the re-list.
///
/// # Errors
/// Salesforce's refusal, as [`crate::limits::classify`].
pub fn check(pass: &mut Pass<'_>, run_id: i64) -> Result<Option<Step>, Error> {
    let now = now_ms() as i64;
    let Some(from) = pass.state.deleted_through_ms else {
        pass.state.deleted_through_ms = Some(run_id);
        return Ok(None);
    };
    if now.saturating_sub(from) > RELIST_AFTER_MS {
        return Ok(relist_now(
            pass,
            "the last deletions check is over 29 days old",
        ));
    }
    let start = from.min(now - MIN_WINDOW_MS);
    let url = api::deleted_url(
        pass.settings,
        &pass.sobject,
        &format_at(start, 0),
        &format_at(now, 0),
    );
    pass.pages += 1;
    let resp = api::send(api::call("GET", url), &[400])?;
    if resp.status == 400 {
        let said = SfError::read(&resp.body);
        if RELIST_CODES.contains(&said.code.as_str()) {
            return Ok(relist_now(pass, &said.describe()));
        }
        return Err(Error::permanent(format!(
            "Salesforce answered 400 to the deletions of {}: {}",
            pass.sobject,
            said.describe()
        )));
    }
    let page: DeletedPage = api::read(&resp, "a deletions read")?;
    if page
        .earliest_date_available
        .as_deref()
        .and_then(parse_ms)
        .is_some_and(|earliest| earliest > start)
    {
        return Ok(relist_now(
            pass,
            "Salesforce no longer knows the deletions since the last check",
        ));
    }
    let mut deleted = 0;
    for d in &page.deleted_records {
        let Some(id) = id18(&d.id) else {
            warn!(
                "{SYNC}: {}: a deleted record with id `{}` skipped",
                pass.sobject, d.id
            );
            continue;
        };
        let at = d.deleted_date.as_deref().and_then(parse_ms).unwrap_or(now);
        if pass.store.delete(&id, DeletedAt::Reported(at))? {
            deleted += 1;
        }
    }
    if deleted > 0 {
        info!(
            "{SYNC}: {}: {deleted} records deleted in Salesforce",
            pass.sobject
        );
    }
    let covered = page
        .latest_date_covered
        .as_deref()
        .and_then(parse_ms)
        .unwrap_or(now);
    pass.state.deleted_through_ms = Some(covered.min(now).max(from));
    Ok(None)
}

/// One page of the re-list: its ids marked; the step after it.
///
/// # Errors
/// Salesforce's refusal, as [`crate::limits::classify`].
pub fn relist(pass: &mut Pass<'_>, started_ms: i64, next: Option<String>) -> Result<Step, Error> {
    let soql = api::ids_soql(&pass.sobject);
    let Some(page) = pass.page(&soql, next.as_deref())? else {
        warn!(
            "{SYNC}: {}: the re-list's locator expired; listing again",
            pass.sobject
        );
        return Ok(Step::Relist {
            started_ms,
            next: None,
        });
    };
    if let Some(index) = pass.store.index() {
        for row in &page.records {
            if let Some(id) = row.get("Id").and_then(|v| v.as_str()).and_then(id18) {
                index.put(&id, started_ms);
            }
        }
    }
    Ok(match page.next() {
        Some(n) => Step::Relist {
            started_ms,
            next: Some(n.to_string()),
        },
        None => Step::Diff {
            started_ms,
            bucket: 0,
        },
    })
}

/// Deletes the held ids the re-list did not list, from `bucket`: `None` when done (the check
/// then starts from the re-list's start), else where to go on.
///
/// # Errors
/// Permanent when a held record does not parse.
pub fn diff(pass: &mut Pass<'_>, started_ms: i64, bucket: u8) -> Result<Option<Step>, Error> {
    let now = now_ms() as i64;
    let mut deleted = 0usize;
    // A round of deletions counts as a request: an invocation makes a few, then goes on.
    pass.pages += 1;
    for b in bucket..BUCKETS {
        let missing = match pass.store.index() {
            Some(index) => index.unseen_since(b, started_ms),
            None => Vec::new(),
        };
        for id in missing {
            if deleted >= DELETES_PER_RUN {
                info!("{SYNC}: {}: {deleted} records gone; going on", pass.sobject);
                return Ok(Some(Step::Diff {
                    started_ms,
                    bucket: b,
                }));
            }
            pass.store.delete(&id, DeletedAt::FoundGone(now))?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        info!(
            "{SYNC}: {}: {deleted} held records were not listed: deleted",
            pass.sobject
        );
    }
    pass.state.deleted_through_ms = Some(started_ms);
    Ok(None)
}
