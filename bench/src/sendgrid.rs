//! SendGrid Event Webhook batches (`--only sendgrid`): an in-process hub (`hub::build` + `run`,
//! the bundled SendGrid connector, its workers applying the events as they arrive) takes
//! batches of 1,000 events per request, each batch signed with ECDSA P-256 as SendGrid signs
//! (`plugin_sdk::schemes::sign_ecdsa_p256`) and verified by the hub, split and stored one
//! delivery per event in one group commit. Figure: events stored (acknowledged) per second,
//! over 4 connections. The goal: 50,000 events/s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hub::config::Config;
use hub::secrets::{Place, Vault};
use secrecy::SecretSlice;

use crate::load::{self, Maker, Req, Until};

/// Events per request, as SendGrid batches them.
pub const PER_BATCH: usize = 1_000;
/// The private key the bench signs with (any 32 bytes below the curve order).
const PRIVATE_KEY: [u8; 32] = [7; 32];

/// What the part measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Events acknowledged as stored.
    pub events: usize,
    /// Bytes per batch.
    pub batch_bytes: usize,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Answers that were not 200.
    pub failed: u64,
}

impl Figures {
    /// Events stored per second.
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let placeholder = format!("sealed:v1:{}", "A".repeat(84));
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1"
data_dir = "data"
body_limit = 4194304
rate_limit = {{ per_second = 1000000, burst = 1000000 }}

[connectors.sendgrid]
builtin = true

[tenants.bench.connectors.sendgrid]
config = {{ from = "Bench <bench@example.com>" }}
[tenants.bench.connectors.sendgrid.credentials]
webhook_public_key = "{placeholder}"
api_key = "{placeholder}"
"#
    );
    Ok(Config::from_str(&toml, &dir.join("hub.toml"))?)
}

fn vault(public_key: &str) -> Vault {
    let mut vault = Vault::new();
    for (field, value) in [("webhook_public_key", public_key), ("api_key", "SG.bench")] {
        vault.insert(
            Place::Tenant {
                tenant: "bench".into(),
                connector: "sendgrid".into(),
                field: field.into(),
            },
            SecretSlice::from(value.as_bytes().to_vec()),
        );
    }
    vault
}

/// A request's headers and body.
type Signed = (Vec<(&'static str, String)>, Bytes);

/// Batch `b`: 1,000 events with ids unique across the run, signed.
fn batch(b: usize, timestamp: &str) -> Signed {
    let kinds = ["processed", "delivered", "open", "click", "deferred"];
    let events: Vec<serde_json::Value> = (0..PER_BATCH)
        .map(|i| {
            let n = b * PER_BATCH + i;
            serde_json::json!({
                "email": format!("user{}@example.com", n % 5_000),
                "timestamp": 1_767_225_600 + n as u64,
                "event": kinds[n % kinds.len()],
                "sg_event_id": format!("bench-{n:09}"),
                "sg_message_id": format!("msg{:07}.filter0001.16648.5515E0B88.0", n / 5),
                "smtp-id": format!("<msg{:07}@example.com>", n / 5),
                "category": ["follow_up"],
                "hub_key": format!("route:bench:{}", n / 5),
            })
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap_or_default();
    let signature =
        plugin_sdk::schemes::sign_ecdsa_p256(&PRIVATE_KEY, timestamp, &body).unwrap_or_default();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-twilio-email-event-webhook-signature", signature),
        (
            "x-twilio-email-event-webhook-timestamp",
            timestamp.to_string(),
        ),
    ];
    (headers, Bytes::from(body))
}

/// `batches` batches over 4 connections, after a warm-up of 5.
pub async fn run(quick: bool) -> anyhow::Result<Figures> {
    let batches = if quick { 60 } else { 300 };
    let public_key = plugin_sdk::schemes::ecdsa_p256_public_key(&PRIVATE_KEY)
        .ok_or_else(|| anyhow::anyhow!("the bench key is not a P-256 key"))?;
    let dir = tempfile::tempdir()?;
    let hub = hub::build(config(dir.path())?, vault(&public_key)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hub::run(hub.clone(), listener, async {
        let _ = stopped.await;
    }));
    let timestamp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
    .to_string();
    let warmup = 5;
    let signed: Arc<Vec<Signed>> = Arc::new(
        (0..warmup + batches)
            .map(|b| batch(b, &timestamp))
            .collect(),
    );
    let batch_bytes = signed[0].1.len();
    let maker = |offset: usize| -> Maker {
        let signed = signed.clone();
        Arc::new(move |seq: u64| {
            let (headers, body) = &signed[offset + seq as usize];
            Req {
                path: "/hooks/bench/sendgrid/events".into(),
                headers: headers.clone(),
                body: body.clone(),
            }
        })
    };
    load::run(addr, 1, Until::Count(warmup as u64), maker(0)).await;
    let o = load::run(addr, 4, Until::Count(batches as u64), maker(warmup)).await;
    let _ = stop.send(());
    let _ = server.await;
    let failed = o.bad_status.values().sum::<u64>() + o.io_errors;
    Ok(Figures {
        events: o.ok as usize * PER_BATCH,
        batch_bytes,
        elapsed: o.elapsed,
        failed,
    })
}
