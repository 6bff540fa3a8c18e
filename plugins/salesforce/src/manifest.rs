//! What the connector declares: the `outbound` route (a path token and the org id, checked by
//! the host; the `Ack` answered synchronously), the `salesforce.*` events with examples, the
//! upsert actions, the jobs, config, the `salesforce` OAuth2 credential the host holds, and its
//! origins. Pure: `describe` runs without host access.

use plugin_sdk::capability::CRM_UPSERT_CONTACT;
use plugin_sdk::{
    ActionDecl, EventDecl, FieldDecl, JobDecl, Manifest, Oauth2ClientAuth, Oauth2Decl, Oauth2Grant,
    Route, SignatureScheme, TokenLocation, field, manifest as base, oauth2, operation_inputs,
    operation_outputs, route,
};

// Not yet re-exported at the SDK's root (`plugin_sdk::XmlToken`): the binding's own path.
use plugin_sdk::XmlToken;

use crate::api::SALESFORCE;
use crate::check::CHECK;
use crate::config;
use crate::outbound::{OUTBOUND_NS, OUTBOUND_TOKEN, ROUTE};
use crate::record::{SfRecord, merge};
use crate::refresh::REFRESH_RECORD;
use crate::store::{self, CHANGED, DELETED};
use crate::sync::SYNC;
use crate::upsert::{UPSERT_CONTACT, UPSERT_LEAD};

/// Salesforce's consent page.
pub const AUTHORIZE_URL: &str = "https://login.salesforce.com/services/oauth2/authorize";
/// Salesforce's token endpoint (a tenant's My Domain or `test.salesforce.com` one is set in
/// `hub.toml`).
pub const TOKEN_URL: &str = "https://login.salesforce.com/services/oauth2/token";
/// Salesforce's revocation endpoint.
pub const REVOKE_URL: &str = "https://login.salesforce.com/services/oauth2/revoke";
/// The scopes asked for.
pub const SCOPES: [&str; 2] = ["api", "refresh_token"];
/// The origins called: the login hosts (tokens) and every My Domain (the API).
pub const OUTBOUND_HOSTS: [&str; 3] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
    "https://*.my.salesforce.com",
];
/// When `sync` runs unprompted: every 15 minutes.
pub const SYNC_EVERY: &str = "0 */15 * * * *";

/// A message as Salesforce sends it (the WSDL's shape): `{{id}}` in the notification's Id, the tenant's `{{config.org_id}}`.
pub const EXAMPLE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>{{config.org_id}}</OrganizationId><ActionId>04k000000000001AAA</ActionId><SessionId xsi:nil="true"/>
  <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/68.0/00D000000000001</EnterpriseUrl>
  <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/68.0/00D000000000001</PartnerUrl>
  <Notification><Id>04l{{id}}</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
   <sf:Id>003000000000001AAA</sf:Id><sf:Email>ada@example.com</sf:Email></sObject></Notification>
 </notifications></soapenv:Body></soapenv:Envelope>"#;

/// The `outbound` route: `/hooks/{tenant}/salesforce/outbound/{outbound_token}`, the body's
/// `OrganizationId` equal to config `org_id`; identified by the body's SHA-256 (a resend of the
/// same bytes is one delivery); the `Ack` answered by `respond` once it is stored.
pub fn routes() -> Vec<Route> {
    let mut r = route(
        ROUTE,
        SignatureScheme::XmlToken(XmlToken {
            token: TokenLocation::Path,
            namespace: OUTBOUND_NS.into(),
            element: "OrganizationId".into(),
            config_key: config::ORG_ID.into(),
        }),
        OUTBOUND_TOKEN,
    );
    r.sync_reply = true;
    r.example = Some(EXAMPLE.into());
    vec![r]
}

/// The `salesforce` credential: a JWT the host signs (a connected app's certificate and a
/// pre-authorized user), client credentials (a run-as user), or a user's consent.
pub fn salesforce() -> Oauth2Decl {
    let mut d = oauth2(SALESFORCE, AUTHORIZE_URL, TOKEN_URL, &SCOPES);
    d.description = "The org's connected app: JWT bearer (consumer key, the certificate's private \
                     key, a pre-authorized user), client credentials (a run-as user), or a user's \
                     consent. Set `token_url` to the org's My Domain or https://test.salesforce.com \
                     for a sandbox."
        .into();
    d.revoke_url = Some(REVOKE_URL.into());
    d.grants = vec![
        Oauth2Grant::JwtBearer,
        Oauth2Grant::ClientCredentials,
        Oauth2Grant::AuthorizationCode,
        Oauth2Grant::RefreshToken,
    ];
    d.client_auth = Oauth2ClientAuth::Body;
    d
}

/// An example record of a type, as events carry it.
pub fn example_record(sobject: &str, id: &str) -> SfRecord {
    let fields = serde_json::json!({
        "Id": id,
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "ada@example.com",
        "Phone": "+14155550100",
        "MobilePhone": "+14155550199",
        "SystemModstamp": "2026-03-09T14:00:00.000+0000",
    });
    let fields = match (sobject, fields) {
        ("Contact" | "Lead", serde_json::Value::Object(m)) => m,
        (_, _) => {
            let mut m = serde_json::Map::new();
            m.insert("Id".into(), id.into());
            m.insert("Name".into(), "Acme".into());
            m.insert(
                "SystemModstamp".into(),
                "2026-03-09T14:00:00.000+0000".into(),
            );
            m
        }
    };
    merge(None, sobject, id, fields).0
}

/// The events: `.changed` and `.deleted` of contacts, leads, accounts, opportunities, and of
/// other listed types (`salesforce.record.*`, whose payload's `type` names it).
pub fn events() -> Vec<EventDecl> {
    let kinds = [
        ("contact", "Contact", "003000000000001AAA", "A contact"),
        ("lead", "Lead", "00Q000000000001AAA", "A lead"),
        ("account", "Account", "001000000000001AAA", "An account"),
        (
            "opportunity",
            "Opportunity",
            "006000000000001AAA",
            "An opportunity",
        ),
        (
            "record",
            "Invoice__c",
            "a00000000000001AAA",
            "A record of another listed type",
        ),
    ];
    let mut out = Vec::new();
    for (kind, sobject, id, what) in kinds {
        let record = example_record(sobject, id);
        let mut dead = record.clone();
        dead.deleted = true;
        dead.deleted_at_ms = Some(1_773_068_400_000);
        let name = |suffix: &str| format!("salesforce.{kind}.{suffix}");
        out.push(EventDecl {
            name: name(CHANGED),
            description: format!(
                "{what} was created or changed in Salesforce (`change`: `created` or `updated`): \
                 the record, with `type` and the fields read."
            ),
            example: store::payload(&record, "created").to_string(),
        });
        out.push(EventDecl {
            name: name(DELETED),
            description: format!("{what} was deleted in Salesforce: the record as last held."),
            example: store::payload(&dead, "deleted").to_string(),
        });
    }
    out
}

/// The upsert actions.
pub fn actions() -> Vec<ActionDecl> {
    let outputs = |id: &str| {
        let mut o = operation_outputs(CRM_UPSERT_CONTACT);
        if let Some(f) = o.first_mut() {
            f.description = id.into();
        }
        o.push(field(
            "created",
            true,
            "Whether Salesforce created it (else updated).",
        ));
        o.push(field(
            "ignored_properties",
            false,
            "Properties that map to no Salesforce field (not sent).",
        ));
        o
    };
    let mut lead_inputs = operation_inputs(CRM_UPSERT_CONTACT);
    lead_inputs.push(field(
        "company",
        false,
        "The lead's company (`[not provided]` for a new lead without one).",
    ));
    vec![
        ActionDecl {
            name: UPSERT_CONTACT.into(),
            description: "Creates or updates a Contact by the External ID field in config \
                          `contact_external_id` holding the email (PATCH upsert); properties map \
                          by `property_map` or go by their API names. Returns {id, created}."
                .into(),
            inputs: operation_inputs(CRM_UPSERT_CONTACT),
            outputs: outputs("The Contact's 18-character Id."),
            implements: Some(CRM_UPSERT_CONTACT.into()),
        },
        ActionDecl {
            name: UPSERT_LEAD.into(),
            description: "Creates or updates a Lead by the External ID field in config \
                          `lead_external_id` holding the email, with `company`. Returns {id, created}."
                .into(),
            inputs: lead_inputs,
            outputs: outputs("The Lead's 18-character Id."),
            implements: None,
        },
    ]
}

fn job(name: &str, description: &str, schedule: Option<&str>) -> JobDecl {
    JobDecl {
        name: name.into(),
        description: description.into(),
        schedule: schedule.map(str::to_string),
    }
}

/// The config keys.
pub fn config_fields() -> Vec<FieldDecl> {
    vec![
        field(
            config::INSTANCE_URL,
            true,
            "The org's My Domain URL, the API base (https://acme.my.salesforce.com).",
        ),
        field(
            config::ORG_ID,
            true,
            "The org's 18-character id, as outbound messages carry it (Setup > Company Information shows 15: use the 18 of the messages or of the API).",
        ),
        field(
            config::API_VERSION,
            false,
            "The REST API version (default v62.0).",
        ),
        field(
            config::SOBJECTS,
            false,
            "sObject types to sync and accept, by API name (default [\"Contact\", \"Lead\", \"Account\", \"Opportunity\"]).",
        ),
        field(
            config::FIELDS,
            false,
            "Fields to select per type, e.g. { Contact = [\"Email\", \"Title\"] } (Id and SystemModstamp always; defaults per standard type).",
        ),
        field(
            config::CONTACT_EXTERNAL_ID,
            false,
            "The Contact External ID field upsert_contact goes by, holding the email (e.g. Hub_Email__c).",
        ),
        field(
            config::LEAD_EXTERNAL_ID,
            false,
            "The Lead External ID field upsert_lead goes by.",
        ),
        field(
            config::PROPERTY_MAP,
            false,
            "Upsert input property to Salesforce field (default { message = \"Description\" }).",
        ),
        field(
            crate::limits::LIMIT_WAIT_SECS,
            false,
            "Seconds a call waits after REQUEST_LIMIT_EXCEEDED before it is tried again (default 300).",
        ),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Salesforce: Outbound Messages (a path token and the org id checked, the Ack \
                      answered once stored) into sObject records, contacts and leads found by \
                      email and phone; an incremental SOQL sync by SystemModstamp with \
                      deletions; Contact and Lead upserts by External ID (crm:upsert_contact); \
                      the org's API limits honoured."
            .into(),
        routes: routes(),
        events: events(),
        actions: actions(),
        jobs: vec![
            job(
                SYNC,
                "Pulls what changed (SOQL on SystemModstamp, paged with continuations) and what was deleted, for every type in `sobjects` (input {}) or one ({\"sobject\": \"Contact\"}); every 15 minutes by default.",
                Some(SYNC_EVERY),
            ),
            job(
                REFRESH_RECORD,
                "Reads one record whole ({\"type\", \"id\"}): after an outbound message without SystemModstamp, and after an upsert.",
                None,
            ),
            job(
                CHECK,
                "Checks the grant with one read of the org's limits.",
                None,
            ),
        ],
        config: config_fields(),
        credentials: vec![field(
            OUTBOUND_TOKEN,
            true,
            "The secret path segment of the outbound messages' endpoint URL (hub seal ... --field outbound_token --generate --write prints it once).",
        )],
        oauth2: vec![salesforce()],
        outbound_hosts: OUTBOUND_HOSTS.iter().map(|h| (*h).to_string()).collect(),
        ..base("salesforce", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::capability::{answers, conforms, operation};

    #[test]
    fn the_actions_conform_to_the_crm_capability() {
        let m = manifest();
        let a = &m.actions[0];
        let op = operation(CRM_UPSERT_CONTACT).unwrap();
        let inputs: Vec<(&str, bool)> = a
            .inputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        let outputs: Vec<(&str, bool)> = a
            .outputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        conforms(op, &inputs).unwrap();
        answers(op, &outputs).unwrap();
        assert!(m.actions[1].inputs.iter().any(|f| f.name == "company"));
    }

    #[test]
    fn every_event_example_is_a_record() {
        let m = manifest();
        assert_eq!(m.events.len(), 10);
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["source"], "salesforce", "{}", e.name);
            assert!(v["type"].is_string() && v["id"].is_string());
            assert_eq!(v["deleted"], e.name.ends_with(".deleted"));
        }
        let contact: serde_json::Value = serde_json::from_str(&m.events[0].example).unwrap();
        assert_eq!(
            (contact["firstname"].as_str(), contact["lastname"].as_str()),
            (Some("Ada"), Some("Lovelace"))
        );
    }
}
