//! The `sync_contacts` job: an incremental pull of the contacts changed since the last run,
//! into `contact` records (no events: a sync records state, webhooks announce changes). Each
//! page goes to an `apply_contacts` job (see [`crate::apply`]), so this job reads no records.
//!
//! It searches contacts with `lastmodifieddate >= cursor`, oldest change first, and follows
//! `paging.next.after`. The cursor (kv `sync_contacts.cursor_ms`) is the newest change seen by
//! the last completed run; a run starts 5 minutes before it, since HubSpot's search index lags
//! behind writes. Input (all optional): `{"full": true}` starts from the beginning;
//! `since_ms` starts from a given time.
//!
//! One invocation reads at most 5 pages (or 4 s); the rest continues in a queued job carrying
//! the query and its cursor, so writes commit as it goes. HubSpot's search stops at 10,000
//! results per query: near that, the run restarts the query from the newest change seen. A
//! 429 before any page fails the job (the host retries after `Retry-After`); after one, the
//! run continues in a job delayed by that much, and so it does when the rate-limit headers say
//! a window is spent.

use std::time::{Duration, Instant};

use plugin_sdk::{Error, enqueue_job, info, kv, warn};
use serde::{Deserialize, Serialize};

use crate::api;
use crate::apply::{APPLY_CONTACTS, ApplyInput, snapshot_ms};
use crate::webhook::wanted_properties;

/// The job's name.
pub const SYNC_CONTACTS: &str = "sync_contacts";
/// kv key of the newest change seen by the last completed run (epoch ms).
pub const CURSOR: &str = "sync_contacts.cursor_ms";
/// How far before the cursor a run starts.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;
/// Offset (`after`) from which a query restarts, below HubSpot's 10,000-result cap.
pub const MAX_OFFSET: u64 = 9_900;
/// Pages per invocation.
const PAGES_PER_RUN: u32 = 5;
/// After this long, an invocation starts no new page.
const TIME_BUDGET: Duration = Duration::from_secs(4);
/// Time limit of one search.
const SEARCH_TIMEOUT_MS: u32 = 6_000;
/// Delay of a continuation after a 429 that named no wait.
const DEFAULT_PAUSE_MS: u64 = 1_000;

/// The job's input; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncInput {
    /// Start from this time (epoch ms) instead of the cursor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Continue a query at this offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The newest change seen so far by this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seen_ms: Option<i64>,
    /// Ignore the cursor and pull everything.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

/// Parses the input; empty or `null` is the default.
///
/// # Errors
/// Bad request when it is not the job's JSON shape.
pub fn parse_input(input: &str) -> Result<SyncInput, Error> {
    let t = input.trim();
    if t.is_empty() || t == "null" {
        return Ok(SyncInput::default());
    }
    serde_json::from_str(t).map_err(|e| Error::bad_request(format!("`{SYNC_CONTACTS}` input: {e}")))
}

/// Where a run starts: the input's time, 0 for a full sync, else the stored cursor less the
/// overlap, else 0.
pub fn start_ms(input: &SyncInput, cursor: Option<&str>) -> i64 {
    if let Some(s) = input.since_ms {
        return s.max(0);
    }
    if input.full {
        return 0;
    }
    cursor
        .and_then(|c| c.trim().parse::<i64>().ok())
        .map_or(0, |c| c.saturating_sub(OVERLAP_MS).max(0))
}

/// The query to continue with after a page: the same at `next`, or, near the 10,000-result
/// cap, a new query from the newest change seen. `None` when it cannot go on (over 10,000
/// contacts changed in the same millisecond).
pub fn next_query(
    since: i64,
    next: String,
    max_seen: Option<i64>,
) -> Option<(i64, Option<String>)> {
    if next.parse::<u64>().is_ok_and(|offset| offset >= MAX_OFFSET) {
        return max_seen.filter(|m| *m > since).map(|m| (m, None));
    }
    Some((since, Some(next)))
}

fn finish(max_seen: Option<i64>, pages: u32, seen: usize) {
    let old = kv::get_string(CURSOR).and_then(|c| c.trim().parse::<i64>().ok());
    if let Some(newest) = max_seen.max(old) {
        kv::set(CURSOR, newest.to_string().as_bytes());
    }
    info!("{SYNC_CONTACTS}: done; {seen} contacts in {pages} pages this run");
}

fn continue_later(input: SyncInput, delay_ms: u64, pages: u32, seen: usize) -> Result<(), Error> {
    enqueue_job(SYNC_CONTACTS, &input, delay_ms)?;
    info!("{SYNC_CONTACTS}: {seen} contacts in {pages} pages; continuing in {delay_ms} ms");
    Ok(())
}

/// Runs the job.
///
/// # Errors
/// Bad request for a malformed input; the API's failure when the first page fails.
pub fn run(input: &str) -> Result<(), Error> {
    let input = parse_input(input)?;
    let props = wanted_properties()?;
    let mut since = start_ms(&input, kv::get_string(CURSOR).as_deref());
    let mut after = input.after.clone();
    let mut max_seen = input.max_seen_ms;
    let clock = Instant::now();
    let (mut pages, mut stored) = (0u32, 0usize);
    loop {
        let body = api::search_body(since, &props, after.as_deref());
        let (page, pause) = match api::search(&body, SEARCH_TIMEOUT_MS) {
            Ok(answer) => answer,
            Err(Error::Retryable(r)) if pages > 0 => {
                let rest = SyncInput {
                    since_ms: Some(since),
                    after,
                    max_seen_ms: max_seen,
                    full: false,
                };
                let delay = r.retry_after_ms.unwrap_or(DEFAULT_PAUSE_MS);
                return continue_later(rest, delay, pages, stored);
            }
            Err(e) => return Err(e),
        };
        pages += 1;
        stored += page.results.len();
        for contact in &page.results {
            max_seen = max_seen.max(Some(snapshot_ms(contact)));
        }
        if !page.results.is_empty() {
            let apply = ApplyInput {
                contacts: page.results.clone(),
            };
            enqueue_job(APPLY_CONTACTS, &apply, 0)?;
        }
        let Some(next) = page.next_after(after.as_deref()) else {
            finish(max_seen, pages, stored);
            return Ok(());
        };
        let Some((next_since, next_after)) = next_query(since, next, max_seen) else {
            warn!("{SYNC_CONTACTS}: over 10,000 contacts changed at one instant; the rest waits");
            finish(max_seen, pages, stored);
            return Ok(());
        };
        (since, after) = (next_since, next_after);
        let wait = pause.unwrap_or(0);
        if wait > 0 || pages >= PAGES_PER_RUN || clock.elapsed() > TIME_BUDGET {
            let rest = SyncInput {
                since_ms: Some(since),
                after,
                max_seen_ms: max_seen,
                full: false,
            };
            return continue_later(rest, wait, pages, stored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs() {
        assert_eq!(parse_input("").unwrap(), SyncInput::default());
        assert_eq!(parse_input("null").unwrap(), SyncInput::default());
        assert!(parse_input(r#"{"full": true}"#).unwrap().full);
        assert!(matches!(
            parse_input(r#"{"since_ms": "x"}"#),
            Err(Error::BadRequest(_))
        ));
        let cont = SyncInput {
            since_ms: Some(5),
            after: Some("100".into()),
            max_seen_ms: Some(9),
            full: false,
        };
        let v = serde_json::to_value(&cont).unwrap();
        assert_eq!(v, json!({"since_ms": 5, "after": "100", "max_seen_ms": 9}));
        assert_eq!(serde_json::from_value::<SyncInput>(v).unwrap(), cont);
    }

    #[test]
    fn where_runs_start() {
        let none = SyncInput::default();
        assert_eq!(start_ms(&none, None), 0);
        assert_eq!(
            start_ms(&none, Some("1700000000000")),
            1_700_000_000_000 - OVERLAP_MS
        );
        assert_eq!(start_ms(&none, Some("10")), 0);
        assert_eq!(start_ms(&none, Some("junk")), 0);
        let full = SyncInput {
            full: true,
            ..Default::default()
        };
        assert_eq!(start_ms(&full, Some("1700000000000")), 0);
        let since = SyncInput {
            since_ms: Some(42),
            full: true,
            ..Default::default()
        };
        assert_eq!(start_ms(&since, Some("1700000000000")), 42);
    }

    #[test]
    fn queries_restart_before_the_cap() {
        assert_eq!(
            next_query(10, "200".into(), Some(50)),
            Some((10, Some("200".into())))
        );
        assert_eq!(next_query(10, "9900".into(), Some(50)), Some((50, None)));
        assert_eq!(next_query(10, "9900".into(), Some(10)), None);
        assert_eq!(next_query(10, "9900".into(), None), None);
        assert_eq!(
            next_query(10, "opaque".into(), None),
            Some((10, Some("opaque".into())))
        );
    }
}
