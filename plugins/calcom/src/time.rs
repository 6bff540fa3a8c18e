//! Times: Cal.com writes ISO 8601 with a zone (`2026-01-05T09:00:00.000Z` in API answers and
//! webhooks, `2026-01-05T10:00:00.000+01:00` in slots); the capability takes RFC 3339 with any
//! offset. Parsing both to epoch milliseconds and writing UTC back are the SDK's
//! (`plugin_sdk::time`); here, what Cal.com's records carry. Pure.

pub use plugin_sdk::time::{format_ms, parse_ms};

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
    fn written_back_in_utc() {
        assert_eq!(
            utc("2026-01-05T10:00:00.000+01:00").as_deref(),
            Some("2026-01-05T09:00:00Z")
        );
        assert_eq!(
            parse_ms("2026-01-05T09:00:00"),
            None,
            "a time without its zone"
        );
        assert_eq!(utc("soon"), None);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
