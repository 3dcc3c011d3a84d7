//! Owns the configuration's sections and their value types: log level and format, supervision,
//! the transports, plugins, the admin channel, alerts, and the admission queue. `Config` (in the
//! parent) holds one of each.

use super::ValueError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Verbose.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level's name as `tracing` filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            "trace" => Ok(Self::Trace),
            _ => Err(ValueError::NotOneOf {
                expected: "one of error, warn, info, debug, trace",
            }),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(ValueError::NotOneOf {
                expected: "text or json",
            }),
        }
    }
}

/// Restart intensity of erlmcp's own supervisors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The intensity window, in milliseconds.
    pub period: u64,
}

/// Socket options of the TCP transport (the seed's `tcp_opts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpOpts {
    /// TCP_NODELAY on accepted sockets.
    pub nodelay: bool,
    /// Listen backlog.
    pub backlog: u32,
    /// SO_REUSEADDR on the listener.
    pub reuseaddr: bool,
    /// Read buffer size per connection, in bytes.
    pub buffer: usize,
    /// Outgoing bytes queued above which a connection stops reading.
    pub high_watermark: usize,
}

/// The stdio transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioConfig {
    /// Serve MCP over stdin/stdout.
    pub enabled: bool,
}

/// The TCP transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Listen.
    pub enabled: bool,
    /// Where (`host:port`; port 0 picks one).
    pub addr: std::net::SocketAddr,
}

/// The Streamable HTTP transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen.
    pub enabled: bool,
    /// Where.
    pub addr: std::net::SocketAddr,
    /// Idle session expiry, in milliseconds.
    pub session_timeout: u64,
    /// Extra accepted Host values.
    pub allowed_hosts: Vec<String>,
    /// Extra accepted Origin values.
    pub allowed_origins: Vec<String>,
    /// Bearer token ("" for none).
    pub bearer_token: String,
    /// Serve GET streams.
    pub get_stream: bool,
    /// SSE retry, in milliseconds.
    pub sse_retry: u64,
    /// SSE keep-alive interval, in milliseconds.
    pub keep_alive: u64,
    /// Events kept per stream.
    pub replay_buffer: usize,
    /// How long a connection may have no request in progress (a request head arriving, or
    /// none at all) before it is closed, in milliseconds.
    pub header_read_timeout: u64,
    /// Write the answers to pipelined requests together.
    pub pipeline_flush: bool,
    /// Serve plain `POST /mcp` requests with erlmcp's own HTTP/1.1 reader and writer (anything
    /// else on the connection goes to hyper from there on); false leaves every request to hyper.
    pub fast_lane: bool,
    /// Offer permessage-deflate to WebSocket clients that ask for it.
    pub ws_compression: bool,
    /// How long a request's body may take to arrive once its head has, in milliseconds (then
    /// 408 and the connection closes).
    pub body_read_timeout: u64,
    /// Bytes of request bodies being read at once, over all connections (above it: 503).
    pub max_pending_body_bytes: usize,
    /// Streamable HTTP sessions at once, in all (above it: 503).
    pub max_sessions: usize,
    /// Streamable HTTP sessions at once from one source address (0: no per-address cap).
    pub max_sessions_per_client: usize,
    /// The longest request head (request line and headers) read, in bytes (then 431 and the
    /// connection closes); at least 8192.
    pub max_head_bytes: usize,
}

/// Handler plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Load every `*.so` here at start ("" for none).
    pub dir: String,
    /// Staging directory ("" for `<node_name>-<pid>.staging` in the admin runtime directory);
    /// must be private to the node's user (0700, not a link) or the node does not start.
    pub staging: String,
    /// Keep watching `dir` for new and changed plugins.
    pub watch: bool,
    /// How often the directory is looked at, in milliseconds.
    pub watch_interval: u64,
}

/// The admin channel, metrics exposition and dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen on the admin socket at all.
    pub enabled: bool,
    /// Directory of `<node_name>.sock` ("" for the default runtime directory).
    pub socket_dir: String,
    /// Loopback TCP address for the admin protocol ("" for none).
    pub tcp: String,
    /// The cookie file ("" for `~/.erlmcp/cookie`).
    pub cookie_file: String,
    /// Admin HTTP address: `/metrics`, the dashboard ("" for none).
    pub http: String,
    /// Samples kept by the metrics collector.
    pub retention: usize,
}

/// Alert thresholds (0 disables one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// CPU use of the node, percent of one core.
    pub cpu_percent: u64,
    /// Resident memory, MiB.
    pub memory_mb: u64,
    /// p99 request latency over one interval, milliseconds.
    pub p99_ms: u64,
    /// Share of requests answered with an error over one interval, percent.
    pub error_rate_percent: u64,
    /// An alert clears below threshold × clear_percent / 100.
    pub clear_percent: u64,
    /// Where alert changes are POSTed ("" for nowhere).
    pub webhook: String,
    /// Seconds of shedding in every sample before the `shedding` alert fires (0: never).
    pub shedding_seconds: u64,
}

/// Rate limits per client (`[rate_limit]`, src/admission/rate.rs). Every limit 0: off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second a client may make, sustained (0: no limit).
    pub requests_per_second: u32,
    /// Requests a client may make at once above the sustained rate (at least the rate).
    pub request_burst: u32,
    /// Sessions a client may start per minute, sustained (0: no limit).
    pub sessions_per_minute: u32,
    /// Sessions a client may start at once (at least the rate).
    pub session_burst: u32,
    /// Connections open at once from one source address, HTTP and TCP each (0: no limit).
    pub connections_per_address: u32,
    /// Clients each limit's table remembers; past it, they share one bucket.
    pub max_keys: usize,
}

/// The admission point every request passes (`[queue]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Whether requests pass the admission point at all.
    pub enabled: bool,
    /// Most requests in progress the node accounts for; 0 takes `queue_size`.
    pub capacity: usize,
    /// Share of the capacity above which new work is shed (0 < x ≤ 1).
    pub shed_at: f64,
    /// `retryAfterMs` / `Retry-After` of a shed answer, in milliseconds.
    pub retry_after: u64,
    /// Per-method limits of requests in progress (method → limit).
    #[serde(default)]
    pub methods: std::collections::BTreeMap<String, usize>,
}
