//! [`ConfigError`] and [`Location`]: every config problem names file, line, column and field.

use std::fmt;
use std::path::PathBuf;

use crate::secrets::SecretError;

/// A position in a config file, as `file:line:col` (1-based; the file name as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The config file, as the caller named it.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// Why a config could not be read, parsed, validated, opened or edited.
///
/// Every variant but [`ConfigError::Io`] displays as `hub.toml:LINE:COL: dotted.field: message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading, resolving or writing the file failed.
    #[error("cannot {action} {}", .path.display())]
    Io {
        /// What was being done: `read`, `write`, ...
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable that overrides the file (`HUB_LISTEN`, `HUB_DATA_DIR`) is not
    /// valid.
    #[error("{var} (environment, overriding the config file): {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The file is not valid: TOML syntax, a wrong type, an unknown field, a bad id or value, or a
    /// reference to something undeclared.
    #[error("{location}: {field}: {message}")]
    Invalid {
        /// Where the problem is.
        location: Location,
        /// The dotted TOML path of the offending field.
        field: String,
        /// What is wrong and, where it helps, how to fix it.
        message: String,
    },
    /// A sealed value could not be opened or checked. `error` is part of the message (not the
    /// `source`) so the location and the reason print together.
    #[error("{location}: {field}: {error}")]
    Secret {
        /// Where the sealed value is.
        location: Location,
        /// The dotted TOML path of the value (its [`Place`](crate::secrets::Place)).
        field: String,
        /// Why it failed; [`SecretError::CannotOpen`] means a wrong master key.
        error: SecretError,
    },
}

impl ConfigError {
    /// Where in the file the problem is, if it is about a place in the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Io { .. } | ConfigError::Env { .. } => None,
            ConfigError::Invalid { location, .. } | ConfigError::Secret { location, .. } => {
                Some(location)
            }
        }
    }

    /// The dotted TOML path of the offending field, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } | ConfigError::Env { .. } => None,
            ConfigError::Invalid { field, .. } | ConfigError::Secret { field, .. } => Some(field),
        }
    }
}

/// A result with [`ConfigError`] as the default error.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
