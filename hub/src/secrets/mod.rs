//! Sealing and opening credentials: the only module that sees plaintext key material.
//!
//! - [`MasterKey`]: the 256-bit key that seals every credential in `hub.toml`. It comes from
//!   `HUB_MASTER_KEY` or a key file ([`MasterKey::load`]); its text form is
//!   `hubkey:v1:<base64url>` (what `hub keygen` prints). It is zeroized on drop.
//! - [`Place`]: where a sealed value lives in `hub.toml`. The place is bound into the ciphertext as
//!   associated data, so a value copied to another tenant, connector or field fails to open.
//! - [`seal`] / [`open`]: XChaCha20-Poly1305 with a random 24-byte nonce, written as
//!   `sealed:v1:<base64url(nonce || ciphertext || tag)>`.
//! - [`Vault`]: every opened credential, looked up by tenant with the connector-wide fallback.
//! - [`redact`]: every opened value masked wherever text leaves the hub.
//!
//! Nothing here prints secret bytes: `Debug` of [`MasterKey`] and [`Vault`] shows no values, and no
//! [`SecretError`] quotes its input.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::id::{ConnectorId, TenantId};

/// The prefix of a master key's text form; the rest is 32 bytes in unpadded base64url.
pub const KEY_PREFIX: &str = "hubkey:v1:";
/// The prefix of every value [`seal`] writes; [`open`] reads only this version.
pub const SEALED_PREFIX: &str = "sealed:v1:";

const KEY_LEN: usize = 32;
/// Unpadded base64 length of [`KEY_LEN`] bytes.
const KEY_B64_LEN: usize = 43;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Versions the associated-data encoding, so a future layout cannot collide with this one.
const AAD_DOMAIN: &[u8] = b"hub/place/v1";

/// Why a key could not be loaded or a sealed value could not be opened.
///
/// No variant carries the offending input: a malformed key or a mistyped credential is still a
/// secret, so messages describe the problem without echoing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value does not start with `sealed:`: someone pasted a plaintext secret.
    #[error(
        "not a sealed value: plaintext secrets are not allowed in hub.toml; run `hub seal` and use its output"
    )]
    NotSealed,
    /// The value starts with `sealed:` but not with a version this hub reads.
    #[error("unknown sealed-value version: this hub reads `{SEALED_PREFIX}...` values")]
    UnknownVersion,
    /// The value has the right prefix but is damaged (bad base64, too short).
    #[error("malformed sealed value: {reason}; seal it again with `hub seal`")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Authentication failed: the key differs from the sealing key, the value was moved to another
    /// place, or it was altered.
    #[error("cannot open: wrong master key, or the value was sealed for another place")]
    CannotOpen,
    /// The master key text is not in a form this hub reads.
    #[error("invalid master key{}: {reason}", origin_suffix(.origin))]
    InvalidKey {
        /// Where the key text came from (`HUB_MASTER_KEY` or the key file), when known.
        origin: Option<String>,
        /// What is wrong with it; never contains the key text.
        reason: String,
    },
    /// The key file could not be read.
    #[error("cannot read master key file {}", .path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is readable or writable by group or others.
    #[error(
        "master key file {} has mode {mode:04o}: it must not be readable or writable by group or others; run `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    KeyFileMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Neither `HUB_MASTER_KEY` nor a key file was given.
    #[error(
        "no master key: set HUB_MASTER_KEY or `server.master_key_file` in hub.toml (create a key with `hub keygen`)"
    )]
    NoKey,
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin
        .as_deref()
        .map(|o| format!(" in {o}"))
        .unwrap_or_default()
}

fn invalid_key(reason: impl Into<String>) -> SecretError {
    SecretError::InvalidKey {
        origin: None,
        reason: reason.into(),
    }
}

/// The 256-bit key that seals every credential. Zeroized on drop; `Debug` prints `MasterKey(..)`.
pub struct MasterKey(SecretBox<[u8; KEY_LEN]>);

impl MasterKey {
    /// A fresh random key from the thread-local CSPRNG (seeded by the operating system).
    pub fn generate() -> MasterKey {
        MasterKey(SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
            rand::rng().fill_bytes(bytes)
        }))
    }

    /// Parses the text form: `hubkey:v1:` and 43 base64url characters, or 64 hex digits.
    /// Surrounding whitespace (a trailing newline in a key file) is ignored.
    ///
    /// # Errors
    /// [`SecretError::InvalidKey`] saying what is wrong; the message never contains the input.
    pub fn parse(text: &str) -> Result<MasterKey, SecretError> {
        let text = text.trim();
        let mut key = SecretBox::new(Box::new([0u8; KEY_LEN]));
        if let Some(body) = text.strip_prefix(KEY_PREFIX) {
            if body.len() != KEY_B64_LEN {
                return Err(invalid_key(format!(
                    "expected {KEY_B64_LEN} base64url characters after `{KEY_PREFIX}`, found {}",
                    body.chars().count()
                )));
            }
            let bytes =
                Zeroizing::new(URL_SAFE_NO_PAD.decode(body).map_err(|_| {
                    invalid_key(format!("not valid base64url after `{KEY_PREFIX}`"))
                })?);
            if bytes.len() != KEY_LEN {
                return Err(invalid_key(format!("expected {KEY_LEN} bytes")));
            }
            key.expose_secret_mut().copy_from_slice(&bytes);
        } else if text.starts_with("hubkey:") {
            return Err(invalid_key(format!(
                "unknown key version: this hub reads `{KEY_PREFIX}...` keys"
            )));
        } else if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(text, key.expose_secret_mut())
                .map_err(|_| invalid_key("not valid hex"))?;
        } else if text.is_empty() {
            return Err(invalid_key("it is empty"));
        } else {
            return Err(invalid_key(format!(
                "expected `{KEY_PREFIX}` and {KEY_B64_LEN} base64url characters (as printed by `hub keygen`), or {} hex digits",
                2 * KEY_LEN
            )));
        }
        Ok(MasterKey(key))
    }

    /// The text form, `hubkey:v1:<base64url>`, as `hub keygen` prints it.
    pub fn to_text(&self) -> SecretString {
        // Sized up front so encoding never reallocates and leaves a copy behind.
        let mut text = String::with_capacity(KEY_PREFIX.len() + KEY_B64_LEN);
        text.push_str(KEY_PREFIX);
        URL_SAFE_NO_PAD.encode_string(self.0.expose_secret(), &mut text);
        SecretString::from(text)
    }

    /// Loads the key: `env_value` (the contents of `HUB_MASTER_KEY`, read by the caller) wins;
    /// otherwise `key_file`, which must not be readable or writable by group or others.
    ///
    /// # Errors
    /// [`SecretError::NoKey`] when neither is given; [`SecretError::KeyFileMode`] for a file with
    /// loose permissions; [`SecretError::KeyFile`] when it cannot be read;
    /// [`SecretError::InvalidKey`] naming the origin when the text is not a key.
    pub fn load(
        env_value: Option<&str>,
        key_file: Option<&Path>,
    ) -> Result<MasterKey, SecretError> {
        let with_origin = |origin: String| {
            move |err| match err {
                SecretError::InvalidKey { reason, .. } => SecretError::InvalidKey {
                    origin: Some(origin),
                    reason,
                },
                other => other,
            }
        };
        if let Some(value) = env_value {
            return MasterKey::parse(value).map_err(with_origin("HUB_MASTER_KEY".to_owned()));
        }
        let Some(path) = key_file else {
            return Err(SecretError::NoKey);
        };
        let key_file_err = |source| SecretError::KeyFile {
            path: path.to_owned(),
            source,
        };
        check_key_file_mode(path, std::fs::metadata(path).map_err(key_file_err)?)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(key_file_err)?);
        MasterKey::parse(&text).map_err(with_origin(path.display().to_string()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &Key = self.0.expose_secret().into();
        XChaCha20Poly1305::new(key)
    }
}

#[cfg(unix)]
fn check_key_file_mode(path: &Path, meta: std::fs::Metadata) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::KeyFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_file_mode(_path: &Path, _meta: std::fs::Metadata) -> Result<(), SecretError> {
    Ok(())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Where a sealed value lives in `hub.toml`. Sealing binds the value to its place, so a value
/// copied elsewhere fails to open. `Display` gives the dotted TOML path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// A `[server]` field, e.g. `admin_token`.
    Server {
        /// The field name.
        field: String,
    },
    /// A connector's fallback credential, `connectors.<connector>.credentials.<field>`.
    Global {
        /// The connector id.
        connector: String,
        /// The credential name.
        field: String,
    },
    /// A tenant's own credential, `tenants.<tenant>.connectors.<connector>.credentials.<field>`.
    Tenant {
        /// The tenant id.
        tenant: String,
        /// The connector id.
        connector: String,
        /// The credential name.
        field: String,
    },
    /// One of a tenant's API tokens for its app, `tenants.<tenant>.api_tokens.<name>.token`.
    ApiToken {
        /// The tenant id.
        tenant: String,
        /// The token's name.
        name: String,
    },
    /// A signing secret of a tenant's webhook endpoint,
    /// `tenants.<tenant>.endpoints.<name>.<field>` (`secret` or `previous_secret`).
    Endpoint {
        /// The tenant id.
        tenant: String,
        /// The endpoint's name.
        name: String,
        /// `secret` or `previous_secret`.
        field: String,
    },
    /// A value the hub keeps sealed in its store, never in `hub.toml`: an OAuth2 credential's
    /// current refresh or access token (`field`), for one tenant's connector.
    Stored {
        /// The tenant id.
        tenant: String,
        /// The connector id.
        connector: String,
        /// What it is, e.g. `google.refresh_token`.
        field: String,
    },
}

impl Place {
    /// The TOML path of this place, one key per element.
    pub fn path(&self) -> Vec<&str> {
        match self {
            // `alerts.url` is a key of the `[server.alerts]` table.
            Place::Server { field } => std::iter::once("server").chain(field.split('.')).collect(),
            Place::Global { connector, field } => {
                vec![
                    "connectors",
                    connector.as_str(),
                    "credentials",
                    field.as_str(),
                ]
            }
            Place::Tenant {
                tenant,
                connector,
                field,
            } => vec![
                "tenants",
                tenant.as_str(),
                "connectors",
                connector.as_str(),
                "credentials",
                field.as_str(),
            ],
            Place::ApiToken { tenant, name } => vec![
                "tenants",
                tenant.as_str(),
                "api_tokens",
                name.as_str(),
                "token",
            ],
            Place::Endpoint {
                tenant,
                name,
                field,
            } => vec![
                "tenants",
                tenant.as_str(),
                "endpoints",
                name.as_str(),
                field.as_str(),
            ],
            Place::Stored {
                tenant,
                connector,
                field,
            } => vec![
                "(store)",
                tenant.as_str(),
                connector.as_str(),
                field.as_str(),
            ],
        }
    }

    /// Associated data: a domain tag, a variant tag, then each name length-prefixed, so no two
    /// places encode alike whatever characters their names contain.
    fn aad(&self) -> Vec<u8> {
        let (tag, names): (u8, Vec<&str>) = match self {
            Place::Server { field } => (1, vec![field.as_str()]),
            Place::Global { connector, field } => (2, vec![connector.as_str(), field.as_str()]),
            Place::Tenant {
                tenant,
                connector,
                field,
            } => (3, vec![tenant.as_str(), connector.as_str(), field.as_str()]),
            Place::ApiToken { tenant, name } => (4, vec![tenant.as_str(), name.as_str()]),
            Place::Endpoint {
                tenant,
                name,
                field,
            } => (5, vec![tenant.as_str(), name.as_str(), field.as_str()]),
            Place::Stored {
                tenant,
                connector,
                field,
            } => (6, vec![tenant.as_str(), connector.as_str(), field.as_str()]),
        };
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(AAD_DOMAIN);
        aad.push(tag);
        for name in names {
            aad.extend_from_slice(&(name.len() as u64).to_be_bytes());
            aad.extend_from_slice(name.as_bytes());
        }
        aad
    }
}

/// Formats a key path the way TOML writes it: `tenants.abc.connectors`, quoting keys that are not
/// bare (`tenants."ABC Corp"`). The empty path is the top level of the file.
pub fn dotted<S: AsRef<str>>(path: &[S]) -> String {
    if path.is_empty() {
        return "(top level)".to_owned();
    }
    let mut out = String::new();
    for (i, key) in path.iter().enumerate() {
        let key = key.as_ref();
        if i > 0 {
            out.push('.');
        }
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if bare {
            out.push_str(key);
        } else {
            out.push('"');
            for c in key.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
    out
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&dotted(&self.path()))
    }
}

/// Seals `plaintext` for `place` under `key`, giving a `sealed:v1:...` string.
///
/// # Panics
/// Only if `plaintext` exceeds the cipher's limit of 256 GiB, far beyond any credential.
pub fn seal(key: &MasterKey, place: &Place, plaintext: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = place.aad();
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
    let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&ciphertext);
    let mut out = String::from(SEALED_PREFIX);
    URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
    out
}

/// Checks that `sealed` looks like a sealed value (prefix, version, encoding, length) without a key.
///
/// # Errors
/// [`SecretError::NotSealed`], [`SecretError::UnknownVersion`] or [`SecretError::Malformed`].
pub fn check_format(sealed: &str) -> Result<(), SecretError> {
    decode(sealed).map(drop)
}

/// Decodes `sealed:v1:...` into nonce || ciphertext || tag.
fn decode(sealed: &str) -> Result<Vec<u8>, SecretError> {
    let Some(body) = sealed.strip_prefix(SEALED_PREFIX) else {
        return Err(if sealed.starts_with("sealed:") {
            SecretError::UnknownVersion
        } else {
            SecretError::NotSealed
        });
    };
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SecretError::Malformed {
            reason: "not valid base64url",
        })?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretError::Malformed {
            reason: "too short",
        });
    }
    Ok(raw)
}

/// Opens a value [`seal`]ed for `place` under `key`.
///
/// # Errors
/// The format errors of [`check_format`], or [`SecretError::CannotOpen`] when the key is wrong, the
/// value belongs to another place, or it was altered.
pub fn open(key: &MasterKey, place: &Place, sealed: &str) -> Result<SecretSlice<u8>, SecretError> {
    let raw = decode(sealed)?;
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = <&XNonce>::try_from(nonce).map_err(|_| SecretError::CannotOpen)?;
    let tag = <&Tag>::try_from(tag).map_err(|_| SecretError::CannotOpen)?;
    // `to_vec` allocates exactly the plaintext length, so turning it into a boxed slice below does
    // not reallocate and strand an unzeroized copy; `Zeroizing` covers the error path.
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    key.cipher()
        .decrypt_inout_detached(nonce, &place.aad(), buf.as_mut_slice().into(), tag)
        .map_err(|_| SecretError::CannotOpen)?;
    Ok(SecretSlice::from(std::mem::take(&mut *buf)))
}

/// The prefix of the API tokens [`generate_api_token`] makes, so a secret scanner can spot one.
pub const API_TOKEN_PREFIX: &str = "hubtok_";

/// A new API token for an app: [`API_TOKEN_PREFIX`] and 32 random bytes in unpadded base64url.
pub fn generate_api_token() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    SecretString::from(format!(
        "{API_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    ))
}

/// A new random secret for a connector to hand a provider (`generate-credential`): 32 random
/// bytes, base64url.
pub fn generate_secret_token() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

/// A new signing secret for a webhook endpoint, as the Standard Webhooks spec writes them:
/// `whsec_` and 32 random bytes in base64.
pub fn generate_webhook_secret() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    SecretString::from(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.as_slice())
    ))
}

/// Every opened credential, by place. `Debug` lists the places, never the values.
#[derive(Default)]
pub struct Vault {
    values: BTreeMap<Place, SecretSlice<u8>>,
}

impl Vault {
    /// An empty vault.
    pub fn new() -> Vault {
        Vault::default()
    }

    /// Stores `value` at `place`, replacing any earlier value there.
    pub fn insert(&mut self, place: Place, value: SecretSlice<u8>) {
        self.values.insert(place, value);
    }

    /// The credential `name` of `connector` for `tenant`: the tenant's own value, else the
    /// connector's global fallback.
    pub fn get(
        &self,
        tenant: &TenantId,
        connector: &ConnectorId,
        name: &str,
    ) -> Option<&SecretSlice<u8>> {
        let own = Place::Tenant {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            field: name.to_owned(),
        };
        self.values.get(&own).or_else(|| {
            self.values.get(&Place::Global {
                connector: connector.to_string(),
                field: name.to_owned(),
            })
        })
    }

    /// The value stored exactly at `place`, with no fallback.
    pub fn at(&self, place: &Place) -> Option<&SecretSlice<u8>> {
        self.values.get(place)
    }

    /// The admin API bearer token (`server.admin_token`); the admin API is disabled without it.
    pub fn admin_token(&self) -> Option<&SecretSlice<u8>> {
        self.at(&Place::Server {
            field: "admin_token".to_owned(),
        })
    }

    /// The places that hold a value, in order.
    pub fn places(&self) -> impl Iterator<Item = &Place> {
        self.values.keys()
    }

    /// How many values the vault holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the vault holds no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field(
                "places",
                &self
                    .values
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub mod redact;

#[cfg(test)]
mod tests;
