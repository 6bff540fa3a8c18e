//! `hub migrate` (bring the store's schema up to date, and say where it stands),
//! `hub migrate-store` (copy a SQLite install into PostgreSQL), and `hub backup` / `hub restore`
//! (a SQLite store to a file and back).

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

/// The SQLite store's data directory, or why there is none to back up or restore.
fn sqlite_dir(config_path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let config = hub::config::Config::from_file(config_path)?;
    if !matches!(config.server.database, Database::Sqlite) {
        bail!(
            "the store is PostgreSQL (server.database): back it up with its own tools, pg_dump or \
             point-in-time recovery (docs/operations.md, \"Backup and restore\")"
        );
    }
    Ok(config.server.data_dir)
}

fn print_manifest(m: &hub::store::backup::Manifest) {
    for (table, n) in &m.counts {
        println!("  {table:<18} {n:>10} rows");
    }
    println!("  schema version {}", m.schema_version);
}

/// `hub backup --to FILE`.
pub fn backup(config_path: &Path, to: &Path) -> anyhow::Result<ExitCode> {
    let data_dir = sqlite_dir(config_path)?;
    let manifest = hub::store::backup::backup(&data_dir, to)
        .with_context(|| format!("backing up {} to {}", data_dir.display(), to.display()))?;
    println!(
        "backed up {} to {}:",
        data_dir.join("hub.db").display(),
        to.display()
    );
    print_manifest(&manifest);
    Ok(ExitCode::SUCCESS)
}

/// `hub restore --from FILE`.
pub fn restore(config_path: &Path, from: &Path) -> anyhow::Result<ExitCode> {
    let data_dir = sqlite_dir(config_path)?;
    let manifest = hub::store::backup::restore(from, &data_dir)
        .with_context(|| format!("restoring {} into {}", from.display(), data_dir.display()))?;
    println!(
        "restored {} into {}, every table's rows checked:",
        from.display(),
        data_dir.join("hub.db").display()
    );
    print_manifest(&manifest);
    Ok(ExitCode::SUCCESS)
}
