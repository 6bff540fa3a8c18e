//! Opening the store `server.database` names (see [`crate::config::Database`]): the SQLite file
//! in `data_dir`, or a PostgreSQL server with the password unsealed from the vault. Every
//! failure is a config error at `server.database`: which server, and what it said.

use secrecy::ExposeSecret as _;

use crate::config::{Config, Database, PostgresSettings};
use crate::secrets::{Place, Vault};
use crate::store::{Store, postgres};

/// The PostgreSQL connection the config names, with its password; `None` for SQLite.
///
/// # Errors
/// When the environment variable is unset or not a PostgreSQL URL (located).
pub fn postgres(config: &Config, vault: &Vault) -> anyhow::Result<Option<PostgresSettings>> {
    postgres_config(config, vault)
}

fn postgres_config(config: &Config, vault: &Vault) -> anyhow::Result<Option<PostgresSettings>> {
    let here = || {
        format!(
            "{}: server.database",
            config.locate(&["server", "database"])
        )
    };
    match &config.server.database {
        Database::Sqlite => Ok(None),
        Database::Postgres { url, .. } => {
            let mut pg = PostgresSettings::parse(url)
                .map_err(|e| anyhow::anyhow!("{}: not a PostgreSQL URL: {e}", here()))?;
            let place = Place::Server {
                field: "database_password".into(),
            };
            if let Some(password) = vault.at(&place) {
                pg.password(password.expose_secret());
            }
            Ok(Some(pg))
        }
        Database::PostgresFromEnv { var } => {
            let url = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("{}: the environment variable {var} is not set", here())
            })?;
            let pg = PostgresSettings::parse(&url).map_err(|_| {
                // The value may hold a password: not repeated.
                anyhow::anyhow!("{}: ${var} is not a PostgreSQL URL", here())
            })?;
            Ok(Some(pg))
        }
    }
}

/// Opens (and, on PostgreSQL, migrates) the store the config names.
///
/// # Errors
/// A located message when the store cannot be opened.
pub async fn open(config: &Config, vault: &Vault) -> anyhow::Result<Store> {
    let here = || {
        format!(
            "{}: server.database",
            config.locate(&["server", "database"])
        )
    };
    match postgres_config(config, vault)? {
        None => {
            Store::open(&config.server.data_dir).map_err(|e| anyhow::anyhow!("{}: {e}", here()))
        }
        Some(pg) => Store::connect_with(pg)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", here())),
    }
}

/// What `hub check` asks of the store, without changing it: on PostgreSQL, that the server
/// answers, takes the login, holds no newer schema, and lets the user create the tables if
/// they are not there yet. `None` when all is well (or the store is SQLite).
pub async fn check(config: &Config, vault: &Vault) -> Option<String> {
    let here = format!(
        "{}: server.database",
        config.locate(&["server", "database"])
    );
    match postgres_config(config, vault) {
        Err(e) => Some(e.to_string()),
        Ok(None) => None,
        Ok(Some(pg)) => postgres::probe(pg)
            .await
            .err()
            .map(|e| format!("{here}: {e}")),
    }
}
