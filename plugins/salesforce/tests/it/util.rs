//! What the tests share: the connector on the SDK's in-memory host, playing the OAuth2 token
//! the hub's host mints for `salesforce`, outbound messages in the WSDL's shape, and a
//! stand-in org that answers the REST API as Salesforce documents it (query with locators of
//! 2,000 rows, `/deleted/`, record reads), checking each request's shape.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use plugin_sdk::harness::{Answer, Harness, Sent};
use salesforce::Salesforce;
use serde_json::{Value, json};

/// The org's API base. A real org's is its My Domain (`https://acme.my.salesforce.com`), which
/// the manifest declares as the wildcard origin `https://*.my.salesforce.com`; the SDK's harness
/// compares origins exactly and knows no wildcard yet, so the stand-in org answers at
/// `test.salesforce.com`, an origin the manifest declares as it is.
pub const INSTANCE: &str = "https://test.salesforce.com";
/// The API base.
pub const API: &str = "https://test.salesforce.com/services/data/v62.0";
/// The access token the harness plays the host's `salesforce` grant with.
pub const TOKEN: &str = "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog.test";
/// The org id.
pub const ORG: &str = "00D000000000001AAA";
/// The outbound route's path token.
pub const PATH_TOKEN: &str = "tok_7f3a9c2e1b";
/// The harness clock's start, 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
/// An hour, a day in ms.
pub const HOUR: i64 = 3_600_000;
/// A day in ms.
pub const DAY: i64 = 86_400_000;

/// The connector for tenant `acme`: its My Domain, org id, path token and grant.
pub fn hub() -> Harness<Salesforce> {
    Harness::<Salesforce>::new()
        .config("instance_url", INSTANCE)
        .config("org_id", ORG)
        .credential("outbound_token", PATH_TOKEN)
        .oauth2_token("salesforce", TOKEN)
}

/// A notification of `sobject` (`Contact`) with fields given as `(name, value)`; `None` for
/// the notification Id leaves it out.
pub fn notification(id: Option<&str>, sobject: &str, fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(k, v)| {
            if *v == "nil" {
                format!(r#"<sf:{k} xsi:nil="true"/>"#)
            } else {
                format!("<sf:{k}>{v}</sf:{k}>")
            }
        })
        .collect();
    let id = id.map(|i| format!("<Id>{i}</Id>")).unwrap_or_default();
    format!(
        r#"<Notification>{id}<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}</sObject></Notification>"#
    )
}

/// An outbound message of notifications, as Salesforce posts it.
pub fn message(org: &str, notifications: &[String]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D000000000001</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D000000000001</PartnerUrl>
   {}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#,
        notifications.join("\n   ")
    )
}

/// Salesforce's timestamp form: `2026-01-01T00:00:00.000+0000`.
pub fn stamp(ms: i64) -> String {
    let t = plugin_sdk::time::format_ms(ms.div_euclid(1000) * 1000);
    format!("{}.000+0000", t.trim_end_matches('Z'))
}

/// A REST error body.
pub fn sf_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, &json!([{"message": message, "errorCode": code}]))
}

/// The query of a sent URL, decoded.
pub fn params(url: &str) -> BTreeMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A stand-in org: records by type, deletions, query locators, the API usage it reports.
pub struct FakeOrg {
    /// Type -> id -> the record's fields (with `SystemModstamp` in epoch ms under `_ms`).
    pub records: BTreeMap<String, BTreeMap<String, Value>>,
    /// (type, id, deleted at ms), reported by `/deleted/`.
    pub deleted: Vec<(String, String, i64)>,
    /// Rows per page.
    pub page_size: usize,
    /// Locator -> the query's rows (a snapshot, as Salesforce's locators are).
    locators: BTreeMap<String, Vec<Value>>,
    /// Locators answered `INVALID_QUERY_LOCATOR` (expired).
    pub expired: std::collections::BTreeSet<String>,
    /// Every SOQL asked, in order.
    pub soql: Vec<String>,
    /// Every locator page asked, in order.
    pub pages: Vec<String>,
    /// Every `/deleted/` request's (type, start, end).
    pub deleted_asks: Vec<(String, String, String)>,
    /// `earliestDateAvailable` (ms).
    pub earliest_ms: i64,
    /// Answer `/deleted/` with this instead.
    pub deleted_answer: Option<Answer>,
    /// API usage `(used, allocation)`; each call adds one.
    pub usage: (u64, u64),
}

impl FakeOrg {
    /// An empty org.
    pub fn new(page_size: usize) -> FakeOrg {
        FakeOrg {
            records: BTreeMap::new(),
            deleted: Vec::new(),
            page_size,
            locators: BTreeMap::new(),
            expired: Default::default(),
            soql: Vec::new(),
            pages: Vec::new(),
            deleted_asks: Vec::new(),
            earliest_ms: T0 - 30 * DAY,
            deleted_answer: None,
            usage: (1_000, 100_000),
        }
    }

    /// Puts a record of `sobject` with `fields`, changed at `ms`.
    pub fn put(&mut self, sobject: &str, id: &str, ms: i64, fields: Value) {
        let mut f = fields;
        f["Id"] = json!(id);
        f["SystemModstamp"] = json!(stamp(ms));
        f["_ms"] = json!(ms);
        self.records
            .entry(sobject.into())
            .or_default()
            .insert(id.into(), f);
    }

    /// Deletes a record at `ms`; `logged` reports it in `/deleted/`.
    pub fn delete(&mut self, sobject: &str, id: &str, ms: i64, logged: bool) {
        self.records.get_mut(sobject).and_then(|m| m.remove(id));
        if logged {
            self.deleted.push((sobject.into(), id.into(), ms));
        }
    }

    fn answer(&mut self, a: Answer) -> Answer {
        self.usage.0 += 1;
        a.header(
            "sforce-limit-info",
            &format!("api-usage={}/{}", self.usage.0, self.usage.1),
        )
    }

    fn rows(
        &self,
        sobject: &str,
        fields: &[String],
        since_ms: Option<i64>,
        ordered: bool,
    ) -> Vec<Value> {
        let mut all: Vec<&Value> = self
            .records
            .get(sobject)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        if let Some(since) = since_ms {
            all.retain(|r| r["_ms"].as_i64().unwrap() > since);
        }
        if ordered {
            all.sort_by_key(|r| {
                (
                    r["_ms"].as_i64().unwrap(),
                    r["Id"].as_str().unwrap().to_string(),
                )
            });
        }
        all.into_iter()
            .map(|r| {
                let mut row = json!({"attributes": {"type": sobject,
                    "url": format!("/services/data/v62.0/sobjects/{sobject}/{}", r["Id"].as_str().unwrap())}});
                for f in fields {
                    row[f.as_str()] = r.get(f.as_str()).cloned().unwrap_or(Value::Null);
                }
                row
            })
            .collect()
    }

    fn page(&mut self, locator: &str, offset: usize) -> Answer {
        let rows = &self.locators[locator];
        let end = (offset + self.page_size).min(rows.len());
        let mut body = json!({"totalSize": rows.len(), "done": end >= rows.len(),
            "records": rows[offset..end].to_vec()});
        if end < rows.len() {
            body["nextRecordsUrl"] = json!(format!("/services/data/v62.0/query/{locator}-{end}"));
        }
        Answer::json(200, &body)
    }

    /// Answers `GET /query?q=...`: the stand-in reads the SOQL the connector writes.
    fn query(&mut self, soql: &str) -> Answer {
        self.soql.push(soql.to_string());
        let rest = soql.strip_prefix("SELECT ").expect("SELECT");
        let (fields, rest) = rest.split_once(" FROM ").expect("FROM");
        let fields: Vec<String> = fields.split(',').map(str::to_string).collect();
        let (sobject, filter) = rest.split_once(' ').unwrap_or((rest, ""));
        let since = filter.strip_prefix("WHERE SystemModstamp > ").map(|r| {
            let lit = r.split(' ').next().unwrap();
            plugin_sdk::time::parse_ms(lit).expect("a datetime literal")
        });
        let ordered = filter.ends_with("ORDER BY SystemModstamp ASC");
        assert!(
            since.is_none() || ordered,
            "changes are read oldest first: {soql}"
        );
        let rows = self.rows(sobject, &fields, since, ordered);
        let locator = format!("01g{:06}", self.locators.len());
        self.locators.insert(locator.clone(), rows);
        self.page(&locator, 0)
    }

    /// Answers every request the stand-in serves, checking its shape.
    pub fn serve(&mut self, sent: &Sent) -> Answer {
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            sent.url
        );
        assert_eq!(sent.credential.as_deref(), Some("salesforce"));
        let Some(path) = sent.url.strip_prefix(API) else {
            return Answer::status(404).body(format!("no such API: {}", sent.url));
        };
        let answer = if sent.method == "GET" && path.starts_with("/query?") {
            assert_eq!(sent.header("accept"), Some("application/json"));
            assert_eq!(sent.header("sforce-query-options"), Some("batchSize=500"));
            let q = params(&sent.url).remove("q").expect("q");
            self.query(&q)
        } else if let Some(loc) = path
            .strip_prefix("/query/")
            .filter(|_| sent.method == "GET")
        {
            self.pages.push(loc.to_string());
            let (locator, offset) = loc.rsplit_once('-').expect("locator-offset");
            if self.expired.contains(locator) {
                sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            } else {
                self.page(locator, offset.parse().unwrap())
            }
        } else if path.contains("/deleted/?") && sent.method == "GET" {
            let sobject = path
                .trim_start_matches("/sobjects/")
                .split('/')
                .next()
                .unwrap()
                .to_string();
            let p = params(&sent.url);
            let (start, end) = (p["start"].clone(), p["end"].clone());
            self.deleted_asks
                .push((sobject.clone(), start.clone(), end.clone()));
            if let Some(a) = self.deleted_answer.clone() {
                a
            } else {
                let (s, e) = (
                    plugin_sdk::time::parse_ms(&start).unwrap(),
                    plugin_sdk::time::parse_ms(&end).unwrap(),
                );
                assert!(s < e, "start {start} before end {end}");
                let list: Vec<Value> = self
                    .deleted
                    .iter()
                    .filter(|(t, _, at)| *t == sobject && *at >= s && *at <= e)
                    .map(|(_, id, at)| json!({"id": id, "deletedDate": stamp(*at)}))
                    .collect();
                Answer::json(
                    200,
                    &json!({"deletedRecords": list,
                    "earliestDateAvailable": stamp(self.earliest_ms),
                    "latestDateCovered": stamp(e.div_euclid(60_000) * 60_000)}),
                )
            }
        } else if let Some(rest) = path
            .strip_prefix("/sobjects/")
            .filter(|_| sent.method == "GET")
        {
            let (sobject, id) = rest.split('?').next().unwrap().split_once('/').unwrap();
            let fields: Vec<String> = params(&sent.url)
                .get("fields")
                .map(|f| f.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            match self.records.get(sobject).and_then(|m| m.get(id)) {
                Some(r) => {
                    let mut row = json!({"attributes": {"type": sobject}});
                    for f in &fields {
                        row[f.as_str()] = r.get(f.as_str()).cloned().unwrap_or(Value::Null);
                    }
                    Answer::json(200, &row)
                }
                None => sf_error(404, "NOT_FOUND", "The requested resource does not exist"),
            }
        } else {
            Answer::status(501).body(format!("no stand-in for {} {}", sent.method, sent.url))
        };
        self.answer(answer)
    }
}

/// Serves the org to a hub (rules of `hub.on` come first).
pub fn serve(hub: &mut Harness<Salesforce>, org: &Rc<RefCell<FakeOrg>>) {
    let org = org.clone();
    hub.on_http(move |sent| org.borrow_mut().serve(sent));
}

/// A stand-in org served to a fresh hub.
pub fn served(page_size: usize) -> (Harness<Salesforce>, Rc<RefCell<FakeOrg>>) {
    let mut hub = hub();
    let org = Rc::new(RefCell::new(FakeOrg::new(page_size)));
    serve(&mut hub, &org);
    (hub, org)
}

/// Runs due jobs until none is left, moving the clock to delayed ones, failing on any that
/// fails; answers the jobs run, in order.
pub fn drain(hub: &mut Harness<Salesforce>) -> Vec<(String, Value)> {
    let mut ran = Vec::new();
    for _ in 0..10_000 {
        let done = hub.run_due_jobs();
        if done.is_empty() {
            let Some(next) = hub.jobs().iter().map(|j| j.run_at_ms).min() else {
                return ran;
            };
            hub.at(next.max(hub.now()));
            continue;
        }
        for (job, result) in done {
            if let Err(e) = result {
                panic!("job {} {} failed: {e}", job.name, job.input);
            }
            ran.push((job.name, job.input));
        }
    }
    panic!("jobs never stopped coming");
}

/// The names of the committed events, in order.
pub fn event_names(hub: &Harness<Salesforce>) -> Vec<String> {
    hub.events().into_iter().map(|e| e.name).collect()
}

/// A Salesforce-like 18-character id of a type prefix and a number.
pub fn sf_id(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:012}AAA")
}
