//! Owns one client connection as an actor: its session, its reader task and its writer task.
//!
//! The reader turns bytes into frames for the dispatcher; the writer drains the outgoing queue.
//! When the reader ends (client closed, idle, oversized message, error) or the writer does (the
//! session ended — its actor failed — a write failed, or the client took no output for
//! `write_timeout`), the actor stops; its `post_stop` stops the reader, ends the session
//! (aborting its requests in flight) and lets the writer flush what is queued, bounded by a
//! timeout after which the writer is aborted. Connections are temporary children of a dynamic
//! supervisor: a closed connection is never restarted.

use crate::dispatch::Dispatcher;
use crate::log_limit::LogLimiter;
use crate::metrics::{ConnectionGauge, Transport};
use crate::outbound::Outbound;
use crate::session::{SessionHandle, start_session};
use crate::transport::lines::{FrameSource, ReadEnd, read_frames, write_frames};
use crate::transport::{ConnectionSlot, TransportContext};
use erlmcp_supervisors::{ChildTemplate, Restart, Shutdown};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A boxed read half.
pub(crate) type BoxRead = Box<dyn FrameSource>;
/// A boxed write half.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How long a closing connection waits for its queued answers to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections closed at `write_timeout`, logged at info at most once a second (debug otherwise).
static WRITE_TIMEOUTS: LogLimiter = LogLimiter::per_second();

/// Arguments of a connection. The I/O halves are taken by the first start (connections are
/// never restarted).
#[derive(Clone)]
pub(crate) struct ConnectionArgs {
    /// The byte stream, taken once.
    pub(crate) io: Arc<Mutex<Option<(BoxRead, BoxWrite)>>>,
    /// Node-wide transport context.
    pub(crate) ctx: TransportContext,
    /// For logs: `tcp 127.0.0.1:53122`, `stdio`.
    pub(crate) label: String,
    /// The `max_connections` slot this connection holds.
    pub(crate) slot: Arc<Mutex<Option<ConnectionSlot>>>,
    /// Notified when the connection has closed.
    pub(crate) closed: Option<Arc<Notify>>,
    /// The client's source address (none on stdio): its requests count against its rate limit.
    pub(crate) peer: Option<std::net::IpAddr>,
    /// The connection counted against that address, held while it lives.
    pub(crate) per_address: Arc<Mutex<Option<crate::admission::rate::ConnectionGuard>>>,
}

impl ConnectionArgs {
    /// Arguments for a new stream.
    pub(crate) fn new(
        reader: BoxRead,
        writer: BoxWrite,
        ctx: TransportContext,
        label: String,
        slot: Option<ConnectionSlot>,
    ) -> Self {
        Self {
            io: Arc::new(Mutex::new(Some((reader, writer)))),
            ctx,
            label,
            slot: Arc::new(Mutex::new(slot)),
            closed: None,
            peer: None,
            per_address: Arc::new(Mutex::new(None)),
        }
    }

    /// A connection from `peer`, counted against it by `guard`.
    pub(crate) fn with_peer(
        mut self,
        peer: std::net::IpAddr,
        guard: crate::admission::rate::ConnectionGuard,
    ) -> Self {
        self.peer = Some(peer);
        self.per_address = Arc::new(Mutex::new(Some(guard)));
        self
    }
}

/// The connection actor.
pub(crate) struct Connection;

/// Its mailbox.
#[derive(Debug)]
pub(crate) enum ConnectionMsg {
    /// The reader stopped.
    ReaderDone(String),
    /// The writer stopped: the session ended (its queue was closed) or a write failed (why).
    WriterDone(Option<std::io::Error>),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for ConnectionMsg {}

/// Its state: what it owns.
pub(crate) struct ConnectionState {
    label: String,
    session: SessionHandle,
    outbound: Outbound,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
    _slot: Option<ConnectionSlot>,
    /// Counted against the client's address while the connection lives.
    _per_address: Option<crate::admission::rate::ConnectionGuard>,
    _gauge: ConnectionGauge,
    closed: Option<Arc<Notify>>,
}

/// A connection killed (`kill` in the shell, its supervisor killed) has no `post_stop`: its state
/// is dropped instead, and with it the reader and the writer, so the socket is closed and the
/// session ended (its last handle goes) rather than left served by tasks nobody owns.
impl Drop for ConnectionState {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}

impl Actor for Connection {
    type Msg = ConnectionMsg;
    type State = ConnectionState;
    type Arguments = ConnectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ConnectionMsg>,
        args: ConnectionArgs,
    ) -> Result<ConnectionState, ActorProcessingErr> {
        let (reader, writer) = args
            .io
            .lock()
            .ok()
            .and_then(|mut io| io.take())
            .ok_or("a connection cannot be restarted: its stream is gone")?;
        let slot = args.slot.lock().ok().and_then(|mut s| s.take());
        let (outbound, queue) = Outbound::channel();
        let session = start_session(outbound.clone(), args.ctx.sessions).await?;
        let me = myself.clone();
        let write_timeout = args.ctx.limits.write_timeout;
        let writer = tokio::spawn(async move {
            let written = write_frames(writer, queue, write_timeout).await;
            let _ = me.cast(ConnectionMsg::WriterDone(written.err()));
        });
        let transport = if args.label.starts_with("stdio") {
            Transport::Stdio
        } else {
            Transport::Tcp
        };
        let dispatcher = Dispatcher::new(Arc::clone(&args.ctx.server), session.clone(), transport)
            .with_rate_keys(crate::admission::rate::keys(args.peer, None));
        let per_address = args.per_address.lock().ok().and_then(|mut g| g.take());
        let limits = args.ctx.limits;
        let me = myself.clone();
        let reader = tokio::spawn(async move {
            let mut reader = reader;
            let end: ReadEnd = read_frames(&mut *reader, &dispatcher, limits).await;
            let _ = me.cast(ConnectionMsg::ReaderDone(end.to_string()));
        });
        tracing::info!(connection = %args.label, session = %session.shared().id, "connection opened");
        let gauge = args.ctx.server.metrics.connection(transport);
        Ok(ConnectionState {
            label: args.label,
            session,
            outbound,
            reader,
            writer: Some(writer),
            _slot: slot,
            _per_address: per_address,
            _gauge: gauge,
            closed: args.closed,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnectionMsg>,
        message: ConnectionMsg,
        state: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConnectionMsg::ReaderDone(why) => {
                tracing::info!(connection = %state.label, reason = %why, "connection closing");
            }
            ConnectionMsg::WriterDone(Some(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                let queued = state.outbound.level().bytes();
                if let Some(held) = WRITE_TIMEOUTS.allow() {
                    tracing::info!(connection = %state.label, queued_bytes = queued, others_since_last_line = held, "client takes no output (write_timeout); closing");
                } else {
                    tracing::debug!(connection = %state.label, queued_bytes = queued, "client takes no output (write_timeout); closing");
                }
            }
            ConnectionMsg::WriterDone(Some(e)) => {
                tracing::info!(connection = %state.label, session = %state.session.shared().id, error = %e, "write failed; closing");
            }
            ConnectionMsg::WriterDone(None) => {
                tracing::info!(connection = %state.label, session = %state.session.shared().id, "writer stopped (session ended); closing");
            }
        }
        myself.stop(None);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ConnectionMsg>,
        state: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed, as the closing runs once: inline, its state would be held by the actor's
        // task for the connection's whole life.
        Box::pin(close(state)).await;
        Ok(())
    }
}

/// What a stopping connection does: stops reading, ends the session, lets the writer flush.
async fn close(state: &mut ConnectionState) {
    state.reader.abort();
    state.session.end().await;
    // Everything queued before this end marker is written; then the writer ends.
    state.outbound.close();
    if let Some(mut writer) = state.writer.take()
        && tokio::time::timeout(FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        // The writer holds the socket and the queue: it goes with the connection.
        writer.abort();
        tracing::info!(connection = %state.label, "answers still queued after {FLUSH_TIMEOUT:?}; dropped with the connection");
    }
    if let Some(closed) = &state.closed {
        closed.notify_waiters();
        closed.notify_one();
    }
    tracing::info!(connection = %state.label, "connection closed");
}

/// The child template of a connection supervisor: temporary, 5 s to flush on shutdown.
pub(crate) fn connection_template() -> ChildTemplate<ConnectionArgs> {
    ChildTemplate::actor("connection", |args: ConnectionArgs| (Connection, args))
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(FLUSH_TIMEOUT + Duration::from_secs(2)))
}
