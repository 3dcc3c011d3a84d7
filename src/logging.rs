//! Owns log set-up: `tracing` to stderr (stdout belongs to the stdio transport), text or JSON,
//! with `RUST_LOG` taking precedence over the configured level.

use crate::config::{LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set and valid, wins over `level`.
pub fn init(level: LogLevel, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    if let Err(err) = installed {
        eprintln!("erlmcp: logging was already initialised: {err}");
    }
}
