//! Owns authorization's pair of `erlmcp bench core`: what a request with a JWT access token
//! costs once its verdict is cached (the `Authorization` value read, the static keys compared, the
//! token hashed, the cache hit, the required scopes checked) beside the older single bearer token
//! compared in constant time — the price of `[auth]` on the hot path.

use super::{Auth, Principal, Via};
use crate::config::AuthConfig;
use crate::core_bench::pair::Pair;
use futures::FutureExt as _;
use std::hint::black_box;
use std::sync::Arc;
use subtle::ConstantTimeEq as _;

/// A JWT-shaped token of a typical length (its verdict is put in the cache: never verified here).
const TOKEN: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.",
    "eyJpc3MiOiJodHRwczovL2FzLmV4YW1wbGUuY29tIiwiYXVkIjoiaHR0cHM6Ly9tY3AuZXhhbXBsZS5jb20vbWNwIiwic3ViIjoiYWxpY2UiLCJzY29wZSI6Im1jcCIsImV4cCI6NDEwMjQ0NDgwMH0.",
    "MEUCIQDx0bKcF3cBQ2cS3T1b7vP8p0k4QmS3n9Q7y2kZt7a9XwIgU2f1o6Y7y0z3c2mH1pV8s7u2b3x4n5m6k7j8h9g0f1e"
);

/// `auth_cached_jwt`: [`Auth::authenticate`] of a JWT whose verdict is cached, beside a
/// constant-time compare of one static token.
pub(crate) fn bench_pairs() -> Vec<Pair> {
    let config = AuthConfig {
        enabled: true,
        resource: "https://mcp.example.com/mcp".into(),
        authorization_servers: vec!["https://as.example.com".into()],
        // Never fetched: the token's verdict is in the cache before the first call.
        jwks_uri: "http://127.0.0.1:9/jwks".into(),
        required_scopes: vec!["mcp".into()],
        ..AuthConfig::default()
    };
    let Some(auth) = Auth::from_config_without_fetch(&config) else {
        return Vec::new();
    };
    auth.prime(
        TOKEN,
        Principal {
            subject: "alice".into(),
            client_id: None,
            scopes: vec!["mcp".into()],
            via: Via::Jwt,
            expires_at: Some(4_102_444_800),
        },
    );
    let header = format!("Bearer {TOKEN}");
    let ours = {
        let header = header.clone();
        Arc::new(move || {
            let outcome = auth.authenticate(Some(black_box(&header))).now_or_never();
            black_box(outcome.is_some_and(|o| o.is_ok()));
        })
    };
    let baseline = Arc::new(move || {
        let token = super::bearer_token(black_box(&header)).unwrap_or_default();
        black_box(bool::from(token.as_bytes().ct_eq(TOKEN.as_bytes())));
    });
    vec![Pair {
        name: "auth_cached_jwt",
        ours: ("Auth::authenticate (SHA-256 + quick_cache hit)", ours),
        baseline: ("http.bearer_token compare (subtle)", baseline),
    }]
}
