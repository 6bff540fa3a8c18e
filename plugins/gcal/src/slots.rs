//! The `get_slots` action (`calendar:get_slots`): the free slots of the calendar in a window
//! (default: now until 7 days later). Google has no notion of slots, so they are made here:
//! `POST /freeBusy` `{timeMin, timeMax, timeZone, items: [{id}]}` gives the busy intervals;
//! the slots are every `slot_minutes` from the start of each span of `working_hours`, on
//! `working_days`, in the zone (the input's, else config `time_zone`, else the calendar's),
//! that fit in the span and overlap nothing busy. Local hours are turned into instants with the
//! zone's rules ([`crate::zone`]), so a 09:00 slot is at 09:00 on both sides of a change of
//! clocks. Answers `{"slots": [{start, end}], "time_zone"}`, earliest first, each time with
//! the zone's offset.

use plugin_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{self, GoogleError};
use crate::config::{self, Hours};
use crate::time::{format_utc, now_ms, parse_ms};
use crate::zone::Zone;

/// The action's name.
pub const GET_SLOTS: &str = "get_slots";
/// The default window.
pub const WEEK_MS: i64 = 7 * 86_400_000;
/// The longest window asked of Google at once.
pub const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

/// The action's input (the `calendar:get_slots` operation's, and the calendar).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SlotsInput {
    /// From when (RFC 3339; default now).
    pub start: Option<String>,
    /// Until when (RFC 3339; default 7 days after `start`).
    pub end: Option<String>,
    /// Slot length (default `slot_minutes`).
    pub duration_minutes: Option<Value>,
    /// The zone the slots are written in.
    pub time_zone: Option<String>,
    /// The kind of appointment: one calendar has one kind, so it is not read.
    pub event_type: Option<Value>,
    /// The calendar (default: config `calendar_id`).
    pub calendar_id: Option<String>,
}

/// A free slot, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// When it starts (RFC 3339 with the zone's offset).
    pub start: String,
    /// When it ends.
    pub end: String,
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Window start (epoch ms).
    pub from_ms: i64,
    /// Window end.
    pub to_ms: i64,
    /// The zone of the working hours and of the answer.
    pub zone: Zone,
    /// Working hours.
    pub hours: Vec<Hours>,
    /// Working days, Monday first.
    pub days: [bool; 7],
    /// Minutes between slot starts.
    pub step_minutes: i64,
    /// A slot's length in minutes.
    pub length_minutes: i64,
}

/// The free slots of a plan given the busy intervals (epoch ms, end exclusive), none starting
/// before `not_before`: `(start, end)`, earliest first.
pub fn free(plan: &Plan, busy: &[(i64, i64)], not_before: i64) -> Vec<(i64, i64)> {
    let from = plan.from_ms.max(not_before);
    let (first_day, _) = plan.zone.local(from);
    let (last_day, _) = plan.zone.local(plan.to_ms);
    let len = plan.length_minutes * 60_000;
    let step = plan.step_minutes.max(1);
    let mut out = Vec::new();
    for day in first_day..=last_day {
        // 1970-01-01 was a Thursday: Monday is 0.
        let weekday = (day + 3).rem_euclid(7) as usize;
        if !plan.days[weekday] {
            continue;
        }
        for h in &plan.hours {
            let mut t = h.from;
            while t + plan.length_minutes <= h.until {
                let start = plan.zone.instant(day, t * 60_000);
                let end = start + len;
                let clear = !busy.iter().any(|(b0, b1)| *b0 < end && start < *b1);
                if start >= from && end <= plan.to_ms && clear && !out.contains(&(start, end)) {
                    out.push((start, end));
                }
                t += step;
            }
        }
    }
    out.sort_unstable();
    out
}

/// The slots written in the plan's zone.
pub fn written(plan: &Plan, free: &[(i64, i64)]) -> Vec<Slot> {
    free.iter()
        .map(|(s, e)| Slot {
            start: plan.zone.format(*s),
            end: plan.zone.format(*e),
        })
        .collect()
}

/// The busy intervals of a `FreeBusyResponse` for `calendar` (the one calendar asked for,
/// whatever key Google files it under).
///
/// # Errors
/// Google's per-calendar errors: `notFound` is permanent (naming the calendar), others
/// retryable; permanent for an answer of another shape.
pub fn busy_of(answer: &Value, calendar: &str) -> Result<Vec<(i64, i64)>, Error> {
    let calendars = answer
        .get("calendars")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::permanent("Google's free/busy answer has no `calendars`"))?;
    let entry = calendars
        .get(calendar)
        .or_else(|| {
            (calendars.len() == 1)
                .then(|| calendars.values().next())
                .flatten()
        })
        .ok_or_else(|| {
            Error::permanent(format!(
                "Google's free/busy answer does not mention `{calendar}`"
            ))
        })?;
    if let Some(errors) = entry
        .get("errors")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
    {
        let said = GoogleError::read(
            &serde_json::to_vec(&json!({"error": {"errors": errors}})).unwrap_or_default(),
        );
        let reasons = said.reasons.join(", ");
        return Err(if said.has("notFound") {
            Error::permanent(format!(
                "Google Calendar has no calendar `{calendar}` that this account can see ({reasons})"
            ))
        } else {
            Error::retryable(format!(
                "Google could not read the free/busy of `{calendar}`: {reasons}"
            ))
        });
    }
    Ok(entry
        .get("busy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let at = |k: &str| b.get(k).and_then(Value::as_str).and_then(parse_ms);
            Some((at("start")?, at("end")?))
        })
        .collect())
}

/// `POST /freeBusy` for one calendar.
///
/// # Errors
/// As [`api::failure`] and [`busy_of`].
pub fn query(
    calendar: &str,
    from_ms: i64,
    to_ms: i64,
    zone: &Zone,
) -> Result<Vec<(i64, i64)>, Error> {
    let body = json!({
        "timeMin": format_utc(from_ms),
        "timeMax": format_utc(to_ms),
        "timeZone": zone.name(),
        "items": [{ "id": calendar }],
    });
    let resp = api::call("POST", "/freeBusy").json(&body)?.send()?;
    let resp = api::check(resp, Some(calendar))?;
    busy_of(&api::object(&resp, "a free/busy query")?, calendar)
}

/// The plan of a window in a zone, with the configured hours and days and a slot length.
///
/// # Errors
/// Permanent when the config's hours, days or slot length are malformed.
pub fn plan(from_ms: i64, to_ms: i64, zone: Zone, length: Option<i64>) -> Result<Plan, Error> {
    let step = config::slot_minutes()?;
    Ok(Plan {
        from_ms,
        to_ms,
        zone,
        hours: config::working_hours()?,
        days: config::working_days()?,
        step_minutes: step,
        length_minutes: length.unwrap_or(step),
    })
}

/// The next free slots after `after_ms` (in the week from it), for an answer that offers
/// them; `None` when they cannot be read.
pub fn next_free(
    calendar: &str,
    zone: &Zone,
    after_ms: i64,
    length: i64,
    count: usize,
) -> Option<Vec<Slot>> {
    let from = after_ms.max(now_ms());
    let p = plan(from, from + WEEK_MS, *zone, Some(length)).ok()?;
    let busy = query(calendar, p.from_ms, p.to_ms, zone).ok()?;
    let found: Vec<(i64, i64)> = free(&p, &busy, now_ms())
        .into_iter()
        .filter(|(s, _)| *s > after_ms)
        .take(count)
        .collect();
    Some(written(&p, &found))
}

fn instant(field: &str, text: Option<&str>) -> Result<Option<i64>, Error> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => parse_ms(t).map(Some).ok_or_else(|| {
            Error::permanent(format!(
                "`{field}` must be an RFC 3339 time with its offset (2026-03-09T09:00:00-04:00), not `{t}`"
            ))
        }),
    }
}

/// Runs `get_slots`.
///
/// # Errors
/// Permanent for a bad input or config; Google's refusals as [`api::failure`].
pub fn run(input: &str) -> Result<String, Error> {
    let input: SlotsInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{GET_SLOTS}` input: {e}")))?;
    let calendar = config::calendar_id(input.calendar_id.as_deref())?;
    let now = now_ms();
    let from_ms = instant("start", input.start.as_deref())?.unwrap_or(now);
    let to_ms = instant("end", input.end.as_deref())?.unwrap_or(from_ms + WEEK_MS);
    if to_ms <= from_ms {
        return Err(Error::permanent("`end` must be after `start`"));
    }
    if to_ms - from_ms > MAX_WINDOW_MS {
        return Err(Error::permanent(
            "`end` may be at most 31 days after `start`",
        ));
    }
    let zone = config::zone(input.time_zone.as_deref(), &calendar)?;
    let length = config::minutes("duration_minutes", input.duration_minutes.as_ref())?;
    let p = plan(from_ms, to_ms, zone, length)?;
    let busy = query(&calendar, from_ms, to_ms, &zone)?;
    let slots = written(&p, &free(&p, &busy, now));
    Ok(json!({ "slots": slots, "time_zone": zone.name() }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny_plan(from: &str, to: &str) -> Plan {
        Plan {
            from_ms: parse_ms(from).unwrap(),
            to_ms: parse_ms(to).unwrap(),
            zone: Zone::named("America/New_York").unwrap(),
            hours: vec![Hours {
                from: 9 * 60,
                until: 12 * 60,
            }],
            days: [true, true, true, true, true, false, false],
            step_minutes: 60,
            length_minutes: 60,
        }
    }

    #[test]
    fn working_hours_across_the_change_of_clocks() {
        // Friday 6 March (EST) to Monday 9 March (EDT): the weekend gives nothing.
        let p = ny_plan("2026-03-06T00:00:00-05:00", "2026-03-10T00:00:00-04:00");
        let slots = written(&p, &free(&p, &[], 0));
        let starts: Vec<&str> = slots.iter().map(|s| s.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-03-06T09:00:00-05:00",
                "2026-03-06T10:00:00-05:00",
                "2026-03-06T11:00:00-05:00",
                "2026-03-09T09:00:00-04:00",
                "2026-03-09T10:00:00-04:00",
                "2026-03-09T11:00:00-04:00"
            ]
        );
        assert_eq!(slots[3].end, "2026-03-09T10:00:00-04:00");
    }

    #[test]
    fn busy_time_and_the_window_cut_slots() {
        let p = ny_plan("2026-03-09T09:30:00-04:00", "2026-03-09T12:00:00-04:00");
        let busy = vec![(
            parse_ms("2026-03-09T10:15:00-04:00").unwrap(),
            parse_ms("2026-03-09T10:45:00-04:00").unwrap(),
        )];
        let slots = written(&p, &free(&p, &busy, 0));
        assert_eq!(
            slots.len(),
            1,
            "09:00 starts too early, 10:00 is busy: {slots:?}"
        );
        assert_eq!(slots[0].start, "2026-03-09T11:00:00-04:00");
        assert!(free(&p, &[], parse_ms("2026-03-09T11:30:00-04:00").unwrap()).is_empty());
    }

    #[test]
    fn free_busy_answers() {
        let answer = json!({"kind": "calendar#freeBusy", "timeMin": "2026-03-09T13:00:00.000Z",
            "timeMax": "2026-03-10T13:00:00.000Z", "calendars": {"frontdesk@abc.example": {"busy": [
                {"start": "2026-03-09T14:00:00Z", "end": "2026-03-09T15:00:00Z"},
                {"start": "bad", "end": "2026-03-09T15:00:00Z"}]}}});
        assert_eq!(
            busy_of(&answer, "primary").unwrap().len(),
            1,
            "the one calendar asked for"
        );
        let missing = json!({"calendars": {"x@y.z": {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}}});
        assert!(
            matches!(busy_of(&missing, "x@y.z"), Err(Error::Permanent(m)) if m.contains("`x@y.z`"))
        );
        let backend = json!({"calendars": {"x@y.z": {"errors": [{"domain": "global", "reason": "backendError"}]}}});
        assert!(matches!(
            busy_of(&backend, "x@y.z"),
            Err(Error::Retryable(_))
        ));
        assert!(busy_of(&json!({"kind": "x"}), "x").is_err());
    }
}
