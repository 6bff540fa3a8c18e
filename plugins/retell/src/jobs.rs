//! The connector's jobs: `fetch_call` (complete a call from get-call), `sync_agents`,
//! `sync_phone_numbers`, `backfill_calls` and `check_credentials`.
//!
//! API failures propagate as the SDK maps them (`error_for_status`): 408, 429, 5xx, timeouts
//! and transport failures are retryable, so the host retries the job with backoff; 404 and
//! other 4xx are permanent.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plugin_sdk::{Error, config, enqueue_job, info, kv, records, warn};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{self, Page, owns_agent, phone_number_agents};
use crate::merge::merge;
use crate::model::CallObject;
use crate::store;
use crate::webhook::{AGENT_IDS, FETCH_CALL, FetchCallInput};

/// Job: check the tenant's API key with one list-agents call; writes nothing (the console's
/// "Test" button runs it).
pub const CHECK_CREDENTIALS: &str = "check_credentials";
/// Job: sync the tenant's agents into `agent` records.
pub const SYNC_AGENTS: &str = "sync_agents";
/// Job: sync the tenant's numbers into `phone_number` records.
pub const SYNC_PHONE_NUMBERS: &str = "sync_phone_numbers";
/// Job: pull recent calls into `call` records.
pub const BACKFILL_CALLS: &str = "backfill_calls";
/// kv key holding the start time (epoch ms) of the last completed backfill.
pub const BACKFILL_LAST_MS: &str = "backfill.last_ms";
/// Default backfill window when none was ever run.
pub const DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Overlap with the previous backfill: calls that started before it may have ended since.
pub const OVERLAP_MS: i64 = 60 * 60 * 1000;

/// Time limit of one API request in a job.
const JOB_TIMEOUT_MS: u32 = 6_000;
/// Pages of calls per invocation before the backfill continues in a new job.
const BACKFILL_PAGES_PER_RUN: u32 = 5;
/// Time after which the backfill starts no new page in this invocation.
const BACKFILL_TIME_BUDGET: Duration = Duration::from_secs(4);
/// Most pages a sync job follows.
const SYNC_MAX_PAGES: u32 = 20;
/// Delay of the first transcript fetch a backfill queues, and the spacing between them.
const FETCH_DELAY_MS: u64 = 5_000;
const FETCH_SPACING_MS: u64 = 500;

/// The input of `backfill_calls`. All fields are optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillInput {
    /// Lower bound on `start_timestamp` (epoch ms). Default: the last backfill's start time
    /// minus [`OVERLAP_MS`], else 24 h ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Where a continued backfill resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination_key: Option<String>,
    /// When this backfill began (set on continuations; saved to kv when it completes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// Publish the `call.*` events the backfilled state makes due (default false: a backfill
    /// records history; the events stay due for the next webhook of that call).
    pub publish: bool,
}

/// Parses a job input; an empty input or `null` is the default.
///
/// # Errors
/// Bad request when the input is not the job's JSON shape.
pub fn parse_input<T: DeserializeOwned + Default>(job: &str, input: &str) -> Result<T, Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(T::default());
    }
    serde_json::from_str(trimmed)
        .map_err(|e| Error::bad_request(format!("`{job}` input is not the expected JSON: {e}")))
}

/// The backfill's lower bound when the input names none.
pub fn default_since(last_ms: Option<&str>, now_ms: i64) -> i64 {
    let last = last_ms
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|t| *t > 0);
    match last {
        Some(t) => t.saturating_sub(OVERLAP_MS).max(0),
        None => now_ms.saturating_sub(DEFAULT_WINDOW_MS).max(0),
    }
}

/// The current time in epoch ms.
///
/// # Errors
/// Permanent if the host's clock is unusable (a backfill window from 1970 would be wrong).
fn now_ms() -> Result<i64, Error> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    if ms < 1_000_000_000_000 {
        return Err(Error::permanent("the host clock is not usable"));
    }
    Ok(ms)
}

/// Runs a job by name.
///
/// # Errors
/// Permanent for an unknown job; otherwise what the job returns.
pub fn run(name: &str, input: &str) -> Result<(), Error> {
    match name {
        FETCH_CALL => fetch_call(input),
        SYNC_AGENTS => sync_list(SYNC_AGENTS, "agent", "agent_id", api::list_agents, |v| {
            vec![
                v.get("agent_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ]
        }),
        SYNC_PHONE_NUMBERS => sync_list(
            SYNC_PHONE_NUMBERS,
            "phone_number",
            "phone_number",
            api::list_phone_numbers,
            phone_number_agents,
        ),
        BACKFILL_CALLS => backfill_calls(input),
        CHECK_CREDENTIALS => check_credentials(),
        other => Err(Error::permanent(format!("unknown job `{other}`"))),
    }
}

/// One page of agents: Retell accepts the key, or its error says why not.
fn check_credentials() -> Result<(), Error> {
    let page = api::list_agents(None, JOB_TIMEOUT_MS)?;
    info!(
        "{CHECK_CREDENTIALS}: the key lists {} agents",
        page.items.len()
    );
    Ok(())
}

fn fetch_call(input: &str) -> Result<(), Error> {
    let input: FetchCallInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{FETCH_CALL}` input: {e}")))?;
    if input.call_id.is_empty() {
        return Err(Error::bad_request(format!(
            "`{FETCH_CALL}` input has an empty call_id"
        )));
    }
    let mut fresh = api::fetch_call(&input.call_id, JOB_TIMEOUT_MS)?;
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    if !owns_agent(agent_ids.as_deref(), fresh.agent_id.as_deref()) {
        warn!(
            "get-call {}: its agent does not belong to this tenant; not stored",
            input.call_id
        );
        return Ok(());
    }
    fresh.call_id.get_or_insert_with(|| input.call_id.clone());
    let record = merge(store::load_call(&input.call_id)?, "", &fresh);
    store::save_call(record, input.publish)?;
    Ok(())
}

/// Follows a paginated list, storing each item (of an owned agent) as a record of `kind`
/// keyed by its `key_field`.
fn sync_list(
    job: &str,
    kind: &str,
    key_field: &str,
    fetch: fn(Option<&str>, u32) -> Result<Page, Error>,
    agents_of: fn(&Value) -> Vec<String>,
) -> Result<(), Error> {
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    let (mut cursor, mut pages, mut stored) = (None::<String>, 0u32, 0usize);
    loop {
        let page = fetch(cursor.as_deref(), JOB_TIMEOUT_MS)?;
        pages += 1;
        for item in &page.items {
            let Some(key) = item
                .get(key_field)
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
            else {
                continue;
            };
            let owned = agent_ids.is_none()
                || agents_of(item)
                    .iter()
                    .any(|a| owns_agent(agent_ids.as_deref(), Some(a)));
            if owned {
                records::upsert(kind, key, item)?;
                stored += 1;
            }
        }
        match page.next_key(cursor.as_deref()) {
            Some(next) if pages < SYNC_MAX_PAGES => cursor = Some(next),
            Some(_) => {
                warn!("{job}: stopped after {pages} pages; the rest is left for the next run");
                break;
            }
            None => break,
        }
    }
    info!("{job}: stored {stored} {kind} records from {pages} pages");
    Ok(())
}

fn backfill_calls(input: &str) -> Result<(), Error> {
    let input: BackfillInput = parse_input(BACKFILL_CALLS, input)?;
    let clock = Instant::now();
    let now = now_ms()?;
    let started = input.started_ms.unwrap_or(now);
    let since = match input.since_ms {
        Some(s) => s,
        None => default_since(kv::get_string(BACKFILL_LAST_MS).as_deref(), now),
    };
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    let mut cursor = input.pagination_key.clone();
    let (mut pages, mut merged, mut fetches) = (0u32, 0usize, 0u64);
    loop {
        let body = api::list_calls_body(since, agent_ids.as_deref(), cursor.as_deref());
        let page = api::list_calls(&body, JOB_TIMEOUT_MS)?;
        pages += 1;
        for item in &page.items {
            let call: CallObject = match serde_json::from_value(item.clone()) {
                Ok(c) => c,
                Err(e) => {
                    warn!("{BACKFILL_CALLS}: skipping a call that does not parse: {e}");
                    continue;
                }
            };
            let Some(call_id) = call.call_id.clone().filter(|id| !id.is_empty()) else {
                continue;
            };
            if !owns_agent(agent_ids.as_deref(), call.agent_id.as_deref()) {
                continue;
            }
            let record = merge(store::load_call(&call_id)?, "", &call);
            // list-calls v3 leaves out transcripts and recordings: get them per call.
            let wants_details =
                record.transcript.is_none() && record.call_status.as_deref() == Some("ended");
            store::save_call(record, input.publish)?;
            merged += 1;
            if wants_details {
                let job = FetchCallInput {
                    call_id,
                    publish: input.publish,
                };
                enqueue_job(
                    FETCH_CALL,
                    &job,
                    FETCH_DELAY_MS + fetches * FETCH_SPACING_MS,
                )?;
                fetches += 1;
            }
        }
        let Some(next) = page.next_key(cursor.as_deref()) else {
            kv::set(BACKFILL_LAST_MS, started.to_string().as_bytes());
            info!(
                "{BACKFILL_CALLS}: done, {merged} calls from {pages} pages, {fetches} fetches queued"
            );
            return Ok(());
        };
        if pages >= BACKFILL_PAGES_PER_RUN || clock.elapsed() > BACKFILL_TIME_BUDGET {
            let rest = BackfillInput {
                since_ms: Some(since),
                pagination_key: Some(next),
                started_ms: Some(started),
                publish: input.publish,
            };
            enqueue_job(BACKFILL_CALLS, &rest, 0)?;
            info!("{BACKFILL_CALLS}: {merged} calls from {pages} pages; continuing in a new job");
            return Ok(());
        }
        cursor = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_714_608_000_000;

    #[test]
    fn since_defaults() {
        assert_eq!(default_since(None, NOW), NOW - DEFAULT_WINDOW_MS);
        assert_eq!(
            default_since(Some("1714600000000"), NOW),
            1_714_600_000_000 - OVERLAP_MS
        );
        assert_eq!(default_since(Some("garbage"), NOW), NOW - DEFAULT_WINDOW_MS);
        assert_eq!(default_since(Some("0"), NOW), NOW - DEFAULT_WINDOW_MS);
        assert_eq!(default_since(Some("10"), NOW), 0);
    }

    #[test]
    fn backfill_input_parses_and_round_trips() {
        assert_eq!(
            parse_input::<BackfillInput>(BACKFILL_CALLS, "").unwrap(),
            BackfillInput::default()
        );
        assert_eq!(
            parse_input::<BackfillInput>(BACKFILL_CALLS, "null").unwrap(),
            BackfillInput::default()
        );
        let i: BackfillInput = parse_input(BACKFILL_CALLS, r#"{"since_ms": 5}"#).unwrap();
        assert_eq!(i.since_ms, Some(5));
        assert!(!i.publish);
        assert!(matches!(
            parse_input::<BackfillInput>(BACKFILL_CALLS, r#"{"since_ms": "yesterday"}"#),
            Err(Error::BadRequest(_))
        ));
        let cont = BackfillInput {
            since_ms: Some(1),
            pagination_key: Some("k".into()),
            started_ms: Some(2),
            publish: false,
        };
        let v = serde_json::to_value(&cont).unwrap();
        assert_eq!(
            v,
            json!({"since_ms": 1, "pagination_key": "k", "started_ms": 2, "publish": false})
        );
        assert_eq!(serde_json::from_value::<BackfillInput>(v).unwrap(), cont);
    }

    #[test]
    fn clock_is_usable_natively() {
        assert!(now_ms().unwrap() > NOW);
    }
}
