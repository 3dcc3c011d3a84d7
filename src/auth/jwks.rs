//! Owns the authorization server's signing keys: the JWKS fetched from `auth.jwks_uri` at start,
//! read without a lock on the request path, fetched again in the background when older than
//! `auth.jwks_max_age`, and on a token naming an unknown `kid` at most once per
//! `auth.jwks_refetch_interval` — one fetch at a time, each under `auth.jwks_timeout`, so a
//! request never waits longer than that for keys and a flood of made-up `kid`s costs one fetch
//! per interval.

use crate::log_limit::LogLimiter;
use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failed fetches, logged at most once a second.
static FETCH_FAILURES: LogLimiter = LogLimiter::per_second();

/// One usable key.
pub(crate) struct Key {
    pub(crate) decoding: DecodingKey,
}

/// The keys of one fetch.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid` (a token without one is tried against the only key, if one).
    without_kid: Vec<Arc<Key>>,
    /// When they were fetched (`None`: never).
    fetched: Option<Instant>,
}

impl KeySet {
    /// The key a token with header `kid` names.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None if self.by_kid.len() + self.without_kid.len() == 1 => self
                .without_kid
                .first()
                .or_else(|| self.by_kid.values().next())
                .cloned(),
            None => None,
        }
    }

    /// Keys from a JWKS document: signing keys of a supported type; the rest skipped.
    fn parse(body: &[u8]) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Self {
            fetched: Some(Instant::now()),
            ..Self::default()
        };
        for jwk in &set.keys {
            // A shared-secret key never verifies an access token here.
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let Ok(decoding) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = Arc::new(Key { decoding });
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.without_kid.push(key),
            }
        }
        Ok(keys)
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }
}

/// The key cache.
pub(crate) struct Jwks {
    uri: String,
    timeout: Duration,
    refetch_interval: Duration,
    max_age: Duration,
    keys: ArcSwap<KeySet>,
    /// Held while a fetch runs: one at a time; holds when the last one started.
    fetching: Arc<tokio::sync::Mutex<Option<Instant>>>,
    /// Fetches done, and failed.
    pub(crate) fetches: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl Jwks {
    pub(crate) fn new(
        uri: String,
        timeout: Duration,
        refetch_interval: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            uri,
            timeout,
            refetch_interval,
            max_age,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetching: Arc::new(tokio::sync::Mutex::new(None)),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The keys now (no lock).
    pub(crate) fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Where they come from.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// The keys are older than `max_age` (or none yet): fetch them in the background unless a
    /// fetch is running (never waits).
    pub(crate) fn refresh_if_stale(self: &Arc<Self>) {
        let stale = self
            .keys
            .load()
            .fetched
            .is_none_or(|at| at.elapsed() >= self.max_age);
        if !stale {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(mut last) = Arc::clone(&self.fetching).try_lock_owned() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        let jwks = Arc::clone(self);
        // The lock goes with the fetch: a request for an unknown kid meanwhile waits for it.
        runtime.spawn(async move {
            jwks.fetch_now().await;
            drop(last);
        });
    }

    /// A token names `kid`, which the keys lack: fetch them again, unless a fetch started less
    /// than `refetch_interval` ago; waits for the fetch in progress (at most `timeout`). True
    /// when the keys now hold `kid`.
    pub(crate) async fn refetch_for(&self, kid: Option<&str>) -> bool {
        let mut last = self.fetching.lock().await;
        if self.keys.load().find(kid).is_some() {
            // Another request's fetch brought it.
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_now().await;
        drop(last);
        self.keys.load().find(kid).is_some()
    }

    /// Fetches the JWKS and installs its keys; a failure keeps the keys there were.
    async fn fetch_now(&self) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = super::fetch::get(&self.uri, self.timeout)
            .await
            .map_err(|e| e.to_string())
            .and_then(|body| KeySet::parse(&body));
        match outcome {
            Ok(keys) => {
                tracing::debug!(jwks = %self.uri, keys = keys.len(), "JWKS fetched");
                self.keys.store(Arc::new(keys));
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = FETCH_FAILURES.allow() {
                    tracing::warn!(jwks = %self.uri, error = %why, left_out, "JWKS fetch failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_of_a_public_type_are_kept() {
        let body = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "sig", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
        ]});
        let keys = KeySet::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.find(Some("sig")).is_some());
        assert!(keys.find(Some("enc")).is_none() && keys.find(Some("secret")).is_none());
        // A token without a kid is tried against the only key.
        assert!(keys.find(None).is_some());
        assert!(KeySet::parse(b"not json").is_err());
    }
}
