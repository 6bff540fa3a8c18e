//! Every console URL, once: the patterns the router serves ([`super::router`]) and the links
//! pages (`url("record", tenant, kind, key)` in a template), handlers and the page script
//! build, so a page can only link to a page that exists, and every path segment is encoded.

use minijinja::value::{Rest, Value};

/// Where the console is mounted.
pub const PREFIX: &str = "/console";

pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
pub const DELIVERIES: &str = "/deliveries";
pub const DELIVERY: &str = "/deliveries/{id}";
pub const REPLAY_DELIVERY: &str = "/deliveries/{id}/replay";
pub const REJECTED: &str = "/rejected";
pub const JOBS: &str = "/jobs";
pub const DEAD: &str = "/dead";
pub const REPLAY_DEAD: &str = "/dead/replay";
pub const OPERATION: &str = "/operations/{id}";
pub const TENANTS: &str = "/tenants";
pub const TENANT: &str = "/tenants/{tenant}";
pub const ANALYTICS_CSV: &str = "/tenants/{tenant}/analytics.csv";
pub const TEST_WEBHOOK: &str = "/tenants/{tenant}/test-webhook";
pub const RECORDS: &str = "/tenants/{tenant}/records";
pub const RECORD: &str = "/tenants/{tenant}/records/{kind}/{key}";
pub const EVENTS: &str = "/tenants/{tenant}/events";
pub const CREDENTIALS: &str = "/tenants/{tenant}/credentials";
pub const TEST_CREDENTIALS: &str = "/tenants/{tenant}/credentials/test";
pub const CONNECT: &str = "/tenants/{tenant}/connect";
pub const DISCONNECT: &str = "/tenants/{tenant}/disconnect";
pub const ASSET: &str = "/assets/{file}";
pub const TAIL: &str = "/tail";
pub const CONFIG: &str = "/config";
pub const AUDIT: &str = "/audit";
pub const CONFIG_ROLLBACK: &str = "/config/rollback";

/// The names templates use for each pattern.
const NAMED: &[(&str, &str)] = &[
    ("login", LOGIN),
    ("logout", LOGOUT),
    ("deliveries", DELIVERIES),
    ("delivery", DELIVERY),
    ("replay_delivery", REPLAY_DELIVERY),
    ("rejected", REJECTED),
    ("jobs", JOBS),
    ("dead", DEAD),
    ("replay_dead", REPLAY_DEAD),
    ("operation", OPERATION),
    ("tenants", TENANTS),
    ("tenant", TENANT),
    ("analytics_csv", ANALYTICS_CSV),
    ("test_webhook", TEST_WEBHOOK),
    ("records", RECORDS),
    ("record", RECORD),
    ("events", EVENTS),
    ("credentials", CREDENTIALS),
    ("test_credentials", TEST_CREDENTIALS),
    ("connect", CONNECT),
    ("disconnect", DISCONNECT),
    ("asset", ASSET),
    ("tail", TAIL),
    ("config", CONFIG),
    ("audit", AUDIT),
    ("config_rollback", CONFIG_ROLLBACK),
];

/// What percent-encoding leaves as is in a path segment (RFC 3986 unreserved): `/`, `?`, `#`,
/// `%`, spaces and non-ASCII are encoded, so a record key like `a/b` stays one segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One value as a path segment (or a query value).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// The console link of `pattern` with each `{placeholder}` filled, in order, from `args`
/// (encoded): `link(RECORD, &["acme", "call", "a/b"])` is
/// `/console/tenants/acme/records/call/a%2Fb`. Missing arguments leave the rest empty.
pub fn link(pattern: &str, args: &[&str]) -> String {
    let mut out = String::from(PREFIX);
    let mut args = args.iter();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&args.next().map(|a| segment(a)).unwrap_or_default());
        rest = &rest[close.min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// `url(name, args...)` in a template: [`link`] of the pattern named `name`.
/// The link is safe as it is in a page: percent-encoding leaves no character HTML gives meaning.
pub(super) fn url(name: &str, args: Rest<Value>) -> Result<Value, minijinja::Error> {
    let pattern = NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("the console has no page called `{name}`"),
            )
        })?;
    let texts: Vec<String> = args
        .iter()
        .map(|v| match v.as_str() {
            Some(s) => s.to_string(),
            None => v.to_string(),
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    Ok(Value::from_safe_string(link(pattern, &refs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fill_each_segment_encoded() {
        assert_eq!(
            link(RECORD, &["acme", "call", "a/b?c#d%e f é"]),
            "/console/tenants/acme/records/call/a%2Fb%3Fc%23d%25e%20f%20%C3%A9"
        );
        assert_eq!(link(DELIVERIES, &[]), "/console/deliveries");
        assert_eq!(link(DELIVERY, &["42"]), "/console/deliveries/42");
        let named: Vec<&str> = NAMED.iter().map(|(_, p)| *p).collect();
        for p in [LOGIN, DELIVERY, RECORD, TAIL, ASSET] {
            assert!(named.contains(&p), "{p} has a name");
        }
    }
}
