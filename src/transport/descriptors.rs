//! Owns what the process's descriptor limit means for the listeners: how many connections the
//! node can really hold, how a listener behaves when `accept` runs out of descriptors, and how
//! many refusals may be in flight at once.
//!
//! - At start the soft `RLIMIT_NOFILE` is raised to the hard one (as Go's runtime does), then
//!   the connection limit in force is the lower of `max_connections` and the descriptors left
//!   after those already open and a reserve (for plugins, log and config files, admin peers,
//!   the metrics webhook, refusals): one connection is one descriptor.
//! - Past that limit a client is refused cleanly (503 / a `-32000` line) by its listener, which
//!   needs a descriptor for a moment: refusals in flight are bounded, and a connection beyond
//!   them is closed at once, unanswered.
//! - An `accept` that fails (EMFILE, ENFILE, ENOBUFS…) backs off, doubling from 10 ms to 1 s,
//!   instead of spinning; its log line is throttled.

use crate::log_limit::LogLimiter;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Descriptors kept back from connections: at least this many…
const MIN_RESERVE: u64 = 32;
/// …or this share of the limit (1/20), whichever is more.
const RESERVE_DIVISOR: u64 = 20;

/// The descriptor limit as found at start, and the connection limit it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DescriptorBudget {
    /// The soft `RLIMIT_NOFILE` in force (after raising it to the hard limit), if known.
    pub(crate) limit: Option<u64>,
    /// Descriptors open when it was read.
    pub(crate) open: u64,
    /// Descriptors kept back from connections.
    pub(crate) reserve: u64,
}

impl DescriptorBudget {
    /// Raises the soft limit to the hard one where it is lower, then reads both and counts the
    /// descriptors open now (`/proc/self/fd`; 0 where that cannot be read).
    pub(crate) fn of_this_process() -> Self {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let found = getrlimit(Resource::Nofile);
        if let (Some(soft), Some(hard)) = (found.current, found.maximum)
            && soft < hard
        {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(error = %e, soft, hard, "cannot raise the open-file limit");
            }
        }
        let limit = getrlimit(Resource::Nofile).current;
        let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
        Self::new(limit, open)
    }

    /// The budget for a limit (`None`: unlimited) with `open` descriptors in use.
    pub(crate) fn new(limit: Option<u64>, open: u64) -> Self {
        let reserve = limit.map_or(MIN_RESERVE, |l| (l / RESERVE_DIVISOR).max(MIN_RESERVE));
        Self {
            limit,
            open,
            reserve,
        }
    }

    /// Connections the descriptors allow (`usize::MAX` without a limit).
    pub(crate) fn connections(&self) -> usize {
        match self.limit {
            None => usize::MAX,
            Some(limit) => {
                let left = limit.saturating_sub(self.open + self.reserve).max(1);
                usize::try_from(left).unwrap_or(usize::MAX)
            }
        }
    }

    /// The connection limit in force for a configured `max_connections`: the lower of the two.
    /// Logged once, with both numbers, when the descriptors are the lower.
    pub(crate) fn effective_max_connections(&self, configured: usize) -> usize {
        let allowed = self.connections();
        if allowed < configured {
            tracing::warn!(
                max_connections = configured,
                effective = allowed,
                open_file_limit = self.limit,
                open_now = self.open,
                reserve = self.reserve,
                "max_connections ({configured}) is above what the open-file limit allows: \
                 {allowed} connections will be accepted at once, the rest refused"
            );
        }
        allowed.min(configured)
    }

    /// Refusals allowed in flight at once: half the reserve.
    pub(crate) fn refusals(&self) -> usize {
        usize::try_from(self.reserve / 2)
            .unwrap_or(usize::MAX)
            .max(1)
    }
}

/// What a listener shares with its accept loop: backoff and throttled lines for failed accepts,
/// and the bound on refusals in flight.
#[derive(Debug)]
pub(crate) struct AcceptGuard {
    /// The listener's name in logs (`http`, `tcp`, `admin-http`).
    name: &'static str,
    /// The current backoff after a failed accept (zero after a good one).
    backoff: Duration,
    failures: LogLimiter,
    refused: LogLimiter,
    refusing: Arc<AtomicUsize>,
    max_refusing: usize,
}

/// The first backoff after a failed accept, and the most it grows to.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl AcceptGuard {
    /// A guard for one listener, allowing `max_refusing` refusals in flight.
    pub(crate) fn new(name: &'static str, max_refusing: usize) -> Self {
        Self {
            name,
            backoff: Duration::ZERO,
            failures: LogLimiter::per_second(),
            refused: LogLimiter::per_second(),
            refusing: Arc::new(AtomicUsize::new(0)),
            max_refusing: max_refusing.max(1),
        }
    }

    /// After a failed `accept`: logs it (throttled) and waits, longer after each failure in a
    /// row, so that a process out of descriptors does not spin.
    pub(crate) async fn failed(&mut self, error: &std::io::Error) {
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        if let Some(held) = self.failures.allow() {
            tracing::warn!(
                listener = self.name,
                %error,
                not_logged = held,
                backoff_ms = self.backoff.as_millis() as u64,
                "accept failed ({held} more since the last such line); backing off"
            );
        }
        tokio::time::sleep(self.backoff).await;
    }

    /// After a good `accept`.
    pub(crate) fn accepted(&mut self) {
        self.backoff = Duration::ZERO;
    }

    /// A connection over the limit: logs it (throttled) and returns a permit to answer it, or
    /// `None` when too many refusals are in flight already (close it unanswered).
    pub(crate) fn refuse(&self, peer: std::net::SocketAddr, max: usize) -> Option<RefusalPermit> {
        if let Some(held) = self.refused.allow() {
            tracing::warn!(
                listener = self.name,
                %peer,
                max_connections = max,
                not_logged = held,
                "refusing connections: the connection limit ({max}) is reached \
                 ({held} more refused since the last such line)"
            );
        }
        self.refusal_permit()
    }

    /// A place for one refusal in flight, or `None` when all are taken (close the connection
    /// unanswered). For listeners that log their refusals in their own words.
    pub(crate) fn refusal_permit(&self) -> Option<RefusalPermit> {
        let taken = self
            .refusing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_refusing).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| RefusalPermit(Arc::clone(&self.refusing)))
    }
}

/// One refusal in flight; frees its place when dropped.
#[derive(Debug)]
pub(crate) struct RefusalPermit(Arc<AtomicUsize>);

impl Drop for RefusalPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers an HTTP connection refused at accept with 503 and `body`, then closes it, all within
/// a second: what the client sent is read and dropped (up to 64 KiB) until it closes, since a
/// socket closed with its request unread is reset, and the client could lose the answer.
pub(crate) async fn answer_503_and_close(stream: tokio::net::TcpStream, body: String) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    write_and_close(stream, response.into_bytes()).await;
}

/// Writes `bytes` (a whole refusal) and closes, reading and dropping what the client still
/// sends for a moment so that the refusal is not lost to a reset; one second at most.
pub(crate) async fn write_and_close(mut stream: tokio::net::TcpStream, response: Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_what_the_limit_leaves_after_open_files_and_a_reserve() {
        let budget = DescriptorBudget::new(Some(20_000), 40);
        assert_eq!(budget.reserve, 1_000);
        assert_eq!(budget.connections(), 20_000 - 40 - 1_000);
        assert_eq!(budget.effective_max_connections(50_000), 18_960);
        assert_eq!(
            budget.effective_max_connections(100),
            100,
            "a lower config wins"
        );
        let small = DescriptorBudget::new(Some(256), 20);
        assert_eq!(small.reserve, MIN_RESERVE);
        assert_eq!(small.connections(), 256 - 20 - 32);
        assert_eq!(small.refusals(), 16);
        let starved = DescriptorBudget::new(Some(30), 20);
        assert_eq!(starved.connections(), 1, "never zero");
        assert_eq!(
            DescriptorBudget::new(None, 5).connections(),
            usize::MAX,
            "no limit"
        );
    }

    #[test]
    fn refusals_in_flight_are_bounded_and_freed() {
        let guard = AcceptGuard::new("test", 2);
        let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let first = guard.refuse(peer, 1).expect("a first refusal");
        let _second = guard.refuse(peer, 1).expect("a second");
        assert!(guard.refuse(peer, 1).is_none(), "a third waits for none");
        drop(first);
        assert!(
            guard.refuse(peer, 1).is_some(),
            "a freed place is taken again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_doubling_up_to_a_second() {
        let mut guard = AcceptGuard::new("test", 1);
        let error = std::io::Error::from_raw_os_error(24);
        let mut waits = Vec::new();
        for _ in 0..9 {
            let before = tokio::time::Instant::now();
            guard.failed(&error).await;
            waits.push(before.elapsed().as_millis());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        guard.accepted();
        let before = tokio::time::Instant::now();
        guard.failed(&error).await;
        assert_eq!(before.elapsed().as_millis(), 10, "a good accept resets it");
    }
}
