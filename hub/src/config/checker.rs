//! The [`Checker`] every section's validator reports through: errors located in `hub.toml` by
//! the span index (file, line, column, dotted field), and the small conversions they share.

use std::path::{Component, Path, PathBuf};

use super::span::{Pos, SpanIndex};
use super::{ConfigError, Location};
use crate::secrets::dotted;

/// Builds errors located through the span index.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) spans: &'a SpanIndex,
    /// The absolute folder of the config file; relative paths resolve against it.
    pub(super) base: PathBuf,
}

impl Checker<'_> {
    pub(super) fn error_at(&self, pos: Pos, path: &[&str], message: String) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                file: self.file.to_owned(),
                line: pos.line,
                col: pos.col,
            },
            field: dotted(path),
            message,
        }
    }

    /// An error about the value at `path` (pointing at the value).
    pub(super) fn value(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        self.error_at(self.spans.value_pos(path), path, message.into())
    }

    /// An error about the key at `path` (pointing at the key).
    pub(super) fn key(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        self.error_at(self.spans.key_pos(path), path, message.into())
    }

    pub(super) fn in_range<T: PartialOrd + std::fmt::Display>(
        &self,
        path: &[&str],
        value: T,
        min: T,
        max: T,
        unit: &str,
    ) -> Result<T, ConfigError> {
        if value < min || value > max {
            return Err(self.value(path, format!("must be {min} to {max}{unit}, found {value}")));
        }
        Ok(value)
    }

    pub(super) fn path(&self, path: &[&str], text: &str) -> Result<PathBuf, ConfigError> {
        if text.is_empty() {
            return Err(self.value(path, "must not be empty"));
        }
        // `base` is absolute, so the result is too; `.` components are dropped for tidiness.
        Ok(self
            .base
            .join(text)
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect())
    }
}

/// `a:b` into `("a", "b")`, both non-empty.
pub(super) fn split_pair(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.split_once(':')?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// Converts a tenant's connector config to JSON, the form connectors read. Datetimes become
/// strings; NaN and infinities have no JSON form and are refused.
pub(super) fn to_json(
    c: &Checker<'_>,
    path: &[&str],
    value: toml::Value,
) -> Result<serde_json::Value, ConfigError> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| c.value(path, "NaN and infinite numbers are not allowed here"))?,
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let index = i.to_string();
                let mut inner = path.to_vec();
                inner.push(&index);
                out.push(to_json(c, &inner, item)?);
            }
            J::Array(out)
        }
        toml::Value::Table(table) => {
            let mut out = serde_json::Map::new();
            for (key, item) in table {
                let mut inner = path.to_vec();
                inner.push(&key);
                let converted = to_json(c, &inner, item)?;
                out.insert(key, converted);
            }
            J::Object(out)
        }
    })
}
