//! The `reconcile_bookings` job. Cal.com makes one attempt per webhook and never retries, so a
//! webhook lost to a network blip or a hub restart is found here: the job reads the bookings
//! changed since its cursor (`GET /v2/bookings`, `take`/`skip` pages, oldest first), merges
//! each into its `booking` record by the same rules as a webhook ([`crate::merge`]) and so
//! publishes what a webhook would have, once: an event is due only when the merge changed the
//! booking's status, and a booking already announced announces nothing again.
//!
//! Two passes, each with its cursor in kv (the newest time it saw): `afterCreatedAt` (new
//! bookings, sorted by `sortCreated`) then `afterUpdatedAt` (changes, by `sortUpdatedAt`); a
//! booking never updated may have no `updatedAt` for the second to find. A pass starts 5
//! minutes before its cursor (clocks and commits lag), or, with no cursor yet, 24 hours back
//! (input `since`, RFC 3339, reaches further for a backfill). Pages follow the cursor: a full
//! page continues after its newest time (less a millisecond; a booking seen twice merges to
//! nothing new), or with `skip` when the whole page shares one time. Skip alone would miss a
//! booking when one before it changes while the job pages.
//!
//! One invocation reads at most 3 pages, then continues in a queued job carrying its place, so
//! its writes commit as it goes. A 429 before any page fails the job (the host retries after
//! the reset); after one, or when an answer spent a rate limit, the continuation waits for the
//! reset.

use plugin_sdk::{Error, enqueue_job, info, kv};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{self, format_ms, parse_ms};
use crate::{api, store};

/// The job's name.
pub const RECONCILE: &str = "reconcile_bookings";
/// How far before its cursor a pass starts.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;
/// How far back a pass with no cursor starts.
pub const LOOKBACK_MS: i64 = 24 * 3_600_000;
/// Bookings per page.
pub const PAGE: usize = 100;
/// Pages per invocation.
pub const PAGES_PER_RUN: u32 = 3;

/// Which list a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Bookings created since the cursor.
    Created,
    /// Bookings changed since the cursor.
    Updated,
}

impl Pass {
    /// The kv key of its cursor.
    pub fn cursor_key(self) -> &'static str {
        match self {
            Pass::Created => "reconcile_bookings.created_cursor",
            Pass::Updated => "reconcile_bookings.updated_cursor",
        }
    }

    fn filter(self) -> (&'static str, &'static str) {
        match self {
            Pass::Created => ("afterCreatedAt", "sortCreated"),
            Pass::Updated => ("afterUpdatedAt", "sortUpdatedAt"),
        }
    }

    /// The time a booking is ordered by in this pass (epoch ms).
    pub fn time_of(self, booking: &Value) -> Option<i64> {
        let at = |k: &str| booking.get(k).and_then(Value::as_str).and_then(parse_ms);
        match self {
            Pass::Created => at("createdAt"),
            Pass::Updated => at("updatedAt").or_else(|| at("createdAt")),
        }
    }
}

/// The job's input: empty for a scheduled run; a continuation carries its place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileInput {
    /// Start both passes here (RFC 3339) instead of at their cursors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// A continuation: the pass it is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<Pass>,
    /// A continuation: the time its next page starts after (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A continuation: bookings to skip at that time.
    #[serde(skip_serializing_if = "is_zero")]
    pub skip: usize,
    /// A continuation: the newest time its pass saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Where a pass is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The pass.
    pub pass: Pass,
    /// Its next page starts after this time (epoch ms).
    pub after: i64,
    /// Skipping this many bookings at it.
    pub skip: usize,
    /// The newest time seen (epoch ms).
    pub max_seen: Option<i64>,
}

/// Where `pass` starts: `since` if given, else its cursor less the overlap, else a day ago.
pub fn start(pass: Pass, since: Option<i64>, cursor: Option<i64>, now_ms: i64) -> Place {
    let after = since.unwrap_or_else(|| match cursor {
        Some(c) => c - OVERLAP_MS,
        None => now_ms - LOOKBACK_MS,
    });
    Place {
        pass,
        after,
        skip: 0,
        max_seen: None,
    }
}

/// Where the pass goes after a full page whose newest time is `page_max`: after it (less a
/// millisecond), or further into the same time when the page did not move past it.
pub fn next(place: Place, page_max: Option<i64>) -> Place {
    match page_max {
        Some(m) if m - 1 > place.after => Place {
            after: m - 1,
            skip: 0,
            ..place
        },
        _ => Place {
            skip: place.skip + PAGE,
            ..place
        },
    }
}

fn filters(place: &Place) -> Vec<(&'static str, String)> {
    let (after, sort) = place.pass.filter();
    vec![
        (after, format_ms(place.after)),
        (sort, "asc".into()),
        ("take", PAGE.to_string()),
        ("skip", place.skip.to_string()),
    ]
}

fn cursor(pass: Pass) -> Option<i64> {
    kv::get_string(pass.cursor_key()).and_then(|c| c.trim().parse().ok())
}

fn finish(place: &Place) {
    if let Some(newest) = place.max_seen.max(cursor(place.pass)) {
        kv::set(place.pass.cursor_key(), newest.to_string().as_bytes());
    }
}

fn continue_later(
    place: &Place,
    since: Option<&String>,
    delay_ms: u64,
    pages: u32,
) -> Result<(), Error> {
    let rest = ReconcileInput {
        since: since.cloned(),
        pass: Some(place.pass),
        after: Some(format_ms(place.after)),
        skip: place.skip,
        max_seen: place.max_seen.map(format_ms),
    };
    enqueue_job(RECONCILE, &rest, delay_ms)?;
    info!("{RECONCILE}: {pages} pages; continuing in {delay_ms} ms");
    Ok(())
}

fn parse_input(input: &str) -> Result<ReconcileInput, Error> {
    let t = input.trim();
    if t.is_empty() || t == "null" {
        return Ok(ReconcileInput::default());
    }
    serde_json::from_str(t).map_err(|e| Error::bad_request(format!("`{RECONCILE}` input: {e}")))
}

fn instant(what: &str, s: Option<&String>) -> Result<Option<i64>, Error> {
    s.map(|s| {
        parse_ms(s).ok_or_else(|| Error::bad_request(format!("`{what}` is not RFC 3339: `{s}`")))
    })
    .transpose()
}

/// Runs the job.
///
/// # Errors
/// Bad request for a malformed input; Cal.com's failure when the first page fails.
pub fn run(input: &str) -> Result<(), Error> {
    let input = parse_input(input)?;
    let since = instant("since", input.since.as_ref())?;
    let now = time::now_ms();
    let mut place = match input.pass {
        Some(pass) => Place {
            pass,
            after: instant("after", input.after.as_ref())?.unwrap_or(now - LOOKBACK_MS),
            skip: input.skip,
            max_seen: instant("max_seen", input.max_seen.as_ref())?,
        },
        None => start(Pass::Created, since, cursor(Pass::Created), now),
    };
    let mut pages = 0u32;
    loop {
        let (items, more, pause) = match api::list_bookings(&filters(&place)) {
            Ok(page) => page,
            Err(Error::Retryable(r)) if pages > 0 => {
                let wait = r.retry_after_ms.unwrap_or(api::DEFAULT_WAIT_MS);
                return continue_later(&place, input.since.as_ref(), wait, pages);
            }
            Err(e) => return Err(e),
        };
        pages += 1;
        let mut page_max = None;
        for item in &items {
            page_max = page_max.max(place.pass.time_of(item));
            if let Some(seen) = api::observation(item) {
                store::apply(&seen)?;
            }
        }
        place.max_seen = place.max_seen.max(page_max);
        if more && items.len() >= PAGE {
            place = next(place, page_max);
        } else {
            finish(&place);
            info!("{RECONCILE}: {:?} pass done", place.pass);
            if place.pass == Pass::Updated {
                return Ok(());
            }
            place = start(Pass::Updated, since, cursor(Pass::Updated), now);
        }
        if pause.is_some() || pages >= PAGES_PER_RUN {
            return continue_later(&place, input.since.as_ref(), pause.unwrap_or(0), pages);
        }
    }
}

#[cfg(test)]
mod tests;
