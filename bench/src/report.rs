//! The figures, the machine they were measured on, and the tables printed at the end.

use std::fmt::Write as _;
use std::time::Duration;

use crate::hubs::Memory;
use crate::load::Outcome;
use crate::sandbox;

/// What the machine is.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("unknown CPU")
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores (nproc), {model}, {:.1} GiB RAM, Linux {}",
        mem_kb as f64 / (1024.0 * 1024.0),
        kernel.trim()
    )
}

/// One load run, reduced.
#[derive(Clone, Debug)]
pub struct Run {
    /// 2xx per second.
    pub rate: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Errors, as text.
    pub errors: String,
    /// 2xx answers.
    pub ok: u64,
    /// The server process's CPU time per 2xx answer, µs (all its threads).
    pub cpu_us: Option<f64>,
    /// Bytes the server process wrote to storage per 2xx answer.
    pub disk_bytes: Option<f64>,
    /// 2xx answers in each whole second, in thousands (`Outcome::per_second_text`).
    pub per_second: String,
}

impl From<&Outcome> for Run {
    fn from(o: &Outcome) -> Run {
        Run {
            rate: o.rate(),
            p50: o.quantile_ms(0.5),
            p99: o.quantile_ms(0.99),
            errors: o.error_text(),
            ok: o.ok,
            cpu_us: None,
            disk_bytes: None,
            per_second: o.per_second_text(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} answered 2xx, errors {})",
            self.rate, self.p50, self.p99, self.ok, self.errors
        )?;
        if let Some(cpu) = self.cpu_us {
            write!(f, "  server CPU {cpu:.0} µs/request")?;
        }
        if let Some(b) = self.disk_bytes.filter(|b| *b > 0.0) {
            write!(f, ", {:.1} KB written/request", b / 1024.0)?;
        }
        if !self.per_second.is_empty() {
            write!(
                f,
                "\n{:>24}thousands/s, second by second: {}",
                "", self.per_second
            )?;
        }
        Ok(())
    }
}

/// Ingest: the reference and the hub on the same kind of webhook.
#[derive(Clone, Debug)]
pub struct Ingest {
    /// Which webhooks, e.g. "Retell, 1 KB, 100 tenants".
    pub what: String,
    /// The reference server.
    pub reference: Run,
    /// The reference server storing with the hub's store, if measured.
    pub stored_reference: Option<Run>,
    /// The reference server appending to a journal, if measured.
    pub journal_reference: Option<Run>,
    /// The hub.
    pub hub: Run,
}

/// Processing through the hub.
#[derive(Clone, Debug)]
pub struct Processing {
    /// The hub's configuration for this run.
    pub label: String,
    /// Deliveries queued.
    pub queued: u64,
    /// Jobs pending when the queue was full.
    pub backlog: i64,
    /// How long the backlog took to drain.
    pub drain: Duration,
    /// Jobs left when the wait ended (0 when drained).
    pub left: i64,
    /// From the first request to an empty queue.
    pub total: Duration,
    /// Counters: done, retried, dead.
    pub done: u64,
    /// Retries.
    pub retried: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Records found / expected, in the tenants checked.
    pub records: (usize, usize),
}

impl Processing {
    /// Deliveries per second while draining.
    pub fn rate(&self) -> f64 {
        (self.backlog - self.left) as f64 / self.drain.as_secs_f64().max(1e-9)
    }
}

/// Memory and start-up.
#[derive(Clone, Debug, Default)]
pub struct Footprint {
    /// Tenants and connectors configured.
    pub what: String,
    /// Idle, after start.
    pub idle: Option<Memory>,
    /// After the ingest runs (rss now, peak over the process's life).
    pub loaded: Option<Memory>,
    /// First start, empty compile cache.
    pub cold_start: Option<Duration>,
    /// Starts with a warm compile cache.
    pub warm_starts: Vec<Duration>,
}

impl Footprint {
    /// Median warm start.
    pub fn warm_median(&self) -> Option<Duration> {
        let mut v = self.warm_starts.clone();
        v.sort();
        v.get(v.len() / 2).copied()
    }
}

/// One growth point.
#[derive(Clone, Debug)]
pub struct Growth {
    /// e.g. "body 10 KB" or "1000 tenants".
    pub label: String,
    /// The reference.
    pub reference: Run,
    /// The hub.
    pub hub: Run,
}

/// Everything measured.
#[derive(Default)]
pub struct Report {
    /// `machine()`.
    pub machine: String,
    /// The command line, as run.
    pub command: String,
    /// Commit of the tree, if known.
    pub commit: Option<String>,
    /// Connection count and run length.
    pub load: String,
    /// Connectors found, and those skipped with why.
    pub connectors: Vec<String>,
    /// Connectors that did not load.
    pub skipped: Vec<(String, String)>,
    /// Ingest runs.
    pub ingest: Vec<Ingest>,
    /// Why Resend was not measured, if it was not.
    pub resend_note: Option<String>,
    /// `Store::ingest` alone, in-process, deliveries/s.
    pub store_alone: Option<f64>,
    /// Through the hub.
    pub processing: Vec<Processing>,
    /// In-process sandbox figures.
    pub sandbox: Option<sandbox::Figures>,
    /// Memory and start-up.
    pub footprint: Option<Footprint>,
    /// By body size.
    pub by_size: Vec<Growth>,
    /// By tenant count.
    pub by_tenants: Vec<Growth>,
    /// By the load generator's connections.
    pub by_connections: Vec<Growth>,
    /// The app's side: webhooks to the app, the change feed, list pages.
    pub app: Option<crate::app::Figures>,
    /// The console: page server times and the log page's weight.
    pub console: Option<crate::console::Figures>,
    /// `hub test-connector` over fixtures.
    pub fixtures: Option<crate::fixtures::Figures>,
    /// SendGrid Event Webhook batches.
    pub sendgrid: Option<crate::sendgrid::Figures>,
    /// The hub acting: actions accepted, tool calls.
    pub actions: Option<crate::actions::Figures>,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

impl Report {
    /// The Markdown summary: machine, figures, goals.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Machine: {}", self.machine);
        if let Some(c) = &self.commit {
            let _ = writeln!(s, "Commit: {c}");
        }
        let _ = writeln!(s, "Command: `{}`", self.command);
        let _ = writeln!(
            s,
            "Load: {}; the load generator runs in the bench process on the same cores as the server it measures (as `oha` would).",
            self.load
        );
        let _ = writeln!(
            s,
            "Connectors bundled and configured: {}",
            self.connectors.join(", ")
        );
        for (c, why) in &self.skipped {
            let _ = writeln!(s, "Connector `{c}` not loaded: {why}");
        }
        if let Some(n) = &self.resend_note {
            let _ = writeln!(s, "{n}");
        }

        if !self.ingest.is_empty() {
            let _ = writeln!(
                s,
                "\n**Ingest** (verify signature, store durably, answer 200)\n"
            );
            let _ = writeln!(
                s,
                "| webhooks | server | req/s | p50 ms | p99 ms | server CPU µs/request | KB written to disk/request | errors | x reference |"
            );
            let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---:|");
            let disk = |r: &Run| {
                r.disk_bytes
                    .map_or("?".to_string(), |b| format!("{:.1}", b / 1024.0))
            };
            let cpu = |r: &Run| r.cpu_us.map_or("?".to_string(), |c| format!("{c:.0}"));
            for i in &self.ingest {
                let _ = writeln!(
                    s,
                    "| {} | reference (verify only) | {:.0} | {:.2} | {:.2} | {} | {} | {} | |",
                    i.what,
                    i.reference.rate,
                    i.reference.p50,
                    i.reference.p99,
                    cpu(&i.reference),
                    disk(&i.reference),
                    i.reference.errors
                );
                let references = [
                    (
                        &i.stored_reference,
                        "reference + the hub's store (verify, `Store::ingest`, answer 200)",
                    ),
                    (
                        &i.journal_reference,
                        "reference + a journal (verify, append to one file, group `fdatasync`, answer 200)",
                    ),
                ];
                for (run, server) in references {
                    if let Some(r) = run {
                        let _ = writeln!(
                            s,
                            "| {} | {server} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {:.2} |",
                            i.what,
                            r.rate,
                            r.p50,
                            r.p99,
                            cpu(r),
                            disk(r),
                            r.errors,
                            r.rate / i.reference.rate
                        );
                    }
                }
                let _ = writeln!(
                    s,
                    "| {} | hub | {:.0} | {:.2} | {:.2} | {} | {} | {} | {:.2} |",
                    i.what,
                    i.hub.rate,
                    i.hub.p50,
                    i.hub.p99,
                    cpu(&i.hub),
                    disk(&i.hub),
                    i.hub.errors,
                    i.hub.rate / i.reference.rate
                );
            }
            if let Some(rate) = self.store_alone {
                let _ = writeln!(
                    s,
                    "\nThe durable write path alone (`Store::ingest` in-process, as many tasks as connections, one 1 KB delivery each per commit round, no HTTP, no signature): {rate:.0} deliveries/s."
                );
            }
        }

        if !self.processing.is_empty() || self.sandbox.is_some() {
            let _ = writeln!(s, "\n**Processing**\n");
            let _ = writeln!(s, "| measurement | figure |");
            let _ = writeln!(s, "|---|---|");
            for p in &self.processing {
                let _ = writeln!(
                    s,
                    "| hub, {}: Retell deliveries through the sandbox to records, a queue of {} drained | {:.0} deliveries/s ({} in {:.1} s{}) |",
                    p.label,
                    p.backlog,
                    p.rate(),
                    p.backlog - p.left,
                    p.drain.as_secs_f64(),
                    if p.left > 0 {
                        format!(", {} left", p.left)
                    } else {
                        String::new()
                    }
                );
                let _ = writeln!(
                    s,
                    "| hub, {}: {} deliveries from first request to empty queue | {:.1} s ({:.0}/s) |",
                    p.label,
                    p.queued,
                    p.total.as_secs_f64(),
                    p.queued as f64 / p.total.as_secs_f64().max(1e-9)
                );
                let _ = writeln!(
                    s,
                    "| hub, {}: jobs done / retried / dead; call records found in 3 tenants | {} / {} / {}; {} of {} |",
                    p.label, p.done, p.retried, p.dead, p.records.0, p.records.1
                );
            }
            if let Some(f) = &self.sandbox {
                let _ = writeln!(
                    s,
                    "| sandbox, fresh instance per call, `probe` no-op: `invoke` p50 / p99 (guest call alone p50) | {:.0} / {:.0} µs ({:.1} µs) |",
                    f.probe_invoke.us(0.5),
                    f.probe_invoke.us(0.99),
                    f.probe_call.us(0.5)
                );
                let _ = writeln!(
                    s,
                    "| sandbox, fresh instance per call, Retell `call_started` ({} B): `invoke` p50 / p99 (guest call alone p50) | {:.0} / {:.0} µs ({:.1} µs) |",
                    f.body_len,
                    f.retell_invoke.us(0.5),
                    f.retell_invoke.us(0.99),
                    f.retell_call.us(0.5)
                );
                let _ = writeln!(
                    s,
                    "| native reference: the same Retell logic called in-process, p50 / p99 | {:.1} / {:.1} µs |",
                    f.native.us(0.5),
                    f.native.us(0.99)
                );
                let _ = writeln!(
                    s,
                    "| one thread: sandbox `invoke` vs native, calls/s | {:.0} vs {:.0} (native {:.0}x faster) |",
                    f.retell_invoke.per_sec(),
                    f.native.per_sec(),
                    f.native.per_sec() / f.retell_invoke.per_sec()
                );
                for p in &self.processing {
                    let _ = writeln!(
                        s,
                        "| hub end-to-end ({}) / native one-thread rate | {:.3} |",
                        p.label,
                        p.rate() / f.native.per_sec()
                    );
                }
            }
        }

        if let Some(f) = &self.footprint {
            let _ = writeln!(s, "\n**Footprint** ({})\n", f.what);
            let _ = writeln!(s, "| measurement | figure |");
            let _ = writeln!(s, "|---|---|");
            if let Some(m) = f.idle {
                let _ = writeln!(
                    s,
                    "| resident memory, idle after start | {:.1} MB |",
                    mb(m.rss)
                );
            }
            if let Some(m) = f.loaded {
                let _ = writeln!(
                    s,
                    "| resident memory after the Retell ingest run / peak | {:.1} MB / {:.1} MB |",
                    mb(m.rss),
                    mb(m.peak)
                );
            }
            if let Some(d) = f.cold_start {
                let _ = writeln!(
                    s,
                    "| start-up, empty compile cache (spawn to first 200 from /readyz) | {:.0} ms |",
                    ms(d)
                );
            }
            if let Some(d) = f.warm_median() {
                let all: Vec<String> = f
                    .warm_starts
                    .iter()
                    .map(|d| format!("{:.0}", ms(*d)))
                    .collect();
                let _ = writeln!(
                    s,
                    "| start-up, warm compile cache, median of {} | {:.0} ms ({} ms) |",
                    f.warm_starts.len(),
                    ms(d),
                    all.join(", ")
                );
            }
        }

        for (title, rows) in [
            ("body size (1 tenant)", &self.by_size),
            ("tenant count (1 KB bodies)", &self.by_tenants),
            (
                "concurrent connections (100 tenants, 1 KB bodies)",
                &self.by_connections,
            ),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n**Growth by {title}**, signed Retell webhooks\n");
            let _ = writeln!(
                s,
                "| point | hub req/s | p50 ms | p99 ms | hub CPU µs/request | hub KB written/request | errors | reference req/s | hub / reference | hub MB/s |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|");
            for g in rows.iter() {
                let bytes = label_bytes(&g.label);
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {:.0} | {:.2} | {} |",
                    g.label,
                    g.hub.rate,
                    g.hub.p50,
                    g.hub.p99,
                    g.hub.cpu_us.map_or("".into(), |c| format!("{c:.0}")),
                    g.hub
                        .disk_bytes
                        .map_or("".into(), |b| format!("{:.1}", b / 1024.0)),
                    g.hub.errors,
                    g.reference.rate,
                    g.hub.rate / g.reference.rate,
                    bytes.map_or("".into(), |b| format!("{:.1}", g.hub.rate * b as f64 / 1e6))
                );
            }
        }

        if let Some(a) = &self.app {
            let _ = writeln!(s, "\n**The app's side** (in-process on the hub library)\n");
            let _ = writeln!(s, "| measurement | figure |");
            let _ = writeln!(s, "|---|---|");
            let _ = writeln!(
                s,
                "| webhooks to the app: queued jobs drained by 16 workers to a local receiver verifying each signature | {:.0}/s ({} webhooks) |",
                a.webhooks_per_s, a.webhooks
            );
            let _ = writeln!(
                s,
                "| change feed: `Store::changes` pages of 500 | {:.0} records/s ({} records) |",
                a.feed_per_s, a.feed_records
            );
            for (list, page, t) in &a.pages {
                let _ = writeln!(
                    s,
                    "| `{list}` page {page} (50 rows; {} deliveries, {} records stored), p95 | {:.2} ms |",
                    a.rows,
                    a.rows,
                    ms(*t)
                );
            }
        }

        if let Some(c) = &self.console {
            let _ = writeln!(
                s,
                "\n**The console** (in-process, an admin session, {} deliveries and {} records stored)\n",
                c.rows, c.rows
            );
            let _ = writeln!(s, "| page | server time, p95 |");
            let _ = writeln!(s, "|---|---|");
            for (page, t) in &c.pages {
                let _ = writeln!(s, "| {page} | {:.1} ms |", ms(*t));
            }
        }

        if let Some(f) = &self.fixtures {
            let _ = writeln!(
                s,
                "\n**hub test-connector** (the Make connector, {} fixtures, a third with one outbound request each over loopback)\n",
                f.fixtures
            );
            let _ = writeln!(s, "| measure | time |");
            let _ = writeln!(s, "|---|---|");
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let _ = writeln!(s, "| per fixture, mean | {:.0} µs |", us(f.per_fixture()));
            let _ = writeln!(
                s,
                "| per fixture, p50 / p95 | {:.0} / {:.0} µs |",
                us(f.p50),
                us(f.p95)
            );
            let _ = writeln!(
                s,
                "| loading the connector, cold / warm compile cache | {:.0} / {:.1} ms |",
                ms(f.load_cold),
                ms(f.load_warm)
            );
        }

        if let Some(f) = &self.sendgrid {
            let _ = writeln!(
                s,
                "\n**SendGrid Event Webhook** (batches of {} events, {:.0} KB each, signed ECDSA P-256, over 4 connections; the connector's workers applying them meanwhile)\n",
                crate::sendgrid::PER_BATCH,
                f.batch_bytes as f64 / 1024.0
            );
            let _ = writeln!(s, "| measure | value |");
            let _ = writeln!(s, "|---|---|");
            let _ = writeln!(
                s,
                "| events stored | {} in {:.2} s |",
                f.events,
                f.elapsed.as_secs_f64()
            );
            let _ = writeln!(s, "| events stored per second | {:.0} |", f.per_second());
            let _ = writeln!(s, "| answers not 200 | {} |", f.failed);
        }

        if let Some(f) = &self.actions {
            let _ = writeln!(
                s,
                "\n**The hub acting** (in-process hub, loopback HTTP; goals: >= 5,000 actions accepted/s durable; a tool call's time in the hub p50 < 5 ms, p99 < 20 ms)\n"
            );
            let _ = writeln!(s, "| measure | value |");
            let _ = writeln!(s, "|---|---|");
            let _ = writeln!(
                s,
                "| actions accepted (202, durable), 64 connections | {:.0}/s ({} accepted, {} not 202) |",
                f.accepted_per_s, f.accepted, f.refused
            );
            for (how, tool, samples) in &f.tool_calls {
                let what = if *tool == "lookup" {
                    "a lookup (`find_contact`)"
                } else {
                    "an action (`send_sms`, the stand-in's time taken off)"
                };
                let _ = writeln!(
                    s,
                    "| tool call via {how}, {what}: p50 / p99 | {:.2} / {:.2} ms |",
                    samples.us(0.5) / 1000.0,
                    samples.us(0.99) / 1000.0
                );
            }
        }

        if self.ingest.is_empty()
            && self.processing.is_empty()
            && self.sandbox.is_none()
            && self.footprint.is_none()
            && self.app.is_none()
            && self.console.is_none()
            && self.fixtures.is_none()
            && self.sendgrid.is_none()
            && self.actions.is_none()
        {
            return s;
        }
        let _ = writeln!(s, "\n**Goals**\n");
        let _ = writeln!(s, "| goal | measured | verdict |");
        let _ = writeln!(s, "|---|---|---|");
        if let Some(i) = self.ingest.first() {
            let _ = writeln!(
                s,
                "| ingest ≥ 20,000 signed, durable webhooks/s | {:.0}/s | {} |",
                i.hub.rate,
                verdict(i.hub.rate >= 20_000.0)
            );
            let ratio = i.hub.rate / i.reference.rate;
            let _ = writeln!(
                s,
                "| ingest ≥ 0.5 x reference | {ratio:.2} x | {} |",
                verdict(ratio >= 0.5)
            );
        }
        for p in &self.processing {
            let _ = writeln!(
                s,
                "| processing ≥ 5,000 deliveries/s ({}) | {:.0}/s | {} |",
                p.label,
                p.rate(),
                verdict(p.rate() >= 5_000.0)
            );
        }
        if let Some(f) = &self.sandbox {
            let p50 = f.probe_invoke.us(0.5);
            let _ = writeln!(
                s,
                "| fresh sandbox instance per invocation, p50 < 100 µs | {p50:.0} µs (`invoke`, no-op call) | {} |",
                verdict(p50 < 100.0)
            );
        }
        if let Some(a) = &self.app {
            let _ = writeln!(
                s,
                "| webhooks to the app ≥ 5,000/s, signed | {:.0}/s | {} |",
                a.webhooks_per_s,
                verdict(a.webhooks_per_s >= 5_000.0)
            );
            let _ = writeln!(
                s,
                "| change feed ≥ 20,000 records/s read | {:.0}/s | {} |",
                a.feed_per_s,
                verdict(a.feed_per_s >= 20_000.0)
            );
            let worst = a.pages.iter().map(|(_, _, t)| *t).max().unwrap_or_default();
            let _ = writeln!(
                s,
                "| list pages (first and 100th) p95 < 20 ms with {} rows | {:.2} ms (worst) | {} |",
                a.rows,
                ms(worst),
                verdict(ms(worst) < 20.0)
            );
        }
        if let Some(c) = &self.console {
            let worst = c.pages.iter().map(|(_, t)| *t).max().unwrap_or_default();
            let slowest = c
                .pages
                .iter()
                .max_by_key(|(_, t)| *t)
                .map(|(p, _)| p.as_str())
                .unwrap_or("");
            let _ = writeln!(
                s,
                "| console pages p95 < 50 ms with {} deliveries | slowest: {slowest}, {:.1} ms | {} |",
                c.rows,
                ms(worst),
                verdict(worst < Duration::from_millis(50))
            );
            let kb = (c.log_bytes + c.asset_bytes) as f64 / 1024.0;
            let _ = writeln!(
                s,
                "| log page < 100 KB with its assets | {kb:.1} KB | {} |",
                verdict(kb < 100.0)
            );
        }
        if let Some(f) = &self.fixtures {
            let _ = writeln!(
                s,
                "| hub test-connector < 1 ms per fixture (warm cache) | {:.0} µs | {} |",
                f.per_fixture().as_secs_f64() * 1e6,
                verdict(f.per_fixture() < Duration::from_millis(1))
            );
        }
        if let Some(f) = &self.sendgrid {
            let _ = writeln!(
                s,
                "| SendGrid batches: >= 50,000 events stored/s | {:.0} /s | {} |",
                f.per_second(),
                verdict(f.per_second() >= 50_000.0 && f.failed == 0)
            );
        }
        if let Some(f) = &self.footprint {
            if let Some(m) = f.idle {
                let _ = writeln!(
                    s,
                    "| idle resident memory < 100 MB ({}) | {:.1} MB | {} |",
                    f.what,
                    mb(m.rss),
                    verdict(mb(m.rss) < 100.0)
                );
            }
            if let Some(d) = f.warm_median() {
                let _ = writeln!(
                    s,
                    "| start-up with a warm compile cache < 300 ms | {:.0} ms | {} |",
                    ms(d),
                    verdict(ms(d) < 300.0)
                );
            }
        }
        s
    }
}

/// The body size a growth label names, in bytes.
fn label_bytes(label: &str) -> Option<u64> {
    let (n, unit) = label.strip_prefix("body ")?.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "KB" => n * 1024,
        "MB" => n * 1024 * 1024,
        _ => n,
    })
}
