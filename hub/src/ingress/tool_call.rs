//! The answer of a tool-call route (a Retell custom function): once the request is verified and
//! stored, the tool it names runs (`crate::tools`) and its JSON is the answer, cut to the length
//! the provider reads. A failure is answered 200 with a short sentence the agent can speak
//! (`{"error": "I couldn't ..."}`); the log has the real reason.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::id::{ConnectorId, TenantId};
use crate::runtime::ToolCalls;
use crate::state::Hub;
use crate::tools::{self, Conversation};

/// What ends an answer cut to the provider's length.
const CUT: &str = "…[cut: the answer was longer than the agent reads]";

/// Runs the tool the request names for `tenant` and answers its outcome.
pub(super) async fn answer(
    hub: &Hub,
    (tenant, connector): (&TenantId, &ConnectorId),
    shape: &ToolCalls,
    body: &[u8],
) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let at = |pointer: &str| {
        if pointer.is_empty() {
            Some(request.clone())
        } else {
            request.pointer(pointer).cloned()
        }
    };
    let name = at(&shape.name)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let conversation = Conversation {
        args: at(&shape.args).unwrap_or(Value::Null),
        call: at(&shape.conversation).unwrap_or(Value::Null),
        id: at(&shape.conversation_id).and_then(|v| v.as_str().map(str::to_string)),
    };
    let (args, conversation_id) = (conversation.args.clone(), conversation.id.clone());
    let started = std::time::Instant::now();
    let outcome = tools::call(hub, tenant, &name, conversation).await;
    let took_ms = started.elapsed().as_millis();
    let answer = match outcome {
        Ok(answer) => {
            tracing::info!(tenant = %tenant, tool = %name, took_ms, "tool call answered: {answer}");
            answer
        }
        Err(failure) => {
            tracing::warn!(tenant = %tenant, tool = %name, took_ms, "tool call failed: {failure:?}");
            json!({ "error": failure.speakable(&name) })
        }
    };
    tools::publish(
        hub,
        tenant,
        connector,
        tools::Called {
            tool: &name,
            via: connector.as_str(),
            conversation: conversation_id.as_deref(),
            args: &args,
            answer: &answer,
            took_ms,
        },
    );
    let text = answer.to_string();
    let limit = shape.max_answer_chars as usize;
    if limit == 0 || text.chars().count() <= limit {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response();
    }
    let keep = limit.saturating_sub(CUT.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(CUT);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cut,
    )
        .into_response()
}
