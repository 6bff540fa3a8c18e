//! `--database postgres`: the hub on PostgreSQL against the hub on SQLite, in one run. For each
//! of SQLite, one hub on PostgreSQL and two hubs on one PostgreSQL: ingest alone (`workers =
//! 0`, the load split over the hubs) for the run's duration, then the queue that left drained
//! by the same number of hubs with the default 16 workers each. The server is a fresh cluster
//! from `tests/postgres` on loopback, sharing the machine's cores with the hubs and the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hubs::{HubProc, Site, cpu_time};
use crate::load::{self, Until};
use crate::pgstats::{Counters, Probe};
use crate::{Bench, addr, payload, random_tag};

/// The hubs' CPU so far.
fn hubs_cpu(procs: &[HubProc]) -> Duration {
    procs.iter().filter_map(|p| cpu_time(p.pid())).sum()
}

/// Prints what one unit of a phase cost PostgreSQL and the hubs.
fn per_unit(label: &str, unit: &str, n: u64, pg: (Counters, Counters), hub: Duration) {
    let n = n.max(1) as f64;
    let (a, b) = pg;
    println!(
        "      per {unit}: PostgreSQL CPU {:.0} µs, {:.1} statements, {:.1} rows, {:.0} bytes of WAL; hub CPU {:.0} µs ({label})",
        (b.cpu - a.cpu).as_secs_f64() * 1e6 / n,
        (b.statements - a.statements) as f64 / n,
        (b.rows - a.rows) as f64 / n,
        (b.wal - a.wal) as f64 / n,
        hub.as_secs_f64() * 1e6 / n,
    );
}

/// `taskset` on every thread of `pid` (its children forked later inherit it).
fn pin(pid: u32, core: usize) {
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status();
}

/// One backend's figures.
pub struct Figures {
    /// `SQLite`, `PostgreSQL, 1 hub`, ...
    pub label: String,
    /// Webhooks stored per second (signed, verified, committed before the 200).
    pub ingest: f64,
    /// Deliveries processed per second, the backlog drained.
    pub processing: f64,
}

impl Bench {
    /// See the module docs.
    pub(crate) async fn postgres(&mut self) -> anyhow::Result<Vec<Figures>> {
        println!(
            "\n== PostgreSQL against SQLite ({} tenants, 1 KB Retell bodies)",
            self.main.tenants.len()
        );
        if self.cli.pin {
            // The bench and the hubs it starts on core 1; PostgreSQL on core 0, below.
            pin(std::process::id(), 1);
            println!("   pinned: PostgreSQL on core 0, the hubs and the load on core 1 (taskset)");
        }
        let mut out = Vec::new();
        for hubs in [0usize, 1, 2] {
            let mut pg_url = None;
            let database = match hubs {
                0 => None,
                _ => {
                    let url = hub::store::postgres::testing::fresh_database().await;
                    pg_url = Some(url.clone());
                    let password = hub::store::postgres::testing::PASSWORD;
                    Some((
                        url.replacen(&format!(":{password}@"), "@", 1),
                        password.to_string(),
                    ))
                }
            };
            let label = match hubs {
                0 => "SQLite, 1 hub".to_string(),
                n => format!("PostgreSQL, {n} hub{}", if n > 1 { "s" } else { "" }),
            };
            let n = hubs.max(1);
            let probe = match &database {
                Some(_) => Some(Probe::connect().await?),
                None => None,
            };
            if let (true, Some(probe)) = (self.cli.pin, &probe) {
                for pid in probe.pids() {
                    pin(pid, 0);
                }
            }
            self.main.database = database;
            // Ingest alone.
            self.main.workers = Some(0);
            let sites: Vec<Site> = (0..n)
                .map(|i| Site::new(self.work.path().join(format!("pg-{hubs}-{i}")), &self.main))
                .collect::<anyhow::Result<_>>()?;
            let mut procs = Vec::new();
            for site in &sites {
                procs.push(site.start(&self.hub_bin).await?.0);
            }
            let pg_before = match &probe {
                Some(p) => Some(p.reset().await?),
                None => None,
            };
            let hub_before = hubs_cpu(&procs);
            let tag = random_tag();
            let signers = Arc::new(self.main.signers("retell", "api_key"));
            let each = (self.cli.concurrency / n).max(1);
            let runs: Vec<_> = sites
                .iter()
                .enumerate()
                .map(|(i, site)| {
                    let make = payload::retell(signers.clone(), 1024, &format!("{tag}{i}"));
                    tokio::spawn(load::run(
                        addr(site.port),
                        each,
                        Until::Elapsed(self.duration),
                        make,
                    ))
                })
                .collect();
            let mut outcomes = Vec::new();
            for run in runs {
                outcomes.push(run.await?);
            }
            let ok: u64 = outcomes.iter().map(|o| o.ok).sum();
            let errors: u64 = outcomes.iter().map(|o| o.errors()).sum();
            let elapsed = outcomes.iter().map(|o| o.elapsed).max().unwrap_or_default();
            let ingest = ok as f64 / elapsed.as_secs_f64().max(1e-9);
            println!(
                "   {label}: ingest {ingest:.0} webhooks/s ({ok} in {:.1} s, {errors} errors)",
                elapsed.as_secs_f64()
            );
            let hub_spent = hubs_cpu(&procs).saturating_sub(hub_before);
            if let (Some(probe), Some(before)) = (&probe, pg_before) {
                per_unit(
                    &label,
                    "webhook stored",
                    ok,
                    (before, probe.read().await?),
                    hub_spent,
                );
            } else {
                let n = ok.max(1) as f64;
                println!(
                    "      per webhook stored: hub CPU {:.0} µs",
                    hub_spent.as_secs_f64() * 1e6 / n
                );
            }
            for p in procs {
                p.stop();
            }
            // The queue that ingest left, drained by as many hubs with their default workers.
            self.main.workers = None;
            let sites: Vec<Site> = (0..n)
                .map(|i| Site::new(self.work.path().join(format!("pg-{hubs}-{i}")), &self.main))
                .collect::<anyhow::Result<_>>()?;
            let mut procs = Vec::new();
            for site in &sites {
                procs.push(site.start(&self.hub_bin).await?.0);
            }
            let pg_before = match &probe {
                Some(p) => Some(p.reset().await?),
                None => None,
            };
            let hub_before = hubs_cpu(&procs);
            let started = Instant::now();
            let backlog = procs[0].pending_jobs().await?;
            let mut left = backlog;
            // `/readyz` counts the pending jobs: on PostgreSQL that count costs ~50 ms of server
            // time with a large queue, so polling it every 50 ms took half a core from the
            // hubs being measured. Every 250 ms it costs ~5 %.
            while left > 0 && started.elapsed() < Duration::from_secs(600) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                left = procs[0].pending_jobs().await?;
            }
            let took = started.elapsed();
            let processing = (backlog - left) as f64 / took.as_secs_f64().max(1e-9);
            println!(
                "   {label}: processing {processing:.0} deliveries/s ({} of {backlog} in {:.1} s)",
                backlog - left,
                took.as_secs_f64()
            );
            let hub_spent = hubs_cpu(&procs).saturating_sub(hub_before);
            let done = (backlog - left).max(0) as u64;
            if let (Some(probe), Some(before)) = (&probe, pg_before) {
                per_unit(
                    &label,
                    "delivery processed",
                    done,
                    (before, probe.read().await?),
                    hub_spent,
                );
                println!("      the statements that took PostgreSQL's time:");
                for t in probe.top(8).await? {
                    let q: String = t.query.chars().take(110).collect();
                    println!(
                        "        {:>7.0} ms {:>8} calls {:>8} rows  {q}",
                        t.ms, t.calls, t.rows
                    );
                }
            } else {
                let n = done.max(1) as f64;
                println!(
                    "      per delivery processed: hub CPU {:.0} µs",
                    hub_spent.as_secs_f64() * 1e6 / n
                );
            }
            for p in procs {
                p.stop();
            }
            if let (1, Some(url), Some(probe)) = (hubs, &pg_url, &probe) {
                retention(url, probe).await?;
            }
            for site in &sites {
                let _ = std::fs::remove_dir_all(&site.dir);
            }
            out.push(Figures {
                label,
                ingest,
                processing,
            });
        }
        self.main.database = None;
        let sqlite = &out[0];
        for f in &out[1..] {
            println!(
                "   {}: ingest {:.2}x SQLite's, processing {:.2}x SQLite's",
                f.label,
                f.ingest / sqlite.ingest.max(1e-9),
                f.processing / sqlite.processing.max(1e-9)
            );
        }
        if let [_, one, two] = &out[..] {
            println!(
                "   two hubs on PostgreSQL against one: ingest {:.2}x, processing {:.2}x",
                two.ingest / one.ingest.max(1e-9),
                two.processing / one.processing.max(1e-9)
            );
        }
        Ok(out)
    }
}

/// What retention costs PostgreSQL on the rows one hub just processed: the hub's own pruning
/// (batches of `retention::BATCH` rows per transaction: delivery payloads emptied, finished jobs
/// and events deleted), against dropping a table that holds the same deliveries, which is what
/// retention by time partitions would do instead.
async fn retention(url: &str, probe: &Probe) -> anyhow::Result<()> {
    let store = hub::store::postgres::Postgres::connect(url).await?;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE bench_partition AS SELECT * FROM deliveries")
        .await?;
    let before = probe.reset().await?;
    let started = Instant::now();
    let cutoff = hub::clock::now_ms() + 1_000;
    let mut pruned = hub::store::Pruned::default();
    loop {
        let p = store.prune_batch(cutoff, hub::retention::BATCH).await?;
        if p.is_empty() {
            break;
        }
        pruned.deliveries += p.deliveries;
        pruned.jobs += p.jobs;
        pruned.events += p.events;
    }
    let took = started.elapsed();
    let after = probe.read().await?;
    println!(
        "   retention, row by row (the hub's pruning): {} payloads emptied, {} jobs and {} events deleted in {:.1} s",
        pruned.deliveries,
        pruned.jobs,
        pruned.events,
        took.as_secs_f64()
    );
    per_unit(
        "row by row",
        "delivery pruned",
        pruned.deliveries as u64,
        (before, after),
        Duration::ZERO,
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM bench_partition", &[])
        .await?
        .get(0);
    let before = probe.reset().await?;
    let started = Instant::now();
    client.batch_execute("DROP TABLE bench_partition").await?;
    let took = started.elapsed();
    println!(
        "   retention, a partition dropped: a table of the same {rows} deliveries dropped in {:.3} s",
        took.as_secs_f64()
    );
    per_unit(
        "DROP TABLE",
        "delivery pruned",
        rows as u64,
        (before, probe.read().await?),
        Duration::ZERO,
    );
    Ok(())
}
