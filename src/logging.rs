//! Owns log set-up: `tracing` to stderr (stdout belongs to the stdio transport), text or JSON,
//! with `RUST_LOG` taking precedence over the configured level; the level can be changed while
//! the node runs (`remote config set log_level debug`); and a tap through which `remote trace`
//! streams the events that pass the level, one line each, while someone listens.

use crate::config::{LogFormat, LogLevel};
use std::fmt::Write as _;
use std::sync::OnceLock;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
    tap: broadcast::Sender<String>,
    /// The level in force; `None` while a `RUST_LOG` filter (not one level) rules.
    level: std::sync::Mutex<Option<LogLevel>>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG`, when set and valid, wins over `level`.
pub fn init(level: LogLevel, format: LogFormat) {
    let (filter, level) = match EnvFilter::try_from_default_env() {
        Ok(from_env) => (from_env, None),
        Err(_) => (EnvFilter::new(level.as_str()), Some(level)),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => Box::new(fmt.with_ansi(false)),
        LogFormat::Json => Box::new(fmt.json().with_current_span(false)),
    };
    let (tap, _) = broadcast::channel(1024);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(TapLayer { tap: tap.clone() })
        .try_init();
    match installed {
        Ok(()) => {
            let _ = CONTROL.set(LogControl {
                filter: handle,
                tap,
                level: std::sync::Mutex::new(level),
            });
        }
        Err(err) => eprintln!("erlmcp: logging was already initialised: {err}"),
    }
}

/// Why the log level could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetLevelError {
    /// erlmcp did not set up logging in this process (an embedder's own subscriber, or none).
    #[error("logging is not initialised by erlmcp in this process")]
    NotInitialised,
    /// The subscriber holding the filter is gone.
    #[error("{0}")]
    Reload(#[from] tracing_subscriber::reload::Error),
}

/// Changes the level of every log from now on.
pub fn set_level(level: LogLevel) -> Result<(), SetLevelError> {
    let control = CONTROL.get().ok_or(SetLevelError::NotInitialised)?;
    control.filter.reload(EnvFilter::new(level.as_str()))?;
    *crate::locks::lock(&control.level) = Some(level);
    Ok(())
}

/// The level in force: the configured one or the last one set; `None` under a `RUST_LOG` filter
/// or when erlmcp did not set up logging.
pub fn current_level() -> Option<LogLevel> {
    CONTROL.get().and_then(|c| *crate::locks::lock(&c.level))
}

/// Every log event from now on, as one text line (`None` when erlmcp did not set up logging).
pub fn tap() -> Option<broadcast::Receiver<String>> {
    CONTROL.get().map(|c| c.tap.subscribe())
}

/// Sends each event, formatted, to the tap — only while someone listens.
struct TapLayer {
    tap: broadcast::Sender<String>,
}

struct LineVisitor(String);

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for TapLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if self.tap.receiver_count() == 0 {
            return;
        }
        let mut line = LineVisitor(format!("{:>5}", event.metadata().level()));
        event.record(&mut line);
        let _ = self.tap.send(line.0);
    }
}
