//! What the connector declares: routes, events, jobs, config, credentials and its one
//! outbound host. Pure: `describe` runs without host access.

use plugin_sdk::{
    EventDecl, JobDecl, Manifest, Route, Selector, SignatureScheme, ToolCalls, field,
    manifest as base, route,
};

use crate::api::{BASE, CREDENTIAL};
use crate::jobs::{BACKFILL_CALLS, CHECK_CREDENTIALS, SYNC_AGENTS, SYNC_PHONE_NUMBERS};
use crate::merge::{CALL_ANALYZED, CALL_ENDED, CALL_STARTED};
use crate::normalize::example;
use crate::register::{REGISTER, UNREGISTER};
use crate::webhook::{AGENT_IDS, FETCH_CALL};

/// Config key: dynamic variables for inbound calls, keyed by the number called or `"*"`.
pub const INBOUND_VARIABLES: &str = "inbound_variables";
/// Route of the inbound-call webhook (answered synchronously).
pub const INBOUND_ROUTE: &str = "inbound";
/// Route for chat agents' webhooks.
pub const CHAT_ROUTE: &str = "chat";
/// Route of the agents' custom functions: the hub answers with the tenant's tool.
pub const TOOLS_ROUTE: &str = "tools";
/// The most of a custom function's answer an agent reads.
const MAX_TOOL_ANSWER_CHARS: u32 = 15_000;

/// Retell's signature window: 5 minutes.
const TOLERANCE_SECS: u32 = 300;

fn json(pointer: &str) -> Selector {
    Selector::Json(pointer.into())
}

fn signed(name: &str) -> Route {
    let mut r = route(name, SignatureScheme::Retell, CREDENTIAL);
    r.tolerance_secs = TOLERANCE_SECS;
    r.event_type = Some(json("/event"));
    r
}

/// The routes: `""` for call events, `chat` for chat events, `inbound` for the inbound
/// webhook, `tools` for agents' custom functions. Retell sends no event id, so a call event is identified by call id + event type.
pub fn routes() -> Vec<Route> {
    let mut calls = signed("");
    calls.identity = vec![json("/call/call_id"), json("/event")];
    calls.example = Some(
        r#"{"event":"call_analyzed","call":{"call_id":"call_test_{{id}}","agent_id":"agent_test","call_status":"ended","direction":"inbound","from_number":"+14155550100","to_number":"+14155550199","duration_ms":65000,"transcript":"Agent: Hello, how can I help?\nUser: I would like to book an appointment.","call_analysis":{"call_summary":"The caller booked an appointment.","user_sentiment":"Positive","call_successful":true,"in_voicemail":false}}}"#.into(),
    );
    let mut chats = signed(CHAT_ROUTE);
    chats.identity = vec![json("/chat/chat_id"), json("/event")];
    chats.example = Some(
        r#"{"event":"chat_ended","chat":{"chat_id":"chat_test_{{id}}","agent_id":"agent_test","chat_status":"ended"}}"#.into(),
    );
    // The inbound payload has no id (no call exists yet), and caller + number repeat across
    // calls, so the identity is the body hash.
    let mut inbound = signed(INBOUND_ROUTE);
    inbound.sync_reply = true;
    // A custom function: `{"name", "args", "call"}`, signed like the webhooks (keep Retell's
    // `args_at_root` off). A retry repeats the body, so the body hash identifies it.
    let mut tools = signed(TOOLS_ROUTE);
    tools.event_type = Some(json("/name"));
    tools.tool_calls = Some(ToolCalls {
        name: "/name".into(),
        args: "/args".into(),
        conversation: "/call".into(),
        conversation_id: "/call/call_id".into(),
        max_answer_chars: MAX_TOOL_ANSWER_CHARS,
    });
    tools.example = Some(
        r#"{"name":"lookup_caller","args":{},"call":{"call_id":"call_test_{{id}}","agent_id":"agent_test","call_status":"ongoing","direction":"inbound","from_number":"+14155550100","to_number":"+14155550199"}}"#.into(),
    );
    vec![calls, chats, inbound, tools]
}

fn event(name: &str, description: &str, status: &str, analyzed: bool) -> EventDecl {
    EventDecl {
        name: name.into(),
        description: description.into(),
        example: example(status, analyzed),
    }
}

fn job(name: &str, description: &str) -> JobDecl {
    JobDecl {
        name: name.into(),
        description: description.into(),
        schedule: None,
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Retell AI voice and chat agents: call webhooks into `call` records and \
                      call.* events, the inbound-call webhook, agent/number/call sync."
            .into(),
        routes: routes(),
        events: vec![
            event(
                CALL_STARTED,
                "A call reached `ongoing` (not sent for calls first seen already over).",
                "ongoing",
                false,
            ),
            event(
                CALL_ENDED,
                "A call reached a final status: ended, not_connected or error.",
                "ended",
                false,
            ),
            event(
                CALL_ANALYZED,
                "A call's post-call analysis arrived.",
                "ended",
                true,
            ),
        ],
        jobs: vec![
            job(
                FETCH_CALL,
                "Fetches one call (`{\"call_id\": ...}`) with get-call and merges it into its record.",
            ),
            job(
                SYNC_AGENTS,
                "Stores the tenant's agents (list-agents) as `agent` records keyed by agent_id.",
            ),
            job(
                SYNC_PHONE_NUMBERS,
                "Stores the tenant's numbers (list-phone-numbers) as `phone_number` records.",
            ),
            job(
                CHECK_CREDENTIALS,
                "Checks the API key with one list-agents call; writes nothing (the console's \"Test\").",
            ),
            job(
                BACKFILL_CALLS,
                "Merges recent calls (list-calls) into `call` records. Input `{\"since_ms\"?, \"publish\"?}`; \
                 default window: since the last backfill (minus 1 h), else 24 h.",
            ),
            job(
                REGISTER,
                "Points the tenant's agents (`agent_ids`, else all) at the hub (`webhook_url`, kept if \
                 already there) and, with `inbound_variables`, their numbers' inbound webhook at \
                 `/inbound`; releases strays. Nothing to keep: Retell signs with the API key.",
            ),
            job(
                UNREGISTER,
                "Clears the agents' `webhook_url` and the numbers' inbound webhook where they still \
                 point at the hub.",
            ),
        ],
        config: vec![
            field(
                AGENT_IDS,
                false,
                "Agent ids this tenant owns; deliveries for other agents are ignored.",
            ),
            field(
                INBOUND_VARIABLES,
                false,
                "Dynamic variables for inbound calls: a table keyed by the number called, or \"*\" for all.",
            ),
        ],
        credentials: vec![field(
            CREDENTIAL,
            true,
            "The Retell API key: verifies webhook signatures and authenticates API calls.",
        )],
        oauth2: Vec::new(),
        outbound_hosts: vec![BASE.into()],
        ..base("retell", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        let m = manifest();
        assert_eq!(m.name, "retell");
        let names: Vec<&str> = m.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["", "chat", "inbound", "tools"]);
        for r in &m.routes {
            assert!(matches!(r.signature, SignatureScheme::Retell));
            assert_eq!(r.credential, "api_key");
            assert_eq!(r.tolerance_secs, 300);
            assert!(!r.split_array && r.tenant_lookup.is_none());
        }
        let bare = &m.routes[0];
        assert!(!bare.sync_reply);
        assert!(
            matches!(&bare.identity[..], [Selector::Json(a), Selector::Json(b)] if a == "/call/call_id" && b == "/event")
        );
        assert!(matches!(&bare.event_type, Some(Selector::Json(p)) if p == "/event"));
        let inbound = &m.routes[2];
        assert!(inbound.sync_reply && inbound.identity.is_empty());
        let tools = m.routes[3].tool_calls.as_ref().unwrap();
        assert_eq!(
            (
                tools.name.as_str(),
                tools.args.as_str(),
                tools.conversation_id.as_str()
            ),
            ("/name", "/args", "/call/call_id")
        );
        assert_eq!(
            tools.max_answer_chars, 15_000,
            "Retell reads 15,000 characters"
        );
    }

    #[test]
    fn declarations() {
        let m = manifest();
        let events: Vec<&str> = m.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events, vec!["call.started", "call.ended", "call.analyzed"]);
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert!(v.get("call_id").is_some(), "{}", e.name);
        }
        let jobs: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            jobs,
            vec![
                "fetch_call",
                "sync_agents",
                "sync_phone_numbers",
                "check_credentials",
                "backfill_calls",
                "register_webhooks",
                "unregister_webhooks"
            ]
        );
        let config: Vec<(&str, bool)> = m
            .config
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(
            config,
            vec![("agent_ids", false), ("inbound_variables", false)]
        );
        assert_eq!(m.credentials.len(), 1);
        assert!(m.credentials[0].required);
        assert_eq!(m.outbound_hosts, vec!["https://api.retellai.com"]);
    }
}
