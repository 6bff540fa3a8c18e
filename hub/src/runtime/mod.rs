//! The sandbox: the only module that touches wasmtime.
//!
//! One [`Engine`](wasmtime::Engine) for the process, with the pooling allocator and epoch
//! interruption. Each connector component is compiled once and cached on disk (keyed by the
//! SHA-256 of its bytes and the engine's compatibility hash), pre-linked into an `InstancePre`,
//! and asked to describe itself. Every invocation then gets a fresh `Store` with a memory cap,
//! an epoch deadline and a wall-clock timeout, runs on a blocking thread (a niced background one
//! for queue work, see `background`), and is dropped. WASI is linked with nothing granted: no
//! files, no environment, no arguments, no sockets; clocks and randomness only. A trap, a loop or
//! a memory grab fails that one invocation.

mod background;
mod calls;
mod channels;
mod host;
pub mod outbound;

pub use calls::Call;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store as WasmStore,
    StoreLimitsBuilder,
};

pub use host::{HostState, MAX_HOST_CALLS};

use crate::id::{ConnectorId, TenantId};
use crate::secrets::Vault;
use crate::store::{Effects, Store};

/// A tenant's config for one connector (`[tenants.T.connectors.C]`), as its invocations see it.
pub type ConfigMap = Arc<serde_json::Map<String, serde_json::Value>>;

/// Host bindings generated from `plugin-sdk/wit`.
pub mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        world: "connector",
        path: "../plugin-sdk/wit",
        imports: { default: trappable },
    });
}

pub use bindings::hub::connector::types::{
    ActionDecl, ChannelHeaders, Delivery, Error as ConnectorError, FieldDecl, HashAlgorithm,
    HmacScheme, HmacTimestamp, MacEncoding, Manifest, Oauth2ClientAuth, Oauth2Decl, Oauth2Grant,
    Outcome, Reply, Retryable, Route, Selector, SignatureScheme, TenantLookup, TokenLocation,
    ToolCalls,
};
pub use channels::token_digest as channel_token_digest;

/// How often the epoch ticks; deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How much of a memory or table a finished instance leaves resident, zeroed (see `Runtime::new`).
const KEEP_RESIDENT: usize = 2 << 20;

/// A runtime failure that is not the connector's answer.
#[derive(Debug)]
pub enum RuntimeError {
    /// The component could not be compiled, linked or described.
    Load {
        /// Connector id.
        connector: String,
        /// What failed, with its causes.
        message: String,
        /// The engine's error, when it gave one.
        cause: Option<wasmtime::Error>,
    },
    /// The engine or cache could not be set up.
    Setup {
        /// What failed, with its causes.
        message: String,
        /// The engine's error, when it gave one.
        cause: Option<wasmtime::Error>,
    },
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeError::Load {
                connector, message, ..
            } => write!(f, "connector `{connector}`: {message}"),
            RuntimeError::Setup { message, .. } => write!(f, "runtime setup: {message}"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let (RuntimeError::Load { cause, .. } | RuntimeError::Setup { cause, .. }) = self;
        cause.as_ref().map(|e| {
            let e: &(dyn std::error::Error + Send + Sync + 'static) = e.as_ref();
            e as &(dyn std::error::Error + 'static)
        })
    }
}

impl RuntimeError {
    /// A setup failure the engine explains.
    fn setup(what: &str, e: wasmtime::Error) -> RuntimeError {
        RuntimeError::Setup {
            message: format!("{what}{e:#}"),
            cause: Some(e),
        }
    }
}

/// Why an invocation produced no answer from the connector.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The connector answered with an error of its own.
    Connector(ConnectorError),
    /// The connector trapped: a panic, out of memory, a stack overflow, or its time ran out.
    Trapped(String),
    /// The hub could not run it (unknown connector, shutting down).
    Unavailable(String),
    /// It failed needing an OAuth2 connection that needs reconnecting (the provider refused
    /// the grant, or it was never connected): the job waits for it, spending no attempt.
    Disconnected(String),
}

impl std::error::Error for CallError {}

/// How a declined call's error begins: the rest is the connector's sentence for whoever asked
/// (`ConnectorError::Declined`), which a tool call answers as it is.
pub const DECLINED: &str = "declined: ";

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connector(ConnectorError::Retryable(r)) => {
                write!(f, "retryable: {}", r.message)
            }
            CallError::Connector(ConnectorError::Permanent(m)) => write!(f, "permanent: {m}"),
            CallError::Connector(ConnectorError::BadRequest(m)) => write!(f, "bad request: {m}"),
            CallError::Connector(ConnectorError::Declined(m)) => write!(f, "{DECLINED}{m}"),
            CallError::Trapped(m) => write!(f, "connector crashed: {m}"),
            CallError::Unavailable(m) => write!(f, "unavailable: {m}"),
            CallError::Disconnected(m) => write!(f, "waiting for a reconnection: {m}"),
        }
    }
}

/// The result of one invocation with the writes it buffered.
pub struct Called<T> {
    /// The connector's answer, or why there is none.
    pub result: Result<T, CallError>,
    /// Buffered writes; commit them only if the result is a success.
    pub effects: Effects,
    /// Wall time of the invocation.
    pub elapsed: Duration,
}

impl<T> Called<T> {
    /// The same invocation with its answer mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Called<U> {
        Called {
            result: self.result.map(f),
            effects: self.effects,
            elapsed: self.elapsed,
        }
    }
}

/// Per-connector limits and outbound policy, as the operator configured them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Linear memory cap (bytes).
    pub memory_bytes: usize,
    /// Wall-time limit per invocation.
    pub timeout: Duration,
    /// Origins the operator allows.
    pub allow_hosts: Vec<String>,
    /// Declared origin -> stand-in URL.
    pub stand_ins: Vec<(String, String)>,
}

/// A loaded connector: compiled, linked, described.
pub struct Loaded {
    /// Connector id (its key in `hub.toml`).
    pub id: ConnectorId,
    /// What it declared.
    pub manifest: Manifest,
    /// Its limits.
    pub settings: Settings,
    /// Outbound policy (declared ∩ allowed).
    pub policy: outbound::Policy,
    pre: bindings::ConnectorPre<HostState>,
}

/// Shared services host functions use.
pub struct Services {
    /// The database.
    pub store: Store,
    /// Opened credentials.
    pub vault: Arc<Vault>,
    /// The OAuth2 tokens the host holds.
    pub connections: Arc<crate::connections::Connections>,
    /// Outbound HTTP.
    pub http: outbound::Client,
    /// To run async work from host functions (which run on blocking threads).
    pub rt: tokio::runtime::Handle,
    /// The public base URL, without a trailing slash.
    pub public_base: String,
    /// Each tenant's `phone_country_code`, for the phone lookups its connectors set and find.
    pub phone_codes: HashMap<TenantId, String>,
    /// Where outbound calls' latency goes (`hub_outbound_seconds`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The sandbox runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    connectors: Arc<HashMap<ConnectorId, Arc<Loaded>>>,
    services: Option<Arc<Services>>,
    permits: Arc<Semaphore>,
    background: background::Background,
    cache_dir: PathBuf,
}

/// Which threads run an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone waits for the answer (a `sync-reply` route): tokio's blocking threads.
    Answer,
    /// Queue work: the niced background threads (see `background`).
    Background,
}

/// Sizing for the instance pool.
#[derive(Debug, Clone)]
pub struct PoolSize {
    /// Invocations that may run at once.
    pub concurrency: usize,
    /// Largest memory any connector may have (bytes).
    pub max_memory_bytes: usize,
}

impl Runtime {
    /// Creates the engine and its epoch ticker.
    ///
    /// # Errors
    /// When the engine cannot be configured or the cache folder created.
    pub fn new(cache_dir: &Path, pool: &PoolSize) -> Result<Runtime, RuntimeError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        let n = pool.concurrency.max(1) as u32;
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(pool.max_memory_bytes)
            // A finished instance's memory is reset by zeroing the pages it dirtied (found with
            // Linux's PAGEMAP_SCAN, 6.7 and later) rather than `madvise`: dropping pages from
            // the address space made the kernel interrupt the other core to flush its TLB, on
            // every invocation. Past 2 MiB (a memory bomb) it is `madvise` again, so RSS stays
            // bounded; on older kernels the option is off and nothing changes.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        // Keep virtual-memory reservations modest: 2 x the largest memory, not the 4 GiB default.
        config.memory_reservation(
            (pool.max_memory_bytes as u64)
                .saturating_mul(2)
                .max(1 << 24),
        );
        config.memory_guard_size(1 << 16);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::setup("", e))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("hub-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Setup {
                message: e.to_string(),
                cause: None,
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::setup("", e))?;
        bindings::Connector::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::setup("", e))?;
        crate::files::private_dir(cache_dir).map_err(|e| RuntimeError::Setup {
            message: format!("cannot create {}: {e}", cache_dir.display()),
            cause: None,
        })?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            connectors: Arc::new(HashMap::new()),
            services: None,
            permits: Arc::new(Semaphore::new(pool.concurrency.max(1))),
            background: background::Background::new(pool.concurrency.max(1)),
            cache_dir: cache_dir.to_owned(),
        })
    }

    /// Attaches the services host functions use (done once, before serving).
    pub fn with_services(mut self, services: Services) -> Runtime {
        self.services = Some(Arc::new(services));
        self
    }

    /// Compiles (or loads from the cache), links and describes a connector, then adds it.
    ///
    /// # Errors
    /// When the bytes are not a valid component for this contract, or `describe` fails.
    pub fn load(
        &mut self,
        id: ConnectorId,
        bytes: &[u8],
        settings: Settings,
    ) -> Result<Arc<Loaded>, RuntimeError> {
        let err = |message: String| RuntimeError::Load {
            connector: id.to_string(),
            message,
            cause: None,
        };
        let engine_err = |what: &str, e: wasmtime::Error| RuntimeError::Load {
            connector: id.to_string(),
            message: format!("{what}{e:#}"),
            cause: Some(e),
        };
        let component = self.compile_cached(bytes).map_err(|e| engine_err("", e))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| engine_err("does not fit the hub's contract: ", e))?;
        let pre = bindings::ConnectorPre::new(pre)
            .map_err(|e| engine_err("does not export the handler: ", e))?;
        let mut store = self.new_store(&settings, None);
        let manifest = pre
            .instantiate(&mut store)
            .and_then(|c| c.hub_connector_handler().call_describe(&mut store))
            .map_err(|e| err(format!("describe failed: {}", trap_message(&e, &settings))))?;
        check_manifest(&manifest).map_err(err)?;
        let policy = outbound::Policy::new(
            &manifest.outbound_hosts,
            &settings.allow_hosts,
            &settings.stand_ins,
        )
        .map_err(|e| err(format!("outbound hosts: {e}")))?;
        let loaded = Arc::new(Loaded {
            id: id.clone(),
            manifest,
            settings,
            policy,
            pre,
        });
        Arc::make_mut(&mut self.connectors).insert(id, loaded.clone());
        Ok(loaded)
    }

    fn compile_cached(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let digest = hex::encode(Sha256::digest(bytes));
        let path = self
            .cache_dir
            .join(format!("{}-{:016x}.cwasm", &digest[..32], h.finish()));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this engine configuration
            // into the hub's own data directory, named by the content hash of its source and the
            // engine's compatibility hash. It is trusted like the hub binary itself.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "ignoring unreadable compile cache {}: {e:#}",
                    path.display()
                ),
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if crate::files::write_private(&tmp, &component.serialize()?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("could not write compile cache {}", path.display());
        }
        Ok(component)
    }

    fn new_store(&self, settings: &Settings, scope: Option<host::Scope>) -> WasmStore<HostState> {
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(settings.memory_bytes)
            .instances(16)
            .tables(32)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            wasi,
            table: wasmtime::component::ResourceTable::new(),
            limits,
            scope,
            effects: Effects::default(),
            host_calls: 0,
            buffered: 0,
            disconnected: None,
            channel_tokens: Vec::new(),
        };
        let mut store = WasmStore::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (settings.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// A loaded connector by id.
    pub fn connector(&self, id: &str) -> Option<&Arc<Loaded>> {
        self.connectors.get(id)
    }

    /// All loaded connectors.
    pub fn connectors(&self) -> impl Iterator<Item = &Arc<Loaded>> {
        self.connectors.values()
    }

    /// Runs `f` against a fresh instance of the call's connector for its tenant, on threads of
    /// its priority. The hub's own modules go through the typed calls (`handle_delivery`,
    /// `run_action`...); this closure form is for measuring the guest call alone (`hub-bench`).
    pub async fn invoke<T, F>(&self, call: Call<'_>, f: F) -> Called<T>
    where
        T: Send + 'static,
        F: FnOnce(
                &mut WasmStore<HostState>,
                &bindings::Connector,
            ) -> wasmtime::Result<Result<T, ConnectorError>>
            + Send
            + 'static,
    {
        let started = Instant::now();
        let unavailable = |m: String| Called {
            result: Err(CallError::Unavailable(m)),
            effects: Effects::default(),
            elapsed: started.elapsed(),
        };
        let Call {
            priority,
            tenant,
            connector,
            config,
        } = call;
        let Some(loaded) = self.connectors.get(connector).cloned() else {
            return unavailable(format!("connector `{connector}` is not loaded"));
        };
        let Some(services) = self.services.clone() else {
            return unavailable("the runtime has no services attached".into());
        };
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return unavailable("the runtime is shutting down".into());
        };
        let timeout = loaded.settings.timeout;
        let scope = host::Scope {
            tenant: tenant.clone(),
            connector: loaded.clone(),
            config,
            services,
            deadline: Instant::now() + timeout,
        };
        let mut store = self.new_store(&loaded.settings, Some(scope));
        let settings = loaded.settings.clone();
        // Entered on the invocation's thread, so the host's outbound calls are its children.
        let span = if crate::telemetry::within() {
            tracing::info_span!(target: crate::telemetry::TARGET, "invoke",
                otel.name = %format_args!("invoke {}", loaded.id), connector = %loaded.id,
                tenant = %tenant, outcome = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        let run = move || {
            let _permit = permit;
            let _entered = span.enter();
            let result = loaded
                .pre
                .instantiate(&mut store)
                .and_then(|instance| f(&mut store, &instance));
            let effects = std::mem::take(&mut store.data_mut().effects);
            let disconnected = store.data_mut().disconnected.take();
            let result = match result {
                Ok(Ok(v)) => Ok(v),
                // It failed for want of a connection that needs reconnecting: say so, so the
                // job waits for it.
                Ok(Err(_)) if disconnected.is_some() => {
                    Err(CallError::Disconnected(disconnected.unwrap_or_default()))
                }
                Ok(Err(e)) => Err(CallError::Connector(e)),
                Err(e) => Err(CallError::Trapped(trap_message(&e, &settings))),
            };
            if !span.is_disabled() {
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(CallError::Disconnected(_)) => "disconnected",
                    Err(CallError::Connector(_)) => "connector error",
                    Err(_) => "trapped",
                };
                span.record("outcome", outcome);
                if result.is_err() {
                    crate::telemetry::failed(&span, outcome);
                }
            }
            (result, effects)
        };
        let task = async {
            match priority {
                Priority::Answer => tokio::task::spawn_blocking(run)
                    .await
                    .map_err(|e| e.to_string()),
                Priority::Background => self
                    .background
                    .spawn(run)
                    .await
                    .map_err(|_| "the invocation panicked".to_string()),
            }
        };
        // The epoch deadline stops guest code; host calls are capped by the same deadline. This
        // outer timeout is the backstop, with a grace period for the guest to be interrupted.
        match tokio::time::timeout(timeout + Duration::from_secs(2), task).await {
            Ok(Ok((result, effects))) => Called {
                result,
                effects,
                elapsed: started.elapsed(),
            },
            Ok(Err(join)) => Called {
                result: Err(CallError::Trapped(format!(
                    "invocation thread failed: {join}"
                ))),
                effects: Effects::default(),
                elapsed: started.elapsed(),
            },
            Err(_) => Called {
                result: Err(CallError::Trapped(format!(
                    "exceeded its time limit of {} ms",
                    timeout.as_millis()
                ))),
                effects: Effects::default(),
                elapsed: started.elapsed(),
            },
        }
    }
}

/// What a manifest must agree with itself on: every verified route names a credential the
/// manifest declares (so `hub check` asks each tenant for it). The SDK's harness checks the same.
fn check_manifest(m: &Manifest) -> Result<(), String> {
    for r in &m.routes {
        if let SignatureScheme::Hmac(h) = &r.signature {
            crate::ingress::verify::declared(h)
                .check()
                .map_err(|e| format!("route `{}`'s hmac scheme: {e}", r.name))?;
        }
        let verified = !matches!(
            r.signature,
            SignatureScheme::None | SignatureScheme::Custom | SignatureScheme::Channel(_)
        );
        if verified && !m.credentials.iter().any(|c| c.name == r.credential) {
            return Err(format!(
                "route `{}` is verified with credential `{}`, which the manifest does not declare in `credentials`",
                r.name, r.credential
            ));
        }
    }
    for j in &m.jobs {
        if let Some(cron) = &j.schedule {
            cron.parse::<cron::Schedule>().map_err(|e| {
                format!(
                    "job `{}`'s schedule `{cron}` is not a cron expression with seconds (`sec min hour day month weekday`): {e}",
                    j.name
                )
            })?;
        }
    }
    for a in &m.actions {
        let Some(id) = &a.implements else { continue };
        let Some(op) = plugin_sdk::capability::operation(id) else {
            let known: Vec<&str> = plugin_sdk::capability::CAPABILITIES
                .iter()
                .flat_map(|c| c.operations)
                .map(|o| o.id)
                .collect();
            return Err(format!(
                "action `{}` implements `{id}`, which is no capability operation (there are: {})",
                a.name,
                known.join(", ")
            ));
        };
        let inputs: Vec<(&str, bool)> = a
            .inputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        plugin_sdk::capability::conforms(op, &inputs)
            .map_err(|e| format!("action `{}`: {e}", a.name))?;
        let outputs: Vec<(&str, bool)> = a
            .outputs
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        plugin_sdk::capability::answers(op, &outputs)
            .map_err(|e| format!("action `{}`: {e}", a.name))?;
        if let Some(other) = m
            .actions
            .iter()
            .find(|b| b.name != a.name && b.implements.as_deref() == Some(id))
        {
            return Err(format!(
                "actions `{}` and `{}` both implement `{id}`: one action per operation",
                a.name, other.name
            ));
        }
    }
    Ok(())
}

/// The action of `m` that performs capability operation `op` (`email:send`).
pub fn implementing<'m>(m: &'m Manifest, op: &str) -> Option<&'m ActionDecl> {
    m.actions
        .iter()
        .find(|a| a.implements.as_deref() == Some(op))
}

/// A readable reason for a trap.
fn trap_message(e: &wasmtime::Error, settings: &Settings) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => format!(
                "exceeded its time limit of {} ms",
                settings.timeout.as_millis()
            ),
            wasmtime::Trap::StackOverflow => "stack overflow".to_string(),
            // Rust guests keep their stack in linear memory: deep recursion runs off its start.
            wasmtime::Trap::MemoryOutOfBounds => {
                "out-of-bounds memory access (stack overflow in the guest, or a guest bug)"
                    .to_string()
            }
            wasmtime::Trap::UnreachableCodeReached => {
                "panicked (unreachable code reached)".to_string()
            }
            other => format!("trapped: {other}"),
        };
    }
    let text = format!("{e:#}");
    if text.contains("forcing trap when growing memory")
        || text.contains("memory") && text.contains("limit")
    {
        return format!(
            "exceeded its memory limit of {} MiB",
            settings.memory_bytes / (1024 * 1024)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::bindings::hub::connector::types::FieldDecl;
    use super::*;

    fn manifest(actions: Vec<ActionDecl>) -> Manifest {
        Manifest {
            name: "mailer".into(),
            version: "0.1.0".into(),
            description: String::new(),
            routes: vec![],
            events: vec![],
            actions,
            jobs: vec![],
            config: vec![],
            credentials: vec![],
            oauth2: Vec::new(),
            outbound_hosts: vec![],
        }
    }

    fn action(name: &str, implements: Option<&str>, inputs: &[(&str, bool)]) -> ActionDecl {
        ActionDecl {
            name: name.into(),
            description: String::new(),
            inputs: inputs
                .iter()
                .map(|(n, r)| FieldDecl {
                    name: (*n).into(),
                    description: String::new(),
                    required: *r,
                })
                .collect(),
            outputs: vec![FieldDecl {
                name: "id".into(),
                description: String::new(),
                required: true,
            }],
            implements: implements.map(str::to_string),
        }
    }

    const SMS: &[(&str, bool)] = &[("to", true), ("body", false), ("media_url", false)];

    #[test]
    fn an_action_that_claims_an_operation_must_take_its_inputs() {
        let good = manifest(vec![action("send", Some("sms:send"), SMS)]);
        assert_eq!(check_manifest(&good), Ok(()));
        assert_eq!(
            implementing(&good, "sms:send").map(|a| a.name.as_str()),
            Some("send")
        );
        let missing = manifest(vec![action(
            "send",
            Some("sms:send"),
            &[("to", true), ("body", false)],
        )]);
        let e = check_manifest(&missing).unwrap_err();
        assert!(e.contains("takes no input `media_url`"), "{e}");
        let unknown = manifest(vec![action("fax", Some("fax:send"), SMS)]);
        let e = check_manifest(&unknown).unwrap_err();
        assert!(
            e.contains("`fax:send`, which is no capability operation"),
            "{e}"
        );
        let twice = manifest(vec![
            action("send", Some("sms:send"), SMS),
            action("send_too", Some("sms:send"), SMS),
        ]);
        let e = check_manifest(&twice).unwrap_err();
        assert!(e.contains("both implement `sms:send`"), "{e}");
    }
}
