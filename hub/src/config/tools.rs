//! `[tenants.<id>.tools]`: what the tenant's voice and chat agents may call during a
//! conversation, each mapped onto what the hub already does: find a record by a lookup, or run an
//! action (`email:send`, `sms:send`, `connector:action`) with inputs rendered from the agent's
//! arguments (`args`) and the conversation (`call`). A built-in is one line
//! (`lookup_caller = "find_contact"`); a table says it whole. The arguments' JSON Schema comes
//! from the templates (each `args.NAME` they read; required unless it has a `default`), with
//! descriptions from `args = { NAME = "..." }`. Whether the action exists and takes the inputs
//! is known once connectors load (`hub check`, `check.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::ConfigError;
use super::checker::{Checker, split_pair, to_json};

/// One tool, as the hub runs it.
#[derive(Clone, Debug)]
pub struct Tool {
    /// What it does, for the agent's model.
    pub description: String,
    /// What calling it does.
    pub does: ToolDoes,
    /// Its arguments, in name order.
    pub args: Vec<ToolArg>,
    /// The longest a call waits for its action before answering that it is still under way.
    pub deadline: Duration,
    /// The built-in it is, if one.
    pub builtin: Option<&'static str>,
}

/// What calling a tool does.
#[derive(Clone, Debug)]
pub enum ToolDoes {
    /// Finds the newest record of `kind` that carries the lookup `by:value`.
    Find {
        /// Record kind, e.g. `contact`.
        kind: String,
        /// `phone` or `email`.
        by: String,
        /// A template for the value.
        value: String,
    },
    /// Runs an action, once per conversation and arguments.
    Act {
        /// `capability:operation` or `connector:action`.
        action: String,
        /// Its input; strings are templates.
        input: Map<String, Json>,
    },
}

/// One argument the agent passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolArg {
    /// Its name (`args.NAME` in templates).
    pub name: String,
    /// What it is, for the agent's model.
    pub description: String,
    /// Whether a call must give it.
    pub required: bool,
}

impl Tool {
    /// The arguments' JSON Schema (an object of strings).
    pub fn input_schema(&self) -> Json {
        let properties: Map<String, Json> = self
            .args
            .iter()
            .map(|a| {
                let mut p = serde_json::json!({ "type": "string" });
                if !a.description.is_empty() {
                    p["description"] = Json::String(a.description.clone());
                }
                (a.name.clone(), p)
            })
            .collect();
        let required: Vec<&str> = self
            .args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name.as_str())
            .collect();
        serde_json::json!({ "type": "object", "properties": properties, "required": required })
    }
}

/// The default deadline of a tool call: well under the 2 minutes Retell waits by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// The built-in tools, by name: a tenant writes `NAME = "BUILTIN"`.
pub const BUILTINS: &[&str] = &[
    "find_contact",
    "find_contact_by_email",
    "send_sms",
    "send_email",
    "check_availability",
    "book_appointment",
];

fn builtin(name: &'static str) -> RawToolTable {
    let table = |description: &str,
                 find: Option<RawFind>,
                 action: Option<&str>,
                 input: &[(&str, &str)],
                 args: &[(&str, &str)]| RawToolTable {
        description: Some(description.into()),
        find,
        action: action.map(str::to_string),
        input: input
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        deadline_ms: None,
    };
    let find = |by: &str, value: &str| RawFind {
        kind: "contact".into(),
        by: by.into(),
        value: value.into(),
    };
    match name {
        "find_contact" => table(
            "Find the caller's contact (name, email, notes) by phone number: the caller's own number unless `phone` is given.",
            Some(find(
                "phone",
                "{{ args.phone | default(call.from_number) }}",
            )),
            None,
            &[],
            &[("phone", "A phone number, if not the caller's own.")],
        ),
        "find_contact_by_email" => table(
            "Find a contact by email address.",
            Some(find("email", "{{ args.email }}")),
            None,
            &[],
            &[("email", "The email address.")],
        ),
        "send_sms" => table(
            "Send a text message: to the caller's own number unless `to` is given.",
            None,
            Some("sms:send"),
            &[
                ("to", "{{ args.to | default(call.from_number) }}"),
                ("body", "{{ args.body }}"),
            ],
            &[
                ("to", "A phone number in E.164, if not the caller's own."),
                ("body", "The text to send."),
            ],
        ),
        "check_availability" => table(
            "List the free appointment slots (earliest first) in the clinic's calendar, from `from` (default: now) until `until` (default: a week later). Times are RFC 3339.",
            None,
            Some("calendar:get_slots"),
            &[
                ("start", "{{ args.from | default(none) }}"),
                ("end", "{{ args.until | default(none) }}"),
                ("time_zone", "{{ tenant.timezone | default(none) }}"),
            ],
            &[
                ("from", "From when, RFC 3339 (default: now)."),
                (
                    "until",
                    "Until when, RFC 3339 (default: a week from `from`).",
                ),
            ],
        ),
        "book_appointment" => table(
            "Book an appointment in a free slot for the caller (their own number unless `phone` is given). If the slot was just taken, the answer says so and offers the next ones.",
            None,
            Some("calendar:book"),
            &[
                ("start", "{{ args.start }}"),
                ("attendee_name", "{{ args.name }}"),
                (
                    "attendee_phone",
                    "{{ args.phone | default(call.from_number) }}",
                ),
                ("attendee_email", "{{ args.email | default(none) }}"),
                ("notes", "{{ args.notes | default(none) }}"),
                ("time_zone", "{{ tenant.timezone | default(none) }}"),
            ],
            &[
                ("start", "When, RFC 3339, one of the free slots."),
                ("name", "The caller's name."),
                ("phone", "A phone number in E.164, if not the caller's own."),
                ("email", "The caller's email address, if they gave one."),
                ("notes", "What the appointment is for."),
            ],
        ),
        _ => table(
            "Send an email.",
            None,
            Some("email:send"),
            &[
                ("to", "{{ args.to }}"),
                ("subject", "{{ args.subject }}"),
                ("text", "{{ args.text }}"),
            ],
            &[
                ("to", "The recipient's email address."),
                ("subject", "The subject line."),
                ("text", "The message."),
            ],
        ),
    }
}

/// `[tenants.<id>.tools.<name>]` as a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolTable {
    description: Option<String>,
    find: Option<RawFind>,
    action: Option<String>,
    #[serde(default)]
    input: toml::Table,
    /// Argument descriptions, by name.
    #[serde(default)]
    args: BTreeMap<String, String>,
    deadline_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFind {
    kind: String,
    by: String,
    value: String,
}

/// The tenant `at`'s tools, each checked: a name agents accept, a known built-in or exactly one
/// of `find` and `action`, an action naming a capability the tenant has or a connector it uses,
/// templates that parse.
pub(super) fn validate(
    c: &Checker<'_>,
    at: [&str; 2],
    connectors: &BTreeMap<crate::id::ConnectorId, super::TenantConnector>,
    capabilities: &BTreeMap<&'static str, crate::id::ConnectorId>,
    raw: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, Tool>, ConfigError> {
    let mut tools = BTreeMap::new();
    for (name, value) in raw {
        let here = [at[0], at[1], "tools", name.as_str()];
        let field = |f: &'static str| [at[0], at[1], "tools", name.as_str(), f];
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(c.key(
                &here,
                "a tool's name is 1 to 64 of a-z, A-Z, 0-9, `_` and `-` (what agents accept)",
            ));
        }
        let (table, builtin_name) = match value {
            toml::Value::String(b) => {
                let Some(found) = BUILTINS.iter().copied().find(|x| *x == b) else {
                    return Err(c.value(
                        &here,
                        format!("no built-in tool `{b}` (there are: {}); or write a table with `find` or `action`", BUILTINS.join(", ")),
                    ));
                };
                (builtin(found), Some(found))
            }
            other => {
                let table = RawToolTable::deserialize(other)
                    .map_err(|e| c.value(&here, e.message().to_string()))?;
                (table, None)
            }
        };
        let does = match (table.find, table.action) {
            (Some(f), None) => {
                if !["phone", "email"].contains(&f.by.as_str()) {
                    return Err(c.value(
                        &field("find"),
                        "`by` is \"phone\" or \"email\": records are found by those",
                    ));
                }
                parses(c, &field("find"), &f.value)?;
                ToolDoes::Find {
                    kind: f.kind,
                    by: f.by,
                    value: f.value,
                }
            }
            (None, Some(action)) => {
                let Some((to, _)) = split_pair(&action) else {
                    return Err(c.value(
                        &field("action"),
                        "write `capability:operation` (e.g. `sms:send`) or `connector:action`",
                    ));
                };
                let capability = plugin_sdk::capability::capability(to);
                if let Some(cap) = capability
                    && !capabilities.contains_key(cap.name)
                {
                    return Err(c.value(
                        &field("action"),
                        format!("`{action}` runs the tenant's {to} connector, and this tenant names none: add `{to} = \"<connector>\"` to [tenants.{}]", at[1]),
                    ));
                }
                if capability.is_none() && !connectors.contains_key(to) {
                    return Err(c.value(
                        &field("action"),
                        format!("this tenant does not use connector `{to}`"),
                    ));
                }
                let mut input = Map::new();
                for (key, value) in table.input {
                    let path = [at[0], at[1], "tools", name.as_str(), "input", key.as_str()];
                    let json = to_json(c, &path, value)?;
                    for_each_string(&json, &mut |s| parses(c, &path, s))?;
                    input.insert(key, json);
                }
                ToolDoes::Act { action, input }
            }
            _ => {
                return Err(c.key(&here, "a tool does one thing: give `find = { kind, by, value }` or `action` (with `input`)"));
            }
        };
        let deadline = match table.deadline_ms {
            None => DEFAULT_DEADLINE,
            Some(ms) => {
                Duration::from_millis(c.in_range(&field("deadline_ms"), ms, 100, 60_000, " ms")?)
            }
        };
        let args = arguments(&does, &table.args);
        if let Some(extra) = table
            .args
            .keys()
            .find(|k| !args.iter().any(|a| &a.name == *k))
        {
            return Err(c.value(
                &field("args"),
                format!("`{extra}` is described, but no template reads `args.{extra}`"),
            ));
        }
        tools.insert(
            name.clone(),
            Tool {
                description: table.description.unwrap_or_default(),
                does,
                args,
                deadline,
                builtin: builtin_name,
            },
        );
    }
    Ok(tools)
}

/// Refuses a template that does not parse.
fn parses(c: &Checker<'_>, path: &[&str], template: &str) -> Result<(), ConfigError> {
    let env = minijinja::Environment::new();
    env.template_from_str(template)
        .map(drop)
        .map_err(|e| c.value(path, format!("the template does not parse: {e}")))
}

fn for_each_string<E>(v: &Json, f: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    match v {
        Json::String(s) => f(s),
        Json::Array(items) => items.iter().try_for_each(|i| for_each_string(i, f)),
        Json::Object(map) => map.values().try_for_each(|i| for_each_string(i, f)),
        _ => Ok(()),
    }
}

/// Every `args.NAME` the tool's templates read, required unless each use has a `default`.
fn arguments(does: &ToolDoes, described: &BTreeMap<String, String>) -> Vec<ToolArg> {
    let mut uses: BTreeMap<String, bool> = BTreeMap::new();
    let mut scan = |s: &str| -> Result<(), ()> {
        let mut rest = s;
        while let Some(at) = rest.find("args.") {
            let before_ok = at == 0
                || !rest.as_bytes()[at - 1].is_ascii_alphanumeric()
                    && rest.as_bytes()[at - 1] != b'_'
                    && rest.as_bytes()[at - 1] != b'.';
            let after = &rest[at + 5..];
            let len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if before_ok && len > 0 {
                let name = &after[..len];
                let tail = after[len..].trim_start();
                let defaulted =
                    tail.starts_with('|') && tail[1..].trim_start().starts_with("default");
                let required = uses.entry(name.to_string()).or_insert(true);
                *required = *required && !defaulted;
            }
            rest = &after[len..];
        }
        Ok(())
    };
    match does {
        ToolDoes::Find { value, .. } => {
            let _ = scan(value);
        }
        ToolDoes::Act { input, .. } => {
            for v in input.values() {
                let _ = for_each_string(v, &mut scan);
            }
        }
    }
    uses.into_iter()
        .map(|(name, required)| ToolArg {
            description: described.get(&name).cloned().unwrap_or_default(),
            name,
            required,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_come_from_the_templates() {
        let does = ToolDoes::Act {
            action: "sms:send".into(),
            input: serde_json::json!({ "to": "{{ args.to | default(call.from_number) }}", "body": "Hi {{ args.name }}, {{ args.name }}!", "x": ["{{ xargs.no }}"] })
                .as_object()
                .unwrap()
                .clone(),
        };
        let described = BTreeMap::from([("name".to_string(), "Who".to_string())]);
        let args = arguments(&does, &described);
        assert_eq!(
            args,
            [
                ToolArg {
                    name: "name".into(),
                    description: "Who".into(),
                    required: true
                },
                ToolArg {
                    name: "to".into(),
                    description: String::new(),
                    required: false
                },
            ]
        );
        let tool = Tool {
            description: String::new(),
            does,
            args,
            deadline: DEFAULT_DEADLINE,
            builtin: None,
        };
        assert_eq!(tool.input_schema()["required"], serde_json::json!(["name"]));
        assert_eq!(
            tool.input_schema()["properties"]["name"]["description"],
            "Who"
        );
    }
}
