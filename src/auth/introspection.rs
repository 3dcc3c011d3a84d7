//! Owns opaque access tokens: each asked about at the authorization server's introspection
//! endpoint (RFC 7662) — a form POST with the node's client credentials (HTTP Basic, RFC 6749
//! §2.3.1) — and the answer kept by the token's SHA-256 for `auth.introspection_cache_ttl` (never
//! past the token's `exp`), an inactive answer too, so that a token costs one call per interval.
//! Calls in flight are bounded (`auth.introspection_concurrency`); a request that finds them all
//! busy for `auth.jwks_timeout` is told to come back (503), not refused.

use super::{Principal, Via};
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Why an opaque token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    /// The authorization server says it is not active (or it expired, or is for another audience).
    #[error("the token is not active")]
    Inactive,
    /// The authorization server could not be asked (down, slow, or too many calls in flight).
    #[error("the token could not be checked: {0}")]
    Unavailable(String),
}

/// The fields of an introspection answer erlmcp reads.
#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A cached answer: the principal (`None`: inactive) and until when it holds (unix seconds).
#[derive(Clone)]
struct Known {
    principal: Option<Arc<Principal>>,
    until: u64,
}

/// Asks one authorization server about opaque tokens.
pub(crate) struct Introspector {
    endpoint: String,
    /// `Basic base64(client_id:client_secret)`.
    authorization: String,
    issuer: Option<String>,
    audiences: Vec<String>,
    ttl_secs: u64,
    timeout: Duration,
    in_flight: tokio::sync::Semaphore,
    known: quick_cache::sync::Cache<[u8; 32], Known>,
}

impl Introspector {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        endpoint: String,
        (client_id, client_secret): (&str, &str),
        issuer: Option<String>,
        audiences: Vec<String>,
        ttl: Duration,
        timeout: Duration,
        concurrency: usize,
        cache_entries: usize,
    ) -> Self {
        let credentials = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
        Self {
            endpoint,
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            issuer,
            audiences,
            ttl_secs: ttl.as_secs().max(1),
            timeout,
            in_flight: tokio::sync::Semaphore::new(concurrency),
            known: quick_cache::sync::Cache::new(cache_entries),
        }
    }

    /// Where tokens are asked about.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Who `token` stands for, as the authorization server says (or said lately).
    pub(crate) async fn check(&self, token: &str) -> Result<Arc<Principal>, IntrospectionError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.known.get(&digest)
            && crate::clock::wall_ms() / 1000 < known.until
        {
            return known.principal.ok_or(IntrospectionError::Inactive);
        }
        // Boxed: the call's future is kilobytes, and every request's future (a fast-lane
        // connection's, held while it lives) would carry it.
        Box::pin(self.ask(token, digest)).await
    }

    /// Asks the authorization server about `token` (whose SHA-256 is `digest`) and keeps the answer.
    async fn ask(
        &self,
        token: &str,
        digest: [u8; 32],
    ) -> Result<Arc<Principal>, IntrospectionError> {
        let now = crate::clock::wall_ms() / 1000;
        let _permit = tokio::time::timeout(self.timeout, self.in_flight.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                IntrospectionError::Unavailable("too many introspection calls in flight".into())
            })?;
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let body = super::fetch::post_form(&self.endpoint, form, &self.authorization, self.timeout)
            .await
            .map_err(|e| IntrospectionError::Unavailable(e.to_string()))?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            IntrospectionError::Unavailable(format!("not an introspection answer: {e}"))
        })?;
        let principal = self.principal_of(answer, now).map(Arc::new);
        let until = match &principal {
            Some(p) => p
                .expires_at
                .map_or(now + self.ttl_secs, |exp| exp.min(now + self.ttl_secs)),
            None => now + self.ttl_secs,
        };
        self.known.insert(
            digest,
            Known {
                principal: principal.clone(),
                until,
            },
        );
        principal.ok_or(IntrospectionError::Inactive)
    }

    /// The principal of an active answer for this server; `None`: not one.
    fn principal_of(&self, answer: Answer, now: u64) -> Option<Principal> {
        if !answer.active || answer.exp.is_some_and(|exp| exp <= now) {
            return None;
        }
        let aud_ok = match &answer.aud {
            None => true,
            Some(Audience::One(aud)) => self.audiences.contains(aud),
            Some(Audience::Many(auds)) => auds.iter().any(|a| self.audiences.contains(a)),
        };
        let iss_ok = match (&self.issuer, &answer.iss) {
            (Some(expected), Some(iss)) => expected == iss,
            _ => true,
        };
        if !aud_ok || !iss_ok {
            return None;
        }
        let subject = answer.sub.or_else(|| answer.client_id.clone())?;
        Some(Principal {
            subject,
            client_id: answer.client_id,
            scopes: answer
                .scope
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            via: Via::Introspection,
            expires_at: answer.exp,
        })
    }
}

/// `application/x-www-form-urlencoded` of `text`: unreserved bytes as they are, the rest `%XX`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded() {
        assert_eq!(form_encode("a b+c/d=é"), "a%20b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(form_encode("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn only_an_active_answer_for_this_audience_and_issuer_is_a_principal() {
        let introspector = Introspector::new(
            "http://127.0.0.1:1/introspect".into(),
            ("rs", "secret"),
            Some("https://as.test".into()),
            vec!["https://mcp.test/mcp".into()],
            Duration::from_secs(60),
            Duration::from_secs(1),
            4,
            16,
        );
        let answer = |json: serde_json::Value| serde_json::from_value::<Answer>(json).unwrap();
        let good = introspector.principal_of(
            answer(
                serde_json::json!({"active": true, "sub": "carol", "scope": "mcp a",
                "aud": "https://mcp.test/mcp", "iss": "https://as.test", "exp": 2000}),
            ),
            1000,
        );
        assert_eq!(good.unwrap().scopes, vec!["mcp", "a"]);
        for bad in [
            serde_json::json!({"active": false, "sub": "carol"}),
            serde_json::json!({"active": true, "sub": "carol", "exp": 999}),
            serde_json::json!({"active": true, "sub": "carol", "aud": ["https://other.test"]}),
            serde_json::json!({"active": true, "sub": "carol", "iss": "https://evil.test"}),
        ] {
            assert!(
                introspector
                    .principal_of(answer(bad.clone()), 1000)
                    .is_none(),
                "{bad}"
            );
        }
    }
}
