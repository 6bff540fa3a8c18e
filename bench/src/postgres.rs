//! `--database postgres`: the hub on PostgreSQL against the hub on SQLite, in one run. For each
//! of SQLite, one hub on PostgreSQL and two hubs on one PostgreSQL: ingest alone (`workers =
//! 0`, the load split over the hubs) for the run's duration, then the queue that left drained
//! by the same number of hubs with the default 16 workers each. The server is a fresh cluster
//! from `tests/postgres` on loopback, sharing the machine's cores with the hubs and the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hubs::Site;
use crate::load::{self, Until};
use crate::{Bench, addr, payload, random_tag};

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
        let mut out = Vec::new();
        for hubs in [0usize, 1, 2] {
            let database = match hubs {
                0 => None,
                _ => {
                    let url = hub::store::postgres::testing::fresh_database().await;
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
            let started = Instant::now();
            let backlog = procs[0].pending_jobs().await?;
            let mut left = backlog;
            while left > 0 && started.elapsed() < Duration::from_secs(600) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                left = procs[0].pending_jobs().await?;
            }
            let took = started.elapsed();
            let processing = (backlog - left) as f64 / took.as_secs_f64().max(1e-9);
            println!(
                "   {label}: processing {processing:.0} deliveries/s ({} of {backlog} in {:.1} s)",
                backlog - left,
                took.as_secs_f64()
            );
            for p in procs {
                p.stop();
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
