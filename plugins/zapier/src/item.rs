//! What a caught item is (a contact, a deal or a task), its record key, and how it merges into
//! the stored record. Pure.
//!
//! The item says what it is in `type` (or `object_type`): `contact`, `deal` or `task`
//! (case-insensitive, plurals accepted). Without one it is inferred from its fields, in this
//! order: a deal field (`dealname`, `deal_name`, `deal_id`, `dealstage`, `deal_stage`, `amount`,
//! `pipeline`) makes it a deal; a task field (`task_id`, `task_name`, `due_date`, `due_at`,
//! `assignee`) a task; an `email` a contact. Contacts are keyed by lower-cased email, deals and
//! tasks by `id` (or `deal_id` / `task_id`).

use plugin_sdk::lookup;
use serde_json::{Map, Value, json};

use crate::body::{Fields, text};

/// Fields that name the item's type.
pub const TYPE_FIELDS: [&str; 2] = ["type", "object_type"];
/// Fields that mark an untyped item as a deal.
pub const DEAL_MARKERS: [&str; 7] = [
    "dealname",
    "deal_name",
    "deal_id",
    "dealstage",
    "deal_stage",
    "amount",
    "pipeline",
];
/// Fields that mark an untyped item as a task.
pub const TASK_MARKERS: [&str; 5] = ["task_id", "task_name", "due_date", "due_at", "assignee"];
/// Where a contact's email is.
pub const EMAIL_FIELDS: [&str; 3] = ["email", "email_address", "Email"];
/// Longest record key accepted.
pub const MAX_KEY_LEN: usize = 256;

/// The kinds of item a Zap can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person, keyed by email.
    Contact,
    /// A deal, keyed by id.
    Deal,
    /// A task, keyed by id.
    Task,
}

impl Kind {
    /// The record kind (also the `type` value).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Deal => "deal",
            Kind::Task => "task",
        }
    }

    /// The event published for it.
    pub fn event(self) -> &'static str {
        match self {
            Kind::Contact => "zapier.contact",
            Kind::Deal => "zapier.deal",
            Kind::Task => "zapier.task",
        }
    }

    /// Parses a declared type.
    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contact" | "contacts" => Some(Kind::Contact),
            "deal" | "deals" => Some(Kind::Deal),
            "task" | "tasks" => Some(Kind::Task),
            _ => None,
        }
    }
}

/// What an item is: its declared type, else the inferred one.
///
/// # Errors
/// The reason it cannot be stored: an unknown declared type, or nothing to infer from.
pub fn detect(fields: &Fields) -> Result<Kind, String> {
    if let Some(declared) = text(fields, &TYPE_FIELDS) {
        return Kind::parse(&declared)
            .ok_or_else(|| format!("unknown type `{declared}` (expected contact, deal or task)"));
    }
    let has = |names: &[&str]| names.iter().any(|n| fields.contains_key(*n));
    if has(&DEAL_MARKERS) {
        Ok(Kind::Deal)
    } else if has(&TASK_MARKERS) {
        Ok(Kind::Task)
    } else if has(&EMAIL_FIELDS) {
        Ok(Kind::Contact)
    } else {
        Err("no `type`, and no email, deal or task fields to tell what the item is".into())
    }
}

/// A plausible email, lower-cased, short enough to be a record key.
pub fn normalize_email(raw: &str) -> Option<String> {
    lookup::normalize_email(raw).filter(|e| e.len() <= MAX_KEY_LEN)
}

/// The record key of an item of this kind.
///
/// # Errors
/// The reason there is none: no usable email, or no id.
pub fn key(kind: Kind, fields: &Fields) -> Result<String, String> {
    let id_fields: &[&str] = match kind {
        Kind::Contact => {
            let raw = text(fields, &EMAIL_FIELDS).ok_or("a contact needs an `email`")?;
            return normalize_email(&raw).ok_or_else(|| format!("`{raw}` is not an email"));
        }
        Kind::Deal => &["id", "deal_id", "dealId"],
        Kind::Task => &["id", "task_id", "taskId"],
    };
    let id = text(fields, id_fields).ok_or_else(|| format!("a {} needs an `id`", kind.name()))?;
    if id.len() > MAX_KEY_LEN || id.chars().any(char::is_control) {
        return Err(format!("the {} id is not usable", kind.name()));
    }
    Ok(id)
}

/// The item's fields without its type marker.
fn payload_fields(fields: &Fields) -> Fields {
    let mut out = fields.clone();
    for t in TYPE_FIELDS {
        out.remove(t);
    }
    out
}

fn opt(fields: &Fields, names: &[&str]) -> Value {
    text(fields, names).map_or(Value::Null, Value::String)
}

fn email_of(fields: &Fields, names: &[&str]) -> Value {
    text(fields, names)
        .and_then(|e| normalize_email(&e))
        .map_or(Value::Null, Value::String)
}

/// The lookups other connectors find a stored record by: a contact's email and phone (E.164,
/// or national for the hub to complete with the tenant's country code); nothing for deals and
/// tasks.
pub fn lookups(kind: Kind, record: &Value) -> Vec<Option<String>> {
    match kind {
        Kind::Contact => vec![
            record["email"].as_str().and_then(lookup::email),
            record["phone"].as_str().and_then(lookup::phone),
        ],
        Kind::Deal | Kind::Task => Vec::new(),
    }
}

/// The normalized, top-level fields of a record of this kind.
pub fn normalized(kind: Kind, key: &str, fields: &Fields) -> Map<String, Value> {
    let v = match kind {
        Kind::Contact => {
            let first = opt(fields, &["first_name", "firstname", "firstName", "first"]);
            let last = opt(fields, &["last_name", "lastname", "lastName", "last"]);
            let name = match (
                text(fields, &["name", "full_name", "fullName"]),
                first.as_str(),
                last.as_str(),
            ) {
                (Some(n), _, _) => Value::String(n),
                (None, Some(f), Some(l)) => Value::String(format!("{f} {l}")),
                (None, f, l) => f.or(l).map_or(Value::Null, |s| Value::String(s.into())),
            };
            json!({
                "email": key,
                "first_name": first,
                "last_name": last,
                "name": name,
                "phone": opt(fields, &["phone", "phone_number", "mobile", "mobilephone"]),
                "company": opt(fields, &["company", "company_name"]),
            })
        }
        Kind::Deal => json!({
            "id": key,
            "name": opt(fields, &["name", "dealname", "deal_name", "title"]),
            "amount": opt(fields, &["amount"]),
            "stage": opt(fields, &["stage", "dealstage", "deal_stage"]),
            "close_date": opt(fields, &["close_date", "closedate"]),
            "contact_email": email_of(fields, &["contact_email", "email"]),
        }),
        Kind::Task => json!({
            "id": key,
            "title": opt(fields, &["title", "subject", "task_name", "name"]),
            "status": opt(fields, &["status"]),
            "due_date": opt(fields, &["due_date", "due_at", "due"]),
            "contact_email": email_of(fields, &["contact_email", "email"]),
        }),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The stored record after a catch received at `received_at_ms`: the fields of the newer of
/// the two (stored or caught) win, so a late, older catch only fills in what is missing.
pub fn merge(
    kind: Kind,
    key: &str,
    stored: Option<&Value>,
    caught: &Fields,
    received_at_ms: i64,
) -> Value {
    let caught = payload_fields(caught);
    let stored_fields = stored
        .and_then(|s| s.get("fields"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ms = |name: &str| stored.and_then(|s| s.get(name)).and_then(Value::as_i64);
    let stored_at = ms("updated_at_ms").unwrap_or(i64::MIN);
    let (older, newer, updated_at) = if received_at_ms >= stored_at {
        (stored_fields, caught, received_at_ms)
    } else {
        (caught, stored_fields, stored_at)
    };
    let mut fields = older;
    fields.extend(newer);
    let created = ms("created_at_ms").map_or(received_at_ms, |c| c.min(received_at_ms));
    let mut record = normalized(kind, key, &fields);
    record.insert("source".into(), json!("zapier"));
    record.insert("fields".into(), Value::Object(fields));
    record.insert("created_at_ms".into(), json!(created));
    record.insert("updated_at_ms".into(), json!(updated_at));
    Value::Object(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn declared_type_wins_and_unknown_is_refused() {
        assert_eq!(
            detect(&f(json!({"type": "Deal", "email": "a@b.co"}))),
            Ok(Kind::Deal)
        );
        assert_eq!(detect(&f(json!({"object_type": "tasks"}))), Ok(Kind::Task));
        assert!(
            detect(&f(json!({"type": "ticket"})))
                .unwrap_err()
                .contains("unknown type `ticket`")
        );
    }

    #[test]
    fn inference_order() {
        assert_eq!(
            detect(&f(json!({"email": "a@b.co", "amount": "5"}))),
            Ok(Kind::Deal)
        );
        assert_eq!(
            detect(&f(json!({"email": "a@b.co", "due_date": "x"}))),
            Ok(Kind::Task)
        );
        assert_eq!(detect(&f(json!({"email": "a@b.co"}))), Ok(Kind::Contact));
        assert!(detect(&f(json!({"hello": "world"}))).is_err());
    }

    #[test]
    fn keys() {
        let c = f(json!({"email": "  Jane.Doe@Example.COM "}));
        assert_eq!(key(Kind::Contact, &c).unwrap(), "jane.doe@example.com");
        assert!(key(Kind::Contact, &f(json!({"email": "nope"}))).is_err());
        assert!(key(Kind::Contact, &f(json!({"email": "a@b"}))).is_err());
        assert!(key(Kind::Contact, &f(json!({}))).is_err());
        assert_eq!(key(Kind::Deal, &f(json!({"deal_id": 42}))).unwrap(), "42");
        assert_eq!(key(Kind::Task, &f(json!({"id": "t-1"}))).unwrap(), "t-1");
        assert!(key(Kind::Task, &f(json!({"title": "x"}))).is_err());
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert!(key(Kind::Deal, &f(json!({ "id": long }))).is_err());
    }

    #[test]
    fn a_contact_is_found_by_its_email_and_phone() {
        let fields = f(json!({"email": "J@x.io", "phone": "+1 415 555 0100"}));
        let r = merge(Kind::Contact, "j@x.io", None, &fields, 100);
        let found: Vec<String> = lookups(Kind::Contact, &r).into_iter().flatten().collect();
        assert_eq!(found, ["email:j@x.io", "phone:+14155550100"]);
        let local = merge(
            Kind::Contact,
            "j@x.io",
            None,
            &f(json!({"phone": "415 555 0100"})),
            100,
        );
        assert_eq!(
            lookups(Kind::Contact, &local).into_iter().flatten().last(),
            Some("phone:national:4155550100".to_string()),
            "the hub writes it with the tenant's country code"
        );
        let deal = merge(Kind::Deal, "42", None, &f(json!({"deal_id": 42})), 100);
        assert!(lookups(Kind::Deal, &deal).is_empty());
    }

    #[test]
    fn contact_normalization() {
        let r = merge(
            Kind::Contact,
            "j@x.io",
            None,
            &f(
                json!({"type": "contact", "email": "J@x.io", "firstName": "Jane", "last_name": "Doe", "phone": "+1555"}),
            ),
            100,
        );
        assert_eq!(r["name"], json!("Jane Doe"));
        assert_eq!(r["phone"], json!("+1555"));
        assert_eq!(r["source"], json!("zapier"));
        assert!(
            r["fields"].get("type").is_none(),
            "the type marker is not data"
        );
        assert_eq!(
            (r["created_at_ms"].clone(), r["updated_at_ms"].clone()),
            (json!(100), json!(100))
        );
    }

    #[test]
    fn deal_and_task_normalization() {
        let d = merge(
            Kind::Deal,
            "d1",
            None,
            &f(json!({"id": "d1", "dealname": "Big", "amount": 1200, "email": "A@B.CO"})),
            1,
        );
        assert_eq!(
            (d["name"].as_str(), d["amount"].as_str()),
            (Some("Big"), Some("1200"))
        );
        assert_eq!(d["contact_email"], json!("a@b.co"));
        let t = merge(
            Kind::Task,
            "t1",
            None,
            &f(json!({"id": "t1", "subject": "Call back", "due": "2026-05-01"})),
            1,
        );
        assert_eq!(t["title"], json!("Call back"));
        assert_eq!(t["due_date"], json!("2026-05-01"));
        assert_eq!(t["contact_email"], Value::Null);
    }

    #[test]
    fn newer_catch_wins_and_older_only_fills_gaps() {
        let first = merge(
            Kind::Contact,
            "j@x.io",
            None,
            &f(json!({"email": "j@x.io", "first_name": "Jane", "city": "Oslo"})),
            200,
        );
        let newer = merge(
            Kind::Contact,
            "j@x.io",
            Some(&first),
            &f(json!({"email": "j@x.io", "first_name": "Janet"})),
            300,
        );
        assert_eq!(newer["first_name"], json!("Janet"));
        assert_eq!(newer["fields"]["city"], json!("Oslo"), "fields merge");
        assert_eq!(newer["updated_at_ms"], json!(300));
        let late = merge(
            Kind::Contact,
            "j@x.io",
            Some(&newer),
            &f(json!({"email": "j@x.io", "first_name": "J", "phone": "+47"})),
            250,
        );
        assert_eq!(
            late["first_name"],
            json!("Janet"),
            "an older catch does not overwrite"
        );
        assert_eq!(late["phone"], json!("+47"), "but fills in what is missing");
        assert_eq!(late["updated_at_ms"], json!(300));
        assert_eq!(late["created_at_ms"], json!(200));
    }
}
