//! # erlmcp — an MCP server runtime built the way Erlang/OTP builds telecom systems
//!
//! Every connection, pool, queue and cache tier is an actor owned by a supervisor with a restart
//! strategy (the supervision engine is the sibling crate [`erlmcp_supervisors`]).
//!
//! ## A guided tour
//! - [`config`]: the TOML configuration — embedded default, files, `ERLMCP_*` overrides.
//! - [`app`]: the application tree (`erlmcp_sup` and its supervisors) and its start/stop.
//! - [`logging`]: `tracing` to stderr, text or JSON.
//!
//! ## Embedding
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = erlmcp::config::Config::embedded()?;
//! let app = erlmcp::app::Application::start(&config).await?;
//! println!("{}", app.snapshot().await?.render());
//! app.stop().await?;
//! # Ok(()) }
//! ```

pub mod app;
pub mod config;
pub mod logging;

pub use erlmcp_supervisors as supervisors;
