//! Runs a connector's handlers natively, in `cargo test`, against an in-memory host with the
//! hub's semantics (feature `harness`).
//!
//! The same connector code that runs in the hub's sandbox runs here: the SDK's helpers
//! ([`records`](crate::records), [`kv`](crate::kv), [`publish`](crate::publish),
//! [`http`](crate::http)...) call the harness instead of the WIT imports. As in the hub:
//! - an invocation's writes (records, lookups, kv, events, jobs) are kept only if it succeeds;
//!   an error or a panic discards them all;
//! - reads see the invocation's own writes first;
//! - publishing an undeclared event, queueing an undeclared job, writing a record that is not
//!   JSON, or more than [`MAX_HOST_CALLS`] host calls fail the invocation (the hub traps);
//! - outbound requests go only to declared origins, with the credential filled in by the host;
//!   a credential the manifest does not declare fails the invocation with a message that says
//!   so, one declared but not given to the harness answers `unknown-credential` as in the hub.
//!
//! Outbound HTTP is answered by a table ([`Harness::on`], matched by method and the longest URL
//! prefix; several answers for one rule are given in turn, the last one repeating) or by a
//! closure ([`Harness::on_http`]). The clock ([`Harness::at`], [`Harness::advance`]) is what
//! [`now_ms`](crate::now_ms) answers and what queued jobs are timed by.
//!
//! ```
//! use plugin_sdk::harness::{Answer, Harness};
//! use plugin_sdk::*;
//!
//! struct Greeter;
//! impl Connector for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest {
//!             routes: vec![route("", SignatureScheme::StandardWebhooks, "signing_secret")],
//!             events: vec![EventDecl {
//!                 name: "greeted".into(),
//!                 description: String::new(),
//!                 example: "{}".into(),
//!             }],
//!             credentials: vec![
//!                 field("signing_secret", true, "whsec_..."),
//!                 field("api_key", true, "the provider's API key"),
//!             ],
//!             outbound_hosts: vec!["https://api.example.com".into()],
//!             ..manifest("greeter", "0.1.0")
//!         }
//!     }
//!     fn handle_delivery(d: Delivery) -> Result<Outcome, Error> {
//!         let body: serde_json::Value = d.json()?;
//!         records::upsert("greeting", &d.id, &body)?;
//!         http::Request::post("https://api.example.com/hello")
//!             .bearer("api_key")
//!             .send()?
//!             .error_for_status()?;
//!         publish("greeted", &body)?;
//!         Ok(Outcome::handled())
//!     }
//! }
//!
//! let mut hub = Harness::<Greeter>::new().credential("api_key", "key_test");
//! hub.on("POST", "https://api.example.com/hello", Answer::status(503));
//! hub.on("POST", "https://api.example.com/hello", Answer::json(200, &serde_json::json!({})));
//!
//! // The provider is down: the attempt fails and leaves nothing behind.
//! let d = hub.webhook("", r#"{"name":"Ada"}"#);
//! assert!(hub.deliver(d.clone()).unwrap_err().is_retryable());
//! assert!(hub.records("greeting").is_empty());
//!
//! // The retry succeeds: one record, one event, two requests with the key filled in.
//! hub.deliver(d.clone()).unwrap();
//! assert_eq!(hub.records("greeting").len(), 1);
//! assert_eq!(hub.events()[0].name, "greeted");
//! assert_eq!(hub.requests()[1].header("authorization"), Some("Bearer key_test"));
//! ```

#[doc(hidden)]
pub mod demo;
pub(crate) mod imports;
mod signing;
mod state;
#[cfg(test)]
mod tests;

/// Most host calls one invocation may make, as in the hub: past it the invocation traps. A job
/// that works through a long list does a bounded part and queues the rest (a continuation).
pub const MAX_HOST_CALLS: u32 = 10_000;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use state::{KvWrite, State};

use crate::bindings::hub::connector::host::Level;
use crate::bindings::hub::connector::types::{
    Delivery, Error, HttpError, HttpResponse, Outcome, Reply,
};
use crate::guest::Connector;

/// What a panic from the in-memory host starts with: a failure the hub answers with a trap.
const TRAP: &str = "hub trap: ";

/// A connector `C` with an in-memory host: a tenant, its config and credentials, the records,
/// kv, events and jobs its invocations committed, and the requests they sent.
pub struct Harness<C: Connector> {
    state: Rc<RefCell<State>>,
    next_id: u64,
    _connector: PhantomData<C>,
}

/// Why an invocation produced no answer, as the hub tells it apart.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The connector answered with an error of its own.
    Connector(Error),
    /// The invocation failed outside the connector's answer: it panicked, or the host refused
    /// a call (an undeclared event, job or credential; a record that is not JSON).
    Trapped(String),
}

impl Failure {
    /// True for [`Error::Retryable`]: the hub would try again later.
    ///
    /// ```
    /// use plugin_sdk::{Error, harness::Failure};
    /// assert!(Failure::Connector(Error::retryable("429")).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Connector(Error::Retryable(_)))
    }

    /// True for [`Error::Permanent`], [`Error::BadRequest`] and [`Error::Declined`]: the hub
    /// would not try again.
    ///
    /// ```
    /// use plugin_sdk::{Error, harness::Failure};
    /// assert!(Failure::Connector(Error::permanent("401")).is_permanent());
    /// assert!(Failure::Connector(Error::declined("That slot was just taken.")).is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Failure::Connector(Error::Permanent(_) | Error::BadRequest(_) | Error::Declined(_))
        )
    }

    /// The sentence of an [`Error::Declined`]: what an agent would say to the caller.
    ///
    /// ```
    /// use plugin_sdk::{Error, harness::Failure};
    /// let f = Failure::Connector(Error::declined("That slot was just taken."));
    /// assert_eq!(f.declined(), Some("That slot was just taken."));
    /// assert_eq!(Failure::Connector(Error::permanent("401")).declined(), None);
    /// ```
    pub fn declined(&self) -> Option<&str> {
        match self {
            Failure::Connector(Error::Declined(m)) => Some(m),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    /// The words the hub's log uses for the same failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connector(Error::Retryable(r)) => write!(f, "retryable: {}", r.message),
            Failure::Connector(Error::Permanent(m)) => write!(f, "permanent: {m}"),
            Failure::Connector(Error::BadRequest(m)) => write!(f, "bad request: {m}"),
            Failure::Connector(Error::Declined(m)) => write!(f, "declined: {m}"),
            Failure::Trapped(m) => write!(f, "connector crashed: {m}"),
        }
    }
}

/// An event an invocation published.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its declared name.
    pub name: String,
    /// Its payload.
    pub payload: serde_json::Value,
}

/// A job an invocation queued.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// The declared job name.
    pub name: String,
    /// Its input.
    pub input: serde_json::Value,
    /// When it is due, by the harness clock.
    pub run_at_ms: u64,
}

/// An outbound request as the provider would receive it: the credential filled in.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Upper-case method.
    pub method: String,
    /// The URL, with `{credential:NAME}` placeholders filled in.
    pub url: String,
    /// Headers, the credential's header among them.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The credential the request was authenticated with, by name.
    pub credential: Option<String>,
}

impl Sent {
    /// The first value of a header (case-insensitive).
    ///
    /// ```
    /// let sent = plugin_sdk::harness::Sent {
    ///     method: "GET".into(),
    ///     url: "https://api.example.com".into(),
    ///     headers: vec![("x-api-key".into(), "k".into())],
    ///     body: Vec::new(),
    ///     credential: None,
    /// };
    /// assert_eq!(sent.header("X-Api-Key"), Some("k"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics (failing the test) when it is not.
    ///
    /// ```
    /// # let sent = plugin_sdk::harness::Sent { method: "POST".into(), url: String::new(),
    /// #     headers: Vec::new(), body: br#"{"to":"a@b.c"}"#.to_vec(), credential: None };
    /// assert_eq!(sent.json()["to"], "a@b.c");
    /// ```
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the {} {} body is not JSON ({e}): {}",
                self.method,
                self.url,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body parsed as a form.
    ///
    /// ```
    /// # let sent = plugin_sdk::harness::Sent { method: "POST".into(), url: String::new(),
    /// #     headers: Vec::new(), body: b"To=%2B1555&Body=hi".to_vec(), credential: None };
    /// assert!(sent.form().contains(&("To".into(), "+1555".into())));
    /// ```
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// A stand-in provider answer.
#[derive(Debug, Clone)]
pub struct Answer(Result<HttpResponse, HttpError>);

impl Answer {
    /// An empty answer with a status.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::status(204);
    /// ```
    pub fn status(status: u16) -> Answer {
        Answer(Ok(HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }))
    }

    /// A JSON answer.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::json(200, &serde_json::json!({"id": "m_1"}));
    /// ```
    pub fn json<T: Serialize>(status: u16, body: &T) -> Answer {
        Answer::status(status)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("a JSON value serializes"))
    }

    /// The answer with this body.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::status(400).body("bad request");
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        if let Ok(r) = &mut self.0 {
            r.body = body.into();
        }
        self
    }

    /// The answer with a header added.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::status(429).header("retry-after", "2");
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        if let Ok(r) = &mut self.0 {
            r.headers.push((name.to_ascii_lowercase(), value.into()));
        }
        self
    }

    /// No answer in time.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::timeout();
    /// ```
    pub fn timeout() -> Answer {
        Answer(Err(HttpError::Timeout))
    }

    /// A connection failure.
    ///
    /// ```
    /// let _ = plugin_sdk::harness::Answer::transport("connection refused");
    /// ```
    pub fn transport(message: &str) -> Answer {
        Answer(Err(HttpError::Transport(message.into())))
    }
}

impl<C: Connector> Default for Harness<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Connector> Harness<C> {
    /// The connector for tenant `acme`, with no config, credentials or state, the clock at
    /// 2026-01-01T00:00:00Z. Panics when the manifest contradicts itself (a route verified by
    /// a credential the manifest does not declare), as `hub check` refuses it.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let hub = plugin_sdk::harness::Harness::<Echo>::new();
    /// assert_eq!(hub.now(), 1_767_225_600_000);
    /// ```
    pub fn new() -> Self {
        let manifest = C::manifest();
        if let Err(problem) = state::check_manifest(&manifest) {
            panic!("{problem}");
        }
        Harness {
            state: Rc::new(RefCell::new(State::new(manifest))),
            next_id: 0,
            _connector: PhantomData,
        }
    }

    /// Runs as this tenant.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { Manifest { routes: vec![route("", SignatureScheme::None, "")], ..manifest("echo", "0.1.0") } }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let mut hub = plugin_sdk::harness::Harness::<Echo>::new().tenant("abc-healthcare");
    /// assert!(hub.webhook("", "{}").url.contains("/hooks/abc-healthcare/echo"));
    /// ```
    pub fn tenant(self, tenant: &str) -> Self {
        self.state.borrow_mut().tenant = tenant.into();
        self
    }

    /// Sets a config key of the tenant's connector config (`[tenants.T.connectors.C] config`).
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let hub = plugin_sdk::harness::Harness::<Echo>::new().config("from", "Front desk <a@b.c>");
    /// ```
    pub fn config<T: Serialize>(self, key: &str, value: T) -> Self {
        let value = serde_json::to_value(value).expect("a config value serializes");
        self.state.borrow_mut().config.insert(key.into(), value);
        self
    }

    /// Gives the tenant a credential. Panics when the manifest does not declare it.
    ///
    /// ```should_panic
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// // `echo` declares no credentials: this is the mistake the harness catches.
    /// let hub = plugin_sdk::harness::Harness::<Echo>::new().credential("api_key", "k");
    /// ```
    pub fn credential(self, name: &str, value: &str) -> Self {
        {
            let mut s = self.state.borrow_mut();
            if let Err(problem) = s.declared_credential(name) {
                drop(s);
                panic!("{problem}");
            }
            s.credentials.insert(name.into(), value.as_bytes().to_vec());
        }
        self
    }

    /// The tenant's `phone_country_code` (national numbers in lookups are completed with it).
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let hub = plugin_sdk::harness::Harness::<Echo>::new().phone_country_code("+1");
    /// ```
    pub fn phone_country_code(self, code: &str) -> Self {
        self.state.borrow_mut().phone_code = Some(code.into());
        self
    }

    /// Sets the clock (milliseconds since the Unix epoch).
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let mut hub = plugin_sdk::harness::Harness::<Echo>::new();
    /// hub.at(1_000);
    /// hub.advance(500);
    /// assert_eq!(hub.now(), 1_500);
    /// ```
    pub fn at(&mut self, ms: u64) {
        self.state.borrow_mut().now_ms = Some(ms);
    }

    /// Moves the clock forward.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.at(1_000);
    /// hub.advance(60_000);
    /// assert_eq!(hub.now(), 61_000);
    /// ```
    pub fn advance(&mut self, ms: u64) {
        let mut s = self.state.borrow_mut();
        s.now_ms = Some(s.now().saturating_add(ms));
    }

    /// The clock.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.at(1_700_000_000_000);
    /// assert_eq!(hub.now(), 1_700_000_000_000);
    /// ```
    pub fn now(&self) -> u64 {
        self.state.borrow().now()
    }

    /// Answers requests whose method is `method` and whose URL starts with `url_prefix`. More
    /// answers for the same rule are given in turn; the last one then repeats.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// use plugin_sdk::harness::{Answer, Harness};
    /// let mut hub = Harness::<Echo>::new();
    /// hub.on("POST", "https://api.example.com/emails", Answer::status(429).header("retry-after", "1"));
    /// hub.on("POST", "https://api.example.com/emails", Answer::json(200, &serde_json::json!({"id": "e_1"})));
    /// ```
    pub fn on(&mut self, method: &str, url_prefix: &str, answer: Answer) {
        self.state
            .borrow_mut()
            .add_rule(method, url_prefix, answer.0);
    }

    /// Answers the requests no rule of [`Harness::on`] matches.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { manifest("echo", "0.1.0") }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// use plugin_sdk::harness::{Answer, Harness};
    /// let mut hub = Harness::<Echo>::new();
    /// hub.on_http(|sent| if sent.method == "GET" { Answer::status(200) } else { Answer::status(405) });
    /// ```
    pub fn on_http(&mut self, answer: impl FnMut(&Sent) -> Answer + 'static) {
        let mut answer = answer;
        self.state.borrow_mut().fallback = Some(Box::new(move |sent| answer(sent).0));
    }

    /// A delivery on a declared route, as the hub would hand it over: a fresh id, `POST`, the
    /// route's URL, a content type guessed from the body (JSON or a form). Panics for a route
    /// the manifest does not declare.
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # struct Echo;
    /// # impl Connector for Echo {
    /// #     fn manifest() -> Manifest { Manifest { routes: vec![route("events", SignatureScheme::None, "")], ..manifest("echo", "0.1.0") } }
    /// #     fn handle_delivery(_: Delivery) -> Result<Outcome, Error> { Ok(Outcome::handled()) }
    /// # }
    /// let mut hub = plugin_sdk::harness::Harness::<Echo>::new();
    /// let d = hub.webhook("events", r#"{"type":"ping"}"#).with_header("webhook-id", "msg_1");
    /// assert_eq!(d.header("content-type"), Some("application/json"));
    /// ```
    pub fn webhook(&mut self, route: &str, body: impl Into<Vec<u8>>) -> Delivery {
        let body = body.into();
        let s = self.state.borrow();
        if !s.manifest.routes.iter().any(|r| r.name == route) {
            let known: Vec<String> = s
                .manifest
                .routes
                .iter()
                .map(|r| format!("`{}`", r.name))
                .collect();
            drop(s);
            panic!(
                "the manifest declares no route `{route}` (it declares: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        self.next_id += 1;
        let content_type = match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => "application/json",
            Some(b'<') => "text/xml; charset=utf-8",
            _ => "application/x-www-form-urlencoded",
        };
        Delivery {
            id: format!("dlv_{}", self.next_id),
            route: route.into(),
            method: "POST".into(),
            url: s.route_url(route),
            headers: vec![("content-type".into(), content_type.into())],
            body,
            received_at_ms: s.now(),
        }
    }

    /// Runs `handle-delivery`.
    ///
    /// # Errors
    /// The connector's error, or a trap; either way the invocation's writes are discarded.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// assert!(hub.deliver(d).unwrap().ignored.is_none());
    /// let bad = hub.webhook("events", "not json");
    /// assert!(hub.deliver(bad).is_err(), "and its writes are discarded");
    /// ```
    pub fn deliver(&mut self, delivery: Delivery) -> Result<Outcome, Failure> {
        self.invoke(move || C::handle_delivery(delivery))
    }

    /// Runs `respond` (a `sync-reply` route's answer).
    ///
    /// # Errors
    /// As [`Harness::deliver`].
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", "{}");
    /// assert_eq!(hub.respond(d).unwrap().status, 200);
    /// ```
    pub fn respond(&mut self, delivery: Delivery) -> Result<Reply, Failure> {
        self.invoke(move || C::respond(delivery))
    }

    /// Runs `verify` (a `custom` route's signature check).
    ///
    /// # Errors
    /// As [`Harness::deliver`].
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", "{}");
    /// assert!(!hub.verify(d.clone()).unwrap());
    /// assert!(hub.verify(d.with_header("x-ok", "yes")).unwrap());
    /// ```
    pub fn verify(&mut self, delivery: Delivery) -> Result<bool, Failure> {
        self.invoke(move || C::verify(delivery))
    }

    /// Runs a declared action with a JSON input and an idempotency key; answers its JSON
    /// result (a string value if it is not JSON). Panics for an undeclared action.
    ///
    /// # Errors
    /// As [`Harness::deliver`].
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.on("POST", "https://api.example.com/notify", Answer::json(200, &serde_json::json!({ "id": "m1" })));
    /// let input = serde_json::json!({ "text": "hi" });
    /// assert_eq!(hub.action("notify", &input, "k1").unwrap()["id"], "m1");
    /// assert_eq!(hub.requests()[0].header("authorization"), Some("Bearer k"));
    /// ```
    pub fn action<T: Serialize>(
        &mut self,
        name: &str,
        input: &T,
        idempotency_key: &str,
    ) -> Result<serde_json::Value, Failure> {
        if !self
            .state
            .borrow()
            .manifest
            .actions
            .iter()
            .any(|a| a.name == name)
        {
            panic!("the manifest declares no action `{name}`");
        }
        let input = serde_json::to_string(input).expect("an action input serializes");
        let (name, key) = (name.to_string(), idempotency_key.to_string());
        let out = self.invoke(move || C::run_action(name, input, key))?;
        Ok(serde_json::from_str(&out).unwrap_or(serde_json::Value::String(out)))
    }

    /// Runs a declared job with a JSON input. Panics for an undeclared job.
    ///
    /// # Errors
    /// As [`Harness::deliver`].
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.job("tick", &serde_json::json!({ "id": "t1" })).unwrap();
    /// assert!(hub.record::<serde_json::Value>("tick", "t1").is_some());
    /// ```
    pub fn job<T: Serialize>(&mut self, name: &str, input: &T) -> Result<(), Failure> {
        if !self
            .state
            .borrow()
            .manifest
            .jobs
            .iter()
            .any(|j| j.name == name)
        {
            panic!("the manifest declares no job `{name}`");
        }
        let input = serde_json::to_string(input).expect("a job input serializes");
        let name = name.to_string();
        self.invoke(move || C::run_job(name, input))
    }

    /// Runs the queued jobs that are due by the clock, oldest first, as the hub's worker would
    /// (the jobs they queue in turn included, when due), and answers each with its result.
    /// A failed job is dropped, not retried.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert!(hub.run_due_jobs().is_empty(), "queued for a minute later");
    /// hub.advance(60_000);
    /// assert_eq!(hub.run_due_jobs().len(), 1);
    /// ```
    pub fn run_due_jobs(&mut self) -> Vec<(QueuedJob, Result<(), Failure>)> {
        let mut out = Vec::new();
        loop {
            let now = self.now();
            let next = {
                let mut s = self.state.borrow_mut();
                s.jobs
                    .iter()
                    .position(|j| j.run_at_ms <= now)
                    .map(|i| s.jobs.remove(i))
            };
            let Some(job) = next else { break };
            let result = self.job(&job.name, &job.input);
            out.push((job, result));
        }
        out
    }

    fn invoke<T>(&mut self, call: impl FnOnce() -> Result<T, Error>) -> Result<T, Failure> {
        let guard = imports::install(self.state.clone());
        let result = std::panic::catch_unwind(AssertUnwindSafe(call));
        drop(guard);
        let pending = std::mem::take(&mut self.state.borrow_mut().pending);
        match result {
            Ok(Ok(value)) => {
                self.state.borrow_mut().commit(pending);
                Ok(value)
            }
            Ok(Err(e)) => Err(Failure::Connector(e)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("panicked");
                Err(Failure::Trapped(
                    message.strip_prefix(TRAP).unwrap_or(message).to_string(),
                ))
            }
        }
    }

    /// A committed record, deserialized; panics when it does not fit `T`.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// let note: serde_json::Value = hub.record("note", "n1").unwrap();
    /// assert_eq!(note["id"], "n1");
    /// ```
    pub fn record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let data = self.state.borrow().stored(kind, key)?;
        Some(serde_json::from_str(&data).unwrap_or_else(|e| {
            panic!("record {kind}/{key} does not fit the type asked for: {e}: {data}")
        }))
    }

    /// The committed records of a kind, newest first.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert_eq!(hub.records("note")[0].0, "n1");
    /// ```
    pub fn records(&self, kind: &str) -> Vec<(String, serde_json::Value)> {
        self.state
            .borrow()
            .stored_newest_first(kind)
            .into_iter()
            .map(|(k, d)| (k, serde_json::from_str(&d).unwrap_or_default()))
            .collect()
    }

    /// The lookups a committed record carries, sorted.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1","email":"Ann@X.io"}"#);
    /// hub.deliver(d).unwrap();
    /// assert_eq!(hub.lookups("note", "n1"), ["email:ann@x.io"]);
    /// ```
    pub fn lookups(&self, kind: &str, key: &str) -> Vec<String> {
        let s = self.state.borrow();
        let mut l = s
            .lookups
            .get(&(kind.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default();
        l.sort();
        l
    }

    /// The committed records of `kind` another connector of the tenant finds by `lookup`
    /// (`phone:...`, `email:...`), newest first, as `records::find` answers: what a route's
    /// `find()`, Retell's greeting or an agent's lookup tool would get.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1","email":"Ann@X.io"}"#);
    /// hub.deliver(d).unwrap();
    /// let found = hub.find("note", "email:ann@x.io");
    /// assert_eq!(found[0].0, "n1");
    /// assert!(hub.find("note", "email:bob@x.io").is_empty());
    /// ```
    pub fn find(&self, kind: &str, lookup: &str) -> Vec<(String, serde_json::Value)> {
        self.state
            .borrow()
            .find(kind, lookup, 1000)
            .into_iter()
            .map(|(key, data)| {
                let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                (key, data)
            })
            .collect()
    }

    /// Seeds a record, as if an earlier invocation had written it.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.put_record("note", "old", &serde_json::json!({ "id": "old" }));
    /// assert_eq!(hub.records("note").len(), 1);
    /// ```
    pub fn put_record<T: Serialize>(&mut self, kind: &str, key: &str, data: &T) {
        let data = serde_json::to_string(data).expect("a record serializes");
        let mut s = self.state.borrow_mut();
        let pending = state::Pending {
            records: vec![(kind.into(), key.into(), Some(data))],
            ..Default::default()
        };
        s.commit(pending);
    }

    /// A committed kv value.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert_eq!(hub.kv("last").as_deref(), Some(&b"n1"[..]));
    /// ```
    pub fn kv(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).map(|v| v.value.clone())
    }

    /// True when the committed kv value under `key` is an idempotency marker.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.on("POST", "https://api.example.com/notify", Answer::json(200, &serde_json::json!({ "id": "m1" })));
    /// hub.action("notify", &serde_json::json!({ "text": "hi" }), "k1").unwrap();
    /// assert!(hub.is_marker("sent:k1"));
    /// ```
    pub fn is_marker(&self, key: &str) -> bool {
        self.state.borrow().kv.get(key).is_some_and(|v| v.marker)
    }

    /// The events committed so far, in order.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert_eq!(hub.events()[0].name, "noted");
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.state.borrow().events.clone()
    }

    /// The jobs queued and not yet run, in order.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert_eq!(hub.jobs()[0].name, "tick");
    /// ```
    pub fn jobs(&self) -> Vec<QueuedJob> {
        self.state.borrow().jobs.clone()
    }

    /// Every outbound request sent so far, by failed invocations too (a request cannot be
    /// taken back).
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.on("POST", "https://api.example.com/notify", Answer::json(200, &serde_json::json!({ "id": "m1" })));
    /// hub.action("notify", &serde_json::json!({ "text": "hi" }), "k1").unwrap();
    /// assert_eq!(hub.requests()[0].json()["text"], "hi");
    /// ```
    pub fn requests(&self) -> Vec<Sent> {
        self.state.borrow().requests.clone()
    }

    /// The credentials the connector had the host keep (captured from an answer with
    /// `Request::capture`, or made with `generate_credential`), in order, with their values:
    /// what the hub would seal into `hub.toml`. The connector itself never reads them back.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// hub.on("POST", "https://api.example.com/webhooks", Answer::json(201, &serde_json::json!({ "id": "w1", "secret": "whsec_1" })));
    /// hub.job("register_webhooks", &serde_json::json!({})).unwrap();
    /// assert_eq!(hub.kept(), vec![("signing_secret".to_string(), "whsec_1".to_string())]);
    /// let stored: serde_json::Value = hub.record("webhook", "w1").unwrap();
    /// assert_eq!(stored["secret"], "(kept by the host)");
    /// ```
    pub fn kept(&self) -> Vec<(String, String)> {
        let s = self.state.borrow();
        s.kept
            .iter()
            .map(|name| {
                let value = s.credentials.get(name).cloned().unwrap_or_default();
                (name.clone(), String::from_utf8_lossy(&value).into_owned())
            })
            .collect()
    }

    /// Plays the host's OAuth2 credential `name` (one the manifest declares in `oauth2`): its
    /// requests with `bearer(name)` carry `Authorization: Bearer <access_token>`, as the hub
    /// attaches the token it minted. Without it they fail with `unknown-credential`, as for a
    /// tenant that has not connected the account.
    pub fn oauth2_token(self, name: &str, access_token: &str) -> Self {
        {
            let mut s = self.state.borrow_mut();
            assert!(
                s.manifest.oauth2.iter().any(|d| d.name == name),
                "the manifest declares no OAuth2 credential `{name}` in `oauth2`"
            );
            s.oauth_tokens.insert(name.into(), access_token.into());
        }
        self
    }

    /// The push channels the connector holds, oldest first.
    pub fn channels(&self) -> Vec<crate::channel::Channel> {
        let s = self.state.borrow();
        s.channels.iter().map(|c| c.channel.clone()).collect()
    }

    /// The token the harness made for channel `id` (what the provider was sent).
    pub fn channel_token(&self, id: &str) -> Option<String> {
        let s = self.state.borrow();
        s.channels
            .iter()
            .find(|c| c.channel.id == id)
            .map(|c| c.token.clone())
    }

    /// The log lines written so far.
    ///
    /// ```
    /// # use plugin_sdk::harness::{Answer, Harness, demo::Demo};
    /// let mut hub = Harness::<Demo>::new().credential("api_key", "k");
    /// let d = hub.webhook("events", r#"{"id":"n1"}"#);
    /// hub.deliver(d).unwrap();
    /// assert!(hub.logs().iter().any(|(_, line)| line == "noted n1"));
    /// ```
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }
}

impl Delivery {
    /// The delivery with a header added (names are lower-cased, as the hub hands them over).
    ///
    /// ```
    /// # use plugin_sdk::*;
    /// # let d = Delivery { id: "d".into(), route: String::new(), method: "POST".into(),
    /// #     url: String::new(), headers: Vec::new(), body: Vec::new(), received_at_ms: 0 };
    /// let d = d.with_header("Webhook-Id", "msg_1");
    /// assert_eq!(d.header("webhook-id"), Some("msg_1"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Delivery {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}
