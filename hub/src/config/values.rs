//! Validated values from `hub.toml`: [`Sealed`] and [`Origin`] (the ids are in `crate::id`).
//!
//! Each is checked once, when deserialized (`#[serde(try_from = "String")]`), so a bad value is
//! reported by toml with its line and column.

use std::fmt;

use serde::Deserialize;
use url::Url;

use crate::secrets::{self, SecretError};

/// A sealed credential as written in `hub.toml` (`sealed:v1:...`), format-checked but not opened.
/// `Debug` shows only a short prefix.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Sealed(String);

impl Sealed {
    /// The sealed text, to pass to [`secrets::open`].
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sealed {
    type Error = SecretError;
    fn try_from(text: String) -> Result<Self, SecretError> {
        secrets::check_format(&text)?;
        Ok(Sealed(text))
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self
            .0
            .get(..secrets::SEALED_PREFIX.len() + 6)
            .unwrap_or(&self.0);
        write!(f, "Sealed({shown:?}..)")
    }
}

/// An origin (`scheme://host[:port]`, http or https) the operator lets a connector reach.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Origin(Url);

impl Origin {
    /// Whether `url` has this origin (same scheme, host and effective port).
    pub fn matches(&self, url: &Url) -> bool {
        url.origin() == self.0.origin()
    }

    /// The origin as a URL (path `/`, no query).
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// Whether this origin is `other`, or a wildcard one (`https://*.my.salesforce.com`) with
    /// `other`'s host under its domain, on the same scheme and port.
    pub fn covers(&self, other: &Origin) -> bool {
        if self == other {
            return true;
        }
        let (Some(pattern), Some(host)) = (self.0.host_str(), other.0.host_str()) else {
            return false;
        };
        pattern.strip_prefix("*.").is_some_and(|domain| {
            self.0.scheme() == other.0.scheme()
                && self.0.port_or_known_default() == other.0.port_or_known_default()
                && host.len() > domain.len() + 1
                && host.ends_with(domain)
                && host.as_bytes().get(host.len() - domain.len() - 1) == Some(&b'.')
        })
    }
}

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        const RULE: &str = "an allowed host is an origin like `https://api.example.com` or `http://localhost:9000`, with no path, query or credentials";
        let url = Url::parse(&text).map_err(|e| format!("not a URL ({e}); {RULE}"))?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        if ok {
            Ok(Origin(url))
        } else {
            Err(format!("{text:?} is not an origin; {RULE}"))
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.origin().ascii_serialization())
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let origin = Origin::try_from("https://api.retellai.com".to_owned()).unwrap();
        assert_eq!(origin.to_string(), "https://api.retellai.com");
        assert!(origin.matches(&Url::parse("https://api.retellai.com:443/v2/call").unwrap()));
        assert!(!origin.matches(&Url::parse("http://api.retellai.com/").unwrap()));
        assert!(!origin.matches(&Url::parse("https://evil.com/").unwrap()));
        for bad in [
            "api.retellai.com",
            "https://api.retellai.com/v2",
            "ftp://x.com",
            "https://u:p@x.com",
            "https://x.com?q",
        ] {
            assert!(Origin::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
