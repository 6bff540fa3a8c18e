//! Calendar dates without a time zone database, for connectors: the civil date of a day count
//! and back (proleptic Gregorian, Howard Hinnant's algorithms), and RFC 3339 text read (with `Z`
//! or any offset, a fraction of any length, or without a zone where a provider writes one beside
//! a zone name) and written (in UTC or at an offset). A guest needs no more than this to read and
//! write providers' timestamps; zone rules (what offset a zone has when) are the connector's.

/// Days from 1970-01-01 to the civil date `year-month-day`.
///
/// ```
/// assert_eq!(plugin_sdk::time::days_from_civil(1970, 1, 1), 0);
/// assert_eq!(plugin_sdk::time::days_from_civil(2000, 3, 1), 11_017);
/// ```
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` `days` after 1970-01-01 (before it when negative).
///
/// ```
/// assert_eq!(plugin_sdk::time::civil_from_days(11_017), (2000, 3, 1));
/// assert_eq!(plugin_sdk::time::civil_from_days(-1), (1969, 12, 31));
/// ```
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix seconds as RFC 3339 UTC: `2026-01-01T00:00:00Z`.
///
/// ```
/// assert_eq!(plugin_sdk::time::rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
/// ```
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A UTC offset `Z`, `±HH:MM` or `±HHMM`, in minutes.
///
/// ```
/// assert_eq!(plugin_sdk::time::offset_minutes("-04:00"), Some(-240));
/// assert_eq!(plugin_sdk::time::offset_minutes("+0530"), Some(330));
/// assert_eq!(plugin_sdk::time::offset_minutes("+1"), None);
/// ```
pub fn offset_minutes(s: &str) -> Option<i64> {
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

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` for anything else (a day past the
/// month's end included).
///
/// ```
/// assert_eq!(plugin_sdk::time::parse_date("1970-01-02"), Some(1));
/// assert_eq!(plugin_sdk::time::parse_date("2026-02-30"), None);
/// ```
pub fn parse_date(s: &str) -> Option<i64> {
    let mut ymd = s.trim().split('-');
    let (y, mo, d) = (
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
    );
    if ymd.next().is_some() || !(1..=9999).contains(&y) || !(1..=12).contains(&mo) || d < 1 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    (civil_from_days(days) == (y, mo, d)).then_some(days)
}

/// The parts of a date-time: days since the epoch, milliseconds into the day, and the zone
/// text (empty for a time without one).
fn parts(s: &str) -> Option<(i64, i64, &str)> {
    let (date, time) = s.trim().split_once(['T', 't', ' '])?;
    let days = parse_date(date)?;
    let zone_at = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut p = hms.split(':');
    let (h, mi, sec) = (digits(p.next()?)?, digits(p.next()?)?, digits(p.next()?)?);
    if p.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let three: String = fraction.chars().chain("000".chars()).take(3).collect();
        digits(&three)?
    };
    Some((days, ((h * 60 + mi) * 60 + sec) * 1000 + millis, zone))
}

/// Epoch milliseconds of an RFC 3339 date-time with its zone (`Z` or an offset; a fraction of
/// any length). `None` for anything else, a time without a zone included: without its zone a
/// time is not an instant.
///
/// ```
/// assert_eq!(plugin_sdk::time::parse_ms("2026-01-05T10:00:00+01:00"), Some(1_767_603_600_000));
/// assert_eq!(plugin_sdk::time::parse_ms("2026-01-05T09:00:00"), None);
/// ```
pub fn parse_ms(s: &str) -> Option<i64> {
    let (days, ms, zone) = parts(s)?;
    Some(days * 86_400_000 + ms - offset_minutes(zone)? * 60_000)
}

/// A date-time without a zone (`2026-03-09T10:00:00`, as a provider writes one beside a zone
/// name): days since the epoch and milliseconds into that day. `None` when it has a zone or
/// does not parse.
///
/// ```
/// assert_eq!(plugin_sdk::time::parse_local("1970-01-02T01:00:00"), Some((1, 3_600_000)));
/// assert_eq!(plugin_sdk::time::parse_local("1970-01-02T01:00:00Z"), None);
/// ```
pub fn parse_local(s: &str) -> Option<(i64, i64)> {
    let (days, ms, zone) = parts(s)?;
    zone.is_empty().then_some((days, ms))
}

/// Epoch milliseconds as RFC 3339 UTC: `2026-01-05T09:00:00Z`, with `.mmm` only when there are
/// milliseconds.
///
/// ```
/// assert_eq!(plugin_sdk::time::format_ms(1_767_603_600_000), "2026-01-05T09:00:00Z");
/// assert_eq!(plugin_sdk::time::format_ms(1_767_603_600_250), "2026-01-05T09:00:00.250Z");
/// ```
pub fn format_ms(ms: i64) -> String {
    let text = rfc3339(ms.div_euclid(1000));
    match ms.rem_euclid(1000) {
        0 => text,
        frac => format!("{}.{frac:03}Z", text.trim_end_matches('Z')),
    }
}

/// Epoch milliseconds as RFC 3339 at a UTC offset in minutes: `2026-03-09T10:00:00-04:00`
/// (offset 0 is written `+00:00`, so every time carries its zone the same way).
///
/// ```
/// assert_eq!(plugin_sdk::time::format_at(1_773_064_800_000, -240), "2026-03-09T10:00:00-04:00");
/// assert_eq!(plugin_sdk::time::format_at(1_773_064_800_000, 330), "2026-03-09T19:30:00+05:30");
/// ```
pub fn format_at(ms: i64, offset_minutes: i64) -> String {
    let local = format_ms(ms + offset_minutes * 60_000);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let o = offset_minutes.abs();
    format!(
        "{}{sign}{:02}:{:02}",
        local.trim_end_matches('Z'),
        o / 60,
        o % 60
    )
}

/// A day count as `YYYY-MM-DD`.
///
/// ```
/// assert_eq!(plugin_sdk::time::format_date(0), "1970-01-01");
/// ```
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
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
            "2026-02-30T09:00:00Z",
            "2026-01-05T24:00:00Z",
            "2026-01-05T09:00:00+1",
            "2026-01-05T09:00:00.x1Z",
            "99999999999-01-05T09:00:00Z",
            "tomorrow at nine",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times_dates_and_offsets_written_back() {
        assert_eq!(
            parse_local("2026-03-09T10:00:00"),
            Some((parse_date("2026-03-09").unwrap(), 36_000_000))
        );
        assert_eq!(parse_local("2026-03-09T10:00:00Z"), None);
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        assert_eq!(parse_date("2025-02-29"), None);
        assert_eq!(format_at(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(format_at(-1, -90), "1969-12-31T22:29:59.999-01:30");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    /// Both directions agree over four centuries either side of the epoch, leap days included.
    #[test]
    fn days_and_dates_round_trip() {
        for days in (-146_097 * 2..146_097 * 2).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
