//! `server.database`: where the hub keeps its state.
//!
//! - absent or `"sqlite"`: the embedded default, `hub.db` in `data_dir`;
//! - `"postgres://USER@HOST[:PORT]/DB[?options]"`: a PostgreSQL server several hubs can share;
//!   the password, if the server asks one, is sealed at `server.database_password`
//!   (`hub seal --database-password --write`), never written in the URL;
//! - `"env:VAR"`: a PostgreSQL URL (password included) read from the environment variable
//!   `VAR` when the hub starts, for platforms that hand one out (`DATABASE_URL`).

use super::checker::Checker;
use super::values::Sealed;
use crate::config::ConfigError;

/// Where the hub keeps its state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Database {
    /// `hub.db` in `data_dir`.
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres {
        /// Its URL, without a password.
        url: String,
        /// The password, sealed (`server.database_password`).
        password: Option<Sealed>,
    },
    /// A PostgreSQL URL from an environment variable.
    PostgresFromEnv {
        /// The variable's name.
        var: String,
    },
}

impl Database {
    /// For messages: `sqlite`, `postgres HOST:PORT/DB`, or `postgres from $VAR`.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite => "sqlite".into(),
            Database::Postgres { url, .. } => {
                format!("postgres {}", super::postgres::describe(url))
            }
            Database::PostgresFromEnv { var } => format!("postgres from ${var}"),
        }
    }
}

pub(super) fn parse(
    c: &Checker<'_>,
    text: Option<&str>,
    password: Option<Sealed>,
) -> Result<Database, ConfigError> {
    let at = ["server", "database"];
    let has_password = password.is_some();
    let database = match text {
        None | Some("sqlite") => Database::Sqlite,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let parsed = super::postgres::PostgresSettings::parse(url)
                .map_err(|e| c.value(&at, format!("not a PostgreSQL URL: {e}")))?
                .config;
            if parsed.get_password().is_some() {
                return Err(c.value(
                    &at,
                    "the URL holds a password, in the clear: remove it and seal it at \
                     server.database_password (hub seal --database-password --write), or give \
                     the whole URL in an environment variable (database = \"env:DATABASE_URL\")",
                ));
            }
            if parsed.get_hosts().is_empty() {
                return Err(c.value(
                    &at,
                    "the URL names no host, like postgres://hub@db.internal/hub",
                ));
            }
            Database::Postgres {
                url: url.to_owned(),
                password,
            }
        }
        Some(env) if env.starts_with("env:") => {
            let var = &env[4..];
            let valid = !var.is_empty()
                && var
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                && !var.starts_with(|ch: char| ch.is_ascii_digit());
            if !valid {
                return Err(c.value(&at, format!("`{var}` is not an environment variable name")));
            }
            Database::PostgresFromEnv {
                var: var.to_owned(),
            }
        }
        Some(other) => {
            return Err(c.value(
                &at,
                format!(
                    "expected \"sqlite\", a PostgreSQL URL (\"postgres://hub@db.internal/hub\") or \
                     \"env:VAR\", found {other:?}"
                ),
            ));
        }
    };
    if has_password && !matches!(database, Database::Postgres { .. }) {
        return Err(c.key(
            &["server", "database_password"],
            "only a postgres:// database takes a password here",
        ));
    }
    Ok(database)
}
