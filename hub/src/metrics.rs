//! Counters for `GET /metrics`, in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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
#[derive(Default)]
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
}

impl Metrics {
    /// Renders every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rows: [(&str, &str, &Counter); 14] = [
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
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP hub_webhooks_in_flight Webhook requests being handled\n# TYPE hub_webhooks_in_flight gauge\nhub_webhooks_in_flight {}",
            self.webhooks_in_flight.get()
        );
        out
    }
}
