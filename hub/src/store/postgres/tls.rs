//! How the hub reaches a PostgreSQL server: [`Settings`], tokio-postgres's connection settings
//! plus how the server's TLS certificate is checked, read from a libpq-style URL.
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
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls_improved::MakeRustlsConnect;

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
pub struct Settings {
    /// tokio-postgres's part (host, port, user, database, `sslmode` as it knows it...).
    pub(crate) config: tokio_postgres::Config,
    check: Check,
    /// `sslrootcert`: a PEM file of the authorities to trust, instead of the system's.
    roots: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password: only where it points is printed.
        f.debug_struct("Settings")
            .field("target", &super::target(&self.config))
            .field("check", &self.check)
            .field("roots", &self.roots)
            .finish()
    }
}

impl Settings {
    /// Reads a libpq-style URL (`postgres://user@host:port/db?sslmode=verify-full`) or a
    /// key=value string (`host=... sslmode=...`).
    ///
    /// # Errors
    /// What cannot be read, in words that never repeat the password.
    pub fn parse(url: &str) -> Result<Settings, String> {
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
        Ok(Settings {
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
        super::target(&self.config)
    }

    /// How the server's certificate is checked.
    pub fn check(&self) -> Check {
        self.check
    }

    /// The TLS connector for these settings.
    ///
    /// # Errors
    /// When `sslrootcert` cannot be read or holds no certificate, or the system has none.
    pub fn tls(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let chain = match self.check {
            Check::Nothing => None,
            Check::Authority | Check::Full => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.roots()?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| e.to_string())?,
            ),
        };
        let verifier = Arc::new(Verifier {
            provider,
            chain,
            names: self.check == Check::Full,
        });
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "sslrootcert {}: no certificate in it",
                        path.display()
                    ));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(
                        "the system trusts no certificate authority (install ca-certificates, or name one with sslrootcert=FILE)"
                            .into(),
                    );
                }
            }
        }
        Ok(store)
    }
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

/// The server's certificate checked as [`Check`] says. The handshake's signatures are always
/// checked, so the server holds the certificate's key whatever is checked of the certificate.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    /// The chain check (`None`: libpq's `prefer` and `require`, the certificate taken as it comes).
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must be for the host (`verify-full`) or may name any (`verify-ca`).
    names: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checking_modes_and_sslrootcert_are_read_out_of_the_url() {
        let s = Settings::parse(
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

        let s = Settings::parse("host=db user=hub sslmode=verify-ca sslrootcert=system").unwrap();
        assert_eq!((s.check(), s.roots.is_none()), (Check::Authority, true));

        // libpq: `require` with a root certificate checks the authority.
        let s =
            Settings::parse("postgres://hub@db/hub?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(s.check(), Check::Authority);
        let s = Settings::parse("postgres://hub@db/hub?sslmode=require").unwrap();
        assert_eq!(s.check(), Check::Nothing);
        let s = Settings::parse("postgres://hub@db/hub").unwrap();
        assert_eq!(
            (s.check(), s.config.get_ssl_mode()),
            (Check::Nothing, SslMode::Prefer)
        );
        let s = Settings::parse("postgres://hub@db/hub?sslmode=disable").unwrap();
        assert_eq!(s.config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn an_unknown_sslmode_is_named_and_the_password_never_repeated() {
        let e = Settings::parse("postgres://hub@db/hub?sslmode=verify-some").unwrap_err();
        assert!(e.contains("\"verify-some\""), "{e}");
        let e = Settings::parse("postgres://hub:hunter2@db/hub?nonsense=1").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let s = Settings::parse("postgres://hub:hunter2@db/hub").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
