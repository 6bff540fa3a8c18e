//! The manifest as the hub reads it.

use plugin_sdk::{Connector, Oauth2ClientAuth, Oauth2Grant, SignatureScheme, TokenLocation};
use salesforce::Salesforce;

#[test]
fn the_outbound_route_is_checked_by_token_and_org_and_answers_the_ack() {
    let m = Salesforce::manifest();
    assert_eq!((m.name.as_str(), m.routes.len()), ("salesforce", 1));
    let r = &m.routes[0];
    assert_eq!(
        (r.name.as_str(), r.credential.as_str()),
        ("outbound", "outbound_token")
    );
    let SignatureScheme::XmlToken(x) = &r.signature else {
        panic!("an xml-token route: {:?}", r.signature)
    };
    assert!(matches!(x.token, TokenLocation::Path));
    assert_eq!(
        (
            x.namespace.as_str(),
            x.element.as_str(),
            x.config_key.as_str()
        ),
        (
            "http://soap.sforce.com/2005/09/outbound",
            "OrganizationId",
            "org_id"
        )
    );
    assert!(
        r.sync_reply,
        "the Ack is computed by respond, after storing"
    );
    assert!(
        r.identity.is_empty(),
        "a byte-identical resend is one delivery (the body's SHA-256)"
    );
    assert!(!r.split_array && r.tenant_lookup.is_none() && r.tool_calls.is_none());
    let example = r.example.as_deref().unwrap();
    assert!(example.contains("<Id>04l{{id}}</Id>"));
    let parsed = salesforce::outbound::parse(
        example
            .replace("{{id}}", "000000000042AAA")
            .replace("{{config.org_id}}", "00D000000000001AAA")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        parsed.org_id, "00D000000000001AAA",
        "the tenant's org id, filled in"
    );
    assert_eq!(parsed.notifications.len(), 1);
    assert!(
        m.credentials
            .iter()
            .any(|c| c.name == "outbound_token" && c.required)
    );
}

#[test]
fn the_grant_is_held_by_the_host() {
    let m = Salesforce::manifest();
    let [d] = &m.oauth2[..] else {
        panic!("one OAuth2 credential")
    };
    assert_eq!(d.name, "salesforce");
    assert_eq!(
        d.authorize_url,
        "https://login.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        d.token_url,
        "https://login.salesforce.com/services/oauth2/token"
    );
    assert_eq!(
        d.revoke_url.as_deref(),
        Some("https://login.salesforce.com/services/oauth2/revoke")
    );
    assert_eq!(d.scopes, ["api", "refresh_token"]);
    assert!(matches!(
        d.grants[..],
        [
            Oauth2Grant::JwtBearer,
            Oauth2Grant::ClientCredentials,
            Oauth2Grant::AuthorizationCode,
            Oauth2Grant::RefreshToken
        ]
    ));
    assert!(matches!(d.client_auth, Oauth2ClientAuth::Body));
    assert_eq!(
        m.outbound_hosts,
        [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            "https://*.my.salesforce.com"
        ]
    );
}

#[test]
fn config_jobs_actions_and_events() {
    let m = Salesforce::manifest();
    let required: Vec<&str> = m
        .config
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(required, ["instance_url", "org_id"]);
    let names: Vec<&str> = m.config.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "instance_url",
            "org_id",
            "api_version",
            "sobjects",
            "fields",
            "contact_external_id",
            "lead_external_id",
            "property_map",
            "limit_wait_secs"
        ]
    );
    let jobs: Vec<(&str, Option<&str>)> = m
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.schedule.as_deref()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("sync", Some("0 */15 * * * *")),
            ("refresh_record", None),
            ("check_credentials", None)
        ]
    );
    let actions: Vec<(&str, Option<&str>)> = m
        .actions
        .iter()
        .map(|a| (a.name.as_str(), a.implements.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("upsert_contact", Some("crm:upsert_contact")),
            ("upsert_lead", None)
        ]
    );
    let events: Vec<&str> = m.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        [
            "salesforce.contact.changed",
            "salesforce.contact.deleted",
            "salesforce.lead.changed",
            "salesforce.lead.deleted",
            "salesforce.account.changed",
            "salesforce.account.deleted",
            "salesforce.opportunity.changed",
            "salesforce.opportunity.deleted",
            "salesforce.record.changed",
            "salesforce.record.deleted",
        ]
    );
    let record: serde_json::Value = serde_json::from_str(&m.events[8].example).unwrap();
    assert_eq!(record["type"], "Invoice__c");
}
