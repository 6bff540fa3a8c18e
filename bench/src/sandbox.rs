//! The sandbox in-process, one invocation after another: `Runtime::invoke` exactly as the
//! worker calls it (fresh `Store` + instance per call, on a blocking thread, dropped after), for
//! a near-empty call (the `probe` fixture ignoring an unknown op) and for the Retell connector
//! handling a `call_started` webhook; and the Retell connector's own logic compiled natively,
//! called directly on the same body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use hub::id::{ConnectorId, TenantId};
use hub::runtime::{Call, Delivery, PoolSize, Priority, Runtime, Services, Settings, outbound};
use hub::secrets::Vault;
use hub::store::Store;
use retell::merge::{due_events, merge};
use retell::model::{CallObject, Envelope};
use retell::normalize::normalize;
use retell::webhook::{Kind, classify, foreign_agent, needs_fetch};

/// Sorted samples of one measurement.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// The samples, sorted.
    pub(crate) fn of(v: Vec<Duration>) -> Samples {
        Samples::from(v)
    }

    fn from(mut v: Vec<Duration>) -> Samples {
        v.sort_unstable();
        Samples(v)
    }

    /// The `q` quantile, in microseconds.
    pub fn us(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((self.0.len() - 1) as f64 * q).round() as usize;
        self.0[i].as_secs_f64() * 1e6
    }

    /// The mean, in microseconds.
    pub fn mean_us(&self) -> f64 {
        let total: Duration = self.0.iter().sum();
        total.as_secs_f64() * 1e6 / self.0.len().max(1) as f64
    }

    /// Calls per second on one thread, from the mean.
    pub fn per_sec(&self) -> f64 {
        1e6 / self.mean_us()
    }
}

/// What the in-process measurements found.
pub struct Figures {
    /// `probe`, unknown op: the whole `invoke` (store, instantiate, call, drop, thread hops).
    pub probe_invoke: Samples,
    /// The same, only the guest call (inside the instance).
    pub probe_call: Samples,
    /// Retell `call_started`: the whole `invoke`.
    pub retell_invoke: Samples,
    /// The same, only the guest call, with its host calls.
    pub retell_call: Samples,
    /// The Retell logic compiled natively, on the same body.
    pub native: Samples,
    /// Body size used for Retell.
    pub body_len: usize,
}

fn delivery(body: Vec<u8>) -> Delivery {
    Delivery {
        id: "1".into(),
        route: String::new(),
        method: "POST".into(),
        url: "http://127.0.0.1/hooks/bench/retell".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        received_at_ms: 0,
    }
}

/// `handle_delivery` of `connector` once; (whole invoke, guest call only).
async fn invoke_once(
    runtime: &Runtime,
    connector: &str,
    config: &Arc<serde_json::Map<String, serde_json::Value>>,
    body: &[u8],
) -> anyhow::Result<(Duration, Duration)> {
    let d = delivery(body.to_vec());
    let started = Instant::now();
    let (tenant, connector_id): (TenantId, ConnectorId) = ("bench".parse()?, connector.parse()?);
    let call = Call {
        priority: Priority::Background,
        tenant: &tenant,
        connector: &connector_id,
        config: config.clone(),
    };
    let called = runtime
        .invoke(call, move |store, c| {
            let t = Instant::now();
            let r = c.hub_connector_handler().call_handle_delivery(store, &d);
            let took = t.elapsed();
            r.map(|r| r.map(|_| took))
        })
        .await;
    let whole = started.elapsed();
    let call = called
        .result
        .map_err(|e| anyhow::anyhow!("{connector}: {e}"))?;
    Ok((whole, call))
}

/// The Retell connector's handling of one call webhook, natively: what `webhook::handle` and
/// `store::save_call` do, with the host calls replaced by what they return here (no config, no
/// stored record) and the record and event serialized as `records::upsert` and `publish` do.
pub fn native_once(body: &[u8], tenant: &str) -> anyhow::Result<(String, Vec<String>)> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    let event = envelope.event.clone();
    anyhow::ensure!(classify(&event) == Kind::Call, "not a call event");
    let call: CallObject = serde_json::from_value(envelope.call.context("no call")?)?;
    let agent_ids: Option<Vec<String>> = None;
    anyhow::ensure!(
        foreign_agent(agent_ids.as_deref(), call.agent_id.as_deref()).is_none(),
        "foreign agent"
    );
    let mut record = merge(None, &event, &call);
    anyhow::ensure!(!needs_fetch(&event, &record), "would fetch");
    let mut events = Vec::new();
    for name in due_events(&record) {
        events.push(serde_json::to_string(&normalize(&record, tenant))?);
        record.published.push(name.to_string());
    }
    Ok((serde_json::to_string(&record)?, events))
}

/// Runs the measurements: `iterations` of each after a warm-up.
///
/// # Errors
/// When a connector cannot be loaded or an invocation fails.
pub fn run(iterations: usize, retell_body: Vec<u8>) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Sized as `hub serve` sizes it with the default 16 workers and 64 MiB connectors.
        let pool = PoolSize {
            concurrency: 16 * 2 + 16,
            max_memory_bytes: 64 << 20,
        };
        let mut runtime = Runtime::new(&dir.path().join("compiled"), &pool)?;
        let settings = Settings {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            allow_hosts: vec![],
            stand_ins: vec![],
        };
        let probe = std::path::Path::new(hub::state::builtin::GUEST_WASM_DIR).join("probe.wasm");
        let probe =
            std::fs::read(&probe).with_context(|| format!("reading {}", probe.display()))?;
        runtime.load("probe".parse()?, &probe, settings.clone())?;
        let retell = hub::state::builtin::BUILTIN
            .iter()
            .find(|(n, _)| *n == "retell")
            .context("no built-in retell connector")?
            .1;
        runtime.load("retell".parse()?, retell, settings)?;
        let store = Store::open(&dir.path().join("data"))?;
        let (vault, http) = (Arc::new(Vault::new()), outbound::Client::new()?);
        let connections = hub::connections::Connections::new(
            store.clone(),
            http.clone(),
            vault.clone(),
            None,
            None,
        );
        let runtime = runtime.with_services(Services {
            store,
            vault,
            connections: Arc::new(connections),
            http,
            rt: tokio::runtime::Handle::current(),
            public_base: "http://127.0.0.1".into(),
            phone_codes: Default::default(),
            metrics: Default::default(),
        });
        let config = Arc::new(serde_json::Map::new());
        let noop = br#"{"op":"noop"}"#.to_vec();

        let measure = async |connector: &str, body: &[u8]| -> anyhow::Result<(Samples, Samples)> {
            for _ in 0..200 {
                invoke_once(&runtime, connector, &config, body).await?;
            }
            let (mut whole, mut call) = (Vec::new(), Vec::new());
            for _ in 0..iterations {
                let (w, c) = invoke_once(&runtime, connector, &config, body).await?;
                whole.push(w);
                call.push(c);
            }
            Ok((Samples::from(whole), Samples::from(call)))
        };
        let (probe_invoke, probe_call) = measure("probe", &noop).await?;
        let (retell_invoke, retell_call) = measure("retell", &retell_body).await?;

        native_once(&retell_body, "bench")?;
        let mut native = Vec::with_capacity(iterations * 10);
        for _ in 0..iterations * 10 {
            let t = Instant::now();
            std::hint::black_box(native_once(std::hint::black_box(&retell_body), "bench")?);
            native.push(t.elapsed());
        }
        Ok(Figures {
            probe_invoke,
            probe_call,
            retell_invoke,
            retell_call,
            native: Samples::from(native),
            body_len: retell_body.len(),
        })
    })
}
