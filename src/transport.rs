//! Owns the transports: how bytes from a client become frames for the [`crate::dispatch`]er and
//! how answers go back: newline-delimited JSON-RPC over stdio and TCP, which share one reader and
//! one writer (`lines`) and one connection actor (`connection`); Streamable HTTP, legacy SSE
//! and WebSocket, which live in [`http`]. Every connection drains a session's outgoing queue
//! ([`crate::outbound`]). TLS on the network listeners, when configured, is [`tls`]'s.

pub(crate) mod connection;
pub(crate) mod descriptors;
pub mod http;
pub(crate) mod lines;
pub(crate) mod stdio;
pub(crate) mod tcp;
pub mod tls;

pub use connection::hibernate::hibernating_connections;

use crate::dispatch::ServerContext;
use crate::session::SessionSettings;
use lines::LineLimits;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::metrics::ConnectionStats;

/// One slot of `max_connections`; frees itself when dropped.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<ConnectionStats>);

impl ConnectionSlot {
    /// Takes a slot if fewer than `max` are open.
    pub fn acquire(stats: &Arc<ConnectionStats>, max: usize) -> Option<Self> {
        let taken = stats
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if taken {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            Some(Self(Arc::clone(stats)))
        } else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every transport needs from the node.
#[derive(Clone)]
pub struct TransportContext {
    /// The dispatcher's context.
    pub(crate) server: Arc<ServerContext>,
    /// Framing limits.
    pub(crate) limits: LineLimits,
    /// How sessions run.
    pub(crate) sessions: SessionSettings,
    /// The connection limit in force, over all listeners: `max_connections`, or lower where the
    /// open-file limit allows fewer (`descriptors`).
    pub max_connections: usize,
    /// Refusals a listener answers at once past the limit (`descriptors::AcceptGuard`).
    pub max_refusals: usize,
    /// Connection counters.
    pub stats: Arc<ConnectionStats>,
    /// TLS on the network listeners (HTTP, TCP), when `tls.enabled`.
    pub(crate) tls: Option<Arc<tls::TlsServer>>,
}
