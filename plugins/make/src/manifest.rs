//! What the Make connector declares: one token-guarded route scenarios post to, the
//! `make.received` event, the `trigger_webhook` and `run_scenario` actions, and the
//! `check_credentials` job.

use plugin_sdk::{
    ActionDecl, EventDecl, JobDecl, Manifest, Selector, SignatureScheme, TokenLocation, field,
    manifest as base, route,
};

/// The credential scenarios send in [`TOKEN_HEADER`].
pub const TOKEN: &str = "token";
/// Where a scenario's HTTP module puts the token.
pub const TOKEN_HEADER: &str = "x-hub-token";
/// The header a scenario's HTTP module sets to `{{executionId}}`: one delivery per value.
pub const KEY_HEADER: &str = "idempotency-key";
/// The Make API token (`Authorization: Token ...`), for `run_scenario` and the check.
pub const API_TOKEN: &str = "api_token";
/// The scenario's custom-webhook URL, itself the secret (`https://hook.us1.make.com/...`).
pub const WEBHOOK_URL: &str = "webhook_url";
/// The custom webhook's API key (`x-make-apikey`), when the webhook requires one.
pub const WEBHOOK_API_KEY: &str = "webhook_api_key";

/// The event every post from a scenario becomes.
pub const RECEIVED: &str = "make.received";
/// Action: post to the tenant's custom webhook.
pub const TRIGGER_WEBHOOK: &str = "trigger_webhook";
/// Action: run a scenario through Make's API.
pub const RUN_SCENARIO: &str = "run_scenario";
/// Job: one cheap authenticated API call.
pub const CHECK_CREDENTIALS: &str = "check_credentials";

/// Make's zones (`eu1.make.com`...): the API and custom webhooks live on each.
pub const ZONES: [&str; 4] = ["eu1", "eu2", "us1", "us2"];

/// A post as a scenario sends it, for test webhooks; `{{id}}` is fresh each time.
const EXAMPLE: &str = r#"{"event":"lead.created","data":{"name":"Ada Lovelace","email":"ada@example.com","phone":"+14155550100"}}"#;

pub fn manifest() -> Manifest {
    let mut inbound = route(
        "",
        SignatureScheme::SharedToken(TokenLocation::Header(TOKEN_HEADER.into())),
        TOKEN,
    );
    inbound.identity = vec![Selector::Header(KEY_HEADER.into())];
    inbound.event_type = Some(Selector::Json("/event".into()));
    inbound.example = Some(EXAMPLE.into());
    let mut hosts = Vec::new();
    for zone in ZONES {
        hosts.push(format!("https://{zone}.make.com"));
        hosts.push(format!("https://hook.{zone}.make.com"));
    }
    Manifest {
        description: "Make.com: scenarios post to the hub (a hub-issued token, one delivery per \
                      Idempotency-Key) and become make.received events; the hub triggers \
                      scenarios by their custom webhook or through Make's API, at most once per key."
            .into(),
        routes: vec![inbound],
        events: vec![EventDecl {
            name: RECEIVED.into(),
            description: "A scenario posted data; `event` is its own name for it (the body's \
                          `event` field), `data` the rest."
                .into(),
            example: r#"{"key":"7c1f","event":"lead.created","data":{"name":"Ada Lovelace","email":"ada@example.com"},"received_at_ms":1767225600000}"#.into(),
        }],
        actions: vec![
            ActionDecl {
                name: TRIGGER_WEBHOOK.into(),
                description: "Posts `data` as JSON to the tenant's custom webhook (credential \
                              `webhook_url`), with the idempotency key in `Idempotency-Key`."
                    .into(),
                inputs: vec![field("data", true, "The JSON object the scenario receives.")],
                outputs: vec![field("accepted", true, "The webhook took the data (always true on success).")],
                implements: None,
            },
            ActionDecl {
                name: RUN_SCENARIO.into(),
                description: "Runs an active scenario through Make's API with `data` as its \
                              inputs; answers Make's `executionId`."
                    .into(),
                inputs: vec![
                    field("scenario_id", true, "The scenario's id (a number)."),
                    field("data", false, "The scenario's inputs (a JSON object)."),
                ],
                outputs: vec![field("execution_id", true, "Make's id for the run.")],
                implements: None,
            },
        ],
        jobs: vec![JobDecl {
            name: CHECK_CREDENTIALS.into(),
            description: "Checks the API token with Make's GET /users/me.".into(),
            schedule: None,
        }],
        config: vec![
            field("zone", false, "The Make zone of the organization: eu1, eu2, us1 or us2 (for run_scenario and the check)."),
            field("send_api_key", false, "true: send credential `webhook_api_key` as x-make-apikey to the custom webhook."),
        ],
        credentials: vec![
            field(TOKEN, true, "The token scenarios send in x-hub-token (hub seal generates one)."),
            field(API_TOKEN, false, "A Make API token with scenarios:run (Profile > API)."),
            field(WEBHOOK_URL, false, "The scenario's custom-webhook URL, https://hook.<zone>.make.com/..."),
            field(WEBHOOK_API_KEY, false, "The custom webhook's API key, when it requires one."),
        ],
        oauth2: Vec::new(),
        outbound_hosts: hosts,
        ..base("make", env!("CARGO_PKG_VERSION"))
    }
}
