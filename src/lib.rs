//! # erlmcp — an MCP server runtime built the way Erlang/OTP builds telecom systems
//!
//! Every connection, session and registry is an actor owned by a supervisor with a restart
//! strategy (the supervision engine is the sibling crate [`erlmcp_supervisors`]).
//!
//! ## A guided tour
//! - [`config`]: the TOML configuration — embedded default, files, `ERLMCP_*` overrides.
//! - [`app`]: the application tree (`erlmcp_sup` and its supervisors) and its start/stop.
//! - `tree_names` (internal): the registered names of the tree's supervisors and workers; the
//!   ones a caller needs are re-exported ([`session::SESSION_SUP`], [`registry::REGISTRY`]).
//! - [`protocol`]: JSON-RPC 2.0 and the MCP shapes; revision negotiation.
//! - [`registry`]: tools, resources, templates, prompts — one writer, lock-free readers.
//! - [`common`]: the types the registry, sessions and dispatcher share.
//! - [`session`]: one actor per client session; the [`session::RequestContext`] handlers get.
//! - [`outbound`]: a session's outgoing queue, which its connection drains.
//! - [`dispatch`]: one frame in, its answer out.
//! - [`transport`]: stdio and TCP (newline-delimited JSON-RPC, one actor per connection),
//!   Streamable HTTP, legacy SSE and WebSocket (one HTTP listener).
//! - [`plugin_host`]: hot-swappable handler plugins (`.so`), swap and rollback.
//! - [`remote`]: the admin-channel client of `erlmcp remote` and `erlmcp plugin`.
//! - [`demo`]: the demo toolset (echo, sleep, the conformance suite's tools).
//! - [`logging`]: `tracing` to stderr, text or JSON; the level changeable at run time; a tap for
//!   `remote trace`.
//! - [`metrics`]: per-method counts and latency histograms; the collector, alerts, Prometheus.
//! - [`admin`]: the admin channel (`erlmcp remote`, `erlmcp plugin`), the admin HTTP listener
//!   (`/metrics`, the dashboard).
//!
//! ## Embedding: register native tools and run the same tree
//! A program that serves its own tools starts the same tree with
//! [`app::Application::start_with`] and stops it with [`app::Application::stop`]. The whole
//! program (logging, its own address, serving until Ctrl-C) is `examples/embedded_server.rs`,
//! walked through in `docs/embedding.md`. In short (port 0: any free port; stopped at once):
//! ```
//! use erlmcp::protocol::messages::{CallToolResult, Tool};
//! use erlmcp::registry::{Arguments, Change, ToolEntry};
//! use erlmcp::session::RequestContext;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let mut config = erlmcp::config::Config::embedded()?;
//! config.demo = false; // only this program's tools, not the demo toolset
//! config.admin.enabled = false; // no admin socket (`erlmcp remote`) for this one
//! config.http.addr = "127.0.0.1:0".parse()?;
//! # // The plugin staging directory lives under the admin socket directory: a private one here.
//! # let dir = tempfile::tempdir()?;
//! # config.admin.socket_dir = dir.path().display().to_string();
//! let shout = ToolEntry::new(
//!     Tool::new("shout", "Upper-cases `text`", serde_json::json!({"type": "object"})),
//!     |_ctx: RequestContext, args: Arguments| async move {
//!         let text = args.parse::<serde_json::Value>()?["text"].as_str().unwrap_or("").to_uppercase();
//!         Ok(CallToolResult::text(text))
//!     },
//! );
//! let app = erlmcp::app::Application::start_with(&config, vec![Change::Tool(shout)]).await?;
//! assert!(app.http_addr().is_some());
//! assert_eq!(app.registry().snapshot().tools.len(), 1);
//! // The served set changes while the node runs (all of a batch or none of it); sessions are
//! // told with `notifications/tools/list_changed`.
//! app.registry().apply(vec![Change::RemoveTool("shout".into())]).await?;
//! assert!(app.registry().snapshot().tools.is_empty());
//! app.stop().await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod admission;
pub mod app;
pub mod auth;
pub(crate) mod cache;
mod clock;
pub(crate) mod cluster;
pub mod common;
pub mod config;
pub mod core_bench;
pub mod demo;
pub mod dispatch;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
mod locks;
mod log_limit;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod plugin_host;
pub mod pool;
pub mod protocol;
pub mod registry;
pub mod remote;
pub mod session;
pub mod store;
pub(crate) mod tasks;
mod ticker;
pub mod transport;
pub(crate) mod tree_names;

pub use erlmcp_supervisors as supervisors;
