//! Owns the rate limits (`[rate_limit]`): token buckets per client for requests and for new
//! sessions, and the count of connections per source address. A client is keyed by its source
//! address and, where it proved one, by its principal (today the static bearer token; the
//! [`keys`] function takes any principal string), and every one of its keys must have a token.
//!
//! Every table a client can grow is bounded: past `max_keys` clients in a table, the table
//! forgets the clients whose buckets are full again (governor's `retain_recent`) and, if it is
//! still full, every client shares one bucket (the overflow key) until it has room.
//!
//! A refusal is a [`super::Shed`] of reason `rate_limit` (counted with the other sheds in
//! `erlmcp_shed_total`, logged at a bounded rate by the admission point): over HTTP 429 with
//! `Retry-After`, on a stream transport a JSON-RPC error -32000 with `data.retryAfterMs`.

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the rate limits are (from `[rate_limit]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests a client may make per second, sustained (0: no limit).
    pub requests_per_second: u32,
    /// Requests a client may make at once, above the sustained rate.
    pub request_burst: u32,
    /// Sessions a client may start per minute, sustained (0: no limit).
    pub sessions_per_minute: u32,
    /// Sessions a client may start at once.
    pub session_burst: u32,
    /// Connections open at once from one source address (0: no limit).
    pub connections_per_address: u32,
    /// Clients each table remembers before new ones share the overflow bucket.
    pub max_keys: usize,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 0,
            request_burst: 0,
            sessions_per_minute: 0,
            session_burst: 0,
            connections_per_address: 0,
            max_keys: 100_000,
        }
    }
}

/// Who a limit counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A source address.
    Addr(IpAddr),
    /// A principal (the bearer token today, an OAuth subject later).
    Principal(Arc<str>),
    /// Every client that found its table full.
    Overflow,
}

/// The keys a request counts against: its source address (if it has one: stdio has none) and
/// its principal (if it proved one).
pub fn keys(peer: Option<IpAddr>, principal: Option<&str>) -> smallvec::SmallVec<[RateKey; 2]> {
    let mut keys = smallvec::SmallVec::new();
    if let Some(peer) = peer {
        keys.push(RateKey::Addr(peer));
    }
    if let Some(principal) = principal {
        keys.push(RateKey::Principal(principal.into()));
    }
    keys
}

/// One limit: a keyed token bucket with a bounded table.
struct Bucket {
    limiter: DefaultKeyedRateLimiter<RateKey>,
    max_keys: usize,
    /// When the full table was last swept (monotonic ms): at most once per [`SWEEP_EVERY_MS`],
    /// so a table kept full by many live clients costs a sweep a second, not one per request.
    last_sweep_ms: AtomicU64,
}

/// How often a full key table may be swept for clients whose buckets refilled.
const SWEEP_EVERY_MS: u64 = 1000;

impl Bucket {
    fn new(per: Duration, sustained: u32, burst: u32, max_keys: usize) -> Option<Self> {
        let sustained = NonZeroU32::new(sustained)?;
        let burst = NonZeroU32::new(burst.max(sustained.get())).unwrap_or(sustained);
        // One token every `per / sustained`, `burst` at most.
        let period = per / sustained.get();
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(burst);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            max_keys: max_keys.max(1),
            last_sweep_ms: AtomicU64::new(0),
        })
    }

    /// Takes a token for `key`; `Err(wait)` when it has none. governor cannot say whether a
    /// key is in the table without adding it, so while the table is full every client, known
    /// or not, takes from the overflow bucket, until `retain_recent` (at most once a second)
    /// makes room.
    fn take(&self, key: &RateKey) -> Result<(), Duration> {
        let mut key = key;
        if self.limiter.len() >= self.max_keys {
            let (now, last) = (
                crate::clock::monotonic_ms(),
                self.last_sweep_ms.load(Ordering::Relaxed),
            );
            let sweep = now >= last + SWEEP_EVERY_MS
                && self
                    .last_sweep_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok();
            if sweep {
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
            }
            if !sweep || self.limiter.len() >= self.max_keys {
                key = &RateKey::Overflow;
            }
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The rate limits of a node.
pub struct RateLimits {
    requests: Option<Bucket>,
    sessions: Option<Bucket>,
    connections_per_address: u32,
    max_keys: usize,
    connections: std::sync::Mutex<HashMap<IpAddr, u32>>,
    refused_connections: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("requests", &self.requests.is_some())
            .field("sessions", &self.sessions.is_some())
            .field("connections_per_address", &self.connections_per_address)
            .finish()
    }
}

impl RateLimits {
    /// The limits `settings` describe (a rate of 0 is no limit).
    pub fn new(settings: &RateSettings) -> Self {
        Self {
            requests: Bucket::new(
                Duration::from_secs(1),
                settings.requests_per_second,
                settings.request_burst,
                settings.max_keys,
            ),
            sessions: Bucket::new(
                Duration::from_secs(60),
                settings.sessions_per_minute,
                settings.session_burst,
                settings.max_keys,
            ),
            connections_per_address: settings.connections_per_address,
            max_keys: settings.max_keys.max(1),
            connections: std::sync::Mutex::new(HashMap::new()),
            refused_connections: AtomicU64::new(0),
        }
    }

    /// Whether a request limit is set (else requests are not keyed or counted).
    pub fn limits_requests(&self) -> bool {
        self.requests.is_some()
    }

    /// Whether a new-session limit is set.
    pub fn limits_sessions(&self) -> bool {
        self.sessions.is_some()
    }

    /// One request from `keys`: `Err(wait)` when one of them has no token left.
    pub fn request(&self, keys: &[RateKey]) -> Result<(), Duration> {
        take_all(self.requests.as_ref(), keys)
    }

    /// One new session from `keys`: `Err(wait)` when one of them has no token left.
    pub fn session(&self, keys: &[RateKey]) -> Result<(), Duration> {
        take_all(self.sessions.as_ref(), keys)
    }

    /// A connection from `peer`, held until the guard drops; `None` when `peer` has
    /// `connections_per_address` open already (or the table of addresses is full).
    pub fn connection(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionGuard> {
        if self.connections_per_address == 0 {
            return Some(ConnectionGuard { limits: None, peer });
        }
        let mut table = crate::locks::lock(&self.connections);
        let full = table.len() >= self.max_keys && !table.contains_key(&peer);
        let count = table.get(&peer).copied().unwrap_or(0);
        if full || count >= self.connections_per_address {
            drop(table);
            self.refused_connections.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        table.insert(peer, count + 1);
        Some(ConnectionGuard {
            limits: Some(Arc::clone(self)),
            peer,
        })
    }

    /// Connections refused for `connections_per_address` since start.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }
}

fn take_all(bucket: Option<&Bucket>, keys: &[RateKey]) -> Result<(), Duration> {
    let Some(bucket) = bucket else {
        return Ok(());
    };
    // Every key pays (a principal spread over addresses and an address shared by principals
    // are both held); the longest wait is the one to tell.
    let mut wait = None;
    for key in keys {
        if let Err(w) = bucket.take(key) {
            wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
        }
    }
    wait.map_or(Ok(()), Err)
}

/// A connection counted against its source address until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: Option<Arc<RateLimits>>,
    peer: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let Some(limits) = &self.limits else { return };
        let mut table = crate::locks::lock(&limits.connections);
        if let Some(count) = table.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.peer);
            }
        }
    }
}

/// Connections refused for `connections_per_address`, logged at most once a second.
static CONNECTION_REFUSALS: crate::log_limit::LogLimiter =
    crate::log_limit::LogLimiter::per_second();

/// How long a client refused for its connections per address is told to wait.
pub const CONNECTION_RETRY_AFTER_MS: u64 = 1000;

impl RateLimits {
    /// A connection from `peer` on `listener`, or `None` (logged at a bounded rate) when it is
    /// over `connections_per_address`: answer it with [`refusal_for_http`] or
    /// [`refusal_for_lines`] and close it.
    pub fn admit_connection(
        self: &Arc<Self>,
        listener: &str,
        peer: IpAddr,
    ) -> Option<ConnectionGuard> {
        let guard = self.connection(peer);
        if guard.is_none()
            && let Some(held) = CONNECTION_REFUSALS.allow()
        {
            tracing::warn!(
                listener,
                %peer,
                limit = self.connections_per_address,
                refused_since_last_line = held + 1,
                "refusing a connection: rate_limit.connections_per_address reached"
            );
        }
        guard
    }
}

fn too_many_connections() -> Vec<u8> {
    let shed = super::Shed {
        reason: super::ShedReason::RateLimit,
        retry_after_ms: CONNECTION_RETRY_AFTER_MS,
    };
    let mut error = shed.to_rpc_error();
    error.message =
        "too many connections from this address (rate_limit.connections_per_address)".to_owned();
    crate::protocol::jsonrpc::encode_error(None, &error)
}

/// The whole HTTP answer to a connection over `connections_per_address`: 429, `Retry-After`,
/// a JSON-RPC -32000 body, and a close.
pub fn refusal_for_http() -> Vec<u8> {
    let body = too_many_connections();
    let mut answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        CONNECTION_RETRY_AFTER_MS.div_ceil(1000),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// The line a TCP client over `connections_per_address` gets before the close.
pub fn refusal_for_lines() -> Vec<u8> {
    let mut line = too_many_connections();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> RateKey {
        RateKey::Addr(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn a_client_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(&RateSettings {
            requests_per_second: 1,
            request_burst: 3,
            ..RateSettings::default()
        });
        for _ in 0..3 {
            assert!(limits.request(&[addr(1)]).is_ok());
        }
        let wait = limits.request(&[addr(1)]).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limits.request(&[addr(2)]).is_ok());
        // A principal is held across addresses.
        let token = RateKey::Principal("t".into());
        for n in 0..3 {
            assert!(limits.request(&[addr(10 + n), token.clone()]).is_ok());
        }
        assert!(limits.request(&[addr(20), token]).is_err());
        // No limit set: nothing refused, nothing kept.
        let off = RateLimits::new(&RateSettings::default());
        assert!(!off.limits_requests());
        for _ in 0..1000 {
            assert!(off.request(&[addr(1)]).is_ok());
        }
    }

    #[test]
    fn the_key_table_is_bounded_and_new_clients_share_the_overflow_bucket() {
        let limits = RateLimits::new(&RateSettings {
            sessions_per_minute: 1,
            session_burst: 1,
            max_keys: 4,
            ..RateSettings::default()
        });
        for n in 0..4 {
            assert!(limits.session(&[addr(n)]).is_ok());
        }
        let table = limits.sessions.as_ref().unwrap();
        assert_eq!(table.limiter.len(), 4);
        // The table is full of clients that spent their tokens: the next ones share one bucket.
        assert!(limits.session(&[addr(100)]).is_ok());
        assert!(limits.session(&[addr(101)]).is_err());
        assert!(table.limiter.len() <= 5, "{}", table.limiter.len());
    }

    #[test]
    fn connections_are_counted_per_address_and_given_back() {
        let limits = Arc::new(RateLimits::new(&RateSettings {
            connections_per_address: 2,
            ..RateSettings::default()
        }));
        let peer = IpAddr::from([127, 0, 0, 1]);
        let first = limits.connection(peer).unwrap();
        let _second = limits.connection(peer).unwrap();
        assert!(limits.connection(peer).is_none());
        assert!(limits.connection(IpAddr::from([127, 0, 0, 2])).is_some());
        drop(first);
        assert!(limits.connection(peer).is_some());
        assert_eq!(limits.refused_connections(), 1);
    }
}
