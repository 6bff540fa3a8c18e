//! The figures of `GET /metrics`, rendered in the Prometheus text format by
//! `metrics-exporter-prometheus` (a recorder of the hub's own, not the process-global one, so
//! two hubs in one process keep apart). Hot-path counters are plain atomics the hub also reads
//! (the workers yield to webhooks in flight); they are handed to the recorder at each scrape.
//! Histograms, in seconds: acknowledgement latency, processing latency per connector and task,
//! outbound call latency per origin and status, and the queue's age at claim.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{
    Counter as Count, Histogram, Key, Label, Level, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(std::sync::atomic::AtomicI64);

impl Gauge {
    /// Counts one in until the guard is dropped.
    pub fn enter(&self) -> GaugeGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self)
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts one out of a [`Gauge`] when dropped.
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every counter the hub keeps.
pub struct Metrics {
    /// Webhook requests received.
    pub received: Counter,
    /// Stored for the first time.
    pub stored: Counter,
    /// Duplicates acknowledged without storing.
    pub duplicates: Counter,
    /// 401s.
    pub rejected_signature: Counter,
    /// 404s.
    pub rejected_not_found: Counter,
    /// Pushes on a channel the hub no longer holds: answered 200, nothing stored.
    pub stale_channel: Counter,
    /// 400s.
    pub rejected_bad_request: Counter,
    /// 429s.
    pub rate_limited: Counter,
    /// 503s: the store could not commit.
    pub store_failures: Counter,
    /// Jobs finished successfully.
    pub jobs_done: Counter,
    /// Job attempts that failed and will be retried.
    pub jobs_retried: Counter,
    /// Jobs dead-lettered.
    pub jobs_dead: Counter,
    /// Sum of invocation wall time, microseconds.
    pub invocation_us: Counter,
    /// Webhooks to the apps answered 2xx.
    pub app_webhooks_delivered: Counter,
    /// Webhooks to the apps that failed (each attempt).
    pub app_webhooks_failed: Counter,
    /// Webhook requests being handled now (the workers yield to them; see `worker`).
    pub webhooks_in_flight: Gauge,
    /// Seconds from a webhook's arrival to its answer (`hub_webhook_ack_seconds`).
    pub ack_seconds: Histogram,
    /// Seconds a job waited past its due time before a worker claimed it.
    pub queue_age_seconds: Histogram,
    /// Where every figure is rendered from.
    prometheus: PrometheusRecorder,
}

/// Bucket bounds of every `_seconds` histogram: 0.5 ms to 60 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static META: Metadata<'static> = Metadata::new("hub", Level::INFO, None);

fn describe(
    r: &PrometheusRecorder,
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
    kind: char,
) {
    let (name, help) = (
        metrics::KeyName::from_const_str(name),
        SharedString::const_str(help),
    );
    match kind {
        'c' => r.describe_counter(name, unit, help),
        'g' => r.describe_gauge(name, unit, help),
        _ => r.describe_histogram(name, unit, help),
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        for (name, help) in [
            (
                "hub_webhook_ack_seconds",
                "Seconds from a webhook's arrival to its answer",
            ),
            (
                "hub_job_seconds",
                "Seconds a job's invocation took, by connector and task",
            ),
            (
                "hub_outbound_seconds",
                "Seconds an outbound call took, by origin and status",
            ),
            (
                "hub_queue_age_seconds",
                "Seconds a job waited past its due time before it was claimed",
            ),
        ] {
            describe(&prometheus, name, Some(Unit::Seconds), help, 'h');
        }
        describe(
            &prometheus,
            "hub_api_requests_total",
            None,
            "API requests by token name",
            'c',
        );
        let ack_seconds =
            prometheus.register_histogram(&Key::from_static_name("hub_webhook_ack_seconds"), &META);
        let queue_age_seconds =
            prometheus.register_histogram(&Key::from_static_name("hub_queue_age_seconds"), &META);
        Metrics {
            received: Counter::default(),
            stored: Counter::default(),
            duplicates: Counter::default(),
            rejected_signature: Counter::default(),
            stale_channel: Counter::default(),
            rejected_not_found: Counter::default(),
            rejected_bad_request: Counter::default(),
            rate_limited: Counter::default(),
            store_failures: Counter::default(),
            jobs_done: Counter::default(),
            jobs_retried: Counter::default(),
            jobs_dead: Counter::default(),
            invocation_us: Counter::default(),
            app_webhooks_delivered: Counter::default(),
            app_webhooks_failed: Counter::default(),
            webhooks_in_flight: Gauge::default(),
            ack_seconds,
            queue_age_seconds,
            prometheus,
        }
    }
}

impl Metrics {
    /// `hub_job_seconds{connector, task}`.
    pub fn job_seconds(&self, connector: &str, task: &'static str) -> Histogram {
        let key = Key::from_parts(
            "hub_job_seconds",
            vec![
                Label::new("connector", connector.to_string()),
                Label::new("task", task),
            ],
        );
        self.prometheus.register_histogram(&key, &META)
    }

    /// `hub_outbound_seconds{origin, status}` (`status` a code, or `error` without an answer).
    pub fn outbound_seconds(&self, origin: &str, status: &str) -> Histogram {
        let key = Key::from_parts(
            "hub_outbound_seconds",
            vec![
                Label::new("origin", origin.to_string()),
                Label::new("status", status.to_string()),
            ],
        );
        self.prometheus.register_histogram(&key, &META)
    }

    /// `hub_api_requests_total{token}`: one token's uses, by its name (never its value). The
    /// count outlives reloads.
    pub fn api_requests(&self, token: &str) -> Count {
        let key = Key::from_parts(
            "hub_api_requests_total",
            vec![Label::new("token", token.to_string())],
        );
        self.prometheus.register_counter(&key, &META)
    }

    /// Folds the histograms' samples into their buckets (the exporter keeps samples until then):
    /// every few seconds, so a hub nobody scrapes does not hold every sample it ever took.
    pub fn upkeep(&self) {
        self.prometheus.handle().run_upkeep();
    }

    /// Renders every figure.
    pub fn render(&self) -> String {
        let rows: [(&'static str, &'static str, &Counter); 15] = [
            (
                "hub_webhooks_received_total",
                "Webhook requests received",
                &self.received,
            ),
            (
                "hub_webhooks_stored_total",
                "Deliveries stored",
                &self.stored,
            ),
            (
                "hub_webhooks_duplicate_total",
                "Duplicate deliveries acknowledged",
                &self.duplicates,
            ),
            (
                "hub_webhooks_rejected_signature_total",
                "Requests refused for their signature",
                &self.rejected_signature,
            ),
            (
                "hub_webhooks_stale_channel_total",
                "Pushes on channels the hub no longer holds (answered 200, not stored)",
                &self.stale_channel,
            ),
            (
                "hub_webhooks_not_found_total",
                "Requests for unknown tenants, connectors or routes",
                &self.rejected_not_found,
            ),
            (
                "hub_webhooks_bad_request_total",
                "Malformed deliveries",
                &self.rejected_bad_request,
            ),
            (
                "hub_webhooks_rate_limited_total",
                "Requests over a tenant's rate",
                &self.rate_limited,
            ),
            (
                "hub_store_failures_total",
                "Deliveries the store could not commit",
                &self.store_failures,
            ),
            ("hub_jobs_done_total", "Jobs finished", &self.jobs_done),
            (
                "hub_jobs_retried_total",
                "Job attempts that will be retried",
                &self.jobs_retried,
            ),
            ("hub_jobs_dead_total", "Jobs dead-lettered", &self.jobs_dead),
            (
                "hub_app_webhooks_delivered_total",
                "Webhooks to the apps' endpoints answered 2xx",
                &self.app_webhooks_delivered,
            ),
            (
                "hub_app_webhooks_failed_total",
                "Attempts of webhooks to the apps' endpoints that failed",
                &self.app_webhooks_failed,
            ),
            (
                "hub_invocation_microseconds_total",
                "Connector invocation wall time",
                &self.invocation_us,
            ),
        ];
        for (name, help, counter) in rows {
            describe(&self.prometheus, name, None, help, 'c');
            self.prometheus
                .register_counter(&Key::from_static_name(name), &META)
                .absolute(counter.get());
        }
        describe(
            &self.prometheus,
            "hub_webhooks_in_flight",
            None,
            "Webhook requests being handled",
            'g',
        );
        self.prometheus
            .register_gauge(&Key::from_static_name("hub_webhooks_in_flight"), &META)
            .set(self.webhooks_in_flight.get() as f64);
        self.prometheus.handle().render()
    }
}
