//! The tenant's connector config, read and checked: which calendar, which zone, slot length,
//! working hours and days, channel lifetime, how far back the first sync reads, and whether
//! Google emails attendees. Every key is optional; a value of the wrong shape is a permanent
//! error naming the key (an operator must fix `hub.toml`).

use plugin_sdk::{Error, config, kv};
use serde_json::Value;

use crate::zone::Zone;

/// Config key: the calendar the connector works on (default `primary`, the account's own).
pub const CALENDAR_ID: &str = "calendar_id";
/// Config key: the IANA zone slots are written in and events are created in.
pub const TIME_ZONE: &str = "time_zone";
/// Config key: the length of a slot (and the grid slots start on), in minutes.
pub const SLOT_MINUTES: &str = "slot_minutes";
/// Config key: the hours slots are offered in, `"09:00-17:00"` (or several, comma-separated or
/// a list: `["09:00-12:00", "13:00-17:00"]`).
pub const WORKING_HOURS: &str = "working_hours";
/// Config key: the days slots are offered on, `["mon", "tue", ...]`.
pub const WORKING_DAYS: &str = "working_days";
/// Config key: the lifetime asked for a push channel, in seconds (Google may answer another).
pub const CHANNEL_TTL_SECS: &str = "channel_ttl_secs";
/// Config key: how many days back the first (full) sync lists.
pub const SYNC_DAYS_BACK: &str = "sync_days_back";
/// Config key: whom Google emails about events the connector makes, changes or cancels
/// (`all`, `externalOnly`, `none`).
pub const SEND_UPDATES: &str = "send_updates";

/// The default calendar.
pub const PRIMARY: &str = "primary";
/// The default slot length.
pub const DEFAULT_SLOT_MINUTES: i64 = 30;
/// The default days back of a full sync.
pub const DEFAULT_DAYS_BACK: i64 = 30;

/// kv key of the zone Google says a calendar is in (from its events list), the default when
/// neither the input nor the config names one.
pub fn calendar_zone_key(calendar: &str) -> String {
    format!("zone:{calendar}")
}

/// The calendar an input names, else the config's, else `primary`.
///
/// # Errors
/// Permanent when the config value is not a string, or the id is empty or too long.
pub fn calendar_id(input: Option<&str>) -> Result<String, Error> {
    let configured: Option<String> = config(CALENDAR_ID)?;
    let id = input
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            configured
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| PRIMARY.to_string());
    if id.len() > 1024 || id.chars().any(char::is_control) {
        return Err(Error::permanent(format!(
            "`{CALENDAR_ID}` is not a calendar id: {} characters",
            id.len()
        )));
    }
    Ok(id)
}

/// The zone an input names, else the config's, else the calendar's own (as its events list
/// said), else UTC.
///
/// # Errors
/// Permanent for a name the zone table does not know (a typo would put every slot at the
/// wrong hour).
pub fn zone(input: Option<&str>, calendar: &str) -> Result<Zone, Error> {
    let given = input.map(str::trim).filter(|s| !s.is_empty());
    let configured: Option<String> = config(TIME_ZONE)?;
    let configured = configured
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let name = given
        .map(str::to_string)
        .or(configured)
        .or_else(|| kv::get_string(&calendar_zone_key(calendar)));
    match name {
        None => Ok(Zone::utc()),
        Some(n) => Zone::named(&n).ok_or_else(|| {
            Error::permanent(format!(
                "`{n}` is not an IANA time zone name (America/New_York, Europe/London, ...)"
            ))
        }),
    }
}

fn whole(key: &str, v: Option<Value>, min: i64, max: i64) -> Result<Option<i64>, Error> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.is_finite() && n.fract() == 0.0 && (min as f64..=max as f64).contains(&n) => {
            Ok(Some(n as i64))
        }
        _ => Err(Error::permanent(format!(
            "`{key}` must be a whole number from {min} to {max}"
        ))),
    }
}

/// Minutes from an input value (a number or digits; templates render numbers as text), 5 to
/// a week; `None` for nothing or zero (a template's empty value).
///
/// # Errors
/// Permanent for anything else.
pub fn minutes(field: &str, v: Option<&Value>) -> Result<Option<i64>, Error> {
    if v.is_some_and(|v| v.as_f64() == Some(0.0) || v.as_str().is_some_and(|s| s.trim() == "0")) {
        return Ok(None);
    }
    whole(field, v.cloned(), 5, 10_080)
}

/// `slot_minutes`: 5 to 480, default 30.
///
/// # Errors
/// Permanent for another value.
pub fn slot_minutes() -> Result<i64, Error> {
    Ok(whole(SLOT_MINUTES, config(SLOT_MINUTES)?, 5, 480)?.unwrap_or(DEFAULT_SLOT_MINUTES))
}

/// `sync_days_back`: 0 to 3650, default 30.
///
/// # Errors
/// Permanent for another value.
pub fn sync_days_back() -> Result<i64, Error> {
    Ok(whole(SYNC_DAYS_BACK, config(SYNC_DAYS_BACK)?, 0, 3650)?.unwrap_or(DEFAULT_DAYS_BACK))
}

/// `channel_ttl_secs`: 60 seconds to 30 days, or none (Google's default).
///
/// # Errors
/// Permanent for another value.
pub fn channel_ttl_secs() -> Result<Option<i64>, Error> {
    whole(CHANNEL_TTL_SECS, config(CHANNEL_TTL_SECS)?, 60, 30 * 86_400)
}

/// Whom Google emails: the input's choice, else `send_updates`, else `all` (an attendee hears
/// of their appointment).
///
/// # Errors
/// Permanent for a value other than `all`, `externalOnly`, `none`.
pub fn send_updates(input: Option<&str>) -> Result<String, Error> {
    let configured: Option<String> = config(SEND_UPDATES)?;
    let v = input
        .map(str::to_string)
        .or(configured)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "all".into());
    match v.as_str() {
        "all" | "externalOnly" | "none" => Ok(v),
        other => Err(Error::permanent(format!(
            "`{SEND_UPDATES}` must be `all`, `externalOnly` or `none`, not `{other}`"
        ))),
    }
}

/// A span of a working day, in minutes after midnight (local).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// From (inclusive).
    pub from: i64,
    /// Until (exclusive); at most 24:00.
    pub until: i64,
}

fn clock(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// Reads `"09:00-17:00"`, several of them comma-separated, or a list of them.
///
/// # Errors
/// Permanent for anything else, or an empty or backwards span.
pub fn parse_hours(v: &Value) -> Result<Vec<Hours>, Error> {
    let bad = || {
        Error::permanent(format!(
            "`{WORKING_HOURS}` must be spans like \"09:00-17:00\" (or a list of them)"
        ))
    };
    let texts: Vec<String> = match v {
        Value::String(s) => s.split(',').map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let mut spans = Vec::new();
    for t in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let (a, b) = t.split_once('-').ok_or_else(bad)?;
        let (from, until) = (clock(a).ok_or_else(bad)?, clock(b).ok_or_else(bad)?);
        if until <= from {
            return Err(bad());
        }
        spans.push(Hours { from, until });
    }
    if spans.is_empty() {
        return Err(bad());
    }
    spans.sort_by_key(|h| h.from);
    Ok(spans)
}

/// `working_hours`, default 09:00-17:00.
///
/// # Errors
/// As [`parse_hours`].
pub fn working_hours() -> Result<Vec<Hours>, Error> {
    match config::<Value>(WORKING_HOURS)? {
        None | Some(Value::Null) => Ok(vec![Hours {
            from: 9 * 60,
            until: 17 * 60,
        }]),
        Some(v) => parse_hours(&v),
    }
}

/// The weekday (0 Monday ... 6 Sunday) a name means: `mon` or `Monday`, any case.
fn weekday(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let names = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    names
        .iter()
        .position(|n| *n == s || (s.len() == 3 && n.starts_with(s.as_str())))
}

/// Reads `["mon", "tue", ...]` or `"mon,tue"` into flags, Monday first.
///
/// # Errors
/// Permanent for an unknown day or nothing.
pub fn parse_days(v: &Value) -> Result<[bool; 7], Error> {
    let bad = || {
        Error::permanent(format!(
            "`{WORKING_DAYS}` must name days: [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]"
        ))
    };
    let texts: Vec<String> = match v {
        Value::String(s) => s.split(',').map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let mut days = [false; 7];
    for t in texts.iter().filter(|t| !t.trim().is_empty()) {
        days[weekday(t).ok_or_else(bad)?] = true;
    }
    if days.iter().any(|d| *d) {
        Ok(days)
    } else {
        Err(bad())
    }
}

/// `working_days`, default Monday to Friday.
///
/// # Errors
/// As [`parse_days`].
pub fn working_days() -> Result<[bool; 7], Error> {
    match config::<Value>(WORKING_DAYS)? {
        None | Some(Value::Null) => Ok([true, true, true, true, true, false, false]),
        Some(v) => parse_days(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hours_and_days() {
        assert_eq!(
            parse_hours(&json!("13:00-17:00, 09:00-12:30")).unwrap(),
            vec![
                Hours {
                    from: 540,
                    until: 750
                },
                Hours {
                    from: 780,
                    until: 1020
                }
            ]
        );
        assert_eq!(
            parse_hours(&json!(["08:00-24:00"])).unwrap(),
            vec![Hours {
                from: 480,
                until: 1440
            }]
        );
        for bad in [
            json!("9-5"),
            json!("17:00-09:00"),
            json!(""),
            json!(9),
            json!(["09:00-25:00"]),
        ] {
            assert!(parse_hours(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_days(&json!(["Mon", "wednesday", "sun"])).unwrap(),
            [true, false, true, false, false, false, true]
        );
        assert_eq!(parse_days(&json!("sat,sun")).unwrap()[5..], [true, true]);
        for bad in [json!([]), json!(["funday"]), json!([1]), json!("x")] {
            assert!(parse_days(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(minutes("d", Some(&json!("45"))).unwrap(), Some(45));
        assert_eq!(minutes("d", None).unwrap(), None);
        assert_eq!(minutes("d", Some(&json!(0))).unwrap(), None);
        for bad in [json!(2.5), json!(-5), json!("soon"), json!(1), json!({})] {
            assert!(minutes("d", Some(&bad)).is_err(), "{bad}");
        }
    }
}
