//! `hub config push` and `hub config pull`: `hub.toml` in and out of the stored config versions,
//! so a file kept in git stays the way changes are made (see `hub::reload` for how hubs follow).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::config::Config;
use hub::config::document::{FileText, localize};
use hub::config::edit::write_atomic;
use hub::store::{Pushed, VersionPush};

/// `hub config push`: checks the file as `hub check` does, then writes it as the newest version.
/// On PostgreSQL every hub applies it within seconds; it is refused when the database has a
/// version newer than the one the file was made on (its first line), unless `force`. On SQLite
/// the file is the source: the running hub is asked to reload it.
pub fn push(config_path: &Path, reason: String, force: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    if !matches!(
        config.server.database,
        hub::config::Database::Postgres { .. }
    ) {
        println!(
            "the store is SQLite: the file is the source; asking the running hub to reload it"
        );
        return crate::reload(config_path);
    }
    if crate::check(config_path)? != ExitCode::SUCCESS {
        bail!("the file was not pushed");
    }
    let text = std::fs::read_to_string(config_path)?;
    let file = FileText::parse(&text);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = crate::deliveries::store(config_path, &config).await?;
        let newest = store.config_version(None).await?;
        if let Some(v) = &newest
            && localize(&v.document, &file.body).as_deref() == Ok(file.body.as_str())
        {
            println!(
                "version {} already holds this file; nothing to push",
                v.number
            );
            return Ok(ExitCode::SUCCESS);
        }
        let base = if force {
            None
        } else {
            Some(file.version.unwrap_or(0))
        };
        let actor = format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        );
        let push = VersionPush {
            base,
            document: file.body.clone(),
            actor,
            reason: if reason.is_empty() {
                "hub config push".into()
            } else {
                reason
            },
        };
        match store.config_push(push).await? {
            Pushed::Written(n) => {
                write_atomic(config_path, &FileText::render(n, &file.body))?;
                println!(
                    "version {n} written; every hub on the database applies it within seconds"
                );
                Ok(ExitCode::SUCCESS)
            }
            Pushed::Stale { newest } => {
                eprintln!(
                    "the database has version {newest}, newer than version {} this file was made \
                     on: `hub config pull` first (your edits are kept as .unapplied), or push \
                     with --force to write over it",
                    file.version.unwrap_or(0)
                );
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

/// `hub config pull`: writes the newest version into the file, with this hub's own `[server]`
/// settings kept; edits the file had that no version holds are kept as `<name>.unapplied`.
pub fn pull(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let shared = matches!(
        config.server.database,
        hub::config::Database::Postgres { .. }
    );
    let text = std::fs::read_to_string(config_path)?;
    let file = FileText::parse(&text);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = crate::deliveries::store(config_path, &config).await?;
        let Some(v) = store.config_version(None).await? else {
            println!("the store holds no config version yet (a hub records one when it starts)");
            return Ok(ExitCode::SUCCESS);
        };
        let mine = localize(&v.document, &file.body).map_err(anyhow::Error::msg)?;
        if mine == file.body && (!shared || file.version == Some(v.number)) {
            println!(
                "{} already holds version {}",
                config_path.display(),
                v.number
            );
            return Ok(ExitCode::SUCCESS);
        }
        if mine != file.body {
            let aside = config_path.with_extension("toml.unapplied");
            std::fs::write(&aside, &text)
                .with_context(|| format!("cannot keep the file's edits as {}", aside.display()))?;
            println!("the file's own edits are kept as {}", aside.display());
        }
        let rendered = if shared {
            FileText::render(v.number, &mine)
        } else {
            mine
        };
        write_atomic(config_path, &rendered)?;
        println!(
            "{} now holds version {} ({} by {}: {})",
            config_path.display(),
            v.number,
            format_ms(v.applied_at_ms),
            v.actor,
            v.reason
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}
