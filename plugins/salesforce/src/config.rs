//! The tenant's config keys, read and checked: the org's API base, the API version, the sObject
//! types to sync and the fields to select of each, the External ID fields upserts go by and how
//! input properties map to Salesforce fields.
//!
//! [`Settings::from_values`] is pure (the tests call it with a map); [`Settings::load`] reads
//! the host's config through it. A wrong value is a permanent error that names the key: an
//! operator fixes `hub.toml`.

use std::collections::BTreeMap;

use plugin_sdk::Error;
use serde_json::Value;

/// Config key: the org's My Domain URL, the API base (`https://acme.my.salesforce.com`).
pub const INSTANCE_URL: &str = "instance_url";
/// Config key: the 18-character org id the host checks outbound messages against (exactly).
pub const ORG_ID: &str = "org_id";
/// Config key: the REST API version (`v62.0`).
pub const API_VERSION: &str = "api_version";
/// Config key: the sObject types to sync, by API name.
pub const SOBJECTS: &str = "sobjects";
/// Config key: the fields to select per sObject type (a map of API name to a list).
pub const FIELDS: &str = "fields";
/// Config key: the Contact External ID field `upsert_contact` goes by.
pub const CONTACT_EXTERNAL_ID: &str = "contact_external_id";
/// Config key: the Lead External ID field `upsert_lead` goes by.
pub const LEAD_EXTERNAL_ID: &str = "lead_external_id";
/// Config key: input property name to Salesforce field, for the upserts.
pub const PROPERTY_MAP: &str = "property_map";

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// The sObject types synced when none are configured.
pub const DEFAULT_SOBJECTS: [&str; 4] = ["Contact", "Lead", "Account", "Opportunity"];

/// Fields every selection carries: the key and the version.
pub const ALWAYS: [&str; 2] = ["Id", "SystemModstamp"];

/// The fields selected of a standard type when the tenant names none.
pub fn default_fields(sobject: &str) -> Vec<&'static str> {
    let common_tail = [
        "OwnerId",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ];
    let head: &[&str] = match sobject.to_ascii_lowercase().as_str() {
        "contact" => &[
            "Id",
            "Name",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "MobilePhone",
            "Title",
            "AccountId",
        ],
        "lead" => &[
            "Id",
            "Name",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "MobilePhone",
            "Company",
            "Title",
            "Status",
            "IsConverted",
            "ConvertedContactId",
        ],
        "account" => &["Id", "Name", "Phone", "Website", "Industry", "Type"],
        "opportunity" => &[
            "Id",
            "Name",
            "AccountId",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "IsClosed",
            "IsWon",
        ],
        // Every custom object has a Name; other standard objects may not (Case, Task).
        other if other.ends_with("__c") => {
            return vec![
                "Id",
                "Name",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
            ];
        }
        _ => return vec!["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    };
    head.iter().chain(common_tail.iter()).copied().collect()
}

/// Whether `name` is an API name (`Contact`, `Hub_Email__c`, `ns__Thing__c`): an ASCII letter,
/// then letters, digits and `_`, at most 80 characters. Safe in SOQL, URLs and record kinds.
pub fn valid_api_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && name.len() <= 80
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is a field to select: an API name, or a relationship path of them
/// (`Account.Name`).
pub fn valid_field_path(name: &str) -> bool {
    name.len() <= 255 && name.split('.').all(valid_api_name)
}

/// The tenant's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The API base, `https://host` without a trailing slash.
    pub instance_url: String,
    /// `vNN.N`.
    pub api_version: String,
    /// The types to sync, as configured (API names).
    pub sobjects: Vec<String>,
    /// Configured field lists, by lower-case type name.
    pub fields: BTreeMap<String, Vec<String>>,
    /// The Contact External ID field, if configured.
    pub contact_external_id: Option<String>,
    /// The Lead External ID field, if configured.
    pub lead_external_id: Option<String>,
    /// Input property to Salesforce field.
    pub property_map: BTreeMap<String, String>,
}

fn bad(key: &str, why: impl std::fmt::Display) -> Error {
    Error::permanent(format!("config key `{key}`: {why}"))
}

fn text(key: &str, v: &Value) -> Result<String, Error> {
    v.as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(key, "must be a non-empty string"))
}

/// `https://host[:port]` from what an operator wrote (a trailing `/` dropped).
///
/// # Errors
/// A message when it is not an `https` origin without a path.
pub fn instance_origin(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let Some(host) = url.strip_prefix("https://") else {
        return Err(format!(
            "`{raw}` is not an https URL (the org's My Domain URL, e.g. https://acme.my.salesforce.com)"
        ));
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !ok {
        return Err(format!(
            "`{raw}` must be the org's My Domain URL alone (https://acme.my.salesforce.com), without a path"
        ));
    }
    Ok(format!("https://{}", host.to_ascii_lowercase()))
}

/// `vNN.N` from `v62.0` or `62.0`.
///
/// # Errors
/// A message when it is neither.
pub fn api_version(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    let number = v.strip_prefix('v').unwrap_or(v);
    let ok = number.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(format!("v{number}"))
    } else {
        Err(format!("`{raw}` is not an API version like v62.0"))
    }
}

fn name_list(key: &str, v: &Value, valid: fn(&str) -> bool) -> Result<Vec<String>, Error> {
    let items = v
        .as_array()
        .ok_or_else(|| bad(key, "must be a list of API names"))?;
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let name = text(key, item)?;
        if !valid(&name) {
            return Err(bad(key, format!("`{name}` is not an API name")));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    Ok(out)
}

impl Settings {
    /// Reads the settings from config values, `get(key)` answering each.
    ///
    /// # Errors
    /// Permanent, naming the key, when a required one is missing or one has the wrong shape.
    pub fn from_values(get: impl Fn(&str) -> Option<Value>) -> Result<Settings, Error> {
        let instance_url = match get(INSTANCE_URL) {
            None | Some(Value::Null) => {
                return Err(bad(
                    INSTANCE_URL,
                    "is not set (the org's My Domain URL, e.g. https://acme.my.salesforce.com)",
                ));
            }
            Some(v) => {
                instance_origin(&text(INSTANCE_URL, &v)?).map_err(|m| bad(INSTANCE_URL, m))?
            }
        };
        let api_version = match get(API_VERSION) {
            None | Some(Value::Null) => DEFAULT_API_VERSION.to_string(),
            Some(v) => api_version(&text(API_VERSION, &v)?).map_err(|m| bad(API_VERSION, m))?,
        };
        let sobjects = match get(SOBJECTS) {
            None | Some(Value::Null) => DEFAULT_SOBJECTS.iter().map(|s| (*s).to_string()).collect(),
            Some(v) => name_list(SOBJECTS, &v, valid_api_name)?,
        };
        let mut fields = BTreeMap::new();
        match get(FIELDS) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (sobject, list) in &map {
                    if !valid_api_name(sobject) {
                        return Err(bad(FIELDS, format!("`{sobject}` is not an API name")));
                    }
                    let mut chosen: Vec<String> = ALWAYS.iter().map(|s| (*s).to_string()).collect();
                    for f in name_list(FIELDS, list, valid_field_path)? {
                        if !chosen.iter().any(|c| c.eq_ignore_ascii_case(&f)) {
                            chosen.push(f);
                        }
                    }
                    fields.insert(sobject.to_ascii_lowercase(), chosen);
                }
            }
            Some(_) => return Err(bad(FIELDS, "must be a map of API name to a list of fields")),
        }
        let external = |key: &str| -> Result<Option<String>, Error> {
            match get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    let name = text(key, &v)?;
                    if valid_api_name(&name) {
                        Ok(Some(name))
                    } else {
                        Err(bad(key, format!("`{name}` is not a field's API name")))
                    }
                }
            }
        };
        let contact_external_id = external(CONTACT_EXTERNAL_ID)?;
        let lead_external_id = external(LEAD_EXTERNAL_ID)?;
        let property_map = match get(PROPERTY_MAP) {
            None | Some(Value::Null) => {
                BTreeMap::from([("message".to_string(), "Description".to_string())])
            }
            Some(Value::Object(map)) => {
                let mut out = BTreeMap::new();
                for (from, to) in &map {
                    let to = text(PROPERTY_MAP, to)?;
                    if !valid_api_name(&to) {
                        return Err(bad(
                            PROPERTY_MAP,
                            format!("`{to}` is not a field's API name"),
                        ));
                    }
                    out.insert(from.clone(), to);
                }
                out
            }
            Some(_) => return Err(bad(PROPERTY_MAP, "must be a map of property to field")),
        };
        Ok(Settings {
            instance_url,
            api_version,
            sobjects,
            fields,
            contact_external_id,
            lead_external_id,
            property_map,
        })
    }

    /// The tenant's settings, from the host's config.
    ///
    /// # Errors
    /// As [`Settings::from_values`].
    pub fn load() -> Result<Settings, Error> {
        Settings::from_values(|key| plugin_sdk::config::<Value>(key).ok().flatten())
    }

    /// The fields to select of `sobject`: the configured list, else the type's defaults.
    pub fn fields_for(&self, sobject: &str) -> Vec<String> {
        match self.fields.get(&sobject.to_ascii_lowercase()) {
            Some(list) => list.clone(),
            None => default_fields(sobject)
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }

    /// The configured type named `sobject` (case-insensitively), as configured.
    pub fn listed(&self, sobject: &str) -> Option<&str> {
        self.sobjects
            .iter()
            .find(|s| s.eq_ignore_ascii_case(sobject))
            .map(String::as_str)
    }

    /// `{instance_url}/services/data/{api_version}`.
    pub fn data_base(&self) -> String {
        format!("{}/services/data/{}", self.instance_url, self.api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Result<Settings, Error> {
        Settings::from_values(|k| v.get(k).cloned())
    }

    #[test]
    fn defaults_and_checks() {
        let s = settings(json!({"instance_url": "https://Acme.my.salesforce.com/"})).unwrap();
        assert_eq!(s.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(s.api_version, "v62.0");
        assert_eq!(s.sobjects, DEFAULT_SOBJECTS);
        assert_eq!(s.property_map["message"], "Description");
        assert_eq!(
            s.data_base(),
            "https://acme.my.salesforce.com/services/data/v62.0"
        );
        assert!(s.fields_for("Contact").contains(&"MobilePhone".to_string()));
        assert_eq!(s.fields_for("Invoice__c")[1], "Name");
        assert!(
            matches!(settings(json!({})), Err(Error::Permanent(m)) if m.contains("instance_url"))
        );
        for bad_url in [
            "http://acme.my.salesforce.com",
            "https://acme.my.salesforce.com/services",
            "acme",
        ] {
            assert!(
                settings(json!({"instance_url": bad_url})).is_err(),
                "{bad_url}"
            );
        }
    }

    #[test]
    fn lists_maps_and_names() {
        let s = settings(json!({
            "instance_url": "https://acme.my.salesforce.com",
            "api_version": "61.0",
            "sobjects": ["Contact", "contact", "Invoice__c"],
            "fields": {"Invoice__c": ["Amount__c", "Account__r.Name", "Id"]},
            "contact_external_id": "Hub_Email__c",
            "property_map": {"notes": "Description", "vip": "VIP__c"}
        }))
        .unwrap();
        assert_eq!(s.api_version, "v61.0");
        assert_eq!(s.sobjects, ["Contact", "Invoice__c"]);
        assert_eq!(
            s.fields_for("invoice__c"),
            ["Id", "SystemModstamp", "Amount__c", "Account__r.Name"]
        );
        assert_eq!(s.listed("INVOICE__C"), Some("Invoice__c"));
        assert_eq!(s.contact_external_id.as_deref(), Some("Hub_Email__c"));
        assert_eq!(s.lead_external_id, None);
        assert_eq!(s.property_map.len(), 2);
        let injected = settings(json!({"instance_url": "https://a.my.salesforce.com",
            "sobjects": ["Contact WHERE Id != null"]}));
        assert!(matches!(injected, Err(Error::Permanent(m)) if m.contains("sobjects")));
        assert!(
            settings(
                json!({"instance_url": "https://a.my.salesforce.com", "api_version": "latest"})
            )
            .is_err()
        );
        assert!(
            valid_api_name("ns__Thing__c") && !valid_api_name("1abc") && !valid_api_name("a-b")
        );
        assert!(valid_field_path("Account.Owner.Name") && !valid_field_path("Account..Name"));
    }
}
