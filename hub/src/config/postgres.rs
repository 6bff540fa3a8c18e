//! Where a PostgreSQL store is and how to reach it: [`PostgresSettings`], tokio-postgres's
//! connection settings plus how the server's TLS certificate is checked, read from a libpq-style
//! URL. The store's `postgres::tls` makes the TLS connector from them.
//!
//! `sslmode` means what it means to libpq (and so to Neon, RDS, Supabase and `psql`):
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `prefer` (the default) | when the server offers TLS | no |
//! | `require` | yes | no; as `verify-ca` when `sslrootcert` is given (libpq's rule) |
//! | `verify-ca` | yes | signed by a trusted authority |
//! | `verify-full` | yes | signed by a trusted authority, and for the host in the URL |
//!
//! The trusted authorities are the PEM file `sslrootcert` names, or the system's (`sslrootcert`
//! absent or `system`, as a hosted server's publicly signed certificate needs). tokio-postgres
//! itself knows only `disable`, `prefer` and `require`: the two checking modes and `sslrootcert`
//! are taken out of the URL here and become the TLS connector's verifier ([rustls]).
//! `channel_binding=require` works over TLS (SCRAM bound to the server's certificate).

use std::path::PathBuf;
use std::str::FromStr as _;

use tokio_postgres::config::SslMode;

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Encrypted (when TLS is used) but not authenticated: libpq's `prefer` and `require`.
    Nothing,
    /// Signed by a trusted authority: `verify-ca`.
    Authority,
    /// Signed by a trusted authority and issued for the host: `verify-full`.
    Full,
}

/// Where to connect and how: what a `server.database` URL says.
#[derive(Clone)]
pub struct PostgresSettings {
    /// tokio-postgres's part (host, port, user, database, `sslmode` as it knows it...).
    pub(crate) config: tokio_postgres::Config,
    pub(crate) check: Check,
    /// `sslrootcert`: a PEM file of the authorities to trust, instead of the system's.
    pub(crate) roots: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password: only where it points is printed.
        f.debug_struct("PostgresSettings")
            .field("target", &target(&self.config))
            .field("check", &self.check)
            .field("roots", &self.roots)
            .finish()
    }
}

impl PostgresSettings {
    /// Reads a libpq-style URL (`postgres://user@host:port/db?sslmode=verify-full`) or a
    /// key=value string (`host=... sslmode=...`).
    ///
    /// # Errors
    /// What cannot be read, in words that never repeat the password.
    pub fn parse(url: &str) -> Result<PostgresSettings, String> {
        let (rest, sslmode, roots) = take_tls_options(url);
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
        let check = match sslmode.as_deref() {
            None | Some("allow" | "prefer") => Check::Nothing,
            Some("disable") => {
                config.ssl_mode(SslMode::Disable);
                Check::Nothing
            }
            Some("require") => {
                config.ssl_mode(SslMode::Require);
                match roots {
                    Some(_) => Check::Authority,
                    None => Check::Nothing,
                }
            }
            Some("verify-ca") => Check::Authority,
            Some("verify-full") => Check::Full,
            Some(other) => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        };
        if check != Check::Nothing {
            config.ssl_mode(SslMode::Require);
        }
        let roots = roots.filter(|r| r != "system").map(PathBuf::from);
        Ok(PostgresSettings {
            config,
            check,
            roots,
        })
    }

    /// Sets the password (sealed apart from the URL).
    pub fn password(&mut self, password: impl AsRef<[u8]>) {
        self.config.password(password);
    }

    /// Host, port and database, never the password.
    pub fn target(&self) -> String {
        target(&self.config)
    }

    /// How the server's certificate is checked.
    pub fn check(&self) -> Check {
        self.check
    }
}

/// Where a connection string points, for messages: host, port and database, never the password.
pub fn describe(url: &str) -> String {
    match PostgresSettings::parse(url) {
        Ok(s) => s.target(),
        Err(_) => "an unreadable connection string".into(),
    }
}

/// Host, port and database of a connection, never the password.
pub fn target(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().or(c.get_user()).unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// `url` without `sslmode` and `sslrootcert`, and their values (percent-decoded in a URL).
fn take_tls_options(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut roots) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            roots = Some(value);
            true
        }
        _ => false,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None, None);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned();
                !take(k, v)
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, sslmode, roots)
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|part| match part.split_once('=') {
                Some((k, v)) => !take(k, v.trim_matches('\'').to_owned()),
                None => true,
            })
            .collect();
        (kept.join(" "), sslmode, roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checking_modes_and_sslrootcert_are_read_out_of_the_url() {
        let s = PostgresSettings::parse(
            "postgres://hub@db.example.com:6432/hub?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(s.check(), Check::Full);
        assert_eq!(
            s.roots.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(s.config.get_application_name(), Some("x"));
        assert_eq!(s.target(), "db.example.com:6432/hub");

        let s = PostgresSettings::parse("host=db user=hub sslmode=verify-ca sslrootcert=system")
            .unwrap();
        assert_eq!((s.check(), s.roots.is_none()), (Check::Authority, true));

        // libpq: `require` with a root certificate checks the authority.
        let s = PostgresSettings::parse("postgres://hub@db/hub?sslmode=require&sslrootcert=ca.pem")
            .unwrap();
        assert_eq!(s.check(), Check::Authority);
        let s = PostgresSettings::parse("postgres://hub@db/hub?sslmode=require").unwrap();
        assert_eq!(s.check(), Check::Nothing);
        let s = PostgresSettings::parse("postgres://hub@db/hub").unwrap();
        assert_eq!(
            (s.check(), s.config.get_ssl_mode()),
            (Check::Nothing, SslMode::Prefer)
        );
        let s = PostgresSettings::parse("postgres://hub@db/hub?sslmode=disable").unwrap();
        assert_eq!(s.config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn an_unknown_sslmode_is_named_and_the_password_never_repeated() {
        let e = PostgresSettings::parse("postgres://hub@db/hub?sslmode=verify-some").unwrap_err();
        assert!(e.contains("\"verify-some\""), "{e}");
        let e = PostgresSettings::parse("postgres://hub:hunter2@db/hub?nonsense=1").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let s = PostgresSettings::parse("postgres://hub:hunter2@db/hub").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
