//! Owns the `[tls]` section: whether the node's network listeners (HTTP, TCP, the admin
//! channel's TCP) speak TLS, the certificate and key files they present, the CA that client
//! certificates must chain to (mTLS), the handshake deadline and how often the files are checked
//! for changes (docs/security.md, "TLS").

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// TLS on the network listeners (`src/transport/tls.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve TLS on the HTTP, TCP and admin TCP listeners (stdio and the admin socket stay as
    /// they are; the admin HTTP listener stays loopback-only plain HTTP).
    pub enabled: bool,
    /// The certificate chain, PEM: the node's certificate first, then its intermediates.
    pub cert: String,
    /// The private key of that certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// When set: CA certificates, PEM, that a client's certificate must chain to; a client
    /// without one is refused in the handshake (mTLS), and its subject names the principal.
    pub client_ca: String,
    /// How long a client has to complete the handshake, in milliseconds; then it is closed.
    pub handshake_timeout: u64,
    /// How often the files are checked for changes, in milliseconds (0: never: read at start
    /// only). A change is loaded without a restart; connections already open keep theirs.
    pub reload_interval: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            handshake_timeout: 10_000,
            reload_interval: 5_000,
        }
    }
}

impl TlsConfig {
    /// The first key out of range, and why.
    pub(crate) fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if !self.enabled {
            return None;
        }
        if self.cert.is_empty() {
            return Some((
                "tls.cert",
                "must name a PEM certificate file when tls.enabled",
            ));
        }
        if self.key.is_empty() {
            return Some((
                "tls.key",
                "must name a PEM private key file when tls.enabled",
            ));
        }
        if self.handshake_timeout == 0 {
            return Some(("tls.handshake_timeout", "must be at least 1 ms"));
        }
        if self.reload_interval != 0 && self.reload_interval < 100 {
            return Some((
                "tls.reload_interval",
                "must be 0 (no reload) or at least 100 ms",
            ));
        }
        None
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout)
    }

    /// How often the files are checked; `None`: never.
    pub fn reload_interval(&self) -> Option<Duration> {
        (self.reload_interval > 0).then(|| Duration::from_millis(self.reload_interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_tls_needs_its_files_and_sane_timers() {
        let off = TlsConfig::default();
        assert_eq!(off.invalid_key(), None);
        let mut on = TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        };
        assert_eq!(on.invalid_key().map(|k| k.0), Some("tls.cert"));
        on.cert = "cert.pem".into();
        assert_eq!(on.invalid_key().map(|k| k.0), Some("tls.key"));
        on.key = "key.pem".into();
        assert_eq!(on.invalid_key(), None);
        on.reload_interval = 10;
        assert_eq!(on.invalid_key().map(|k| k.0), Some("tls.reload_interval"));
        on.reload_interval = 0;
        assert_eq!(on.invalid_key(), None);
        assert_eq!(on.reload_interval(), None);
        on.handshake_timeout = 0;
        assert_eq!(on.invalid_key().map(|k| k.0), Some("tls.handshake_timeout"));
    }

    #[test]
    fn tls_is_off_by_default_and_set_from_the_environment() {
        let mut config = crate::config::Config::embedded().unwrap();
        assert_eq!(config.tls, TlsConfig::default());
        config
            .apply_env(|var| match var {
                "ERLMCP_TLS_ENABLED" => Some("true".into()),
                "ERLMCP_TLS_CERT" => Some("/etc/erlmcp/cert.pem".into()),
                "ERLMCP_TLS_KEY" => Some("/etc/erlmcp/key.pem".into()),
                "ERLMCP_TLS_CLIENT_CA" => Some("/etc/erlmcp/ca.pem".into()),
                _ => None,
            })
            .unwrap();
        assert!(config.tls.enabled);
        assert_eq!(config.tls.client_ca, "/etc/erlmcp/ca.pem");
        assert!(config.validate().is_ok());
        // Off loopback, admin.tcp and admin.http need TLS.
        config.admin.tcp = "0.0.0.0:7420".into();
        config.admin.http = "0.0.0.0:9090".into();
        assert!(config.validate().is_ok());
        config.tls.enabled = false;
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("admin.tcp"), "{refused}");
        config.admin.tcp = "127.0.0.1:7420".into();
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("admin.http"), "{refused}");
        config.admin.http = "127.0.0.1:9090".into();
        assert!(config.validate().is_ok());
        config.tls.enabled = true;
        // A certificate authenticates only under mTLS.
        config.auth.client_certificates = true;
        assert!(config.validate().is_ok(), "client_ca is set");
        config.tls.client_ca = String::new();
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("auth.client_certificates"), "{refused}");
        config.auth.client_certificates = false;
        let refused = config
            .apply_env(|var| (var == "ERLMCP_TLS_ENABLED").then(|| "maybe".into()))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("ERLMCP_TLS_ENABLED"), "{refused}");
    }
}
