//! The `upsert_contact` (`crm:upsert_contact`) and `upsert_lead` actions: create or update a
//! Contact or Lead by the External ID field the tenant configures (`contact_external_id`,
//! `lead_external_id`, e.g. `Hub_Email__c`) holding the email:
//! `PATCH /sobjects/<T>/<field>/<email>`.
//!
//! The body: `FirstName`, `LastName`, `Email`, `Phone` (and `Company` for a lead) from the
//! inputs, and `properties` mapped by `property_map` (default `{message = "Description"}`);
//! a property whose name is already a Salesforce API name (it contains `__c` or starts with an
//! upper-case letter) goes as it is, any other is reported in `ignored_properties`. Empty
//! values are left out (a route's template renders a missing value empty, and Salesforce would
//! clear the field); `Id` and the External ID field never go in the body.
//!
//! `LastName` (and a lead's `Company`) are required to create a record but would overwrite
//! the real ones on an update: they are sent only when given, and when Salesforce answers that
//! a required field is missing (the record is new) the request is made once more with
//! `[not provided]` in their place.
//!
//! Answers: 201 created (`{id, created: true}`); 200 updated, with the id; 204 updated
//! without a body, the id then read by `GET .../<field>/<email>?fields=Id`; 300 several
//! records hold the value: declined, naming the field and value; 400/404 permanent with
//! Salesforce's message; `REQUEST_LIMIT_EXCEEDED` retryable. An upsert is idempotent at
//! Salesforce; its result is also kept per idempotency key (a kv marker), so a re-run answers
//! without calling again. The record is written at once (found by `find()` right after) and
//! read back whole by `refresh_record`.

use std::collections::BTreeMap;

use plugin_sdk::lookup::normalize_email;
use plugin_sdk::{Error, HttpResponse, Retryable, enqueue_job, kv};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api;
use crate::config::{CONTACT_EXTERNAL_ID, LEAD_EXTERNAL_ID, Settings};
use crate::limits::{self, SfError};
use crate::record::id18;
use crate::refresh::{REFRESH_RECORD, RefreshInput};
use crate::store::Store;

/// The contact action's name.
pub const UPSERT_CONTACT: &str = "upsert_contact";
/// The lead action's name.
pub const UPSERT_LEAD: &str = "upsert_lead";
/// What a required field a caller did not give is created with.
pub const NOT_PROVIDED: &str = "[not provided]";

/// Which upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Contact.
    Contact,
    /// A Lead.
    Lead,
}

impl Target {
    /// The sObject type.
    pub fn sobject(self) -> &'static str {
        match self {
            Target::Contact => "Contact",
            Target::Lead => "Lead",
        }
    }

    /// The config key naming its External ID field.
    pub fn config_key(self) -> &'static str {
        match self {
            Target::Contact => CONTACT_EXTERNAL_ID,
            Target::Lead => LEAD_EXTERNAL_ID,
        }
    }

    /// The action's name.
    pub fn action(self) -> &'static str {
        match self {
            Target::Contact => UPSERT_CONTACT,
            Target::Lead => UPSERT_LEAD,
        }
    }

    /// The fields a new record needs, with what they default to.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Target::Contact => &["LastName"],
            Target::Lead => &["LastName", "Company"],
        }
    }
}

/// The actions' input.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpsertInput {
    /// The email (the External ID's value).
    pub email: String,
    /// Phone.
    #[serde(default)]
    pub phone: Option<Value>,
    /// First name.
    #[serde(default)]
    pub firstname: Option<Value>,
    /// Last name.
    #[serde(default)]
    pub lastname: Option<Value>,
    /// A lead's company.
    #[serde(default)]
    pub company: Option<Value>,
    /// Other fields, by property name (mapped) or API name.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// The request's body and the properties left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The fields sent.
    pub body: Map<String, Value>,
    /// Properties that map to no field.
    pub ignored: Vec<String>,
}

/// Whether a property name is already a Salesforce API name: it has `__c` or starts upper-case.
pub fn is_api_name(name: &str) -> bool {
    crate::config::valid_api_name(name)
        && (name.contains("__c") || name.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// A value to send: `None` for null and empty text.
///
/// # Errors
/// A message naming the property when it is a list or an object.
fn sendable(name: &str, v: &Value) -> Result<Option<Value>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::Array(_) | Value::Object(_) => {
            Err(format!("`{name}` must be text, a number or a boolean"))
        }
        other => Ok(Some(other.clone())),
    }
}

/// The body of the upsert of `email` by `external`.
///
/// # Errors
/// A message naming an input that is a list or an object.
pub fn plan(
    target: Target,
    input: &UpsertInput,
    email: &str,
    external: &str,
    map: &BTreeMap<String, String>,
) -> Result<Plan, String> {
    let mut out = Plan::default();
    let named = [
        ("FirstName", "firstname", &input.firstname),
        ("LastName", "lastname", &input.lastname),
        ("Phone", "phone", &input.phone),
        ("Company", "company", &input.company),
    ];
    out.body
        .insert("Email".into(), Value::String(email.to_string()));
    for (field, name, value) in named {
        if field == "Company" && target != Target::Lead {
            continue;
        }
        if let Some(v) = value
            .as_ref()
            .map(|v| sendable(name, v))
            .transpose()?
            .flatten()
        {
            out.body.insert(field.into(), v);
        }
    }
    for (name, value) in &input.properties {
        let field = match map.get(name) {
            Some(f) => f.clone(),
            None if is_api_name(name) => name.clone(),
            None => {
                out.ignored.push(name.clone());
                continue;
            }
        };
        if field.eq_ignore_ascii_case("Id") || field.eq_ignore_ascii_case(external) {
            out.ignored.push(name.clone());
            continue;
        }
        match sendable(name, value)? {
            Some(v) => out.body.insert(field, v),
            None => out.body.remove(&field),
        };
    }
    out.body
        .retain(|k, _| !k.eq_ignore_ascii_case("Id") && !k.eq_ignore_ascii_case(external));
    Ok(out)
}

/// The kv key holding the result for an idempotency key.
pub fn result_key(target: Target, idempotency_key: &str) -> String {
    format!("{}:{idempotency_key}", target.action())
}

fn patch(url: &str, body: &Map<String, Value>) -> Result<HttpResponse, Error> {
    api::send(api::call("PATCH", url).json(body)?, &[300, 400, 404])
}

fn missing_required(resp: &HttpResponse) -> bool {
    resp.status == 400 && SfError::read(&resp.body).code == "REQUIRED_FIELD_MISSING"
}

/// Runs an upsert.
///
/// # Errors
/// Bad request for a malformed input; permanent without the External ID field configured or
/// for Salesforce's 400/404; declined when several records hold the email; retryable for
/// limits and outages.
pub fn run(target: Target, input: &str, idempotency_key: &str) -> Result<String, Error> {
    let action = target.action();
    let input: UpsertInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{action}` input: {e}")))?;
    let email = normalize_email(&input.email)
        .ok_or_else(|| Error::bad_request(format!("`{}` is not an email", input.email)))?;
    let key = result_key(target, idempotency_key);
    if let Some(done) = kv::get_string(&key) {
        return Ok(done);
    }
    let settings = Settings::load()?;
    let sobject = target.sobject();
    let external = match target {
        Target::Contact => settings.contact_external_id.clone(),
        Target::Lead => settings.lead_external_id.clone(),
    }
    .ok_or_else(|| {
        Error::permanent(format!(
            "`{action}` needs config `{}`: the {sobject} External ID field it upserts by (e.g. Hub_Email__c)",
            target.config_key()
        ))
    })?;
    if let Some(wait) = limits::upsert_wait_ms() {
        return Err(Error::Retryable(Retryable {
            message: "the org has used its daily API requests; the upsert waits".into(),
            retry_after_ms: Some(wait),
        }));
    }
    let plan = plan(target, &input, &email, &external, &settings.property_map)
        .map_err(Error::bad_request)?;
    let url = api::external_url(&settings, sobject, &external, &email);
    let mut body = plan.body;
    let mut resp = patch(&url, &body)?;
    if missing_required(&resp) {
        for field in target.required() {
            body.entry(field.to_string())
                .or_insert_with(|| Value::String(NOT_PROVIDED.into()));
        }
        resp = patch(&url, &body)?;
    }
    let (id, created) = match resp.status {
        201 | 200 => {
            let v: Value = api::read(&resp, "an upsert")?;
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (
                id,
                resp.status == 201 || v.get("created").and_then(Value::as_bool) == Some(true),
            )
        }
        204 => {
            let found = api::send(api::call("GET", format!("{url}?fields=Id")), &[])?;
            let v: Value = api::read(&found, "the upserted record's read")?;
            (
                v.get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                false,
            )
        }
        300 => {
            return Err(Error::declined(format!(
                "Several Salesforce {sobject}s have {external} = {email}; merge them, or upsert by a field that is unique."
            )));
        }
        status => {
            return Err(Error::permanent(format!(
                "Salesforce answered {status} to the {sobject} upsert by {external} = {email}: {}",
                SfError::read(&resp.body).describe()
            )));
        }
    };
    let id = id18(&id).ok_or_else(|| {
        Error::permanent(format!(
            "Salesforce answered an unusable {sobject} id `{id}`"
        ))
    })?;
    let mut fields = body;
    fields.insert(external.clone(), Value::String(email.clone()));
    fields.insert("Id".into(), Value::String(id.clone()));
    Store::new(sobject).apply(&id, fields)?;
    let refresh = RefreshInput {
        sobject: sobject.into(),
        id: id.clone(),
    };
    enqueue_job(REFRESH_RECORD, &refresh, 0)?;
    let mut result = json!({ "id": id, "created": created });
    if !plan.ignored.is_empty() {
        result["ignored_properties"] = json!(plan.ignored);
    }
    let text = result.to_string();
    kv::set_marker(&key, text.as_bytes());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> UpsertInput {
        serde_json::from_value(v).unwrap()
    }

    fn map() -> BTreeMap<String, String> {
        BTreeMap::from([("message".to_string(), "Description".to_string())])
    }

    #[test]
    fn bodies_map_properties_and_leave_out_the_key() {
        let i = input(
            json!({"email": "j@x.io", "firstname": "Jane", "lastname": "", "phone": 4155550100u64,
            "company": "Acme",
            "properties": {"message": "Called about a visit", "VIP__c": true, "city": "Paris",
                           "Title": null, "Hub_Email__c": "other@x.io", "Id": "003"}}),
        );
        let p = plan(Target::Contact, &i, "j@x.io", "Hub_Email__c", &map()).unwrap();
        assert_eq!(
            Value::Object(p.body),
            json!({"Email": "j@x.io", "FirstName": "Jane", "Phone": 4155550100u64,
                   "Description": "Called about a visit", "VIP__c": true})
        );
        assert_eq!(p.ignored, ["Hub_Email__c", "Id", "city"]);
        let lead = plan(Target::Lead, &i, "j@x.io", "Email", &map()).unwrap();
        assert_eq!(lead.body.get("Company"), Some(&json!("Acme")));
        assert!(
            !lead.body.contains_key("Email"),
            "the External ID field is the URL's"
        );
        let nested = input(json!({"email": "j@x.io", "properties": {"Notes__c": {"a": 1}}}));
        assert!(
            plan(Target::Contact, &nested, "j@x.io", "X__c", &map())
                .unwrap_err()
                .contains("Notes__c")
        );
        assert!(is_api_name("Description") && is_api_name("hub_score__c") && !is_api_name("notes"));
        assert_eq!(result_key(Target::Lead, "k1"), "upsert_lead:k1");
    }
}
