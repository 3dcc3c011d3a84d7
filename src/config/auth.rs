//! Owns the `[auth]` section: OAuth 2.1 resource-server settings (this server's resource URI,
//! its authorization servers, how access tokens are checked), static API keys, and the
//! per-tool rules (docs/security.md, "Authorization").

use serde::{Deserialize, Serialize};

/// A static API key: a bearer token from the configuration and who it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeyConfig {
    /// The token itself (`Authorization: Bearer <key>`).
    pub key: String,
    /// The principal it stands for.
    pub subject: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// One authorization rule: who (principals, scopes) may see and use which tools, resources
/// and prompts (names or URIs, `*` and `?` globs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Subjects (or `client:<client id>`) the rule grants, globs; empty: any principal.
    pub principals: Vec<String>,
    /// Scopes a principal must hold, all of them, for the rule to grant.
    pub scopes: Vec<String>,
    /// Tool names the rule covers (list and call).
    pub tools: Vec<String>,
    /// Resource URIs (and template URIs) the rule covers (list and read).
    pub resources: Vec<String>,
    /// Prompt names the rule covers (list and get).
    pub prompts: Vec<String>,
}

/// What a name no rule covers gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RuleDefault {
    /// Every authenticated principal may use it.
    #[default]
    Allow,
    /// Nobody may.
    Deny,
}

/// OAuth 2.1 resource server and per-tool authorization (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require an access token on every HTTP request (false: `http.bearer_token` alone, as before).
    pub enabled: bool,
    /// This server's resource URI (RFC 8707, RFC 9728): the audience tokens must name, and what
    /// the metadata document says; e.g. `https://mcp.example.com/mcp`.
    pub resource: String,
    /// The authorization servers named in the metadata document (their issuer URLs).
    pub authorization_servers: Vec<String>,
    /// Scopes listed in the metadata document.
    pub scopes_supported: Vec<String>,
    /// Scopes every request needs (else 403 `insufficient_scope`).
    pub required_scopes: Vec<String>,
    /// The JWKS of the authorization server ("": JWT access tokens are not accepted).
    pub jwks_uri: String,
    /// The `iss` a token must carry ("": the first of `authorization_servers`).
    pub issuer: String,
    /// Audiences accepted besides `resource`.
    pub audiences: Vec<String>,
    /// Signature algorithms accepted (asymmetric ones only).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// How long a JWKS fetch may take, in milliseconds.
    pub jwks_timeout: u64,
    /// At most one JWKS fetch this often for a token naming an unknown `kid`, in milliseconds.
    pub jwks_refetch_interval: u64,
    /// Keys older than this are fetched again (in the background), in milliseconds.
    pub jwks_max_age: u64,
    /// Validated tokens kept (by their SHA-256) until they expire, so that a token's signature
    /// is checked once.
    pub token_cache_entries: usize,
    /// The authorization server's introspection endpoint (RFC 7662) for opaque tokens (""
    /// none: only JWTs and API keys).
    pub introspection_endpoint: String,
    /// This server's client id at the authorization server (introspection's HTTP Basic).
    pub introspection_client_id: String,
    /// Its secret.
    pub introspection_client_secret: String,
    /// How long an introspection answer is kept, in milliseconds (never past the token's `exp`).
    pub introspection_cache_ttl: u64,
    /// Introspection calls in flight at most.
    pub introspection_concurrency: usize,
    /// Denials kept for `erlmcp remote auth`.
    pub denials_kept: usize,
    /// Static API keys.
    pub api_keys: Vec<ApiKeyConfig>,
    /// A request with no token but a client certificate verified by `tls.client_ca` (mTLS) is
    /// authenticated by it: its principal's subject is the certificate's common name (else its
    /// first alternative name), with [`AuthConfig::client_certificate_scopes`].
    pub client_certificates: bool,
    /// The scopes of a principal authenticated by its client certificate.
    pub client_certificate_scopes: Vec<String>,
    /// What a tool, resource or prompt no rule covers gets.
    pub default: RuleDefault,
    /// Per-tool (resource, prompt) rules.
    pub rules: Vec<RuleConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            resource: String::new(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            required_scopes: Vec::new(),
            jwks_uri: String::new(),
            issuer: String::new(),
            audiences: Vec::new(),
            algorithms: [
                "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
            ]
            .map(str::to_owned)
            .to_vec(),
            leeway: 30,
            jwks_timeout: 2000,
            jwks_refetch_interval: 30_000,
            jwks_max_age: 3_600_000,
            token_cache_entries: 10_000,
            introspection_endpoint: String::new(),
            introspection_client_id: String::new(),
            introspection_client_secret: String::new(),
            introspection_cache_ttl: 60_000,
            introspection_concurrency: 16,
            denials_kept: 100,
            api_keys: Vec::new(),
            client_certificates: false,
            client_certificate_scopes: Vec::new(),
            default: RuleDefault::Allow,
            rules: Vec::new(),
        }
    }
}

/// Algorithms a resource server may accept: never `none`, never a shared secret (HS*).
pub(crate) const ASYMMETRIC: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl AuthConfig {
    /// The first key out of range, and why.
    pub(crate) fn invalid_key(&self) -> Option<(String, String)> {
        let bad = |key: &str, why: &str| Some((format!("auth.{key}"), why.to_owned()));
        if !self.enabled {
            return None;
        }
        if !is_absolute_http_uri(&self.resource) {
            return bad(
                "resource",
                "must be this server's absolute http(s) URI when auth.enabled is true",
            );
        }
        if self.resource.contains('#') {
            return bad("resource", "must not have a fragment (RFC 8707)");
        }
        if let Some(server) = self
            .authorization_servers
            .iter()
            .find(|s| !is_absolute_http_uri(s))
        {
            return bad(
                "authorization_servers",
                &format!("`{server}` is not an absolute http(s) URI"),
            );
        }
        if !self.jwks_uri.is_empty() {
            if !is_absolute_http_uri(&self.jwks_uri) {
                return bad("jwks_uri", "must be an absolute http(s) URI");
            }
            if self.issuer.is_empty() && self.authorization_servers.is_empty() {
                return bad(
                    "issuer",
                    "must be set (or auth.authorization_servers) when auth.jwks_uri is",
                );
            }
        }
        if !self.introspection_endpoint.is_empty() {
            if !is_absolute_http_uri(&self.introspection_endpoint) {
                return bad("introspection_endpoint", "must be an absolute http(s) URI");
            }
            if self.introspection_client_id.is_empty() {
                return bad(
                    "introspection_client_id",
                    "must be set when auth.introspection_endpoint is",
                );
            }
            if self.introspection_cache_ttl < 1000 {
                return bad("introspection_cache_ttl", "must be at least 1000 ms");
            }
            if self.introspection_concurrency == 0 {
                return bad("introspection_concurrency", "must be at least 1");
            }
        }
        if self.jwks_uri.is_empty()
            && self.introspection_endpoint.is_empty()
            && self.api_keys.is_empty()
        {
            return bad(
                "jwks_uri",
                "must be set, or auth.introspection_endpoint or auth.api_keys: else no token is accepted",
            );
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| !ASYMMETRIC.contains(&a.as_str()))
        {
            return bad(
                "algorithms",
                &format!("`{alg}` is not accepted (one of {})", ASYMMETRIC.join(", ")),
            );
        }
        if self.algorithms.is_empty() {
            return bad("algorithms", "must name at least one algorithm");
        }
        if self.leeway > 300 {
            return bad("leeway", "must be at most 300 s");
        }
        if self.jwks_timeout == 0 {
            return bad("jwks_timeout", "must be at least 1 ms");
        }
        if self.jwks_refetch_interval < 100 {
            return bad("jwks_refetch_interval", "must be at least 100 ms");
        }
        if self.jwks_max_age < 1000 {
            return bad("jwks_max_age", "must be at least 1000 ms");
        }
        if self.token_cache_entries == 0 {
            return bad("token_cache_entries", "must be at least 1");
        }
        if let Some(i) = self.api_keys.iter().position(|k| k.key.len() < 16) {
            return bad(
                &format!("api_keys[{i}].key"),
                "must be at least 16 characters",
            );
        }
        if let Some(i) = self.api_keys.iter().position(|k| k.subject.is_empty()) {
            return bad(&format!("api_keys[{i}].subject"), "must not be empty");
        }
        None
    }

    /// The issuer tokens must name.
    pub(crate) fn expected_issuer(&self) -> Option<&str> {
        if self.issuer.is_empty() {
            self.authorization_servers.first().map(String::as_str)
        } else {
            Some(&self.issuer)
        }
    }
}

/// What stands for a secret in a configuration shown to someone (`remote config get`).
const REDACTED: &str = "(set, not shown)";

/// `config` with its secrets (`http.bearer_token`, `auth.api_keys[].key`,
/// `auth.introspection_client_secret`) replaced.
pub(crate) fn redacted(config: &super::Config) -> super::Config {
    let mut shown = config.clone();
    if !shown.http.bearer_token.is_empty() {
        shown.http.bearer_token = REDACTED.to_owned();
    }
    for key in &mut shown.auth.api_keys {
        key.key = REDACTED.to_owned();
    }
    if !shown.auth.introspection_client_secret.is_empty() {
        shown.auth.introspection_client_secret = REDACTED.to_owned();
    }
    shown
}

fn is_absolute_http_uri(text: &str) -> bool {
    text.parse::<axum::http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        let mut config = crate::config::Config::embedded().unwrap();
        config.http.bearer_token = "s3cret-token".into();
        config.auth.api_keys = vec![ApiKeyConfig {
            key: "k".repeat(20),
            subject: "ops".into(),
            scopes: vec![],
        }];
        let shown = redacted(&config).to_toml();
        assert!(
            !shown.contains("s3cret-token") && !shown.contains(&"k".repeat(20)),
            "{shown}"
        );
        assert!(shown.contains("ops"));
    }

    #[test]
    fn off_by_default_and_checked_when_on() {
        assert_eq!(AuthConfig::default().invalid_key(), None);
        let mut auth = AuthConfig {
            enabled: true,
            ..AuthConfig::default()
        };
        assert_eq!(auth.invalid_key().unwrap().0, "auth.resource");
        auth.resource = "https://mcp.example.com/mcp".into();
        assert_eq!(auth.invalid_key().unwrap().0, "auth.jwks_uri");
        auth.jwks_uri = "https://as.example.com/jwks".into();
        assert_eq!(auth.invalid_key().unwrap().0, "auth.issuer");
        auth.authorization_servers = vec!["https://as.example.com".into()];
        assert_eq!(auth.invalid_key(), None);
        assert_eq!(auth.expected_issuer(), Some("https://as.example.com"));
        auth.algorithms = vec!["HS256".into()];
        assert_eq!(auth.invalid_key().unwrap().0, "auth.algorithms");
    }
}
