//! A server that embeds erlmcp as a library: its own tools (no demo toolset), logging set up,
//! its own address and node name, serving until Ctrl-C (SIGINT) or SIGTERM, then stopping the
//! supervision tree in order. Walked through in `docs/embedding.md`.
//!
//! Run it with `cargo run --example embedded_server -- 127.0.0.1:7420`, then point an MCP client
//! at `http://127.0.0.1:7420/mcp`.

use erlmcp::app::Application;
use erlmcp::config::Config;
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, ToolEntry, ToolError};
use erlmcp::session::RequestContext;
use serde::Deserialize;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

/// The address served when none is given on the command line.
const DEFAULT_ADDR: &str = "127.0.0.1:7420";

/// `shout`'s arguments; `text` borrows from the request instead of being copied.
#[derive(Deserialize)]
struct ShoutArgs<'a> {
    text: &'a str,
}

/// `add`'s arguments.
#[derive(Deserialize)]
struct AddArgs {
    a: f64,
    b: f64,
}

/// This program's tools: what `tools/list` shows, and the handler each `tools/call` runs.
fn tools() -> Vec<Change> {
    let shout = ToolEntry::new(
        Tool::new(
            "shout",
            "Upper-cases `text`",
            json!({
                "type": "object",
                "properties": { "text": { "type": "string" } },
                "required": ["text"],
            }),
        ),
        |_ctx: RequestContext, args: Arguments| async move {
            // A mismatch (no `text`, not a string) becomes a result with `isError: true`.
            let args: ShoutArgs<'_> = args.parse()?;
            Ok::<_, ToolError>(CallToolResult::text(args.text.to_uppercase()))
        },
    );
    let add = ToolEntry::new(
        Tool::new(
            "add",
            "Adds `a` and `b`",
            json!({
                "type": "object",
                "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                "required": ["a", "b"],
            }),
        ),
        |_ctx: RequestContext, args: Arguments| async move {
            let AddArgs { a, b } = args.parse()?;
            let sum = a + b;
            if !sum.is_finite() {
                return Err(ToolError::new("the sum is not a finite number"));
            }
            Ok(CallToolResult::text(sum.to_string()))
        },
    );
    vec![Change::Tool(shout), Change::Tool(add)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = match std::env::args().nth(1) {
        Some(given) => given.parse()?,
        None => DEFAULT_ADDR.parse()?,
    };

    // The embedded default configuration, then this program's choices. A TOML file works too:
    // `Config::from_file(path)`.
    let mut config = Config::embedded()?;
    config.node_name = "embedded-example".into(); // names the admin socket: `erlmcp remote --node embedded-example`
    config.demo = false; // serve only this program's tools, not the 17 demo tools
    config.http.enabled = true;
    config.http.addr = addr;
    config.validate()?;

    // Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) wins over the configured level.
    erlmcp::logging::init(config.log_level, config.log_format);

    // Listen for the signals before starting, so one that arrives during start-up still stops
    // the node in order instead of killing the process.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;

    let mut app = Application::start_with(&config, tools()).await?;
    tracing::info!(addr = ?app.http_addr(), "serving MCP at /mcp; Ctrl-C stops");

    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        () = app.exited() => anyhow::bail!("the root supervisor stopped: a failure escalated to the top"),
    }
    // Every supervisor stops its children in reverse start order; sessions and connections end.
    app.stop().await?;
    tracing::info!("stopped");
    Ok(())
}
