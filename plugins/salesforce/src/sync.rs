//! The `sync` job: an incremental pull of each listed sObject type into records, then its
//! deletions ([`crate::deletions`]).
//!
//! Input `{}` (the schedule's, every 15 minutes) queues one `sync` per type in `sobjects`;
//! `{"sobject": "Contact"}` begins a run of one type; a continuation carries the run's id and
//! its step. A type's state is in kv (`sync:<kind>`): the cursor (the newest `SystemModstamp`
//! of the last query read to its end), how far deletions are known, and the run going.
//!
//! **A run**: `SELECT <fields> FROM <T> WHERE SystemModstamp > <cursor - 1 min> ORDER BY
//! SystemModstamp ASC` (`1970-01-01T00:00:00Z` the first time), following `nextRecordsUrl`, at
//! most 4 pages per invocation, then a continuation carrying the locator (it expires after
//! about 15 idle minutes: continue at once). The cursor moves only when the query is read to
//! its end, so a run that dies is read again, never skipped; the minute of overlap reads again
//! what changed in the cursor's own second, or committed late, which changes nothing. A
//! locator that expired (`INVALID_QUERY_LOCATOR`) restarts the query from the newest change
//! read. One run per type at a time: a `sync` finding one going (touched in the last 15
//! minutes) leaves it be. The first run of a type imports quietly (no events).
//!
//! **Limits**: continuations wait as the org's API usage grows ([`crate::limits`]); a wait
//! longer than a locator lives restarts the query from the newest change read instead. A run
//! starting above 95 % defers itself (retryable, with the wait).

use plugin_sdk::time::rfc3339;
use plugin_sdk::{Error, enqueue_job, info, kv, now_ms, warn};
use serde::{Deserialize, Serialize};

use crate::api;
use crate::config::Settings;
use crate::deletions;
use crate::limits;
use crate::pass::Pass;
use crate::record::{self, id18};
use crate::store::Store;

/// The job's name.
pub const SYNC: &str = "sync";
/// A run not touched for this long is begun again.
pub const STALE_MS: i64 = 15 * 60_000;
/// A continuation waiting this long drops its query locator (they expire idle).
pub const LOCATOR_IDLE_MS: u64 = 10 * 60_000;
/// How far before the cursor a query starts.
pub const OVERLAP_MS: i64 = 60_000;
/// The first query's lower bound.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading what changed since `since_ms`.
    Query {
        /// The query's lower bound (before the overlap).
        since_ms: i64,
        /// The next page's locator path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        /// The newest `SystemModstamp` read so far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_seen_ms: Option<i64>,
    },
    /// Reading the deletions since the last check.
    Deleted,
    /// Listing every live id (marks them in the index).
    Relist {
        /// When the re-list began.
        started_ms: i64,
        /// The next page's locator path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Deleting the held ids the re-list did not list, from this bucket.
    Diff {
        /// When the re-list began.
        started_ms: i64,
        /// The next index bucket.
        bucket: u8,
    },
}

/// The job's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncInput {
    /// The type; none: every listed type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sobject: Option<String>,
    /// A continuation: the run it continues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// A continuation: where the run is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

/// The run going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Its id: when it began (ms), greater than every earlier run's.
    pub id: i64,
    /// When its next invocation is due, or it last ran.
    pub touched_ms: i64,
    /// A first import: no events.
    pub quiet: bool,
}

/// A type's sync state in kv.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The newest `SystemModstamp` of the last query read to its end.
    pub cursor_ms: Option<i64>,
    /// Whether a query was ever read to its end (later runs announce what they find).
    pub imported: bool,
    /// Deletions are known up to here (ms).
    pub deleted_through_ms: Option<i64>,
    /// The run going.
    pub run: Option<Run>,
    /// The id of the last run begun.
    pub last_run: i64,
}

/// kv key of a type's state.
pub fn state_key(kind: &str) -> String {
    format!("sync:{kind}")
}

/// A type's state; one that does not parse begins again (with a warning).
pub fn load(kind: &str) -> State {
    let Some(bytes) = kv::get(&state_key(kind)) else {
        return State::default();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        warn!("{SYNC}: the sync state of `{kind}` does not parse ({e}); starting over");
        State::default()
    })
}

fn save(kind: &str, state: &State) -> Result<(), Error> {
    let bytes = serde_json::to_vec(state).map_err(|e| Error::permanent(e.to_string()))?;
    kv::set(&state_key(kind), &bytes);
    Ok(())
}

/// The SOQL lower bound for `since_ms`: the overlap before it, in whole seconds.
pub fn since_literal(since_ms: i64) -> String {
    let from = since_ms.saturating_sub(OVERLAP_MS);
    if from <= 0 {
        EPOCH.to_string()
    } else {
        rfc3339(from.div_euclid(1000))
    }
}

fn parse_input(input: &str) -> Result<SyncInput, Error> {
    let t = input.trim();
    if t.is_empty() || t == "null" {
        return Ok(SyncInput::default());
    }
    serde_json::from_str(t).map_err(|e| Error::bad_request(format!("`{SYNC}` input: {e}")))
}

/// What an invocation ends with.
pub enum Next {
    /// The run is over.
    Done,
    /// It goes on at this step, after at least this long.
    Later(Step, u64),
}

/// One query step: a page read and applied; the step after it.
fn query(
    pass: &mut Pass<'_>,
    since_ms: i64,
    next: Option<String>,
    mut max_seen: Option<i64>,
) -> Result<Step, Error> {
    let fields = pass.settings.fields_for(&pass.sobject);
    let soql = api::changed_soql(&pass.sobject, &fields, &since_literal(since_ms));
    let Some(page) = pass.page(&soql, next.as_deref())? else {
        warn!(
            "{SYNC}: {}: the query locator expired; querying again from the newest change read",
            pass.sobject
        );
        return Ok(Step::Query {
            since_ms: max_seen.unwrap_or(since_ms),
            next: None,
            max_seen_ms: max_seen,
        });
    };
    let next = page.next().map(str::to_string);
    let mut skipped = 0;
    for row in page.records {
        let Some(id) = row.get("Id").and_then(|v| v.as_str()).and_then(id18) else {
            skipped += 1;
            continue;
        };
        let stamp = row
            .get("SystemModstamp")
            .and_then(|v| v.as_str())
            .and_then(plugin_sdk::time::parse_ms);
        max_seen = max_seen.max(stamp);
        pass.store.apply(&id, row)?;
    }
    if skipped > 0 {
        warn!(
            "{SYNC}: {}: {skipped} rows without an Id skipped",
            pass.sobject
        );
    }
    Ok(match next {
        Some(n) => Step::Query {
            since_ms,
            next: Some(n),
            max_seen_ms: max_seen,
        },
        None => {
            let state = &mut pass.state;
            state.cursor_ms = state.cursor_ms.max(max_seen);
            state.imported = true;
            Step::Deleted
        }
    })
}

/// Queues one `sync` per listed type.
fn fan_out(settings: &Settings) -> Result<(), Error> {
    for sobject in &settings.sobjects {
        let input = SyncInput {
            sobject: Some(sobject.clone()),
            ..SyncInput::default()
        };
        enqueue_job(SYNC, &input, 0)?;
    }
    Ok(())
}

/// The delay of a continuation at `step`: at least `wanted`, and what the usage asks; a
/// re-list waits at most 5 minutes (its locator must live), a query waiting longer than a
/// locator lives drops it and restarts from the newest change read.
pub fn continue_at(step: Step, wanted: u64, usage_percent: u64) -> (Step, u64) {
    let delay = wanted.max(limits::sync_delay_ms(usage_percent));
    match step {
        Step::Relist { .. } => (step, delay.min(5 * 60_000)),
        Step::Query {
            since_ms,
            next: Some(_),
            max_seen_ms,
        } if delay >= LOCATOR_IDLE_MS => (
            Step::Query {
                since_ms: max_seen_ms.unwrap_or(since_ms),
                next: None,
                max_seen_ms,
            },
            delay,
        ),
        other => (other, delay),
    }
}

/// Runs the job.
///
/// # Errors
/// Bad request for a malformed input; permanent for a type not listed or a bad config;
/// Salesforce's refusal of an invocation's first page (the host retries the job, which goes on
/// where it was); retryable when the org's usage is above 95 % at a run's start.
pub fn run(input: &str) -> Result<(), Error> {
    let input = parse_input(input)?;
    let settings = Settings::load()?;
    let Some(asked) = input.sobject.as_deref() else {
        return fan_out(&settings);
    };
    let Some(sobject) = settings.listed(asked).map(str::to_string) else {
        if input.run.is_some() {
            info!("{SYNC}: `{asked}` is no longer listed in `sobjects`; its run stops");
            return Ok(());
        }
        return Err(Error::permanent(format!(
            "`{asked}` is not listed in config `sobjects` ({})",
            settings.sobjects.join(", ")
        )));
    };
    let kind = record::kind(&sobject);
    let now = now_ms() as i64;
    let mut state = load(&kind);
    let (mut run, mut step) = match (input.run, input.step, state.run.take()) {
        (Some(id), Some(step), Some(r)) if r.id == id => (r, step),
        (Some(_), _, _) => {
            info!("{SYNC}: {sobject}: a continuation of a run that is over; nothing to do");
            return Ok(());
        }
        (None, _, Some(r)) if now.saturating_sub(r.touched_ms) < STALE_MS => {
            info!("{SYNC}: {sobject}: a run is going; it goes on");
            return Ok(());
        }
        (None, _, _) => {
            // Over 95 % of the daily allowance: this run ends here, done, and the next
            // scheduled one tries again (a retryable error would spend the job's attempts and
            // dead-letter a sync that did nothing wrong).
            if let Some(wait) = limits::sync_start_wait_ms() {
                warn!(
                    "the org has used over 95% of its daily API requests: {sobject} is not synced now (the allowance frees up over {} min)",
                    wait / 60_000
                );
                return Ok(());
            }
            state.last_run = now.max(state.last_run.saturating_add(1));
            let quiet = !state.imported;
            let since_ms = state.cursor_ms.unwrap_or(0);
            let run = Run {
                id: state.last_run,
                touched_ms: now,
                quiet,
            };
            (
                run,
                Step::Query {
                    since_ms,
                    next: None,
                    max_seen_ms: None,
                },
            )
        }
    };
    let mut pass = Pass {
        settings: &settings,
        store: Store::for_sync(&sobject, run.quiet),
        sobject: sobject.clone(),
        state,
        pages: 0,
        records: 0,
        began_ms: now_ms(),
    };
    let next = loop {
        if pass.spent() {
            break Next::Later(step, 0);
        }
        let result = match step.clone() {
            Step::Query {
                since_ms,
                next,
                max_seen_ms,
            } => query(&mut pass, since_ms, next, max_seen_ms).map(Some),
            Step::Deleted => deletions::check(&mut pass, run.id),
            Step::Relist { started_ms, next } => {
                deletions::relist(&mut pass, started_ms, next).map(Some)
            }
            Step::Diff { started_ms, bucket } => deletions::diff(&mut pass, started_ms, bucket),
        };
        match result {
            Ok(Some(after)) => step = after,
            Ok(None) => break Next::Done,
            Err(Error::Retryable(r)) if pass.pages > 1 => {
                warn!("{SYNC}: {sobject}: {}; going on later", r.message);
                break Next::Later(step, r.retry_after_ms.unwrap_or(60_000));
            }
            Err(e) => return Err(e),
        }
    };
    pass.store.flush();
    let mut state = pass.state;
    match next {
        Next::Done => {
            state.run = None;
            save(&kind, &state)?;
            info!(
                "{SYNC}: {sobject} synced ({} requests this invocation)",
                pass.pages
            );
        }
        Next::Later(at, wanted) => {
            let (at, delay) = continue_at(at, wanted, limits::current_percent().unwrap_or(0));
            run.touched_ms =
                (now_ms() as i64).saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
            let id = run.id;
            state.run = Some(run);
            save(&kind, &state)?;
            let cont = SyncInput {
                sobject: Some(sobject.clone()),
                run: Some(id),
                step: Some(at),
            };
            enqueue_job(SYNC, &cont, delay)?;
            info!(
                "{SYNC}: {sobject}: {} requests; continuing in {delay} ms",
                pass.pages
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_round_trip() {
        assert_eq!(parse_input("").unwrap(), SyncInput::default());
        assert_eq!(parse_input("{}").unwrap(), SyncInput::default());
        assert!(matches!(parse_input("[1]"), Err(Error::BadRequest(_))));
        let cont = SyncInput {
            sobject: Some("Contact".into()),
            run: Some(7),
            step: Some(Step::Query {
                since_ms: 0,
                next: Some("/services/data/v62.0/query/01g-2000".into()),
                max_seen_ms: Some(9),
            }),
        };
        let v = serde_json::to_value(&cont).unwrap();
        assert_eq!(
            v,
            json!({"sobject": "Contact", "run": 7, "step": {"query": {"since_ms": 0,
            "next": "/services/data/v62.0/query/01g-2000", "max_seen_ms": 9}}})
        );
        assert_eq!(serde_json::from_value::<SyncInput>(v).unwrap(), cont);
        let diff = serde_json::to_value(Step::Diff {
            started_ms: 1,
            bucket: 3,
        })
        .unwrap();
        assert_eq!(diff, json!({"diff": {"started_ms": 1, "bucket": 3}}));
        assert_eq!(
            serde_json::to_value(Step::Deleted).unwrap(),
            json!("deleted")
        );
    }

    #[test]
    fn bounds_and_delays() {
        assert_eq!(since_literal(0), EPOCH);
        assert_eq!(since_literal(30_000), EPOCH);
        assert_eq!(since_literal(1_767_225_660_500), "2026-01-01T00:00:00Z");
        let q = Step::Query {
            since_ms: 5,
            next: Some("/services/data/v62.0/query/x-2000".into()),
            max_seen_ms: Some(9),
        };
        assert_eq!(continue_at(q.clone(), 0, 50), (q.clone(), 0));
        assert_eq!(continue_at(q.clone(), 0, 91), (q.clone(), 300_000));
        assert_eq!(
            continue_at(q, 0, 96),
            (
                Step::Query {
                    since_ms: 9,
                    next: None,
                    max_seen_ms: Some(9)
                },
                1_800_000
            )
        );
        let r = Step::Relist {
            started_ms: 1,
            next: Some("/services/data/v62.0/query/y-2000".into()),
        };
        assert_eq!(continue_at(r.clone(), 0, 100), (r, 300_000));
    }
}
