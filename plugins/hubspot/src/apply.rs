//! Merging contacts as the API returned them into `contact` records, and the `apply_contacts`
//! job that does it for `sync_contacts` (one job per page) and `upsert_contact`.
//!
//! Why a job: the host re-runs an invocation whose reads changed before it committed (a webhook
//! for one of the same contacts, say), discarding its writes. A sync page or an upsert that read
//! records would then call HubSpot again on every re-run; handing the API's answer to this job
//! keeps those invocations free of record reads, and a re-run here only repeats local work.

use plugin_sdk::{Error, warn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ApiContact;
use crate::contact::value_text;
use crate::event::id_text;
use crate::store::{self, Loaded};
use crate::time::{now_ms, parse_ms};

/// The job's name.
pub const APPLY_CONTACTS: &str = "apply_contacts";

/// The job's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplyInput {
    /// Contacts as the API returned them.
    pub contacts: Vec<ApiContact>,
}

/// When a fetched contact's data was current: `updatedAt`, else `lastmodifieddate`, else now.
pub fn snapshot_ms(contact: &ApiContact) -> i64 {
    contact
        .updated_at
        .as_deref()
        .and_then(parse_ms)
        .or_else(|| {
            contact
                .properties
                .get("lastmodifieddate")
                .and_then(value_text)
                .and_then(|s| parse_ms(&s))
        })
        .unwrap_or_else(now_ms)
}

/// Applies a fetched contact to a record; whether anything changed.
pub fn apply_fetched(loaded: &mut Loaded, contact: &ApiContact) -> bool {
    let record = &mut loaded.record;
    if record.created_at_ms.is_none() {
        record.created_at_ms = contact.created_at.as_deref().and_then(parse_ms);
    }
    record.apply_snapshot(&contact.properties, snapshot_ms(contact))
}

/// Runs the job; returns how many records changed.
///
/// # Errors
/// Bad request for a malformed input; permanent for unreadable records.
pub fn run(input: &str) -> Result<usize, Error> {
    let input: ApplyInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{APPLY_CONTACTS}` input: {e}")))?;
    let mut changed = 0;
    for contact in &input.contacts {
        let Some(id) = id_text(&Value::String(contact.id.clone())) else {
            warn!(
                "{APPLY_CONTACTS}: skipping a contact with id `{}`",
                contact.id
            );
            continue;
        };
        let mut loaded = store::load(&id)?;
        if loaded.record.privacy_deleted {
            continue;
        }
        if apply_fetched(&mut loaded, contact) || !loaded.existed {
            store::save(&mut loaded)?;
            changed += 1;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshot_times() {
        let c: ApiContact = serde_json::from_value(json!({"id": "1",
            "updatedAt": "2026-03-01T10:00:00.000Z",
            "properties": {"lastmodifieddate": "2020-01-01T00:00:00Z"}}))
        .unwrap();
        assert_eq!(snapshot_ms(&c), 1_772_359_200_000);
        let by_property: ApiContact = serde_json::from_value(
            json!({"id": "1", "properties": {"lastmodifieddate": "1700000000000"}}),
        )
        .unwrap();
        assert_eq!(snapshot_ms(&by_property), 1_700_000_000_000);
        let none = ApiContact::default();
        assert!(snapshot_ms(&none) > 1_700_000_000_000, "falls back to now");
    }

    #[test]
    fn inputs_round_trip_through_a_job() {
        let c: ApiContact = serde_json::from_value(json!({"id": "7", "properties": {"email": "a@b.co"},
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z", "archived": false, "new": true}))
        .unwrap();
        let input = ApplyInput { contacts: vec![c] };
        let text = serde_json::to_string(&input).unwrap();
        assert!(
            text.contains("\"updatedAt\"") && text.contains("\"new\":true"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ApplyInput>(&text).unwrap(), input);
        assert!(matches!(
            run("{\"contacts\": 5}"),
            Err(Error::BadRequest(_))
        ));
    }
}
