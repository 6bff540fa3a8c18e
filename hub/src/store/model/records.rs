//! Connector records (`records`) and their lookups (`record_lookups`): a tenant's records by
//! kind and key, found by the lookups any of its connectors set (`phone:+14155550100`); reads for
//! host calls and the API, and the writes of an invocation's effects.

use serde::Serialize;

use super::LookupsSet;

/// A record row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordRow {
    /// Kind, e.g. `call`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// The JSON object.
    pub data: serde_json::Value,
    /// The lookups it is found by (`phone:+14155550100`, `email:jane@example.com`).
    pub lookups: Vec<String>,
    /// Last write (ms).
    pub updated_at_ms: i64,
    /// Its last change's number in the tenant's change feed.
    pub seq: i64,
    /// Its version: changes with every write.
    pub version: i64,
}

/// Which records to list: all of the tenant's, one kind, or one kind's found by a lookup.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records of `kind` that carry this lookup.
    pub lookup: Option<String>,
    /// Only records changed before this change number (a page's keyset: newest change first).
    pub before: Option<i64>,
    /// At most this many (1 to 1,000).
    pub limit: usize,
}

/// Each record's lookups as an invocation last set them, sorted and distinct (both backends).
pub(crate) fn last_lookups(lookups_set: &[LookupsSet]) -> Vec<(&str, &str, Vec<String>)> {
    let mut lookups: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for LookupsSet {
        kind,
        key,
        lookups: list,
    } in lookups_set.iter().rev()
    {
        if !lookups.iter().any(|(k, id, _)| k == kind && id == key) {
            let mut list = list.clone();
            list.sort();
            list.dedup();
            lookups.push((kind, key, list));
        }
    }
    lookups
}
