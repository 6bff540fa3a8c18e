//! Calendar dates without a time zone database, for connectors: the civil date of a day count
//! and back (proleptic Gregorian, Howard Hinnant's algorithms), and RFC 3339 UTC text. A guest
//! needs no more than this to read and write providers' timestamps.

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

#[cfg(test)]
mod tests {
    use super::*;

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
