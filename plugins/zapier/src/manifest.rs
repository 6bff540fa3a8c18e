//! What the connector declares: the catch and REST-hook routes, its events, the `notify`
//! action, the `deliver` job, the `token` credential and its one outbound origin. Pure.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Route, Selector, SignatureScheme, TokenLocation,
    field, manifest as base, route,
};

use crate::catch::{CATCH, CATCH_PATH};
use crate::hooks::{SAMPLE, SUBSCRIBE, UNSUBSCRIBE};
use crate::notify::{DELIVER, NOTIFY};
use crate::subscription::TARGET_ORIGIN;

/// The credential holding the tenant's shared token.
pub const TOKEN: &str = "token";
/// The header that carries it.
pub const TOKEN_HEADER: &str = "x-hub-token";

fn header_token(name: &str) -> Route {
    route(
        name,
        SignatureScheme::SharedToken(TokenLocation::Header(TOKEN_HEADER.into())),
        TOKEN,
    )
}

fn synchronous(name: &str, extra_methods: &[&str]) -> Route {
    let mut r = header_token(name);
    r.sync_reply = true;
    r.extra_methods = extra_methods.iter().map(|m| (*m).to_string()).collect();
    r
}

/// The routes. Catches carry no id, so a catch is identified by its body hash: a Zap that
/// re-sends the same body is stored once.
pub fn routes() -> Vec<Route> {
    let example = r#"{"type":"contact","id":"test_{{id}}","name":"Jane Doe","email":"jane@example.com","phone":"+14155550100"}"#;
    let mut catch = header_token(CATCH);
    catch.event_type = Some(Selector::Json("/type".into()));
    catch.example = Some(example.into());
    let mut by_path = route(
        CATCH_PATH,
        SignatureScheme::SharedToken(TokenLocation::Path),
        TOKEN,
    );
    by_path.event_type = Some(Selector::Json("/type".into()));
    by_path.example = Some(example.into());
    vec![
        catch,
        by_path,
        synchronous(SUBSCRIBE, &[]),
        synchronous(UNSUBSCRIBE, &["DELETE"]),
        synchronous(SAMPLE, &["GET"]),
    ]
}

fn event(kind: &str, description: &str, example: &str) -> EventDecl {
    EventDecl {
        name: format!("zapier.{kind}"),
        description: description.into(),
        example: example.into(),
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Zapier: \"Webhooks by Zapier\" catches into contact/deal/task records and \
                      zapier.* events; REST hooks (subscribe, unsubscribe, sample) and `notify` \
                      make the hub a trigger source for Zaps."
            .into(),
        routes: routes(),
        events: vec![
            event(
                "contact",
                "A Zap sent a contact; the payload is the `contact` record (keyed by email).",
                r#"{"email":"jane@example.com","first_name":"Jane","last_name":"Doe","name":"Jane Doe","phone":"+14155550100","company":null,"source":"zapier","fields":{"email":"jane@example.com"},"created_at_ms":1714608000000,"updated_at_ms":1714608000000}"#,
            ),
            event(
                "deal",
                "A Zap sent a deal; the payload is the `deal` record (keyed by id).",
                r#"{"id":"d-1","name":"Annual plan","amount":"1200","stage":"won","close_date":null,"contact_email":"jane@example.com","source":"zapier","fields":{"id":"d-1"},"created_at_ms":1714608000000,"updated_at_ms":1714608000000}"#,
            ),
            event(
                "task",
                "A Zap sent a task; the payload is the `task` record (keyed by id).",
                r#"{"id":"t-1","title":"Call back","status":"open","due_date":"2026-05-02","contact_email":null,"source":"zapier","fields":{"id":"t-1"},"created_at_ms":1714608000000,"updated_at_ms":1714608000000}"#,
            ),
        ],
        actions: vec![ActionDecl {
            name: NOTIFY.into(),
            description: "Queues a delivery of `payload` (JSON) to every Zap subscribed to \
                          `event`; a 410 removes that subscription, other failures are retried."
                .into(),
            inputs: vec![
                field("event", true, "The event name Zaps subscribed to."),
                field("payload", true, "The JSON to deliver."),
            ],
            outputs: vec![
                field("event", true, "The event notified."),
                field("queued", true, "Deliveries queued, one per subscribed Zap."),
            ],
            implements: None,
        }],
        jobs: vec![JobDecl {
            name: DELIVER.into(),
            description: "POSTs one notification to one subscription (queued by `notify`); \
                          retried with backoff until delivered or the Zap is gone."
                .into(),
            schedule: None,
        }],
        credentials: vec![field(
            TOKEN,
            true,
            "The tenant's shared secret: Zaps send it in `x-hub-token` or as the last path segment.",
        )],
        oauth2: Vec::new(),
        outbound_hosts: vec![TARGET_ORIGIN.into()],
        ..base("zapier", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        let m = manifest();
        let names: Vec<&str> = m.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["catch", "catch-path", "subscribe", "unsubscribe", "sample"]
        );
        for r in &m.routes {
            assert_eq!(r.credential, "token");
            assert!(r.tenant_lookup.is_none() && !r.split_array && r.identity.is_empty());
        }
        assert!(matches!(
            &m.routes[0].signature,
            SignatureScheme::SharedToken(TokenLocation::Header(h)) if h == "x-hub-token"
        ));
        assert!(matches!(
            m.routes[1].signature,
            SignatureScheme::SharedToken(TokenLocation::Path)
        ));
        assert!(!m.routes[0].sync_reply && !m.routes[1].sync_reply);
        assert!(m.routes[2..].iter().all(|r| r.sync_reply));
        assert_eq!(m.routes[3].extra_methods, vec!["DELETE"]);
        assert_eq!(m.routes[4].extra_methods, vec!["GET"]);
    }

    #[test]
    fn declarations() {
        let m = manifest();
        let events: Vec<&str> = m.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, vec!["zapier.contact", "zapier.deal", "zapier.task"]);
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["source"], "zapier", "{}", e.name);
        }
        assert_eq!(m.actions[0].name, "notify");
        assert_eq!(m.jobs[0].name, "deliver");
        assert_eq!(m.outbound_hosts, vec!["https://hooks.zapier.com"]);
        assert!(m.credentials[0].required && m.config.is_empty());
    }
}
