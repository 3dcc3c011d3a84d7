//! Owns what is remembered of refusals: counters of requests refused for their token (by
//! reason) and of calls the rules refused (`erlmcp_auth_refusals_total`,
//! `erlmcp_auth_denials_total`), the last `auth.denials_kept` denials for `erlmcp remote auth`,
//! and their log lines, one a second at most per kind with the count of those left out.

use super::rules::{Kind, Refused};
use super::{Principal, Refusal};
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

static REFUSAL_LOG: LogLimiter = LogLimiter::per_second();
static DENIAL_LOG: LogLimiter = LogLimiter::per_second();

/// One denial the rules made.
#[derive(Debug, Clone, Serialize)]
pub struct Denial {
    /// When (unix ms).
    pub at_ms: u64,
    /// Who asked.
    pub subject: String,
    /// Its client, when known.
    pub client_id: Option<String>,
    /// What kind of thing.
    pub kind: Kind,
    /// Its name (or URI).
    pub name: String,
    /// The scopes it lacked (empty: no rule grants it to this principal).
    pub missing_scopes: Vec<String>,
}

/// The counters and the ring.
pub struct Denials {
    kept: usize,
    recent: Mutex<VecDeque<Denial>>,
    denied: AtomicU64,
    missing: AtomicU64,
    invalid: AtomicU64,
    insufficient: AtomicU64,
    unavailable: AtomicU64,
}

impl Denials {
    pub(crate) fn new(kept: usize) -> Self {
        Self {
            kept,
            recent: Mutex::new(VecDeque::with_capacity(kept.min(1024))),
            denied: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            insufficient: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
        }
    }

    /// A request refused for its token.
    pub(crate) fn refused(&self, refusal: &Refusal) {
        let counter = match refusal {
            Refusal::Missing => &self.missing,
            Refusal::Invalid(_) => &self.invalid,
            Refusal::InsufficientScope(_) => &self.insufficient,
            Refusal::Unavailable(_) => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // A request without a token is how every client starts (it reads the 401 to find the
        // authorization server): not worth a line.
        if !matches!(refusal, Refusal::Missing)
            && let Some(left_out) = REFUSAL_LOG.allow()
        {
            tracing::info!(?refusal, left_out, "request refused for its token");
        }
    }

    /// A call, read or get the rules refused.
    pub(crate) fn denied(&self, principal: &Principal, kind: Kind, name: &str, refused: &Refused) {
        self.denied.fetch_add(1, Ordering::Relaxed);
        if let Some(left_out) = DENIAL_LOG.allow() {
            tracing::info!(
                subject = %principal.subject,
                client_id = principal.client_id.as_deref().unwrap_or(""),
                kind = kind.as_str(),
                name,
                missing_scopes = ?refused.missing_scopes,
                left_out,
                "denied by auth.rules"
            );
        }
        if self.kept == 0 {
            return;
        }
        let mut recent = lock(&self.recent);
        if recent.len() == self.kept {
            recent.pop_front();
        }
        recent.push_back(Denial {
            at_ms: crate::clock::wall_ms(),
            subject: principal.subject.clone(),
            client_id: principal.client_id.clone(),
            kind,
            name: name.to_owned(),
            missing_scopes: refused.missing_scopes.clone(),
        });
    }

    /// The recent denials, oldest first.
    pub fn recent(&self) -> Vec<Denial> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// Denials by the rules so far.
    pub fn denial_count(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// Requests refused for their token so far, by reason.
    pub fn refusal_counts(&self) -> [(&'static str, u64); 4] {
        [
            ("missing", self.missing.load(Ordering::Relaxed)),
            ("invalid", self.invalid.load(Ordering::Relaxed)),
            (
                "insufficient_scope",
                self.insufficient.load(Ordering::Relaxed),
            ),
            ("unavailable", self.unavailable.load(Ordering::Relaxed)),
        ]
    }
}
