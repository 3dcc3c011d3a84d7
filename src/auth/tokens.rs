//! Owns the checking of JWT access tokens: the signature against the authorization server's
//! keys ([`super::jwks`]), the algorithm (asymmetric, from `auth.algorithms`), `iss`, `aud` (this
//! server's resource URI, RFC 8707, or one of `auth.audiences`), `exp` and `nbf` with
//! `auth.leeway`; and the cache of tokens already checked, by their SHA-256, each kept until it
//! expires (bounded by `auth.token_cache_entries`), so that a client's next request costs a hash
//! and a lookup, not a signature check.

use super::jwks::Jwks;
use super::{Principal, Via};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::str::FromStr as _;
use std::sync::Arc;

/// Why a token was refused (said in the 401's `error_description`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a header this server does not take.
    #[error("the token is not a JWT this server accepts: {0}")]
    Malformed(String),
    /// Its `alg` is not among `auth.algorithms`.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// Its `kid` names no key of the authorization server, even after fetching them again.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// Expired (past `exp` + leeway) or not yet valid (`nbf`).
    #[error("the token has expired or is not yet valid")]
    Expired,
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is not accepted")]
    Issuer,
    /// `aud` does not name this server.
    #[error("the token's audience is not this server")]
    Audience,
    /// A claim is missing or of the wrong type.
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
}

/// The claims read from a token.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    exp: u64,
    /// RFC 8693 / RFC 9068: space-separated scopes.
    #[serde(default)]
    scope: Option<String>,
    /// Some servers send an array instead.
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

/// How far a token's check got without waiting.
enum Step {
    /// Decided.
    Done(Result<Arc<Principal>, TokenError>),
    /// Its key (this `kid`) is not known: fetch the keys, then check again.
    NeedKey(Option<String>),
}

/// A cached verdict: the principal, and when it stops being valid (unix seconds, leeway in).
#[derive(Clone)]
struct Checked {
    principal: Arc<Principal>,
    valid_until: u64,
}

/// Checks tokens against one authorization server.
pub(crate) struct Verifier {
    jwks: Arc<Jwks>,
    validation: Validation,
    leeway: u64,
    checked: quick_cache::sync::Cache<[u8; 32], Checked>,
}

impl Verifier {
    pub(crate) fn new(
        jwks: Arc<Jwks>,
        issuer: &str,
        audiences: &[String],
        algorithms: &[String],
        leeway: u64,
        cache_entries: usize,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .collect();
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        Self {
            jwks,
            validation,
            leeway,
            checked: quick_cache::sync::Cache::new(cache_entries),
        }
    }

    /// The key cache.
    pub(crate) fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Tokens in the cache.
    pub(crate) fn cached(&self) -> u64 {
        self.checked.len() as u64
    }

    /// Puts `token`'s verdict in the cache (`erlmcp bench core`).
    pub(crate) fn prime(&self, token: &str, principal: Principal) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let valid_until = principal.expires_at.unwrap_or(u64::MAX);
        self.checked.insert(
            digest,
            Checked {
                principal: Arc::new(principal),
                valid_until,
            },
        );
    }

    /// Who `token` stands for, or why it is refused. A token checked before and not expired is
    /// answered from the cache; a token naming an unknown key may wait for one JWKS fetch
    /// (bounded by `auth.jwks_timeout`, at most one per `auth.jwks_refetch_interval`).
    pub(crate) async fn verify(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        match self.verify_now(token) {
            Step::Done(outcome) => outcome,
            // Boxed: the fetch's future is kilobytes, and every request's future (a fast-lane
            // connection's, held while it lives) would carry it.
            Step::NeedKey(kid) => Box::pin(self.verify_after_fetch(token, kid)).await,
        }
    }

    /// A token whose key is not known: the keys fetched again (at the bounded rate), then
    /// checked once more.
    async fn verify_after_fetch(
        &self,
        token: &str,
        kid: Option<String>,
    ) -> Result<Arc<Principal>, TokenError> {
        if !self.jwks.refetch_for(kid.as_deref()).await {
            return Err(TokenError::UnknownKey);
        }
        match self.verify_now(token) {
            Step::Done(outcome) => outcome,
            Step::NeedKey(_) => Err(TokenError::UnknownKey),
        }
    }

    /// Everything that needs no waiting: the cache, the header, the key, the signature and claims.
    fn verify_now(&self, token: &str) -> Step {
        match self.check_now(token) {
            Ok(Some(principal)) => Step::Done(Ok(principal)),
            Ok(None) => Step::NeedKey(
                jsonwebtoken::decode_header(token)
                    .ok()
                    .and_then(|header| header.kid),
            ),
            Err(e) => Step::Done(Err(e)),
        }
    }

    /// [`Verifier::verify_now`]'s work; `Ok(None)`: the token's key is not known.
    fn check_now(&self, token: &str) -> Result<Option<Arc<Principal>>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = crate::clock::wall_ms() / 1000;
        if let Some(hit) = self.checked.get(&digest) {
            if now < hit.valid_until {
                return Ok(Some(hit.principal));
            }
            self.checked.remove(&digest);
            return Err(TokenError::Expired);
        }
        self.jwks.refresh_if_stale();
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let Some(key) = self.jwks.keys().find(header.kid.as_deref()) else {
            return Ok(None);
        };
        // jsonwebtoken wants every algorithm of a validation in the key's family: this token's.
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(from_jwt_error)?;
        let claims = data.claims;
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        scopes.extend(claims.scp.unwrap_or_default());
        let client_id = claims.client_id.or(claims.azp);
        let subject = claims
            .sub
            .or_else(|| client_id.clone())
            .ok_or_else(|| TokenError::Claims("neither sub nor client_id".to_owned()))?;
        let principal = Arc::new(Principal {
            subject,
            client_id,
            scopes,
            via: Via::Jwt,
            expires_at: Some(claims.exp),
        });
        self.checked.insert(
            digest,
            Checked {
                principal: Arc::clone(&principal),
                valid_until: claims.exp.saturating_add(self.leeway),
            },
        );
        Ok(Some(principal))
    }
}

fn from_jwt_error(error: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidEddsaKey => {
            TokenError::Signature
        }
        K::ExpiredSignature | K::ImmatureSignature => TokenError::Expired,
        K::InvalidIssuer => TokenError::Issuer,
        K::InvalidAudience => TokenError::Audience,
        K::InvalidAlgorithm | K::MissingAlgorithm => TokenError::Algorithm,
        K::MissingRequiredClaim(claim) if claim == "aud" => TokenError::Audience,
        K::MissingRequiredClaim(claim) if claim == "iss" => TokenError::Issuer,
        K::MissingRequiredClaim(claim) | K::InvalidClaimFormat(claim) => {
            TokenError::Claims(claim.clone())
        }
        other => TokenError::Malformed(format!("{other:?}")),
    }
}
