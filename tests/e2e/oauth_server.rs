//! A local OAuth 2.0 authorization server, standing in for a provider's in tests of the hub's
//! OAuth client: the authorization-code grant with PKCE (RFC 6749, RFC 7636), refresh tokens
//! with optional rotation, client credentials, the JWT bearer grant of service accounts
//! (RFC 7523), revocation (RFC 7009), and a protected API that takes the access tokens it issued.
//!
//! Everything it saw and holds is in [`AuthState`], behind a mutex the test reads and edits:
//! the token requests in order, the grants still valid, the assertions received (checked
//! again by `tests/signers/verify-jwt.js`), and canned failures to answer next. It is as strict
//! as a real provider: wrong client authentication, a reused or expired code, a PKCE verifier
//! that does not match, a refresh token rotation killed, are all refused.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::util::now_ms;

/// The grant type of a JWT bearer assertion (RFC 7523), as Google service accounts use it.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a code from `/authorize` stays usable.
const CODE_LIFETIME_MS: u64 = 60_000;

/// How the server behaves; fixed for its life.
#[derive(Clone, Debug)]
pub struct Settings {
    pub client_id: String,
    pub client_secret: String,
    /// The only `redirect_uri` accepted (an absolute URL); needed by the code flow only.
    pub redirect_uri: String,
    /// Seconds, in token answers.
    pub expires_in: u64,
    /// Each `refresh_token` grant issues a new refresh token; the one presented dies once the
    /// new one, or the access token minted with it, is used.
    pub rotate: bool,
    /// `/authorize` redirects with `error=access_denied` instead of a code.
    pub deny: bool,
    /// Sleep before answering a refresh, to widen race windows.
    pub refresh_delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            client_id: "hub-test-client".into(),
            client_secret: "hub-test-secret".into(),
            redirect_uri: "http://127.0.0.1/oauth/callback".into(),
            expires_in: 3600,
            rotate: false,
            deny: false,
            refresh_delay_ms: 0,
        }
    }
}

/// A code `/authorize` issued, and what it is bound to.
#[derive(Clone, Debug)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: Option<String>,
    /// Unix milliseconds.
    pub expires_at: u64,
}

/// A canned answer to the next token request, instead of the normal one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 503 `{"error":"temporarily_unavailable"}`.
    Unavailable,
    /// 500 with an HTML error page.
    Html,
    /// 200 labelled `application/json` whose body is not JSON.
    Garbage,
    /// 400 `{"error":"invalid_grant"}`.
    InvalidGrant,
}

/// One `POST /token`, as received.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub grant_type: String,
    /// `"basic"`, `"post"`, `"none"` or `"assertion"`: how the client authenticated.
    pub client_auth: String,
    /// The form fields, client secret included.
    pub form: HashMap<String, String>,
}

/// What the server saw and holds.
#[derive(Debug, Default)]
pub struct AuthState {
    /// Every `POST /token`, in order, failed ones included.
    pub requests: Vec<TokenRequest>,
    /// Successful `refresh_token` grants.
    pub refreshes: usize,
    /// Refresh tokens presented after rotation invalidated them: a client that refreshes
    /// concurrently, or forgets to store the new token, shows up here.
    pub dead_refresh_presented: Vec<String>,
    /// Refresh tokens invalidated by rotation.
    pub dead_refresh: HashSet<String>,
    /// Rotation's successors (a new refresh token, and the access token minted with it) to the
    /// refresh token they replace: that one dies once either is used (Okta's and Auth0's
    /// rotation, whose reuse window ends when the successor is used).
    pub superseded: HashMap<String, String>,
    /// The access token the last answer carried.
    pub last_access: String,
    pub valid_refresh: HashSet<String>,
    /// Access tokens, with when they expire (unix ms).
    pub valid_access: HashMap<String, u64>,
    /// Codes issued and not yet used.
    pub codes: HashMap<String, CodeGrant>,
    /// Every JWT bearer assertion received, raw.
    pub assertions: Vec<String>,
    /// The `aud` assertions must carry; `{base}/token` when `None`.
    pub assertion_audience: Option<String>,
    /// A second `aud` accepted (a Salesforce-style audience that is not the token URL).
    pub also_audience: Option<String>,
    /// Answers for the next token requests, instead of the normal ones.
    pub fail_next: VecDeque<Failure>,
    /// Tokens posted to `/revoke`.
    pub revoked: Vec<String>,
    /// Access tokens `/api/whoami` accepted.
    pub api_calls: Vec<String>,
    /// Bearer tokens `/api/whoami` refused (unknown, revoked or expired); `""` for none.
    pub api_refused: Vec<String>,
}

/// The running server; stops when dropped.
pub struct OAuthServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub settings: Settings,
    pub state: Arc<Mutex<AuthState>>,
    task: tokio::task::AbortHandle,
}

impl OAuthServer {
    /// Starts the server on a free loopback port.
    pub async fn start(settings: Settings) -> OAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::<Mutex<AuthState>>::default();
        let app = App {
            settings: Arc::new(settings.clone()),
            base: base.clone(),
            state: state.clone(),
        };
        let router = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/api/whoami", get(whoami))
            .route("/api/echo", get(echo))
            .with_state(app);
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        OAuthServer {
            base,
            settings,
            state,
            task: task.abort_handle(),
        }
    }

    /// `{base}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// Adds a valid refresh token and returns it, for tests that paste one in.
    pub fn issue_refresh_token(&self) -> String {
        new_refresh(&mut self.state.lock().unwrap())
    }

    /// Forgets every refresh and access token, as when the user revokes the app: the next
    /// refresh gets `invalid_grant`.
    pub fn revoke_all_grants(&self) {
        let mut st = self.state.lock().unwrap();
        st.valid_refresh.clear();
        st.valid_access.clear();
    }

    /// Expires every access token issued so far, so the API answers 401 to them.
    pub fn expire_access_tokens(&self) {
        for expires_at in self.state.lock().unwrap().valid_access.values_mut() {
            *expires_at = 0;
        }
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    settings: Arc<Settings>,
    base: String,
    state: Arc<Mutex<AuthState>>,
}

type Form = HashMap<String, String>;

/// `GET /authorize`: checks the request, then redirects back with a code (or a denial).
async fn authorize(State(app): State<App>, Query(q): Query<Form>) -> Response {
    let param = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let s = &app.settings;
    let state = param("state");
    let challenge = param("code_challenge");
    let refusal = if param("response_type") != "code" {
        "response_type must be code"
    } else if param("client_id") != s.client_id {
        "unknown client_id"
    } else if param("redirect_uri") != s.redirect_uri {
        "redirect_uri is not the registered one"
    } else if state.is_empty() {
        "state is required"
    } else if !URL_SAFE_NO_PAD
        .decode(challenge)
        .is_ok_and(|d| d.len() == 32)
    {
        "code_challenge must be BASE64URL(SHA256(code_verifier))"
    } else if param("code_challenge_method") != "S256" {
        "code_challenge_method must be S256"
    } else {
        ""
    };
    if !refusal.is_empty() {
        return (StatusCode::BAD_REQUEST, refusal).into_response();
    }
    let Ok(mut target) = url::Url::parse(&s.redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri is not an absolute URL",
        )
            .into_response();
    };
    if s.deny {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", state);
    } else {
        let code = random_token("code-");
        let grant = CodeGrant {
            client_id: s.client_id.clone(),
            redirect_uri: s.redirect_uri.clone(),
            code_challenge: challenge.to_owned(),
            scope: q.get("scope").cloned(),
            expires_at: now_ms() + CODE_LIFETIME_MS,
        };
        app.state.lock().unwrap().codes.insert(code.clone(), grant);
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", state);
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// `POST /token`: records the request, answers a queued failure if any, then the grant.
async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let failure = {
        let mut st = app.state.lock().unwrap();
        st.requests.push(TokenRequest {
            grant_type: grant_type.clone(),
            client_auth: auth_kind(&headers, &form, &grant_type).into(),
            form: form.clone(),
        });
        st.fail_next.pop_front()
    };
    if let Some(failure) = failure {
        return failure.response();
    }
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    if grant_type == JWT_BEARER {
        return jwt_bearer(&app, &form);
    }
    if let Err(refusal) = check_client(&app.settings, &headers, &form) {
        return refusal;
    }
    match grant_type.as_str() {
        "authorization_code" => authorization_code(&app, &form),
        "refresh_token" => refresh(&app, &form).await,
        "client_credentials" => {
            let mut st = app.state.lock().unwrap();
            issue(&app, &mut st, form.get("scope").cloned(), None)
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is missing",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("unsupported grant_type {other}"),
        ),
    }
}

/// The `authorization_code` grant: a single-use code, its redirect URI and the PKCE verifier.
fn authorization_code(app: &App, form: &Form) -> Response {
    let mut st = app.state.lock().unwrap();
    let Some(grant) = form.get("code").and_then(|code| st.codes.remove(code)) else {
        return invalid_grant("unknown or already used code");
    };
    if grant.expires_at <= now_ms() {
        return invalid_grant("the code expired");
    }
    if grant.client_id != app.settings.client_id {
        return invalid_grant("the code was issued to another client");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return invalid_grant("redirect_uri differs from the one the code was issued for");
    }
    let Some(verifier) = form.get("code_verifier") else {
        return invalid_grant("code_verifier is missing");
    };
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if !(43..=128).contains(&verifier.len()) || !verifier.chars().all(unreserved) {
        return invalid_grant("code_verifier must be 43 to 128 unreserved characters");
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
        return invalid_grant("code_verifier does not match the code_challenge");
    }
    let refresh = new_refresh(&mut st);
    issue(app, &mut st, grant.scope, Some(refresh))
}

/// The `refresh_token` grant, after `refresh_delay_ms`; rotates the token when configured.
async fn refresh(app: &App, form: &Form) -> Response {
    let Some(presented) = form.get("refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is missing",
        );
    };
    tokio::time::sleep(Duration::from_millis(app.settings.refresh_delay_ms)).await;
    let mut st = app.state.lock().unwrap();
    if st.valid_refresh.contains(presented) {
        st.refreshes += 1;
        // Presenting a successor retires the token it replaced.
        if let Some(old) = st.superseded.remove(presented) {
            retire(&mut st, &old);
        }
        let next = app.settings.rotate.then(|| new_refresh(&mut st));
        let answer = issue(app, &mut st, form.get("scope").cloned(), next.clone());
        if let Some(next) = next {
            let access = st.last_access.clone();
            st.superseded.insert(next, presented.clone());
            st.superseded.insert(access, presented.clone());
        }
        return answer;
    }
    if st.dead_refresh.contains(presented) {
        st.dead_refresh_presented.push(presented.clone());
        return invalid_grant("the refresh token was rotated away");
    }
    invalid_grant("unknown or revoked refresh token")
}

/// The JWT bearer grant: records the assertion and checks its claims (not its signature: the
/// test verifies that with an independent library).
fn jwt_bearer(app: &App, form: &Form) -> Response {
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "assertion is missing",
        );
    };
    let mut st = app.state.lock().unwrap();
    st.assertions.push(assertion.clone());
    let audience = st
        .assertion_audience
        .clone()
        .unwrap_or_else(|| format!("{}/token", app.base));
    let also = st.also_audience.clone();
    let checked = match (assertion_claims(assertion, &audience), also) {
        (Err(_), Some(also)) => assertion_claims(assertion, &also),
        (result, _) => result,
    };
    match checked {
        Ok(claims) => {
            let scope = claims
                .get("scope")
                .and_then(Value::as_str)
                .map(str::to_owned);
            issue(
                app,
                &mut st,
                scope.or_else(|| form.get("scope").cloned()),
                None,
            )
        }
        Err(why) => invalid_grant(&why),
    }
}

/// The claims of an RS256 JWT, if it has `iss`, the `audience`, an `exp` within the hour
/// (ten seconds of slack) and an `iat` not in the future.
fn assertion_claims(jwt: &str, audience: &str) -> Result<Map<String, Value>, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, payload, signature] = parts[..] else {
        return Err("an assertion is three dot-separated parts".into());
    };
    if signature.is_empty() {
        return Err("the assertion is not signed".into());
    }
    if jwt_part(head)?.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("alg must be RS256".into());
    }
    let claims = jwt_part(payload)?;
    let now = now_ms() as f64 / 1000.0;
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    if claims
        .get("iss")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("iss is missing".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        Some(aud) => aud.as_str() == Some(audience),
        None => false,
    };
    if !aud_ok {
        return Err(format!("aud must be {audience}"));
    }
    let exp = number("exp").ok_or("exp is missing")?;
    if exp <= now || exp > now + 3610.0 {
        return Err("exp must be within an hour from now".into());
    }
    if number("iat").ok_or("iat is missing")? > now + 10.0 {
        return Err("iat is in the future".into());
    }
    Ok(claims)
}

/// A JWT header or payload: base64url without padding, a JSON object.
fn jwt_part(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("a JWT part is not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("a JWT part is not a JSON object: {e}"))
}

/// `POST /revoke` (RFC 7009): forgets the token, whatever it is; 200 even when unknown.
async fn revoke(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    if let Err(refusal) = check_client(&app.settings, &headers, &form) {
        return refusal;
    }
    let Some(token) = form.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    let mut st = app.state.lock().unwrap();
    st.revoked.push(token.clone());
    st.valid_refresh.remove(token);
    st.valid_access.remove(token);
    StatusCode::OK.into_response()
}

/// `GET /api/echo`: answers the request's `Authorization` header, as a careless or hostile API
/// might: what reaches the connector must not be the token.
async fn echo(headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    axum::Json(json!({ "authorization": auth })).into_response()
}

/// `GET /api/whoami`: the protected API; 200 for a valid access token, 401 otherwise.
async fn whoami(State(app): State<App>, headers: HeaderMap) -> Response {
    let token = credentials(&headers, "Bearer").unwrap_or_default();
    let mut st = app.state.lock().unwrap();
    if st
        .valid_access
        .get(token)
        .is_some_and(|&expires_at| expires_at > now_ms())
    {
        st.api_calls.push(token.to_owned());
        if let Some(old) = st.superseded.remove(token) {
            retire(&mut st, &old);
        }
        return axum::Json(json!({"ok": true})).into_response();
    }
    st.api_refused.push(token.to_owned());
    let challenge = [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)];
    let body = json!({"error": "invalid_token"});
    (StatusCode::UNAUTHORIZED, challenge, axum::Json(body)).into_response()
}

impl Failure {
    fn response(self) -> Response {
        match self {
            Failure::Unavailable => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again later",
            ),
            Failure::Html => {
                let page = "<!DOCTYPE html><html><head><title>500 Internal Server Error</title>\
                    </head><body><h1>Internal Server Error</h1><p>Something broke.</p></body></html>";
                let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
                (StatusCode::INTERNAL_SERVER_ERROR, html, page).into_response()
            }
            Failure::Garbage => {
                let json = [(header::CONTENT_TYPE, "application/json")];
                (StatusCode::OK, json, "access_token=oops&this=is-not-json").into_response()
            }
            Failure::InvalidGrant => {
                no_store(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
            }
        }
    }
}

/// Checks the client's authentication: HTTP Basic with form-urlencoded id and secret
/// (RFC 6749 2.3.1), or both in the body; never both methods at once.
#[allow(clippy::result_large_err)] // a test stand-in's answer
fn check_client(settings: &Settings, headers: &HeaderMap, form: &Form) -> Result<(), Response> {
    match credentials(headers, "Basic") {
        Some(_) if form.contains_key("client_secret") => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "more than one client authentication method",
        )),
        Some(encoded) => match decode_basic(encoded) {
            Some((id, secret))
                if id == settings.client_id
                    && secret == settings.client_secret
                    && form.get("client_id").is_none_or(|f| *f == id) =>
            {
                Ok(())
            }
            _ => Err(invalid_client(true)),
        },
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret))
                if *id == settings.client_id && *secret == settings.client_secret =>
            {
                Ok(())
            }
            _ => Err(invalid_client(false)),
        },
    }
}

/// How a token request authenticates its client, for [`TokenRequest::client_auth`].
fn auth_kind(headers: &HeaderMap, form: &Form, grant_type: &str) -> &'static str {
    if credentials(headers, "Basic").is_some() {
        "basic"
    } else if form.contains_key("client_secret") {
        "post"
    } else if grant_type == JWT_BEARER {
        "assertion"
    } else {
        "none"
    }
}

/// The credentials of an `Authorization` header of the given scheme (case-insensitive).
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `base64(urlencode(id) ":" urlencode(secret))`, decoded.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let text = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_unescape(id)?, form_unescape(secret)?))
}

/// One form-urlencoded value, decoded (`+` is a space).
fn form_unescape(value: &str) -> Option<String> {
    let value = value.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&value)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

/// Whether the request says its body is a form.
fn is_form(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    content_type.is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// A form body's fields (the last one of a repeated name).
fn parse_form(body: &[u8]) -> Form {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Issues an access token (and returns `refresh`, already valid, when given).
/// A rotated refresh token whose successor was used: presenting it again is the bug the tests
/// look for.
fn retire(st: &mut AuthState, old: &str) {
    st.valid_refresh.remove(old);
    st.dead_refresh.insert(old.to_string());
}

fn issue(
    app: &App,
    st: &mut AuthState,
    scope: Option<String>,
    refresh: Option<String>,
) -> Response {
    let expires_in = app.settings.expires_in;
    let access = random_token("at-");
    st.valid_access
        .insert(access.clone(), now_ms() + expires_in * 1000);
    st.last_access = access.clone();
    let mut body =
        json!({"access_token": access, "token_type": "Bearer", "expires_in": expires_in});
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    no_store(StatusCode::OK, body)
}

/// Adds a new valid refresh token.
fn new_refresh(st: &mut AuthState) -> String {
    let token = random_token("rt-");
    st.valid_refresh.insert(token.clone());
    token
}

/// `prefix` and 32 random hex digits.
fn random_token(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

/// A JSON answer with `Cache-Control: no-store`, as RFC 6749 5.1 asks of token answers.
fn no_store(status: StatusCode, body: Value) -> Response {
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    (status, headers, axum::Json(body)).into_response()
}

/// An RFC 6749 5.2 error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// 401 `invalid_client`, with a Basic challenge when the client tried Basic (RFC 6749 5.2).
fn invalid_client(basic: bool) -> Response {
    let mut resp = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    if basic {
        let challenge = header::HeaderValue::from_static(r#"Basic realm="oauth""#);
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    resp
}
