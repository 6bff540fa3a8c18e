//! The `refresh_record` job: reads one record's authoritative state
//! (`GET /sobjects/{type}/{id}?fields=...`, the type's sync fields) and applies it, for an
//! outbound message that did not carry `SystemModstamp` and after an upsert. A record
//! Salesforce no longer has (404) is marked deleted.

use plugin_sdk::{Error, info, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api;
use crate::config::{Settings, valid_api_name};
use crate::record::{DeletedAt, id18};
use crate::store::Store;

/// The job's name.
pub const REFRESH_RECORD: &str = "refresh_record";

/// The job's input: `{"type": "Contact", "id": "003..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshInput {
    /// The sObject type.
    #[serde(rename = "type")]
    pub sobject: String,
    /// The record's Id.
    pub id: String,
}

/// Runs the job.
///
/// # Errors
/// Bad request for a malformed input; Salesforce's refusal (as [`crate::limits::classify`]).
pub fn run(input: &str) -> Result<(), Error> {
    let input: RefreshInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{REFRESH_RECORD}` input: {e}")))?;
    if !valid_api_name(&input.sobject) {
        return Err(Error::bad_request(format!(
            "`{REFRESH_RECORD}`: `{}` is not an sObject type",
            input.sobject
        )));
    }
    let id = id18(&input.id).ok_or_else(|| {
        Error::bad_request(format!("`{REFRESH_RECORD}`: `{}` is not an Id", input.id))
    })?;
    let settings = Settings::load()?;
    let sobject = settings
        .listed(&input.sobject)
        .unwrap_or(&input.sobject)
        .to_string();
    let url = api::record_url(&settings, &sobject, &id, &settings.fields_for(&sobject));
    let resp = api::send(api::call("GET", url), &[404])?;
    let mut store = Store::new(&sobject);
    if resp.status == 404 {
        if store.delete(&id, DeletedAt::FoundGone(now_ms() as i64))? {
            info!("{REFRESH_RECORD}: {sobject} {id} is gone from Salesforce; marked deleted");
        }
        return Ok(());
    }
    let fields: Map<String, Value> = api::read(&resp, "a record read")?;
    store.apply(&id, fields)?;
    Ok(())
}
