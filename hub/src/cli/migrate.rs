//! `hub migrate` (bring the store's schema up to date, and say where it stands) and
//! `hub migrate-store` (copy a SQLite install into PostgreSQL).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::config::Database;

/// `hub migrate`: opens the store the config names, which applies any migration it lacks.
pub fn migrate(config_path: &Path) -> anyhow::Result<ExitCode> {
    let (config, vault) = hub::reload::load(config_path)?;
    runtime()?.block_on(async {
        let store = hub::database::open(&config, &vault).await?;
        println!(
            "{}: schema at version {} (this hub's)",
            store.describe(),
            store.schema_version().await?
        );
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `hub migrate-store [--to URL|env:VAR]`: copies the SQLite store in `data_dir` into
/// PostgreSQL: the one `--to` names, else the config's `server.database`.
pub fn migrate_store(config_path: &Path, to: Option<String>) -> anyhow::Result<ExitCode> {
    let (config, vault) = hub::reload::load(config_path)?;
    let target = match to {
        Some(url) => {
            let url = match url.strip_prefix("env:") {
                Some(var) => std::env::var(var)
                    .with_context(|| format!("--to: the environment variable {var} is not set"))?,
                None => url,
            };
            hub::config::PostgresSettings::parse(&url)
                .map_err(|_| anyhow::anyhow!("--to: not a PostgreSQL URL"))?
        }
        None => match &config.server.database {
            Database::Sqlite => bail!(
                "the config's server.database is SQLite: name the PostgreSQL store with --to, or set server.database first"
            ),
            _ => hub::database::postgres(&config, &vault)?
                .context("server.database names no PostgreSQL store")?,
        },
    };
    runtime()?.block_on(async {
        println!(
            "copying {} into postgres {}",
            config.server.data_dir.join("hub.db").display(),
            target.target()
        );
        let copied = hub::store::migrate::sqlite_to_postgres(&config.server.data_dir, target, |c| {
            println!("  {:<18} {:>10} rows", c.table, c.to)
        })
        .await?;
        let rows: i64 = copied.iter().map(|c| c.to).sum();
        println!(
            "done: {rows} rows in {} tables, every count checked; start the hub on PostgreSQL (server.database)",
            copied.len()
        );
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
