//! Owns the request metrics every transport and the dispatcher record into: per-method request
//! and error counts and latency histograms (HdrHistogram), bytes in and out, and connections by
//! transport. Recording is a few atomic adds and one short lock per request; reading is the
//! collector's job ([`collector`]), which samples them into a bounded history, evaluates alerts,
//! and renders Prometheus text.

pub mod collector;

use crate::locks::lock;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The methods counted one by one; anything else is counted as `other`.
pub(crate) const METHODS: [&str; 14] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "other",
];

/// The slot of `method` in [`METHODS`] (`other` for the rest).
pub(crate) fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The transports whose connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// stdin/stdout.
    Stdio,
    /// Newline-delimited JSON-RPC over TCP.
    Tcp,
    /// Streamable HTTP sessions (not TCP connections: a session outlives them).
    Http,
    /// WebSocket `/ws`.
    WebSocket,
    /// Legacy HTTP+SSE `/sse`.
    LegacySse,
}

impl Transport {
    /// Every transport, in the order of [`Metrics::connections`].
    pub const ALL: [Transport; 5] = [
        Self::Stdio,
        Self::Tcp,
        Self::Http,
        Self::WebSocket,
        Self::LegacySse,
    ];

    /// Its label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Tcp => "tcp",
            Self::Http => "http",
            Self::WebSocket => "websocket",
            Self::LegacySse => "sse",
        }
    }
}

/// Counters of one method.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    /// Requests answered.
    pub(crate) requests: AtomicU64,
    /// Answers that were JSON-RPC errors.
    pub(crate) errors: AtomicU64,
    /// Latency in microseconds since the collector last drained it.
    window: Mutex<Histogram<u64>>,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 2 significant figures (1% resolution): 27 KB per histogram. Three figures
    // cost 190 KB each — 8 MB for the node's 42 histograms, measured with massif.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap_or_else(|_| {
        Histogram::new(2).unwrap_or_else(|_| unreachable!("2 significant figures are valid"))
    })
}

/// Everything recorded on the request path.
#[derive(Debug)]
pub struct Metrics {
    methods: Vec<MethodMetrics>,
    /// Bytes of client frames received.
    pub(crate) bytes_in: AtomicU64,
    /// Bytes of answers sent.
    pub(crate) bytes_out: AtomicU64,
    /// Responses from clients that matched no pending request (logged, counted, dropped).
    pub(crate) stray_responses: AtomicU64,
    /// The last change to the TLS files did not load (the `tls_reload` alert; the certificate
    /// loaded before stays in use).
    pub(crate) tls_reload_failed: std::sync::atomic::AtomicBool,
    connections: [AtomicI64; 5],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            methods: METHODS
                .iter()
                .map(|_| MethodMetrics {
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    window: Mutex::new(histogram()),
                })
                .collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            stray_responses: AtomicU64::new(0),
            tls_reload_failed: std::sync::atomic::AtomicBool::new(false),
            connections: Default::default(),
        }
    }
}

/// Decrements its transport's connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGauge {
    metrics: Arc<Metrics>,
    transport: Transport,
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.metrics.connections[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one answered request.
    pub(crate) fn record(&self, method: &str, elapsed: Duration, error: bool, bytes_out: usize) {
        let m = &self.methods[method_index(method)];
        m.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_out
            .fetch_add(bytes_out as u64, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 3_600_000_000);
        let _ = lock(&m.window).record(micros);
    }

    /// Records a received frame.
    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a connection of `transport` until the gauge is dropped.
    pub fn connection(self: &Arc<Self>, transport: Transport) -> ConnectionGauge {
        self.connections[transport as usize].fetch_add(1, Ordering::Relaxed);
        ConnectionGauge {
            metrics: Arc::clone(self),
            transport,
        }
    }

    /// Connections open now, by transport.
    pub fn connections(&self) -> Vec<(Transport, i64)> {
        Transport::ALL
            .iter()
            .map(|t| (*t, self.connections[*t as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// Per method: (name, requests, errors) since start.
    pub fn counts(&self) -> Vec<(&'static str, u64, u64)> {
        METHODS
            .iter()
            .zip(&self.methods)
            .map(|(name, m)| {
                (
                    *name,
                    m.requests.load(Ordering::Relaxed),
                    m.errors.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Takes each method's latency window (leaving it empty), for the collector.
    pub fn drain_windows(&self) -> Vec<Histogram<u64>> {
        self.methods
            .iter()
            .map(|m| {
                let mut window = lock(&m.window);
                let taken = window.clone();
                window.reset();
                taken
            })
            .collect()
    }
}

/// Latency percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50: u64,
    /// 95th percentile.
    pub(crate) p95: u64,
    /// 99th percentile.
    pub(crate) p99: u64,
    /// Largest.
    pub(crate) max: u64,
}

impl Latency {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// Connection counters shared by every listener (kept by the transports, read by the
/// collector and `remote`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub active: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused (over `max_connections`).
    pub(crate) refused: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_latency_are_counted_per_method() {
        let metrics = Metrics::default();
        metrics.record("tools/call", Duration::from_micros(10), false, 5);
        metrics.record("tools/call", Duration::from_micros(1000), true, 5);
        metrics.record("no/such", Duration::from_micros(3), false, 5);
        let counts = metrics.counts();
        assert!(counts.contains(&("tools/call", 2, 1)));
        assert!(counts.contains(&("other", 1, 0)));
        let windows = metrics.drain_windows();
        let call = Latency::of(&windows[method_index("tools/call")]);
        assert_eq!(call.count, 2);
        assert!(call.max >= 1000 && call.p50 <= 11, "{call:?}");
        assert!(metrics.drain_windows().iter().all(|w| w.is_empty()));
        assert_eq!(metrics.bytes_out.load(Ordering::Relaxed), 15);
    }

    #[test]
    fn connection_gauges_go_down_when_dropped() {
        let metrics = Arc::new(Metrics::default());
        let a = metrics.connection(Transport::Tcp);
        let _b = metrics.connection(Transport::Tcp);
        assert!(metrics.connections().contains(&(Transport::Tcp, 2)));
        drop(a);
        assert!(metrics.connections().contains(&(Transport::Tcp, 1)));
    }
}
