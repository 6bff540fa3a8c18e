//! Times as Google writes them: RFC 3339 date-times with an offset (`2026-03-09T10:00:00-04:00`,
//! `2026-03-09T14:00:00.000Z`), and the bare dates of all-day events (`2026-03-09`): the SDK's
//! parsing and writing (`plugin_sdk::time`), under the names this connector uses. Pure.

pub use plugin_sdk::time::{format_at, format_date, parse_date, parse_local, parse_ms};

/// Epoch milliseconds as RFC 3339 UTC: `2026-01-05T09:00:00Z` (`.mmm` only when there are
/// milliseconds).
///
/// ```
/// assert_eq!(gcal::time::format_utc(1_767_603_600_000), "2026-01-05T09:00:00Z");
/// ```
pub fn format_utc(ms: i64) -> String {
    plugin_sdk::time::format_ms(ms)
}

/// The host's clock (the harness's in tests), in epoch milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(plugin_sdk::now_ms()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_times() {
        assert_eq!(
            parse_ms("2026-03-09T10:00:00-04:00"),
            Some(1_773_064_800_000)
        );
        assert_eq!(format_utc(1_773_064_800_000), "2026-03-09T14:00:00Z");
        assert_eq!(
            format_at(1_773_064_800_000, -240),
            "2026-03-09T10:00:00-04:00"
        );
        assert_eq!(
            parse_date("2026-03-09").map(format_date).as_deref(),
            Some("2026-03-09")
        );
        assert!(now_ms() > 1_700_000_000_000);
    }
}
