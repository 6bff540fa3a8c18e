//! Config versions: every config a hub applied, kept whole (sealed values stay sealed), numbered
//! from 1, with when, by whom and why. On PostgreSQL the newest is what every hub runs; on
//! SQLite the file stays the source and the versions are its history.
//!
//! A version is written only on top of the one its writer read ([`VersionPush::base`]): two
//! changes made at once are never merged silently; the second is refused as stale and made
//! again on the newest.

use serde::Serialize;

/// One applied config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConfigVersion {
    /// 1, 2, ...: each new version is the newest plus one.
    pub number: i64,
    /// When it was written (ms).
    pub applied_at_ms: i64,
    /// Who wrote it: `console:<user>`, `api:<token>`, `file` (a hub's `hub.toml`: start,
    /// `hub reload`, SIGHUP), `cli` (`hub config push`), `consent`, `registration`.
    pub actor: String,
    /// Why, in words.
    pub reason: String,
    /// The whole `hub.toml` document.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub document: String,
}

/// A new version to write.
#[derive(Clone, Debug)]
pub struct VersionPush {
    /// The version the change was made on: refused unless it is still the newest. `None`:
    /// written on whatever is newest (the first version, or a push the user forced).
    pub base: Option<i64>,
    /// The whole document.
    pub document: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// What became of a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Written as this number.
    Written(i64),
    /// Not written: the base is no longer the newest, this is.
    Stale {
        /// The newest version now.
        newest: i64,
    },
}
