//! The `sync` job: Google's incremental sync of a calendar's events into `event` records.
//!
//! `GET /calendars/{id}/events` with `singleEvents=true`, `showDeleted=true` and
//! `maxResults=250`, the same on every request. A calendar without a sync token yet is listed
//! in full from `timeMin` (now less `sync_days_back` days, fixed for the whole listing); then
//! with the `syncToken` Google gave on the last page of the previous listing, which returns
//! what changed since, deletions included, and may carry neither `timeMin`, `timeMax`,
//! `orderBy`, `q`, `iCalUID`, `updatedMin` nor extended-property filters. Pages follow
//! `nextPageToken`; `nextSyncToken` comes only on the last page.
//!
//! **A run** (one listing) is kept in kv (`sync:<calendar>`, with the sync token) and goes on
//! in queued continuations carrying its id, at most 4 pages per invocation, so its writes
//! commit as it goes (a page read again, after a failed invocation, changes nothing: each event
//! is kept by its version). The token in use
//! stays the calendar's until the run has ended, so a run that dies is begun again from it and
//! nothing is missed; the new token replaces it only then. A `sync` job that finds a run going
//! (a push during it) only asks it to run once more at its end; a run idle for 15 minutes (its
//! continuation failed for good) is begun again.
//!
//! **410 Gone** (the token expired, `fullSyncRequired`): the token is dropped and the calendar
//! listed in full, and since deletions in the gap are never reported, the listing is then
//! compared with the calendar's index ([`crate::index`]): a held event the listing did not
//! return, ending inside its window, is read by its id (`GET`), and cancelled (publishing
//! `calendar.event.cancelled`) when Google answers it deleted or has it no more; one Google
//! still has (an action made it while the listing ran) is kept. At most 50 reads per
//! invocation. Every full listing is compared so; the first finds nothing held.

use plugin_sdk::{Error, enqueue_job, info, kv, warn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api;
use crate::config::{self, calendar_zone_key};
use crate::event::EventRecord;
use crate::index::BUCKETS;
use crate::store::{Applied, Store};
use crate::time::{format_utc, now_ms, parse_ms};

/// The job's name.
pub const SYNC: &str = "sync";
/// Events per page asked for (Google's default; its maximum is 2,500).
pub const MAX_RESULTS: u32 = 250;
/// Pages per invocation.
pub const PAGES_PER_RUN: u32 = 4;
/// Events the re-list's diff reads per invocation.
pub const CHECKS_PER_RUN: usize = 50;
/// After this long without progress a run is begun again.
pub const STALE_MS: i64 = 15 * 60_000;
/// An event ending within this long after `timeMin` may not be listed (all-day events end at
/// a date): not judged.
pub const WINDOW_MARGIN_MS: i64 = 86_400_000;
/// An invocation starts no new page after this long.
const TIME_BUDGET_MS: i64 = 6_000;

/// The job's input: empty (the configured calendar), a calendar, or a continuation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncInput {
    /// The calendar (default: config `calendar_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    /// A continuation: the run it continues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
}

/// What a run lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everything ending after `time_min` (RFC 3339, fixed for the run).
    Full {
        /// The listing's `timeMin`.
        time_min: String,
    },
    /// What changed since the token.
    Incremental {
        /// The `syncToken` sent.
        token: String,
    },
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading pages.
    Listing,
    /// Comparing a full listing with the index, from this bucket.
    Diffing {
        /// The next bucket to compare.
        bucket: u8,
    },
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Its id: the time it began (ms; later than the last run's), also the mark its full
    /// listing leaves in the index.
    pub id: i64,
    /// When it last made progress.
    pub touched_ms: i64,
    /// What it lists.
    pub mode: Mode,
    /// The next page, once past the first.
    pub page_token: Option<String>,
    /// Where it is.
    pub phase: Phase,
    /// The token the last page gave, kept as the calendar's when the run ends.
    pub next_sync_token: Option<String>,
    /// Whether a `sync` came while it ran: run once more at its end.
    pub again: bool,
    /// Events listed so far (for the log).
    pub listed: u64,
}

/// A calendar's sync state in kv.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The token of the last completed listing.
    pub token: Option<String>,
    /// The run in progress.
    pub run: Option<Run>,
    /// The id of the last run begun: a new one's is greater, whatever the clock says.
    pub last_run: i64,
}

impl State {
    /// An id for a run begun at `now`, greater than every earlier one's.
    fn next_run_id(&mut self, now: i64) -> i64 {
        self.last_run = now.max(self.last_run.saturating_add(1));
        self.last_run
    }
}

/// kv key of a calendar's state.
pub fn state_key(calendar: &str) -> String {
    format!("sync:{calendar}")
}

/// A calendar's state; one that does not parse is begun again (with a warning).
pub fn load(calendar: &str) -> State {
    let Some(bytes) = kv::get(&state_key(calendar)) else {
        return State::default();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        warn!("{SYNC}: the sync state of `{calendar}` does not parse ({e}); listing it again");
        State::default()
    })
}

fn save(calendar: &str, state: &State) -> Result<(), Error> {
    let bytes = serde_json::to_vec(state).map_err(|e| Error::permanent(e.to_string()))?;
    kv::set(&state_key(calendar), &bytes);
    Ok(())
}

/// Whether a calendar has been listed, or is being: no initial sync to queue.
pub fn started(calendar: &str) -> bool {
    let s = load(calendar);
    s.token.is_some() || s.run.is_some()
}

impl Run {
    fn new(mode: Mode, id: i64, again: bool) -> Run {
        Run {
            id,
            touched_ms: id,
            mode,
            page_token: None,
            phase: Phase::Listing,
            next_sync_token: None,
            again,
            listed: 0,
        }
    }

    fn full(id: i64, now: i64, days_back: i64, again: bool) -> Run {
        let time_min = format_utc(now - days_back * 86_400_000);
        Run::new(Mode::Full { time_min }, id, again)
    }

    /// The mark its listing leaves in the index: its id for a full listing.
    fn mark(&self) -> Option<i64> {
        matches!(self.mode, Mode::Full { .. }).then_some(self.id)
    }

    /// The `events.list` path of its next page: the same parameters every time, `timeMin` or
    /// `syncToken`, and the page token.
    pub fn list_path(&self, calendar: &str) -> String {
        let mut q = vec![
            ("maxResults", MAX_RESULTS.to_string()),
            ("showDeleted", "true".to_string()),
            ("singleEvents", "true".to_string()),
        ];
        match &self.mode {
            Mode::Full { time_min } => q.push(("timeMin", time_min.clone())),
            Mode::Incremental { token } => q.push(("syncToken", token.clone())),
        }
        if let Some(p) = &self.page_token {
            q.push(("pageToken", p.clone()));
        }
        format!("{}/events{}", api::calendar_path(calendar), api::query(&q))
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
enum Next {
    /// The run is over.
    Done,
    /// It goes on in a continuation after this long.
    Later(u64),
}

/// One page, read: its items applied; `Err(None)` for a 410.
fn page(run: &Run, calendar: &str, store: &mut Store) -> Result<Value, Option<Error>> {
    let resp = api::call("GET", &run.list_path(calendar))
        .send()
        .map_err(Some)?;
    if resp.status == 410 {
        return Err(None);
    }
    let resp = api::check(resp, Some(calendar)).map_err(Some)?;
    let page = api::object(&resp, "an events list").map_err(Some)?;
    let zone = page
        .get("timeZone")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(z) = &zone
        && kv::get_string(&calendar_zone_key(calendar)).as_deref() != Some(z)
    {
        kv::set(&calendar_zone_key(calendar), z.as_bytes());
    }
    let items = match page.get("items") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(Some(Error::permanent(
                "Google's events list has `items` that is not a list",
            )));
        }
    };
    let mut skipped = 0;
    for item in items {
        match EventRecord::from_google(item, calendar, zone.as_deref()) {
            Some(r) => {
                store.apply(r).map_err(Some)?;
            }
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        warn!("{SYNC}: {skipped} items of `{calendar}` without an id skipped");
    }
    Ok(page)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Compares a full listing with the index from `from`: each held event it did not return is
/// read by its id and cancelled if Google has it no more. `Some(bucket)` when the budget ran
/// out there.
fn diff(
    run: &Run,
    calendar: &str,
    store: &mut Store,
    from: u8,
    checks: &mut usize,
    started: i64,
) -> Result<Option<u8>, Error> {
    let Mode::Full { time_min } = &run.mode else {
        return Ok(None);
    };
    let window = parse_ms(time_min)
        .unwrap_or(i64::MIN)
        .saturating_add(WINDOW_MARGIN_MS);
    for bucket in from..BUCKETS {
        for (id, entry) in store.index().entries(bucket) {
            if entry.mark == run.id || entry.end_ms <= window {
                continue;
            }
            if *checks >= CHECKS_PER_RUN || now_ms() - started > TIME_BUDGET_MS {
                return Ok(Some(bucket));
            }
            *checks += 1;
            let applied = match api::get_event(calendar, &id)? {
                None => store.cancel(&id, None)?,
                Some(event) => match EventRecord::from_google(&event, calendar, None) {
                    Some(r) => store.apply(r)?,
                    None => store.cancel(&id, None)?,
                },
            };
            if applied == Applied::Cancelled {
                info!("{SYNC}: `{id}` of `{calendar}` was deleted while the sync token lapsed");
            }
        }
    }
    Ok(None)
}

/// Runs the job.
///
/// # Errors
/// Bad request for a malformed input; Google's refusal of the first page of an invocation
/// (the host retries the job, which goes on where it was); permanent when Google answers a
/// listing without either token.
pub fn run(input: &str) -> Result<(), Error> {
    let input = parse_input(input)?;
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    let days_back = config::sync_days_back()?;
    let now = now_ms();
    let mut state = load(&calendar);
    let mut run = match (input.run, state.run.take()) {
        (Some(id), Some(r)) if r.id == id => r,
        (Some(_), _) => {
            info!("{SYNC}: a continuation of a run of `{calendar}` that is over; nothing to do");
            return Ok(());
        }
        (None, Some(mut r)) if now.saturating_sub(r.touched_ms) < STALE_MS => {
            if !r.again {
                r.again = true;
                state.run = Some(r);
                save(&calendar, &state)?;
            }
            return Ok(());
        }
        (None, _) => {
            let id = state.next_run_id(now);
            match &state.token {
                Some(token) => Run::new(
                    Mode::Incremental {
                        token: token.clone(),
                    },
                    id,
                    false,
                ),
                None => Run::full(id, now, days_back, false),
            }
        }
    };
    let mut store = Store::new(&calendar, run.mark());
    let (mut pages, mut checks) = (0u32, 0usize);
    let next = loop {
        match run.phase {
            Phase::Listing => {
                if pages >= PAGES_PER_RUN || now_ms() - now > TIME_BUDGET_MS {
                    break Next::Later(0);
                }
                let answer = match page(&run, &calendar, &mut store) {
                    Ok(answer) => answer,
                    Err(None) => {
                        if matches!(run.mode, Mode::Full { .. }) && run.page_token.is_none() {
                            return Err(Error::permanent(format!(
                                "Google answered 410 Gone to a full listing of `{calendar}`"
                            )));
                        }
                        warn!(
                            "{SYNC}: the sync token of `{calendar}` lapsed (410): listing it in full"
                        );
                        state.token = None;
                        let at = now_ms();
                        run = Run::full(state.next_run_id(at), at, days_back, run.again);
                        store.flush();
                        store = Store::new(&calendar, run.mark());
                        continue;
                    }
                    Err(Some(Error::Retryable(r))) if pages > 0 => {
                        break Next::Later(r.retry_after_ms.unwrap_or(api::DEFAULT_WAIT_MS));
                    }
                    Err(Some(e)) => return Err(e),
                };
                pages += 1;
                run.listed += answer
                    .get("items")
                    .and_then(Value::as_array)
                    .map_or(0, |i| i.len() as u64);
                match (
                    text(&answer, "nextPageToken"),
                    text(&answer, "nextSyncToken"),
                ) {
                    (Some(p), _) => run.page_token = Some(p),
                    (None, Some(token)) => {
                        run.page_token = None;
                        run.next_sync_token = Some(token);
                        run.phase = match run.mode {
                            Mode::Full { .. } => Phase::Diffing { bucket: 0 },
                            Mode::Incremental { .. } => break Next::Done,
                        };
                    }
                    (None, None) => {
                        return Err(Error::permanent(format!(
                            "Google's events list of `{calendar}` ended with neither \
                             `nextPageToken` nor `nextSyncToken`"
                        )));
                    }
                }
            }
            Phase::Diffing { bucket } => {
                match diff(&run, &calendar, &mut store, bucket, &mut checks, now) {
                    Ok(Some(at)) => {
                        run.phase = Phase::Diffing { bucket: at };
                        break Next::Later(0);
                    }
                    Ok(None) => break Next::Done,
                    Err(Error::Retryable(r)) if pages > 0 || checks > 1 => {
                        // Go on from the first bucket not finished (a read event is marked).
                        break Next::Later(r.retry_after_ms.unwrap_or(api::DEFAULT_WAIT_MS));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    store.flush();
    match next {
        Next::Done => {
            state.token = run.next_sync_token.take();
            state.run = None;
            save(&calendar, &state)?;
            info!(
                "{SYNC}: `{calendar}` synced ({} events listed{})",
                run.listed,
                if checks > 0 {
                    format!(", {checks} missing from it read again")
                } else {
                    String::new()
                }
            );
            if run.again {
                enqueue_job(
                    SYNC,
                    &SyncInput {
                        calendar_id: Some(calendar),
                        run: None,
                    },
                    0,
                )?;
            }
        }
        Next::Later(delay) => {
            run.touched_ms = now_ms().saturating_add(i64::try_from(delay).unwrap_or(0));
            let id = run.id;
            state.run = Some(run);
            save(&calendar, &state)?;
            let cont = SyncInput {
                calendar_id: Some(calendar.clone()),
                run: Some(id),
            };
            enqueue_job(SYNC, &cont, delay)?;
            info!("{SYNC}: `{calendar}`: {pages} pages; continuing in {delay} ms");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_paths() {
        assert_eq!(parse_input("").unwrap(), SyncInput::default());
        assert_eq!(parse_input("null").unwrap(), SyncInput::default());
        assert!(matches!(parse_input("[1]"), Err(Error::BadRequest(_))));
        let full = Run::full(1_767_225_600_000, 1_767_225_600_000, 30, false);
        assert_eq!(
            full.list_path("primary"),
            "/calendars/primary/events?maxResults=250&showDeleted=true&singleEvents=true&timeMin=2025-12-02T00%3A00%3A00Z"
        );
        let mut inc = Run::new(
            Mode::Incremental {
                token: "CPD=".into(),
            },
            5,
            false,
        );
        inc.page_token = Some("p2".into());
        assert_eq!(
            inc.list_path("a@b.c"),
            "/calendars/a%40b.c/events?maxResults=250&showDeleted=true&singleEvents=true&syncToken=CPD%3D&pageToken=p2"
        );
        assert_eq!(inc.mark(), None);
        assert_eq!(full.mark(), Some(1_767_225_600_000));
        let v = serde_json::to_value(&full).unwrap();
        assert_eq!(v["mode"]["full"]["time_min"], "2025-12-02T00:00:00Z");
        assert_eq!(v["phase"], "listing");
    }
}
