//! Config versions (see [`crate::store::ConfigVersion`]): every config this hub applies is kept in
//! the store as a version, with who and why.
//!
//! - **SQLite**: the file stays the source. Each applied file that differs from the newest version
//!   becomes a new one; the versions are its history, and a rollback writes an old one back to
//!   the file.
//! - **PostgreSQL**: the database is the source, shared by every hub on it. A change applied on
//!   one hub (its file reloaded, the console, the API, a rollback) is written on top of the
//!   version that hub runs, or refused as stale; every other hub hears of it (`NOTIFY`, and a poll
//!   every [`POLL`] in case a notification was lost), builds it with its own [`PER_HUB`]
//!   settings, swaps it in and rewrites its own `hub.toml` to match, naming the version on the
//!   file's first line. A hub that cannot build a version (a connector's `.wasm` missing on that
//!   machine) keeps serving what it has, reports why ([`VersionState`]) and tries again.
//!
//! [`PER_HUB`]: crate::config::document::PER_HUB

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{Current, NotApplied, Reloaded};
use crate::config::document::{FileText, localize};
use crate::config::edit::write_atomic;
use crate::store::{ConfigVersion, Pushed, VersionPush};

/// How often a hub on PostgreSQL looks for a newer version when no notification came.
pub const POLL: Duration = Duration::from_secs(5);

/// Setting `HUB_CONFIG_FROM_FILE=1` makes a hub on PostgreSQL start from its file even when the
/// database has a newer version (the file is written on top of it).
const FROM_FILE: &str = "HUB_CONFIG_FROM_FILE";

/// Who changes the config, and why: kept with the version (and in the audit trail).
#[derive(Clone, Debug)]
pub struct Change {
    /// `console:<user>`, `api:<token>`, `file`, `cli`, `consent`, `registration`.
    pub actor: String,
    /// In words.
    pub reason: String,
    /// The tenant it concerns, if one (for the audit trail).
    pub tenant: Option<String>,
}

impl Change {
    /// A change by `actor` because `reason`.
    pub fn new(actor: impl Into<String>, reason: impl Into<String>) -> Change {
        Change {
            actor: actor.into(),
            reason: reason.into(),
            tenant: None,
        }
    }

    /// Concerning `tenant`.
    #[must_use]
    pub fn tenant(mut self, tenant: impl ToString) -> Change {
        self.tenant = Some(tenant.to_string());
        self
    }
}

/// The version a hub runs, and the newer one it could not apply, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct VersionState {
    /// The config version this hub runs (none: a hub built in code, or none recorded yet).
    pub running: Option<i64>,
    /// A newer version this hub could not apply: its number and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<(i64, String)>,
}

/// [`VersionState`] and the document this hub runs, as its own file should read.
#[derive(Default)]
pub(super) struct Running(std::sync::Mutex<(VersionState, String)>);

impl Running {
    pub(super) fn ran(&self, number: Option<i64>, body: String) {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0.running = number.or(state.0.running);
        if state
            .0
            .failed
            .as_ref()
            .is_some_and(|(n, _)| Some(*n) <= number)
        {
            state.0.failed = None;
        }
        state.1 = body;
    }

    fn failed(&self, number: i64, why: String) {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0.failed = Some((number, why));
    }

    pub(super) fn get(&self) -> (VersionState, String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// When `path` was last written (ms since the epoch).
fn modified_ms(path: &Path) -> Option<i64> {
    let at = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

fn refused(what: impl std::fmt::Display) -> NotApplied {
    NotApplied(vec![what.to_string()])
}

impl Current {
    /// The config version this hub runs.
    pub fn version(&self) -> VersionState {
        self.versions.get().0
    }

    /// Whether this hub keeps versions: started from a file.
    fn versioned(&self) -> bool {
        self.path.is_some()
    }

    /// Keeps `body` (a file this hub built) as a new version if it differs from the newest;
    /// the version this hub then runs.
    pub(super) async fn record(
        &self,
        body: &str,
        change: super::Change,
    ) -> Result<Option<i64>, NotApplied> {
        if !self.versioned() {
            return Ok(None);
        }
        let store = self.hub().store.clone();
        let shared = store.shared();
        let newest = store
            .config_version(None)
            .await
            .map_err(|e| refused(format!("cannot read the config versions: {e}")))?;
        if let Some(v) = &newest
            && localize(&v.document, body).as_deref() == Ok(body)
        {
            return Ok(Some(v.number));
        }
        let running = self.version().running;
        let base = if shared {
            running.or(newest.as_ref().map(|v| v.number))
        } else {
            None
        };
        self.push(base, body.to_owned(), change).await.map(Some)
    }

    pub(super) async fn push(
        &self,
        base: Option<i64>,
        document: String,
        change: Change,
    ) -> Result<i64, NotApplied> {
        let store = self.hub().store.clone();
        let push = VersionPush {
            base,
            document,
            actor: change.actor.clone(),
            reason: change.reason.clone(),
        };
        match store.config_push(push).await {
            Ok(Pushed::Written(n)) => {
                let mut entry = crate::store::AuditEntry::now(
                    change.actor,
                    "config.version",
                    format!("version {n}"),
                )
                .detail(change.reason);
                entry.tenant = change.tenant;
                crate::audit::record(&store, entry);
                Ok(n)
            }
            Ok(Pushed::Stale { newest }) => Err(refused(format!(
                "the config changed meanwhile: the database has version {newest}, and this change \
                 was made on version {}; nothing was applied (this hub takes version {newest} in a \
                 moment: make the change again on it)",
                base.unwrap_or(0)
            ))),
            Err(e) => Err(refused(format!("cannot record the config version: {e}"))),
        }
    }

    /// At start: makes the file and the store's versions agree (see the module docs). On
    /// PostgreSQL a file older than the database's newest version (made on an older one, as its
    /// first line says, or written before the newest was) gives way to it, unless
    /// `HUB_CONFIG_FROM_FILE=1`; the file is kept beside as `<name>.unapplied`. A file edited
    /// since the newest version is written on top of it.
    ///
    /// # Errors
    /// When the store or the file cannot be read, or the file cannot be recorded.
    pub async fn adopt(&self) -> anyhow::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let store = self.hub().store.clone();
        let text = std::fs::read_to_string(&path)?;
        let file = FileText::parse(&text);
        let newest = store.config_version(None).await?;
        let forced = std::env::var(FROM_FILE).is_ok_and(|v| v == "1");
        let Some(v) = newest else {
            let n = self
                .push(
                    None,
                    file.body.clone(),
                    Change::new("file", "first start on this database"),
                )
                .await?;
            return self.started(&path, &file, n);
        };
        let mine = localize(&v.document, &file.body).map_err(anyhow::Error::msg)?;
        if mine == file.body {
            return self.started(&path, &file, v.number);
        }
        // Edited since the newest version: made on it (its first line names it), or, a file
        // without that line, changed after the version was written.
        let edited_since = file.version == Some(v.number)
            || (file.version.is_none()
                && modified_ms(&path).is_some_and(|ms| ms > v.applied_at_ms));
        if !store.shared() || forced || edited_since {
            let why = if store.shared() {
                format!(
                    "a hub started from its file, edited since version {}",
                    v.number
                )
            } else {
                "hub started".to_owned()
            };
            let base = (store.shared() && !forced).then_some(v.number);
            let n = self
                .push(base, file.body.clone(), Change::new("file", why))
                .await?;
            return self.started(&path, &file, n);
        }
        tracing::warn!(
            "{} is older than the database's config version {} (by {}: {}); this hub runs \
             version {} and rewrites the file (the old one is kept as .unapplied); start with \
             {FROM_FILE}=1 to apply the file instead",
            path.display(),
            v.number,
            v.actor,
            v.reason,
            v.number
        );
        // The file's own config serves until the version is built.
        self.versions.ran(file.version, file.body.clone());
        self.apply(&v).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Records that this hub runs version `n`, its file being `file`.
    fn started(&self, path: &Path, file: &FileText, n: i64) -> anyhow::Result<()> {
        self.versions.ran(Some(n), file.body.clone());
        if self.hub().store.shared() && file.version != Some(n) {
            write_atomic(path, &FileText::render(n, &file.body))?;
        }
        tracing::info!("config version {n}");
        Ok(())
    }

    /// Builds and serves version `v` with this hub's own settings, and writes its file to match
    /// (on SQLite without the version line: the file is the source there). Local edits the file
    /// had that no version holds are kept as `<name>.unapplied`.
    pub(super) async fn apply(&self, v: &ConfigVersion) -> Result<Reloaded, NotApplied> {
        let path = self.path.clone().ok_or_else(|| refused("no config file"))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
        let file = FileText::parse(&text);
        let mine = localize(&v.document, &file.body).map_err(refused)?;
        let shared = self.hub().store.shared();
        let rendered = if shared {
            FileText::render(v.number, &mine)
        } else {
            mine.clone()
        };
        let hub = match self.build(rendered.clone()).await {
            Ok(hub) => hub,
            Err(e) => {
                self.versions.failed(v.number, e.to_string());
                return Err(e);
            }
        };
        let (_, ran) = self.versions.get();
        if file.body != ran && file.body != mine {
            let aside = path.with_extension("toml.unapplied");
            if let Err(e) = std::fs::write(&aside, &text) {
                tracing::warn!(
                    "cannot keep the unapplied edits as {}: {e}",
                    aside.display()
                );
            }
        }
        if let Err(e) = write_atomic(&path, &rendered) {
            tracing::warn!(
                "config version {} applied, but {} was not rewritten: {e}",
                v.number,
                path.display()
            );
        }
        Ok(self.swap(hub, Some(v.number), mine))
    }

    /// Writes version `number`'s document again as the newest version (`change` says who and
    /// why) and applies it; on PostgreSQL every hub follows.
    ///
    /// # Errors
    /// No such version, it does not build here, or a newer version came first.
    pub async fn rollback(&self, number: i64, change: Change) -> Result<Reloaded, NotApplied> {
        let _one = self.reloading.lock().await;
        if !self.versioned() {
            return Err(refused("this hub was not started from a config file"));
        }
        let store = self.hub().store.clone();
        let old = store
            .config_version(Some(number))
            .await
            .map_err(|e| refused(format!("cannot read the config versions: {e}")))?
            .filter(|v| v.number == number)
            .ok_or_else(|| refused(format!("there is no config version {number}")))?;
        let newest = store
            .config_versions(None, 1)
            .await
            .map_err(|e| refused(format!("cannot read the config versions: {e}")))?
            .first()
            .map_or(0, |v| v.number);
        let base = if store.shared() {
            self.version().running.or(Some(newest))
        } else {
            Some(newest)
        };
        // Built before it is written: a version that does not build here is not made newest.
        let probe = ConfigVersion {
            number: newest + 1,
            ..old.clone()
        };
        let path = self.path.clone().ok_or_else(|| refused("no config file"))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
        let mine = localize(&probe.document, &FileText::parse(&text).body).map_err(refused)?;
        self.build(mine).await?;
        let reason = format!("rollback to version {number}: {}", change.reason);
        let n = self
            .push(
                base,
                old.document.clone(),
                Change::new(change.actor, reason),
            )
            .await?;
        let written = ConfigVersion { number: n, ..old };
        self.apply(&written).await
    }

    /// On PostgreSQL, until `stop`: applies each newer version as it is written (see the module
    /// docs). Returns at once on SQLite or for a hub without a file.
    pub async fn follow(&self, mut stop: watch::Receiver<bool>) {
        let store = self.hub().store.clone();
        if !store.shared() || !self.versioned() {
            return;
        }
        loop {
            tokio::select! {
                () = store.config.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            }
            let newest = match store.config_versions(None, 1).await {
                Ok(v) => v.first().map(|v| v.number),
                Err(e) => {
                    tracing::debug!("cannot read the config versions: {e}");
                    continue;
                }
            };
            let state = self.version();
            let Some(newest) = newest.filter(|n| state.running.is_none_or(|r| *n > r)) else {
                continue;
            };
            let _one = self.reloading.lock().await;
            if self.version().running.is_some_and(|r| r >= newest) {
                continue;
            }
            let Ok(Some(v)) = store.config_version(None).await else {
                continue;
            };
            let retry = state.failed.as_ref().is_some_and(|(n, _)| *n == v.number);
            match self.apply(&v).await {
                Ok(_) => tracing::info!(
                    "config version {} applied (by {}: {})",
                    v.number,
                    v.actor,
                    v.reason
                ),
                Err(e) if !retry => tracing::error!(
                    "config version {} cannot be applied on this hub; it keeps serving version {}: {e}",
                    v.number,
                    state.running.unwrap_or(0)
                ),
                Err(_) => {}
            }
        }
    }
}
