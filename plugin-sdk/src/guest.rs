//! The guest side of the contract: what a connector crate writes against.
//!
//! The [`Connector`] trait mirrors the WIT `handler` exports with defaults for the optional ones;
//! [`export_connector!`] wires an implementation to the component's exports. The free functions
//! wrap the host imports with serde types and [`Error`] conversions.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::bindings::hub::connector::host::Level;
pub use crate::bindings::hub::connector::types::{
    ActionDecl, BasicAuth, Capture, Channel, ChannelHeaders, Delivery, Error, EventDecl, FieldDecl,
    HashAlgorithm, HeaderAuth, HmacScheme, HmacTimestamp, HttpError, HttpRequest, HttpResponse,
    JobDecl, MacEncoding, Manifest, Oauth2ClientAuth, Oauth2Decl, Oauth2Grant, OutboundAuth,
    Outcome, Reply, Retryable, Route, SchemeAuth, SecretForm, Selector, SignatureScheme,
    SignedHeaders, TenantLookup, TokenLocation, ToolCalls, XmlToken,
};
use crate::sys as host;

/// A connector's behaviour. Only `manifest` and `handle_delivery` are required.
///
/// ```
/// use plugin_sdk::*;
/// struct Echo;
/// impl Connector for Echo {
///     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
///     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
/// }
/// ```
pub trait Connector {
    /// Describes the connector: routes, events, actions, jobs, config, credentials, hosts.
    fn manifest() -> Manifest;

    /// Handles one stored, verified delivery.
    ///
    /// # Errors
    /// [`Error::Retryable`] to be called again later, [`Error::Permanent`] or
    /// [`Error::BadRequest`] to give up on this delivery.
    fn handle_delivery(delivery: Delivery) -> Result<Outcome, Error>;

    /// The synchronous answer for a `sync-reply` route.
    ///
    /// # Errors
    /// By default: permanent, since the connector declared no such route.
    fn respond(_delivery: Delivery) -> Result<Reply, Error> {
        Err(Error::Permanent(
            "this connector has no synchronous routes".into(),
        ))
    }

    /// Verifies a delivery on a `custom` route.
    ///
    /// # Errors
    /// By default: permanent, since the connector declared no custom scheme.
    fn verify(_delivery: Delivery) -> Result<bool, Error> {
        Err(Error::Permanent(
            "this connector has no custom signature scheme".into(),
        ))
    }

    /// Runs an action; the same `idempotency_key` must never act twice.
    ///
    /// # Errors
    /// By default: permanent, unknown action.
    fn run_action(name: String, _input: String, _idempotency_key: String) -> Result<String, Error> {
        Err(Error::Permanent(format!("unknown action `{name}`")))
    }

    /// Runs a job.
    ///
    /// # Errors
    /// By default: permanent, unknown job.
    fn run_job(name: String, _input: String) -> Result<(), Error> {
        Err(Error::Permanent(format!("unknown job `{name}`")))
    }
}

/// Exports a [`Connector`] implementation as the component's `handler`.
///
/// Only on the WebAssembly target: natively (`cargo test`, the [`harness`](crate::harness))
/// a `cdylib` cannot carry WIT export names, and the harness calls the trait directly.
///
/// ```
/// use plugin_sdk::*;
/// pub struct Echo;
/// impl Connector for Echo {
///     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
///     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
/// }
/// export_connector!(Echo);
/// ```
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct HubConnectorExport;
            impl $crate::bindings::exports::hub::connector::handler::Guest for HubConnectorExport {
                fn describe() -> $crate::Manifest {
                    <$connector as $crate::Connector>::manifest()
                }
                fn handle_delivery(d: $crate::Delivery) -> Result<$crate::Outcome, $crate::Error> {
                    <$connector as $crate::Connector>::handle_delivery(d)
                }
                fn respond(d: $crate::Delivery) -> Result<$crate::Reply, $crate::Error> {
                    <$connector as $crate::Connector>::respond(d)
                }
                fn verify(d: $crate::Delivery) -> Result<bool, $crate::Error> {
                    <$connector as $crate::Connector>::verify(d)
                }
                fn run_action(
                    name: String,
                    input: String,
                    key: String,
                ) -> Result<String, $crate::Error> {
                    <$connector as $crate::Connector>::run_action(name, input, key)
                }
                fn run_job(name: String, input: String) -> Result<(), $crate::Error> {
                    <$connector as $crate::Connector>::run_job(name, input)
                }
            }
            $crate::bindings::__export_connector_bindings!(HubConnectorExport with_types_in $crate::bindings);
        };
    };
}

/// A manifest with a name and version and nothing else, to fill in with struct update syntax.
///
/// ```
/// use plugin_sdk::*;
/// let m = Manifest { description: "Echoes webhooks.".into(), ..manifest("echo", "0.1.0") };
/// assert!(m.routes.is_empty());
/// ```
pub fn manifest(name: &str, version: &str) -> Manifest {
    Manifest {
        name: name.into(),
        version: version.into(),
        description: String::new(),
        routes: Vec::new(),
        events: Vec::new(),
        actions: Vec::new(),
        jobs: Vec::new(),
        config: Vec::new(),
        credentials: Vec::new(),
        oauth2: Vec::new(),
        outbound_hosts: Vec::new(),
    }
}

/// An OAuth2 credential the host holds: the consent flow and a pasted refresh token, with the
/// client's id and secret sent by HTTP Basic; no extra consent parameters. Name it in a
/// request's auth like any credential: `Request::get(url).bearer("google")`.
///
/// ```
/// use plugin_sdk::*;
/// let mut google = oauth2(
///     "google",
///     "https://accounts.google.com/o/oauth2/v2/auth",
///     "https://oauth2.googleapis.com/token",
///     &["https://www.googleapis.com/auth/calendar"],
/// );
/// google.grants.push(Oauth2Grant::JwtBearer);
/// google.authorize_params = vec![("access_type".into(), "offline".into())];
/// let m = Manifest { oauth2: vec![google], ..manifest("gcal", "0.1.0") };
/// assert_eq!(m.oauth2[0].grants.len(), 3);
/// ```
pub fn oauth2(name: &str, authorize_url: &str, token_url: &str, scopes: &[&str]) -> Oauth2Decl {
    Oauth2Decl {
        name: name.into(),
        description: String::new(),
        authorize_url: authorize_url.into(),
        token_url: token_url.into(),
        revoke_url: None,
        scopes: scopes.iter().map(|s| (*s).to_string()).collect(),
        authorize_params: Vec::new(),
        grants: vec![Oauth2Grant::AuthorizationCode, Oauth2Grant::RefreshToken],
        client_auth: Oauth2ClientAuth::Basic,
    }
}

/// A route with the given name, scheme and verifying credential; no identity (body hash),
/// no event type, asynchronous, one tenant per URL.
///
/// ```
/// use plugin_sdk::*;
/// let mut r = route("events", SignatureScheme::StandardWebhooks, "signing_secret");
/// r.identity = vec![Selector::Header("webhook-id".into())];
/// r.event_type = Some(Selector::Json("/type".into()));
/// ```
pub fn route(name: &str, signature: SignatureScheme, credential: &str) -> Route {
    Route {
        name: name.into(),
        signature,
        credential: credential.into(),
        tolerance_secs: 0,
        identity: Vec::new(),
        identity_optional: false,
        event_type: None,
        sync_reply: false,
        split_array: false,
        tenant_lookup: None,
        extra_methods: Vec::new(),
        tool_calls: None,
        example: None,
    }
}

impl HmacScheme {
    /// `t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">` in `header`: the shape of Stripe's and
    /// Calendly's signatures (and many others'), with a replay window.
    ///
    /// ```
    /// use plugin_sdk::*;
    /// let r = route("", SignatureScheme::Hmac(HmacScheme::timestamped("calendly-webhook-signature")), "signing_key");
    /// # let _ = r;
    /// ```
    pub fn timestamped(header: &str) -> HmacScheme {
        HmacScheme {
            header: header.into(),
            algorithm: HashAlgorithm::Sha256,
            encoding: MacEncoding::Hex,
            part: Some("v1".into()),
            prefix: String::new(),
            timestamp: HmacTimestamp::Part("t".into()),
            message: "{timestamp}.{body}".into(),
        }
    }

    /// `<prefix><hex HMAC-SHA256 of the body>` in `header`: GitHub's `x-hub-signature-256` with
    /// `sha256=`. No timestamp, so no replay window: identify deliveries by the provider's id.
    ///
    /// ```
    /// let github = plugin_sdk::HmacScheme::body_hex("x-hub-signature-256", "sha256=");
    /// assert_eq!(github.message, "{body}");
    /// ```
    pub fn body_hex(header: &str, prefix: &str) -> HmacScheme {
        HmacScheme {
            header: header.into(),
            algorithm: HashAlgorithm::Sha256,
            encoding: MacEncoding::Hex,
            part: None,
            prefix: prefix.into(),
            timestamp: HmacTimestamp::None,
            message: "{body}".into(),
        }
    }

    /// `<base64 HMAC-SHA256 of the body>` in `header`: Shopify's `x-shopify-hmac-sha256`.
    ///
    /// ```
    /// let shopify = plugin_sdk::HmacScheme::body_base64("x-shopify-hmac-sha256");
    /// assert!(matches!(shopify.encoding, plugin_sdk::MacEncoding::Base64));
    /// ```
    pub fn body_base64(header: &str) -> HmacScheme {
        HmacScheme {
            encoding: MacEncoding::Base64,
            ..HmacScheme::body_hex(header, "")
        }
    }
}

/// A declared config key or credential.
///
/// ```
/// let f = plugin_sdk::field("api_key", true, "The provider's API key.");
/// assert!(f.required);
/// ```
pub fn field(name: &str, required: bool, description: &str) -> FieldDecl {
    FieldDecl {
        name: name.into(),
        description: description.into(),
        required,
    }
}

/// The inputs of capability operation `id` (`email:send`) as an action declares them, for an
/// action that `implements` it and takes nothing more (empty for an unknown id).
///
/// ```
/// let inputs = plugin_sdk::operation_inputs(plugin_sdk::capability::EMAIL_SEND);
/// assert!(inputs.iter().any(|f| f.name == "subject" && f.required));
/// ```
pub fn operation_inputs(id: &str) -> Vec<FieldDecl> {
    crate::capability::operation(id)
        .map(|op| {
            op.inputs
                .iter()
                .map(|i| field(i.name, i.required, i.description))
                .collect()
        })
        .unwrap_or_default()
}

/// The outputs of capability operation `id` as an action declares them (empty for an unknown
/// id).
///
/// ```
/// let outputs = plugin_sdk::operation_outputs(plugin_sdk::capability::SMS_SEND);
/// assert!(outputs.iter().any(|f| f.name == "id" && f.required));
/// ```
pub fn operation_outputs(id: &str) -> Vec<FieldDecl> {
    crate::capability::operation(id)
        .map(|op| {
            op.outputs
                .iter()
                .map(|o| field(o.name, o.required, o.description))
                .collect()
        })
        .unwrap_or_default()
}

impl Error {
    /// A passing failure: retry later.
    ///
    /// ```
    /// let _ = plugin_sdk::Error::retryable("provider answered 503");
    /// ```
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::Retryable(Retryable {
            message: message.into(),
            retry_after_ms: None,
        })
    }
    /// A failure that will not go away by retrying.
    ///
    /// ```
    /// let _ = plugin_sdk::Error::permanent("provider answered 401: bad key");
    /// ```
    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent(message.into())
    }
    /// The input is malformed.
    ///
    /// ```
    /// let _ = plugin_sdk::Error::bad_request("the body has no `type`");
    /// ```
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }
    /// The provider turned the request down for a reason whoever asked can act on: not
    /// retried, and the message is for them (a voice agent's tool speaks it), so write it as
    /// a sentence they can use.
    ///
    /// ```
    /// let _ = plugin_sdk::Error::declined("The 3 pm slot was just taken; 3:30 and 4 pm are free.");
    /// ```
    pub fn declined(message: impl Into<String>) -> Self {
        Error::Declined(message.into())
    }
}

impl Outcome {
    /// The delivery was acted on.
    ///
    /// ```
    /// assert!(plugin_sdk::Outcome::handled().ignored.is_none());
    /// ```
    pub fn handled() -> Self {
        Outcome { ignored: None }
    }
    /// The delivery was deliberately not acted on, for this reason.
    ///
    /// ```
    /// let o = plugin_sdk::Outcome::ignored("event type `ping` is not handled");
    /// assert!(o.ignored.is_some());
    /// ```
    pub fn ignored(reason: impl Into<String>) -> Self {
        Outcome {
            ignored: Some(reason.into()),
        }
    }
}

impl Delivery {
    /// The body parsed as JSON.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the parse error.
    ///
    /// ```
    /// # let d = plugin_sdk::Delivery { id: "1".into(), route: String::new(), method: "POST".into(), url: String::new(), headers: vec![("content-type".into(), "application/json".into())], body: br#"{"type":"ping"}"#.to_vec(), received_at_ms: 0 };
    /// let v: serde_json::Value = d.json()?;
    /// assert_eq!(v["type"], "ping");
    /// # Ok::<(), plugin_sdk::Error>(())
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("body is not the expected JSON: {e}")))
    }
    /// The body parsed as an `application/x-www-form-urlencoded` form.
    ///
    /// ```
    /// # let d = plugin_sdk::Delivery { id: "1".into(), route: String::new(), method: "POST".into(), url: String::new(), headers: vec![("content-type".into(), "application/json".into())], body: br#"{"type":"ping"}"#.to_vec(), received_at_ms: 0 };
    /// let fields = d.form(); // a form body's fields; none for this JSON body
    /// assert!(fields.is_empty() || !fields.is_empty());
    /// ```
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
    /// The first value of a header (case-insensitive).
    ///
    /// ```
    /// # let d = plugin_sdk::Delivery { id: "1".into(), route: String::new(), method: "POST".into(), url: String::new(), headers: vec![("content-type".into(), "application/json".into())], body: br#"{"type":"ping"}"#.to_vec(), received_at_ms: 0 };
    /// assert_eq!(d.header("Content-Type"), Some("application/json"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Reply {
    /// A reply with a status, a content type and a body.
    ///
    /// ```
    /// let r = plugin_sdk::Reply::new(200, "text/xml", "<Response/>");
    /// assert_eq!(r.status, 200);
    /// ```
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
    /// A 200 JSON reply.
    ///
    /// # Errors
    /// Permanent if the value cannot be serialized.
    ///
    /// ```
    /// let r = plugin_sdk::Reply::json(&serde_json::json!({"ok": true})).unwrap();
    /// assert_eq!(r.body, br#"{"ok":true}"#);
    /// ```
    pub fn json<T: Serialize>(value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::permanent(e.to_string()))?;
        Ok(Reply::new(200, "application/json", body))
    }
}

/// Milliseconds since the Unix epoch, by the host's clock (in a [`harness`](crate::harness) test,
/// the harness's clock, which the test sets and advances).
///
/// ```
/// let now = plugin_sdk::now_ms();
/// assert!(now > 1_700_000_000_000);
/// ```
pub fn now_ms() -> u64 {
    #[cfg(all(feature = "harness", not(target_arch = "wasm32")))]
    if let Some(ms) = crate::harness::imports::clock() {
        return ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes a log line at a level.
///
/// ```no_run
/// plugin_sdk::log(plugin_sdk::Level::Info, "synced 12 agents");
/// ```
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Logs at info level with `format!` syntax.
///
/// ```no_run
/// plugin_sdk::info!("synced {} agents", 12);
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) };
}

/// Logs at warn level with `format!` syntax.
///
/// ```no_run
/// plugin_sdk::warn!("item {} skipped: no email", 3);
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) };
}

/// The public URL of one of this connector's routes for this tenant (e.g. a status callback).
///
/// ```no_run
/// let callback = plugin_sdk::route_url("status"); // https://<hub>/hooks/<tenant>/<connector>/status
/// ```
pub fn route_url(route: &str) -> String {
    host::route_url(route)
}

/// The tenant this invocation runs for.
///
/// ```no_run
/// let tenant = plugin_sdk::tenant();
/// ```
pub fn tenant() -> String {
    host::tenant()
}

/// A tenant config value, deserialized; `None` when the key is absent.
///
/// # Errors
/// Permanent when the value has the wrong shape (an operator must fix `hub.toml`).
///
/// ```no_run
/// let agents: Vec<String> = plugin_sdk::config("agent_ids")?.unwrap_or_default();
/// # Ok::<(), plugin_sdk::Error>(())
/// ```
pub fn config<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match host::config(key) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::permanent(format!("config key `{key}` has the wrong shape: {e}"))),
    }
}

/// A required tenant config value.
///
/// # Errors
/// Permanent when the key is absent or has the wrong shape.
///
/// ```no_run
/// let from: String = plugin_sdk::require_config("from")?;
/// # Ok::<(), plugin_sdk::Error>(())
/// ```
pub fn require_config<T: DeserializeOwned>(key: &str) -> Result<T, Error> {
    config(key)?.ok_or_else(|| Error::permanent(format!("config key `{key}` is not set")))
}

/// Key-value store scoped to (tenant, connector).
pub mod kv {
    use super::host;

    /// The value under `key`.
    ///
    /// ```no_run
    /// let cursor = plugin_sdk::kv::get("cursor");
    /// ```
    pub fn get(key: &str) -> Option<Vec<u8>> {
        host::kv_get(key)
    }
    /// The value under `key` as a UTF-8 string.
    ///
    /// ```no_run
    /// let since = plugin_sdk::kv::get_string("since").unwrap_or_default();
    /// ```
    pub fn get_string(key: &str) -> Option<String> {
        host::kv_get(key).and_then(|v| String::from_utf8(v).ok())
    }
    /// Stores `value` under `key`.
    ///
    /// ```no_run
    /// plugin_sdk::kv::set("cursor", b"1767225600000");
    /// ```
    pub fn set(key: &str, value: &[u8]) {
        host::kv_set(key, value);
    }
    /// Sets an idempotency marker under `key`: a value that only guards a job against acting
    /// twice. The hub deletes it with the finished jobs it guards, after `server.retention_days`
    /// (a [`set`] of the key makes it a value kept until deleted).
    ///
    /// ```no_run
    /// plugin_sdk::kv::set_marker("sent:order-42", b"email_123");
    /// ```
    pub fn set_marker(key: &str, value: &[u8]) {
        host::kv_set_marker(key, value);
    }
    /// Removes `key`.
    ///
    /// ```no_run
    /// plugin_sdk::kv::delete("cursor");
    /// ```
    pub fn delete(key: &str) {
        host::kv_delete(key);
    }
}

/// Records: the normalized objects the hub keeps per (tenant, kind, key).
pub mod records {
    use super::{Error, host};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The record, deserialized.
    ///
    /// # Errors
    /// Permanent if the stored JSON does not fit `T`.
    ///
    /// ```no_run
    /// let call: Option<serde_json::Value> = plugin_sdk::records::get("call", "call_1")?;
    /// # Ok::<(), plugin_sdk::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(kind: &str, key: &str) -> Result<Option<T>, Error> {
        match host::record_get(kind, key) {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
                Error::permanent(format!("stored {kind} record `{key}` does not parse: {e}"))
            }),
        }
    }
    /// Removes the record (a no-op if there is none).
    ///
    /// ```no_run
    /// plugin_sdk::records::delete("contact", "jane@example.com");
    /// ```
    pub fn delete(kind: &str, key: &str) {
        host::record_delete(kind, key);
    }

    /// Up to `limit` records of a kind, newest first, as `(key, value)`; records whose JSON does
    /// not fit `T` are skipped.
    ///
    /// ```no_run
    /// let recent: Vec<(String, serde_json::Value)> = plugin_sdk::records::list("call", 10);
    /// ```
    pub fn list<T: DeserializeOwned>(kind: &str, limit: u32) -> Vec<(String, T)> {
        host::record_list(kind, limit)
            .into_iter()
            .filter_map(|(k, json)| serde_json::from_str(&json).ok().map(|v| (k, v)))
            .collect()
    }

    /// Inserts or replaces the record.
    ///
    /// # Errors
    /// Permanent if `data` cannot be serialized.
    ///
    /// ```no_run
    /// plugin_sdk::records::upsert("call", "call_1", &serde_json::json!({"status": "ended"}))?;
    /// # Ok::<(), plugin_sdk::Error>(())
    /// ```
    pub fn upsert<T: Serialize>(kind: &str, key: &str, data: &T) -> Result<(), Error> {
        let json = serde_json::to_string(data).map_err(|e| Error::permanent(e.to_string()))?;
        host::record_upsert(kind, key, &json);
        Ok(())
    }

    /// Replaces the lookups the record is found by (from [`crate::lookup`]); `None`s are
    /// skipped, so `[lookup::phone(p), lookup::email(e)]` can be passed as it is. Effective
    /// for a record that exists when the invocation commits; deleting the record deletes them.
    ///
    /// ```no_run
    /// use plugin_sdk::{lookup, records};
    /// records::set_lookups("contact", "c_1", &[lookup::email("Jane@Example.com"), lookup::phone("+1 415 555 0100")]);
    /// ```
    pub fn set_lookups(kind: &str, key: &str, lookups: &[Option<String>]) {
        let mut all: Vec<String> = lookups.iter().flatten().cloned().collect();
        all.sort();
        all.dedup();
        host::record_set_lookups(kind, key, &all);
    }

    /// Up to `limit` records of a kind that carry `lookup` (from [`crate::lookup`]), whichever
    /// of the tenant's connectors wrote them, newest first, as `(key, value)`; records whose
    /// JSON does not fit `T` are skipped.
    ///
    /// ```no_run
    /// let found: Vec<(String, serde_json::Value)> = plugin_sdk::records::find("contact", "phone:+14155550100", 1);
    /// ```
    pub fn find<T: DeserializeOwned>(kind: &str, lookup: &str, limit: u32) -> Vec<(String, T)> {
        host::record_find(kind, lookup, limit)
            .into_iter()
            .filter_map(|(k, json)| serde_json::from_str(&json).ok().map(|v| (k, v)))
            .collect()
    }
}

/// Publishes an event with a JSON payload.
///
/// # Errors
/// Permanent if the payload cannot be serialized.
///
/// ```no_run
/// plugin_sdk::publish("call.analyzed", &serde_json::json!({"call_id": "call_1"}))?;
/// # Ok::<(), plugin_sdk::Error>(())
/// ```
pub fn publish<T: Serialize>(name: &str, payload: &T) -> Result<(), Error> {
    let json = serde_json::to_string(payload).map_err(|e| Error::permanent(e.to_string()))?;
    host::publish(name, &json);
    Ok(())
}

/// Queues one of this connector's jobs for this tenant.
///
/// # Errors
/// Permanent if the input cannot be serialized.
///
/// ```no_run
/// plugin_sdk::enqueue_job("fetch_call", &serde_json::json!({"call_id": "call_1"}), 30_000)?;
/// # Ok::<(), plugin_sdk::Error>(())
/// ```
pub fn enqueue_job<T: Serialize>(name: &str, input: &T, delay_ms: u64) -> Result<(), Error> {
    let json = serde_json::to_string(input).map_err(|e| Error::permanent(e.to_string()))?;
    host::enqueue_job(name, &json, delay_ms);
    Ok(())
}

/// MAC of `message` under a named credential, for connectors that verify a custom scheme.
///
/// # Errors
/// Permanent if the credential does not exist.
///
/// ```no_run
/// let tag = plugin_sdk::mac("signing_secret", plugin_sdk::HashAlgorithm::Sha256, b"body")?;
/// # Ok::<(), plugin_sdk::Error>(())
/// ```
pub fn mac(credential: &str, algorithm: HashAlgorithm, message: &[u8]) -> Result<Vec<u8>, Error> {
    host::mac(credential, algorithm, message).map_err(Error::permanent)
}

/// Makes a new random secret for the tenant's credential `name` (one the manifest declares),
/// which the host keeps, sealed into `hub.toml`, once the invocation succeeds. The connector never
/// sees it: it hands it on with a `{credential:NAME}` placeholder, in a URL or (with
/// [`http::Request::fill_body`]) a body, e.g. the Basic credentials of a webhook URL it
/// registers with a provider.
///
/// # Errors
/// Permanent when the credential is not declared.
///
/// ```no_run
/// use plugin_sdk::*;
/// generate_credential("webhook_basic_auth", SecretForm::BasicAuth)?;
/// let url = format!("https://{{credential:webhook_basic_auth}}@hub.example.com/hooks/acme/postmark");
/// # Ok::<(), Error>(())
/// ```
pub fn generate_credential(name: &str, form: SecretForm) -> Result<(), Error> {
    host::generate_credential(name, form).map_err(Error::permanent)
}

/// Outbound HTTP through the host.
pub mod http {
    use super::{
        BasicAuth, Capture, Error, HeaderAuth, HttpError, HttpRequest, HttpResponse, OutboundAuth,
        SchemeAuth,
    };
    use crate::bindings::hub::connector::types::Retryable;
    use crate::sys as host;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// A URL held in a credential, for a provider whose URL is itself the secret (a Make.com
    /// custom webhook, say): the host puts the credential's value where `{credential:NAME}`
    /// stands, so the connector never holds it, and its logs and errors show the placeholder.
    /// The host checks the filled-in URL against the declared and allowed hosts.
    ///
    /// ```
    /// use plugin_sdk::http;
    /// let request = http::Request::post(http::credential_url("webhook_url"));
    /// assert_eq!(http::credential_url("webhook_url"), "{credential:webhook_url}");
    /// ```
    pub fn credential_url(credential: &str) -> String {
        format!("{{credential:{credential}}}")
    }

    /// A request being built.
    pub struct Request(HttpRequest);

    impl Request {
        /// A request with a method and URL.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::new("PATCH", "https://api.example.com/items/1");
        /// ```
        pub fn new(method: &str, url: impl Into<String>) -> Self {
            Request(HttpRequest {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                auth: None,
                timeout_ms: None,
                capture: Vec::new(),
                fill_body: false,
            })
        }
        /// A GET request.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://api.example.com/me");
        /// ```
        pub fn get(url: impl Into<String>) -> Self {
            Self::new("GET", url)
        }
        /// A POST request.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://api.example.com/items");
        /// ```
        pub fn post(url: impl Into<String>) -> Self {
            Self::new("POST", url)
        }
        /// Adds a header.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://api.example.com/me").header("accept", "application/json");
        /// ```
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.0
                .headers
                .push((name.to_ascii_lowercase(), value.into()));
            self
        }
        /// A JSON body (and its content type).
        ///
        /// # Errors
        /// Permanent if the value cannot be serialized.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://api.example.com/items").json(&serde_json::json!({"name": "Ada"}))?;
        /// # Ok::<(), plugin_sdk::Error>(())
        /// ```
        pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, Error> {
            self.0.body = serde_json::to_vec(body).map_err(|e| Error::permanent(e.to_string()))?;
            Ok(self.header("content-type", "application/json"))
        }
        /// A form body (and its content type).
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json").form(&[("To", "+14155550100"), ("Body", "Hi")]);
        /// ```
        pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                s.append_pair(k, v);
            }
            self.0.body = s.finish().into_bytes();
            self.header("content-type", "application/x-www-form-urlencoded")
        }
        /// `Authorization: Bearer` with the named credential.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://api.example.com/me").bearer("api_key");
        /// ```
        pub fn bearer(mut self, credential: &str) -> Self {
            self.0.auth = Some(OutboundAuth::Bearer(credential.into()));
            self
        }
        /// HTTP Basic with a username and a credential as password.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://api.twilio.com/2010-04-01/Accounts/AC1.json").basic("AC1", "auth_token");
        /// ```
        pub fn basic(mut self, username: &str, password_credential: &str) -> Self {
            self.0.auth = Some(OutboundAuth::Basic(BasicAuth {
                username: username.into(),
                password_credential: password_credential.into(),
            }));
            self
        }
        /// The named credential in a header of this name.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://hook.us1.make.com/x").credential_header("x-make-apikey", "webhook_api_key");
        /// ```
        pub fn credential_header(mut self, name: &str, credential: &str) -> Self {
            self.0.auth = Some(OutboundAuth::Header(HeaderAuth {
                name: name.into(),
                credential: credential.into(),
            }));
            self
        }
        /// `Authorization: <scheme> <credential>` with the named credential, for schemes
        /// other than Bearer (Make's `Authorization: Token ...`).
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://us1.make.com/api/v2/users/me").authorization("Token", "api_token");
        /// ```
        pub fn authorization(mut self, scheme: &str, credential: &str) -> Self {
            self.0.auth = Some(OutboundAuth::Authorization(SchemeAuth {
                scheme: scheme.into(),
                credential: credential.into(),
            }));
            self
        }
        /// Keeps a secret of the JSON answer as the tenant's credential: on a 2xx answer, the
        /// host takes the string at `pointer` (RFC 6901), keeps it as `credential` once the
        /// invocation succeeds, and the body the connector reads says `(kept by the host)`
        /// there instead. For the signing secret a provider returns when a webhook is
        /// registered.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://api.resend.com/webhooks")
        ///     .bearer("api_key")
        ///     .capture("/signing_secret", "webhook_secret");
        /// ```
        pub fn capture(mut self, pointer: &str, credential: &str) -> Self {
            self.0.capture.push(Capture {
                pointer: pointer.into(),
                credential: credential.into(),
            });
            self
        }
        /// Fills `{credential:NAME}` placeholders in the body too (not only the URL): for a
        /// body that carries a secret the host holds, such as a webhook URL with generated
        /// Basic credentials. Only for bodies the connector wrote itself.
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::post("https://api.postmarkapp.com/webhooks")
        ///     .json(&serde_json::json!({"Url": "https://{credential:webhook_basic_auth}@hub.example.com/hooks/acme/postmark"}))?
        ///     .fill_body();
        /// # Ok::<(), plugin_sdk::Error>(())
        /// ```
        pub fn fill_body(mut self) -> Self {
            self.0.fill_body = true;
            self
        }
        /// A time limit (the host caps it).
        ///
        /// ```
        /// let _ = plugin_sdk::http::Request::get("https://api.example.com/slow").timeout_ms(5_000);
        /// ```
        pub fn timeout_ms(mut self, ms: u32) -> Self {
            self.0.timeout_ms = Some(ms);
            self
        }
        /// Sends it.
        ///
        /// # Errors
        /// Transport failures and timeouts are retryable; a refused host, a missing credential
        /// and an oversized answer are permanent.
        ///
        /// ```no_run
        /// let me = plugin_sdk::http::Request::get("https://api.example.com/me").bearer("api_key").send()?.error_for_status()?;
        /// # Ok::<(), plugin_sdk::Error>(())
        /// ```
        pub fn send(self) -> Result<HttpResponse, Error> {
            self.try_send().map_err(Error::from)
        }
        /// Sends it, and answers the host's own error when there is no response, for a
        /// connector that must tell "not sent" from "sent, answer lost" (a timeout after the
        /// request left may have acted: an action that must not act twice cannot retry it).
        ///
        /// # Errors
        /// The [`HttpError`] as the host gave it.
        ///
        /// ```no_run
        /// match plugin_sdk::http::Request::post("https://api.example.com/run").try_send() {
        ///     Err(plugin_sdk::HttpError::Timeout) => { /* sent, answer lost: do not retry */ }
        ///     _ => {}
        /// }
        /// ```
        pub fn try_send(self) -> Result<HttpResponse, HttpError> {
            host::http(&self.0)
        }
    }

    impl From<HttpError> for Error {
        fn from(e: HttpError) -> Self {
            match e {
                HttpError::Timeout => Error::retryable("request timed out"),
                HttpError::Transport(m) => Error::retryable(format!("transport error: {m}")),
                HttpError::Denied(m) => {
                    Error::permanent(format!("request refused by the hub: {m}"))
                }
                HttpError::TooLarge => Error::permanent("response too large"),
                HttpError::UnknownCredential(c) => {
                    Error::permanent(format!("credential `{c}` is not configured"))
                }
            }
        }
    }

    impl HttpResponse {
        /// The first value of a header (case-insensitive).
        ///
        /// ```
        /// # let resp = plugin_sdk::HttpResponse { status: 429, headers: vec![("retry-after".into(), "2".into())], body: br#"{"id":"m_1"}"#.to_vec() };
        /// assert_eq!(resp.header("Retry-After"), Some("2"));
        /// ```
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        /// The body parsed as JSON.
        ///
        /// # Errors
        /// Permanent if it does not parse as `T`.
        ///
        /// ```
        /// # let resp = plugin_sdk::HttpResponse { status: 429, headers: vec![("retry-after".into(), "2".into())], body: br#"{"id":"m_1"}"#.to_vec() };
        /// let v: serde_json::Value = resp.json()?;
        /// assert_eq!(v["id"], "m_1");
        /// # Ok::<(), plugin_sdk::Error>(())
        /// ```
        pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
            serde_json::from_slice(&self.body)
                .map_err(|e| Error::permanent(format!("unexpected response body: {e}")))
        }
        /// Ok for 2xx; otherwise the error a provider answer means: 408, 429 and 5xx are
        /// retryable (honouring `retry-after`, in seconds or an HTTP date is treated as 60 s),
        /// other statuses are permanent with the start of the body as the message.
        ///
        /// # Errors
        /// As described.
        ///
        /// ```
        /// # let resp = plugin_sdk::HttpResponse { status: 429, headers: vec![("retry-after".into(), "2".into())], body: br#"{"id":"m_1"}"#.to_vec() };
        /// let err = resp.error_for_status().unwrap_err();
        /// assert!(matches!(err, plugin_sdk::Error::Retryable(r) if r.retry_after_ms == Some(2000)));
        /// ```
        pub fn error_for_status(self) -> Result<Self, Error> {
            if (200..300).contains(&self.status) {
                return Ok(self);
            }
            let snippet: String = String::from_utf8_lossy(&self.body)
                .chars()
                .take(300)
                .collect();
            let message = format!("provider answered {}: {}", self.status, snippet);
            if self.status == 408 || self.status == 429 || self.status >= 500 {
                let retry_after_ms = self.header("retry-after").map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(|s| s.saturating_mul(1000))
                        .unwrap_or(60_000)
                });
                Err(Error::Retryable(Retryable {
                    message,
                    retry_after_ms,
                }))
            } else {
                Err(Error::Permanent(message))
            }
        }
    }
}
