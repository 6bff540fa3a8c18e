//! A local stand-in for a Salesforce org: its token endpoint (`/services/oauth2/token`, the JWT
//! bearer and client-credentials flows) and the REST API under `/services/data/vXX.X` that the
//! connector uses: SOQL `query` with `nextRecordsUrl` pages, sObject rows by id and by external
//! id (GET and the PATCH upsert: 201 created, 200 updated, 300 several), and `deleted`.
//!
//! Strict where Salesforce is: every request's method and path must be one of the Postman
//! collection's (`tests/provider-specs/salesforce_postman_requests_2021.json`, Salesforce's own
//! `forcedotcom/postman-salesforce-apis`), or a query locator page (documented with `query`);
//! every API call carries a token this server issued (else 401 `INVALID_SESSION_ID`); an
//! assertion is checked with an independent JWT library (`jose`, `tests/signers/verify-jwt.js`):
//! RS256 with the org's certificate key, `iss` the consumer key, `sub` the username, `aud`
//! `https://login.salesforce.com`, `exp` within 3 minutes. Every answer carries
//! `Sforce-Limit-Info`; over the allowance (or when the test says so) a call is a 403
//! `REQUEST_LIMIT_EXCEEDED`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::util::{now_ms, verify_jwt};

/// The API version the connector pins.
pub const VERSION: &str = "v62.0";
/// The connected app's consumer secret (the client-credentials flow).
pub const CONSUMER_SECRET: &str = "consumer-secret-9f8e7d";
/// The audience a production org's assertion names.
pub const AUDIENCE: &str = "https://login.salesforce.com";

/// One row: its fields as the API answers them (without `attributes`) and when it last changed.
#[derive(Clone, Debug)]
pub struct Row {
    pub fields: Map<String, Value>,
    pub modstamp_ms: u64,
}

/// What the org holds and what the server saw.
#[derive(Default)]
pub struct OrgState {
    pub consumer_key: String,
    pub username: String,
    pub public_key_pem: String,
    /// Access tokens issued and still valid.
    pub tokens: HashSet<String>,
    /// Token requests: the grant types, in order.
    pub token_grants: Vec<String>,
    /// Assertions `jose` refused, with why.
    pub bad_assertions: Vec<String>,
    /// Rows by sObject type, then id.
    pub objects: BTreeMap<String, BTreeMap<String, Row>>,
    /// Deleted rows: (type, id, when).
    pub deleted: Vec<(String, String, u64)>,
    /// How far back `deleted` answers (ms); older windows answer from `earliestDateAvailable`.
    pub deleted_window_ms: u64,
    /// `api-usage=used/allowance`.
    pub used: u64,
    pub allowance: u64,
    /// The next this many API calls answer 403 `REQUEST_LIMIT_EXCEEDED`.
    pub limit_exceeded: u32,
    /// Query locators: id -> the result's rows and its page size.
    locators: HashMap<String, (Vec<Map<String, Value>>, usize)>,
    /// The page size when a query asks for none (`Sforce-Query-Options: batchSize`).
    pub page_size: usize,
    /// Every request: (method, path and query, body).
    pub seen: Vec<(String, String, Option<Value>)>,
    /// Requests the Postman collection does not have, or shapes Salesforce refuses.
    pub problems: Vec<String>,
    /// Upserts: (type, field, value, status answered).
    pub upserts: Vec<(String, String, String, u16)>,
    /// Requests without a valid token.
    pub unauthorized: usize,
    /// How long a PATCH waits before it is served (a slow org, for a kill mid-request).
    pub patch_delay_ms: u64,
    /// The last change's time: a second per change from a day ago, so a history written in
    /// bulk shares no `SystemModstamp` by chance.
    clock_ms: u64,
    next_id: u64,
}

type Shared = Arc<Mutex<OrgState>>;

/// The running stand-in.
pub struct SalesforceOrg {
    /// `http://127.0.0.1:PORT`: stands in for `https://login.salesforce.com` and the org's
    /// My Domain alike.
    pub base: String,
    pub state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SalesforceOrg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spec(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/provider-specs")
        .join(file);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The token requests of the 2020 collection (Postman v2.1: a tree of items).
fn token_requests(items: &Value, out: &mut Vec<(String, Vec<String>)>) {
    for item in items.as_array().into_iter().flatten() {
        token_requests(&item["item"], out);
        let request = &item["request"];
        let raw = request["url"]["raw"]
            .as_str()
            .or(request["url"].as_str())
            .unwrap_or_default();
        if let Some(at) = raw.find("/services/oauth2/") {
            let path = raw[at..].split('?').next().unwrap_or_default();
            let method = request["method"].as_str().unwrap_or("GET").to_string();
            out.push((method, path.split('/').map(str::to_string).collect()));
        }
    }
}

/// The Postman collections' requests: (method, path template split on `/`).
fn collection() -> Vec<(String, Vec<String>)> {
    let doc = spec("salesforce_postman_requests_2021.json");
    let mut out = Vec::new();
    token_requests(
        &spec("salesforce_postman_collection.json")["item"],
        &mut out,
    );
    for request in doc["requests"].as_object().unwrap().values() {
        let Some(url) = request["url"].as_str() else {
            continue;
        };
        let path = url
            .trim_start_matches("{{_endpoint}}")
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        // "HEAD, GET, PATCH, DELETE, POST": the methods a resource takes, when it lists them.
        let description = request["description"].as_str().unwrap_or_default();
        let mut methods = vec![request["method"].as_str().unwrap_or("GET").to_string()];
        if let Some(last) = description.lines().last() {
            let listed: Vec<&str> = last.split(", ").collect();
            if listed
                .iter()
                .all(|m| ["HEAD", "GET", "PATCH", "DELETE", "POST", "PUT"].contains(m))
            {
                methods.extend(listed.iter().map(|m| m.to_string()));
            }
        }
        for m in methods {
            out.push((m, segments.clone()));
        }
    }
    out
}

/// Whether a request's method and path are one the collection has (`<X>` and `{{version}}`
/// stand for one segment each).
fn in_collection(templates: &[(String, Vec<String>)], method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    templates.iter().any(|(m, t)| {
        m == method
            && t.len() == segments.len()
            && t.iter().zip(&segments).all(|(t, s)| {
                t == s || t.starts_with('<') || (t.contains("{{version}}") && s.starts_with('v'))
            })
    })
}

impl SalesforceOrg {
    pub async fn start(consumer_key: &str, username: &str) -> SalesforceOrg {
        let public_key_pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oauth-keys/public.pem"),
        )
        .unwrap();
        let state = Arc::new(Mutex::new(OrgState {
            consumer_key: consumer_key.into(),
            username: username.into(),
            public_key_pem,
            allowance: 100_000,
            page_size: 2000,
            deleted_window_ms: 30 * 86_400_000,
            clock_ms: now_ms() - 86_400_000,
            ..OrgState::default()
        }));
        let templates = Arc::new(collection());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(handle)
            .with_state((state.clone(), templates));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SalesforceOrg { base, state, task }
    }

    /// A user writes a row in Salesforce: its id (new, or `id` kept), its `SystemModstamp`
    /// moved on.
    pub fn user_writes(&self, sobject: &str, id: Option<&str>, fields: Value) -> String {
        let mut st = self.state.lock().unwrap();
        st.write(sobject, id, fields.as_object().cloned().unwrap_or_default())
    }

    /// A user deletes a row (it goes to the recycle bin: `deleted` lists it).
    pub fn user_deletes(&self, sobject: &str, id: &str) {
        let mut st = self.state.lock().unwrap();
        // The recycle bin dates a deletion by the wall clock, as `deleted` is asked by it.
        let at = now_ms();
        if let Some(rows) = st.objects.get_mut(sobject) {
            rows.remove(id);
        }
        st.deleted.push((sobject.into(), id.into(), at));
    }

    /// Ends every session: the next call with an old token is a 401 `INVALID_SESSION_ID`.
    pub fn expire_sessions(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// Rows of a type whose field equals a value.
    pub fn rows_where(&self, sobject: &str, field: &str, value: &str) -> Vec<Row> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(sobject)
            .map(|rows| {
                rows.values()
                    .filter(|r| r.fields.get(field).and_then(Value::as_str) == Some(value))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Panics with what the server refused, if anything.
    pub fn assert_clean(&self) {
        let st = self.state.lock().unwrap();
        assert!(
            st.problems.is_empty(),
            "Salesforce refused: {:?}",
            st.problems
        );
        assert!(
            st.bad_assertions.is_empty(),
            "assertions refused: {:?}",
            st.bad_assertions
        );
    }
}

impl OrgState {
    /// The time of a change: a second after the last one.
    fn tick(&mut self) -> u64 {
        self.clock_ms += 1000;
        self.clock_ms
    }

    fn write(&mut self, sobject: &str, id: Option<&str>, fields: Map<String, Value>) -> String {
        let at = self.tick();
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                self.next_id += 1;
                new_id(sobject, self.next_id)
            }
        };
        let rows = self.objects.entry(sobject.to_string()).or_default();
        let row = rows.entry(id.clone()).or_insert_with(|| Row {
            fields: Map::new(),
            modstamp_ms: at,
        });
        row.fields.extend(fields);
        row.fields.insert("Id".into(), json!(id));
        row.fields.insert("SystemModstamp".into(), json!(stamp(at)));
        row.modstamp_ms = at;
        id
    }
}

/// An 18-character id with the type's key prefix.
fn new_id(sobject: &str, n: u64) -> String {
    let prefix = match sobject {
        "Contact" => "003",
        "Lead" => "00Q",
        "Account" => "001",
        "Opportunity" => "006",
        _ => "a01",
    };
    format!("{prefix}{n:012}AAA")
}

/// Salesforce's REST datetime: `2024-05-01T12:00:00.000+0000`.
pub fn stamp(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// A SOQL datetime literal or a REST `start`/`end`: ISO 8601 with `Z` or an offset.
fn parse_time(text: &str) -> Option<u64> {
    let text = text.trim().trim_matches('\'');
    let fixed = if text.len() > 5 && (text.ends_with("+0000") || text.ends_with("-0000")) {
        format!("{}+00:00", &text[..text.len() - 5])
    } else {
        text.to_string()
    };
    chrono::DateTime::parse_from_rfc3339(&fixed)
        .ok()
        .map(|t| t.timestamp_millis() as u64)
}

type App = (Shared, Arc<Vec<(String, Vec<String>)>>);

async fn handle(
    State((state, templates)): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    {
        let mut st = state.lock().unwrap();
        let shown = uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        st.seen.push((method.to_string(), shown, json_body.clone()));
        let locator_page = path.starts_with(&format!("/services/data/{VERSION}/query/"));
        if !locator_page && !in_collection(&templates, method.as_str(), &path) {
            st.problems
                .push(format!("{method} {path}: not in Salesforce's collection"));
            return (StatusCode::NOT_FOUND, "[{\"errorCode\":\"NOT_FOUND\",\"message\":\"The requested resource does not exist\"}]").into_response();
        }
    }
    let delay = state.lock().unwrap().patch_delay_ms;
    if method == Method::PATCH && delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if path == "/services/oauth2/token" && method == Method::POST {
        return token(&state, &body).await;
    }
    let Some(rest) = path.strip_prefix(&format!("/services/data/{VERSION}/")) else {
        state
            .lock()
            .unwrap()
            .problems
            .push(format!("{path}: not the pinned API version"));
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut st = state.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !st.tokens.contains(bearer) {
        st.unauthorized += 1;
        return errors(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    st.used += 1;
    if st.limit_exceeded > 0 || st.used > st.allowance {
        st.limit_exceeded = st.limit_exceeded.saturating_sub(1);
        let mut resp = errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        limit_header(&st, &mut resp);
        return resp;
    }
    // Salesforce reads each path segment percent-decoded (an email as an external id).
    let decoded: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let mut resp = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["query"]) => match query.get("q") {
            Some(q) => {
                // `batchSize=N`, 200 to 2,000 (a hint Salesforce may exceed; this org keeps it).
                let asked = headers
                    .get("sforce-query-options")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().strip_prefix("batchSize="))
                    .and_then(|n| n.parse::<usize>().ok());
                let size = asked.unwrap_or(st.page_size).clamp(200, 2000);
                soql(&mut st, q, size)
            }
            None => errors(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "q is missing"),
        },
        (Method::GET, ["query", locator]) => next_page(&mut st, locator),
        (Method::GET, ["sobjects", sobject, "deleted"]) => deleted(&st, sobject, &query),
        (Method::GET, ["sobjects", sobject, id]) => {
            match st.objects.get(*sobject).and_then(|r| r.get(*id)) {
                Some(row) => ok_json(StatusCode::OK, with_attributes(sobject, &row.fields)),
                None => errors(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                ),
            }
        }
        (Method::GET, ["sobjects", sobject, field, value]) => {
            let found: Vec<Map<String, Value>> = st
                .objects
                .get(*sobject)
                .map(|rows| {
                    rows.values()
                        .filter(|r| r.fields.get(*field).and_then(Value::as_str) == Some(*value))
                        .map(|r| r.fields.clone())
                        .collect()
                })
                .unwrap_or_default();
            match found.as_slice() {
                [one] => ok_json(StatusCode::OK, with_attributes(sobject, one)),
                [] => errors(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                ),
                many => ok_json(
                    StatusCode::MULTIPLE_CHOICES,
                    json!(
                        many.iter()
                            .map(|r| format!(
                                "/services/data/{VERSION}/sobjects/{sobject}/{}",
                                r["Id"].as_str().unwrap_or_default()
                            ))
                            .collect::<Vec<_>>()
                    ),
                ),
            }
        }
        (Method::PATCH, ["sobjects", sobject, field, value]) => {
            upsert(&mut st, sobject, field, value, json_body.as_ref())
        }
        (Method::GET, ["limits"]) => ok_json(
            StatusCode::OK,
            json!({"DailyApiRequests": {"Max": st.allowance, "Remaining": st.allowance.saturating_sub(st.used)}}),
        ),
        (Method::GET, ["sobjects"]) => ok_json(
            StatusCode::OK,
            json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": []}),
        ),
        _ => {
            st.problems
                .push(format!("{method} {rest}: the stand-in does not serve it"));
            errors(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            )
        }
    };
    limit_header(&st, &mut resp);
    resp
}

fn limit_header(st: &OrgState, resp: &mut Response) {
    resp.headers_mut().insert(
        "sforce-limit-info",
        format!("api-usage={}/{}", st.used, st.allowance)
            .parse()
            .unwrap(),
    );
}

fn ok_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// Salesforce's error shape: a JSON array of `{message, errorCode}`.
fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    ok_json(status, json!([{ "message": message, "errorCode": code }]))
}

fn with_attributes(sobject: &str, fields: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    let id = fields.get("Id").and_then(Value::as_str).unwrap_or_default();
    out.insert(
        "attributes".into(),
        json!({"type": sobject, "url": format!("/services/data/{VERSION}/sobjects/{sobject}/{id}")}),
    );
    out.extend(fields.clone());
    Value::Object(out)
}

/// The token endpoint: the JWT bearer flow, checked by `jose`, or client credentials.
async fn token(state: &Shared, body: &[u8]) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let (key, user, pem) = {
        let mut st = state.lock().unwrap();
        st.token_grants.push(grant.clone());
        (
            st.consumer_key.clone(),
            st.username.clone(),
            st.public_key_pem.clone(),
        )
    };
    match grant.as_str() {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let jwt = form.get("assertion").cloned().unwrap_or_default();
            let input =
                json!({"jwt": jwt, "public_key_pem": pem, "audience": AUDIENCE, "issuer": key});
            let checked = tokio::task::spawn_blocking(move || verify_jwt(&input))
                .await
                .unwrap();
            let claims = &checked["claims"];
            let life = claims["exp"].as_f64().unwrap_or(0.0) - now_ms() as f64 / 1000.0;
            let why = if checked["ok"] != true {
                Some(checked["error"].as_str().unwrap_or("refused").to_string())
            } else if claims["sub"] != user.as_str() {
                Some(format!(
                    "sub is {}, not the pre-authorized user",
                    claims["sub"]
                ))
            } else if life > 190.0 {
                Some(format!(
                    "exp is {life:.0} s away: Salesforce takes 3 minutes at most"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                state.lock().unwrap().bad_assertions.push(why);
                return ok_json(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "invalid assertion"}),
                );
            }
        }
        "client_credentials" => {
            if form.get("client_id") != Some(&key)
                || form.get("client_secret").map(String::as_str) != Some(CONSUMER_SECRET)
            {
                return ok_json(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
                );
            }
        }
        other => {
            state
                .lock()
                .unwrap()
                .problems
                .push(format!("token: grant_type {other}"));
            return ok_json(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"}),
            );
        }
    }
    let token = format!("00D000000000001!AQ{:016x}", rand_u64());
    state.lock().unwrap().tokens.insert(token.clone());
    // No `expires_in` and no refresh token: the session lasts until Salesforce ends it.
    ok_json(
        StatusCode::OK,
        json!({
            "access_token": token,
            "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": now_ms().to_string(),
            "signature": "c2lnbmF0dXJl",
        }),
    )
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish()
}

/// The SOQL the connector sends: `SELECT f, ... FROM T [WHERE SystemModstamp >|>= t]
/// [ORDER BY SystemModstamp [ASC][, Id]] [LIMIT n]`.
fn soql(st: &mut OrgState, q: &str, page_size: usize) -> Response {
    let bad = |st: &mut OrgState, why: &str| {
        st.problems.push(format!("SOQL `{q}`: {why}"));
        errors(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", why)
    };
    let upper = q.to_ascii_uppercase();
    let (Some(select), Some(from)) = (upper.find("SELECT "), upper.find(" FROM ")) else {
        return bad(st, "not SELECT ... FROM ...");
    };
    let fields: Vec<String> = q[select + 7..from]
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    let after = &q[from + 6..];
    let sobject = after
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let rest = after[sobject.len()..].trim();
    let rest_upper = rest.to_ascii_uppercase();
    let mut since: Option<(u64, bool)> = None;
    if let Some(w) = rest_upper.find("WHERE ") {
        let cond: Vec<&str> = rest[w + 6..].split_whitespace().collect();
        match cond.as_slice() {
            ["SystemModstamp", op @ (">" | ">="), t, ..] => match parse_time(t) {
                Some(ms) => since = Some((ms, *op == ">=")),
                None => return bad(st, "a datetime literal is YYYY-MM-DDThh:mm:ssZ"),
            },
            _ => {
                return bad(
                    st,
                    "the stand-in reads WHERE SystemModstamp > datetime only",
                );
            }
        }
    }
    let ordered = rest_upper.contains("ORDER BY SYSTEMMODSTAMP");
    if since.is_some() && !ordered {
        return bad(st, "an incremental query must ORDER BY SystemModstamp");
    }
    let limit = rest_upper.find("LIMIT ").and_then(|i| {
        rest[i + 6..]
            .split_whitespace()
            .next()?
            .parse::<usize>()
            .ok()
    });
    let Some(rows) = st.objects.get(&sobject).cloned().or_else(|| {
        ["Contact", "Lead", "Account", "Opportunity"]
            .contains(&sobject.as_str())
            .then(BTreeMap::new)
    }) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!("sObject type '{sobject}' is not supported."),
        );
    };
    let mut matched: Vec<&Row> = rows
        .values()
        .filter(|r| match since {
            Some((ms, true)) => r.modstamp_ms >= ms,
            Some((ms, false)) => r.modstamp_ms > ms,
            None => true,
        })
        .collect();
    matched.sort_by(|a, b| {
        (a.modstamp_ms, a.fields["Id"].as_str()).cmp(&(b.modstamp_ms, b.fields["Id"].as_str()))
    });
    if let Some(n) = limit {
        matched.truncate(n);
    }
    let selected: Vec<Map<String, Value>> = matched
        .iter()
        .map(|r| {
            let mut out = Map::new();
            out.insert(
                "attributes".into(),
                json!({"type": sobject, "url": format!("/services/data/{VERSION}/sobjects/{sobject}/{}", r.fields["Id"].as_str().unwrap_or_default())}),
            );
            for f in &fields {
                out.insert(f.clone(), r.fields.get(f).cloned().unwrap_or(Value::Null));
            }
            out
        })
        .collect();
    st.next_id += 1;
    let locator = format!("01g{:015}", st.next_id);
    st.locators.insert(locator.clone(), (selected, page_size));
    next_page(st, &locator)
}

/// A page of a query's result, from its locator.
fn next_page(st: &mut OrgState, locator: &str) -> Response {
    let key = locator.split('-').next().unwrap_or_default().to_string();
    let offset: usize = locator
        .split('-')
        .nth(1)
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let Some((rows, size)) = st.locators.get(&key) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    let total = rows.len();
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(*size)
        .cloned()
        .map(Value::Object)
        .collect();
    let end = offset + page.len();
    let mut body = json!({"totalSize": total, "done": end >= total, "records": page});
    if end < total {
        body["nextRecordsUrl"] = json!(format!("/services/data/{VERSION}/query/{key}-{end}"));
    }
    ok_json(StatusCode::OK, body)
}

/// `GET /sobjects/T/deleted/?start=&end=`: the rows deleted in the window (at most 30 days
/// back, else from `earliestDateAvailable`).
fn deleted(st: &OrgState, sobject: &str, query: &HashMap<String, String>) -> Response {
    let (Some(start), Some(end)) = (
        query.get("start").and_then(|s| parse_time(s)),
        query.get("end").and_then(|s| parse_time(s)),
    ) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "start and end are ISO 8601 datetimes",
        );
    };
    let earliest = now_ms().saturating_sub(st.deleted_window_ms);
    let from = start.max(earliest);
    let rows: Vec<Value> = st
        .deleted
        .iter()
        .filter(|(t, _, at)| t == sobject && *at >= from && *at <= end)
        .map(|(_, id, at)| json!({"id": id, "deletedDate": stamp(*at)}))
        .collect();
    ok_json(
        StatusCode::OK,
        json!({"deletedRecords": rows, "earliestDateAvailable": stamp(earliest), "latestDateCovered": stamp(end.min(now_ms()))}),
    )
}

/// `PATCH /sobjects/T/Field/value`: the upsert by an external id.
fn upsert(
    st: &mut OrgState,
    sobject: &str,
    field: &str,
    value: &str,
    body: Option<&Value>,
) -> Response {
    let Some(Value::Object(fields)) = body else {
        st.problems
            .push(format!("upsert {sobject}: the body is not a JSON object"));
        return errors(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "the body is not a JSON object",
        );
    };
    if fields.contains_key("Id") || fields.contains_key(field) {
        st.problems
            .push(format!("upsert {sobject}: Id or {field} in the body"));
        return errors(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "Id and the external id field are in the URL, not the body",
        );
    }
    let matches: Vec<String> = st
        .objects
        .get(sobject)
        .map(|rows| {
            rows.values()
                .filter(|r| r.fields.get(field).and_then(Value::as_str) == Some(value))
                .filter_map(|r| r.fields["Id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut write = fields.clone();
    write.insert(field.to_string(), json!(value));
    let (status, body) = match matches.as_slice() {
        [] => {
            let required = match sobject {
                "Contact" => &["LastName"][..],
                "Lead" => &["LastName", "Company"][..],
                _ => &[][..],
            };
            if let Some(missing) = required.iter().find(|f| {
                fields
                    .get(**f)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            }) {
                st.upserts
                    .push((sobject.into(), field.into(), value.into(), 400));
                return errors(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_FIELD_MISSING",
                    &format!("Required fields are missing: [{missing}]"),
                );
            }
            let id = st.write(sobject, None, write);
            (
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": [], "created": true}),
            )
        }
        [one] => {
            let id = one.clone();
            st.write(sobject, Some(&id), write);
            (
                StatusCode::OK,
                json!({"id": id, "success": true, "errors": [], "created": false}),
            )
        }
        many => (
            StatusCode::MULTIPLE_CHOICES,
            json!(
                many.iter()
                    .map(|id| format!("/services/data/{VERSION}/sobjects/{sobject}/{id}"))
                    .collect::<Vec<_>>()
            ),
        ),
    };
    st.upserts
        .push((sobject.into(), field.into(), value.into(), status.as_u16()));
    ok_json(status, body)
}

/// An outbound message as Salesforce posts it (the WSDL's `notifications`), one
/// `Notification` per `(notification id, sObject type, fields)`; a `None` id leaves it out.
pub fn outbound_message(org_id: &str, notifications: &[(Option<&str>, &str, Value)]) -> String {
    let mut items = String::new();
    for (id, sobject, fields) in notifications {
        items.push_str("<Notification>");
        if let Some(id) = id {
            items.push_str(&format!("<Id>{id}</Id>"));
        }
        items.push_str(&format!(
            "<sObject xsi:type=\"sf:{sobject}\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">"
        ));
        for (name, value) in fields.as_object().into_iter().flatten() {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            items.push_str(&format!("<sf:{name}>{text}</sf:{name}>"));
        }
        items.push_str("</sObject></Notification>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n <soapenv:Body>\n  <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n   <OrganizationId>{org_id}</OrganizationId>\n   <ActionId>04k000000000001AAA</ActionId>\n   <SessionId xsi:nil=\"true\"/>\n   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D000000000001</EnterpriseUrl>\n   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D000000000001</PartnerUrl>\n   {items}\n  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>"
    )
}

/// The Ack Salesforce waits for, byte for byte.
pub const ACK: &str = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>";
