//! Times: Cal.com writes ISO 8601 with a zone (`2026-01-05T09:00:00.000Z` in API answers and
//! webhooks, `2026-01-05T10:00:00.000+01:00` in slots); the capability takes RFC 3339 with any
//! offset. Parsing both to epoch milliseconds, and writing UTC back. Pure.

use plugin_sdk::time::{days_from_civil, rfc3339};

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A UTC offset `Z`, `±HH:MM` or `±HHMM`, in minutes.
fn offset_minutes(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest: String = s.get(1..)?.chars().filter(|c| *c != ':').collect();
    if rest.len() != 4 {
        return None;
    }
    let (h, m) = (digits(rest.get(..2)?)?, digits(rest.get(2..)?)?);
    (h <= 23 && m <= 59).then_some(sign * (h * 60 + m))
}

/// Epoch milliseconds of an RFC 3339 date-time with its zone (`Z` or an offset; a fraction of
/// any length). `None` for anything else, a bare date or a time without a zone included: a
/// time whose zone is unknown is not an instant.
///
/// ```
/// assert_eq!(calcom::time::parse_ms("2026-01-05T10:00:00+01:00"), Some(1_767_603_600_000));
/// assert_eq!(calcom::time::parse_ms("2026-01-05T09:00:00"), None);
/// ```
pub fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut ymd = date.split('-');
    let (y, mo, d) = (
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
    );
    if ymd.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let zone_at = time.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = time.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (h, mi, sec) = (
        digits(parts.next()?)?,
        digits(parts.next()?)?,
        digits(parts.next()?)?,
    );
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let three: String = fraction.chars().chain("000".chars()).take(3).collect();
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits(&three)?
    };
    let local = days_from_civil(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + sec) * 1000 + millis;
    Some(local - offset_minutes(zone)? * 60_000)
}

/// Epoch milliseconds as RFC 3339 UTC: `2026-01-05T09:00:00Z`, with `.mmm` only when there are
/// milliseconds.
///
/// ```
/// assert_eq!(calcom::time::format_ms(1_767_603_600_000), "2026-01-05T09:00:00Z");
/// assert_eq!(calcom::time::format_ms(1_767_603_600_250), "2026-01-05T09:00:00.250Z");
/// ```
pub fn format_ms(ms: i64) -> String {
    let text = rfc3339(ms.div_euclid(1000));
    match ms.rem_euclid(1000) {
        0 => text,
        frac => format!("{}.{frac:03}Z", text.trim_end_matches('Z')),
    }
}

/// An RFC 3339 time in UTC (what records and Cal.com's requests carry); `None` when it does not
/// parse.
pub fn utc(s: &str) -> Option<String> {
    parse_ms(s).map(format_ms)
}

/// The host's clock (the harness's in tests), in epoch milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(plugin_sdk::now_ms()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_with_zones() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2026-01-05T09:00:00.000Z"),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            parse_ms("2026-01-05T04:00:00-05:00"),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            parse_ms("2026-01-05T14:30:00+0530"),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            parse_ms("2026-01-05T09:00:00.1234567Z"),
            Some(1_767_603_600_123)
        );
        assert_eq!(parse_ms("2026-01-05 09:00:00Z"), Some(1_767_603_600_000));
    }

    #[test]
    fn what_is_not_an_instant() {
        for bad in [
            "",
            "2026-01-05",
            "2026-01-05T09:00:00",
            "2026-01-05T09:00Z",
            "2026-13-05T09:00:00Z",
            "2026-01-05T24:00:00Z",
            "2026-01-05T09:00:00+1",
            "2026-01-05T09:00:00.x1Z",
            "tomorrow at nine",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn written_back_in_utc() {
        assert_eq!(
            utc("2026-01-05T10:00:00.000+01:00").as_deref(),
            Some("2026-01-05T09:00:00Z")
        );
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(utc("soon"), None);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
