//! The in-memory host: the same functions as the WIT `host` interface, over the state of the
//! [`Harness`](super::Harness) running the current invocation, with the hub's semantics: writes
//! are buffered and committed only when the invocation succeeds, reads see the invocation's own
//! writes first, undeclared events and jobs trap, credentials are filled in by the host.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use super::{Sent, State};
use crate::bindings::hub::connector::host::Level;
use crate::bindings::hub::connector::types::{
    Channel, HashAlgorithm, HttpError, HttpRequest, HttpResponse, OutboundAuth, SecretForm,
};

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// Makes `state` the host of the invocations on this thread until the guard drops.
pub(super) fn install(state: Rc<RefCell<State>>) -> Installed {
    CURRENT.with(|c| *c.borrow_mut() = Some(state));
    Installed
}

/// Uninstalls the harness host when dropped (also when the connector panics).
pub(super) struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// One host call: counted, as the hub counts them (past [`super::MAX_HOST_CALLS`] in one
/// invocation it traps), then `f` on the invocation's state.
fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let calls = peek(|s| {
        s.pending.host_calls += 1;
        s.pending.host_calls
    });
    if calls > super::MAX_HOST_CALLS {
        trap(format!(
            "more than {} host calls in one invocation",
            super::MAX_HOST_CALLS
        ));
    }
    peek(f)
}

/// Runs `f` on the current invocation's state, uncounted (a second look within one call);
/// outside an invocation it panics, as a component calling the host outside one would trap.
fn peek<T>(f: impl FnOnce(&mut State) -> T) -> T {
    CURRENT.with(|c| {
        let current = c.borrow();
        let Some(state) = current.as_ref() else {
            panic!(
                "a plugin-sdk host function was called outside an invocation: run the connector \
                 through plugin_sdk::harness::Harness (deliver, action, job, respond)"
            );
        };
        f(&mut state.borrow_mut())
    })
}

/// A host-side failure the hub answers with a trap: the invocation fails, its writes are
/// discarded. In the harness it is a panic the invocation catches.
fn trap(message: String) -> ! {
    panic!("{}{message}", super::TRAP)
}

/// The harness clock, when a test set one.
pub(crate) fn clock() -> Option<u64> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|s| s.borrow().now_ms))
}

pub(crate) fn log(level: Level, message: &str) {
    with(|s| s.logs.push((level, message.to_string())));
}

pub(crate) fn tenant() -> String {
    with(|s| s.tenant.clone())
}

pub(crate) fn config(key: &str) -> Option<String> {
    with(|s| s.config.get(key).map(|v| v.to_string()))
}

pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
    with(|s| {
        if let Some(w) = s.pending.kv.iter().rev().find(|w| w.key == key) {
            return w.value.clone();
        }
        s.kv.get(key).map(|v| v.value.clone())
    })
}

fn kv_write(key: &str, value: Option<&[u8]>, marker: bool) {
    with(|s| {
        s.pending.kv.push(super::KvWrite {
            key: key.to_string(),
            value: value.map(<[u8]>::to_vec),
            marker,
        })
    });
}

pub(crate) fn kv_set(key: &str, value: &[u8]) {
    kv_write(key, Some(value), false);
}

pub(crate) fn kv_set_marker(key: &str, value: &[u8]) {
    kv_write(key, Some(value), true);
}

pub(crate) fn kv_delete(key: &str) {
    kv_write(key, None, false);
}

pub(crate) fn record_get(kind: &str, key: &str) -> Option<String> {
    with(|s| s.record(kind, key))
}

pub(crate) fn record_upsert(kind: &str, key: &str, data: &str) {
    if serde_json::from_str::<serde_json::Value>(data).is_err() {
        trap(format!("record {kind}/{key} is not JSON"));
    }
    with(|s| {
        s.pending
            .records
            .push((kind.into(), key.into(), Some(data.into())))
    });
}

pub(crate) fn record_delete(kind: &str, key: &str) {
    with(|s| s.pending.records.push((kind.into(), key.into(), None)));
}

pub(crate) fn record_list(kind: &str, limit: u32) -> Vec<(String, String)> {
    with(|s| {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (k, key, data) in s.pending.records.iter().rev() {
            if k == kind
                && seen.insert(key.clone())
                && let Some(d) = data
            {
                out.push((key.clone(), d.clone()));
            }
        }
        for (key, data) in s.stored_newest_first(kind) {
            if seen.insert(key.clone()) {
                out.push((key, data));
            }
        }
        out.truncate(limit.min(1000) as usize);
        out
    })
}

pub(crate) fn record_set_lookups(kind: &str, key: &str, lookups: &[String]) {
    if lookups.len() > 32 {
        trap(format!(
            "record {kind}/{key}: {} lookups, more than 32",
            lookups.len()
        ));
    }
    if let Some(bad) = lookups.iter().find(|l| l.is_empty() || l.len() > 256) {
        trap(format!(
            "record {kind}/{key}: a lookup of {} bytes (1 to 256)",
            bad.len()
        ));
    }
    with(|s| {
        let code = s.phone_code.clone();
        let resolved: Vec<String> = lookups
            .iter()
            .filter_map(|l| crate::lookup::resolve(l, code.as_deref()))
            .collect();
        s.pending.lookups.push((kind.into(), key.into(), resolved));
    });
}

pub(crate) fn record_find(kind: &str, lookup: &str, limit: u32) -> Vec<(String, String)> {
    with(|s| s.find(kind, lookup, limit))
}

pub(crate) fn route_url(route: &str) -> String {
    with(|s| s.route_url(route))
}

pub(crate) fn publish(name: &str, payload: &str) {
    let declared = peek(|s| s.manifest.events.iter().any(|e| e.name == name));
    if !declared {
        trap(format!("event `{name}` is not declared in the manifest"));
    }
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(payload) else {
        trap(format!("event `{name}` payload is not JSON"));
    };
    with(|s| {
        s.pending.events.push(super::Event {
            name: name.into(),
            payload,
        })
    });
}

pub(crate) fn enqueue_job(name: &str, input: &str, delay_ms: u64) {
    let declared = peek(|s| s.manifest.jobs.iter().any(|j| j.name == name));
    if !declared {
        trap(format!("job `{name}` is not declared in the manifest"));
    }
    let Ok(input) = serde_json::from_str::<serde_json::Value>(input) else {
        trap(format!("job `{name}` input is not JSON"));
    };
    with(|s| {
        let run_at_ms = s.now().saturating_add(delay_ms);
        s.pending.jobs.push(super::QueuedJob {
            name: name.into(),
            input,
            run_at_ms,
        })
    });
}

pub(crate) fn mac(
    credential: &str,
    algorithm: HashAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let key = with(|s| s.credential(credential))?;
    Ok(match algorithm {
        HashAlgorithm::Sha1 => mac_with::<hmac::Hmac<sha1::Sha1>>(&key, message),
        HashAlgorithm::Sha256 => mac_with::<hmac::Hmac<sha2::Sha256>>(&key, message),
        HashAlgorithm::Sha512 => mac_with::<hmac::Hmac<sha2::Sha512>>(&key, message),
    })
}

fn mac_with<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(message);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

pub(crate) fn http(request: &HttpRequest) -> Result<HttpResponse, HttpError> {
    with(|s| {
        let url = s.fill_url(&request.url)?;
        let parsed = url::Url::parse(&url)
            .map_err(|e| HttpError::Denied(format!("`{}` is not a URL: {e}", request.url)))?;
        s.check_origin(&parsed)?;
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("host")
            })
            .cloned()
            .collect();
        let mut credential = None;
        if let Some(auth) = &request.auth {
            let (name, value, cred) = match auth {
                OutboundAuth::Bearer(c) => {
                    let v = s.bearer_text(c)?;
                    ("authorization".to_string(), format!("Bearer {v}"), c)
                }
                OutboundAuth::Basic(b) => {
                    let v = s.credential_text(&b.password_credential)?;
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{v}", b.username));
                    (
                        "authorization".to_string(),
                        format!("Basic {token}"),
                        &b.password_credential,
                    )
                }
                OutboundAuth::Header(h) => {
                    let v = s.credential_text(&h.credential)?;
                    (h.name.to_ascii_lowercase(), v, &h.credential)
                }
                OutboundAuth::Authorization(a) => {
                    let v = s.credential_text(&a.credential)?;
                    (
                        "authorization".to_string(),
                        format!("{} {v}", a.scheme),
                        &a.credential,
                    )
                }
            };
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            headers.push((name, value));
            credential = Some(cred.clone());
        }
        let body = if request.fill_body {
            let text = String::from_utf8(request.body.clone())
                .map_err(|_| HttpError::Denied("a body to fill is not UTF-8 text".into()))?;
            s.fill_channel_tokens(&s.fill_url(&text)?)?.into_bytes()
        } else {
            request.body.clone()
        };
        for c in &request.capture {
            if let Err(problem) = s.declared_credential(&c.credential) {
                trap(problem);
            }
        }
        let sent = Sent {
            method: request.method.to_ascii_uppercase(),
            url,
            headers,
            body,
            credential,
        };
        let answer = s.answer(&sent);
        s.requests.push(sent);
        let mut answer = answer?;
        if !request.capture.is_empty() && (200..300).contains(&answer.status) {
            let mut json: serde_json::Value =
                serde_json::from_slice(&answer.body).map_err(|e| {
                    HttpError::Transport(format!("the answer to capture from is not JSON: {e}"))
                })?;
            for c in &request.capture {
                let Some(slot) = json.pointer_mut(&c.pointer) else {
                    return Err(HttpError::Transport(format!(
                        "the answer has no `{}` to keep",
                        c.pointer
                    )));
                };
                let Some(value) = slot.as_str().map(str::to_string) else {
                    return Err(HttpError::Transport(format!(
                        "`{}` in the answer is not a string",
                        c.pointer
                    )));
                };
                *slot = serde_json::Value::String(KEPT.into());
                s.pending
                    .credentials
                    .push((c.credential.clone(), value.into_bytes()));
            }
            answer.body = serde_json::to_vec(&json).unwrap_or_default();
        }
        Ok(answer)
    })
}

/// What a captured secret reads as in the answer the connector sees.
pub(crate) const KEPT: &str = "(kept by the host)";

pub(crate) fn generate_credential(name: &str, form: SecretForm) -> Result<(), String> {
    with(|s| {
        s.declared_credential(name)?;
        let token = format!(
            "gen-{:016x}{:016x}",
            s.now(),
            s.pending.credentials.len() as u64 + 1
        );
        let value = match form {
            SecretForm::Token => token,
            SecretForm::BasicAuth => format!("hub:{token}"),
        };
        s.pending
            .credentials
            .push((name.to_string(), value.into_bytes()));
        Ok(())
    })
}

/// Checks a channel id as the hub does.
fn channel_id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (!ok).then(|| format!("channel id `{id}` must be 1 to 64 characters of A-Z a-z 0-9 _ -"))
}

pub(crate) fn channel_open(id: &str, topic: &str) -> Result<(), String> {
    with(|s| {
        if let Some(problem) = channel_id_problem(id) {
            return Err(problem);
        }
        if s.channels.iter().any(|c| c.channel.id == id) {
            return Err(format!("channel `{id}` is already held"));
        }
        let token = format!("chan-{:016x}-{id}", s.now());
        let channel = Channel {
            id: id.to_string(),
            topic: topic.to_string(),
            resource: String::new(),
            expires_ms: 0,
            opened_ms: s.now(),
        };
        s.channels
            .push(super::state::HeldChannel { channel, token });
        s.pending.channels_opened.push(id.to_string());
        Ok(())
    })
}

pub(crate) fn channel_keep(id: &str, resource: &str, expires_ms: u64) -> Result<(), String> {
    with(
        |s| match s.channels.iter_mut().find(|c| c.channel.id == id) {
            Some(held) => {
                held.channel.resource = resource.to_string();
                held.channel.expires_ms = expires_ms;
                Ok(())
            }
            None => Err(format!("channel `{id}` is not held")),
        },
    )
}

pub(crate) fn channel_close(id: &str) {
    with(|s| s.channels.retain(|c| c.channel.id != id));
}

pub(crate) fn channels() -> Vec<Channel> {
    with(|s| s.channels.iter().map(|c| c.channel.clone()).collect())
}
