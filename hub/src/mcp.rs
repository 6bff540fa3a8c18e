//! `POST /mcp/{tenant}`: the tenant's tools (`config::tools`) as a Model Context Protocol server
//! over Streamable HTTP, for agents that speak MCP (Retell's MCP node, any MCP client). The
//! protocol is the official Rust SDK's (`rmcp`), served statelessly with JSON answers: no
//! session to keep, so any hub behind a load balancer answers any request. Here: who may call
//! (a bearer token of the tenant with the `tools` scope, or one that may act, or the admin
//! token), and `tools/list` and `tools/call` mapped onto `crate::tools`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;
use tower::ServiceExt as _;

use crate::id::TenantId;
use crate::reload::Shared;
use crate::state::Hub;
use crate::tools::{self, Conversation};

/// Who is calling, for which tenant: put on the request by [`serve`], read by the handler.
#[derive(Clone)]
struct Caller {
    hub: Arc<Hub>,
    tenant: TenantId,
}

/// The MCP service: one per hub process, stateless.
pub type Service = StreamableHttpService<TenantTools, LocalSessionManager>;

/// Makes the service. `public_url`'s host is the one `Host` it answers besides loopback (the
/// SDK refuses others, against DNS rebinding).
pub fn service(public_url: &url::Url) -> Service {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = public_url.host_str() {
        hosts.push(host.to_string());
        if let Some(port) = public_url.port() {
            hosts.push(format!("{host}:{port}"));
        }
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(hosts);
    StreamableHttpService::new(|| Ok(TenantTools), Arc::default(), config)
}

/// `/mcp/{tenant}`: the caller's token checked, then the request handed to the MCP service.
/// 401 without a valid token; 404 for a tenant that does not exist or is not the token's; 403
/// for a token of the tenant that may not call tools.
pub async fn serve(
    State((shared, mcp)): State<(Shared, Service)>,
    Path(tenant): Path<String>,
    mut request: Request,
) -> Response {
    let hub = shared.0.hub();
    let Some(principal) = hub.tokens.caller(request.headers()) else {
        let body = axum::Json(json!({ "error": "a valid bearer token is required" }));
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            body,
        )
            .into_response();
    };
    let Some(tenant) = hub
        .directory
        .tenant(&tenant)
        .map(|(id, _)| id.clone())
        .filter(|id| principal.owns(id))
    else {
        let body = axum::Json(json!({ "error": format!("tenant {tenant} not found") }));
        return (StatusCode::NOT_FOUND, body).into_response();
    };
    if !principal.may_call_tools(&tenant) {
        let body = axum::Json(
            json!({ "error": "this token may not call tools: that takes the `tools` scope (or `act`)" }),
        );
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    request.extensions_mut().insert(Caller { hub, tenant });
    match mcp.oneshot(request).await {
        Ok(answer) => answer.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// The handler: the tenant's tools, from the caller [`serve`] put on the request.
#[derive(Clone, Copy)]
pub struct TenantTools;

fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("no caller on the request", None))
}

/// One tool as MCP lists it.
fn listed(name: &str, tool: &crate::config::tools::Tool) -> Tool {
    let schema = match tool.input_schema() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Tool::new(name.to_string(), tool.description.clone(), Arc::new(schema))
}

impl ServerHandler for TenantTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("hub", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The tenant's tools: look up callers in its records, send texts and emails, \
                 each once per call.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let Caller { hub, tenant } = caller(&context)?;
        let tools = hub
            .config
            .tenants
            .get(&tenant)
            .map(|t| {
                t.tools
                    .iter()
                    .map(|(name, tool)| listed(name, tool))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Caller { hub, tenant } = caller(&context)?;
        let name = request.name.to_string();
        if tools::find(&hub, &tenant, &name).is_none() {
            return Err(McpError::invalid_params(
                format!("no tool `{name}` (tools/list names them)"),
                None,
            ));
        }
        let args = request
            .arguments
            .map(serde_json::Value::Object)
            .unwrap_or_default();
        let conversation = Conversation {
            args: args.clone(),
            call: json!({}),
            id: None,
        };
        let started = std::time::Instant::now();
        let outcome = tools::call(&hub, &tenant, &name, conversation).await;
        let took_ms = started.elapsed().as_millis();
        let said = match &outcome {
            Ok(answer) => answer.clone(),
            Err(failure) => json!({ "error": failure.speakable(&name) }),
        };
        let source: crate::id::ConnectorId = "mcp".parse().expect("a valid id");
        tools::publish(
            &hub,
            &tenant,
            &source,
            tools::Called {
                tool: &name,
                via: "mcp",
                conversation: None,
                args: &args,
                answer: &said,
                took_ms,
            },
        );
        let result = match outcome {
            Ok(answer) => {
                tracing::info!(tenant = %tenant, tool = %name, took_ms, via = "mcp", "tool call answered: {answer}");
                let mut r = CallToolResult::success(vec![ContentBlock::text(answer.to_string())]);
                r.structured_content = Some(answer);
                r
            }
            Err(failure) => {
                tracing::warn!(tenant = %tenant, tool = %name, took_ms, via = "mcp", "tool call failed: {failure:?}");
                CallToolResult::error(vec![ContentBlock::text(failure.speakable(&name))])
            }
        };
        Ok(result.into())
    }
}
