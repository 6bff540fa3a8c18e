//! Timestamps: HubSpot sends epoch milliseconds (`occurredAt`, date properties) and ISO 8601
//! (`createdAt`, `updatedAt`, `lastmodifieddate` in v3 objects). Parsing both to epoch ms, and
//! the clock. Pure apart from [`now_ms`].

use std::time::{SystemTime, UNIX_EPOCH};

use plugin_sdk::time::days_from_civil;

fn number(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A UTC offset `Z`, `±HH:MM`, `±HHMM` or `±HH`, in minutes.
fn offset_minutes(s: &str) -> Option<i64> {
    if s.is_empty() || s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (number(&digits)?, 0),
        4 => (number(digits.get(..2)?)?, number(digits.get(2..)?)?),
        _ => return None,
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 60 + m))
}

/// Epoch ms of an ISO 8601 date-time (`2019-10-30T03:30:17.883Z`, offsets, no fraction, or a
/// bare date at UTC midnight), or of a string of digits (already epoch ms).
pub fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(ms) = number(s) {
        return Some(ms);
    }
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (y, mo, d) = (
        number(parts.next()?)?,
        number(parts.next()?)?,
        number(parts.next()?)?,
    );
    if parts.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if let Some(time) = time {
        let zone_at = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
        let (clock, zone) = time.split_at(zone_at);
        let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut hms = hms.split(':');
        let h = number(hms.next()?)?;
        let mi = number(hms.next()?)?;
        let sec = match hms.next() {
            Some(x) => number(x)?,
            None => 0,
        };
        if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let millis = if fraction.is_empty() {
            0
        } else {
            let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
            number(&digits)?
        };
        ms += ((h * 60 + mi) * 60 + sec) * 1000 + millis;
        ms -= offset_minutes(zone)? * 60_000;
    }
    Some(ms)
}

/// The current time in epoch ms (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2019-10-30T03:30:17.883Z"),
            Some(1_572_406_217_883)
        );
        assert_eq!(parse_ms("2019-10-30T03:30:17Z"), Some(1_572_406_217_000));
        assert_eq!(
            parse_ms("2019-10-30T05:30:17.883+02:00"),
            Some(1_572_406_217_883)
        );
        assert_eq!(
            parse_ms("2019-10-29T22:30:17.883-0500"),
            Some(1_572_406_217_883)
        );
        assert_eq!(
            parse_ms("2019-10-30T03:30:17.8834567Z"),
            Some(1_572_406_217_883)
        );
        assert_eq!(parse_ms("2019-10-30T03:30:17.8Z"), Some(1_572_406_217_800));
        assert_eq!(parse_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_ms("2000-03-01T00:00Z"), Some(951_868_800_000));
    }

    #[test]
    fn epoch_digits_and_garbage() {
        assert_eq!(parse_ms("1564113600000"), Some(1_564_113_600_000));
        assert_eq!(parse_ms(" 5 "), Some(5));
        for bad in [
            "",
            "yesterday",
            "2019-13-01",
            "2019-10-30T25:00:00Z",
            "2019-10-30T03:30:17+9",
            "2019-10-30-01",
            "2019-10-30T03",
            "-5",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn clock_is_usable_natively() {
        assert!(now_ms() > 1_700_000_000_000);
    }
}
