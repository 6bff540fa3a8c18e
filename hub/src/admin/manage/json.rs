//! A tenant's table as JSON: read from and written into the document, its secrets kept from the
//! tenant it replaces, sealed when given as plaintext (credentials), made when missing (tokens,
//! endpoint secrets), and RFC 7386 merge patches.

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};
use toml_edit::DocumentMut;

use crate::secrets::{self, MasterKey, Place, SEALED_PREFIX};

/// A tenant's table in `doc`, as JSON.
pub(super) fn tenant_json(doc: &DocumentMut, tenant: &str) -> Option<Value> {
    let all: toml::Table = toml::from_str(&doc.to_string()).ok()?;
    serde_json::to_value(all.get("tenants")?.get(tenant)?).ok()
}

/// Puts `value` (a JSON object) as the tenant's table in `doc`.
pub(super) fn put_tenant(doc: &mut DocumentMut, tenant: &str, value: &Value) -> Result<(), String> {
    let table: toml::Value = toml::Value::try_from(value).map_err(|e| {
        format!("the tenant cannot be written as TOML (a null, or mixed array?): {e}")
    })?;
    let mut outer = toml::Table::new();
    let mut tenants = toml::Table::new();
    tenants.insert(tenant.to_owned(), table);
    outer.insert("tenants".into(), toml::Value::Table(tenants));
    let text = toml::to_string(&outer).map_err(|e| e.to_string())?;
    let fresh: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let item = fresh["tenants"][tenant].clone();
    let tenants = doc
        .entry("tenants")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or("`tenants` is not a table")?;
    tenants.insert(tenant, item);
    Ok(())
}

/// A sealed value the request sent where a secret goes, or an error naming where it was plain.
pub(super) fn sealed_or_none(v: Option<&Value>, at: &str) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.starts_with(SEALED_PREFIX) => Ok(Some(s.clone())),
        Some(_) => Err(format!(
            "{at}: a secret is never sent in a tenant's JSON; leave it out (a new one is generated \
             and returned once) or send a value sealed for this place"
        )),
    }
}

/// Fills what a tenant's new table leaves out from its old one (credentials, tokens' and
/// endpoints' secrets of names it still declares) and generates the secrets still missing.
/// The generated ones, by path, to return once.
pub(super) fn secrets_of(
    tenant: &str,
    new: &mut Value,
    old: Option<&Value>,
    key: &MasterKey,
) -> Result<Vec<(String, String)>, String> {
    let obj = new.as_object_mut().ok_or("a tenant is a JSON object")?;
    let mut generated = Vec::new();
    if let Some(connectors) = obj.get_mut("connectors").and_then(Value::as_object_mut) {
        for (c, table) in connectors.iter_mut() {
            let at = format!("tenants.{tenant}.connectors.{c}.credentials");
            let table = table
                .as_object_mut()
                .ok_or(format!("tenants.{tenant}.connectors.{c}: an object"))?;
            let given = table.remove("credentials");
            let mut creds = Map::new();
            if let Some(Value::Object(given)) = &given {
                for (field, v) in given {
                    let sealed = match v {
                        Value::String(s) if s.starts_with(SEALED_PREFIX) => s.clone(),
                        Value::String(plain) if !plain.is_empty() => {
                            let place = Place::Tenant {
                                tenant: tenant.into(),
                                connector: c.clone(),
                                field: field.clone(),
                            };
                            secrets::seal(key, &place, plain.as_bytes())
                        }
                        _ => {
                            return Err(format!(
                                "{at}.{field}: a credential is a non-empty string"
                            ));
                        }
                    };
                    creds.insert(field.clone(), Value::String(sealed));
                }
            }
            if let Some(Value::Object(kept)) =
                old.and_then(|o| o.pointer(&format!("/connectors/{c}/credentials")))
            {
                for (field, v) in kept {
                    creds.entry(field.clone()).or_insert_with(|| v.clone());
                }
            }
            if !creds.is_empty() {
                table.insert("credentials".into(), Value::Object(creds));
            }
        }
    }
    for (kind, secret_field) in [("api_tokens", "token"), ("endpoints", "secret")] {
        let Some(list) = obj.get_mut(kind).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, table) in list.iter_mut() {
            let at = format!("tenants.{tenant}.{kind}.{name}.{secret_field}");
            let table = table
                .as_object_mut()
                .ok_or(format!("tenants.{tenant}.{kind}.{name}: an object"))?;
            if sealed_or_none(table.get(secret_field), &at)?.is_some() {
                continue;
            }
            let kept = old
                .and_then(|o| o.pointer(&format!("/{kind}/{name}")))
                .and_then(Value::as_object);
            if let Some(kept) = kept {
                for field in [secret_field, "previous_secret", "previous_until"] {
                    if let Some(v) = kept.get(field) {
                        table.entry(field.to_owned()).or_insert_with(|| v.clone());
                    }
                }
                if table.contains_key(secret_field) {
                    continue;
                }
            }
            let (place, plain) = if kind == "api_tokens" {
                let place = Place::ApiToken {
                    tenant: tenant.into(),
                    name: name.clone(),
                };
                (place, secrets::generate_api_token())
            } else {
                let place = Place::Endpoint {
                    tenant: tenant.into(),
                    name: name.clone(),
                    field: "secret".into(),
                };
                (place, secrets::generate_webhook_secret())
            };
            let sealed = secrets::seal(key, &place, plain.expose_secret().as_bytes());
            table.insert(secret_field.into(), Value::String(sealed));
            generated.push((at, plain.expose_secret().to_owned()));
        }
    }
    Ok(generated)
}

/// RFC 7386: `patch` merged into `target`.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
