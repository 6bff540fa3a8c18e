//! The Salesforce REST API (`{instance_url}/services/data/{version}`) with the `salesforce`
//! OAuth2 grant the host holds (it mints the token, by JWT bearer, client credentials or a
//! refresh token, attaches it, and on a 401 mints once more and retries once): URLs, SOQL,
//! the calls, and their answers' shapes. Every answer goes through [`crate::limits::take`].
//!
//! Endpoints used:
//! - `GET /query?q=<SOQL>` then `GET <nextRecordsUrl>` -> `{totalSize, done, records,
//!   nextRecordsUrl?}` (2,000 records a page by default; a locator expires after about 15
//!   idle minutes: `INVALID_QUERY_LOCATOR`).
//! - `GET /sobjects/{T}/deleted/?start=&end=` -> `{deletedRecords: [{id, deletedDate}],
//!   earliestDateAvailable, latestDateCovered}` (at most 30 days back, 600,000 ids, else
//!   `EXCEEDED_ID_LIMIT`).
//! - `GET /sobjects/{T}/{id}?fields=...`, `GET /sobjects/{T}/{field}/{value}?fields=Id`.
//! - `PATCH /sobjects/{T}/{field}/{value}` (upsert by External ID): 201 created, 200/204
//!   updated, 300 several match.
//! - `GET /limits` (the credentials check).

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::limits;

/// The OAuth2 credential the host holds.
pub const SALESFORCE: &str = "salesforce";
/// Time limit of one call.
pub const TIMEOUT_MS: u32 = 8_000;

/// A path segment or query value, percent-encoded (RFC 3986 unreserved characters stay).
///
/// ```
/// assert_eq!(salesforce::api::encode("jane+1@example.com"), "jane%2B1%40example.com");
/// ```
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A call with the grant, asking for JSON.
pub fn call(method: &str, url: impl Into<String>) -> Request {
    Request::new(method, url)
        .bearer(SALESFORCE)
        .header("accept", "application/json")
        .timeout_ms(TIMEOUT_MS)
}

/// Sends a call; the answer through [`limits::take`] (statuses in `pass` are the caller's).
///
/// # Errors
/// Transport failures and timeouts (retryable), and what [`limits::classify`] says.
pub fn send(request: Request, pass: &[u16]) -> Result<HttpResponse, Error> {
    limits::take(request.send()?, pass)
}

/// The body of an answer as `T`.
///
/// # Errors
/// Permanent, naming what was asked, when it does not parse.
pub fn read<T: serde::de::DeserializeOwned>(resp: &HttpResponse, what: &str) -> Result<T, Error> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| Error::permanent(format!("Salesforce's answer to {what} does not parse: {e}")))
}

/// `SELECT <fields> FROM <T> WHERE SystemModstamp > <since> ORDER BY SystemModstamp ASC`.
pub fn changed_soql(sobject: &str, fields: &[String], since: &str) -> String {
    format!(
        "SELECT {} FROM {sobject} WHERE SystemModstamp > {since} ORDER BY SystemModstamp ASC",
        fields.join(",")
    )
}

/// `SELECT Id FROM <T>`: every live id, for the re-list.
pub fn ids_soql(sobject: &str) -> String {
    format!("SELECT Id FROM {sobject}")
}

/// `GET .../query?q=<SOQL>`.
pub fn query_url(settings: &Settings, soql: &str) -> String {
    format!("{}/query?q={}", settings.data_base(), encode(soql))
}

/// The URL of a `nextRecordsUrl` (a path on the instance).
///
/// # Errors
/// Permanent when it is not a `/services/data/` path.
pub fn next_url(settings: &Settings, next: &str) -> Result<String, Error> {
    let safe = next.starts_with("/services/data/")
        && !next.contains("..")
        && next.bytes().all(|b| b.is_ascii_graphic());
    if !safe {
        return Err(Error::permanent(format!(
            "Salesforce answered a nextRecordsUrl that is not a query path: `{}`",
            next.chars().take(100).collect::<String>()
        )));
    }
    Ok(format!("{}{next}", settings.instance_url))
}

/// `GET .../sobjects/{T}/deleted/?start=&end=`.
pub fn deleted_url(settings: &Settings, sobject: &str, start: &str, end: &str) -> String {
    format!(
        "{}/sobjects/{sobject}/deleted/?start={}&end={}",
        settings.data_base(),
        encode(start),
        encode(end)
    )
}

/// `GET .../sobjects/{T}/{id}?fields=...`.
pub fn record_url(settings: &Settings, sobject: &str, id: &str, fields: &[String]) -> String {
    format!(
        "{}/sobjects/{sobject}/{}?fields={}",
        settings.data_base(),
        encode(id),
        encode(&fields.join(","))
    )
}

/// `.../sobjects/{T}/{field}/{value}`: the record an External ID names.
pub fn external_url(settings: &Settings, sobject: &str, field: &str, value: &str) -> String {
    format!(
        "{}/sobjects/{sobject}/{field}/{}",
        settings.data_base(),
        encode(value)
    )
}

/// A page of a query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryPage {
    /// Rows in the whole result.
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// The rows, each with its `attributes`.
    pub records: Vec<Map<String, Value>>,
    /// The next page's path, when not done.
    pub next_records_url: Option<String>,
}

impl QueryPage {
    /// The next page's path: `None` at the end.
    pub fn next(&self) -> Option<&str> {
        self.next_records_url
            .as_deref()
            .filter(|n| !self.done && !n.is_empty())
    }
}

/// The answer of `/deleted/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeletedPage {
    /// The deleted records.
    pub deleted_records: Vec<DeletedRecord>,
    /// The earliest time deletions are still known from.
    pub earliest_date_available: Option<String>,
    /// The time deletions are known up to.
    pub latest_date_covered: Option<String>,
}

/// One deleted record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeletedRecord {
    /// Its id.
    pub id: String,
    /// When it was deleted.
    pub deleted_date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::from_values(|k| {
            (k == "instance_url").then(|| json!("https://acme.my.salesforce.com"))
        })
        .unwrap()
    }

    #[test]
    fn urls() {
        let s = settings();
        let soql = changed_soql(
            "Contact",
            &["Id".into(), "Email".into()],
            "1970-01-01T00:00:00Z",
        );
        assert_eq!(
            soql,
            "SELECT Id,Email FROM Contact WHERE SystemModstamp > 1970-01-01T00:00:00Z ORDER BY SystemModstamp ASC"
        );
        assert_eq!(
            query_url(&s, "SELECT Id FROM Lead"),
            "https://acme.my.salesforce.com/services/data/v62.0/query?q=SELECT%20Id%20FROM%20Lead"
        );
        assert_eq!(
            next_url(&s, "/services/data/v62.0/query/01gD0000002HU6KIAW-2000").unwrap(),
            "https://acme.my.salesforce.com/services/data/v62.0/query/01gD0000002HU6KIAW-2000"
        );
        assert!(next_url(&s, "https://evil.example/x").is_err());
        assert!(next_url(&s, "/services/data/../../x").is_err());
        assert_eq!(
            deleted_url(
                &s,
                "Lead",
                "2026-01-01T00:00:00+00:00",
                "2026-01-02T00:00:00+00:00"
            ),
            "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Lead/deleted/?start=2026-01-01T00%3A00%3A00%2B00%3A00&end=2026-01-02T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(
            external_url(&s, "Contact", "Hub_Email__c", "a+b@x.io"),
            "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Contact/Hub_Email__c/a%2Bb%40x.io"
        );
        let page: QueryPage = serde_json::from_value(json!({"totalSize": 3, "done": false,
            "nextRecordsUrl": "/services/data/v62.0/query/01g-2000", "records": [{"Id": "1"}]}))
        .unwrap();
        assert_eq!(page.next(), Some("/services/data/v62.0/query/01g-2000"));
        let last: QueryPage =
            serde_json::from_value(json!({"totalSize": 1, "done": true, "records": []})).unwrap();
        assert_eq!(last.next(), None);
    }
}
