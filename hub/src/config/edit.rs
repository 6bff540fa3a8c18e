//! Editing `hub.toml` in place: `hub seal` writes one sealed value, `hub rekey` re-seals them all.
//!
//! Edits go through `toml_edit`, so comments, ordering and formatting outside the changed value are
//! kept byte for byte (a replaced value keeps its surrounding whitespace and trailing comment).
//! Every write is atomic: a temporary file in the same folder, fsync, rename over the original
//! (keeping its permissions), fsync of the folder. A crash leaves either the old file or the new.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret as _;
use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

use super::span::{Lines, SpanIndex};
use super::{ConfigError, Location, Result, TokenScope};
use crate::id::{ConnectorId, EndpointName, TenantId, TokenName};
use crate::secrets::dotted;
use crate::secrets::{self, MasterKey, Place, SecretError};

/// Writes `sealed` at `place` in the config file at `path`, creating the tables on the way if
/// needed and replacing any value already there.
///
/// # Errors
/// [`ConfigError::Io`] if the file cannot be read or written; [`ConfigError::Invalid`] if it is
/// not valid TOML, `place` names an invalid tenant or connector id, or a key on the way is not a
/// table; [`ConfigError::Secret`] if `sealed` is not a sealed value.
pub fn set_sealed(path: &Path, place: &Place, sealed: &str) -> Result<()> {
    write_sealed(path, place, sealed, &[])
}

/// Writes a tenant's API token: `sealed` at `place` (a [`Place::ApiToken`]) and its `scope`
/// beside it, in one atomic write.
///
/// # Errors
/// As [`set_sealed`].
pub fn set_api_token(path: &Path, place: &Place, sealed: &str, scope: TokenScope) -> Result<()> {
    write_sealed(path, place, sealed, &[("scope", scope.as_str())])
}

/// Writes an endpoint's new signing secret at `place` (a [`Place::Endpoint`] `secret`); with
/// `previous`, the old secret sealed for `previous_secret` and the RFC 3339 time until which it
/// still signs, in the same atomic write.
///
/// # Errors
/// As [`set_sealed`].
pub fn set_endpoint_secret(
    path: &Path,
    place: &Place,
    sealed: &str,
    previous: Option<(&str, &str)>,
) -> Result<()> {
    let siblings = match previous {
        Some((old, until)) => vec![("previous_secret", old), ("previous_until", until)],
        None => Vec::new(),
    };
    write_sealed(path, place, sealed, &siblings)
}

/// Rotates a tenant's credential with overlap: `plaintext` becomes the value at `place` (a
/// [`Place::Tenant`]); the value there now is re-sealed as `previous_<field>` beside it; and the
/// connector's `previous_until` is set to `until` (RFC 3339), the end of the window in which the
/// old value still verifies webhooks. One atomic write.
///
/// # Errors
/// As [`set_sealed`]; and when `place` is not a tenant's credential, has no value to rotate, or
/// that value does not open under `key`.
pub fn rotate_credential(
    path: &Path,
    key: &MasterKey,
    place: &Place,
    plaintext: &[u8],
    until: &str,
) -> Result<()> {
    let text = read(path)?;
    let invalid = |message: String| ConfigError::Invalid {
        location: location(path, &text, &place.path()),
        field: place.to_string(),
        message,
    };
    let Place::Tenant {
        tenant,
        connector,
        field,
    } = place
    else {
        return Err(invalid(
            "only a tenant's own credential rotates with overlap".into(),
        ));
    };
    check_ids(place).map_err(&invalid)?;
    let mut doc = parse(path, &text)?;
    let current = place
        .path()
        .iter()
        .try_fold(doc.as_item(), |item, k| item.get(k))
        .and_then(|item| item.as_str())
        .map(str::to_string)
        .ok_or_else(|| invalid("there is no value here to rotate; set one first".into()))?;
    let old = secrets::open(key, place, &current)
        .map_err(|error| secret_error(path, &text, place, error))?;
    let old_place = Place::Tenant {
        tenant: tenant.clone(),
        connector: connector.clone(),
        field: format!("previous_{field}"),
    };
    let sealed = secrets::seal(key, place, plaintext);
    let previous = secrets::seal(key, &old_place, old.expose_secret());
    for (p, value) in [(place, &sealed), (&old_place, &previous)] {
        set_value(&mut doc, &p.path(), value).map_err(|e| not_a_table(path, &text, &e))?;
    }
    let until_at = [
        "tenants",
        tenant.as_str(),
        "connectors",
        connector.as_str(),
        "previous_until",
    ];
    set_value(&mut doc, &until_at, until).map_err(|e| not_a_table(path, &text, &e))?;
    write_atomic(path, &doc.to_string())
}

/// Writes `sealed` at `place`, and each `(key, value)` of `siblings` beside it in the same
/// table, in one atomic write.
fn write_sealed(path: &Path, place: &Place, sealed: &str, siblings: &[(&str, &str)]) -> Result<()> {
    let text = read(path)?;
    let mut doc = parse(path, &text)?;
    check_ids(place).map_err(|message| ConfigError::Invalid {
        location: location(path, &text, &place.path()),
        field: place.to_string(),
        message,
    })?;
    secrets::check_format(sealed).map_err(|error| secret_error(path, &text, place, error))?;
    let mut at = place.path();
    set_value(&mut doc, &at, sealed).map_err(|e| not_a_table(path, &text, &e))?;
    let last = at.len() - 1;
    for (key, value) in siblings {
        at[last] = key;
        set_value(&mut doc, &at, value).map_err(|e| not_a_table(path, &text, &e))?;
    }
    write_atomic(path, &doc.to_string())
}

/// Re-seals every sealed value in the config file at `path` (`server.admin_token`,
/// `connectors.*.credentials.*`, `tenants.*.connectors.*.credentials.*`) from `old` to `new`.
/// All or nothing: every value is opened before anything is written. Returns how many values were
/// re-sealed.
///
/// # Errors
/// [`ConfigError::Secret`] naming the first value (in file order) that does not open under `old`,
/// with the file untouched; otherwise as [`set_sealed`].
pub fn rekey(path: &Path, old: &MasterKey, new: &MasterKey) -> Result<usize> {
    let text = read(path)?;
    let mut doc = parse(path, &text)?;
    let (_, spans, _) = SpanIndex::parse(&text);
    let mut found = sealed_places(&doc);
    found.sort_by_cached_key(|(place, _)| spans.value_pos(&place.path()));

    let mut opened = Vec::with_capacity(found.len());
    for (place, value) in found {
        let plaintext = value
            .ok_or(SecretError::NotSealed)
            .and_then(|sealed| secrets::open(old, &place, &sealed))
            .map_err(|error| secret_error(path, &text, &place, error))?;
        opened.push((place, plaintext));
    }
    for (place, plaintext) in &opened {
        let sealed = secrets::seal(new, place, plaintext.expose_secret());
        set_value(&mut doc, &place.path(), &sealed).map_err(|at| not_a_table(path, &text, &at))?;
    }
    write_atomic(path, &doc.to_string())?;
    Ok(opened.len())
}

/// Refuses to write a place that `Config::from_str` would then reject.
fn check_ids(place: &Place) -> Result<(), String> {
    let (tenant, connector) = match place {
        Place::Server { .. } => (None, None),
        Place::Global { connector, .. } => (None, Some(connector)),
        Place::Tenant {
            tenant, connector, ..
        } => (Some(tenant), Some(connector)),
        Place::ApiToken { tenant, name } => {
            TokenName::try_from(name.as_str()).map_err(|e| e.to_string())?;
            (Some(tenant), None)
        }
        Place::Endpoint { tenant, name, .. } => {
            EndpointName::try_from(name.as_str()).map_err(|e| e.to_string())?;
            (Some(tenant), None)
        }
        Place::Stored { .. } => return Err("this value lives in the store, not in hub.toml".into()),
    };
    if let Some(tenant) = tenant {
        TenantId::try_from(tenant.as_str()).map_err(|e| e.to_string())?;
    }
    if let Some(connector) = connector {
        ConnectorId::try_from(connector.as_str()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| ConfigError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

fn location(path: &Path, text: &str, at: &[&str]) -> Location {
    let (_, spans, _) = SpanIndex::parse(text);
    let pos = spans.value_pos(at);
    Location {
        file: path.to_owned(),
        line: pos.line,
        col: pos.col,
    }
}

fn parse(path: &Path, text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|err| {
        let (_, spans, _) = SpanIndex::parse(text);
        let (at, pos) = spans.at(&Lines::new(text), err.span());
        ConfigError::Invalid {
            location: Location {
                file: path.to_owned(),
                line: pos.line,
                col: pos.col,
            },
            field: dotted(&at),
            message: err.message().trim_end().to_owned(),
        }
    })
}

fn secret_error(path: &Path, text: &str, place: &Place, error: SecretError) -> ConfigError {
    ConfigError::Secret {
        location: location(path, text, &place.path()),
        field: place.to_string(),
        error,
    }
}

fn not_a_table(path: &Path, text: &str, at: &[String]) -> ConfigError {
    let at: Vec<&str> = at.iter().map(String::as_str).collect();
    ConfigError::Invalid {
        location: location(path, text, &at),
        field: dotted(&at),
        message: "expected a table here, so a sealed value can be written inside it".to_owned(),
    }
}

/// Writes `sealed` at `path`, creating tables on the way. A new table under a `[header]` table is
/// implicit (no empty header for intermediate levels); under an inline table it is inline. On
/// failure returns the path of the key that is not a table.
fn set_value(doc: &mut DocumentMut, path: &[&str], sealed: &str) -> Result<(), Vec<String>> {
    let Some((last, parents)) = path.split_last() else {
        return Err(Vec::new());
    };
    let mut item = doc.as_item_mut();
    for (depth, key) in parents.iter().enumerate() {
        let here = || path[..=depth].iter().map(|k| k.to_string()).collect();
        let inline = !item.is_table();
        // Every level was checked to be table-like below (the root is a table).
        let table = item.as_table_like_mut().ok_or_else(here)?;
        if table.get(key).is_none() {
            let new = if inline {
                Item::Value(Value::InlineTable(InlineTable::new()))
            } else {
                let mut table = Table::new();
                table.set_implicit(true);
                Item::Table(table)
            };
            table.insert(key, new);
        }
        item = table.get_mut(key).ok_or_else(here)?;
        if !item.is_table_like() {
            return Err(here());
        }
    }
    let table = item
        .as_table_like_mut()
        .ok_or_else(|| parents.iter().map(|k| k.to_string()).collect::<Vec<_>>())?;
    let mut value = Value::from(sealed);
    match table.get_mut(last) {
        Some(Item::Value(old)) => {
            // Keep the old value's surrounding whitespace and trailing comment.
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            table.insert(last, Item::Value(value));
        }
    }
    Ok(())
}

/// Every place where a sealed value sits, with its text (`None` when it is not a string).
fn sealed_places(doc: &DocumentMut) -> Vec<(Place, Option<String>)> {
    fn tables(item: Option<&Item>) -> Vec<(String, &Item)> {
        item.and_then(Item::as_table_like)
            .map(|t| t.iter().map(|(k, v)| (k.to_owned(), v)).collect())
            .unwrap_or_default()
    }
    let text = |item: &Item| item.as_str().map(str::to_owned);
    let mut out = Vec::new();
    for field in ["admin_token", "database_password"] {
        if let Some(token) = doc.get("server").and_then(|s| s.get(field)) {
            let field = field.to_owned();
            out.push((Place::Server { field }, text(token)));
        }
    }
    for field in ["url", "secret"] {
        let alerts = doc.get("server").and_then(|s| s.get("alerts"));
        if let Some(value) = alerts.and_then(|a| a.get(field)) {
            let field = format!("alerts.{field}");
            out.push((Place::Server { field }, text(value)));
        }
    }
    for (connector, c) in tables(doc.get("connectors")) {
        for (field, value) in tables(c.get("credentials")) {
            let connector = connector.clone();
            out.push((Place::Global { connector, field }, text(value)));
        }
    }
    for (tenant, t) in tables(doc.get("tenants")) {
        for (name, endpoint) in tables(t.get("endpoints")) {
            for field in ["secret", "previous_secret"] {
                if let Some(value) = endpoint.get(field) {
                    let place = Place::Endpoint {
                        tenant: tenant.clone(),
                        name: name.clone(),
                        field: field.to_owned(),
                    };
                    out.push((place, text(value)));
                }
            }
        }
        for (name, token) in tables(t.get("api_tokens")) {
            let place = Place::ApiToken {
                tenant: tenant.clone(),
                name,
            };
            out.push((place, token.get("token").and_then(text)));
        }
        for (connector, c) in tables(t.get("connectors")) {
            for (field, value) in tables(c.get("credentials")) {
                let place = Place::Tenant {
                    tenant: tenant.clone(),
                    connector: connector.clone(),
                    field,
                };
                out.push((place, text(value)));
            }
        }
    }
    out
}

/// Replaces `path` with `contents` atomically, keeping its permissions. Follows a symlink so the
/// link's target is replaced, not the link.
/// Replaces the file at `path` with `contents`, atomically (see the module docs).
///
/// # Errors
/// [`ConfigError::Io`] when it cannot be written.
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let io = |action, source| ConfigError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let target = fs::canonicalize(path).map_err(|e| io("resolve", e))?;
    let permissions = fs::metadata(&target)
        .map_err(|e| io("read the permissions of", e))?
        .permissions();
    let dir = target
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_owned);
    let name = target
        .file_name()
        .map_or_else(|| "hub.toml".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));

    let written = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.set_permissions(permissions)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io("write", e));
    }
    // Make the rename itself durable. Not every platform can open a directory; the data is
    // already safe in the new file, so a failure here is not an error.
    if let Ok(dir) = fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
