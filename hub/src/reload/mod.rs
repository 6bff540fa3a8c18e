//! Live config: `hub reload`, `SIGHUP` and the console apply an edited `hub.toml` without a
//! restart and without dropping a webhook.
//!
//! The hub that serves is one [`Hub`] behind [`Current`]. Every request, job and schedule step
//! takes the hub current when it starts ([`Shared`] hands it to each handler), so a reload
//! builds a whole new hub from the file (its tenants, connectors and their `.wasm`, credentials,
//! routes, schedules, endpoints, tokens, rate limits), checks it as `hub check` does, and swaps
//! it in at once; what was running finishes on the hub it started with. A config that does not
//! parse, whose sealed values do not open, or that fails a check is refused with the same
//! located errors, and the old config keeps serving. The store and the counters carry over; the
//! console's sessions and the refusals it lists belong to the router (`server::router_of`), not
//! to a hub, so they carry over too (a session of a token the new config no longer has is closed
//! at its next request).
//!
//! Some settings are read once at start: `server.listen`, `server.admin_listen`, `database`, `data_dir`, `workers`,
//! `body_limit` and `retention_days`. A reload that changes one applies the rest and says which
//! need a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::FromRef;
use tokio::sync::{Mutex, watch};

use crate::config::Config;
use crate::secrets::redact::{self, Redactor};
use crate::secrets::{MasterKey, Vault};
use crate::state::{Hub, rebuild};

mod change;
mod versions;

pub use change::{Problem, Refused};
pub use versions::{Change, VersionState};

/// Reads `hub.toml` at `path` and opens its sealed values with the master key
/// (`HUB_MASTER_KEY`, or the config's `server.master_key_file`).
///
/// # Errors
/// When the file does not parse or validate (the error names file, line and field), or the key
/// is missing or does not open a value.
pub fn load(path: &Path) -> anyhow::Result<(Config, Vault)> {
    let (config, vault) = open(path)?;
    redact::install(Arc::new(Redactor::of(&vault)));
    Ok((config, vault))
}

/// [`load`] without making its values the ones log lines mask.
fn open(path: &Path) -> anyhow::Result<(Config, Vault)> {
    let config = Config::from_file(path)?;
    vault_of(config)
}

/// [`open`] on `text`, read as the file `path` (a reload or a version, until it applies).
fn open_text(text: &str, path: &Path) -> anyhow::Result<(Config, Vault)> {
    vault_of(Config::from_str(text, path)?)
}

fn vault_of(config: Config) -> anyhow::Result<(Config, Vault)> {
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let key = MasterKey::load(env.as_deref(), config.server.master_key_file.as_deref())?;
    let vault = config.open_vault(&key)?;
    Ok((config, vault))
}

/// The hub that serves now, and where its config comes from.
pub struct Current {
    hub: ArcSwap<Hub>,
    /// Bumped by each reload; the scheduler and workers watch it.
    generation: watch::Sender<u64>,
    /// The `hub.toml` a reload reads; `None` for a hub built in code (tests, benchmarks).
    path: Option<PathBuf>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// The config version this hub runs.
    versions: versions::Running,
}

/// What a reload applied.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Tenants now served.
    pub tenants: usize,
    /// Connectors now loaded.
    pub connectors: usize,
    /// Settings that changed but take effect only after a restart.
    pub restart_needed: Vec<String>,
    /// The config version now run (none for a hub built in code).
    pub version: Option<i64>,
}

/// Why a reload was refused: each problem, located. The old config keeps serving.
#[derive(Debug, Clone)]
pub struct NotApplied(pub Vec<String>);

impl std::error::Error for NotApplied {}

impl std::fmt::Display for NotApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}

impl Current {
    /// Serves `hub`; `path` is the `hub.toml` reloads read (`None`: reloads are refused).
    pub fn new(hub: Arc<Hub>, path: Option<PathBuf>) -> Arc<Current> {
        redact::install(hub.redactor.clone());
        Arc::new(Current {
            hub: ArcSwap::new(hub),
            generation: watch::Sender::new(0),
            path,
            reloading: Mutex::new(()),
            versions: versions::Running::default(),
        })
    }

    /// The hub that serves now.
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.load_full()
    }

    /// Tells of each reload.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The `hub.toml` reloads read.
    pub fn config_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads, checks and applies the config file (see the module docs), kept as a new config
    /// version if it differs from the newest (`file`, `hub reload`).
    ///
    /// # Errors
    /// [`NotApplied`] with every problem; nothing changed then.
    pub async fn reload(&self) -> Result<Reloaded, NotApplied> {
        self.reload_as(Change::new("file", "hub reload")).await
    }

    /// [`reload`](Current::reload), the new version written as `change` says (who, why).
    ///
    /// # Errors
    /// [`NotApplied`] with every problem, or when the database has a newer version than the
    /// one this hub's file was made on (the file is not applied; the hub takes the newer one).
    pub async fn reload_as(&self, change: Change) -> Result<Reloaded, NotApplied> {
        let _one = self.reloading.lock().await;
        let Some(path) = self.path.clone() else {
            return Err(NotApplied(vec![
                "this hub was not started from a config file".into(),
            ]));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| NotApplied(vec![format!("cannot read {}: {e}", path.display())]))?;
        let new = self.build(text.clone()).await?;
        let file = crate::config::document::FileText::parse(&text);
        let number = self.record(&file.body, change).await?;
        // On PostgreSQL the file's first line names the version it now is, so an edit made on it
        // next is made on the right version.
        if let Some(n) = number
            && self.hub().store.shared()
            && file.version != Some(n)
            && let Err(e) = crate::config::edit::write_atomic(
                &path,
                &crate::config::document::FileText::render(n, &file.body),
            )
        {
            tracing::warn!(
                "config version {n} applied, but {} was not rewritten: {e}",
                path.display()
            );
        }
        Ok(self.swap(new, number, file.body))
    }

    /// A hub built from `text` (a whole `hub.toml`) and checked as `hub check` does.
    async fn build(&self, text: String) -> Result<Hub, NotApplied> {
        let path = self.path.clone().ok_or_else(|| {
            NotApplied(vec!["this hub was not started from a config file".into()])
        })?;
        let old = self.hub();
        let built = tokio::task::spawn_blocking(move || -> Result<Hub, Vec<String>> {
            let (config, vault) = open_text(&text, &path).map_err(|e| vec![format!("{e:#}")])?;
            let hub = rebuild(&old, config, vault).map_err(|e| vec![format!("{e:#}")])?;
            let problems = crate::check::check(&hub.config, &hub.runtime, &hub.vault);
            if problems.is_empty() {
                Ok(hub)
            } else {
                Err(problems)
            }
        })
        .await;
        match built {
            Ok(Ok(hub)) => Ok(hub),
            Ok(Err(problems)) => {
                tracing::warn!(
                    problems = problems.len(),
                    "config refused; the old config keeps serving:\n{}",
                    problems.join("\n")
                );
                Err(NotApplied(problems))
            }
            Err(e) => Err(NotApplied(vec![format!("the reload failed: {e}")])),
        }
    }

    /// Serves `new` from now on, as config version `number` whose document this hub runs as
    /// `body`.
    fn swap(&self, new: Hub, number: Option<i64>, body: String) -> Reloaded {
        let old = self.hub();
        let new = Arc::new(new);
        let restart_needed = restart_needed(&old.config, &new.config);
        let reloaded = Reloaded {
            tenants: new.config.tenants.len(),
            connectors: new.config.connectors.len(),
            restart_needed,
            version: number,
        };
        redact::install(new.redactor.clone());
        self.hub.store(new);
        self.versions.ran(number, body);
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(
            tenants = reloaded.tenants,
            connectors = reloaded.connectors,
            version = number,
            "config applied"
        );
        for setting in &reloaded.restart_needed {
            tracing::warn!("{setting} changed: it takes effect after a restart");
        }
        reloaded
    }
}

/// The settings read once at start that differ between `old` and `new`.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.server, &new.server);
    let mut changed = Vec::new();
    if a.admin_listen != b.admin_listen {
        changed.push("server.admin_listen".to_string());
    }
    if a.listen != b.listen {
        changed.push("server.listen".to_string());
    }
    if a.database != b.database {
        changed.push("server.database".to_string());
    }
    if a.data_dir != b.data_dir {
        changed.push("server.data_dir".to_string());
    }
    if a.workers != b.workers {
        changed.push("server.workers".to_string());
    }
    if a.body_limit != b.body_limit {
        changed.push("server.body_limit".to_string());
    }
    if a.retention_days != b.retention_days {
        changed.push("server.retention_days".to_string());
    }
    if a.audit_retention_days != b.audit_retention_days {
        changed.push("server.audit_retention_days".to_string());
    }
    changed
}

/// The router's state: handlers take the hub current when the request arrives
/// (`State<Arc<Hub>>`), or the [`Current`] itself (`State<Arc<Current>>`) to reload.
#[derive(Clone)]
pub struct Shared(pub Arc<Current>);

impl FromRef<Shared> for Arc<Hub> {
    fn from_ref(shared: &Shared) -> Arc<Hub> {
        shared.0.hub()
    }
}

impl FromRef<Shared> for Arc<Current> {
    fn from_ref(shared: &Shared) -> Arc<Current> {
        shared.0.clone()
    }
}
