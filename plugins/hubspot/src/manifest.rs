//! What the connector declares: the webhook routes, the `hubspot.contact.*` events, the
//! `upsert_contact` action, the `sync_contacts` job, config, credentials and its one outbound
//! host. Pure.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Route, Selector, SignatureScheme, TenantLookup,
    field, manifest as base, route,
};

use crate::api::{BASE, TOKEN};
use crate::apply::APPLY_CONTACTS;
use crate::store;
use crate::sync::SYNC_CONTACTS;
use crate::upsert::UPSERT_CONTACT;
use crate::webhook::{PORTAL_ID, PRIVATE, PROPERTIES, WEBHOOK};

/// The credential that verifies webhook signatures: the app's client secret.
pub const CLIENT_SECRET: &str = "client_secret";
/// HubSpot's signature window: 5 minutes (v3 timestamps).
const TOLERANCE_SECS: u32 = 300;

fn json(pointer: &str) -> Selector {
    Selector::Json(pointer.into())
}

fn hubspot_route(name: &str) -> Route {
    let mut r = route(name, SignatureScheme::Hubspot, CLIENT_SECRET);
    r.tolerance_secs = TOLERANCE_SECS;
    r.split_array = true;
    // HubSpot says `eventId` alone is not guaranteed unique; with the subscription and the
    // time it identifies a retry of the same event, and nothing else.
    r.identity = vec![
        json("/eventId"),
        json("/subscriptionId"),
        json("/occurredAt"),
    ];
    r.event_type = Some(json("/subscriptionType"));
    r
}

/// The routes: `webhook` (tenant-less: one URL for the app, each item routed by `portalId`
/// to the tenant whose `portal_id` config holds it) and `private` (one tenant's own private
/// app, verified with that tenant's `client_secret`).
pub fn routes() -> Vec<Route> {
    let mut shared = hubspot_route(WEBHOOK);
    shared.tenant_lookup = Some(TenantLookup {
        item_pointer: "/portalId".into(),
        config_key: PORTAL_ID.into(),
    });
    vec![shared, hubspot_route(PRIVATE)]
}

const EXAMPLE: &str = r#"{"id":"101","portal_id":"62515","email":"jane@example.com","firstname":"Jane","lastname":"Doe","phone":"+14155550100","properties":{"email":"jane@example.com","firstname":"Jane","lastname":"Doe","phone":"+14155550100"},"deleted":false,"merged_into":null,"updated_at_ms":1714608000000}"#;

fn event(name: &str, description: &str, example: &str) -> EventDecl {
    EventDecl {
        name: name.into(),
        description: description.into(),
        example: example.into(),
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "HubSpot CRM: app webhooks for every portal into `contact` records (found by \
                      their email and phone numbers), incremental contact sync, contact upsert \
                      by email."
            .into(),
        routes: routes(),
        events: vec![
            event(
                store::CREATED,
                "A contact was created (payload: the record).",
                EXAMPLE,
            ),
            event(
                store::UPDATED,
                "A contact property changed (the record plus `property` and `value`).",
                r#"{"id":"101","email":"jane@example.com","firstname":"Jane","lastname":"Doe","phone":null,"properties":{},"deleted":false,"merged_into":null,"updated_at_ms":1714608000000,"portal_id":"62515","property":"firstname","value":"Jane"}"#,
            ),
            event(store::DELETED, "A contact was deleted.", EXAMPLE),
            event(store::RESTORED, "A deleted contact was restored.", EXAMPLE),
            event(
                store::MERGED,
                "Contacts were merged into this one (the record plus `merged_ids`).",
                r#"{"id":"101","email":"jane@example.com","firstname":"Jane","lastname":"Doe","phone":null,"properties":{},"deleted":false,"merged_into":null,"updated_at_ms":1714608000000,"portal_id":"62515","merged_ids":["102"]}"#,
            ),
            event(
                store::PRIVACY_DELETED,
                "A contact was erased on a privacy request; only its id is left.",
                r#"{"id":"101","portal_id":"62515"}"#,
            ),
            event(
                store::UPSERTED,
                "`upsert_contact` wrote a contact: its id, email, whether it is new, and the \
                 properties HubSpot answered.",
                r#"{"id":"101","email":"jane@example.com","new":true,"properties":{"email":"jane@example.com","firstname":"Jane","hs_object_id":"101","lastmodifieddate":"2026-04-01T12:00:00.000Z"}}"#,
            ),
        ],
        actions: vec![ActionDecl {
            name: UPSERT_CONTACT.into(),
            description: "Creates or updates a contact by email (batch upsert, idProperty email); \
                          returns {id, email, new}."
                .into(),
            inputs: vec![
                field("email", true, "The contact's email."),
                field("properties", false, "Properties by HubSpot internal name."),
                field("firstname", false, "Shorthand for properties.firstname."),
                field("lastname", false, "Shorthand for properties.lastname."),
                field("phone", false, "Shorthand for properties.phone."),
            ],
            outputs: vec![
                field("id", true, "HubSpot's id for the contact."),
                field("email", true, "The contact's email."),
                field("new", true, "Whether the contact was created (else updated)."),
            ],
            implements: Some(plugin_sdk::capability::CRM_UPSERT_CONTACT.into()),
        }],
        jobs: vec![
            JobDecl {
                name: SYNC_CONTACTS.into(),
                description: "Pulls contacts changed since the last run (search on \
                              lastmodifieddate) into `contact` records. Input {\"full\"?, \"since_ms\"?}."
                    .into(),
                schedule: None,
            },
            JobDecl {
                name: APPLY_CONTACTS.into(),
                description: "Merges contacts as the API returned them into `contact` records \
                              (queued by sync_contacts and upsert_contact)."
                    .into(),
                schedule: None,
            },
        ],
        config: vec![
            field(
                PORTAL_ID,
                false,
                "The tenant's HubSpot portal (account) id, or a list: app webhooks for it come to this tenant.",
            ),
            field(
                PROPERTIES,
                false,
                "Contact properties to keep besides email, firstname, lastname and phone.",
            ),
        ],
        credentials: vec![
            field(
                CLIENT_SECRET,
                true,
                "The HubSpot app's client secret (verifies webhook signatures); usually global.",
            ),
            field(
                TOKEN,
                true,
                "The portal's private-app or OAuth access token (API calls).",
            ),
        ],
        oauth2: Vec::new(),
        outbound_hosts: vec![BASE.into()],
        ..base("hubspot", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        let m = manifest();
        assert_eq!(m.name, "hubspot");
        let [shared, private] = &m.routes[..] else {
            panic!("two routes")
        };
        assert_eq!(
            (shared.name.as_str(), private.name.as_str()),
            ("webhook", "private")
        );
        for r in &m.routes {
            assert!(matches!(r.signature, SignatureScheme::Hubspot));
            assert_eq!(r.credential, "client_secret");
            assert_eq!(r.tolerance_secs, 300);
            assert!(r.split_array && !r.sync_reply && r.extra_methods.is_empty());
            assert!(matches!(&r.identity[0], Selector::Json(p) if p == "/eventId"));
            assert!(matches!(&r.event_type, Some(Selector::Json(p)) if p == "/subscriptionType"));
        }
        let lookup = shared.tenant_lookup.as_ref().unwrap();
        assert_eq!(
            (lookup.item_pointer.as_str(), lookup.config_key.as_str()),
            ("/portalId", "portal_id")
        );
        assert!(private.tenant_lookup.is_none());
    }

    #[test]
    fn declarations() {
        let m = manifest();
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert!(v.get("id").is_some(), "{}", e.name);
            assert!(e.name.starts_with("hubspot.contact."));
        }
        assert_eq!(m.events.len(), 7);
        assert_eq!(m.actions[0].name, "upsert_contact");
        let jobs: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(jobs, vec!["sync_contacts", "apply_contacts"]);
        let creds: Vec<&str> = m.credentials.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(creds, vec!["client_secret", "access_token"]);
        assert!(m.config.iter().all(|c| !c.required));
        assert_eq!(m.outbound_hosts, vec!["https://api.hubapi.com"]);
    }
}
