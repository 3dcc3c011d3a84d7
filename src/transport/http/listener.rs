//! Owns the HTTP listener's sockets: accepting (TCP_NODELAY, the connection limit in force,
//! refusals answered 503 and bounded, backoff when `accept` fails) and the accepted stream
//! itself, which holds its connection slot and cuts a write that has made no progress for
//! `write_timeout`: a client that stops reading cannot hold its connection and the answers
//! queued for it, whichever code writes them (the fast lane, hyper, an SSE stream, a WebSocket).

use crate::transport::descriptors::{AcceptGuard, RefusalPermit, answer_503_and_close};
use crate::transport::{ConnectionSlot, TransportContext};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Accepts TCP connections for the HTTP transport: TCP_NODELAY on each, the connection limit
/// enforced.
pub(crate) struct LimitedListener {
    listener: TcpListener,
    ctx: TransportContext,
    guard: AcceptGuard,
    write_timeout: Duration,
}

impl LimitedListener {
    /// Wraps a bound listener; its streams cut writes stuck for `write_timeout`.
    pub(crate) fn new(listener: TcpListener, ctx: TransportContext) -> Self {
        let guard = AcceptGuard::new("http", ctx.max_refusals);
        let write_timeout = ctx.limits.write_timeout;
        Self {
            listener,
            ctx,
            guard,
            write_timeout,
        }
    }
}

/// An accepted stream holding its connection slot, whose writes fail once stuck for the write
/// timeout.
pub(crate) struct SlottedStream {
    stream: TcpStream,
    _slot: ConnectionSlot,
    /// Counted against its source address (`rate_limit.connections_per_address`).
    _per_address: crate::admission::rate::ConnectionGuard,
    write_timeout: Duration,
    /// Armed when a write finds the socket full; disarmed by any write that makes progress.
    stuck_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl super::fast_lane::PeerWatch for SlottedStream {
    async fn peer_gone(&self) {
        let mut byte = [0u8; 1];
        match self.stream.peek(&mut byte).await {
            Ok(0) | Err(_) => {}
            // The next request is waiting: it is read after this answer, and ends nothing.
            Ok(_) => std::future::pending().await,
        }
    }

    async fn readable(&self) -> std::io::Result<()> {
        self.stream.readable().await
    }

    fn waits_without_buffer(&self) -> bool {
        true
    }
}

/// Under TLS the socket is peeked as in plain text: an end of stream (or an error) is the peer
/// gone; bytes waiting (a record: the next request, or a `close_notify` before the close) end
/// nothing, so a client that says `close_notify` before leaving is seen gone only once its
/// answer is written.
impl super::fast_lane::PeerWatch for crate::transport::tls::TlsStream<SlottedStream> {
    async fn peer_gone(&self) {
        self.get_ref().0.peer_gone().await;
    }
}

impl AsyncRead for SlottedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl SlottedStream {
    /// A write's outcome under the write deadline: one that moved bytes (or failed) disarms it;
    /// one that found the socket full arms it, and fails once it has been full for the timeout.
    fn deadline(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if polled.is_ready() {
            self.stuck_since = None;
            return polled;
        }
        self.poll_stuck(cx)
    }

    /// After a write found the socket full: fails once it has been full for the write timeout.
    fn poll_stuck<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = self.write_timeout;
        let timer = self
            .stuck_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for write_timeout ({} ms)",
                    timeout.as_millis()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for SlottedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.deadline(cx, polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.deadline(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = SlottedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    self.guard.failed(&e).await;
                    continue;
                }
            };
            self.guard.accepted();
            let Some(slot) = ConnectionSlot::acquire(&self.ctx.stats, self.ctx.max_connections)
            else {
                if let Some(permit) = self.guard.refuse(peer, self.ctx.max_connections) {
                    tokio::spawn(refuse_http(stream, self.ctx.max_connections, permit));
                }
                continue;
            };
            let rate = self.ctx.server.admission.rate();
            let Some(per_address) = rate.admit_connection("http", peer.ip()) else {
                if let Some(_permit) = self.guard.refusal_permit() {
                    let refusal = crate::admission::rate::refusal_for_http();
                    tokio::spawn(async move {
                        crate::transport::descriptors::write_and_close(stream, refusal).await;
                        drop(_permit);
                    });
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            return (
                SlottedStream {
                    stream,
                    _slot: slot,
                    _per_address: per_address,
                    write_timeout: self.write_timeout,
                    stuck_since: None,
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse_http(stream: TcpStream, max: usize, _permit: RefusalPermit) {
    let body = format!("server busy: max_connections ({max}) reached; try again later");
    answer_503_and_close(stream, body).await;
}
