//! What the in-memory host holds: the tenant's setup, the committed state, the invocation's
//! buffered writes, and the stand-in answers.

use std::collections::{BTreeMap, HashMap};

use super::{Event, QueuedJob, Sent, TRAP};
use crate::bindings::hub::connector::host::Level;
use crate::bindings::hub::connector::types::{
    Channel, HttpError, HttpResponse, Manifest, SignatureScheme,
};

/// 2026-01-01T00:00:00Z: where the harness clock starts.
const EPOCH_MS: u64 = 1_767_225_600_000;

/// A buffered kv write: a set, a marker, or a delete (`value` `None`).
pub(crate) struct KvWrite {
    pub(crate) key: String,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) marker: bool,
}

/// A committed kv value.
pub(crate) struct KvValue {
    pub(crate) value: Vec<u8>,
    pub(crate) marker: bool,
}

/// One invocation's writes, committed only if it succeeds.
#[derive(Default)]
pub(crate) struct Pending {
    /// (kind, key, data); `None` deletes.
    pub(crate) records: Vec<(String, String, Option<String>)>,
    /// (kind, key, lookups), resolved.
    pub(crate) lookups: Vec<(String, String, Vec<String>)>,
    pub(crate) kv: Vec<KvWrite>,
    pub(crate) events: Vec<Event>,
    pub(crate) jobs: Vec<QueuedJob>,
    /// Credentials the host keeps (generated, or captured from an answer).
    pub(crate) credentials: Vec<(String, Vec<u8>)>,
    /// Channels this invocation opened: only their tokens fill `{channel-token:ID}`.
    pub(crate) channels_opened: Vec<String>,
    /// Host calls this invocation made (the hub traps past [`super::MAX_HOST_CALLS`]).
    pub(crate) host_calls: u32,
}

/// A push channel the harness holds, with its token (the hub keeps only its digest).
#[derive(Clone)]
pub(crate) struct HeldChannel {
    pub(crate) channel: Channel,
    pub(crate) token: String,
}

/// A rule of the answer table.
struct Rule {
    method: String,
    prefix: String,
    answers: Vec<Result<HttpResponse, HttpError>>,
    used: usize,
}

type Fallback = Box<dyn FnMut(&Sent) -> Result<HttpResponse, HttpError>>;

/// The in-memory host's state.
pub(crate) struct State {
    pub(crate) manifest: Manifest,
    pub(crate) tenant: String,
    pub(crate) config: serde_json::Map<String, serde_json::Value>,
    pub(crate) credentials: HashMap<String, Vec<u8>>,
    /// The access tokens the harness plays the host's OAuth2 credentials with, by name.
    pub(crate) oauth_tokens: HashMap<String, String>,
    /// Names of the credentials invocations kept (generated or captured), in order.
    pub(crate) kept: Vec<String>,
    pub(crate) phone_code: Option<String>,
    pub(crate) now_ms: Option<u64>,
    /// (kind, key) -> (write sequence, JSON).
    records: BTreeMap<(String, String), (u64, String)>,
    pub(crate) lookups: HashMap<(String, String), Vec<String>>,
    pub(crate) kv: BTreeMap<String, KvValue>,
    pub(crate) events: Vec<Event>,
    pub(crate) jobs: Vec<QueuedJob>,
    pub(crate) requests: Vec<Sent>,
    pub(crate) logs: Vec<(Level, String)>,
    pub(crate) pending: Pending,
    /// Push channels, oldest first (written at once, as the hub does).
    pub(crate) channels: Vec<HeldChannel>,
    rules: Vec<Rule>,
    pub(crate) fallback: Option<Fallback>,
    seq: u64,
}

/// The manifest's own consistency, as the hub checks it at load: every verified route names a
/// declared credential.
pub(crate) fn check_manifest(m: &Manifest) -> Result<(), String> {
    for r in &m.routes {
        let verified = !matches!(
            r.signature,
            SignatureScheme::None | SignatureScheme::Custom | SignatureScheme::Channel(_)
        );
        if verified && !m.credentials.iter().any(|c| c.name == r.credential) {
            return Err(format!(
                "manifest of `{}`: route `{}` is verified with credential `{}`, which the manifest does not declare in `credentials`",
                m.name, r.name, r.credential
            ));
        }
    }
    Ok(())
}

impl State {
    pub(crate) fn new(manifest: Manifest) -> State {
        State {
            manifest,
            tenant: "acme".into(),
            config: serde_json::Map::new(),
            credentials: HashMap::new(),
            oauth_tokens: HashMap::new(),
            kept: Vec::new(),
            phone_code: None,
            now_ms: Some(EPOCH_MS),
            records: BTreeMap::new(),
            lookups: HashMap::new(),
            kv: BTreeMap::new(),
            events: Vec::new(),
            jobs: Vec::new(),
            requests: Vec::new(),
            logs: Vec::new(),
            pending: Pending::default(),
            channels: Vec::new(),
            rules: Vec::new(),
            fallback: None,
            seq: 0,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.now_ms.unwrap_or(EPOCH_MS)
    }

    pub(crate) fn route_url(&self, route: &str) -> String {
        let base = format!(
            "https://hub.example/hooks/{}/{}",
            self.tenant, self.manifest.name
        );
        if route.is_empty() {
            base
        } else {
            format!("{base}/{route}")
        }
    }

    /// A record as the invocation sees it: its own last write first, then the committed one.
    pub(crate) fn record(&self, kind: &str, key: &str) -> Option<String> {
        if let Some((_, _, data)) = self
            .pending
            .records
            .iter()
            .rev()
            .find(|(k, ky, _)| k == kind && ky == key)
        {
            return data.clone();
        }
        self.stored(kind, key)
    }

    pub(crate) fn stored(&self, kind: &str, key: &str) -> Option<String> {
        self.records
            .get(&(kind.to_string(), key.to_string()))
            .map(|(_, d)| d.clone())
    }

    /// Up to `limit` records of `kind` carrying `lookup` (resolved as the hub does, with the
    /// tenant's phone country code), as `records::find` answers: those this invocation set
    /// lookups on decide by their own, then the committed ones, newest first.
    pub(crate) fn find(&self, kind: &str, lookup: &str, limit: u32) -> Vec<(String, String)> {
        let Some(lookup) = crate::lookup::resolve(lookup, self.phone_code.as_deref()) else {
            return Vec::new();
        };
        let mut decided = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (k, key, set) in self.pending.lookups.iter().rev() {
            if k == kind && decided.insert(key.clone()) && set.contains(&lookup) {
                out.extend(self.record(kind, key).map(|d| (key.clone(), d)));
            }
        }
        for (key, _) in self.stored_newest_first(kind) {
            if decided.contains(&key) {
                continue;
            }
            let carries = self
                .lookups
                .get(&(kind.to_string(), key.clone()))
                .is_some_and(|l| l.contains(&lookup));
            if carries {
                out.extend(self.record(kind, &key).map(|d| (key.clone(), d)));
            }
        }
        out.truncate(limit.min(1000) as usize);
        out
    }

    /// Committed records of a kind, the last written first.
    pub(crate) fn stored_newest_first(&self, kind: &str) -> Vec<(String, String)> {
        let mut all: Vec<(u64, String, String)> = self
            .records
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, key), (seq, d))| (*seq, key.clone(), d.clone()))
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.0));
        all.into_iter().map(|(_, k, d)| (k, d)).collect()
    }

    /// Applies a successful invocation's writes, in order.
    pub(crate) fn commit(&mut self, pending: Pending) {
        for (kind, key, data) in pending.records {
            self.seq += 1;
            let id = (kind, key);
            match data {
                Some(d) => {
                    self.records.insert(id, (self.seq, d));
                }
                None => {
                    self.records.remove(&id);
                    self.lookups.remove(&id);
                }
            }
        }
        for (kind, key, lookups) in pending.lookups {
            let id = (kind, key);
            if self.records.contains_key(&id) {
                self.lookups.insert(id, lookups);
            }
        }
        for w in pending.kv {
            match w.value {
                Some(value) => {
                    self.kv.insert(
                        w.key,
                        KvValue {
                            value,
                            marker: w.marker,
                        },
                    );
                }
                None => {
                    self.kv.remove(&w.key);
                }
            }
        }
        self.events.extend(pending.events);
        self.jobs.extend(pending.jobs);
        for (name, value) in pending.credentials {
            self.kept.push(name.clone());
            self.credentials.insert(name, value);
        }
    }

    /// A credential's value: the invocation's own kept one first, as the hub does.
    fn value(&self, name: &str) -> Option<&Vec<u8>> {
        self.pending
            .credentials
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .or_else(|| self.credentials.get(name))
    }

    /// `Ok` when the manifest declares the credential; otherwise what to fix.
    pub(crate) fn declared_credential(&self, name: &str) -> Result<(), String> {
        if self.manifest.credentials.iter().any(|c| c.name == name) {
            return Ok(());
        }
        let declared: Vec<String> = self
            .manifest
            .credentials
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect();
        Err(format!(
            "credential `{name}` is not declared in the manifest of `{}` (it declares: {}); \
             add it to the manifest's `credentials` so `hub check` asks each tenant for it",
            self.manifest.name,
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        ))
    }

    /// A credential's bytes for `host.mac`.
    pub(crate) fn credential(&self, name: &str) -> Result<Vec<u8>, String> {
        if let Err(problem) = self.declared_credential(name) {
            panic!("{TRAP}{problem}");
        }
        self.value(name)
            .cloned()
            .ok_or_else(|| format!("credential `{name}` is not configured"))
    }

    /// A `bearer(name)` value: an OAuth2 credential's access token (as the host mints it), or
    /// a plain credential's text.
    pub(crate) fn bearer_text(&self, name: &str) -> Result<String, HttpError> {
        if self.manifest.oauth2.iter().any(|d| d.name == name) {
            return self
                .oauth_tokens
                .get(name)
                .cloned()
                .ok_or_else(|| HttpError::UnknownCredential(name.into()));
        }
        self.credential_text(name)
    }

    /// A credential as header text: undeclared traps, declared but not given answers
    /// `unknown-credential`, as the hub does for a tenant without it.
    pub(crate) fn credential_text(&self, name: &str) -> Result<String, HttpError> {
        if let Err(problem) = self.declared_credential(name) {
            panic!("{TRAP}{problem}");
        }
        self.value(name)
            .and_then(|v| String::from_utf8(v.clone()).ok())
            .ok_or_else(|| HttpError::UnknownCredential(name.into()))
    }

    /// Fills `{channel-token:ID}` placeholders in a body.
    pub(crate) fn fill_channel_tokens(&self, text: &str) -> Result<String, HttpError> {
        const OPEN: &str = "{channel-token:";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find('}') else {
                return Err(HttpError::Denied(
                    "the body has an unclosed {channel-token:...} placeholder".into(),
                ));
            };
            let id = &after[..end];
            let held = self
                .channels
                .iter()
                .find(|c| c.channel.id == id)
                .filter(|_| self.pending.channels_opened.iter().any(|o| o == id));
            let Some(held) = held else {
                return Err(HttpError::Denied(format!(
                    "{{channel-token:{id}}}: no channel `{id}` was opened by this invocation"
                )));
            };
            out.push_str(&held.token);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Fills `{credential:NAME}` placeholders in a URL.
    pub(crate) fn fill_url(&self, url: &str) -> Result<String, HttpError> {
        let mut out = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(start) = rest.find("{credential:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "{credential:".len()..];
            let Some(end) = after.find('}') else {
                return Err(HttpError::Denied(format!(
                    "`{url}` has an unclosed {{credential:...}} placeholder"
                )));
            };
            out.push_str(&self.credential_text(&after[..end])?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Declared origins only, as the hub's policy (the operator's allow-list aside).
    pub(crate) fn check_origin(&self, url: &url::Url) -> Result<(), HttpError> {
        let origin = url.origin().ascii_serialization();
        let declared: Vec<String> = self
            .manifest
            .outbound_hosts
            .iter()
            .filter_map(|h| url::Url::parse(h).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        // `https://*.example.com` covers every host under that domain, on its scheme and port.
        let covered = declared.iter().any(|d| {
            d == &origin
                || d.split_once("://*.").is_some_and(|(scheme, rest)| {
                    origin.split_once("://").is_some_and(|(s, host)| {
                        s == scheme
                            && host.len() > rest.len()
                            && host.ends_with(&format!(".{rest}"))
                    })
                })
        });
        if covered {
            return Ok(());
        }
        Err(HttpError::Denied(format!(
            "{origin} is not an allowed host for this connector (declared: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        )))
    }

    pub(crate) fn add_rule(
        &mut self,
        method: &str,
        prefix: &str,
        answer: Result<HttpResponse, HttpError>,
    ) {
        let method = method.to_ascii_uppercase();
        if let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.method == method && r.prefix == prefix)
        {
            rule.answers.push(answer);
            return;
        }
        self.rules.push(Rule {
            method,
            prefix: prefix.into(),
            answers: vec![answer],
            used: 0,
        });
    }

    /// The stand-in answer to a request: the longest matching rule, else the closure; with
    /// neither, the test is missing an answer, and says which.
    pub(crate) fn answer(&mut self, sent: &Sent) -> Result<HttpResponse, HttpError> {
        let best = self
            .rules
            .iter_mut()
            .filter(|r| r.method == sent.method && sent.url.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len());
        if let Some(rule) = best {
            let i = rule.used.min(rule.answers.len() - 1);
            rule.used += 1;
            return rule.answers[i].clone();
        }
        if let Some(f) = self.fallback.as_mut() {
            return f(sent);
        }
        let known: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{} {}", r.method, r.prefix))
            .collect();
        panic!(
            "{TRAP}no stand-in answer for {} {} (the harness answers: {}); add one with Harness::on or Harness::on_http",
            sent.method,
            sent.url,
            if known.is_empty() {
                "nothing".to_string()
            } else {
                known.join(", ")
            }
        );
    }
}
