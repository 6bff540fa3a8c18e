//! `[tenants.<id>.endpoints.<name>]`: the tenant's webhook endpoints, from what the user wrote
//! to [`Endpoint`]s, each error located at its field.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::checker::{Checker, split_pair};
use super::{
    ConfigError, DEFAULT_RETRY_SCHEDULE_SECS, Endpoint, EventPattern, Sealed, TenantConnector,
};
use crate::id::{ConnectorId, EndpointName};

/// `[tenants.<id>.endpoints.<name>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    url: String,
    events: Vec<String>,
    secret: Sealed,
    previous_secret: Option<Sealed>,
    previous_until: Option<String>,
    #[serde(default)]
    allow_private: bool,
    retry_schedule_secs: Option<Vec<u64>>,
    concurrency: Option<usize>,
}

/// The tenant `at` (`["tenants", id]`)'s endpoints, checked against the connectors it uses.
pub(super) fn validate(
    c: &Checker<'_>,
    at: [&str; 2],
    connectors: &BTreeMap<ConnectorId, TenantConnector>,
    raw: BTreeMap<EndpointName, RawEndpoint>,
) -> Result<BTreeMap<EndpointName, Endpoint>, ConfigError> {
    let mut endpoints = BTreeMap::new();
    for (name, e) in raw {
        let here = |f: &'static str| [at[0], at[1], "endpoints", name.as_str(), f];
        let url = url::Url::parse(&e.url)
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
            })
            .ok_or_else(|| {
                c.value(
                    &here("url"),
                    "write an http(s) URL without credentials, e.g. https://app.example.com/hub-webhooks",
                )
            })?;
        let mut events = Vec::new();
        for (i, text) in e.events.iter().enumerate() {
            let index = i.to_string();
            let at_event = [
                at[0],
                at[1],
                "endpoints",
                name.as_str(),
                "events",
                index.as_str(),
            ];
            let pattern = event_pattern(text).ok_or_else(|| {
                c.value(
                    &at_event,
                    "write `connector:event`, `connector:prefix.*`, `connector:*`, `*:prefix.*` or `*`",
                )
            })?;
            if let Some(cid) = &pattern.connector
                && !connectors.contains_key(cid)
            {
                return Err(c.value(
                    &at_event,
                    format!("this tenant does not use connector `{cid}`"),
                ));
            }
            events.push(pattern);
        }
        let previous_until_ms = match &e.previous_until {
            None => None,
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|err| {
                        c.value(
                            &here("previous_until"),
                            format!("an RFC 3339 time such as 2026-12-08T00:00:00Z: {err}"),
                        )
                    })?
                    .timestamp_millis(),
            ),
        };
        let schedule = e
            .retry_schedule_secs
            .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE_SECS.to_vec());
        if schedule.len() > 30 || schedule.iter().any(|s| *s > 7 * 86_400) {
            return Err(c.value(
                &here("retry_schedule_secs"),
                "at most 30 retries, each at most 7 days (604800 s) after the one before",
            ));
        }
        let concurrency = e.concurrency.unwrap_or(4);
        if !(1..=64).contains(&concurrency) {
            return Err(c.value(&here("concurrency"), "between 1 and 64"));
        }
        endpoints.insert(
            name.clone(),
            Endpoint {
                url,
                events,
                secret: e.secret,
                previous_secret: e.previous_secret,
                previous_until_ms,
                allow_private: e.allow_private,
                retry_schedule: schedule
                    .into_iter()
                    .map(std::time::Duration::from_secs)
                    .collect(),
                concurrency,
            },
        );
    }
    Ok(endpoints)
}

/// An endpoint's event pattern: `*`, `connector:*`, `connector:prefix.*` or `connector:event`;
/// `*:event` and `*:prefix.*` for any connector's.
fn event_pattern(text: &str) -> Option<EventPattern> {
    if text == "*" {
        return Some(EventPattern {
            connector: None,
            event: String::new(),
            prefix: true,
        });
    }
    let (connector, event) = split_pair(text)?;
    // `*:action.*`: an event of any connector (the outcomes of the app's actions).
    let connector = match connector {
        "*" => None,
        id => Some(ConnectorId::try_from(id).ok()?),
    };
    let (event, prefix) = match event.strip_suffix('*') {
        Some(p) => (p.to_owned(), true),
        None => (event.to_owned(), false),
    };
    (!event.contains('*')).then_some(EventPattern {
        connector,
        event,
        prefix,
    })
}
