//! Owns the `ERLMCP_*` environment overrides: which variable sets which key, and how its text
//! becomes the key's value (a [`ValueError`] naming what was expected when it cannot).

use super::Config;
use std::fmt;
use std::str::FromStr;

/// Sets one key from an environment variable's text.
type EnvSetter = fn(&mut Config, &str) -> Result<(), ValueError>;

/// Why a text (an `ERLMCP_*` variable, a remote shell's `config set`) is not a value of its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a number the key can hold; the parser's message.
    #[error("{0}")]
    Number(String),
    /// Not a socket address (`HOST:PORT`).
    #[error("{0}")]
    Address(#[from] std::net::AddrParseError),
    /// Not `true` or `false`.
    #[error("{0} (true or false)")]
    Bool(#[from] std::str::ParseBoolError),
    /// Not one of the names the key takes; `expected` lists them.
    #[error("expected {expected}")]
    NotOneOf {
        /// The names, in words ("text or json").
        expected: &'static str,
    },
}

fn parse_int<T: FromStr>(value: &str) -> Result<T, ValueError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .map_err(|e| ValueError::Number(e.to_string()))
}

/// The environment variables that override configuration keys: variable, key, setter.
pub const ENV_OVERRIDES: &[(&str, &str, EnvSetter)] = &[
    ("ERLMCP_NODE_NAME", "node_name", |c, v| {
        c.node_name = v.to_owned();
        Ok(())
    }),
    ("ERLMCP_LOG_LEVEL", "log_level", |c, v| {
        c.log_level = v.parse()?;
        Ok(())
    }),
    ("ERLMCP_LOG_FORMAT", "log_format", |c, v| {
        c.log_format = v.parse()?;
        Ok(())
    }),
    ("ERLMCP_SHUTDOWN_TIMEOUT", "shutdown_timeout", |c, v| {
        c.shutdown_timeout = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_QUEUE_SIZE", "queue_size", |c, v| {
        c.queue_size = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_MEMORY_LIMIT", "memory_limit", |c, v| {
        c.memory_limit = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_POOL_SIZE", "pool_size", |c, v| {
        c.pool_size = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_MAX_CONNECTIONS", "max_connections", |c, v| {
        c.max_connections = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_METRICS_INTERVAL", "metrics_interval", |c, v| {
        c.metrics_interval = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_MAX_MESSAGE_SIZE", "max_message_size", |c, v| {
        c.max_message_size = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_HIBERNATE_AFTER", "hibernate_after", |c, v| {
        c.hibernate_after = parse_int(v)?;
        Ok(())
    }),
    (
        "ERLMCP_CONNECTION_HIBERNATE_AFTER",
        "connection_hibernate_after",
        |c, v| {
            c.connection_hibernate_after = parse_int(v)?;
            Ok(())
        },
    ),
    ("ERLMCP_HTTP_ADDR", "http.addr", |c, v| {
        c.http.addr = v.trim().parse()?;
        c.http.enabled = true;
        Ok(())
    }),
    ("ERLMCP_HTTP_FAST_LANE", "http.fast_lane", |c, v| {
        c.http.fast_lane = v.trim().parse()?;
        Ok(())
    }),
    ("ERLMCP_ADMIN_HTTP", "admin.http", |c, v| {
        c.admin.http = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_ADMIN_SOCKET_DIR", "admin.socket_dir", |c, v| {
        c.admin.socket_dir = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_COOKIE", "(the cookie)", |c, v| {
        c.cookie = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(())
    }),
    ("ERLMCP_TCP_ADDR", "tcp.addr", |c, v| {
        c.tcp.addr = v.trim().parse()?;
        c.tcp.enabled = true;
        Ok(())
    }),
    ("ERLMCP_CACHE_ENABLED", "cache.enabled", |c, v| {
        c.cache.enabled = v.trim().parse()?;
        Ok(())
    }),
    ("ERLMCP_CACHE_DIR", "cache.dir", |c, v| {
        c.cache.dir = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_CACHE_L1_MAX_BYTES", "cache.l1_max_bytes", |c, v| {
        c.cache.l1_max_bytes = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_CACHE_L3_MAX_BYTES", "cache.l3_max_bytes", |c, v| {
        c.cache.l3_max_bytes = parse_int(v)?;
        Ok(())
    }),
    ("ERLMCP_TLS_ENABLED", "tls.enabled", |c, v| {
        c.tls.enabled = v.trim().parse()?;
        Ok(())
    }),
    ("ERLMCP_TLS_CERT", "tls.cert", |c, v| {
        c.tls.cert = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_TLS_KEY", "tls.key", |c, v| {
        c.tls.key = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_TLS_CLIENT_CA", "tls.client_ca", |c, v| {
        c.tls.client_ca = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_STORE_DIR", "store.dir", |c, v| {
        c.store.dir = v.trim().to_owned();
        Ok(())
    }),
    ("ERLMCP_STORE_FSYNC", "store.fsync", |c, v| {
        c.store.fsync = v.trim().parse()?;
        Ok(())
    }),
    ("ERLMCP_STORE_MAX_SESSIONS", "store.max_sessions", |c, v| {
        c.store.max_sessions = parse_int(v)?;
        Ok(())
    }),
];
