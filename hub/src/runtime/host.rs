//! The host side of the WIT `host` interface: what a connector may ask of the hub, scoped to
//! the tenant and connector of the invocation.
//!
//! Writes (records, kv, events, jobs) are buffered in [`Effects`] and committed by the worker
//! together with the job's end, so an attempt that fails or is cut off leaves nothing behind.
//! Reads see the invocation's own buffered writes first. Credentials are looked up here and
//! attached to requests; they never cross into the guest.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::ConfigMap;
use super::bindings::hub::connector::host::{self, Level};
use super::bindings::hub::connector::types::{
    self, HashAlgorithm, HttpError, HttpRequest, HttpResponse, OutboundAuth,
};
use super::outbound::{self, Failure, Prepared};
use super::{Loaded, Services};

use crate::clock::now_ms;
use crate::id::TenantId;
use crate::store::{
    Effects, KvWrite, LookupsSet, NewJob, Published, Read, ReadSeen, RecordWrite, Task,
};

/// Most host calls one invocation may make; past it the invocation traps.
pub const MAX_HOST_CALLS: u32 = 10_000;
/// Longest log line kept.
const MAX_LOG_LINE: usize = 4096;
/// Lookups one record can carry, and the longest one (bytes).
const MAX_LOOKUPS: usize = 32;
const MAX_LOOKUP_LEN: usize = 256;

/// Everything an invocation's host functions need. One per `Store`.
pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: wasmtime::StoreLimits,
    pub(super) scope: Option<Scope>,
    pub(super) effects: Effects,
    pub(super) host_calls: u32,
    /// Bytes of writes buffered so far; capped at the connector's memory limit, so a guest
    /// cannot grow the host's memory past its own budget.
    pub(super) buffered: usize,
    /// Set when a request needed an OAuth2 connection that needs reconnecting: a failed
    /// invocation then waits for the connection instead of spending an attempt.
    pub(super) disconnected: Option<String>,
    /// The tokens of the push channels this invocation opened (`channels`).
    pub(super) channel_tokens: Vec<super::channels::ChannelToken>,
}

/// Who an invocation runs for.
pub struct Scope {
    pub(super) tenant: TenantId,
    pub(super) connector: Arc<Loaded>,
    pub(super) config: ConfigMap,
    pub(super) services: Arc<Services>,
    pub(super) deadline: Instant,
}

impl Scope {
    /// The tenant's `phone_country_code`.
    fn phone_code(&self) -> Option<&str> {
        self.services
            .phone_codes
            .get(&self.tenant)
            .map(String::as_str)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl HostState {
    pub(super) fn scope(&mut self) -> wasmtime::Result<&Scope> {
        self.host_calls += 1;
        if self.host_calls > MAX_HOST_CALLS {
            return Err(wasmtime::Error::msg(format!(
                "more than {MAX_HOST_CALLS} host calls in one invocation"
            )));
        }
        self.scope.as_ref().ok_or_else(|| {
            wasmtime::Error::msg(
                "host calls are not available while the connector describes itself",
            )
        })
    }

    /// Accounts for `bytes` more of buffered writes; traps past the connector's memory limit.
    fn buffer(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let limit = self
            .scope
            .as_ref()
            .map(|s| s.connector.settings.memory_bytes)
            .unwrap_or(0);
        self.buffered = self.buffered.saturating_add(bytes);
        if self.buffered > limit {
            return Err(wasmtime::Error::msg(format!(
                "buffered writes exceed the connector's memory limit of {} MiB",
                limit / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Buffers a kv write (a set, a marker, or a delete when `value` is `None`).
    fn kv_write(
        &mut self,
        key: String,
        value: Option<Vec<u8>>,
        marker: bool,
    ) -> wasmtime::Result<()> {
        self.scope()?;
        self.buffer(key.len() + value.as_ref().map_or(0, Vec::len))?;
        self.effects.kv.push(KvWrite { key, value, marker });
        Ok(())
    }

    /// This invocation's last write of a record: `Some(None)` if it deleted it.
    fn pending_record(&self, kind: &str, key: &str) -> Option<Option<String>> {
        self.effects
            .records
            .iter()
            .rev()
            .find(|w| w.kind == kind && w.key == key)
            .map(|w| w.data.clone())
    }

    /// Remembers the version of the first read of a value, for the commit-time conflict check.
    fn note_read(&mut self, read: Read, version: i64) {
        if !self.effects.reads.iter().any(|seen| seen.read == read) {
            self.effects.reads.push(ReadSeen { read, version });
        }
    }

    fn db<T>(r: Result<T, crate::store::StoreError>) -> wasmtime::Result<T> {
        // A database failure is the hub's fault, not the connector's: trap, and the job retries.
        r.map_err(|e| wasmtime::Error::msg(format!("hub storage unavailable: {e}")))
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let scope = self.scope()?;
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (tenant, connector) = (scope.tenant.as_str(), scope.connector.id.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "connector", tenant, connector, "{message}"),
            Level::Debug => tracing::debug!(target: "connector", tenant, connector, "{message}"),
            Level::Info => tracing::info!(target: "connector", tenant, connector, "{message}"),
            Level::Warn => tracing::warn!(target: "connector", tenant, connector, "{message}"),
            Level::Error => tracing::error!(target: "connector", tenant, connector, "{message}"),
        }
        Ok(())
    }

    fn tenant(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope()?.tenant.to_string())
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let scope = self.scope()?;
        Ok(scope.config.get(&key).map(|v| v.to_string()))
    }

    fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if let Some(w) = self.effects.kv.iter().rev().find(|w| w.key == key) {
            let v = w.value.clone();
            self.scope()?;
            return Ok(v);
        }
        let scope = self.scope()?;
        let (value, version) = Self::db(scope.services.store.kv_get_versioned(
            &scope.tenant,
            &scope.connector.id,
            &key,
        ))?;
        self.note_read(Read::Kv(key), version);
        Ok(value)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.kv_write(key, Some(value), false)
    }

    fn kv_set_marker(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.kv_write(key, Some(value), true)
    }

    fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.kv_write(key, None, false)
    }

    fn record_get(&mut self, kind: String, key: String) -> wasmtime::Result<Option<String>> {
        if let Some(v) = self.pending_record(&kind, &key) {
            self.scope()?;
            return Ok(v);
        }
        let scope = self.scope()?;
        let (value, version) = Self::db(scope.services.store.record_get_versioned(
            &scope.tenant,
            &kind,
            &key,
        ))?;
        self.note_read(Read::Record(kind, key), version);
        Ok(value)
    }

    fn record_delete(&mut self, kind: String, key: String) -> wasmtime::Result<()> {
        self.scope()?;
        self.effects.records.push(RecordWrite {
            kind,
            key,
            data: None,
        });
        Ok(())
    }

    fn record_list(&mut self, kind: String, limit: u32) -> wasmtime::Result<Vec<(String, String)>> {
        let scope = self.scope()?;
        let limit = limit.min(1000);
        let stored = Self::db(
            scope
                .services
                .store
                .record_list(&scope.tenant, &kind, limit),
        )?;
        // Overlay this invocation's own writes: newest first, deletions removed.
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for w in self.effects.records.iter().rev() {
            if w.kind == kind
                && seen.insert(w.key.clone())
                && let Some(d) = &w.data
            {
                out.push((w.key.clone(), d.clone()));
            }
        }
        for (key, data, version) in stored {
            self.note_read(Read::Record(kind.clone(), key.clone()), version);
            if seen.insert(key.clone()) {
                out.push((key, data));
            }
        }
        out.truncate(limit as usize);
        Ok(out)
    }

    fn record_set_lookups(
        &mut self,
        kind: String,
        key: String,
        lookups: Vec<String>,
    ) -> wasmtime::Result<()> {
        self.scope()?;
        if lookups.len() > MAX_LOOKUPS {
            return Err(wasmtime::Error::msg(format!(
                "record {kind}/{key}: {} lookups, more than {MAX_LOOKUPS}",
                lookups.len()
            )));
        }
        if let Some(bad) = lookups
            .iter()
            .find(|l| l.is_empty() || l.len() > MAX_LOOKUP_LEN)
        {
            return Err(wasmtime::Error::msg(format!(
                "record {kind}/{key}: a lookup of {} bytes (1 to {MAX_LOOKUP_LEN})",
                bad.len()
            )));
        }
        // A number without its country code is written with the tenant's, or dropped.
        let code = self.scope()?.phone_code();
        let lookups: Vec<String> = lookups
            .iter()
            .filter_map(|l| plugin_sdk::lookup::resolve(l, code))
            .collect();
        let bytes = kind.len() + key.len() + lookups.iter().map(String::len).sum::<usize>();
        self.buffer(bytes)?;
        self.effects.lookups.push(LookupsSet { kind, key, lookups });
        Ok(())
    }

    fn record_find(
        &mut self,
        kind: String,
        lookup: String,
        limit: u32,
    ) -> wasmtime::Result<Vec<(String, String)>> {
        let scope = self.scope()?;
        let Some(lookup) = plugin_sdk::lookup::resolve(&lookup, scope.phone_code()) else {
            return Ok(Vec::new()); // a national number the tenant gives no country for
        };
        let (store, tenant) = (scope.services.store.clone(), scope.tenant.clone());
        let limit = limit.min(1000);
        let stored = Self::db(store.record_find(&tenant, &kind, &lookup, limit))?;
        // This invocation's own writes first, as `record-get` and `record-list` see them: the
        // records whose lookups it set decide by those lookups, newest first.
        let mut decided = std::collections::HashSet::new();
        let mine: Vec<String> = self
            .effects
            .lookups
            .iter()
            .rev()
            .filter(|set| set.kind == kind && decided.insert(set.key.clone()))
            .filter(|set| set.lookups.contains(&lookup))
            .map(|set| set.key.clone())
            .collect();
        let mut out: Vec<(String, String)> = Vec::new();
        for key in mine {
            match self.pending_record(&kind, &key) {
                Some(data) => out.extend(data.map(|d| (key, d))),
                None => {
                    let (data, version) =
                        Self::db(store.record_get_versioned(&tenant, &kind, &key))?;
                    self.note_read(Read::Record(kind.clone(), key.clone()), version);
                    out.extend(data.map(|d| (key, d)));
                }
            }
        }
        for (key, data, version) in stored {
            self.note_read(Read::Record(kind.clone(), key.clone()), version);
            if decided.contains(&key) {
                continue;
            }
            match self.pending_record(&kind, &key) {
                Some(data) => out.extend(data.map(|d| (key, d))),
                None => out.push((key, data)),
            }
        }
        out.truncate(limit as usize);
        Ok(out)
    }

    fn route_url(&mut self, route: String) -> wasmtime::Result<String> {
        let scope = self.scope()?;
        let base = scope.services.public_base.as_str();
        Ok(if route.is_empty() {
            format!("{base}/hooks/{}/{}", scope.tenant, scope.connector.id)
        } else {
            format!(
                "{base}/hooks/{}/{}/{route}",
                scope.tenant, scope.connector.id
            )
        })
    }

    fn record_upsert(&mut self, kind: String, key: String, data: String) -> wasmtime::Result<()> {
        self.scope()?;
        self.buffer(kind.len() + key.len() + data.len())?;
        if serde_json::from_str::<serde_json::Value>(&data).is_err() {
            return Err(wasmtime::Error::msg(format!(
                "record {kind}/{key} is not JSON"
            )));
        }
        self.effects.records.push(RecordWrite {
            kind,
            key,
            data: Some(data),
        });
        Ok(())
    }

    fn publish(&mut self, name: String, payload: String) -> wasmtime::Result<()> {
        self.buffer(name.len() + payload.len())?;
        let scope = self.scope()?;
        if !scope
            .connector
            .manifest
            .events
            .iter()
            .any(|e| e.name == name)
        {
            return Err(wasmtime::Error::msg(format!(
                "event `{name}` is not declared in the manifest"
            )));
        }
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Err(wasmtime::Error::msg(format!(
                "event `{name}` payload is not JSON"
            )));
        }
        self.effects.events.push(Published { name, payload });
        Ok(())
    }

    fn enqueue_job(&mut self, name: String, input: String, delay_ms: u64) -> wasmtime::Result<()> {
        self.buffer(name.len() + input.len())?;
        let scope = self.scope()?;
        if !scope.connector.manifest.jobs.iter().any(|j| j.name == name) {
            return Err(wasmtime::Error::msg(format!(
                "job `{name}` is not declared in the manifest"
            )));
        }
        let job = NewJob {
            tenant: scope.tenant.clone(),
            connector: scope.connector.id.clone(),
            task: Task::Job { name, input },
            run_at_ms: now_ms().saturating_add(delay_ms.min(i64::MAX as u64) as i64),
            idempotency_key: None,
            trace: None,
        };
        self.effects.jobs.push(job);
        Ok(())
    }

    fn generate_credential(
        &mut self,
        name: String,
        form: crate::runtime::bindings::hub::connector::types::SecretForm,
    ) -> wasmtime::Result<Result<(), String>> {
        self.buffer(name.len() + 64)?;
        self.generate(&name, form)
    }

    fn channel_open(&mut self, id: String, topic: String) -> wasmtime::Result<Result<(), String>> {
        self.open_channel(id, topic)
    }

    fn channel_keep(
        &mut self,
        id: String,
        resource: String,
        expires_ms: u64,
    ) -> wasmtime::Result<Result<(), String>> {
        self.keep_channel(id, resource, expires_ms)
    }

    fn channel_close(&mut self, id: String) -> wasmtime::Result<()> {
        self.close_channel(id)
    }

    fn channels(&mut self) -> wasmtime::Result<Vec<types::Channel>> {
        self.held_channels()
    }

    fn mac(
        &mut self,
        credential: String,
        algorithm: HashAlgorithm,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let scope = self.scope()?;
        let oauth_names = scope
            .connector
            .manifest
            .oauth2
            .iter()
            .map(|d| d.name.as_str());
        if crate::config::oauth::is_secret_part(&credential, oauth_names) {
            return Ok(Err(format!(
                "credential `{credential}` is part of an OAuth2 credential the host holds"
            )));
        }
        let Some(secret) =
            scope
                .services
                .vault
                .get(&scope.tenant, &scope.connector.id, &credential)
        else {
            return Ok(Err(format!("credential `{credential}` is not configured")));
        };
        let key = secret.expose_secret();
        let out = match algorithm {
            HashAlgorithm::Sha1 => mac_with::<hmac::Hmac<sha1_alias::Sha1>>(key, &message),
            HashAlgorithm::Sha256 => mac_with::<hmac::Hmac<sha2::Sha256>>(key, &message),
            HashAlgorithm::Sha512 => mac_with::<hmac::Hmac<sha2::Sha512>>(key, &message),
        };
        Ok(Ok(out))
    }

    fn http(&mut self, request: HttpRequest) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        // An OAuth2 credential's bearer token: minted by the host, refreshed once on a 401.
        let mut oauth = None;
        if let Some(OutboundAuth::Bearer(cred)) = &request.auth {
            let declared = self
                .scope()?
                .connector
                .manifest
                .oauth2
                .iter()
                .find(|d| &d.name == cred)
                .cloned();
            if let Some(decl) = declared {
                match self.oauth_token(&decl, None) {
                    Ok(token) => oauth = Some((decl, token)),
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        // What this invocation had the host keep so far (usually nothing), for placeholders.
        let kept = self.effects.credentials.clone();
        let channel_tokens = self.channel_secrets().to_vec();
        let kept = kept.as_slice();
        let scope = self.scope()?;
        // Leave the guest a slice of its time (a tenth, at most 200 ms) to handle a timeout
        // and return a retryable error, rather than being cut off by the deadline on return.
        let left = scope.deadline.saturating_duration_since(Instant::now());
        let remaining = left.saturating_sub((left / 10).min(std::time::Duration::from_millis(200)));
        let asked = request
            .timeout_ms
            .map(|ms| std::time::Duration::from_millis(ms.into()));
        let timeout = asked
            .unwrap_or(outbound::MAX_REQUEST_TIME)
            .min(outbound::MAX_REQUEST_TIME)
            .min(remaining);
        let filled = match fill_credentials(scope, kept, &request.url) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let url = match url::Url::parse(&filled) {
            Ok(u) => u,
            Err(e) => {
                return Ok(Err(HttpError::Denied(format!(
                    "`{}` is not a URL: {e}",
                    request.url
                ))));
            }
        };
        let method =
            match reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    return Ok(Err(HttpError::Denied(format!(
                        "bad method `{}`",
                        request.method
                    ))));
                }
            };
        let mut headers: Vec<(String, String)> = request
            .headers
            .into_iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("host")
            })
            .collect();
        let mut credential_headers = Vec::new();
        if let Some(auth) = &request.auth {
            let (name, value) = match auth {
                OutboundAuth::Bearer(_) if oauth.is_some() => {
                    let token = oauth
                        .as_ref()
                        .map(|(_, t)| t.expose_secret())
                        .unwrap_or_default();
                    ("authorization".to_string(), format!("Bearer {token}"))
                }
                OutboundAuth::Bearer(cred) => match request_credential(scope, kept, cred) {
                    Ok(v) => ("authorization".to_string(), format!("Bearer {v}")),
                    Err(e) => return Ok(Err(e)),
                },
                OutboundAuth::Basic(b) => {
                    match request_credential(scope, kept, &b.password_credential) {
                        Ok(v) => {
                            let token = base64::engine::general_purpose::STANDARD
                                .encode(format!("{}:{v}", b.username));
                            ("authorization".to_string(), format!("Basic {token}"))
                        }
                        Err(e) => return Ok(Err(e)),
                    }
                }
                OutboundAuth::Header(h) => match request_credential(scope, kept, &h.credential) {
                    Ok(v) => (h.name.to_ascii_lowercase(), v),
                    Err(e) => return Ok(Err(e)),
                },
                OutboundAuth::Authorization(a) => {
                    match request_credential(scope, kept, &a.credential) {
                        Ok(v) => ("authorization".to_string(), format!("{} {v}", a.scheme)),
                        Err(e) => return Ok(Err(e)),
                    }
                }
            };
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            credential_headers.push(name.clone());
            headers.push((name, value));
        }
        // Each credential an answer's secret becomes must be declared, before anything is sent.
        for c in &request.capture {
            if !scope
                .connector
                .manifest
                .credentials
                .iter()
                .any(|f| f.name == c.credential)
            {
                return Ok(Err(HttpError::Denied(format!(
                    "credential `{}` to capture is not declared in the connector's manifest",
                    c.credential
                ))));
            }
        }
        let body = if request.fill_body {
            let Ok(text) = String::from_utf8(request.body) else {
                return Ok(Err(HttpError::Denied(
                    "a body to fill is not UTF-8 text".into(),
                )));
            };
            let filled = fill_credentials(scope, kept, &text)
                .and_then(|t| super::channels::fill_tokens(&channel_tokens, &t));
            match filled {
                Ok(filled) => filled.into_bytes(),
                Err(e) => return Ok(Err(e)),
            }
        } else {
            request.body
        };
        let capture = request.capture;
        let prepared = Prepared {
            method,
            url,
            headers,
            body,
            timeout,
        };
        let services = scope.services.clone();
        let policy = &scope.connector.policy;
        let origin = outbound::Origin::of(&prepared.url)
            .map(|o| o.as_str().to_string())
            .unwrap_or_default();
        let started = std::time::Instant::now();
        let again = oauth.as_ref().map(|_| Prepared {
            method: prepared.method.clone(),
            url: prepared.url.clone(),
            headers: prepared.headers.clone(),
            body: prepared.body.clone(),
            timeout: prepared.timeout,
        });
        let mut result =
            services
                .rt
                .block_on(services.http.send(policy, prepared, &credential_headers));
        // A 401 to a host-held token: the provider ended it early (revoked, rotated, a
        // session expired). Refresh once and send once more.
        if let (Ok(r), Some((decl, old)), Some(mut again)) = (&result, &oauth, again)
            && r.status == 401
        {
            let decl = decl.clone();
            let old = old.expose_secret().to_string();
            match self.oauth_token(&decl, Some(&old)) {
                Ok(token) => {
                    for (k, v) in &mut again.headers {
                        if k == "authorization" {
                            *v = format!("Bearer {}", token.expose_secret());
                        }
                    }
                    let scope = self.scope()?;
                    let services = scope.services.clone();
                    result = services.rt.block_on(services.http.send(
                        &scope.connector.policy,
                        again,
                        &credential_headers,
                    ));
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        let scope = self.scope()?;
        // A provider that echoes a secret of the tenant's back (a webhook URL with its Basic
        // credentials, a token in a debug field) shows the connector the placeholder instead.
        let echoes = echoable(scope, kept, oauth.as_ref(), &channel_tokens);
        let result = result.map(|mut r| {
            mask_echoes(&echoes, &mut r.body, &mut r.headers);
            r
        });
        let status = match &result {
            Ok(r) => r.status.to_string(),
            Err(Failure::Denied(_)) => "denied".into(),
            Err(Failure::Timeout) => "timeout".into(),
            Err(_) => "error".into(),
        };
        services
            .metrics
            .outbound_seconds(&origin, &status)
            .record(started.elapsed().as_secs_f64());
        Ok(match result {
            Ok(r) if !capture.is_empty() && (200..300).contains(&r.status) => {
                match captured(&capture, r.body) {
                    Ok((body, secrets)) => {
                        self.effects.credentials.extend(secrets);
                        Ok(HttpResponse {
                            status: r.status,
                            headers: r.headers,
                            body,
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(Failure::Denied(m)) => {
                tracing::warn!(tenant = %scope.tenant, connector = %scope.connector.id, "outbound request refused: {m}");
                Err(HttpError::Denied(m))
            }
            Err(Failure::Timeout) => Err(HttpError::Timeout),
            Err(Failure::TooLarge) => Err(HttpError::TooLarge),
            Err(Failure::Transport(m)) => Err(HttpError::Transport(m)),
        })
    }
}

impl HostState {
    /// The access token of an OAuth2 credential the connector declares, from the host's
    /// tokens service. A connection that needs reconnecting is remembered for the worker (the
    /// job waits for it instead of spending attempts) and refused to the guest.
    fn oauth_token(
        &mut self,
        decl: &crate::runtime::Oauth2Decl,
        rejected: Option<&str>,
    ) -> Result<secrecy::SecretString, HttpError> {
        let Ok(scope) = self.scope() else {
            return Err(HttpError::Denied("no invocation scope".into()));
        };
        let key = crate::store::ConnectionKey {
            tenant: scope.tenant.clone(),
            connector: scope.connector.id.clone(),
            credential: decl.name.clone(),
        };
        let services = scope.services.clone();
        let policy = &scope.connector.policy;
        // No longer than the invocation has left: a refresh another hub holds up is a retry.
        let left = scope.deadline.saturating_duration_since(Instant::now());
        let minted = services.rt.block_on(async {
            // The timer is made inside the runtime (`block_on` enters it).
            let mint = services
                .connections
                .access_token(decl, policy, &key, rejected);
            tokio::time::timeout(left, mint).await
        });
        let Ok(minted) = minted else {
            return Err(HttpError::Transport(format!(
                "the OAuth2 token `{}` was not ready within the invocation's time",
                decl.name
            )));
        };
        match minted {
            Ok(token) => Ok(token),
            Err(crate::connections::TokenError::NeedsReconnect(m)) => {
                let refused = format!("needs reconnecting: {m}");
                self.disconnected = Some(m);
                Err(HttpError::Denied(refused))
            }
            Err(crate::connections::TokenError::Retryable(m)) => Err(HttpError::Transport(m)),
            Err(crate::connections::TokenError::Permanent(m)) => Err(HttpError::Denied(m)),
        }
    }
}

/// What a captured secret reads as in the answer the connector sees.
const KEPT: &str = "(kept by the host)";

/// The shortest secret masked where an answer echoes it (shorter ones would mask ordinary text).
const MIN_ECHO: usize = 8;

/// The tenant's secrets this connector could see echoed, each with the placeholder that stands
/// for it: its declared credentials, those the invocation had the host keep, the OAuth2 token
/// just attached; for a `user:password`, the password alone too.
fn echoable(
    scope: &Scope,
    kept: &Kept,
    oauth: Option<&(crate::runtime::Oauth2Decl, secrecy::SecretString)>,
    channels: &[super::channels::ChannelToken],
) -> Vec<(zeroize::Zeroizing<String>, String)> {
    let mut out = Vec::new();
    let mut add = |value: &str, name: &str| {
        let placeholder = format!("{{credential:{name}}}");
        let mut push = |v: &str| {
            if v.len() >= MIN_ECHO {
                out.push((zeroize::Zeroizing::new(v.to_string()), placeholder.clone()));
            }
        };
        push(value);
        if let Some((_, password)) = value.split_once(':') {
            push(password);
        }
    };
    for field in &scope.connector.manifest.credentials {
        if let Some(value) = secret_text(scope, &field.name) {
            add(&value, &field.name);
        }
    }
    for (name, value) in kept {
        add(value.expose_secret(), name);
    }
    if let Some((decl, token)) = oauth {
        add(token.expose_secret(), &decl.name);
    }
    for (id, token) in channels {
        let placeholder = format!("{{channel-token:{id}}}");
        out.push((
            zeroize::Zeroizing::new(token.expose_secret().to_string()),
            placeholder,
        ));
    }
    // Longest first: a value that contains another is masked whole.
    out.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    out
}

/// Replaces every echoed secret in an answer's body (when it is text) and header values.
fn mask_echoes(
    echoes: &[(zeroize::Zeroizing<String>, String)],
    body: &mut Vec<u8>,
    headers: &mut [(String, String)],
) {
    if echoes.is_empty() {
        return;
    }
    let mask = |text: &str| -> Option<String> {
        let hit = echoes.iter().any(|(v, _)| text.contains(v.as_str()));
        hit.then(|| {
            echoes
                .iter()
                .fold(text.to_string(), |t, (v, p)| t.replace(v.as_str(), p))
        })
    };
    if let Ok(text) = std::str::from_utf8(body)
        && let Some(masked) = mask(text)
    {
        use zeroize::Zeroize as _;
        body.zeroize();
        *body = masked.into_bytes();
    }
    for (_, value) in headers.iter_mut() {
        if let Some(masked) = mask(value) {
            *value = masked;
        }
    }
}

/// Takes the secrets `capture` names out of a JSON answer: the body the connector may see, and
/// the credentials to keep. The answer's bytes are zeroized.
fn captured(
    capture: &[crate::runtime::bindings::hub::connector::types::Capture],
    body: Vec<u8>,
) -> Result<(Vec<u8>, Vec<KeptSecret>), HttpError> {
    let body = zeroize::Zeroizing::new(body);
    let mut json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        HttpError::Transport("the answer holding the secret to keep is not JSON".into())
    })?;
    let mut secrets = Vec::new();
    for c in capture {
        let value = json
            .pointer_mut(&c.pointer)
            .map(|slot| std::mem::replace(slot, serde_json::Value::String(KEPT.into())));
        match value {
            Some(serde_json::Value::String(secret)) if !secret.is_empty() => {
                secrets.push((c.credential.clone(), secrecy::SecretString::from(secret)));
            }
            _ => {
                return Err(HttpError::Transport(format!(
                    "the answer has no string at `{}` to keep as `{}`",
                    c.pointer, c.credential
                )));
            }
        }
    }
    Ok((serde_json::to_vec(&json).unwrap_or_default(), secrets))
}

impl HostState {
    /// `generate-credential`: a new random secret for a declared credential, kept with the
    /// invocation's effects.
    pub(super) fn generate(
        &mut self,
        name: &str,
        form: crate::runtime::bindings::hub::connector::types::SecretForm,
    ) -> wasmtime::Result<Result<(), String>> {
        use crate::runtime::bindings::hub::connector::types::SecretForm;
        let scope = self.scope()?;
        if !scope
            .connector
            .manifest
            .credentials
            .iter()
            .any(|f| f.name == name)
        {
            return Ok(Err(format!(
                "credential `{name}` is not declared in the connector's manifest"
            )));
        }
        let token = crate::secrets::generate_secret_token();
        let value = match form {
            SecretForm::Token => token,
            SecretForm::BasicAuth => {
                secrecy::SecretString::from(format!("hub:{}", token.expose_secret()))
            }
        };
        self.effects.credentials.push((name.to_string(), value));
        Ok(Ok(()))
    }
}

/// Fills `{credential:NAME}` placeholders in a URL (a webhook URL that is itself the secret).
/// Errors name the placeholder, never the value.
fn fill_credentials(scope: &Scope, kept: &Kept, url: &str) -> Result<String, HttpError> {
    const OPEN: &str = "{credential:";
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(HttpError::Denied(format!(
                "`{url}` has an unclosed {{credential:...}} placeholder"
            )));
        };
        let name = &after[..end];
        out.push_str(&request_credential(scope, kept, name)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A credential an outbound request names, as text. One the manifest does not declare is a
/// connector bug, refused with a message that says so (`hub check` asks tenants only for
/// declared credentials); one the tenant lacks is `unknown-credential`.
fn request_credential(scope: &Scope, kept: &Kept, name: &str) -> Result<String, HttpError> {
    let manifest = &scope.connector.manifest;
    if !manifest.credentials.iter().any(|c| c.name == name) {
        let declared: Vec<&str> = manifest
            .credentials
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(HttpError::Denied(format!(
            "credential `{name}` is not declared in the connector's manifest (it declares: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        )));
    }
    if let Some((_, value)) = kept.iter().rev().find(|(n, _)| n == name) {
        return Ok(value.expose_secret().to_string());
    }
    secret_text(scope, name).ok_or_else(|| HttpError::UnknownCredential(name.into()))
}

/// A credential an invocation had the host keep: its name and value.
type KeptSecret = (String, secrecy::SecretString);

/// The credentials this invocation had the host keep so far (its own, before they are sealed).
type Kept = [KeptSecret];

/// The credential as text for a header; `None` if missing or not UTF-8.
fn secret_text(scope: &Scope, name: &str) -> Option<String> {
    let secret = scope
        .services
        .vault
        .get(&scope.tenant, &scope.connector.id, name)?;
    String::from_utf8(secret.expose_secret().to_vec()).ok()
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

mod sha1_alias {
    pub use sha1::Sha1;
}
