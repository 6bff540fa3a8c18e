//! Outbound HTTP for connectors: who may be called, and the client that calls.
//!
//! A request goes out only when its origin (scheme, host, port) is both declared by the
//! connector's manifest and allowed by the operator. The operator may map a declared origin to a
//! stand-in (a local mock or proxy): that target is trusted as named. Every other host name is
//! resolved by a resolver that refuses private, loopback, link-local and other non-public
//! addresses, so DNS cannot point a connector inside the network. Redirects are followed by hand,
//! each hop checked again, credentials dropped when the origin changes. Bodies and time are capped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;
use url::Url;

/// Largest response body a connector may receive.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Longest a single outbound request may take.
pub const MAX_REQUEST_TIME: Duration = Duration::from_secs(30);
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// `scheme://host:port`, normalized, with the port always explicit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// The origin of a URL.
    ///
    /// # Errors
    /// When the URL is not http(s) or has no host.
    pub fn of(url: &Url) -> Result<Origin, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "scheme `{scheme}` is not allowed (http and https only)"
            ));
        }
        let host = url.host_str().ok_or("URL has no host")?;
        let port = url.port_or_known_default().ok_or("URL has no port")?;
        Ok(Origin(format!(
            "{scheme}://{}:{port}",
            host.to_ascii_lowercase()
        )))
    }

    /// Parses an origin as written in a manifest or in `hub.toml` (`https://api.example.com`),
    /// or a wildcard one, `https://*.my.salesforce.com`, standing for every host under that
    /// domain (for providers that give each customer a host of its own).
    ///
    /// # Errors
    /// When it is not a bare http(s) origin, or its wildcard is not a leading `*.` before a
    /// domain of at least two labels.
    pub fn parse(s: &str) -> Result<Origin, String> {
        let url = Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
            return Err(format!(
                "`{s}` must be an origin (scheme://host[:port]) without a path"
            ));
        }
        let host = url.host_str().unwrap_or_default();
        if host.contains('*') {
            let domain = host.strip_prefix("*.").unwrap_or_default();
            if domain.contains('*') || domain.split('.').filter(|l| !l.is_empty()).count() < 2 {
                return Err(format!(
                    "`{s}`: a wildcard origin is `*.` before a domain of two labels or more, e.g. https://*.my.salesforce.com"
                ));
            }
        }
        Origin::of(&url)
    }

    /// Whether this origin is `other`, or a wildcard origin with `other` under it.
    pub fn covers(&self, other: &Origin) -> bool {
        if self == other {
            return true;
        }
        let Some((scheme, rest)) = self.0.split_once("://*.") else {
            return false;
        };
        let Some((other_scheme, other_rest)) = other.0.split_once("://") else {
            return false;
        };
        // `rest` is `domain:port`: the other's host must end in `.domain` on the same port.
        scheme == other_scheme
            && other_rest.len() > rest.len()
            && other_rest.ends_with(rest)
            && other_rest.as_bytes().get(other_rest.len() - rest.len() - 1) == Some(&b'.')
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which origins one connector may reach.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: Vec<Origin>,
    stand_ins: HashMap<Origin, Url>,
}

impl Policy {
    /// Declared ∩ operator-allowed origins, plus the operator's stand-ins for declared origins.
    ///
    /// # Errors
    /// When an origin does not parse.
    pub fn new(
        declared: &[String],
        operator_allowed: &[String],
        stand_ins: &[(String, String)],
    ) -> Result<Policy, String> {
        let declared: Vec<Origin> = declared
            .iter()
            .map(|s| Origin::parse(s))
            .collect::<Result<_, _>>()?;
        let mut allowed = Vec::new();
        for s in operator_allowed {
            let o = Origin::parse(s)?;
            // The operator may name a host under a declared wildcard, or the wildcard itself.
            if declared.iter().any(|d| d.covers(&o)) {
                allowed.push(o);
            }
        }
        let mut map = HashMap::new();
        for (from, to) in stand_ins {
            let from = Origin::parse(from)?;
            let to = Url::parse(to).map_err(|e| format!("stand-in `{to}` is not a URL: {e}"))?;
            Origin::of(&to)?;
            map.insert(from, to);
        }
        Ok(Policy {
            allowed,
            stand_ins: map,
        })
    }

    /// The origins this connector may reach.
    pub fn allowed(&self) -> &[Origin] {
        &self.allowed
    }

    /// Checks a URL; returns where to actually send it and whether that target is trusted
    /// (an operator-named stand-in, exempt from the public-address rule).
    ///
    /// # Errors
    /// A message saying why the request is refused.
    pub fn check(&self, url: &Url) -> Result<(Url, bool), String> {
        let origin = Origin::of(url)?;
        if !self.allowed.iter().any(|a| a.covers(&origin)) {
            return Err(format!(
                "{} is not an allowed host for this connector (declared and allowed: {})",
                origin.as_str(),
                if self.allowed.is_empty() {
                    "none".to_string()
                } else {
                    self.allowed
                        .iter()
                        .map(Origin::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        let stand_in = self.stand_ins.get(&origin).or_else(|| {
            self.stand_ins
                .iter()
                .find(|(from, _)| from.covers(&origin))
                .map(|(_, to)| to)
        });
        if let Some(target) = stand_in {
            let mut mapped = url.clone();
            mapped
                .set_scheme(target.scheme())
                .map_err(|_| "bad stand-in scheme")?;
            mapped
                .set_host(target.host_str())
                .map_err(|e| e.to_string())?;
            mapped
                .set_port(target.port())
                .map_err(|_| "bad stand-in port")?;
            return Ok((mapped, true));
        }
        if let Some(ip) = url
            .host_str()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            && !is_public(ip)
        {
            return Err(format!("{ip} is a private or reserved address"));
        }
        Ok((url.clone(), false))
    }
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// A resolver that only answers public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = if addrs.is_empty() {
                    format!("{host} does not resolve").into()
                } else {
                    format!("{host} {PRIVATE_ONLY}").into()
                };
                return Err(err);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The two HTTP clients: one for public hosts (checked resolver), one for operator stand-ins.
#[derive(Clone)]
pub struct Client {
    public: reqwest::Client,
    trusted: reqwest::Client,
}

/// A request after the host attached credentials.
pub struct Prepared {
    /// Method.
    pub method: reqwest::Method,
    /// URL as the connector wrote it.
    pub url: Url,
    /// Headers, including any credential header.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Time limit.
    pub timeout: Duration,
}

/// A response, body capped.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Why no response.
#[derive(Debug)]
pub enum Failure {
    /// Refused by policy.
    Denied(String),
    /// Took too long.
    Timeout,
    /// Connection or protocol error.
    Transport(String),
    /// Body over the cap.
    TooLarge,
}

/// Headers that carry credentials: dropped when a redirect leaves the origin.
const SENSITIVE: &[&str] = &["authorization", "cookie", "proxy-authorization"];

impl Client {
    /// Builds both clients.
    ///
    /// # Errors
    /// When the TLS stack cannot be initialised.
    pub fn new() -> Result<Client, reqwest::Error> {
        let base = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(30))
                .user_agent(concat!("hub/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Client {
            public: base().dns_resolver(Arc::new(PublicOnly)).build()?,
            trusted: base().build()?,
        })
    }

    /// Sends a request under a policy, following redirects by hand.
    ///
    /// `credential_headers` names headers that the host added (they are dropped if a redirect
    /// changes origin, along with the standard sensitive headers). When traces are exported the
    /// call is a client span and carries its `traceparent` onward (replacing any the caller set).
    pub async fn send(
        &self,
        policy: &Policy,
        mut req: Prepared,
        credential_headers: &[String],
    ) -> Result<Response, Failure> {
        let span = if crate::telemetry::within() {
            tracing::info_span!(target: crate::telemetry::TARGET, "http",
                otel.kind = "client",
                otel.name = %format_args!("{} {}", req.method, req.url.host_str().unwrap_or("")),
                http.request.method = %req.method, server.address = req.url.host_str().unwrap_or(""),
                server.port = req.url.port_or_known_default().map(i64::from),
                http.response.status_code = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        if let Some(trace) = crate::telemetry::traceparent(&span) {
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("traceparent"));
            req.headers.push(("traceparent".into(), trace));
        }
        let sent = self
            .send_traced(policy, req, credential_headers)
            .instrument(span.clone())
            .await;
        match &sent {
            Ok(r) => {
                span.record("http.response.status_code", i64::from(r.status));
                if r.status >= 500 {
                    crate::telemetry::failed(&span, "server error");
                }
            }
            Err(e) => crate::telemetry::failed(
                &span,
                match e {
                    Failure::Denied(_) => "denied",
                    Failure::Timeout => "timeout",
                    Failure::Transport(_) => "transport",
                    Failure::TooLarge => "too large",
                },
            ),
        }
        sent
    }

    async fn send_traced(
        &self,
        policy: &Policy,
        mut req: Prepared,
        credential_headers: &[String],
    ) -> Result<Response, Failure> {
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut origin = Origin::of(&req.url).map_err(Failure::Denied)?;
        for _ in 0..=MAX_REDIRECTS {
            let (target, trusted) = policy.check(&req.url).map_err(Failure::Denied)?;
            let client = if trusted { &self.trusted } else { &self.public };
            let mut builder = client
                .request(req.method.clone(), target)
                .body(req.body.clone());
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(Failure::Timeout);
            }
            let mut resp = match tokio::time::timeout(remaining, builder.send()).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Err(e)) if e.is_timeout() => return Err(Failure::Timeout),
                // Without the URL: it may hold a secret (a credential URL, a token in the query).
                Ok(Err(e)) => return Err(classify(&e.without_url())),
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            if status.is_redirection()
                && let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok())
            {
                let next = req
                    .url
                    .join(loc)
                    .map_err(|e| Failure::Denied(format!("bad redirect: {e}")))?;
                let next_origin = Origin::of(&next).map_err(Failure::Denied)?;
                if next_origin != origin {
                    req.headers.retain(|(k, _)| {
                        !SENSITIVE.contains(&k.as_str())
                            && !credential_headers.iter().any(|c| c.eq_ignore_ascii_case(k))
                    });
                    origin = next_origin;
                }
                if status == reqwest::StatusCode::SEE_OTHER
                    || ((status == reqwest::StatusCode::MOVED_PERMANENTLY
                        || status == reqwest::StatusCode::FOUND)
                        && req.method == reqwest::Method::POST)
                {
                    req.method = reqwest::Method::GET;
                    req.body.clear();
                }
                req.url = next;
                continue;
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let mut body = Vec::new();
            loop {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(remaining, resp.chunk()).await {
                    Err(_) => return Err(Failure::Timeout),
                    Ok(Err(e)) => return Err(Failure::Transport(error_chain(&e.without_url()))),
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(chunk))) => {
                        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Err(Failure::TooLarge);
                        }
                        body.extend_from_slice(&chunk);
                    }
                }
            }
            return Ok(Response {
                status: status.as_u16(),
                headers,
                body,
            });
        }
        Err(Failure::Denied(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// A send error: a refusal by the public-only resolver is a denial (permanent, logged as such),
/// anything else a transport failure (retryable).
fn classify(e: &reqwest::Error) -> Failure {
    let chain = error_chain(e);
    if chain.contains(PRIVATE_ONLY) {
        Failure::Denied(chain)
    } else {
        Failure::Transport(chain)
    }
}

/// What the resolver says when a name resolves only to non-public addresses.
const PRIVATE_ONLY: &str = "resolves only to private or reserved addresses";

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(
            &[
                "https://api.example.com".into(),
                "http://mock.test".into(),
                "http://localhost:9".into(),
            ],
            &[
                "https://api.example.com".into(),
                "http://mock.test".into(),
                "http://localhost:9".into(),
                "https://other.com".into(),
            ],
            &[("http://mock.test".into(), "http://127.0.0.1:5555".into())],
        )
        .unwrap()
    }

    #[test]
    fn only_declared_and_allowed_origins_pass() {
        let p = policy();
        assert!(
            p.check(&Url::parse("https://api.example.com/v2/x?y=1").unwrap())
                .is_ok()
        );
        assert!(
            p.check(&Url::parse("https://api.example.com:443/").unwrap())
                .is_ok()
        );
        // allowed by the operator but not declared by the connector
        assert!(p.check(&Url::parse("https://other.com/").unwrap()).is_err());
        // same host, other port or scheme
        assert!(
            p.check(&Url::parse("https://api.example.com:8443/").unwrap())
                .is_err()
        );
        assert!(
            p.check(&Url::parse("http://api.example.com/").unwrap())
                .is_err()
        );
        assert!(p.check(&Url::parse("file:///etc/passwd").unwrap()).is_err());
    }

    #[test]
    fn a_wildcard_origin_covers_hosts_under_its_domain_only() {
        let declared = ["https://*.my.salesforce.com".to_string()];
        let p = Policy::new(&declared, &declared, &[]).unwrap();
        for ok in [
            "https://acme.my.salesforce.com/services/data",
            "https://acme--dev.sandbox.my.salesforce.com/",
        ] {
            assert!(p.check(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for refused in [
            "https://my.salesforce.com/",
            "https://evilmy.salesforce.com/",
            "https://acme.my.salesforce.com.evil.com/",
            "http://acme.my.salesforce.com/",
            "https://acme.my.salesforce.com:8443/",
        ] {
            assert!(p.check(&Url::parse(refused).unwrap()).is_err(), "{refused}");
        }
        // The operator may allow one host under the wildcard, and map it to a stand-in.
        let one = Policy::new(
            &declared,
            &["https://acme.my.salesforce.com".into()],
            &[(
                "https://acme.my.salesforce.com".into(),
                "http://127.0.0.1:5555".into(),
            )],
        )
        .unwrap();
        let (url, trusted) = one
            .check(&Url::parse("https://acme.my.salesforce.com/x").unwrap())
            .unwrap();
        assert_eq!((url.as_str(), trusted), ("http://127.0.0.1:5555/x", true));
        assert!(
            one.check(&Url::parse("https://other.my.salesforce.com/").unwrap())
                .is_err()
        );
        // Too wide a wildcard is refused.
        for bad in [
            "https://*.com",
            "https://*",
            "https://a.*.com",
            "https://*.*.example.com",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stand_in_is_mapped_and_trusted() {
        let (url, trusted) = policy()
            .check(&Url::parse("http://mock.test/a/b?c=d").unwrap())
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:5555/a/b?c=d");
        assert!(trusted);
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "100.64.0.1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_declared_name_that_resolves_to_loopback_is_refused() {
        let client = Client::new().unwrap();
        let req = Prepared {
            method: reqwest::Method::GET,
            url: Url::parse("http://localhost:9/").unwrap(),
            headers: vec![],
            body: vec![],
            timeout: Duration::from_secs(5),
        };
        match client.send(&policy(), req, &[]).await {
            Err(Failure::Denied(m)) => assert!(m.contains("private"), "{m}"),
            other => panic!("expected a refusal, got {:?}", other.map(|r| r.status)),
        }
    }
}
