//! Owns the WebSocket transport: `/ws` on the HTTP listener (subprotocol `mcp`), one JSON-RPC
//! message per text frame, one session per socket, on yawc (RFC 6455 with permessage-deflate,
//! RFC 7692, which tungstenite lacks).
//!
//! A socket whose client takes no output closes: the connection's stream fails a write that has
//! moved no byte for `write_timeout` (a slow message that keeps moving is not cut), and the
//! socket is then dropped without a closing handshake (which could not be written either).
//!
//! Per-connection buffers are kept small (an idle socket should cost kilobytes, not the 128 KiB
//! tungstenite allocates by default): a 1 KiB read buffer that grows only with traffic, and no
//! write buffer kept while idle. Messages over `max_message_size` close the socket (1009); a socket silent for the
//! idle timeout is closed; the server pings every `keep_alive`. With `http.ws_compression` (on by
//! default) a client that offers permessage-deflate gets it, and messages of 1 KiB or more are
//! sent compressed — smaller ones stay plain. No context takeover is imposed in both directions
//! (RFC 7692 lets a server), and deflate state is borrowed from one pool per process for each
//! message: a socket holds none between messages, where keeping its own would cost ~370 KiB for
//! the rest of its life once it had compressed one message. The price is a lower ratio (no
//! message refers to earlier ones), which JSON messages of 1 KiB and more hardly notice.

use super::{HttpState, check_caller};
use crate::dispatch::Dispatcher;
use crate::log_limit::LogLimiter;
use crate::metrics::Transport;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::session::start_session;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::time::Instant;
use yawc::{DeflatePool, Frame, HttpWebSocket, IncomingUpgrade, OpCode, Options, UpgradeFut};

/// Read buffer of each socket (it grows with the messages read).
pub(crate) const READ_BUFFER: usize = 1024;
/// Write buffer of each socket: none kept while idle (it grows for a frame being written).
pub(crate) const WRITE_BUFFER: usize = 0;
/// Messages this big or bigger are sent compressed when the client agreed to permessage-deflate
/// (the same line as gzip for HTTP bodies).
pub(crate) const COMPRESS_FROM: usize = 1024;

/// Sockets closed at `write_timeout`, logged at info at most once a second (debug otherwise).
static WRITE_TIMEOUTS: LogLimiter = LogLimiter::per_second();

/// Deflate state between messages, shared by every socket: sized for the messages compressed at
/// the same moment (about the worker threads), not for the sockets.
static DEFLATE_POOL: LazyLock<DeflatePool> = LazyLock::new(|| {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    DeflatePool::new(2 * workers)
});

/// `GET /ws` with an upgrade.
pub(crate) async fn upgrade(
    State(state): State<Arc<HttpState>>,
    client: Option<axum::Extension<super::ClientAddr>>,
    tls: Option<super::TlsClient>,
    headers: HeaderMap,
    ws: IncomingUpgrade,
) -> Response {
    let read = super::with_tls(&headers, tls.as_ref());
    let principal = match check_caller(&read, &state.settings).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    // Its messages count against its address and principal (the upgrade itself did, as a
    // request, in the listener).
    let rate_keys = crate::admission::rate::keys(
        client.map(|c| c.0.0),
        principal.as_deref().map(|p| p.subject.as_str()),
    );
    // A socket is a session: `rate_limit.sessions_per_minute` holds upgrades too.
    let admission = &state.ctx.server.admission;
    if admission.rate().limits_sessions()
        && let Err(shed) = admission.check_session_rate(Transport::WebSocket, &rate_keys)
    {
        return super::head_checks::too_many_requests(&shed);
    }
    let max = state.ctx.limits.max_message_size;
    let mut options = Options::default()
        .with_limits(max, max)
        .with_read_buffer_capacity(READ_BUFFER)
        .with_write_buffer_capacity(WRITE_BUFFER)
        .with_utf8();
    if state.settings.ws_compression {
        options = options
            .with_low_latency_compression()
            .server_no_context_takeover()
            .client_no_context_takeover()
            .with_deflate_pool(DEFLATE_POOL.clone())
            .with_compression_threshold(COMPRESS_FROM);
    }
    let (response, upgraded) = match ws.upgrade(options) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("websocket upgrade: {e}\n")).into_response();
        }
    };
    tokio::spawn(serve(upgraded, state, principal, rate_keys));
    let mut response = response.map(axum::body::Body::new);
    if offers_mcp(&headers) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mcp"),
        );
    }
    response
}

/// Why a socket closed when its client took no output.
const WRITE_TIMED_OUT: &str = "the client takes no output (write_timeout)";

/// Why a write failed: the connection's stream fails a write that moved no byte for
/// `write_timeout` ([`crate::transport::http::SlottedStream`]) with `TimedOut`.
fn write_failure(error: &yawc::WebSocketError) -> &'static str {
    match error.as_io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::TimedOut => WRITE_TIMED_OUT,
        _ => "write failed",
    }
}

/// Whether the client offered the subprotocol `mcp` (answered only then, as RFC 6455 asks).
fn offers_mcp(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim() == "mcp")
}

/// The socket's deadlines, derived from when it last heard from its client: the idle timeout
/// and the next ping.
struct Deadlines {
    idle: Option<Duration>,
    last_heard: Instant,
    next_ping: Instant,
    /// When the upgrade's access token expires (`[auth]`): the socket closes then.
    token_expires: Option<Instant>,
}

impl Deadlines {
    fn idle_at(&self) -> Option<Instant> {
        self.idle.map(|limit| self.last_heard + limit)
    }

    /// When the socket's one timer fires next.
    fn next(&self) -> Instant {
        let next = self
            .idle_at()
            .map_or(self.next_ping, |at| at.min(self.next_ping));
        self.token_expires.map_or(next, |at| at.min(next))
    }
}

/// When a token expiring at `exp` (unix seconds) expires, on the monotonic clock.
fn expiry(exp: u64) -> Instant {
    let now = crate::clock::wall_ms() / 1000;
    Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

/// The socket's task, for as long as it is open. Its future is what an idle socket costs, so
/// what is awaited once (the upgrade, starting the session) and what handling a frame needs are
/// boxed, and the socket is held in one place only.
/// `principal`: who the upgrade's token stood for, for the life of the socket; `rate_keys`: what
/// its messages count against.
async fn serve(
    upgrade: UpgradeFut,
    state: Arc<HttpState>,
    principal: Option<Arc<crate::auth::Principal>>,
    rate_keys: smallvec::SmallVec<[crate::admission::rate::RateKey; 2]>,
) {
    let mut socket: HttpWebSocket = match Box::pin(upgrade).await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::info!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let (outbound, mut queue) = Outbound::channel();
    // The futures awaited below are boxed: an idle socket's task is as big as the biggest state
    // across its awaits, and handling a frame (the dispatcher) is by far the biggest.
    let session = match Box::pin(start_session(outbound, state.ctx.sessions)).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a websocket session");
            return;
        }
    };
    let server = &state.ctx.server;
    let token_expires = principal.as_ref().and_then(|p| p.expires_at).map(expiry);
    let dispatcher = Dispatcher::new(Arc::clone(server), session.clone(), Transport::WebSocket)
        .with_principal(principal)
        .with_rate_keys(rate_keys);
    let _gauge = server.metrics.connection(Transport::WebSocket);
    let keep_alive = state.settings.keep_alive;
    let write_timeout = state.ctx.limits.write_timeout;
    let now = Instant::now();
    let mut deadlines = Deadlines {
        idle: state.ctx.limits.idle_timeout,
        last_heard: now,
        next_ping: now + keep_alive,
        token_expires,
    };
    // One timer for pings and the idle timeout; a frame only moves `last_heard`, and the timer,
    // when it fires, works out what is due and when to fire next.
    let timer = tokio::time::sleep_until(deadlines.next());
    tokio::pin!(timer);
    // Why the loop ended, and whether the peer ended it (then yawc already owes it a close).
    let (reason, peer_ended) = loop {
        tokio::select! {
            // yawc answers pings and closes itself, reassembles fragments, refuses oversized
            // messages (1009) and text that is not UTF-8 (1007); the stream ends when the socket
            // does.
            incoming = socket.next() => match incoming {
                Some(frame) => {
                    deadlines.last_heard = Instant::now();
                    match frame.opcode() {
                        OpCode::Text => Box::pin(dispatcher.handle_frame(frame.payload())).await,
                        OpCode::Binary => {
                            session.shared().send(jsonrpc::encode_error(
                                None,
                                &RpcError::invalid_request("binary frames are not JSON-RPC: send text frames"),
                            ));
                        }
                        OpCode::Close => break ("client closed", true),
                        OpCode::Ping | OpCode::Pong | OpCode::Continuation => {}
                    }
                }
                None => break ("connection ended", true),
            },
            frame = queue.rx.recv() => match frame {
                Some(frame) if !frame.is_empty() => {
                    queue.level().written(1, frame.len());
                    if let Err(e) = Box::pin(socket.send(Frame::text(frame))).await {
                        break (write_failure(&e), false);
                    }
                }
                _ => break ("session ended", false),
            },
            () = &mut timer => {
                let now = Instant::now();
                if deadlines.idle_at().is_some_and(|at| now >= at) {
                    break ("idle timeout", false);
                }
                if deadlines.token_expires.is_some_and(|at| now >= at) {
                    break ("access token expired", false);
                }
                if now >= deadlines.next_ping {
                    deadlines.next_ping = now + keep_alive;
                    if let Err(e) = Box::pin(socket.send(Frame::ping(bytes::Bytes::new()))).await {
                        break (write_failure(&e), false);
                    }
                }
                timer.as_mut().reset(deadlines.next());
            }
        }
    };
    if reason == WRITE_TIMED_OUT {
        let queued = queue.level().bytes();
        if let Some(held) = WRITE_TIMEOUTS.allow() {
            tracing::info!(session = %session.shared().id, queued_bytes = queued, others_since_last_line = held, reason, "websocket closed");
        } else {
            tracing::debug!(session = %session.shared().id, queued_bytes = queued, reason, "websocket closed");
        }
        // The client takes nothing: a close frame would not get through either.
        drop(socket);
    } else {
        tracing::info!(session = %session.shared().id, reason, "websocket closed");
        if peer_ended {
            // yawc queued the close frame it owes (the echo of the peer's, or 1009 / 1007 for a
            // message it refused); reading once more writes it out.
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.next()).await;
        } else {
            let _ = tokio::time::timeout(write_timeout, Box::pin(socket.close())).await;
        }
    }
    drop(dispatcher);
    Box::pin(session.end()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn an_idle_socket_task_holds_little_beyond_its_socket() {
        // The socket's task is allocated whole for as long as the socket is open, so what it
        // holds is paid per idle connection: the socket (yawc's state) plus the loop's own
        // state, with the upgrade and frame handling boxed (they were 1.4 KB more inline).
        let socket = std::mem::size_of::<HttpWebSocket>();
        let task = future_size(serve);
        assert!(
            task <= socket + 1024,
            "serve future {task} B, socket {socket} B"
        );
    }

    #[test]
    fn the_mcp_subprotocol_is_found_among_those_offered() {
        let mut headers = HeaderMap::new();
        assert!(!offers_mcp(&headers));
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, "chat, mcp".parse().unwrap());
        assert!(offers_mcp(&headers));
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, "mcpx".parse().unwrap());
        assert!(!offers_mcp(&headers));
    }
}
