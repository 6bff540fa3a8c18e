//! IANA time zones inside the guest, without a time zone database crate: each zone's POSIX TZ
//! rule (`EST5EDT,M3.2.0,M11.1.0`, from [`crate::tzdata`]) says its offset at any instant from
//! its last listed transition on, which covers every time a booking or a free slot can be at
//! (the few zones whose coming changes no rule describes carry their listed transitions too).
//! Working hours are local times, so slots are computed here: `09:00` in `America/New_York` is
//! 14:00 UTC in winter and 13:00 UTC after the second Sunday of March. Pure.
//!
//! The table is about 20 KB in the component, where a tz crate with the whole history
//! (`chrono-tz`) would add several hundred; history does not matter for what is to come.

use plugin_sdk::time::days_from_civil;

use crate::time::{format_at, format_date};
use crate::tzdata::{LISTED, ZONES};

/// How a rule names the day of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    /// `Jn`: day 1 to 365, February 29 never counted.
    Julian(i64),
    /// `n`: day 0 to 365, February 29 counted.
    Ordinal(i64),
    /// `Mm.w.d`: weekday `d` (0 Sunday) of week `w` (5: the last) of month `m`.
    Month(i64, i64, i64),
}

/// A change to or from daylight time: the day, and the local time (seconds, may be negative
/// or past 24 hours) it happens at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    day: Day,
    secs: i64,
}

/// A POSIX TZ rule: the standard offset, and daylight time's offset and changes if any.
/// Offsets are seconds east of UTC (New York's standard time is -18000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    std: i64,
    dst: Option<(i64, Change, Change)>,
}

/// A zone: its IANA name and how to find its offset.
#[derive(Debug, Clone, Copy)]
pub struct Zone {
    name: &'static str,
    rule: Rule,
    listed: &'static [(i64, i32)],
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// A zone abbreviation: letters, or anything but `>` between `<` and `>`.
fn name(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((&rest[..end], &rest[end + 1..]));
    }
    let end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    (end >= 3).then(|| (&s[..end], &s[end..]))
}

/// `[+-]hh[:mm[:ss]]` in seconds, and the rest.
fn hms(s: &str) -> Option<(i64, &str)> {
    let (sign, s) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(s.len());
    let mut total = 0;
    let mut fields = 0;
    for (i, part) in s[..end].split(':').enumerate() {
        if i > 2 || part.is_empty() || part.len() > 3 {
            return None;
        }
        let n: i64 = part.parse().ok()?;
        total += n * [3600, 60, 1][i];
        fields += 1;
    }
    (fields > 0 && total <= 167 * 3600).then_some((sign * total, &s[end..]))
}

fn change(s: &str) -> Option<(Change, &str)> {
    let end = s.find([',', '/']).unwrap_or(s.len());
    let (day, rest) = (&s[..end], &s[end..]);
    let day = if let Some(m) = day.strip_prefix('M') {
        let mut p = m.split('.');
        let (mo, w, d) = (
            p.next()?.parse().ok()?,
            p.next()?.parse().ok()?,
            p.next()?.parse().ok()?,
        );
        if p.next().is_some() || !(1..=12).contains(&mo) || !(1..=5).contains(&w) || d > 6 {
            return None;
        }
        Day::Month(mo, w, d)
    } else if let Some(j) = day.strip_prefix('J') {
        let n: i64 = j.parse().ok()?;
        (1..=365).contains(&n).then_some(Day::Julian(n))?
    } else {
        let n: i64 = day.parse().ok()?;
        (0..=365).contains(&n).then_some(Day::Ordinal(n))?
    };
    match rest.strip_prefix('/') {
        Some(t) => {
            let (secs, rest) = hms(t)?;
            Some((Change { day, secs }, rest))
        }
        None => Some((Change { day, secs: 7200 }, rest)),
    }
}

impl Rule {
    /// Parses a POSIX TZ rule; `None` when it is not one.
    fn parse(s: &str) -> Option<Rule> {
        let (_, rest) = name(s)?;
        let (west, rest) = hms(rest)?;
        let std = -west;
        if rest.is_empty() {
            return Some(Rule { std, dst: None });
        }
        let (_, rest) = name(rest)?;
        let (dst, rest) = match rest.chars().next() {
            None | Some(',') => (std + 3600, rest),
            Some(_) => {
                let (west, rest) = hms(rest)?;
                (-west, rest)
            }
        };
        // No rule given: the United States' (POSIX leaves it to the implementation).
        let rest = if rest.is_empty() {
            ",M3.2.0,M11.1.0"
        } else {
            rest
        };
        let (start, rest) = change(rest.strip_prefix(',')?)?;
        let (end, rest) = change(rest.strip_prefix(',')?)?;
        rest.is_empty().then_some(Rule {
            std,
            dst: Some((dst, start, end)),
        })
    }
}

impl Change {
    /// Days since the epoch of the change's day in `year`.
    fn day_in(&self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        match self.day {
            Day::Julian(n) => {
                let after_feb = is_leap(year) && n >= 60;
                jan1 + n - 1 + i64::from(after_feb)
            }
            Day::Ordinal(n) => jan1 + n,
            Day::Month(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                // 1970-01-01 was a Thursday (4).
                let weekday = (first + 4).rem_euclid(7);
                let mut day = first + (d - weekday).rem_euclid(7) + (w - 1) * 7;
                let next_month = if m == 12 {
                    days_from_civil(year + 1, 1, 1)
                } else {
                    days_from_civil(year, m + 1, 1)
                };
                while day >= next_month {
                    day -= 7;
                }
                day
            }
        }
    }

    /// The instant (unix seconds) of the change in `year`, its local time read at `offset`
    /// (the offset in effect before it).
    fn at(&self, year: i64, offset: i64) -> i64 {
        self.day_in(year) * 86_400 + self.secs - offset
    }
}

impl Rule {
    /// The offset (seconds east of UTC) at unix second `t`.
    fn offset_at(&self, t: i64) -> i64 {
        let Some((dst, start, end)) = self.dst else {
            return self.std;
        };
        let (year, _, _) = plugin_sdk::time::civil_from_days((t + self.std).div_euclid(86_400));
        let on = start.at(year, self.std);
        let off = end.at(year, dst);
        let in_dst = if on < off {
            on <= t && t < off
        } else {
            // Southern hemisphere (and Dublin's negative daylight time): the year starts in it.
            t < off || t >= on
        };
        if in_dst { dst } else { self.std }
    }
}

impl Zone {
    /// The zone called `name` (an IANA name, `America/New_York`; any case); `None` for a name
    /// the table does not have.
    pub fn named(name: &str) -> Option<Zone> {
        let name = name.trim();
        let found = ZONES
            .binary_search_by(|(n, _)| n.cmp(&name))
            .ok()
            .map(|i| ZONES[i])
            .or_else(|| {
                ZONES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .copied()
            })?;
        let rule = Rule::parse(found.1)?;
        let listed = LISTED
            .iter()
            .find(|(n, _)| *n == found.0)
            .map_or(&[][..], |(_, l)| *l);
        Some(Zone {
            name: found.0,
            rule,
            listed,
        })
    }

    /// UTC.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC",
            rule: Rule { std: 0, dst: None },
            listed: &[],
        }
    }

    /// Its IANA name, as the table writes it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The UTC offset, in minutes east, at epoch millisecond `ms`.
    pub fn offset_minutes(&self, ms: i64) -> i64 {
        let t = ms.div_euclid(1000);
        let listed = match self.listed.binary_search_by(|(at, _)| at.cmp(&t)) {
            Ok(i) => Some(self.listed[i].1),
            Err(0) => None,
            Err(i) if i < self.listed.len() => Some(self.listed[i - 1].1),
            Err(_) => None,
        };
        let secs = listed.map_or_else(|| self.rule.offset_at(t), i64::from);
        secs / 60
    }

    /// An instant as RFC 3339 at this zone's offset then.
    pub fn format(&self, ms: i64) -> String {
        format_at(ms, self.offset_minutes(ms))
    }

    /// The local date (days since the epoch) and time of day (ms) of an instant.
    pub fn local(&self, ms: i64) -> (i64, i64) {
        let local = ms + self.offset_minutes(ms) * 60_000;
        (local.div_euclid(86_400_000), local.rem_euclid(86_400_000))
    }

    /// The local date of an instant, `YYYY-MM-DD`.
    pub fn date(&self, ms: i64) -> String {
        format_date(self.local(ms).0)
    }

    /// The instant of a local date and time of day (ms). A time that happens twice (the hour
    /// clocks go back) is its first; one that never happens (the hour they skip) is read at
    /// the offset before the change, so 02:30 on the spring-forward day is 03:30.
    pub fn instant(&self, days: i64, ms_of_day: i64) -> i64 {
        let local = days * 86_400_000 + ms_of_day;
        let before = self.offset_minutes(local - 86_400_000) * 60_000;
        let after = self.offset_minutes(local + 86_400_000) * 60_000;
        [local - after, local - before]
            .into_iter()
            .filter(|u| self.offset_minutes(*u) * 60_000 == local - u)
            .min()
            .unwrap_or(local - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ms;

    fn at(s: &str) -> i64 {
        parse_ms(s).unwrap()
    }

    #[test]
    fn every_rule_in_the_table_parses() {
        for (name, rule) in ZONES {
            assert!(Rule::parse(rule).is_some(), "{name}: {rule}");
            assert!(Zone::named(name).is_some(), "{name}");
        }
        assert!(ZONES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert!(Zone::named("Mars/Olympus_Mons").is_none());
        assert_eq!(
            Zone::named("america/new_york").unwrap().name(),
            "America/New_York"
        );
        for bad in [
            "",
            "E",
            "EST",
            "EST5EDT,M3",
            "EST5EDT,M13.1.0,M11.1.0",
            "EST5EDT,M3.2.0",
        ] {
            assert_eq!(Rule::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_york_changes_on_the_second_sunday_of_march_and_the_first_of_november() {
        let ny = Zone::named("America/New_York").unwrap();
        assert_eq!(ny.offset_minutes(at("2026-03-08T06:59:59Z")), -300);
        assert_eq!(ny.offset_minutes(at("2026-03-08T07:00:00Z")), -240);
        assert_eq!(ny.offset_minutes(at("2026-11-01T05:59:59Z")), -240);
        assert_eq!(ny.offset_minutes(at("2026-11-01T06:00:00Z")), -300);
        let day = |d: &str| crate::time::parse_date(d).unwrap();
        assert_eq!(
            ny.format(ny.instant(day("2026-03-06"), 9 * 3_600_000)),
            "2026-03-06T09:00:00-05:00"
        );
        assert_eq!(
            ny.format(ny.instant(day("2026-03-09"), 9 * 3_600_000)),
            "2026-03-09T09:00:00-04:00"
        );
        // The skipped hour reads as the hour after; the repeated one is its first.
        assert_eq!(
            ny.format(ny.instant(day("2026-03-08"), 9_000_000)),
            "2026-03-08T03:30:00-04:00"
        );
        assert_eq!(
            ny.format(ny.instant(day("2026-11-01"), 5_400_000)),
            "2026-11-01T01:30:00-04:00"
        );
        assert_eq!(ny.date(at("2026-03-09T03:00:00Z")), "2026-03-08");
    }

    #[test]
    fn southern_and_odd_rules() {
        let sydney = Zone::named("Australia/Sydney").unwrap();
        assert_eq!(sydney.offset_minutes(at("2026-01-15T00:00:00Z")), 660);
        assert_eq!(sydney.offset_minutes(at("2026-06-15T00:00:00Z")), 600);
        let dublin = Zone::named("Europe/Dublin").unwrap();
        assert_eq!(dublin.offset_minutes(at("2026-01-15T00:00:00Z")), 0);
        assert_eq!(dublin.offset_minutes(at("2026-07-15T00:00:00Z")), 60);
        let kolkata = Zone::named("Asia/Kolkata").unwrap();
        assert_eq!(kolkata.offset_minutes(at("2026-07-15T00:00:00Z")), 330);
        let santiago = Zone::named("America/Santiago").unwrap();
        assert_eq!(santiago.offset_minutes(at("2026-01-15T00:00:00Z")), -180);
        assert_eq!(santiago.offset_minutes(at("2026-07-15T00:00:00Z")), -240);
        let casablanca = Zone::named("Africa/Casablanca").unwrap();
        // Ramadan 2026: UTC+0 from 15 February to 22 March.
        assert_eq!(casablanca.offset_minutes(at("2026-03-01T12:00:00Z")), 0);
        assert_eq!(casablanca.offset_minutes(at("2026-04-01T12:00:00Z")), 60);
        assert_eq!(Zone::utc().format(0), "1970-01-01T00:00:00+00:00");
    }

    /// Every listed transition of 2026 to 2028 in these zones' TZif files (tzdata 2025b),
    /// against the rules: the offset changes exactly then. (`scripts/gen_tzdata.py` writes
    /// the vectors of every zone: all 1,206 agreed when the table was made.)
    #[test]
    fn the_rules_agree_with_the_tzif_transitions() {
        for (name, t, offset) in VECTORS {
            let z = Zone::named(name).unwrap();
            assert_eq!(
                z.offset_minutes(t * 1000) * 60,
                i64::from(*offset),
                "{name} at {t}"
            );
            assert_ne!(
                z.offset_minutes(t * 1000 - 1000) * 60,
                i64::from(*offset),
                "{name} before {t}"
            );
        }
    }

    const VECTORS: &[(&str, i64, i32)] = &[
        ("Africa/Cairo", 1776981600, 10800),
        ("Africa/Cairo", 1793307600, 7200),
        ("Africa/Cairo", 1809036000, 10800),
        ("Africa/Cairo", 1824757200, 7200),
        ("Africa/Cairo", 1840485600, 10800),
        ("Africa/Cairo", 1856206800, 7200),
        ("Africa/Casablanca", 1771120800, 0),
        ("Africa/Casablanca", 1774144800, 3600),
        ("Africa/Casablanca", 1801965600, 0),
        ("Africa/Casablanca", 1804989600, 3600),
        ("Africa/Casablanca", 1832205600, 0),
        ("Africa/Casablanca", 1835834400, 3600),
        ("America/Havana", 1772946000, -14400),
        ("America/Havana", 1793509200, -18000),
        ("America/Havana", 1805000400, -14400),
        ("America/Havana", 1825563600, -18000),
        ("America/Havana", 1836450000, -14400),
        ("America/Havana", 1857013200, -18000),
        ("America/Los_Angeles", 1772964000, -25200),
        ("America/Los_Angeles", 1793523600, -28800),
        ("America/Los_Angeles", 1805018400, -25200),
        ("America/Los_Angeles", 1825578000, -28800),
        ("America/Los_Angeles", 1836468000, -25200),
        ("America/Los_Angeles", 1857027600, -28800),
        ("America/New_York", 1772953200, -14400),
        ("America/New_York", 1793512800, -18000),
        ("America/New_York", 1805007600, -14400),
        ("America/New_York", 1825567200, -18000),
        ("America/New_York", 1836457200, -14400),
        ("America/New_York", 1857016800, -18000),
        ("America/Nuuk", 1774746000, -3600),
        ("America/Nuuk", 1792890000, -7200),
        ("America/Nuuk", 1806195600, -3600),
        ("America/Nuuk", 1824944400, -7200),
        ("America/Nuuk", 1837645200, -3600),
        ("America/Nuuk", 1856394000, -7200),
        ("America/Santiago", 1775358000, -14400),
        ("America/Santiago", 1788667200, -10800),
        ("America/Santiago", 1806807600, -14400),
        ("America/Santiago", 1820116800, -10800),
        ("America/Santiago", 1838257200, -14400),
        ("America/Santiago", 1851566400, -10800),
        ("America/St_Johns", 1772947800, -9000),
        ("America/St_Johns", 1793507400, -12600),
        ("America/St_Johns", 1805002200, -9000),
        ("America/St_Johns", 1825561800, -12600),
        ("America/St_Johns", 1836451800, -9000),
        ("America/St_Johns", 1857011400, -12600),
        ("Antarctica/Troll", 1774746000, 7200),
        ("Antarctica/Troll", 1792890000, 0),
        ("Antarctica/Troll", 1806195600, 7200),
        ("Antarctica/Troll", 1824944400, 0),
        ("Antarctica/Troll", 1837645200, 7200),
        ("Antarctica/Troll", 1856394000, 0),
        ("Asia/Gaza", 1774656000, 10800),
        ("Asia/Gaza", 1792796400, 7200),
        ("Asia/Gaza", 1806105600, 10800),
        ("Asia/Gaza", 1824850800, 7200),
        ("Asia/Gaza", 1837555200, 10800),
        ("Asia/Gaza", 1856300400, 7200),
        ("Asia/Jerusalem", 1774569600, 10800),
        ("Asia/Jerusalem", 1792882800, 7200),
        ("Asia/Jerusalem", 1806019200, 10800),
        ("Asia/Jerusalem", 1824937200, 7200),
        ("Asia/Jerusalem", 1837468800, 10800),
        ("Asia/Jerusalem", 1856386800, 7200),
        ("Atlantic/Azores", 1774746000, 0),
        ("Atlantic/Azores", 1792890000, -3600),
        ("Atlantic/Azores", 1806195600, 0),
        ("Atlantic/Azores", 1824944400, -3600),
        ("Atlantic/Azores", 1837645200, 0),
        ("Atlantic/Azores", 1856394000, -3600),
        ("Australia/Lord_Howe", 1775314800, 37800),
        ("Australia/Lord_Howe", 1791041400, 39600),
        ("Australia/Lord_Howe", 1806764400, 37800),
        ("Australia/Lord_Howe", 1822491000, 39600),
        ("Australia/Lord_Howe", 1838214000, 37800),
        ("Australia/Lord_Howe", 1853940600, 39600),
        ("Australia/Sydney", 1775318400, 36000),
        ("Australia/Sydney", 1791043200, 39600),
        ("Australia/Sydney", 1806768000, 36000),
        ("Australia/Sydney", 1822492800, 39600),
        ("Australia/Sydney", 1838217600, 36000),
        ("Australia/Sydney", 1853942400, 39600),
        ("Europe/Berlin", 1774746000, 7200),
        ("Europe/Berlin", 1792890000, 3600),
        ("Europe/Berlin", 1806195600, 7200),
        ("Europe/Berlin", 1824944400, 3600),
        ("Europe/Berlin", 1837645200, 7200),
        ("Europe/Berlin", 1856394000, 3600),
        ("Europe/Chisinau", 1774742400, 10800),
        ("Europe/Chisinau", 1792886400, 7200),
        ("Europe/Chisinau", 1806192000, 10800),
        ("Europe/Chisinau", 1824940800, 7200),
        ("Europe/Chisinau", 1837641600, 10800),
        ("Europe/Chisinau", 1856390400, 7200),
        ("Europe/Dublin", 1774746000, 3600),
        ("Europe/Dublin", 1792890000, 0),
        ("Europe/Dublin", 1806195600, 3600),
        ("Europe/Dublin", 1824944400, 0),
        ("Europe/Dublin", 1837645200, 3600),
        ("Europe/Dublin", 1856394000, 0),
        ("Europe/London", 1774746000, 3600),
        ("Europe/London", 1792890000, 0),
        ("Europe/London", 1806195600, 3600),
        ("Europe/London", 1824944400, 0),
        ("Europe/London", 1837645200, 3600),
        ("Europe/London", 1856394000, 0),
        ("Pacific/Auckland", 1775311200, 43200),
        ("Pacific/Auckland", 1790431200, 46800),
        ("Pacific/Auckland", 1806760800, 43200),
        ("Pacific/Auckland", 1821880800, 46800),
        ("Pacific/Auckland", 1838210400, 43200),
        ("Pacific/Auckland", 1853330400, 46800),
        ("Pacific/Chatham", 1775311200, 45900),
        ("Pacific/Chatham", 1790431200, 49500),
        ("Pacific/Chatham", 1806760800, 45900),
        ("Pacific/Chatham", 1821880800, 49500),
        ("Pacific/Chatham", 1838210400, 45900),
        ("Pacific/Chatham", 1853330400, 49500),
    ];
}
