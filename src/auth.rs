//! Owns who a request comes from and what it may do: erlmcp as an OAuth 2.1 resource server (the
//! MCP authorization spec) and per-tool authorization (docs/security.md, "Authorization").
//!
//! - [`Auth`]: built once from `[auth]` (and the older `http.bearer_token`, which is one more
//!   static key); it turns an `Authorization` header into a [`Principal`] or a [`Refusal`], and
//!   holds the Protected Resource Metadata document (RFC 9728) and the challenge of a 401/403.
//! - Tokens: static API keys compared in constant time; JWT access tokens checked against the
//!   authorization server's JWKS ([`jwks`], [`tokens`]), each token's verdict cached by its hash
//!   until it expires.
//! - [`rules`]: which principals and scopes may list and use which tools, resources and prompts;
//!   [`reload`]: the rules read again from the config file while the node runs.
//! - [`denials`]: the counters and the recent denials `erlmcp remote auth` shows.
//!
//! The HTTP transport asks from a request's head, before its body is read; the dispatcher asks
//! the rules with the principal the request carries. TCP and stdio carry no principal (they are
//! local): nothing is asked of them.

pub(crate) mod bench;
pub mod denials;
mod fetch;
mod introspection;
mod jwks;
pub mod reload;
pub mod rules;
mod tokens;

pub use fetch::FetchError;
pub use introspection::IntrospectionError;
pub use rules::Kind;
pub use tokens::TokenError;

use crate::config::AuthConfig;
use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq as _;

/// Who a request comes from, as its access token says.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// The token's `sub` (an API key's configured subject).
    pub subject: String,
    /// The OAuth client it was issued to (`client_id` or `azp`), when said.
    pub client_id: Option<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// What kind of token it came with.
    pub via: Via,
    /// When the token expires (unix seconds); `None`: a static key.
    pub expires_at: Option<u64>,
}

/// What kind of token a principal came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A JWT access token checked against the authorization server's keys.
    Jwt,
    /// A static key of `auth.api_keys` (or `http.bearer_token`).
    ApiKey,
    /// An opaque token the authorization server's introspection endpoint vouched for.
    Introspection,
    /// A client certificate verified by `tls.client_ca` (mTLS), with no token
    /// (`auth.client_certificates`).
    ClientCertificate,
}

impl Principal {
    /// Whether it holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    #[cfg(test)]
    pub(crate) fn for_test(subject: &str, client_id: Option<&str>, scopes: &[&str]) -> Self {
        Self {
            subject: subject.to_owned(),
            client_id: client_id.map(str::to_owned),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            via: Via::ApiKey,
            expires_at: None,
        }
    }
}

/// Why a request is refused before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token: 401.
    Missing,
    /// A token that is not accepted: 401 `invalid_token`.
    Invalid(String),
    /// A token without every scope of `auth.required_scopes`: 403 `insufficient_scope`.
    InsufficientScope(Vec<String>),
    /// The token could not be checked now (introspection unreachable or busy): 503.
    Unavailable(String),
}

/// The node's authentication: set up from the configuration, shared by every HTTP request.
pub struct Auth {
    /// `[auth] enabled` (else only the older `http.bearer_token` is asked for).
    enabled: bool,
    resource: String,
    /// Where the metadata document is, absolute (`resource_metadata=`).
    metadata_url: String,
    /// The path it is served at.
    metadata_path: String,
    /// The metadata document.
    metadata: Vec<u8>,
    required_scopes: Vec<String>,
    api_keys: Vec<(String, Arc<Principal>)>,
    /// The scopes of a principal authenticated by its client certificate; `None`: a certificate
    /// does not authenticate (`auth.client_certificates`).
    certificate_scopes: Option<Vec<String>>,
    verifier: Option<tokens::Verifier>,
    introspector: Option<introspection::Introspector>,
    /// The per-tool rules: read at start, replaced whole by `erlmcp remote auth reload` (and
    /// SIGHUP) — a request reads one set from start to end.
    rules: ArcSwap<rules::Rules>,
    /// Counters and recent denials.
    pub(crate) denials: denials::Denials,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Auth")
            .field("enabled", &self.enabled)
            .field("resource", &self.resource)
            .field("api_keys", &self.api_keys.len())
            .field("jwt", &self.verifier.is_some())
            .field("introspection", &self.introspector.is_some())
            .finish_non_exhaustive()
    }
}

/// Where RFC 9728 puts the metadata of a resource: this, then the resource URI's path.
pub const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

impl Auth {
    /// The node's authentication from `[auth]` and `http.bearer_token`; `None` when neither asks
    /// for anything (every request passes, as before).
    pub fn from_config(config: &AuthConfig, bearer_token: &str) -> Option<Arc<Self>> {
        Self::build(config, bearer_token, true)
    }

    fn build(config: &AuthConfig, bearer_token: &str, fetch_now: bool) -> Option<Arc<Self>> {
        if !config.enabled && bearer_token.is_empty() {
            return None;
        }
        let mut api_keys: Vec<(String, Arc<Principal>)> = Vec::new();
        if !bearer_token.is_empty() {
            api_keys.push((
                bearer_token.to_owned(),
                Arc::new(Principal {
                    subject: "http.bearer_token".to_owned(),
                    client_id: None,
                    scopes: Vec::new(),
                    via: Via::ApiKey,
                    expires_at: None,
                }),
            ));
        }
        let mut verifier = None;
        let mut introspector = None;
        if config.enabled {
            if !config.introspection_endpoint.is_empty() {
                let mut audiences = vec![config.resource.clone()];
                audiences.extend(config.audiences.iter().cloned());
                introspector = Some(introspection::Introspector::new(
                    config.introspection_endpoint.clone(),
                    (
                        &config.introspection_client_id,
                        &config.introspection_client_secret,
                    ),
                    config.expected_issuer().map(str::to_owned),
                    audiences,
                    Duration::from_millis(config.introspection_cache_ttl),
                    Duration::from_millis(config.jwks_timeout),
                    config.introspection_concurrency,
                    config.token_cache_entries,
                ));
            }
            api_keys.extend(config.api_keys.iter().map(|k| {
                (
                    k.key.clone(),
                    Arc::new(Principal {
                        subject: k.subject.clone(),
                        client_id: None,
                        scopes: k.scopes.clone(),
                        via: Via::ApiKey,
                        expires_at: None,
                    }),
                )
            }));
            if let (false, Some(issuer)) = (config.jwks_uri.is_empty(), config.expected_issuer()) {
                let jwks = Arc::new(jwks::Jwks::new(
                    config.jwks_uri.clone(),
                    Duration::from_millis(config.jwks_timeout),
                    Duration::from_millis(config.jwks_refetch_interval),
                    Duration::from_millis(config.jwks_max_age),
                ));
                // The first fetch now, in the background (the node starts whether or not the
                // authorization server answers).
                if fetch_now {
                    jwks.refresh_if_stale();
                }
                let mut audiences = vec![config.resource.clone()];
                audiences.extend(config.audiences.iter().cloned());
                verifier = Some(tokens::Verifier::new(
                    jwks,
                    issuer,
                    &audiences,
                    &config.algorithms,
                    config.leeway,
                    config.token_cache_entries,
                ));
            }
        }
        let (metadata_url, metadata_path) = metadata_location(&config.resource);
        let metadata = serde_json::to_vec(&serde_json::json!({
            "resource": config.resource,
            "authorization_servers": config.authorization_servers,
            "scopes_supported": config.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "erlmcp",
        }))
        .unwrap_or_default();
        Some(Arc::new(Self {
            enabled: config.enabled,
            resource: config.resource.clone(),
            metadata_url,
            metadata_path,
            metadata,
            required_scopes: config.required_scopes.clone(),
            api_keys,
            certificate_scopes: (config.enabled && config.client_certificates)
                .then(|| config.client_certificate_scopes.clone()),
            verifier,
            introspector,
            rules: ArcSwap::from_pointee(rules::Rules::new(config.rules.clone(), config.default)),
            denials: denials::Denials::new(config.denials_kept),
        }))
    }

    /// [`Auth::from_config`] for `erlmcp bench core`, outside a runtime: its JWKS is never
    /// fetched.
    pub(crate) fn from_config_without_fetch(config: &AuthConfig) -> Option<Arc<Self>> {
        Self::build(config, "", false)
    }

    /// Puts `token`'s verdict in the cache, as if it had been checked (`erlmcp bench core`).
    pub(crate) fn prime(&self, token: &str, principal: Principal) {
        if let Some(verifier) = &self.verifier {
            verifier.prime(token, principal);
        }
    }

    /// Whether `[auth]` is on (metadata served, rules applied).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The path of the metadata document, when served.
    pub fn metadata_path(&self) -> Option<&str> {
        self.enabled.then_some(self.metadata_path.as_str())
    }

    /// The metadata document (RFC 9728).
    pub fn metadata(&self) -> &[u8] {
        &self.metadata
    }

    /// Who the `Authorization` header's bearer token stands for, or why the request is refused.
    /// Answered at once except when a JWT names a key not yet known: then after one JWKS fetch
    /// at most (`auth.jwks_timeout`).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<Principal>, Refusal> {
        let outcome = self.authenticate_token(authorization).await;
        if let Err(refusal) = &outcome {
            self.denials.refused(refusal);
        }
        outcome
    }

    /// The principal of a request with no token whose client certificate (mTLS, verified by
    /// `tls.client_ca`) names `subject`, when `auth.client_certificates`: `None` when a
    /// certificate does not authenticate here; a refusal when a scope of `auth.required_scopes`
    /// is not among `auth.client_certificate_scopes`.
    pub(crate) fn certificate_principal(
        &self,
        subject: &str,
    ) -> Option<Result<Arc<Principal>, Refusal>> {
        let scopes = self.certificate_scopes.as_ref()?;
        if subject.is_empty() {
            return None;
        }
        let principal = Arc::new(Principal {
            subject: subject.to_owned(),
            client_id: None,
            scopes: scopes.clone(),
            via: Via::ClientCertificate,
            expires_at: None,
        });
        let outcome = self.check_required_scopes(principal);
        if let Err(refusal) = &outcome {
            self.denials.refused(refusal);
        }
        Some(outcome)
    }

    /// The principal of the static API key `authorization` carries (`auth.api_keys`,
    /// `http.bearer_token`), every key compared in constant time; `None` for any other token.
    /// No wait: what the rate limits key a request's head by.
    pub(crate) fn static_principal(&self, authorization: Option<&str>) -> Option<Arc<Principal>> {
        self.static_key(authorization.and_then(bearer_token)?)
            .cloned()
    }

    /// The static key `token` is, if any: every key is compared (constant time each), so the
    /// time says nothing of which matched.
    fn static_key(&self, token: &str) -> Option<&Arc<Principal>> {
        let mut found = None;
        for (key, principal) in &self.api_keys {
            if bool::from(key.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(principal);
            }
        }
        found
    }

    async fn authenticate_token(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<Principal>, Refusal> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(Refusal::Missing)?;
        let found = self.static_key(token);
        // A JWT has two dots; anything else is not worth decoding.
        let jwt_shaped = || token.bytes().filter(|&b| b == b'.').count() == 2;
        let principal = match (found, &self.verifier, &self.introspector) {
            (Some(principal), _, _) => Arc::clone(principal),
            (None, Some(verifier), _) if jwt_shaped() => verifier
                .verify(token)
                .await
                .map_err(|e| Refusal::Invalid(e.to_string()))?,
            (None, _, Some(introspector)) => {
                introspector.check(token).await.map_err(|e| match e {
                    IntrospectionError::Inactive => Refusal::Invalid(e.to_string()),
                    IntrospectionError::Unavailable(_) => Refusal::Unavailable(e.to_string()),
                })?
            }
            (None, _, _) if !self.enabled => {
                return Err(Refusal::Invalid("missing or wrong bearer token".to_owned()));
            }
            (None, _, _) => return Err(Refusal::Invalid("the token is not accepted".to_owned())),
        };
        self.check_required_scopes(principal)
    }

    /// `principal`, or 403 `insufficient_scope` naming the scopes of `auth.required_scopes` it
    /// lacks.
    fn check_required_scopes(&self, principal: Arc<Principal>) -> Result<Arc<Principal>, Refusal> {
        let missing: Vec<String> = self
            .required_scopes
            .iter()
            .filter(|s| !principal.has_scope(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Refusal::InsufficientScope(missing));
        }
        Ok(principal)
    }

    /// The `WWW-Authenticate` value of a refusal (RFC 6750 §3, RFC 9728 §5.1).
    pub fn challenge(&self, refusal: &Refusal) -> String {
        if !self.enabled {
            return "Bearer".to_owned();
        }
        let mut value = format!("Bearer resource_metadata=\"{}\"", self.metadata_url);
        // A quoted-string of visible ASCII: anything else would make the header unsendable.
        let quoted = |text: &str| -> String {
            text.chars()
                .map(|c| match c {
                    '"' | '\\' => '\'',
                    c if c == ' ' || c.is_ascii_graphic() => c,
                    _ => '?',
                })
                .collect()
        };
        match refusal {
            Refusal::Missing => {
                if !self.required_scopes.is_empty() {
                    value.push_str(&format!(", scope=\"{}\"", self.required_scopes.join(" ")));
                }
            }
            Refusal::Invalid(why) => {
                value.push_str(&format!(
                    ", error=\"invalid_token\", error_description=\"{}\"",
                    quoted(why)
                ));
            }
            Refusal::InsufficientScope(scopes) => {
                // The scopes the request needs: the required ones, and those named.
                let mut needed = self.required_scopes.clone();
                for scope in scopes {
                    if !needed.contains(scope) {
                        needed.push(scope.clone());
                    }
                }
                value.push_str(&format!(
                    ", error=\"insufficient_scope\", scope=\"{}\"",
                    quoted(&needed.join(" "))
                ));
            }
            Refusal::Unavailable(_) => {}
        }
        value
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<rules::Rules> {
        self.rules.load_full()
    }

    /// Puts `rules` in force in place of the rules there were: requests already past their
    /// check keep the answer they had; every later check reads the new ones.
    pub(crate) fn replace_rules(&self, rules: rules::Rules) {
        self.rules.store(Arc::new(rules));
    }

    /// Whether `principal` may see and use the `kind` named `name`; a refusal is counted and
    /// kept among the recent denials.
    pub fn authorize(
        &self,
        principal: &Principal,
        kind: Kind,
        name: &str,
    ) -> Result<(), rules::Refused> {
        let rules = self.rules.load();
        if !self.enabled || rules.allow_all() {
            return Ok(());
        }
        let outcome = rules.decide(principal, kind, name);
        if let Err(refused) = &outcome {
            self.denials.denied(principal, kind, name, refused);
        }
        outcome
    }

    /// Whether `principal` may see the `kind` named `name` in a list (not counted as a denial).
    pub fn lists(&self, principal: &Principal, kind: Kind, name: &str) -> bool {
        let rules = self.rules.load();
        !self.enabled || rules.allow_all() || rules.decide(principal, kind, name).is_ok()
    }

    /// The figures `erlmcp remote auth` and `/metrics` show.
    pub fn stats(&self) -> AuthStats {
        let jwks = self.verifier.as_ref().map(|v| JwksStats {
            uri: v.jwks().uri().to_owned(),
            keys: v.jwks().keys().len(),
            fetches: v.jwks().fetches.load(std::sync::atomic::Ordering::Relaxed),
            failures: v.jwks().failures.load(std::sync::atomic::Ordering::Relaxed),
            tokens_cached: v.cached(),
        });
        AuthStats {
            enabled: self.enabled,
            resource: self.resource.clone(),
            api_keys: self.api_keys.len(),
            jwks,
            introspection: self.introspector.as_ref().map(|i| i.endpoint().to_owned()),
            refusals: self.denials.refusal_counts(),
            denials: self.denials.denial_count(),
        }
    }
}

/// What `erlmcp remote auth` shows of the authentication side.
#[derive(Debug, Clone, Serialize)]
pub struct AuthStats {
    /// `[auth] enabled`.
    pub enabled: bool,
    /// This server's resource URI.
    pub resource: String,
    /// Static keys configured.
    pub api_keys: usize,
    /// The JWKS, when JWTs are accepted.
    pub jwks: Option<JwksStats>,
    /// The introspection endpoint, when opaque tokens are accepted.
    pub introspection: Option<String>,
    /// Requests refused before their body, by reason (`missing`, `invalid`, `insufficient_scope`,
    /// `unavailable`).
    pub refusals: [(&'static str, u64); 4],
    /// Calls, reads and gets the rules refused.
    pub denials: u64,
}

/// The key cache's figures.
#[derive(Debug, Clone, Serialize)]
pub struct JwksStats {
    /// Where the keys come from.
    pub uri: String,
    /// Keys held.
    pub keys: usize,
    /// Fetches, and failed ones.
    pub fetches: u64,
    /// Failed fetches.
    pub failures: u64,
    /// Tokens whose verdict is cached.
    pub tokens_cached: u64,
}

/// The token of an `Authorization: Bearer <token>` value: the scheme is matched without regard
/// to case (RFC 9110 §11.1), the spaces after it skipped.
pub(crate) fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// The metadata document's absolute URL and its path: RFC 9728 §3.1 inserts the well-known
/// prefix between the resource's authority and its path.
fn metadata_location(resource: &str) -> (String, String) {
    let Ok(uri) = resource.parse::<axum::http::Uri>() else {
        return (METADATA_PREFIX.to_owned(), METADATA_PREFIX.to_owned());
    };
    let path = match uri.path() {
        "" | "/" => METADATA_PREFIX.to_owned(),
        path => format!("{METADATA_PREFIX}{path}"),
    };
    let url = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{path}"),
        _ => path.clone(),
    };
    (url, path)
}

/// The node's authentication while a tree runs (for the dispatcher's rules and the admin shell).
static CURRENT: ArcSwapOption<Auth> = ArcSwapOption::const_empty();

/// Installs the running tree's authentication.
pub(crate) fn install(auth: Option<Arc<Auth>>) {
    CURRENT.store(auth);
}

/// The running tree's authentication, if any.
pub fn current() -> Option<Arc<Auth>> {
    CURRENT.load_full()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_without_regard_to_case() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER   t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value}");
        }
        for value in ["Basic t0k", "Bearert0k", "t0k", ""] {
            assert_ne!(bearer_token(value), Some("t0k"), "{value}");
        }
    }

    #[test]
    fn the_metadata_lives_under_the_well_known_prefix_then_the_resource_path() {
        assert_eq!(
            metadata_location("https://mcp.example.com/mcp"),
            (
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".to_owned(),
                "/.well-known/oauth-protected-resource/mcp".to_owned()
            )
        );
        assert_eq!(
            metadata_location("http://127.0.0.1:7410").1,
            "/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn a_client_certificate_authenticates_only_when_asked_to_and_with_the_required_scopes() {
        let mut config = AuthConfig {
            enabled: true,
            resource: "https://mcp.test/mcp".into(),
            required_scopes: vec!["mcp".into()],
            ..AuthConfig::default()
        };
        let off = Auth::from_config_without_fetch(&config).unwrap();
        assert!(off.certificate_principal("alice").is_none());
        config.client_certificates = true;
        let refused = Auth::from_config_without_fetch(&config).unwrap();
        assert_eq!(
            refused.certificate_principal("alice").unwrap().unwrap_err(),
            Refusal::InsufficientScope(vec!["mcp".into()])
        );
        config.client_certificate_scopes = vec!["mcp".into()];
        let on = Auth::from_config_without_fetch(&config).unwrap();
        let alice = on.certificate_principal("alice").unwrap().unwrap();
        assert_eq!(
            (alice.subject.as_str(), alice.via),
            ("alice", Via::ClientCertificate)
        );
        assert!(alice.has_scope("mcp"));
        assert!(
            on.certificate_principal("").is_none(),
            "a certificate naming no one"
        );
    }

    #[tokio::test]
    async fn api_keys_and_required_scopes() {
        let config = AuthConfig {
            enabled: true,
            resource: "http://127.0.0.1:1/mcp".into(),
            required_scopes: vec!["mcp".into()],
            api_keys: vec![
                crate::config::ApiKeyConfig {
                    key: "k".repeat(20),
                    subject: "ops".into(),
                    scopes: vec!["mcp".into()],
                },
                crate::config::ApiKeyConfig {
                    key: "n".repeat(20),
                    subject: "nobody".into(),
                    scopes: vec![],
                },
            ],
            ..AuthConfig::default()
        };
        let auth = Auth::from_config(&config, "").unwrap();
        let ok = auth
            .authenticate(Some(&format!("Bearer {}", "k".repeat(20))))
            .await
            .unwrap();
        assert_eq!(ok.subject, "ops");
        assert_eq!(auth.authenticate(None).await.unwrap_err(), Refusal::Missing);
        let weak = auth
            .authenticate(Some(&format!("Bearer {}", "n".repeat(20))))
            .await
            .unwrap_err();
        assert_eq!(weak, Refusal::InsufficientScope(vec!["mcp".into()]));
        assert!(
            auth.challenge(&weak)
                .contains("error=\"insufficient_scope\", scope=\"mcp\"")
        );
        assert!(
            auth.challenge(&Refusal::Missing)
                .starts_with("Bearer resource_metadata=\"http://127.0.0.1:1/.well-known/")
        );
        assert!(matches!(
            auth.authenticate(Some("Bearer wrong")).await,
            Err(Refusal::Invalid(_))
        ));
        let odd = auth.challenge(&Refusal::Invalid("bad \"tok\u{e9}n\"\n".into()));
        assert!(odd.ends_with("error_description=\"bad 'tok?n'?\""), "{odd}");
        assert_eq!(auth.stats().refusals[0].1, 1);
        assert!(Auth::from_config(&AuthConfig::default(), "").is_none());
    }
}
