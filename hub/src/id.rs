//! Identifiers: [`TenantId`] and [`ConnectorId`], checked once when parsed (`hub.toml`
//! deserializes them through `TryFrom<String>`, so a bad id is reported with its line), then
//! carried through the host in place of bare strings, so a tenant cannot be passed where a
//! connector is expected. Below `config` and `secrets`, which both use them.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

const ID_MAX: usize = 64;

/// An identifier that breaks the id rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} {id:?}: use 1 to 64 lowercase ASCII letters, digits, `-` and `_`, not starting with `_`"
)]
pub struct InvalidId {
    kind: &'static str,
    id: String,
}

fn check_id(kind: &'static str, id: String) -> Result<String, InvalidId> {
    let ok = (1..=ID_MAX).contains(&id.len())
        && !id.starts_with('_')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(InvalidId { kind, id })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// 1 to 64 lowercase ASCII letters, digits, `-` and `_`, not starting with `_`.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(id: String) -> Result<Self, InvalidId> {
                check_id($kind, id).map($name)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidId;
            fn try_from(id: &str) -> Result<Self, InvalidId> {
                Self::try_from(id.to_owned())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(id: &str) -> Result<Self, InvalidId> {
                Self::try_from(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Ord and Eq are those of the inner String, so map lookups by `&str` agree with them.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: one business the hub serves; the key of `[tenants.<id>]` and the `{tenant}` in
    /// `/hooks/{tenant}/{connector}`.
    TenantId,
    "tenant id"
);

impl TenantId {
    /// The tenant segment of tenant-less routes (`/hooks/_/{connector}/{route}`, `_`): the
    /// request belongs to no tenant yet, and credentials resolve to the connector's global ones.
    /// No tenant in `hub.toml` can have this id (ids do not start with `_`).
    pub fn any() -> TenantId {
        TenantId(ANY_TENANT.to_owned())
    }

    /// Whether this is [`TenantId::any`].
    pub fn is_any(&self) -> bool {
        self.0 == ANY_TENANT
    }
}

/// A valid id from a test's literal.
#[cfg(test)]
pub(crate) fn id<T: FromStr<Err = InvalidId>>(text: &str) -> T {
    text.parse().expect("a valid id")
}

/// The text of [`TenantId::any`].
pub const ANY_TENANT: &str = "_";

id_type!(
    /// The name of one of a tenant's API tokens: the key of `[tenants.<id>.api_tokens.<name>]`,
    /// shown in `/metrics` and the logs in place of the token.
    TokenName,
    "token name"
);

id_type!(
    /// The name of one of a tenant's webhook endpoints: the key of
    /// `[tenants.<id>.endpoints.<name>]`.
    EndpointName,
    "endpoint name"
);

id_type!(
    /// A connector: the key of `[connectors.<id>]` and the `{connector}` in
    /// `/hooks/{tenant}/{connector}`.
    ConnectorId,
    "connector id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rule() {
        for good in ["a", "abc-healthcare", "retell_2", "0", &"x".repeat(64)] {
            assert!(TenantId::try_from(good).is_ok(), "{good}");
        }
        for bad in ["", "_x", "ABC", "a b", "a.b", "é", &"x".repeat(65)] {
            let err = ConnectorId::try_from(bad).unwrap_err().to_string();
            assert!(err.contains("lowercase ASCII letters"), "{err}");
        }
    }
}
