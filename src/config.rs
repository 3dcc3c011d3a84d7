//! Owns erlmcp's configuration: the embedded default, TOML files layered on it, `ERLMCP_*`
//! environment overrides, and validation. Every error names the key (or variable) at fault.
//!
//! Precedence, lowest first: embedded default → `--config FILE` → `ERLMCP_*` variables →
//! command-line flags (applied by the binary).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod auth;
mod cache;
mod cluster;
mod env;
mod paths;
mod sections;
pub(crate) use auth::redacted;
pub use auth::{ApiKeyConfig, AuthConfig, RuleConfig, RuleDefault};
pub use cache::{CacheConfig, CacheInvalidation};
pub use cluster::ClusterConfig;
mod store;
mod tasks;
mod tls;
pub use env::{ENV_OVERRIDES, ValueError};
pub(crate) use paths::default_cookie_file;
pub(crate) use paths::node_data_dir;
pub use paths::{admin_socket_dir, home_dir};
pub use sections::{
    AdminConfig, AlertsConfig, HttpConfig, LogFormat, LogLevel, PluginsConfig, QueueConfig,
    RateLimitConfig, StdioConfig, SupervisionConfig, TcpConfig, TcpOpts,
};
pub use store::{FsyncPolicy, StoreConfig};
pub use tasks::TasksConfig;
pub use tls::TlsConfig;
pub mod pools;
pub use pools::{PoolConfig, PoolStrategy, TOOL_POOL};

/// The embedded default configuration, compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("config/default.toml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("invalid config {origin}: {message}")]
    Parse {
        /// The file, or "(embedded default)".
        origin: String,
        /// The parser's message, which names the key and its line.
        message: String,
    },
    /// A value is of the right type but out of range.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// The key, dotted (`supervision.max_restarts`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `ERLMCP_*` variable holds a value its key cannot take.
    #[error("invalid environment variable {var}={value:?} (sets `{key}`): {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// The key it sets.
        key: String,
        /// Why the value is refused.
        reason: ValueError,
    },
}

/// The longest `connection_hibernate_after` (a day, in ms): a deadline past it would overflow.
const MAX_HIBERNATE_AFTER_MS: u64 = 86_400_000;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Node name.
    pub node_name: String,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// Bound on the graceful shutdown of the whole tree, in milliseconds.
    pub shutdown_timeout: u64,
    /// Per-connection outgoing queue bound, in messages.
    pub queue_size: usize,
    /// Workers of the tool pool `erlmcp_tool_pool` (blocking tools), unless `[pools.erlmcp_tool_pool]`
    /// sets its own `size`.
    pub pool_size: usize,
    /// The memory guard's limit on resident memory, in bytes (0: off).
    pub memory_limit: u64,
    /// The memory guard clears below `memory_limit × memory_clear_percent / 100`.
    pub memory_clear_percent: u64,
    /// Connections accepted at once.
    pub max_connections: usize,
    /// Metrics sampling interval, in milliseconds.
    pub metrics_interval: u64,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Idle connection timeout in milliseconds (0: never).
    pub idle_timeout: u64,
    /// How long output may stay queued and undrained before its connection is closed, in
    /// milliseconds (every transport, SSE streams included).
    pub write_timeout: u64,
    /// Most messages in one JSON-RPC batch (2025-03-26); more is one -32600 error.
    pub max_batch_size: usize,
    /// Items per page of the list methods.
    pub page_size: usize,
    /// How long server→client requests wait, in milliseconds.
    pub client_request_timeout: u64,
    /// How long a session's actor holds nothing before it stops (the session hibernates), in
    /// milliseconds; 0: sessions keep their actor.
    pub hibernate_after: u64,
    /// How long a plain TCP connection has read nothing, queued nothing and had nothing in
    /// flight before its actor stops (the connection hibernates, held by its listener), in
    /// milliseconds; 0: connections keep their actor.
    pub connection_hibernate_after: u64,
    /// Serve the demo toolset.
    pub demo: bool,
    /// The stdio transport.
    pub stdio: StdioConfig,
    /// The TCP transport.
    pub tcp: TcpConfig,
    /// The Streamable HTTP transport.
    pub http: HttpConfig,
    /// Handler plugins.
    pub plugins: PluginsConfig,
    /// Restart intensity of erlmcp's supervisors.
    pub supervision: SupervisionConfig,
    /// TCP socket options.
    pub tcp_opts: TcpOpts,
    /// The admin channel and metrics exposition.
    pub admin: AdminConfig,
    /// Alert thresholds.
    pub alerts: AlertsConfig,
    /// The admission point.
    pub queue: QueueConfig,
    /// Rate limits per client.
    pub rate_limit: RateLimitConfig,
    /// The state store (sessions that survive a restart).
    pub store: StoreConfig,
    /// Named worker pools (`[pools.NAME]`); the tool pool's size defaults to `pool_size`.
    #[serde(default)]
    pub pools: std::collections::BTreeMap<String, PoolConfig>,
    /// The result cache (docs/cache.md).
    #[serde(default)]
    pub cache: CacheConfig,
    /// The cluster (docs/cluster.md); off unless enabled.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The tasks extension's caps (docs/protocol.md, "Tasks").
    #[serde(default)]
    pub tasks: TasksConfig,
    /// OAuth 2.1 resource server and per-tool rules (docs/security.md); off unless enabled.
    #[serde(default)]
    pub auth: AuthConfig,
    /// TLS on the network listeners (docs/security.md); off unless enabled.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The cookie itself, from `--cookie` or `ERLMCP_COOKIE` (never read from or written to a
    /// file, never printed); `None` uses `admin.cookie_file`.
    #[serde(skip)]
    pub cookie: Option<String>,
    /// The file this configuration was read from (`--config`); `None`: the embedded default
    /// alone. What `erlmcp remote auth reload` (and SIGHUP) read the rules from again.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Keys an earlier version read, and what replaced them: a file that still sets one is told.
const RENAMED_KEYS: &[(&str, &str, &str)] = &[(
    "http",
    "ws_hibernate_after",
    "hibernate_after (top level; it now applies to every transport)",
)];

/// The first renamed key `table` sets: its old dotted name and what to set instead.
fn renamed_key(table: &toml::Table) -> Option<(String, &'static str)> {
    RENAMED_KEYS.iter().find_map(|(section, key, new)| {
        table
            .get(*section)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(*key))
            .then(|| (format!("{section}.{key}"), *new))
    })
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_layers(&[("(embedded default)", DEFAULT_CONFIG)])
    }

    /// The embedded default with `path` layered on it.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_layers(&[
            ("(embedded default)", DEFAULT_CONFIG),
            (&path.display().to_string(), &text),
        ])?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Merges TOML documents key by key (later wins), then deserialises and validates.
    ///
    /// Layers, then `ERLMCP_*` overrides; a refused value says which kind of value it wanted:
    /// ```
    /// use erlmcp::config::{Config, ConfigError, DEFAULT_CONFIG, ValueError};
    /// let mine = "pool_size = 8\ndemo = false\n";
    /// let mut config = Config::from_layers(&[("(embedded default)", DEFAULT_CONFIG), ("mine.toml", mine)])?;
    /// assert_eq!((config.pool_size, config.demo), (8, false));
    /// config.apply_env(|var| (var == "ERLMCP_POOL_SIZE").then(|| "12".into()))?;
    /// assert_eq!(config.pool_size, 12);
    /// let refused = config.apply_env(|var| (var == "ERLMCP_LOG_FORMAT").then(|| "yaml".into()));
    /// assert!(matches!(
    ///     refused,
    ///     Err(ConfigError::Env { reason: ValueError::NotOneOf { .. }, .. })
    /// ));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_layers(layers: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::new();
        for (origin, text) in layers {
            let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
                origin: (*origin).to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
            if let Some((old, new)) = renamed_key(&table) {
                return Err(ConfigError::Parse {
                    origin: (*origin).to_owned(),
                    message: format!("`{old}` was renamed: set `{new}` instead"),
                });
            }
            merge(&mut merged, table);
        }
        // Errors name the key; they are reported against the last layer (the user's file).
        let origin = layers.last().map_or("(none)", |(origin, _)| *origin);
        let config = Config::deserialize(merged).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `ERLMCP_*` overrides read through `lookup` (the process environment in the binary).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (var, key, set) in ENV_OVERRIDES {
            let Some(value) = lookup(var) else { continue };
            set(self, &value).map_err(|reason| ConfigError::Env {
                var: (*var).to_owned(),
                value: value.clone(),
                key: (*key).to_owned(),
                reason,
            })?;
        }
        self.validate()
    }

    /// Range checks that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let name_ok = !self.node_name.is_empty()
            && self
                .node_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
        if !name_ok {
            return invalid(
                "node_name",
                "must be non-empty ASCII letters, digits, '_', '-', '.', '@'",
            );
        }
        if self.shutdown_timeout == 0 {
            return invalid("shutdown_timeout", "must be at least 1 ms");
        }
        if self.store.snapshot_interval == 0 {
            return invalid("store.snapshot_interval", "must be at least 1 ms");
        }
        if self.queue_size == 0 {
            return invalid("queue_size", "must be at least 1");
        }
        if self.pool_size == 0 {
            return invalid("pool_size", "must be at least 1");
        }
        if !(1..=100).contains(&self.memory_clear_percent) {
            return invalid("memory_clear_percent", "must be between 1 and 100");
        }
        if self.admission_settings().capacity > crate::admission::MAX_CAPACITY {
            return invalid(
                "queue.capacity",
                &format!(
                    "must be at most {} (when 0, queue_size is used and must be)",
                    crate::admission::MAX_CAPACITY
                ),
            );
        }
        if !(self.queue.shed_at > 0.0 && self.queue.shed_at <= 1.0) {
            return invalid("queue.shed_at", "must be above 0 and at most 1");
        }
        if let Some((method, _)) = self.queue.methods.iter().find(|(_, limit)| **limit == 0) {
            return invalid(
                &format!("queue.methods.{method}"),
                "must be at least 1 (leave the method out for no limit)",
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if let Some((key, reason)) = pools::invalid_pool_key(&self.pools) {
            return invalid(&key, reason);
        }
        if let Some((key, reason)) = self.cache.invalid_key() {
            return invalid(key, reason);
        }
        if let Some((key, reason)) = self.tls.invalid_key() {
            return invalid(key, reason);
        }
        if let Some((key, reason)) = self.cluster.invalid_key() {
            return invalid(key, reason);
        }
        if let Some((key, reason)) = self.tasks.invalid_key() {
            return invalid(key, reason);
        }
        if let Some((key, reason)) = self.auth.invalid_key() {
            return invalid(&key, &reason);
        }
        let mtls = self.tls.enabled && !self.tls.client_ca.is_empty();
        if self.auth.client_certificates && !mtls {
            return invalid(
                "auth.client_certificates",
                "needs mTLS: tls.enabled and tls.client_ca (the CA client certificates are checked against)",
            );
        }
        if self.metrics_interval < 10 {
            return invalid("metrics_interval", "must be at least 10 ms");
        }
        if self.max_message_size < 1024 {
            return invalid("max_message_size", "must be at least 1024 bytes");
        }
        if self.page_size == 0 {
            return invalid("page_size", "must be at least 1");
        }
        if self.client_request_timeout == 0 {
            return invalid("client_request_timeout", "must be at least 1 ms");
        }
        if self.http.session_timeout == 0 || self.http.keep_alive == 0 {
            return invalid(
                "http.session_timeout",
                "session_timeout and keep_alive must be at least 1 ms",
            );
        }
        if self.rate_limit.max_keys == 0 {
            return invalid("rate_limit.max_keys", "must be at least 1");
        }
        if self.http.max_head_bytes < 8192 {
            return invalid("http.max_head_bytes", "must be at least 8192");
        }
        if self.http.header_read_timeout == 0 {
            return invalid("http.header_read_timeout", "must be at least 1 ms");
        }
        if self.http.body_read_timeout == 0 {
            return invalid("http.body_read_timeout", "must be at least 1 ms");
        }
        if self.http.max_pending_body_bytes < self.max_message_size {
            return invalid(
                "http.max_pending_body_bytes",
                "must be at least max_message_size (one whole body)",
            );
        }
        if self.http.max_sessions == 0 {
            return invalid("http.max_sessions", "must be at least 1");
        }
        if self.write_timeout == 0 {
            return invalid("write_timeout", "must be at least 1 ms");
        }
        if self.connection_hibernate_after > MAX_HIBERNATE_AFTER_MS {
            return invalid(
                "connection_hibernate_after",
                "must be at most 86400000 ms (a day; 0: never)",
            );
        }
        if self.max_batch_size == 0 {
            return invalid("max_batch_size", "must be at least 1");
        }
        if self.http.replay_buffer == 0 {
            return invalid("http.replay_buffer", "must be at least 1");
        }
        if self.supervision.period == 0 {
            return invalid("supervision.period", "must be at least 1 ms");
        }
        if self.tcp_opts.buffer < 512 {
            return invalid("tcp_opts.buffer", "must be at least 512 bytes");
        }
        for (key, value) in [
            ("admin.tcp", &self.admin.tcp),
            ("admin.http", &self.admin.http),
        ] {
            if value.is_empty() {
                continue;
            }
            match value.parse::<std::net::SocketAddr>() {
                Err(_) => {
                    return invalid(key, "must be an address such as 127.0.0.1:9090, or \"\"");
                }
                // In plain text, off loopback, the cookie would cross the network (admin.http
                // sends it as a bearer token) and the admin protocol would be reachable from it.
                // Under TLS both listeners may leave loopback: the channel is encrypted (and
                // admin.tcp proves the cookie, never sends it).
                Ok(_) if self.tls.enabled => {}
                Ok(addr) if !addr.ip().is_loopback() => {
                    return invalid(
                        key,
                        "must be a loopback address (127.0.0.1 or [::1]) unless tls.enabled: in plain text the cookie would cross the network",
                    );
                }
                Ok(_) => {}
            }
        }
        if self.plugins.watch && (self.plugins.dir.is_empty() || self.plugins.watch_interval < 10) {
            return invalid(
                "plugins.watch",
                "needs plugins.dir and a watch_interval of at least 10 ms",
            );
        }
        if self.admin.retention == 0 {
            return invalid("admin.retention", "must be at least 1");
        }
        if !(1..=100).contains(&self.alerts.clear_percent) {
            return invalid("alerts.clear_percent", "must be between 1 and 100");
        }
        if !self.alerts.webhook.is_empty() && !self.alerts.webhook.starts_with("http://") {
            return invalid("alerts.webhook", "must be an http:// URL, or \"\"");
        }
        if self.tcp_opts.high_watermark < self.tcp_opts.buffer {
            return invalid(
                "tcp_opts.high_watermark",
                "must be at least tcp_opts.buffer",
            );
        }
        Ok(())
    }

    /// Where plugin copies are staged: `plugins.staging`, else `<node_name>-<pid>.staging` in
    /// the node's private runtime directory (the admin socket's), never a predictable name in a
    /// directory every user may write.
    pub fn plugin_staging(&self) -> std::path::PathBuf {
        if self.plugins.staging.is_empty() {
            self.admin_socket_dir().join(format!(
                "{}-{}.staging",
                self.node_name,
                std::process::id()
            ))
        } else {
            std::path::PathBuf::from(&self.plugins.staging)
        }
    }

    /// The directory of the admin socket: `admin.socket_dir`, else `$XDG_RUNTIME_DIR/erlmcp`,
    /// else `~/.erlmcp/run`, else a directory under the system's temporary directory.
    pub fn admin_socket_dir(&self) -> PathBuf {
        admin_socket_dir(&self.admin.socket_dir)
    }

    /// The admin socket of this node.
    pub fn admin_socket(&self) -> PathBuf {
        self.admin_socket_dir()
            .join(format!("{}.sock", self.node_name))
    }

    /// The state store's directory: `store.dir`, else the node's data directory.
    pub fn store_dir(&self) -> PathBuf {
        paths::node_data_dir(&self.store.dir, &self.node_name)
    }

    /// The cookie file: `admin.cookie_file`, else `~/.erlmcp/cookie`.
    pub fn cookie_file(&self) -> PathBuf {
        if self.admin.cookie_file.is_empty() {
            default_cookie_file()
        } else {
            PathBuf::from(&self.admin.cookie_file)
        }
    }

    /// How the admission point is set up: `[queue]` (its capacity defaults to `queue_size`) and
    /// the memory guard.
    pub fn admission_settings(&self) -> crate::admission::AdmissionSettings {
        crate::admission::AdmissionSettings {
            enabled: self.queue.enabled,
            capacity: match self.queue.capacity {
                0 => self.queue_size,
                n => n,
            },
            shed_at: self.queue.shed_at,
            retry_after_ms: self.queue.retry_after,
            method_limits: self
                .queue
                .methods
                .iter()
                .map(|(method, limit)| (method.clone(), *limit))
                .collect(),
            memory_limit: self.memory_limit,
            memory_clear_percent: self.memory_clear_percent,
            rate: crate::admission::rate::RateSettings {
                requests_per_second: self.rate_limit.requests_per_second,
                request_burst: self.rate_limit.request_burst,
                sessions_per_minute: self.rate_limit.sessions_per_minute,
                session_burst: self.rate_limit.session_burst,
                connections_per_address: self.rate_limit.connections_per_address,
                max_keys: self.rate_limit.max_keys,
            },
        }
    }

    /// How the result cache is set up: `[cache]`, its disk file in `cache.dir` or the node's
    /// data directory.
    pub(crate) fn cache_settings(&self) -> crate::cache::CacheSettings {
        let cache = &self.cache;
        crate::cache::CacheSettings {
            l1_max_entries: cache.l1_max_entries,
            l1_max_bytes: cache.l1_max_bytes,
            l3_path: (cache.l3_max_bytes > 0)
                .then(|| node_data_dir(&cache.dir, &self.node_name).join("cache.redb")),
            l3_max_bytes: cache.l3_max_bytes,
            invalidation: cache.invalidation,
            warmup_delay: Duration::from_millis(cache.warmup_delay),
            warmup_entries: cache.warmup_entries,
            flush_interval: Duration::from_millis(cache.flush_interval),
            compact_interval: Duration::from_millis(cache.compact_interval),
            l2: self.cluster.enabled.then(|| crate::cache::L2Settings {
                max_entries: cache.l2_max_entries,
                max_bytes: cache.l2_max_bytes,
                timeout: Duration::from_millis(cache.l2_timeout),
                outbox: cache.l2_outbox,
            }),
        }
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_millis(self.idle_timeout))
    }

    /// How long queued output may stay undrained.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout)
    }

    /// The graceful-shutdown bound.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout)
    }

    /// The settings of pool `name` (`[pools.NAME]`, its size filled in: `pool_size` for
    /// `erlmcp_tool_pool`).
    pub fn pool(&self, name: &str) -> PoolConfig {
        pools::pool_settings(&self.pools, self.pool_size, name)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(layer_table)) => {
                merge(base_table, layer_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let config = Config::embedded().unwrap();
        assert_eq!(config.node_name, "erlmcp");
        assert_eq!(config.metrics_interval, 1000);
        assert!(config.tcp_opts.nodelay);
    }

    #[test]
    fn a_file_overrides_only_the_keys_it_names() {
        let config = Config::from_layers(&[
            ("default", DEFAULT_CONFIG),
            ("mine.toml", "pool_size = 7\n[tcp_opts]\nbacklog = 1024\n"),
        ])
        .unwrap();
        assert_eq!(config.pool_size, 7);
        assert_eq!(config.tcp_opts.backlog, 1024);
        assert!(config.tcp_opts.nodelay, "untouched keys keep the default");
    }

    /// The error for a file `mine.toml` holding `text`, layered on the default.
    fn error_for(text: &str) -> String {
        Config::from_layers(&[("default", DEFAULT_CONFIG), ("mine.toml", text)])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_renamed_key_is_refused_naming_its_replacement() {
        let error = error_for("[http]\nws_hibernate_after = 50\n");
        assert!(
            error.contains("mine.toml")
                && error.contains("`http.ws_hibernate_after` was renamed")
                && error.contains("hibernate_after (top level"),
            "{error}"
        );
        let config = Config::from_layers(&[
            ("default", DEFAULT_CONFIG),
            ("mine.toml", "hibernate_after = 50\n"),
        ])
        .unwrap();
        assert_eq!(config.hibernate_after, 50);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_file() {
        let err = error_for("pool_sise = 7\n");
        assert!(err.contains("mine.toml"), "{err}");
        assert!(err.contains("pool_sise"), "{err}");
    }

    #[test]
    fn an_unknown_nested_key_is_an_error() {
        let err = error_for("[tcp_opts]\nno_delay = true\n");
        assert!(err.contains("no_delay"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_key() {
        let err = error_for("max_connections = \"lots\"\n");
        assert!(err.contains("max_connections"), "{err}");
    }

    #[test]
    fn the_cache_and_the_store_take_environment_overrides() {
        let mut config = Config::embedded().unwrap();
        config
            .apply_env(|var| match var {
                "ERLMCP_CACHE_ENABLED" => Some("false".into()),
                "ERLMCP_CACHE_DIR" => Some("/var/cache/erlmcp".into()),
                "ERLMCP_CACHE_L1_MAX_BYTES" => Some("1048576".into()),
                "ERLMCP_CACHE_L3_MAX_BYTES" => Some("0".into()),
                "ERLMCP_STORE_DIR" => Some("/var/lib/erlmcp".into()),
                "ERLMCP_STORE_FSYNC" => Some("never".into()),
                "ERLMCP_STORE_MAX_SESSIONS" => Some("500".into()),
                _ => None,
            })
            .unwrap();
        assert!(!config.cache.enabled);
        assert_eq!(config.cache.dir, "/var/cache/erlmcp");
        assert_eq!(config.cache.l1_max_bytes, 1 << 20);
        assert_eq!(config.cache.l3_max_bytes, 0);
        assert_eq!(config.store.dir, "/var/lib/erlmcp");
        assert_eq!(config.store.fsync, crate::config::FsyncPolicy::Never);
        assert_eq!(config.store.max_sessions, 500);
        let err = config
            .apply_env(|var| (var == "ERLMCP_STORE_FSYNC").then(|| "sometimes".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ERLMCP_STORE_FSYNC") && err.contains("always or never"),
            "{err}"
        );
    }

    #[test]
    fn an_out_of_range_value_is_an_error_naming_the_key() {
        let err = error_for("pool_size = 0\n");
        assert!(err.contains("`pool_size`"), "{err}");
        // Past a day its deadline would overflow a reader's clock.
        let err = error_for("connection_hibernate_after = 86400001\n");
        assert!(err.contains("`connection_hibernate_after`"), "{err}");
    }

    #[test]
    fn environment_overrides_win_and_bad_values_name_the_variable() {
        let mut config = Config::embedded().unwrap();
        config
            .apply_env(|var| match var {
                "ERLMCP_POOL_SIZE" => Some("12".into()),
                "ERLMCP_LOG_LEVEL" => Some("debug".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.pool_size, 12);
        assert_eq!(config.log_level, LogLevel::Debug);
        let err = config
            .apply_env(|var| (var == "ERLMCP_MAX_CONNECTIONS").then(|| "many".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ERLMCP_MAX_CONNECTIONS"), "{err}");
        assert!(err.contains("max_connections"), "{err}");
    }

    #[test]
    fn the_rendered_config_parses_back_to_the_same_config() {
        let config = Config::embedded().unwrap();
        let again = Config::from_layers(&[("rendered", &config.to_toml())]).unwrap();
        assert_eq!(again, config);
    }
}
