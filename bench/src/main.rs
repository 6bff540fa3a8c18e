//! `hub-bench`: measures the hub on this machine and prints the figures with the goals they
//! are held to (docs/performance.md).
//!
//! ```text
//! cargo build --release -p hub
//! cargo run --release -p hub-bench -- [--quick] [--only ingest|processing|footprint|growth|app|console|fixtures|sendgrid|actions]
//! cargo run --release -p hub-bench -- --database postgres [--quick]
//! ```
//!
//! It starts the real `target/release/hub` (next to this binary) as a child process on a
//! loopback port, with a generated `hub.toml` in a temporary folder (a fresh master key, every
//! credential sealed), and a reference server (this binary with `--serve-reference`, also a
//! child process). One in-process load generator drives both, so each figure comes with a
//! ratio taken in the same run on the same machine: absolute times drift here.
//!
//! # Layout
//! - `load`: the keep-alive HTTP/1.1 load generator.
//! - `payload`: signed Retell (and Resend) webhooks with unique ids.
//! - `reference`: the verify-only axum server, and the same storing with the hub's store.
//! - `hubs`: generated fleets, `hub serve` processes, `/proc` memory.
//! - `sandbox`: `Runtime::invoke` in-process, and the Retell logic natively.
//! - `storage`: `Store::ingest` in-process, the durable write path alone.
//! - `app`: webhooks to the app, the change feed and list pages, in-process.
//! - `postgres`: the hub on PostgreSQL, one hub and two, against SQLite (`--database postgres`).
//! - `report`: machine, figures, goals, as Markdown.

mod actions;
mod app;
mod console;
mod fixtures;
mod hubs;
mod load;
mod payload;
mod pgstats;
mod postgres;
mod reference;
mod report;
mod sandbox;
mod sendgrid;
mod storage;
mod traces;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use hubs::{ConnectorInfo, Fleet, HubProc, Keeping, ReferenceProc, Site};
use load::{Maker, Until};
use report::{Footprint, Growth, Ingest, Processing, Report, Run};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Ingest,
    Processing,
    Footprint,
    Growth,
    App,
    Console,
    /// `hub test-connector`: 1,000 fixtures through the real sandbox.
    Fixtures,
    /// SendGrid Event Webhook batches of 1,000 events: events stored per second.
    Sendgrid,
    /// Actions accepted through the API per second; tool calls' time in the hub (Retell, MCP).
    Actions,
    /// The hub on PostgreSQL (one hub, two hubs) against SQLite: ingest and processing. Not
    /// run unless asked (`--database postgres`, or `--only postgres`).
    Postgres,
    /// Ingest and processing with traces exported to a local collector, against off. Not run
    /// unless asked (`--only traces`).
    Traces,
}

#[derive(Parser, Debug)]
#[command(
    name = "hub-bench",
    about = "Measures the hub: ingest, processing, footprint, growth"
)]
struct Cli {
    /// Short runs (3 s instead of 10 s, fewer deliveries and iterations).
    #[arg(long)]
    quick: bool,
    /// Only this part (repeat for several).
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// Connections the load generator keeps open.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds per load run (default 10, or 3 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Tenants in the main fleet (footprint, ingest, processing).
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// `postgres`: measure the hub on PostgreSQL against SQLite (alone, unless `--only` names
    /// other parts too). The server is started from `tests/postgres` (Debian's PostgreSQL).
    #[arg(long, value_parser = ["sqlite", "postgres"])]
    database: Option<String>,
    /// With `--database postgres`: PostgreSQL pinned to core 0, the bench and its hubs to core 1
    /// (`taskset`), so the two tiers' costs are not mixed.
    #[arg(long)]
    pin: bool,
    /// The `hub` binary to measure (default: the one next to this binary).
    #[arg(long)]
    hub: Option<PathBuf>,
    /// Internal: serve the reference on this port (the bench starts itself this way).
    #[arg(long, hide = true)]
    serve_reference: Option<u16>,
    /// Internal: the reference's keys file.
    #[arg(long, hide = true)]
    reference_keys: Option<PathBuf>,
    /// Internal: the reference also stores what it verifies, in this directory.
    #[arg(long, hide = true)]
    reference_store: Option<PathBuf>,
    /// Internal: the reference appends what it verifies to a journal in this directory.
    #[arg(long, hide = true, conflicts_with = "reference_store")]
    reference_journal: Option<PathBuf>,
}

/// What every part shares.
struct Bench {
    cli: Cli,
    hub_bin: PathBuf,
    work: tempfile::TempDir,
    duration: Duration,
    warmup: Duration,
    retell: ConnectorInfo,
    main: Fleet,
    main_site: Site,
    report: Report,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(port) = cli.serve_reference {
        let Some(keys) = cli.reference_keys.as_deref() else {
            eprintln!("--serve-reference needs --reference-keys");
            return ExitCode::FAILURE;
        };
        return match reference::serve(
            port,
            keys,
            cli.reference_store.as_deref(),
            cli.reference_journal.as_deref(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("reference server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // The load generator's runtime: one worker per core, like the servers it drives.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut c = "cargo run --release -p hub-bench".to_string();
    if !args.is_empty() {
        c.push_str(" -- ");
        c.push_str(&args.join(" "));
    }
    c
}

fn commit() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let head = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if head.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Some(if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    })
}

/// The newest modification time of the sources the `hub` binary is built from (the host, the
/// SDK and the bundled connectors; not this benchmark).
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let t = if path.is_dir() {
            newest_source(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// The `hub` binary next to this one; warns when its sources changed after it was built.
fn hub_binary() -> anyhow::Result<PathBuf> {
    let hub = std::env::current_exe()?.with_file_name("hub");
    if !hub.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p hub`",
            hub.display()
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = std::fs::metadata(&hub).and_then(|m| m.modified()).ok();
    let sources = ["hub/src", "plugin-sdk", "plugins"]
        .iter()
        .filter_map(|d| newest_source(&root.join(d)))
        .max();
    if let (Some(built), Some(sources)) = (built, sources)
        && sources > built
    {
        eprintln!(
            "warning: the hub's sources changed after {} was built; run `cargo build --release -p hub` first",
            hub.display()
        );
    }
    Ok(hub)
}

/// Workers in the second processing run.
const MORE_WORKERS: usize = 32;

fn random_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let hub_bin = match &cli.hub {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("--hub {}", p.display()))?,
        None => hub_binary()?,
    };
    let quick = cli.quick;
    let duration = Duration::from_secs_f64(cli.seconds.unwrap_or(if quick { 3.0 } else { 10.0 }));
    let work = tempfile::Builder::new().prefix("hub-bench-").tempdir()?;
    let mut report = Report {
        machine: report::machine(),
        command: command_line(),
        commit: commit(),
        load: format!(
            "{} keep-alive HTTP/1.1 connections, {:.0} s per run after a 1 s warm-up",
            cli.concurrency,
            duration.as_secs_f64()
        ),
        ..Report::default()
    };
    println!("hub-bench on {}", report.machine);
    println!(
        "load generator: {}; it shares the cores with the server it measures (as oha would)",
        report.load
    );
    println!("work folder: {}\n", work.path().display());

    let (connectors, skipped) = hubs::discover(&work.path().join("discover-cache"))?;
    let retell = connectors
        .iter()
        .find(|c| c.id == "retell")
        .cloned()
        .context("the hub binary has no retell connector")?;
    report.connectors = connectors.iter().map(|c| c.id.clone()).collect();
    report.skipped = skipped;
    println!(
        "connectors bundled: {} (of the five in the brief: retell, resend, twilio, zapier, hubspot)",
        report.connectors.join(", ")
    );
    if !connectors.iter().any(|c| c.id == "resend") {
        report.resend_note = Some(
            "Resend: there is no `resend` connector in plugins/ yet, so Svix-signed Resend ingest was not measured."
                .into(),
        );
    }
    let main = Fleet::new(&connectors, cli.tenants, 1 << 20);
    let main_site = Site::new(work.path().join("main"), &main)?;
    let mut b = Bench {
        hub_bin,
        duration,
        warmup: Duration::from_secs(1),
        retell,
        main,
        main_site,
        report,
        work,
        cli,
    };
    let on_postgres = b.cli.database.as_deref() == Some("postgres");
    if on_postgres && !b.cli.only.contains(&Part::Postgres) {
        b.cli.only.push(Part::Postgres);
    }
    let postgres_part = b.cli.only.contains(&Part::Postgres);
    let wants = |p: Part| b.cli.only.is_empty() || b.cli.only.contains(&p);
    let fixtures_part = wants(Part::Fixtures);
    let sendgrid_part = wants(Part::Sendgrid);
    let actions_part = wants(Part::Actions);
    let (footprint, ingest, processing, growth, app, console) = (
        wants(Part::Footprint),
        wants(Part::Ingest),
        wants(Part::Processing),
        wants(Part::Growth),
        wants(Part::App),
        wants(Part::Console),
    );
    if footprint {
        b.startup().await?;
    }
    if footprint || ingest {
        b.ingest(footprint).await?;
    }
    if processing {
        b.processing().await?;
    }
    if growth {
        b.growth().await?;
    }
    if app {
        println!("\n== the app's side (webhooks to the app, change feed, list pages)");
        b.report.app = Some(app::run(b.cli.quick).await?);
    }
    if console {
        println!("\n== the console (page server time, page weight)");
        b.report.console = Some(console::run(b.cli.quick).await?);
    }
    if fixtures_part {
        println!("\n== hub test-connector (fixtures through the real sandbox)");
        b.report.fixtures = Some(fixtures::run(b.cli.quick).await?);
    }
    if actions_part {
        println!("\n== the hub acting (actions through the API, agents' tool calls)");
        b.report.actions = Some(actions::run(b.cli.quick).await?);
    }
    if postgres_part {
        b.postgres().await?;
    }
    if b.cli.only.contains(&Part::Traces) {
        b.traces().await?;
    }
    if sendgrid_part {
        println!(
            "\n== SendGrid Event Webhook batches ({} events a request)",
            sendgrid::PER_BATCH
        );
        let f = sendgrid::run(b.cli.quick).await?;
        println!(
            "   {} events in {:.2} s: {:.0} events/s",
            f.events,
            f.elapsed.as_secs_f64(),
            f.per_second()
        );
        b.report.sendgrid = Some(f);
    }
    println!("\n{}", b.report.markdown());
    Ok(())
}

impl Bench {
    fn footprint(&mut self) -> &mut Footprint {
        let what = format!(
            "{} tenants, each using {}",
            self.main.tenants.len(),
            self.report.connectors.join(" + ")
        );
        self.report.footprint.get_or_insert_with(|| Footprint {
            what,
            ..Footprint::default()
        })
    }

    /// Start-up: once with an empty compile cache, then five times warm.
    async fn startup(&mut self) -> anyhow::Result<()> {
        println!("== start-up ({} tenants)", self.main.tenants.len());
        self.main_site.reset(false);
        let (hub, cold) = self.main_site.start(&self.hub_bin).await?;
        hub.stop();
        println!("   cold compile cache: {:.0} ms", cold.as_secs_f64() * 1e3);
        let mut warm = Vec::new();
        for _ in 0..5 {
            let (hub, t) = self.main_site.start(&self.hub_bin).await?;
            hub.stop();
            warm.push(t);
        }
        let shown: Vec<String> = warm
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect();
        println!("   warm compile cache: {} ms", shown.join(", "));
        let f = self.footprint();
        f.cold_start = Some(cold);
        f.warm_starts = warm;
        Ok(())
    }

    /// One measured run after a warm-up on the same target.
    /// A warm-up, then a timed run against the server on `port` (process `pid`, whose CPU
    /// time over the timed run is divided among its answers).
    async fn measure(&self, port: u16, pid: u32, make: Maker) -> Run {
        self.measure_with(port, pid, make, self.cli.concurrency)
            .await
    }

    /// [`Self::measure`] with `connections` instead of `--concurrency`.
    async fn measure_with(&self, port: u16, pid: u32, make: Maker, connections: usize) -> Run {
        let a = addr(port);
        load::run(a, connections, Until::Elapsed(self.warmup), make.clone()).await;
        let (cpu0, disk0) = (hubs::cpu_time(pid), hubs::disk_written(pid));
        let o = load::run(a, connections, Until::Elapsed(self.duration), make).await;
        let mut run = Run::from(&o);
        let per_request = |total: f64| total / o.ok.max(1) as f64;
        if let (Some(t0), Some(t1)) = (cpu0, hubs::cpu_time(pid)) {
            run.cpu_us = Some(per_request((t1 - t0).as_secs_f64() * 1e6));
        }
        if let (Some(b0), Some(b1)) = (disk0, hubs::disk_written(pid)) {
            run.disk_bytes = Some(per_request(b1.saturating_sub(b0) as f64));
        }
        run
    }

    /// A reference server under Retell webhooks, then Resend ones if the fleet has a Resend
    /// signing secret (`resend`, its credential's name).
    async fn measure_reference(
        &mut self,
        keeping: Keeping,
        keys: &reference::Keys,
        resend: Option<&str>,
        tag: &str,
    ) -> anyhow::Result<(Run, Option<Run>)> {
        let (folder, label) = keeping.names();
        let server = ReferenceProc::start(&self.work.path().join(folder), keys, keeping).await?;
        let signers = Arc::new(self.main.signers("retell", "api_key"));
        let retell = self
            .measure(
                server.port,
                server.pid(),
                payload::retell(signers, 1024, tag),
            )
            .await;
        println!("   {label}, Retell: {retell}");
        let resend = match resend {
            Some(name) => {
                let signers = Arc::new(self.main.signers("resend", name));
                let r = self
                    .measure(server.port, server.pid(), payload::resend(signers, tag))
                    .await;
                println!("   {label}, Resend: {r}");
                Some(r)
            }
            None => None,
        };
        Ok((retell, resend))
    }

    /// Ingest against the reference and the main hub; memory idle and after the load.
    async fn ingest(&mut self, footprint: bool) -> anyhow::Result<()> {
        println!(
            "\n== ingest ({} tenants, 1 KB bodies)",
            self.main.tenants.len()
        );
        let mut creds = vec![("retell", "api_key".to_string())];
        let resend = self
            .main
            .connectors
            .iter()
            .find(|c| c.id == "resend")
            .and_then(|c| c.credentials.iter().find(|(_, whsec)| *whsec))
            .map(|(name, _)| name.clone());
        if let Some(name) = &resend {
            creds.push(("resend", name.clone()));
        }
        let cred_refs: Vec<(&str, &str)> = creds.iter().map(|(c, n)| (*c, n.as_str())).collect();
        let retell_signers = Arc::new(self.main.signers("retell", "api_key"));
        let tag = random_tag();
        let keys = self.main.reference_keys(&cred_refs);
        let (ref_retell, ref_resend) = self
            .measure_reference(Keeping::Nothing, &keys, resend.as_deref(), &tag)
            .await?;
        // The same minimal server, storing with the hub's store before it answers.
        let (stored_retell, stored_resend) = self
            .measure_reference(Keeping::Store, &keys, resend.as_deref(), &tag)
            .await?;
        // And appending to a journal instead: durable, with no index.
        let (journal_retell, journal_resend) = self
            .measure_reference(Keeping::Journal, &keys, resend.as_deref(), &tag)
            .await?;

        self.main_site.warm(&self.hub_bin).await?;
        self.main_site.reset(true);
        let (hub, _) = self.main_site.start(&self.hub_bin).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = hub.memory();
        println!(
            "   hub idle: {:.1} MB resident",
            idle.rss as f64 / 1048576.0
        );
        let tag = random_tag();
        let hub_retell = self
            .measure(
                self.main_site.port,
                hub.pid(),
                payload::retell(retell_signers, 1024, &tag),
            )
            .await;
        println!("   hub, Retell:       {hub_retell}");
        let what = format!("Retell, 1 KB, {} tenants", self.main.tenants.len());
        let ref_retell_alone = ref_retell.clone();
        self.report.ingest.push(Ingest {
            what,
            reference: ref_retell,
            stored_reference: Some(stored_retell),
            journal_reference: Some(journal_retell),
            hub: hub_retell,
        });
        let loaded = hub.memory();
        println!(
            "   hub after the Retell load: {:.1} MB resident, peak {:.1} MB",
            loaded.rss as f64 / 1048576.0,
            loaded.peak as f64 / 1048576.0
        );
        hub.stop();
        if let (Some(name), Some(reference)) = (&resend, ref_resend.clone()) {
            // A fresh hub, so this run does not inherit the Retell run's queue.
            self.main_site.reset(true);
            let (hub, _) = self.main_site.start(&self.hub_bin).await?;
            let signers = Arc::new(self.main.signers("resend", name));
            let r = self
                .measure(
                    self.main_site.port,
                    hub.pid(),
                    payload::resend(signers, &tag),
                )
                .await;
            hub.stop();
            println!("   hub, Resend:       {r}");
            self.report.ingest.push(Ingest {
                what: format!("Resend (Svix), ~1 KB, {} tenants", self.main.tenants.len()),
                reference,
                stored_reference: stored_resend,
                journal_reference: journal_resend,
                hub: r,
            });
        }

        // Ingest alone: the same fleet with `workers = 0`, so nothing is processed meanwhile.
        self.main.workers = Some(0);
        let site = Site::new(self.work.path().join("main-no-workers"), &self.main);
        self.main.workers = None;
        let site = site?;
        let mut kinds = vec![(
            "Retell",
            ref_retell_alone,
            payload::retell(Arc::new(self.main.signers("retell", "api_key")), 1024, &tag),
        )];
        if let (Some(name), Some(reference)) = (&resend, ref_resend) {
            let signers = Arc::new(self.main.signers("resend", name));
            kinds.push(("Resend (Svix)", reference, payload::resend(signers, &tag)));
        }
        for (kind, reference, make) in kinds {
            site.reset(true);
            let (hub, _) = site.start(&self.hub_bin).await?;
            let r = self.measure(site.port, hub.pid(), make).await;
            hub.stop();
            println!("   hub, {kind}, workers = 0: {r}");
            self.report.ingest.push(Ingest {
                what: format!(
                    "{kind}, {} tenants, `workers = 0` (stored and queued, not processed)",
                    self.main.tenants.len()
                ),
                reference,
                stored_reference: None,
                journal_reference: None,
                hub: r,
            });
        }
        let _ = std::fs::remove_dir_all(&site.dir);
        // The write path alone, in-process: what is left when HTTP and signatures cost nothing.
        let (concurrency, total) = (
            self.cli.concurrency,
            if self.cli.quick { 20_000 } else { 100_000 },
        );
        let (rate, took) =
            std::thread::spawn(move || storage::ingest_rate(concurrency, total, 1024))
                .join()
                .map_err(|_| anyhow::anyhow!("the store measurement panicked"))??;
        println!(
            "   store alone ({concurrency} tasks, 1 KB, in-process): {rate:.0} deliveries/s ({total} in {:.1} s)",
            took.as_secs_f64()
        );
        self.report.store_alone = Some(rate);
        if footprint {
            let f = self.footprint();
            f.idle = Some(idle);
            f.loaded = Some(loaded);
        }
        Ok(())
    }

    /// In-process sandbox figures, then a queue of deliveries drained by the hub.
    async fn processing(&mut self) -> anyhow::Result<()> {
        println!("\n== processing");
        let iterations = if self.cli.quick { 1_000 } else { 5_000 };
        let body = payload::retell_body("sandbox-000000000001", 1024, 1_700_000_000_000);
        // Its own thread: the sandbox measurement makes its own single-threaded runtime.
        let figures = std::thread::spawn(move || sandbox::run(iterations, body))
            .join()
            .map_err(|_| anyhow::anyhow!("the sandbox measurement panicked"))??;
        println!(
            "   sandbox invoke, probe no-op: p50 {:.0} µs, p99 {:.0} µs (guest call {:.1} µs)",
            figures.probe_invoke.us(0.5),
            figures.probe_invoke.us(0.99),
            figures.probe_call.us(0.5)
        );
        println!(
            "   sandbox invoke, Retell call_started: p50 {:.0} µs, p99 {:.0} µs (guest call {:.1} µs)",
            figures.retell_invoke.us(0.5),
            figures.retell_invoke.us(0.99),
            figures.retell_call.us(0.5)
        );
        println!(
            "   native Retell logic: p50 {:.1} µs, p99 {:.1} µs",
            figures.native.us(0.5),
            figures.native.us(0.99)
        );
        self.report.sandbox = Some(figures);

        let p = self
            .drain(&self.main_site, "server.workers = 16 (default)")
            .await?;
        self.report.processing.push(p);
        // The same with more workers (and connector concurrency to match): what configuration
        // buys, against what the hub's own path costs.
        self.main.workers = Some(MORE_WORKERS);
        let site = Site::new(self.work.path().join("main-workers"), &self.main);
        self.main.workers = None;
        let site = site?;
        let p = self
            .drain(
                &site,
                &format!("server.workers = {MORE_WORKERS}, connector concurrency = {MORE_WORKERS}"),
            )
            .await?;
        self.report.processing.push(p);
        let _ = std::fs::remove_dir_all(&site.dir);
        Ok(())
    }

    /// Fills a fresh hub's queue with Retell deliveries as fast as it takes them, then times
    /// how fast the workers empty it (`pending_jobs` from `/readyz`) and checks the records.
    async fn drain(&self, site: &Site, label: &str) -> anyhow::Result<Processing> {
        println!("   -- {label}");
        let queued: u64 = if self.cli.quick { 10_000 } else { 50_000 };
        site.reset(true);
        let (hub, _) = site.start(&self.hub_bin).await?;
        let signers = Arc::new(self.main.signers("retell", "api_key"));
        let tag = random_tag();
        let done0 = hub.counter("hub_jobs_done_total").await?;
        let first = Instant::now();
        let fill = load::run(
            addr(site.port),
            self.cli.concurrency,
            Until::Count(queued),
            payload::retell(signers, 1024, &tag),
        )
        .await;
        if fill.errors() > 0 {
            println!("   filling the queue: {} errors", fill.error_text());
        }
        let backlog = hub.pending_jobs().await?;
        let drain_start = Instant::now();
        println!(
            "   queued {} deliveries in {:.1} s; {backlog} jobs pending",
            fill.ok,
            fill.elapsed.as_secs_f64()
        );
        let (mut left, mut last_change, mut last) = (backlog, Instant::now(), backlog);
        while left > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = hub.pending_jobs().await?;
            if left != last {
                (last, last_change) = (left, Instant::now());
            }
            if last_change.elapsed() > Duration::from_secs(30)
                || drain_start.elapsed() > Duration::from_secs(900)
            {
                println!("   the queue stopped draining with {left} jobs pending");
                break;
            }
        }
        let drain = drain_start.elapsed();
        let total = first.elapsed();
        let done = hub.counter("hub_jobs_done_total").await? - done0;
        let retried = hub.counter("hub_jobs_retried_total").await?;
        let dead = hub.counter("hub_jobs_dead_total").await?;
        // Each tenant's own calls: request `seq` went to tenant `seq % tenants`.
        let n = self.main.tenants.len() as u64;
        let (mut found, mut expected) = (0, 0);
        for (i, (tenant, _)) in self.main.tenants.iter().take(3).enumerate() {
            found += hub.records(tenant, "call").await?;
            expected += (queued / n + u64::from((i as u64) < queued % n)).min(1000) as usize;
        }
        let p = Processing {
            label: label.to_string(),
            queued: fill.ok,
            backlog,
            drain,
            left,
            total,
            done,
            retried,
            dead,
            records: (found, expected),
        };
        println!(
            "   drained {} in {:.1} s: {:.0} deliveries/s; jobs done {done}, retried {retried}, dead {dead}; records {found}/{expected}",
            backlog - left,
            drain.as_secs_f64(),
            p.rate()
        );
        hub.stop();
        Ok(p)
    }

    /// One growth point: a fresh hub for `fleet`, the reference, then the hub, on `size` bodies.
    async fn growth_point(
        &self,
        label: &str,
        fleet: &Fleet,
        size: usize,
        connections: usize,
    ) -> anyhow::Result<Growth> {
        let site = Site::new(
            self.work
                .path()
                .join(format!("growth-{}", label.replace(' ', "-"))),
            fleet,
        )?;
        let signers = Arc::new(fleet.signers("retell", "api_key"));
        let reference = ReferenceProc::start(
            &site.dir,
            &fleet.reference_keys(&[("retell", "api_key")]),
            Keeping::Nothing,
        )
        .await?;
        let tag = random_tag();
        let r = self
            .measure_with(
                reference.port,
                reference.pid(),
                payload::retell(signers.clone(), size, &tag),
                connections,
            )
            .await;
        drop(reference);
        let (hub, _): (HubProc, _) = site.start(&self.hub_bin).await?;
        let h = self
            .measure_with(
                site.port,
                hub.pid(),
                payload::retell(signers, size, &tag),
                connections,
            )
            .await;
        hub.stop();
        let _ = std::fs::remove_dir_all(&site.dir);
        println!(
            "   {label:>12}: hub {h}\n   {:>12}  reference {:>9.0} req/s, hub/reference {:.2}",
            "",
            r.rate,
            h.rate / r.rate
        );
        Ok(Growth {
            label: label.into(),
            reference: r,
            hub: h,
        })
    }

    /// Throughput by body size (1 tenant), by tenant count (1 KB) and by the load generator's
    /// connections (the main fleet, 1 KB).
    async fn growth(&mut self) -> anyhow::Result<()> {
        println!("\n== growth");
        let connections = self.cli.concurrency;
        let retell = [self.retell.clone()];
        let one = Fleet::new(&retell, 1, 2 << 20);
        let mut by_size = Vec::new();
        for (label, size) in [
            ("body 1 KB", 1024),
            ("body 10 KB", 10 * 1024),
            ("body 100 KB", 100 * 1024),
            ("body 1 MB", 1 << 20),
        ] {
            by_size.push(self.growth_point(label, &one, size, connections).await?);
        }
        let mut by_tenants = Vec::new();
        for n in [1usize, 10, 100, 1000] {
            let label = format!("{n} tenant{}", if n == 1 { "" } else { "s" });
            if n == 1 {
                // The same point as "body 1 KB".
                let mut g = by_size[0].clone();
                g.label = label;
                by_tenants.push(g);
                continue;
            }
            let fleet = Fleet::new(&retell, n, 1 << 20);
            by_tenants.push(self.growth_point(&label, &fleet, 1024, connections).await?);
        }
        let mut by_connections = Vec::new();
        for n in [connections, 2 * connections, 4 * connections] {
            let label = format!("{n} connections");
            by_connections.push(self.growth_point(&label, &self.main, 1024, n).await?);
        }
        self.report.by_size = by_size;
        self.report.by_tenants = by_tenants;
        self.report.by_connections = by_connections;
        Ok(())
    }
}
