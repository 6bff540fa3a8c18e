//! The `get_slots` action (`calendar:get_slots`): `GET /v2/slots` (`cal-api-version:
//! 2024-09-04`, `format=range`) for the event type in a window (default: now until 7 days
//! later), flattened from Cal.com's per-day map (`{"2026-01-05": [{start, end}], ...}`) into
//! one list, earliest first: `{"slots": [{start, end}]}`, each time in the zone asked for.

use plugin_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{self, SLOTS_VERSION};
use crate::event_type::{self, EventType};
use crate::time::{self, format_ms, parse_ms};

/// The action's name.
pub const GET_SLOTS: &str = "get_slots";
/// The default window.
pub const WEEK_MS: i64 = 7 * 86_400_000;

/// The action's input (the `calendar:get_slots` operation's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SlotsInput {
    /// From when (RFC 3339; default now).
    pub start: Option<String>,
    /// Until when (RFC 3339; default 7 days after `start`).
    pub end: Option<String>,
    /// Slot length, for event types with several.
    pub duration_minutes: Option<Value>,
    /// The zone the slots are written in.
    pub time_zone: Option<String>,
    /// The event type (id or slug).
    pub event_type: Option<Value>,
}

/// A free slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// When it starts (RFC 3339, with the offset Cal.com wrote).
    pub start: String,
    /// When it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The event type.
    pub event_type: EventType,
    /// Window start, epoch ms.
    pub from_ms: i64,
    /// Window end, epoch ms.
    pub to_ms: i64,
    /// IANA zone of the answer.
    pub time_zone: String,
    /// Slot length in minutes, if asked.
    pub duration: Option<i64>,
}

/// The `GET /v2/slots` URL of a query.
pub fn url(q: &Query) -> String {
    let mut pairs = q.event_type.query();
    pairs.push(("start", format_ms(q.from_ms)));
    pairs.push(("end", format_ms(q.to_ms)));
    pairs.push(("timeZone", q.time_zone.clone()));
    if let Some(d) = q.duration {
        pairs.push(("duration", d.to_string()));
    }
    pairs.push(("format", "range".into()));
    format!("/slots{}", api::query(&pairs))
}

/// The slots of an answer, earliest first: the per-day map under `data` (or `data.slots`, as
/// older versions nest it), each slot `{start, end}`, `{start}` or `{time}` (an end then comes
/// from `duration` when known), or a bare time.
pub fn flatten(answer: &Value, duration: Option<i64>) -> Vec<Slot> {
    let data = answer.get("data").unwrap_or(&Value::Null);
    let days = data.get("slots").filter(|s| s.is_object()).unwrap_or(data);
    let mut out: Vec<(i64, Slot)> = Vec::new();
    for items in days.as_object().into_iter().flat_map(|m| m.values()) {
        for item in items.as_array().into_iter().flatten() {
            let start = match item {
                Value::String(s) => Some(s.clone()),
                _ => item
                    .get("start")
                    .or_else(|| item.get("time"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let Some((start, at)) = start.and_then(|s| parse_ms(&s).map(|at| (s, at))) else {
                continue;
            };
            let end = item
                .get("end")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| duration.map(|d| format_ms(at + d * 60_000)));
            if !out.iter().any(|(t, _)| *t == at) {
                out.push((at, Slot { start, end }));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, s)| s).collect()
}

/// The free slots of a query.
///
/// # Errors
/// Cal.com's refusals ([`api::failure`]); transport failures are retryable.
pub fn free_slots(q: &Query) -> Result<Vec<Slot>, Error> {
    let answer: Value =
        api::check(api::call("GET", &url(q), Some(SLOTS_VERSION)).send()?)?.json()?;
    Ok(flatten(&answer, q.duration))
}

fn instant(field: &str, text: Option<&str>) -> Result<Option<i64>, Error> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => parse_ms(t).map(Some).ok_or_else(|| {
            Error::permanent(format!(
                "`{field}` must be an RFC 3339 time with its offset (2026-01-05T09:00:00-05:00), not `{t}`"
            ))
        }),
    }
}

/// The query an input asks for, at `now_ms`.
///
/// # Errors
/// Permanent for a time that is not RFC 3339, a window that ends before it starts, or no event
/// type.
pub fn query_of(input: &SlotsInput, now_ms: i64) -> Result<Query, Error> {
    let from_ms = instant("start", input.start.as_deref())?.unwrap_or(now_ms);
    let to_ms = instant("end", input.end.as_deref())?.unwrap_or(from_ms + WEEK_MS);
    if to_ms <= from_ms {
        return Err(Error::permanent("`end` must be after `start`"));
    }
    Ok(Query {
        event_type: EventType::resolve(input.event_type.as_ref())?,
        from_ms,
        to_ms,
        time_zone: event_type::time_zone(input.time_zone.as_deref())?,
        duration: event_type::minutes(input.duration_minutes.as_ref())?,
    })
}

/// Runs `get_slots`.
///
/// # Errors
/// As [`query_of`] and [`free_slots`].
pub fn run(input: &str) -> Result<String, Error> {
    let input: SlotsInput = serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("`{GET_SLOTS}` input: {e}")))?;
    let slots = free_slots(&query_of(&input, time::now_ms())?)?;
    Ok(json!({ "slots": slots }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::harness::{Answer, Harness};

    use crate::Calcom;

    #[test]
    fn the_per_day_map_becomes_one_list_earliest_first() {
        let answer = json!({"status": "success", "data": {
            "2050-09-06": [{"start": "2050-09-06T09:00:00.000+02:00", "end": "2050-09-06T10:00:00.000+02:00"}],
            "2050-09-05": [{"start": "2050-09-05T10:00:00.000+02:00", "end": "2050-09-05T11:00:00.000+02:00"},
                           {"start": "2050-09-05T09:00:00.000+02:00", "end": "2050-09-05T10:00:00.000+02:00"}]
        }});
        let slots = flatten(&answer, None);
        let starts: Vec<&str> = slots.iter().map(|s| s.start.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2050-09-05T09:00:00.000+02:00",
                "2050-09-05T10:00:00.000+02:00",
                "2050-09-06T09:00:00.000+02:00"
            ]
        );
        assert_eq!(
            slots[0].end.as_deref(),
            Some("2050-09-05T10:00:00.000+02:00")
        );
        // Older shapes: nested under `slots`, `{time}`, bare strings; ends from the duration.
        let old = json!({"data": {"slots": {"2050-09-05": [{"time": "2050-09-05T07:00:00Z"}, "2050-09-05T07:30:00Z"]}}});
        let slots = flatten(&old, Some(30));
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].end.as_deref(), Some("2050-09-05T07:30:00Z"));
        assert!(flatten(&json!({"status": "success", "data": {}}), None).is_empty());
    }

    fn hub() -> Harness<Calcom> {
        Harness::<Calcom>::new()
            .credential("api_key", "cal_live_test")
            .config("event_type_id", 1001)
            .config("time_zone", "America/New_York")
    }

    #[test]
    fn asks_for_the_week_ahead_in_the_tenants_zone_with_the_slots_version() {
        let mut hub = hub();
        hub.on(
            "GET",
            "https://api.cal.com/v2/slots?",
            Answer::json(200, &json!({"status": "success", "data": {
                "2026-01-02": [{"start": "2026-01-02T09:00:00.000-05:00", "end": "2026-01-02T09:30:00.000-05:00"}]}})),
        );
        let out = hub.action(GET_SLOTS, &json!({}), "k").unwrap();
        assert_eq!(
            out,
            json!({"slots": [{"start": "2026-01-02T09:00:00.000-05:00", "end": "2026-01-02T09:30:00.000-05:00"}]})
        );
        let sent = &hub.requests()[0];
        assert_eq!(
            sent.url,
            "https://api.cal.com/v2/slots?eventTypeId=1001&start=2026-01-01T00%3A00%3A00Z&end=2026-01-08T00%3A00%3A00Z&timeZone=America%2FNew_York&format=range"
        );
        assert_eq!(sent.header("cal-api-version"), Some("2024-09-04"));
        assert_eq!(sent.header("authorization"), Some("Bearer cal_live_test"));
    }

    #[test]
    fn the_input_wins_over_the_config() {
        let mut hub = hub().config("username", "ada");
        hub.on(
            "GET",
            "https://api.cal.com/v2/slots?",
            Answer::json(200, &json!({"data": {}})),
        );
        let input = json!({"start": "2026-01-05T09:00:00-05:00", "end": "2026-01-05T17:00:00-05:00",
                           "duration_minutes": "45", "time_zone": "Europe/London", "event_type": "consult"});
        assert_eq!(
            hub.action(GET_SLOTS, &input, "k").unwrap(),
            json!({"slots": []})
        );
        assert_eq!(
            hub.requests()[0].url,
            "https://api.cal.com/v2/slots?eventTypeSlug=consult&username=ada&start=2026-01-05T14%3A00%3A00Z&end=2026-01-05T22%3A00%3A00Z&timeZone=Europe%2FLondon&duration=45&format=range"
        );
    }

    #[test]
    fn bad_inputs_and_no_event_type_are_permanent() {
        let mut hub = Harness::<Calcom>::new().credential("api_key", "k");
        let none = hub.action(GET_SLOTS, &json!({}), "k").unwrap_err();
        assert!(
            none.is_permanent() && none.to_string().contains("event_type_id"),
            "{none}"
        );
        let mut hub = self::hub();
        for bad in [
            json!({"start": "tomorrow"}),
            json!({"start": "2026-01-05T09:00:00Z", "end": "2026-01-05T08:00:00Z"}),
            json!({"duration_minutes": "long"}),
        ] {
            assert!(
                hub.action(GET_SLOTS, &bad, "k").unwrap_err().is_permanent(),
                "{bad}"
            );
        }
        assert!(hub.requests().is_empty());
        hub.on("GET", "https://api.cal.com/v2/slots?", Answer::status(502));
        assert!(
            hub.action(GET_SLOTS, &json!({}), "k")
                .unwrap_err()
                .is_retryable()
        );
    }
}
