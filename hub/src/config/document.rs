//! A config version's document as text: what of it belongs to one hub, the line a hub writes
//! on top of a `hub.toml` it keeps in step with the database, and the difference between two
//! versions as a reader sees it.
//!
//! Every hub on one database runs the same document, but a few `[server]` settings say where
//! this process listens and keeps its files ([`PER_HUB`]): those always come from the hub's own
//! file, so two hubs on one machine keep their own ports whatever version they run.

use std::collections::BTreeMap;

use serde::Serialize;
use toml_edit::DocumentMut;

use crate::secrets::SEALED_PREFIX;

/// `[server]` settings that belong to one hub process, never to a version.
pub const PER_HUB: &[&str] = &[
    "listen",
    "admin_listen",
    "public_url",
    "data_dir",
    "database",
    "database_password",
    "workers",
    "master_key_file",
];

/// The first line of a `hub.toml` a hub keeps in step with the database's versions.
const HEADER: &str = "# hub config version ";

/// A config file's text: the version it was written from, if it says, and the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileText {
    /// The version named by its first line (written by a hub that applied that version).
    pub version: Option<i64>,
    /// The document, without that line.
    pub body: String,
}

impl FileText {
    /// Splits `text` into the version its first line names and the rest.
    pub fn parse(text: &str) -> FileText {
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let version = first
            .strip_prefix(HEADER)
            .and_then(|tail| tail.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        match version {
            Some(version) => FileText {
                version: Some(version),
                body: rest.to_owned(),
            },
            None => FileText {
                version: None,
                body: text.to_owned(),
            },
        }
    }

    /// The file's text: the header naming `version`, then `body`.
    pub fn render(version: i64, body: &str) -> String {
        format!(
            "{HEADER}{version} (the hub rewrites this file when a newer version is applied; \
             `hub config push` applies an edit)\n{body}"
        )
    }
}

/// `document` with this hub's own settings ([`PER_HUB`]) as `local` has them: each taken from
/// `local`'s `[server]` table, or removed where `local` has none. What this hub runs of a version.
///
/// # Errors
/// When either is not TOML, in words.
pub fn localize(document: &str, local: &str) -> Result<String, String> {
    let mut doc: DocumentMut = document
        .parse()
        .map_err(|e| format!("the version is not TOML: {e}"))?;
    let local: DocumentMut = local
        .parse()
        .map_err(|e| format!("this hub's file is not TOML: {e}"))?;
    let mine = local.get("server").and_then(|s| s.as_table_like());
    let Some(server) = doc.get_mut("server").and_then(|s| s.as_table_like_mut()) else {
        return Ok(doc.to_string());
    };
    for key in PER_HUB {
        match mine.and_then(|m| m.get(key)) {
            Some(item) => {
                let same = server
                    .get(key)
                    .and_then(|i| i.as_value())
                    .zip(item.as_value())
                    .is_some_and(|(a, b)| a.to_string().trim() == b.to_string().trim());
                if !same {
                    server.insert(key, item.clone());
                }
            }
            None => {
                server.remove(key);
            }
        }
    }
    Ok(doc.to_string())
}

/// How one setting differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Difference {
    /// Where: `tenants.acme.routes[2].action`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// The value before (TOML), absent for an addition or a sealed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The value after (TOML), absent for a removal or a sealed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A sealed value: its contents are never shown, before or after.
    pub sealed: bool,
}

/// What differs from `before` to `after`, setting by setting, in path order; comments and
/// layout are not settings. Sealed values say only that they changed.
///
/// # Errors
/// When either is not TOML, in words.
pub fn diff(before: &str, after: &str) -> Result<Vec<Difference>, String> {
    let flat = |text: &str, which: &str| -> Result<BTreeMap<String, toml::Value>, String> {
        let value: toml::Table =
            toml::from_str(text).map_err(|e| format!("the {which} version is not TOML: {e}"))?;
        let mut out = BTreeMap::new();
        flatten(String::new(), &toml::Value::Table(value), &mut out);
        Ok(out)
    };
    let (a, b) = (flat(before, "first")?, flat(after, "second")?);
    let sealed = |v: Option<&toml::Value>| {
        v.and_then(toml::Value::as_str)
            .is_some_and(|s| s.starts_with(SEALED_PREFIX))
    };
    let shown = |v: Option<&toml::Value>, hidden: bool| {
        if hidden {
            None
        } else {
            v.map(ToString::to_string)
        }
    };
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    Ok(paths
        .into_iter()
        .filter_map(|path| {
            let (x, y) = (a.get(path), b.get(path));
            let change = match (x, y) {
                (Some(x), Some(y)) if x == y => return None,
                (Some(_), Some(_)) => "changed",
                (None, _) => "added",
                (_, None) => "removed",
            };
            let hidden = sealed(x) || sealed(y);
            Some(Difference {
                path: path.clone(),
                change,
                before: shown(x, hidden),
                after: shown(y, hidden),
                sealed: hidden,
            })
        })
        .collect())
}

/// Each leaf of `value` under its dotted path (arrays of tables by index; arrays of plain values
/// and empty tables are one leaf each).
fn flatten(path: String, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        toml::Value::Table(t) if !t.is_empty() || path.is_empty() => {
            for (k, v) in t {
                flatten(join(k), v, out);
            }
        }
        toml::Value::Array(items)
            if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
        {
            for (i, v) in items.iter().enumerate() {
                flatten(format!("{path}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_names_the_version_and_is_not_part_of_the_document() {
        let text = FileText::render(7, "[server]\nlisten = \"a\"\n");
        let file = FileText::parse(&text);
        assert_eq!(file.version, Some(7));
        assert_eq!(file.body, "[server]\nlisten = \"a\"\n");
        let plain = FileText::parse("# my hub\n[server]\n");
        assert_eq!(plain.version, None);
        assert_eq!(plain.body, "# my hub\n[server]\n");
    }

    #[test]
    fn a_version_runs_with_this_hub_s_own_listen_and_folders() {
        let version = "# shared\n[server]\nlisten = \"127.0.0.1:1\" # theirs\npublic_url = \"http://a\"\nrate_limit = { per_second = 5 }\nworkers = 3\n\n[tenants.acme]\n";
        let local = "[server]\nlisten = \"127.0.0.1:2\"\npublic_url = \"http://b\"\n";
        let mine = localize(version, local).unwrap();
        let parsed: toml::Table = toml::from_str(&mine).unwrap();
        let server = parsed["server"].as_table().unwrap();
        assert_eq!(server["listen"].as_str(), Some("127.0.0.1:2"));
        assert_eq!(server["public_url"].as_str(), Some("http://b"));
        assert!(!server.contains_key("workers"), "this hub's file sets none");
        assert_eq!(server["rate_limit"]["per_second"].as_integer(), Some(5));
        assert!(mine.starts_with("# shared\n"), "comments kept: {mine}");
        assert!(parsed.contains_key("tenants"));
        // A document already this hub's is left as it is, byte for byte.
        assert_eq!(localize(local, local).unwrap(), local);
    }

    #[test]
    fn a_diff_names_each_setting_and_never_a_sealed_value() {
        let a = "[server]\nretention_days = 30\n[tenants.acme.connectors.retell]\napi_key = \"sealed:v1:AAAA\"\n[[tenants.acme.routes]]\naction = \"x\"\n";
        let b = "# a comment\n[server]\nretention_days = 7\n[tenants.acme.connectors.retell]\napi_key = \"sealed:v1:BBBB\"\n[[tenants.acme.routes]]\naction = \"y\"\n[tenants.beta]\n";
        let d = diff(a, b).unwrap();
        let at = |p: &str| {
            d.iter()
                .find(|x| x.path == p)
                .unwrap_or_else(|| panic!("{p}: {d:?}"))
        };
        assert_eq!(at("server.retention_days").before.as_deref(), Some("30"));
        assert_eq!(at("server.retention_days").after.as_deref(), Some("7"));
        let key = at("tenants.acme.connectors.retell.api_key");
        assert!(key.sealed && key.before.is_none() && key.after.is_none());
        assert_eq!(key.change, "changed");
        assert_eq!(
            at("tenants.acme.routes[0].action").after.as_deref(),
            Some("\"y\"")
        );
        assert_eq!(
            at("tenants.beta").change,
            "added",
            "a new empty table is a change"
        );
        assert_eq!(d.len(), 4, "a comment is no setting: {d:?}");
        assert!(diff(a, a).unwrap().is_empty());
        let shown = serde_json::to_string(&d).unwrap();
        assert!(!shown.contains("AAAA") && !shown.contains("BBBB"));
    }
}
