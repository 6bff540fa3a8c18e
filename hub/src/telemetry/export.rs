//! Where ended spans go: a bounded queue ([`Queue`], never blocking the span's end), drained in
//! batches by a task that hands them to the OTLP exporter; and the sample ratio ([`roll`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

use crate::config::TelemetryConfig;

/// Spans waiting for the exporter; past this many, a span is dropped (and counted).
const QUEUE: usize = 8192;
/// The most spans in one export request.
const BATCH: usize = 512;
/// How long a span may wait for a fuller batch.
const LINGER: Duration = Duration::from_millis(500);
/// One export request's limit; the collector being slow never holds anything else up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static SENDER: OnceLock<mpsc::Sender<SpanData>> = OnceLock::new();
/// The sampled share of new traces, as `f64` bits.
static RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0

static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// What became of the spans so far (for `/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Accepted by the collector.
    pub exported: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Lost in an export the collector refused or never answered.
    pub failed: u64,
}

/// The counts now.
pub fn counts() -> Counts {
    Counts {
        exported: EXPORTED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
    }
}

/// The span processor: each ended, sampled span goes to the queue if there is room.
#[derive(Debug)]
pub(super) struct Queue;

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let Some(sender) = SENDER.get() else { return };
        if sender.try_send(span).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Whether a new trace is recorded, at the configured ratio.
pub(super) fn roll() -> bool {
    let ratio = f64::from_bits(RATIO.load(Ordering::Relaxed));
    ratio >= 1.0 || rand::random::<f64>() < ratio
}

/// Builds the exporter and starts the task that feeds it.
pub(super) fn start(config: &TelemetryConfig, http: reqwest::Client) -> anyhow::Result<()> {
    RATIO.store(config.sample_ratio.to_bits(), Ordering::Relaxed);
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Reqwest(http))
        .with_endpoint(config.endpoint.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let (tx, rx) = mpsc::channel(QUEUE);
    if SENDER.set(tx).is_err() {
        anyhow::bail!("traces are already being exported");
    }
    tokio::spawn(drain(exporter, rx));
    Ok(())
}

/// Sends the queue's spans in batches of up to [`BATCH`], each waiting at most [`LINGER`].
async fn drain(exporter: opentelemetry_otlp::SpanExporter, mut rx: mpsc::Receiver<SpanData>) {
    let mut warned_at: Option<std::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match exporter.export(batch).await {
            Ok(()) => {
                EXPORTED.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                FAILED.fetch_add(n, Ordering::Relaxed);
                // One line a minute at most: a collector that is down says so without flooding.
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warned_at = Some(std::time::Instant::now());
                    tracing::warn!("traces: the collector did not take {n} spans: {e}");
                }
            }
        }
    }
}

/// The hub's own HTTP client as the exporter's transport (no second HTTP stack).
#[derive(Debug)]
struct Reqwest(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Reqwest {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .timeout(EXPORT_TIMEOUT)
            .send()
            .await?;
        let mut out = Response::builder().status(response.status());
        for (k, v) in response.headers() {
            out = out.header(k, v);
        }
        let body = response.bytes().await?;
        Ok(out.body(body)?)
    }
}
