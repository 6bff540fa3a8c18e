//! The outbound route's check, as the hub makes it before any connector code runs: the path
//! token and the body's `OrganizationId` against the tenant's `org_id`.

use crate::util::{ORG, PATH_TOKEN, hub, message, notification};

fn body(org: &str) -> String {
    message(
        org,
        &[notification(
            Some("04l000000000001AAA"),
            "Contact",
            &[("Id", "003000000000001AAA")],
        )],
    )
}

#[test]
fn the_right_token_and_org_are_accepted() {
    let mut hub = hub();
    let d = hub.signed_webhook("outbound", body(ORG));
    assert!(
        d.url
            .ends_with(&format!("/hooks/acme/salesforce/outbound/{PATH_TOKEN}")),
        "{}",
        d.url
    );
    assert_eq!(hub.check_signature(&d), Ok(()));
}

#[test]
fn a_wrong_path_token_is_refused() {
    let mut hub = hub();
    let mut d = hub.signed_webhook("outbound", body(ORG));
    d.url = d.url.replace(PATH_TOKEN, "tok_guessed");
    assert!(hub.check_signature(&d).is_err());
    let mut bare = hub.signed_webhook("outbound", body(ORG));
    bare.url = bare
        .url
        .trim_end_matches(&format!("/{PATH_TOKEN}"))
        .to_string();
    assert!(hub.check_signature(&bare).is_err(), "no token at all");
}

#[test]
fn another_orgs_message_is_refused_even_with_the_token() {
    let mut hub = hub();
    let d = hub.signed_webhook("outbound", body("00D000000000009ZZZ"));
    assert!(hub.check_signature(&d).is_err());
    let mut other = crate::util::hub().config("org_id", "00D000000000002AAA");
    let d = other.signed_webhook("outbound", body(ORG));
    assert!(other.check_signature(&d).is_err());
}

#[test]
fn a_body_that_is_not_xml_is_refused() {
    let mut hub = hub();
    let d = hub.signed_webhook("outbound", "<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>");
    assert!(hub.check_signature(&d).is_err());
}
