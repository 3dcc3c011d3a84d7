//! Owns one client connection as an actor: its session, its reader task and its writer task.
//!
//! The reader turns bytes into frames for the dispatcher; the writer drains the outgoing queue.
//! When the reader ends (client closed, idle, oversized message, error) or the writer does (the
//! session ended — its actor failed — a write failed, or the client took no output for
//! `write_timeout`), the actor stops; its `post_stop` stops the reader, ends the session
//! (aborting its requests in flight) and lets the writer flush what is queued, bounded by a
//! timeout after which the writer is aborted. Connections are temporary children of a dynamic
//! supervisor: a closed connection is never restarted.
//!
//! A plain TCP connection with nothing read, queued or in flight for
//! `connection_hibernate_after` hibernates, as an Erlang process after `hibernate_after`: the
//! reader hands its socket half back, the writer its half and the queue, and the actor gives
//! them with the session and the slot to its listener's table of hibernated connections
//! ([`hibernate`]) and stops; a byte from the client, a frame queued (a
//! notification) or the idle deadline starts a new actor with them under the same supervisor.

use crate::dispatch::Dispatcher;
use crate::log_limit::LogLimiter;
use crate::metrics::{ConnectionGauge, Transport};
use crate::outbound::Outbound;
use crate::outbound::OutboundReceiver;
use crate::session::{SessionHandle, start_session};
use crate::transport::lines::{FrameSource, ReadEnd, read_frames, write_frames};
use crate::transport::{ConnectionSlot, TransportContext};
use erlmcp_supervisors::{ChildTemplate, Restart, Shutdown};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub(crate) mod hibernate;
use hibernate::{Asleep, Hibernated};

/// A boxed read half.
pub(crate) type BoxRead = Box<dyn FrameSource>;
/// A boxed write half.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How long a closing connection waits for its queued answers to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections closed at `write_timeout`, logged at info at most once a second (debug otherwise).
static WRITE_TIMEOUTS: LogLimiter = LogLimiter::per_second();

/// How a connection starts: on a new stream, or woken from hibernation with what it had.
pub(crate) enum Start {
    /// A new stream: a session is made for it.
    New(BoxRead, BoxWrite),
    /// A hibernated connection's parts.
    Woken(Box<Asleep>),
}

/// Arguments of a connection. What it starts with is taken by the first start (connections are
/// never restarted).
#[derive(Clone)]
pub(crate) struct ConnectionArgs {
    /// The byte stream (or a hibernated connection), taken once.
    pub(crate) io: Arc<Mutex<Option<Start>>>,
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
    /// Where the connection goes when it hibernates (its listener's table); none: it never does.
    pub(crate) hibernated: Weak<Hibernated>,
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
            io: Arc::new(Mutex::new(Some(Start::New(reader, writer)))),
            ctx,
            label,
            slot: Arc::new(Mutex::new(slot)),
            closed: None,
            peer: None,
            per_address: Arc::new(Mutex::new(None)),
            hibernated: Weak::new(),
        }
    }

    /// A hibernated connection waking.
    pub(crate) fn woken(asleep: Asleep, ctx: TransportContext, table: Weak<Hibernated>) -> Self {
        Self {
            label: asleep.parts.label.clone(),
            peer: asleep.parts.peer,
            io: Arc::new(Mutex::new(Some(Start::Woken(Box::new(asleep))))),
            ctx,
            slot: Arc::new(Mutex::new(None)),
            closed: None,
            per_address: Arc::new(Mutex::new(None)),
            hibernated: table,
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

    /// A connection that hibernates into `table` when idle.
    pub(crate) fn hibernating_in(mut self, table: Weak<Hibernated>) -> Self {
        self.hibernated = table;
        self
    }
}

/// What a connection holds apart from its tasks and its socket: kept while it hibernates.
pub(crate) struct ConnectionParts {
    /// For logs.
    pub(crate) label: String,
    /// The client's source address, for its rate limit.
    pub(crate) peer: Option<std::net::IpAddr>,
    session: SessionHandle,
    outbound: Outbound,
    _slot: Option<ConnectionSlot>,
    /// Counted against the client's address while the connection lives.
    _per_address: Option<crate::admission::rate::ConnectionGuard>,
    _gauge: ConnectionGauge,
    closed: Option<Arc<Notify>>,
}

/// The connection actor.
pub(crate) struct Connection;

/// Its mailbox.
pub(crate) enum ConnectionMsg {
    /// The reader stopped.
    ReaderDone(String),
    /// The writer stopped: the session ended (its queue was closed) or a write failed (why).
    WriterDone(Option<std::io::Error>),
    /// The reader found the connection idle (nothing read, queued or in flight for
    /// `connection_hibernate_after`) and hands its socket half back, with when the client went
    /// quiet (the idle deadline runs from there).
    Idle(BoxRead, Instant),
}

impl std::fmt::Debug for ConnectionMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReaderDone(why) => f.debug_tuple("ReaderDone").field(why).finish(),
            Self::WriterDone(e) => f.debug_tuple("WriterDone").field(e).finish(),
            Self::Idle(_, since) => f.debug_tuple("Idle").field(since).finish(),
        }
    }
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for ConnectionMsg {}

/// The writer's task: the write half and the queue back when it parks for hibernation.
type WriterTask = JoinHandle<Option<(BoxWrite, OutboundReceiver)>>;

/// Its state: what it owns.
pub(crate) struct ConnectionState {
    /// `None` once handed to hibernation.
    parts: Option<ConnectionParts>,
    reader: JoinHandle<()>,
    writer: Option<WriterTask>,
    /// Asks the writer to hand its half and the queue back.
    park: Option<oneshot::Sender<()>>,
    hibernated: Weak<Hibernated>,
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
        let start = args
            .io
            .lock()
            .ok()
            .and_then(|mut io| io.take())
            .ok_or("a connection cannot be restarted: its stream is gone")?;
        let transport = if args.label.starts_with("stdio") {
            Transport::Stdio
        } else {
            Transport::Tcp
        };
        let (parts, reader, writer, queue, quiet_since) = match start {
            Start::New(reader, writer) => {
                let (outbound, queue) = Outbound::channel();
                let session = start_session(outbound.clone(), args.ctx.sessions).await?;
                tracing::info!(connection = %args.label, session = %session.shared().id, "connection opened");
                let parts = ConnectionParts {
                    _slot: args.slot.lock().ok().and_then(|mut s| s.take()),
                    _per_address: args.per_address.lock().ok().and_then(|mut g| g.take()),
                    _gauge: args.ctx.server.metrics.connection(transport),
                    label: args.label,
                    peer: args.peer,
                    session,
                    outbound,
                    closed: args.closed,
                };
                (parts, reader, writer, queue, None)
            }
            Start::Woken(asleep) => {
                let Asleep {
                    parts,
                    reader,
                    writer,
                    queue,
                    quiet_since,
                } = *asleep;
                tracing::debug!(connection = %parts.label, "connection woke");
                (parts, reader, writer, queue, Some(quiet_since))
            }
        };
        let me = myself.clone();
        let write_timeout = args.ctx.limits.write_timeout;
        let (park, parked) = oneshot::channel();
        let writer = tokio::spawn(async move {
            match write_frames(writer, queue, write_timeout, Some(parked)).await {
                Ok(Some(halves)) => Some(halves),
                written => {
                    let _ = me.cast(ConnectionMsg::WriterDone(written.err()));
                    None
                }
            }
        });
        let dispatcher = Dispatcher::new(
            Arc::clone(&args.ctx.server),
            parts.session.clone(),
            transport,
        )
        .with_rate_keys(crate::admission::rate::keys(parts.peer, None));
        let mut limits = args.ctx.limits;
        if args.hibernated.strong_count() == 0 {
            limits.hibernate_after = None;
        }
        let me = myself.clone();
        let reader = tokio::spawn(async move {
            let mut reader = reader;
            let message = match read_frames(&mut *reader, &dispatcher, limits, quiet_since).await {
                ReadEnd::Hibernate { quiet_since } => ConnectionMsg::Idle(reader, quiet_since),
                end => ConnectionMsg::ReaderDone(end.to_string()),
            };
            let _ = me.cast(message);
        });
        Ok(ConnectionState {
            parts: Some(parts),
            reader,
            writer: Some(writer),
            park: Some(park),
            hibernated: args.hibernated,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnectionMsg>,
        message: ConnectionMsg,
        state: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        let message = match message {
            ConnectionMsg::Idle(reader, quiet_since) => {
                // Boxed, as hibernating runs once in a while.
                Box::pin(hibernate(state, reader, quiet_since)).await;
                myself.stop(None);
                return Ok(());
            }
            other => other,
        };
        let Some(parts) = &state.parts else {
            myself.stop(None);
            return Ok(());
        };
        match message {
            ConnectionMsg::Idle(..) => {}
            ConnectionMsg::ReaderDone(why) => {
                tracing::info!(connection = %parts.label, reason = %why, "connection closing");
            }
            ConnectionMsg::WriterDone(Some(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                let queued = parts.outbound.level().bytes();
                if let Some(held) = WRITE_TIMEOUTS.allow() {
                    tracing::info!(connection = %parts.label, queued_bytes = queued, others_since_last_line = held, "client takes no output (write_timeout); closing");
                } else {
                    tracing::debug!(connection = %parts.label, queued_bytes = queued, "client takes no output (write_timeout); closing");
                }
            }
            ConnectionMsg::WriterDone(Some(e)) => {
                tracing::info!(connection = %parts.label, session = %parts.session.shared().id, error = %e, "write failed; closing");
            }
            ConnectionMsg::WriterDone(None) => {
                tracing::info!(connection = %parts.label, session = %parts.session.shared().id, "writer stopped (session ended); closing");
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

/// Hands the connection to its listener's table of hibernated connections: the writer parks
/// (giving its half and the queue back once what was queued is written), then the parts go.
/// Where the writer has ended instead, or the table is gone, the connection closes as usual.
async fn hibernate(state: &mut ConnectionState, reader: BoxRead, quiet_since: Instant) {
    if let Some(park) = state.park.take() {
        let _ = park.send(());
    }
    let halves = match state.writer.take() {
        Some(writer) => writer.await.ok().flatten(),
        None => None,
    };
    let (Some((writer, queue)), Some(table)) = (halves, state.hibernated.upgrade()) else {
        return;
    };
    let Some(parts) = state.parts.take() else {
        return;
    };
    tracing::debug!(connection = %parts.label, "connection hibernating");
    table.keep(Asleep {
        parts,
        reader,
        writer,
        queue,
        quiet_since,
    });
}

/// What a stopping connection does: stops reading, ends the session, lets the writer flush.
/// Nothing once it has hibernated: its parts live on in the hibernated table.
async fn close(state: &mut ConnectionState) {
    let Some(parts) = &state.parts else {
        return;
    };
    state.reader.abort();
    parts.session.end().await;
    // Everything queued before this end marker is written; then the writer ends.
    parts.outbound.close();
    if let Some(mut writer) = state.writer.take()
        && tokio::time::timeout(FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        // The writer holds the socket and the queue: it goes with the connection.
        writer.abort();
        tracing::info!(connection = %parts.label, "answers still queued after {FLUSH_TIMEOUT:?}; dropped with the connection");
    }
    if let Some(closed) = &parts.closed {
        closed.notify_waiters();
        closed.notify_one();
    }
    tracing::info!(connection = %parts.label, "connection closed");
}

/// The child template of a connection supervisor: temporary, 5 s to flush on shutdown.
pub(crate) fn connection_template() -> ChildTemplate<ConnectionArgs> {
    ChildTemplate::actor("connection", |args: ConnectionArgs| (Connection, args))
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(FLUSH_TIMEOUT + Duration::from_secs(2)))
}
