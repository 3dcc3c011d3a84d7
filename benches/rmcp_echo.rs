//! The baseline server of the HTTP load bench: the official Rust MCP SDK (rmcp 3.11) serving one
//! `echo` tool over Streamable HTTP, stateless with JSON responses (its fastest mode), on axum with
//! TCP_NODELAY — the same load as `erlmcp start --http` gets from `erlmcp bench tcp --http`.
//!
//! Not a criterion bench: `scripts/bench-http` runs it as
//! `cargo bench --bench rmcp_echo -- --addr 127.0.0.1:PORT` (it serves until killed).

#[path = "support/serve_addr.rs"]
mod serve_addr;

use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serve_addr::serve_addr;
use std::sync::Arc;

#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("text"))
            .and_then(|text| text.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn main() -> std::io::Result<()> {
    let Some(addr) = serve_addr("rmcp_echo") else {
        return Ok(());
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let mut config = StreamableHttpServerConfig::default();
            config.legacy_session_mode = false;
            config.json_response = true;
            config.sse_keep_alive = None;
            let service = StreamableHttpService::new(
                || Ok(Echo),
                Arc::new(NeverSessionManager::default()),
                config,
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("rmcp echo listening on {}", listener.local_addr()?);
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router).await
        })
}
