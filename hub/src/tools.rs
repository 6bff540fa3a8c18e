//! Tool calls: a voice or chat agent calls one of the tenant's tools (`config::tools`) in the
//! middle of a conversation, through its provider's custom-function route (`ingress`) or over
//! MCP (`mcp`). A `find` tool reads the tenant's records at once; an action tool becomes an
//! action like the app's (`actions`), keyed by the conversation, the tool and the arguments, so
//! a provider's retry answers the same outcome and never acts twice, and waited for until the
//! tool's deadline. The agent's arguments are data: templates read them, never run them.

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::actions::{self, Phase, Refused};
use crate::config::tools::{Tool, ToolDoes};
use crate::id::ConnectorId;
use crate::id::TenantId;
use crate::routing::{self, Records};
use crate::state::Hub;
use crate::store::{Effects, Published};
use tracing::Instrument as _;

/// One call of a tool, as the agent made it.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// The tool's arguments (a JSON object).
    pub args: Json,
    /// The conversation (Retell's call object), `call` in templates; `{}` when there is none.
    pub call: Json,
    /// The conversation's id, so the same call of the same tool with the same arguments acts
    /// once; `None`: each call is a new one.
    pub id: Option<String>,
}

/// Why a tool call did not answer an outcome. [`Failure::speakable`] is what the agent is told;
/// the log has the rest.
#[derive(Debug)]
pub enum Failure {
    /// The tenant has no tool by that name.
    NoSuchTool(String),
    /// The arguments do not fit (a missing one, say): the agent can ask and try again.
    BadArguments(String),
    /// It failed (the provider refused, the database failed): with the real reason.
    Failed(String),
}

impl Failure {
    /// A short sentence the agent can speak from.
    pub fn speakable(&self, tool: &str) -> String {
        match self {
            Failure::NoSuchTool(_) => format!("There is no tool called {tool}."),
            Failure::BadArguments(why) => format!("I couldn't run {tool}: {why}."),
            // The provider turned it down for a reason the caller can act on: its sentence.
            Failure::Failed(why) if why.starts_with(crate::runtime::DECLINED) => {
                why[crate::runtime::DECLINED.len()..].to_string()
            }
            Failure::Failed(_) => format!("I couldn't complete {tool} just now."),
        }
    }
}

/// The tenant's tool `name`.
pub fn find<'h>(hub: &'h Hub, tenant: &TenantId, name: &str) -> Option<&'h Tool> {
    hub.config.tenants.get(tenant)?.tools.get(name)
}

/// Runs the tenant's tool `name` for `conversation` and answers the JSON the agent reads:
/// `{"found": true, "record": ...}` / `{"found": false}` for a lookup; `{"status": "done",
/// "output": ...}` for an action that ended within the deadline, `{"status": "pending", ...}`
/// for one still under way (it goes on as a job).
///
/// # Errors
/// A [`Failure`], which the caller answers as a speakable error.
pub async fn call(
    hub: &Hub,
    tenant: &TenantId,
    name: &str,
    conversation: Conversation,
) -> Result<Json, Failure> {
    let span = if crate::telemetry::sampled_here() {
        tracing::info_span!(target: crate::telemetry::TARGET, "tool",
            otel.name = %format_args!("tool {name}"), tenant = %tenant, tool = name,
            outcome = tracing::field::Empty)
    } else {
        tracing::Span::none()
    };
    let answer = run(hub, tenant, name, conversation)
        .instrument(span.clone())
        .await;
    span.record("outcome", if answer.is_ok() { "ok" } else { "failed" });
    if answer.is_err() {
        crate::telemetry::failed(&span, "failed");
    }
    answer
}

async fn run(
    hub: &Hub,
    tenant: &TenantId,
    name: &str,
    conversation: Conversation,
) -> Result<Json, Failure> {
    let Some(tool) = find(hub, tenant, name).cloned() else {
        return Err(Failure::NoSuchTool(name.to_string()));
    };
    let config = hub.config.tenants.get(tenant);
    let tenant_name = config.map(|t| t.name.clone()).unwrap_or_default();
    // The zone an agent speaks in: the tenant's `timezone` when it names one (UTC, the default,
    // leaves the connector's own default in charge).
    let zone = config
        .map(|t| t.timezone)
        .filter(|tz| *tz != chrono_tz::UTC)
        .map(|tz| tz.name().to_string());
    let records = Records {
        store: hub.store.clone(),
        tenant: tenant.clone(),
        phone_code: config.and_then(|t| t.phone_country_code.clone()),
    };
    let args = match conversation.args {
        Json::Null => json!({}),
        a @ Json::Object(_) => a,
        _ => {
            return Err(Failure::BadArguments(
                "its arguments must be an object".into(),
            ));
        }
    };
    let ctx = json!({
        "args": args,
        "call": if conversation.call.is_object() { conversation.call.clone() } else { json!({}) },
        "tenant": { "id": tenant.as_str(), "name": tenant_name, "timezone": zone },
    });
    match &tool.does {
        ToolDoes::Find { kind, by, value } => {
            let (kind, by, value) = (kind.clone(), by.clone(), value.clone());
            tokio::task::spawn_blocking(move || lookup(records, &ctx, &kind, &by, &value))
                .await
                .map_err(|e| Failure::Failed(e.to_string()))?
        }
        ToolDoes::Act { action, input } => {
            let template = Json::Object(input.clone());
            let for_render = records.clone();
            let rendered = tokio::task::spawn_blocking(move || {
                routing::render(Some(for_render), &ctx, &template)
            })
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?
            .map_err(|e| Failure::BadArguments(missing(&e)))?;
            let target = actions::target(hub, tenant, action, rendered).map_err(refused)?;
            let call_id = conversation
                .id
                .unwrap_or_else(|| format!("once-{:016x}", rand::random::<u64>()));
            let digest = hex::encode(&Sha256::digest(args.to_string().as_bytes())[..8]);
            let key = format!("{}{tenant}:{call_id}:{name}:{digest}", actions::TOOL_KEYS);
            let submitted = actions::submit(&hub.store, tenant, key, &target)
                .await
                .map_err(refused)?;
            let state = actions::wait(&hub.store, tenant, submitted.id, tool.deadline)
                .await
                .map_err(|e| Failure::Failed(e.to_string()))?
                .ok_or_else(|| Failure::Failed(format!("action {} vanished", submitted.id)))?;
            match state.state {
                Phase::Succeeded => Ok(json!({ "status": "done", "output": state.output })),
                Phase::Failed => Err(Failure::Failed(state.error.unwrap_or_default())),
                _ => Ok(json!({
                    "status": "pending",
                    "message": "It is under way and will be done shortly.",
                })),
            }
        }
    }
}

/// What a tool call was, for the tenant's `tool.called` event.
pub struct Called<'a> {
    /// The tool.
    pub tool: &'a str,
    /// How the agent called it: `retell` (a custom function), `mcp`.
    pub via: &'a str,
    /// The conversation's id, if the caller named one.
    pub conversation: Option<&'a str>,
    /// The arguments.
    pub args: &'a Json,
    /// What the agent was answered.
    pub answer: &'a Json,
    /// How long the hub took (ms).
    pub took_ms: u128,
}

/// Publishes a tool call as the tenant's `tool.called` event, under `source` (the connector
/// whose route it came by; `mcp` over MCP), so it shows in the console's events, the feed and
/// the app's endpoints (`*:tool.*`). Written in the background: the agent's answer never
/// waits for it.
pub fn publish(hub: &Hub, tenant: &TenantId, source: &ConnectorId, called: Called<'_>) {
    let payload = json!({
        "tool": called.tool, "via": called.via, "conversation": called.conversation,
        "args": called.args, "answer": called.answer, "took_ms": called.took_ms,
    });
    let events = vec![Published {
        name: "tool.called".into(),
        payload: payload.to_string(),
    }];
    let key = format!(
        "toolcall:{tenant}:{}:{:016x}",
        crate::clock::now_ms(),
        rand::random::<u64>()
    );
    let jobs = hub
        .config
        .tenants
        .get(tenant)
        .map(|t| crate::outbox::jobs_for_events(tenant, t, source, &key, &events))
        .unwrap_or_default();
    let effects = Effects {
        events,
        jobs,
        ..Default::default()
    };
    let (store, tenant, source) = (hub.store.clone(), tenant.clone(), source.clone());
    tokio::spawn(async move {
        if let Err(e) = store.apply(&tenant, &source, effects).await {
            tracing::warn!(%tenant, "could not record a tool call: {e}");
        }
    });
}

/// A template error as the agent can use it: which argument is missing.
fn missing(error: &str) -> String {
    match error.split("args.").nth(1) {
        Some(rest) => {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            format!("it needs the argument `{name}`")
        }
        None => "its arguments do not fit".into(),
    }
}

fn refused(r: Refused) -> Failure {
    match r {
        Refused::NoSuchAction(why) => Failure::Failed(why),
        Refused::Invalid(problems) => Failure::BadArguments(
            problems
                .iter()
                .map(|p| format!("{} {}", p.field.trim_start_matches("input."), p.message))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Refused::Conflict(id) => Failure::Failed(format!("key taken by action {id}")),
        Refused::Store(e) => Failure::Failed(e.to_string()),
    }
}

/// A `find` tool: the newest record of `kind` that carries `by:value` (blocking).
fn lookup(
    records: Records,
    ctx: &Json,
    kind: &str,
    by: &str,
    value: &str,
) -> Result<Json, Failure> {
    let value = routing::render(Some(records.clone()), ctx, &Json::String(value.into()))
        .map_err(|e| Failure::BadArguments(missing(&e)))?;
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    let lookup = match by {
        "phone" => plugin_sdk::lookup::phone(&text),
        _ => plugin_sdk::lookup::email(&text),
    }
    .and_then(|l| plugin_sdk::lookup::resolve(&l, records.phone_code.as_deref()));
    let Some(lookup) = lookup else {
        return Ok(json!({ "found": false }));
    };
    let found = records
        .store
        .record_find(&records.tenant, kind, &lookup, 1)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    Ok(match found.into_iter().next() {
        Some((key, data, _)) => json!({
            "found": true,
            "kind": kind,
            "key": key,
            "record": serde_json::from_str::<Json>(&data).unwrap_or(Json::Null),
        }),
        None => json!({ "found": false }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_argument_is_named() {
        assert_eq!(
            missing("undefined value (in <string>:1): `args.body` is undefined"),
            "it needs the argument `body`"
        );
        assert_eq!(missing("whatever"), "its arguments do not fit");
        let f = Failure::Failed("HTTP 500 from api.twilio.com: internal".into());
        assert_eq!(
            f.speakable("send_sms"),
            "I couldn't complete send_sms just now."
        );
    }
}
