//! Owns the node's one admission point: every request, on every transport, enters here before
//! its handler runs and leaves when its answer is ready (or when it is cancelled); work the node
//! cannot take is shed here with one clear error instead of piling up.
//!
//! Rules, in the order they are checked:
//! - `initialize`, `ping` (and every notification, which never enters) are never shed for load:
//!   a client must always be able to start a session and to see that the node is alive.
//! - Over the memory guard's limit (`memory_limit`, see [`MemoryGuard`]), new sessions
//!   (`initialize`) and new work are shed (reason `memory`); `ping` still passes.
//! - A method with its own limit (`[queue.methods]`) is shed when that many of it are in
//!   progress (reason `method_limit`).
//! - Any other request is shed when `queue.shed_at × queue.capacity` requests are in progress
//!   (reason `queue`).
//!
//! A shed request gets exactly one answer: JSON-RPC error -32000 `server overloaded` with
//! `data.retryAfterMs` and `data.reason` (over HTTP also `503` and `Retry-After`). An admitted
//! request holds a [`Permit`] until its answer is ready, its task is cancelled or it panics (the
//! permit's `Drop` gives the place back). Entering is one atomic add (the count in progress and
//! the count admitted share one word, [`Counts`]) and leaving one atomic subtract, with no lock
//! and no mailbox; the permit borrows the admission point and takes a reference count only when
//! the work moves to a task of its own ([`Permit::into_owned`]); the `erlmcp_admission` actor ([`crate::admission::actor`]) owns the
//! memory sampling and the shedding log, never the request path.

pub(crate) mod actor;
pub mod rate;

use crate::metrics::{METHODS, Transport, method_index};
use crate::protocol::jsonrpc::RpcError;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Rate-limit refusals, logged at most once a second.
static RATE_REFUSALS: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::per_second();

/// JSON-RPC code of a shed request: the implementation-defined server error range.
pub const OVERLOADED: i32 = -32000;

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShedReason {
    /// Too many requests in progress on the node.
    Queue,
    /// Too many requests of this method in progress.
    MethodLimit,
    /// The node is over its memory limit.
    Memory,
    /// The client is over its rate limit (`[rate_limit]`, [`rate`]).
    RateLimit,
}

impl ShedReason {
    /// Every reason, in the order of the shed counters.
    pub const ALL: [ShedReason; 4] = [
        Self::Queue,
        Self::MethodLimit,
        Self::Memory,
        Self::RateLimit,
    ];

    /// The name used in errors, metrics and the shell.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::MethodLimit => "method_limit",
            Self::Memory => "memory",
            Self::RateLimit => "rate_limit",
        }
    }
}

/// A request the node did not take: answer it with [`Shed::to_rpc_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// Why.
    pub reason: ShedReason,
    /// When the client may try again, in milliseconds.
    pub retry_after_ms: u64,
}

impl Shed {
    /// The one answer a shed request gets: -32000 `server overloaded`, with `retryAfterMs` and
    /// the reason in `data`.
    pub fn to_rpc_error(&self) -> RpcError {
        let message = match self.reason {
            ShedReason::RateLimit => "rate limited",
            _ => "server overloaded",
        };
        let mut error = RpcError::new(OVERLOADED, message);
        error.data = Some(serde_json::json!({
            "retryAfterMs": self.retry_after_ms,
            "reason": self.reason.as_str(),
        }));
        error
    }

    /// `Retry-After` in whole seconds (HTTP's unit), rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

/// How the admission point is set up (from `[queue]` and `memory_limit` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionSettings {
    /// Whether requests pass the admission point at all (`queue.enabled`; off: nothing is
    /// counted or shed, for benchmarks of its cost).
    pub enabled: bool,
    /// Most requests in progress the queue accounts for (`queue.capacity`).
    pub capacity: usize,
    /// Share of `capacity` above which new work is shed (`queue.shed_at`, 0 < x ≤ 1).
    pub shed_at: f64,
    /// `retryAfterMs` of a shed answer (`queue.retry_after`).
    pub retry_after_ms: u64,
    /// Per-method limits of requests in progress (`[queue.methods]`).
    pub method_limits: Vec<(String, usize)>,
    /// The memory guard's limit in bytes (`memory_limit`; 0: off).
    pub memory_limit: u64,
    /// The guard clears below `memory_limit × memory_clear_percent / 100`.
    pub memory_clear_percent: u64,
    /// The rate limits per client (`[rate_limit]`).
    pub rate: rate::RateSettings,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 10_000,
            shed_at: 0.9,
            retry_after_ms: 1000,
            method_limits: Vec::new(),
            memory_limit: 0,
            memory_clear_percent: 80,
            rate: rate::RateSettings::default(),
        }
    }
}

struct MethodLimit {
    method: Box<str>,
    limit: usize,
    in_progress: AtomicUsize,
}

/// Whether the node is over its memory limit: set by the memory guard's sampling (the
/// `erlmcp_admission` actor), read by every request with one atomic load.
#[derive(Debug)]
pub struct MemoryGuard {
    limit: u64,
    clear_below: u64,
    over: AtomicBool,
    last_rss: AtomicU64,
    trips: AtomicU64,
}

impl MemoryGuard {
    fn new(limit: u64, clear_percent: u64) -> Self {
        Self {
            limit,
            clear_below: limit / 100 * clear_percent.min(100),
            over: AtomicBool::new(false),
            last_rss: AtomicU64::new(0),
            trips: AtomicU64::new(0),
        }
    }

    /// Whether the guard is on (`memory_limit` > 0).
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Whether the node sheds for memory now.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Takes one reading of the node's memory; returns the change of state, if any (`Some(true)`:
    /// the limit was just passed; `Some(false)`: memory just fell below the clear line).
    pub fn observe(&self, rss: u64) -> Option<bool> {
        self.last_rss.store(rss, Ordering::Relaxed);
        if !self.enabled() {
            return None;
        }
        let over = self.over();
        if !over && rss > self.limit {
            self.over.store(true, Ordering::Relaxed);
            self.trips.fetch_add(1, Ordering::Relaxed);
            Some(true)
        } else if over && rss < self.clear_below {
            self.over.store(false, Ordering::Relaxed);
            Some(false)
        } else {
            None
        }
    }

    /// The limit in bytes (0: off).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The line below which the guard clears, in bytes.
    pub fn clear_below(&self) -> u64 {
        self.clear_below
    }
}

/// The node's admission point. Shared (in an `Arc`) by every transport's dispatcher; entering
/// and leaving take no lock.
pub struct Admission {
    enabled: bool,
    capacity: usize,
    shed_at: usize,
    retry_after_ms: u64,
    counts: Counts,
    peak: AtomicUsize,
    limits: Box<[MethodLimit]>,
    memory: MemoryGuard,
    rate: Arc<rate::RateLimits>,
    /// Shed counts by method × transport × reason (see [`Admission::shed_counts`]).
    shed: Box<[AtomicU64]>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("capacity", &self.capacity)
            .field("shed_at", &self.shed_at)
            .field("in_progress", &self.in_progress())
            .finish_non_exhaustive()
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(&AdmissionSettings::default())
    }
}

/// Requests in progress and requests admitted since start, in one word so that entering is one
/// atomic add and leaving one atomic subtract: the low [`Counts::IN_PROGRESS_BITS`] bits count
/// the requests in progress (capacity is capped below their range), the high bits those
/// admitted; when the high bits wrap (after 2^40 ≈ 1.1 × 10^12 requests), `wraps` counts it, so
/// the admitted total never goes back.
#[derive(Debug, Default)]
struct Counts {
    word: AtomicU64,
    wraps: AtomicU64,
}

impl Counts {
    const IN_PROGRESS_BITS: u32 = 24;
    const IN_PROGRESS_MASK: u64 = (1 << Self::IN_PROGRESS_BITS) - 1;
    const ADMITTED_BITS: u32 = 64 - Self::IN_PROGRESS_BITS;
    const ADMITTED_MAX: u64 = (1 << Self::ADMITTED_BITS) - 1;
    /// One request more in progress and admitted.
    const ENTER: u64 = (1 << Self::IN_PROGRESS_BITS) + 1;

    /// Counts one request in and admitted; returns how many were in progress before it.
    fn enter(&self) -> usize {
        let before = self.word.fetch_add(Self::ENTER, Ordering::AcqRel);
        if before >> Self::IN_PROGRESS_BITS == Self::ADMITTED_MAX {
            self.wraps.fetch_add(1, Ordering::Relaxed);
        }
        (before & Self::IN_PROGRESS_MASK) as usize
    }

    /// Takes back an `enter` whose request was then shed.
    fn undo_enter(&self) {
        let before = self.word.fetch_sub(Self::ENTER, Ordering::AcqRel);
        if before >> Self::IN_PROGRESS_BITS == 0 {
            self.wraps.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// One request left (answered, cancelled or failed).
    fn leave(&self) {
        self.word.fetch_sub(1, Ordering::AcqRel);
    }

    fn in_progress(&self) -> usize {
        (self.word.load(Ordering::Relaxed) & Self::IN_PROGRESS_MASK) as usize
    }

    fn admitted(&self) -> u64 {
        let word = self.word.load(Ordering::Relaxed);
        (self.wraps.load(Ordering::Relaxed) << Self::ADMITTED_BITS)
            | (word >> Self::IN_PROGRESS_BITS)
    }
}

/// The most requests in progress the queue accounts for: below what [`Counts`] can count, with
/// room for the `initialize` and `ping` requests admitted past the line.
pub const MAX_CAPACITY: usize = 1 << 20;

fn shed_slot(method: usize, transport: Transport, reason: ShedReason) -> usize {
    (method * Transport::ALL.len() + transport as usize) * ShedReason::ALL.len() + reason as usize
}

/// One kind of shed request and how many since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShedCount {
    /// The method (`other` for methods not counted one by one).
    pub method: &'static str,
    /// The transport it came on.
    pub transport: &'static str,
    /// Why it was shed.
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

/// The admission point's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmissionStats {
    /// Most requests in progress the queue accounts for.
    pub capacity: usize,
    /// Requests in progress above which new work is shed.
    pub shed_at: usize,
    /// Requests in progress now.
    pub in_progress: usize,
    /// Most requests in progress at once since start.
    pub peak: usize,
    /// Requests admitted since start.
    pub admitted: u64,
    /// Requests shed since start, all kinds.
    pub shed_total: u64,
    /// Shed requests by method, transport and reason (only kinds seen).
    pub shed: Vec<ShedCount>,
    /// Per-method limits: method, limit, in progress now.
    pub method_limits: Vec<(String, usize, usize)>,
    /// The memory guard: limit in bytes (0: off), clear line, last reading, whether over now,
    /// times it tripped since start.
    pub memory_limit: u64,
    /// The memory guard's clear line, bytes.
    pub memory_clear_below: u64,
    /// The memory guard's last reading (resident memory), bytes.
    pub memory_rss: u64,
    /// Whether the node sheds for memory now.
    pub memory_over: bool,
    /// Times the memory guard tripped since start.
    pub memory_trips: u64,
}

impl Admission {
    /// An admission point with `settings`.
    pub fn new(settings: &AdmissionSettings) -> Self {
        let capacity = settings.capacity.clamp(1, MAX_CAPACITY);
        let shed_at = ((capacity as f64 * settings.shed_at).floor() as usize).clamp(1, capacity);
        Self {
            enabled: settings.enabled,
            capacity,
            shed_at,
            retry_after_ms: settings.retry_after_ms,
            counts: Counts::default(),
            peak: AtomicUsize::new(0),
            limits: settings
                .method_limits
                .iter()
                .map(|(method, limit)| MethodLimit {
                    method: method.as_str().into(),
                    limit: *limit,
                    in_progress: AtomicUsize::new(0),
                })
                .collect(),
            memory: MemoryGuard::new(settings.memory_limit, settings.memory_clear_percent),
            rate: Arc::new(rate::RateLimits::new(&settings.rate)),
            shed: (0..METHODS.len() * Transport::ALL.len() * ShedReason::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Admits one request of `method` that came on `transport`, or sheds it. The permit gives
    /// its place back when dropped; it borrows `self` ([`Permit::into_owned`] for work that
    /// outlives the borrow).
    pub fn try_enter(
        self: &Arc<Self>,
        method: &str,
        transport: Transport,
    ) -> Result<Permit<'_>, Shed> {
        let never_for_load = matches!(method, "initialize" | "ping");
        if self.memory.over() && method != "ping" {
            return Err(self.shed(method, transport, ShedReason::Memory));
        }
        let mut limit = None;
        if !self.limits.is_empty()
            && let Some(i) = self.limits.iter().position(|l| *l.method == *method)
        {
            let gate = &self.limits[i];
            if gate.in_progress.fetch_add(1, Ordering::AcqRel) >= gate.limit && !never_for_load {
                gate.in_progress.fetch_sub(1, Ordering::AcqRel);
                return Err(self.shed(method, transport, ShedReason::MethodLimit));
            }
            limit = Some(i);
        }
        let before = self.counts.enter();
        if before >= self.shed_at && !never_for_load {
            self.counts.undo_enter();
            if let Some(i) = limit {
                self.limits[i].in_progress.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(self.shed(method, transport, ShedReason::Queue));
        }
        if before >= self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(before + 1, Ordering::Relaxed);
        }
        Ok(Permit {
            admission: Holder::Borrowed(self),
            limit,
        })
    }

    /// Whether a new session may start (HTTP asks before it creates one): not while the memory
    /// guard sheds. A refusal is counted as a shed `initialize`.
    pub fn check_new_session(&self, transport: Transport) -> Result<(), Shed> {
        if self.enabled && self.memory.over() {
            return Err(self.shed("initialize", transport, ShedReason::Memory));
        }
        Ok(())
    }

    fn shed(&self, method: &str, transport: Transport, reason: ShedReason) -> Shed {
        self.shed[shed_slot(method_index(method), transport, reason)]
            .fetch_add(1, Ordering::Relaxed);
        Shed {
            reason,
            retry_after_ms: self.retry_after_ms,
        }
    }

    /// One request of `method` from the client `keys` name, against its rate limit
    /// (`rate_limit.requests_per_second`); checked whether or not `queue.enabled`.
    pub fn check_rate(
        &self,
        method: &str,
        transport: Transport,
        keys: &[rate::RateKey],
    ) -> Result<(), Shed> {
        self.rate
            .request(keys)
            .map_err(|wait| self.rate_limited(method, transport, wait, "requests"))
    }

    /// One new session from the client `keys` name, against `rate_limit.sessions_per_minute`
    /// (counted as a rate-limited `initialize`).
    pub fn check_session_rate(
        &self,
        transport: Transport,
        keys: &[rate::RateKey],
    ) -> Result<(), Shed> {
        self.rate
            .session(keys)
            .map_err(|wait| self.rate_limited("initialize", transport, wait, "sessions"))
    }

    /// The rate limits (their connection count per address, and whether any is set).
    pub fn rate(&self) -> &Arc<rate::RateLimits> {
        &self.rate
    }

    fn rate_limited(
        &self,
        method: &str,
        transport: Transport,
        wait: std::time::Duration,
        limit: &str,
    ) -> Shed {
        let retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        if let Some(held) = RATE_REFUSALS.allow() {
            tracing::warn!(
                limit,
                method,
                transport = transport.as_str(),
                retry_after_ms,
                refused_since_last_line = held + 1,
                "client over its rate limit: refused"
            );
        }
        self.shed[shed_slot(method_index(method), transport, ShedReason::RateLimit)]
            .fetch_add(1, Ordering::Relaxed);
        Shed {
            reason: ShedReason::RateLimit,
            retry_after_ms,
        }
    }

    /// Whether requests pass the admission point (`queue.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Requests in progress now.
    pub fn in_progress(&self) -> usize {
        self.counts.in_progress()
    }

    /// Most requests in progress the queue accounts for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Requests shed since start, all kinds.
    pub fn shed_total(&self) -> u64 {
        self.shed_by(|reason| reason != ShedReason::RateLimit)
    }

    fn shed_by(&self, reason: impl Fn(ShedReason) -> bool) -> u64 {
        let reasons = ShedReason::ALL.len();
        self.shed
            .iter()
            .enumerate()
            .filter(|(slot, _)| reason(ShedReason::ALL[slot % reasons]))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The memory guard.
    pub fn memory(&self) -> &MemoryGuard {
        &self.memory
    }

    /// Shed counts by method, transport and reason; only kinds seen.
    pub fn shed_counts(&self) -> Vec<ShedCount> {
        let mut out = Vec::new();
        for (m, method) in METHODS.iter().enumerate() {
            for transport in Transport::ALL {
                for reason in ShedReason::ALL {
                    let count = self.shed[shed_slot(m, transport, reason)].load(Ordering::Relaxed);
                    if count > 0 {
                        out.push(ShedCount {
                            method,
                            transport: transport.as_str(),
                            reason: reason.as_str(),
                            count,
                        });
                    }
                }
            }
        }
        out
    }

    /// The figures now.
    pub fn stats(&self) -> AdmissionStats {
        // One read of the counters: the total is the sum of the rows it is shown beside.
        let shed = self.shed_counts();
        AdmissionStats {
            capacity: self.capacity,
            shed_at: self.shed_at,
            in_progress: self.in_progress(),
            peak: self.peak.load(Ordering::Relaxed),
            admitted: self.counts.admitted(),
            shed_total: shed.iter().map(|s| s.count).sum(),
            shed,
            method_limits: self
                .limits
                .iter()
                .map(|l| {
                    (
                        l.method.to_string(),
                        l.limit,
                        l.in_progress.load(Ordering::Relaxed),
                    )
                })
                .collect(),
            memory_limit: self.memory.limit,
            memory_clear_below: self.memory.clear_below,
            memory_rss: self.memory.last_rss.load(Ordering::Relaxed),
            memory_over: self.memory.over(),
            memory_trips: self.memory.trips.load(Ordering::Relaxed),
        }
    }
}

/// An admitted request's place; given back on drop (answer ready, task cancelled or panicked).
/// `'a` is the borrow of the admission point (`'static` once [`Permit::into_owned`]).
#[must_use = "the place is given back as soon as the permit is dropped"]
pub struct Permit<'a> {
    admission: Holder<'a>,
    limit: Option<usize>,
}

/// How a permit reaches its admission point.
enum Holder<'a> {
    Borrowed(&'a Arc<Admission>),
    Owned(Arc<Admission>),
    /// Moved into an owned permit: nothing to give back here.
    Moved,
}

impl Permit<'_> {
    /// The same place, held with a reference count of its own: for work that moves to a task
    /// of its own.
    pub fn into_owned(mut self) -> Permit<'static> {
        let admission = match std::mem::replace(&mut self.admission, Holder::Moved) {
            Holder::Borrowed(admission) => Holder::Owned(Arc::clone(admission)),
            Holder::Owned(admission) => Holder::Owned(admission),
            Holder::Moved => Holder::Moved,
        };
        Permit {
            admission,
            limit: self.limit,
        }
    }
}

impl std::fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("limit", &self.limit)
            .finish()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let admission: &Admission = match &self.admission {
            Holder::Borrowed(admission) => admission,
            Holder::Owned(admission) => admission,
            Holder::Moved => return,
        };
        admission.counts.leave();
        if let Some(i) = self.limit {
            admission.limits[i]
                .in_progress
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admitted_count_goes_on_past_the_word_it_shares() {
        let counts = Counts::default();
        counts.word.store(
            (Counts::ADMITTED_MAX << Counts::IN_PROGRESS_BITS) | 3,
            Ordering::Relaxed,
        );
        assert_eq!(counts.admitted(), Counts::ADMITTED_MAX);
        assert_eq!(counts.enter(), 3);
        assert_eq!((counts.admitted(), counts.in_progress()), (1 << 40, 4));
        counts.undo_enter();
        assert_eq!(
            (counts.admitted(), counts.in_progress()),
            (Counts::ADMITTED_MAX, 3)
        );
        counts.enter();
        counts.enter();
        counts.leave();
        assert_eq!(
            (counts.admitted(), counts.in_progress()),
            ((1 << 40) + 1, 4)
        );
    }

    fn admission(capacity: usize, shed_at: f64, limits: &[(&str, usize)]) -> Arc<Admission> {
        Arc::new(Admission::new(&AdmissionSettings {
            capacity,
            shed_at,
            retry_after_ms: 1500,
            method_limits: limits.iter().map(|(m, l)| (m.to_string(), *l)).collect(),
            ..AdmissionSettings::default()
        }))
    }

    #[test]
    fn work_is_shed_at_the_line_and_admitted_again_when_places_free() {
        let a = admission(10, 0.5, &[]);
        let permits: Vec<Permit<'_>> = (0..5)
            .map(|_| a.try_enter("tools/call", Transport::Tcp).unwrap())
            .collect();
        let shed = a.try_enter("tools/call", Transport::Tcp).unwrap_err();
        assert_eq!(shed.reason, ShedReason::Queue);
        assert_eq!(shed.retry_after_ms, 1500);
        assert_eq!(shed.retry_after_secs(), 2);
        assert_eq!(a.in_progress(), 5);
        drop(permits);
        assert_eq!(a.in_progress(), 0);
        let _again = a.try_enter("tools/call", Transport::Tcp).unwrap();
        let stats = a.stats();
        assert_eq!((stats.admitted, stats.shed_total, stats.peak), (6, 1, 5));
        assert_eq!(
            stats.shed,
            vec![ShedCount {
                method: "tools/call",
                transport: "tcp",
                reason: "queue",
                count: 1
            }]
        );
    }

    #[test]
    fn initialize_and_ping_are_never_shed_for_load() {
        let a = admission(2, 0.5, &[("initialize", 0)]);
        let _held = a.try_enter("tools/list", Transport::Http).unwrap();
        assert!(a.try_enter("tools/list", Transport::Http).is_err());
        let _p = a.try_enter("ping", Transport::Http).unwrap();
        let _i = a.try_enter("initialize", Transport::Http).unwrap();
        assert_eq!(a.in_progress(), 3);
    }

    #[test]
    fn a_method_limit_sheds_that_method_only() {
        let a = admission(100, 0.9, &[("tools/call", 2)]);
        let _one = a.try_enter("tools/call", Transport::WebSocket).unwrap();
        let _two = a.try_enter("tools/call", Transport::WebSocket).unwrap();
        let shed = a.try_enter("tools/call", Transport::WebSocket).unwrap_err();
        assert_eq!(shed.reason, ShedReason::MethodLimit);
        let _other = a.try_enter("tools/list", Transport::WebSocket).unwrap();
        assert_eq!(a.in_progress(), 3);
        assert_eq!(a.stats().method_limits, vec![("tools/call".into(), 2, 2)]);
        drop(_one);
        let _three = a.try_enter("tools/call", Transport::WebSocket).unwrap();
    }

    #[test]
    fn over_the_memory_limit_new_sessions_and_work_are_shed_until_the_clear_line() {
        let a = Arc::new(Admission::new(&AdmissionSettings {
            memory_limit: 1000,
            memory_clear_percent: 80,
            ..AdmissionSettings::default()
        }));
        assert_eq!(a.memory().observe(900), None);
        assert!(a.try_enter("tools/call", Transport::Stdio).is_ok());
        assert_eq!(a.memory().observe(1001), Some(true));
        for method in ["initialize", "tools/call"] {
            let shed = a.try_enter(method, Transport::Stdio).unwrap_err();
            assert_eq!(shed.reason, ShedReason::Memory, "{method}");
        }
        assert!(a.try_enter("ping", Transport::Stdio).is_ok());
        assert_eq!(
            a.memory().observe(850),
            None,
            "above the clear line: still over"
        );
        assert!(a.memory().over());
        assert_eq!(a.memory().observe(799), Some(false));
        assert!(a.try_enter("initialize", Transport::Stdio).is_ok());
        assert_eq!(a.stats().memory_trips, 1);
    }

    #[test]
    fn a_shed_answer_says_overloaded_with_when_to_retry_and_why() {
        let error = Shed {
            reason: ShedReason::Memory,
            retry_after_ms: 250,
        }
        .to_rpc_error();
        assert_eq!(error.code, -32000);
        assert_eq!(error.message, "server overloaded");
        assert_eq!(
            error.data,
            Some(serde_json::json!({"retryAfterMs": 250, "reason": "memory"}))
        );
    }

    #[test]
    fn places_are_exact_under_concurrent_entry_and_exit() {
        let a = admission(64, 1.0, &[("tools/call", 16)]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if let Ok(p) = a.try_enter("tools/call", Transport::Tcp) {
                            drop(p);
                        }
                    }
                });
            }
        });
        let stats = a.stats();
        assert_eq!(stats.in_progress, 0);
        assert_eq!(stats.method_limits[0].2, 0);
        assert_eq!(stats.admitted + stats.shed_total, 40_000);
        assert!(stats.peak <= 16, "{stats:?}");
    }
}
