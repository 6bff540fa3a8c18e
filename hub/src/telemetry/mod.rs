//! Traces: the hub's own spans, as OpenTelemetry spans exported over OTLP/HTTP (protobuf) when
//! `[server.telemetry]` names a collector.
//!
//! Only spans of the target [`TARGET`] are exported: the ones written for it, whose fields are
//! ids, names and outcomes (never a payload, a header value, a URL path or a secret). With no
//! collector configured a span of that target is a disabled callsite (one atomic load), and no
//! trace context is made, stored or sent.
//!
//! One trace follows a webhook: the request (continuing the provider's `traceparent`), its
//! verification and storing, each job it leads to (the context travels in the job's stored task,
//! see [`crate::store::NewJob::trace`]), the connector's invocation, each outbound call (which
//! carries `traceparent` onward) and the signed webhook to the app (which carries it too).

mod export;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

pub use export::{Counts, counts};

use crate::config::TelemetryConfig;

/// The target of every exported span: `tracing::info_span!(target: telemetry::TARGET, ...)`.
pub const TARGET: &str = "hub::trace";

/// Whether spans are exported (set once, by [`start`]).
static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: when not, there is no trace context to store or send.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The layer that turns [`TARGET`] spans into OpenTelemetry spans; installed at start-up with
/// the log's, inert until [`start`] is called.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(export::Queue)
        // The hub decides before it makes a span ([`sampled`], [`within`]): a span made is kept.
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .build();
    // The tracer holds the provider: it lives as long as the layer, i.e. the process.
    let tracer = provider.tracer("hub");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        // Cached per callsite (`always`/`never`), and asked again when `start` turns export
        // on: every other callsite (each log line's) stays `never` for this layer.
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == TARGET && on()
        }))
}

/// Starts exporting to the configured collector: a task sends what spans end, in batches. Never
/// blocks a span's end: past the queue's bound a span is dropped and counted.
///
/// # Errors
/// When the exporter cannot be built (a bad endpoint).
pub fn start(config: &TelemetryConfig) -> anyhow::Result<()> {
    export::start(config, reqwest::Client::builder().build()?)?;
    ON.store(true, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// The W3C `traceparent` of `span`, to store with the work it leads to or send onward; `None`
/// when nothing is exported or the span is not recorded.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !on() || span.is_disabled() {
        return None;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// What a job or delivery stores when its trace is not recorded: its follow-ups are not either
/// (rather than each starting a trace of its own).
pub const UNSAMPLED: &str = "-";

/// Whether work that may start a trace records one: `parent` (a provider's or caller's
/// `traceparent`, or a stored job's) decides when there is one, by its sampled flag; else the
/// sample ratio. False when nothing is exported. Unrecorded work makes no span at all.
pub fn sampled(parent: Option<&str>) -> bool {
    if !on() {
        return false;
    }
    match parent {
        Some(UNSAMPLED) => false,
        Some(text) => match text
            .split('-')
            .nth(3)
            .and_then(|f| u8::from_str_radix(f, 16).ok())
        {
            Some(flags) if text.len() == 55 => flags & 1 == 1,
            _ => export::roll(),
        },
        None => export::roll(),
    }
}

/// Whether the current context is a recorded trace: a span that only ever has a parent (an
/// invocation, an outbound call) is made only then.
pub fn within() -> bool {
    on() && opentelemetry::Context::current()
        .span()
        .span_context()
        .is_sampled()
}

/// Whether work that may be a child or a root (a tool call) records a span: as the current
/// trace does when there is one, else by the sample ratio.
pub fn sampled_here() -> bool {
    if !on() {
        return false;
    }
    let cx = opentelemetry::Context::current();
    let current = cx.span().span_context().clone();
    if current.is_valid() {
        current.is_sampled()
    } else {
        export::roll()
    }
}

/// What work queued under `span` stores as its trace: the span's `traceparent`, or
/// [`UNSAMPLED`] when it is not recorded; `None` when nothing is exported.
pub fn stored(span: &tracing::Span) -> Option<String> {
    if !on() {
        return None;
    }
    Some(traceparent(span).unwrap_or_else(|| UNSAMPLED.to_owned()))
}

/// Makes `span` a child of the remote span that `traceparent` names (a provider's header, a
/// stored job's context); a missing or malformed one leaves `span` the root of a new trace.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(text) = traceparent.filter(|_| on() && !span.is_disabled()) else {
        return;
    };
    let carrier = Carrier(Some(text.to_owned()));
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The `traceparent` header among `headers`, if any.
pub fn header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

/// Records the span's status as an error with a short description (the outcome, never a
/// payload).
pub fn failed(span: &tracing::Span, why: &str) {
    if on() {
        span.set_status(opentelemetry::trace::Status::error(why.to_owned()));
    }
}

/// The trace counters in Prometheus' text format (appended to `/metrics`; all zero while
/// nothing is exported).
pub fn render_metrics() -> String {
    let c = counts();
    let mut out = String::new();
    for (name, help, value) in [
        (
            "hub_trace_spans_exported_total",
            "Spans the collector took",
            c.exported,
        ),
        (
            "hub_trace_spans_dropped_total",
            "Spans dropped because the export queue was full",
            c.dropped,
        ),
        (
            "hub_trace_spans_failed_total",
            "Spans lost in exports the collector refused or never answered",
            c.failed,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    out
}

/// A `traceparent` alone, as [`TraceContextPropagator`] reads and writes it (it writes no
/// `tracestate` for a context without one).
#[derive(Default)]
struct Carrier(Option<String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent")
            .then_some(self.0.as_deref())
            .flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}
