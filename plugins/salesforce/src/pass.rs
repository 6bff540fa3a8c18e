//! One invocation of a sync run: the type, its state as the invocation changes it, the
//! records it writes, and its budget (4 requests, 1,500 records, 5 seconds: it stays inside the
//! sandbox's limits of time and of host calls, about four per record). Pages of a query are
//! read here, the first by its SOQL and the rest by the locator Salesforce answered, asked in
//! batches of [`BATCH_SIZE`].

use plugin_sdk::{Error, now_ms};

use crate::api::{self, QueryPage};
use crate::config::Settings;
use crate::limits::SfError;
use crate::store::Store;
use crate::sync::State;

/// Pages (requests) per invocation.
pub const PAGES_PER_RUN: u32 = 4;
/// An invocation starts no new page after this long.
pub const TIME_BUDGET_MS: u64 = 5_000;
/// An invocation starts no new page once it has read this many records: each costs up to four
/// host calls (read, write, lookups, event) and the hub stops an invocation past 10,000.
pub const RECORDS_PER_RUN: usize = 1_500;
/// The page size asked for (`Sforce-Query-Options: batchSize`, 200 to 2,000; Salesforce may
/// answer more, up to 2,000, which the record budget still holds).
pub const BATCH_SIZE: u32 = 500;

/// An invocation of a run: the type, its state, and what it has done.
pub struct Pass<'a> {
    /// The tenant's settings.
    pub settings: &'a Settings,
    /// The type, as configured.
    pub sobject: String,
    /// Its state (saved at the end).
    pub state: State,
    /// Its records.
    pub store: Store,
    /// Requests made.
    pub pages: u32,
    /// Records read.
    pub records: usize,
    /// When the invocation began.
    pub began_ms: u64,
}

impl Pass<'_> {
    /// Whether the invocation should stop starting pages.
    pub fn spent(&self) -> bool {
        self.pages >= PAGES_PER_RUN
            || self.records >= RECORDS_PER_RUN
            || now_ms().saturating_sub(self.began_ms) > TIME_BUDGET_MS
    }

    /// Reads one page (the first of `soql`, or the locator `next`); `Ok(None)` when the
    /// locator expired.
    ///
    /// # Errors
    /// Salesforce's refusal, as [`crate::limits::classify`].
    pub fn page(&mut self, soql: &str, next: Option<&str>) -> Result<Option<QueryPage>, Error> {
        let url = match next {
            Some(n) => api::next_url(self.settings, n)?,
            None => api::query_url(self.settings, soql),
        };
        self.pages += 1;
        let resp = api::send(
            api::call("GET", url)
                .header("sforce-query-options", &format!("batchSize={BATCH_SIZE}")),
            if next.is_some() { &[400] } else { &[] },
        )?;
        if resp.status == 400 {
            let said = SfError::read(&resp.body);
            if said.code == "INVALID_QUERY_LOCATOR" {
                return Ok(None);
            }
            return Err(Error::permanent(format!(
                "Salesforce answered 400 to a query page: {}",
                said.describe()
            )));
        }
        let page: QueryPage = api::read(&resp, "a query")?;
        self.records += page.records.len();
        Ok(Some(page))
    }
}
