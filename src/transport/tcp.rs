//! Owns the TCP transport: the listener worker `erlmcp_tcp` (binds with the configured
//! `tcp_opts`, accepts, enforces `max_connections`) and the dynamic supervisor
//! `erlmcp_tcp_connections` whose temporary children are the connections.
//!
//! A connection beyond `max_connections` gets one JSON-RPC error line and is closed; it is
//! counted in [`crate::transport::ConnectionStats::refused`]. Under `tls.enabled` each accepted
//! stream's handshake runs in its own task before its connection actor starts
//! ([`crate::transport::tls`]); the label in the logs names the client certificate's principal.
//!
//! The listener's state holds its table of hibernated connections
//! ([`crate::transport::connection::hibernate`]): connections idle past
//! `connection_hibernate_after`, without an actor until they wake as children of
//! `erlmcp_tcp_connections` again. They close with the listener.

use crate::config::TcpOpts;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::transport::connection::hibernate::Hibernated;
use crate::transport::connection::{BoxRead, BoxWrite, ConnectionArgs, connection_template};
use crate::transport::descriptors::{AcceptGuard, RefusalPermit};
use crate::transport::{ConnectionSlot, TransportContext};
use erlmcp_supervisors::{ChildSpec, DynamicSupervisor, SupervisorRef, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::tree_names::{TCP, TCP_CONNECTIONS};

/// Where the listener bound (useful with port 0).
pub(crate) type BoundAddr = Arc<OnceLock<SocketAddr>>;

/// The two children of the TCP transport: the connection supervisor, then the listener.
pub(crate) fn tcp_children(
    addr: SocketAddr,
    opts: TcpOpts,
    ctx: TransportContext,
    bound: BoundAddr,
    intensity: (u32, Duration),
) -> [ChildSpec; 2] {
    let connections = SupervisorSpec::simple_one_for_one(connection_template())
        .named(TCP_CONNECTIONS)
        .intensity(intensity.0, intensity.1);
    [
        ChildSpec::supervisor(TCP_CONNECTIONS, connections),
        ChildSpec::named_actor(TCP, TCP, move || {
            (
                Listener,
                ListenerArgs {
                    addr,
                    opts: opts.clone(),
                    ctx: ctx.clone(),
                    bound: Arc::clone(&bound),
                },
            )
        }),
    ]
}

/// The listener actor.
pub(crate) struct Listener;

/// Listener arguments.
#[derive(Clone)]
pub(crate) struct ListenerArgs {
    addr: SocketAddr,
    opts: TcpOpts,
    ctx: TransportContext,
    bound: BoundAddr,
}

/// Listener state: the accept loop it owns, and the connections hibernating (dropped with it:
/// their sockets close).
pub(crate) struct ListenerState {
    accept: JoinHandle<()>,
    hibernated: Arc<Hibernated>,
}

fn bind(addr: SocketAddr, opts: &TcpOpts) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(opts.reuseaddr)?;
    let buffer = u32::try_from(opts.buffer).unwrap_or(u32::MAX);
    socket.set_recv_buffer_size(buffer)?;
    socket.set_send_buffer_size(buffer)?;
    socket.bind(addr)?;
    socket.listen(opts.backlog)
}

/// How long a restarted listener retries its port while the socket of the one before is
/// still being closed (its accept loop aborted, not yet dropped).
const REBIND_WAIT: Duration = Duration::from_secs(2);

/// `bind` of the address a restarted listener had (TCP's, HTTP's), retried for [`REBIND_WAIT`]
/// while it is still in use.
pub(crate) async fn bind_again<L>(
    mut bind: impl FnMut() -> std::io::Result<L>,
) -> std::io::Result<L> {
    let until = tokio::time::Instant::now() + REBIND_WAIT;
    loop {
        match bind() {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            bound => return bound,
        }
    }
}

/// A listener killed (no `post_stop`) still stops accepting: its accept loop, which owns the
/// socket, goes with its state.
impl Drop for ListenerState {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Actor for Listener {
    type Msg = ();
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: ListenerArgs,
    ) -> Result<ListenerState, ActorProcessingErr> {
        // A restart binds the port the first start got (`127.0.0.1:0` would pick another one,
        // and every client would lose the address it was given).
        let listener = match args.bound.get().copied() {
            Some(before) => bind_again(|| bind(before, &args.opts)).await,
            None => bind(args.addr, &args.opts),
        }
        .map_err(|e| format!("cannot listen on tcp {}: {e}", args.addr))?;
        let local = listener.local_addr()?;
        let _ = args.bound.set(local);
        tracing::info!(addr = %local, "tcp listening on {local}");
        let hibernated = Arc::new(Hibernated::new(args.ctx.clone(), start_woken));
        let accept = tokio::spawn(accept_loop(listener, args, Arc::downgrade(&hibernated)));
        Ok(ListenerState { accept, hibernated })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        state.accept.abort();
        tracing::info!(
            hibernating = state.hibernated.len(),
            "tcp listener stopped (its hibernating connections close)"
        );
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, args: ListenerArgs, hibernated: Weak<Hibernated>) {
    let mut guard = AcceptGuard::new("tcp", args.ctx.max_refusals);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                guard.failed(&e).await;
                continue;
            }
        };
        guard.accepted();
        let Some(slot) = ConnectionSlot::acquire(&args.ctx.stats, args.ctx.max_connections) else {
            if let Some(permit) = guard.refuse(peer, args.ctx.max_connections) {
                tokio::spawn(refuse(stream, args.ctx.max_connections, permit));
            }
            continue;
        };
        let rate = args.ctx.server.admission.rate();
        let Some(per_address) = rate.admit_connection("tcp", peer.ip()) else {
            if let Some(permit) = guard.refusal_permit() {
                let refusal = crate::admission::rate::refusal_for_lines();
                tokio::spawn(async move {
                    crate::transport::descriptors::write_and_close(stream, refusal).await;
                    drop(permit);
                });
            }
            continue;
        };
        if let Err(e) = stream.set_nodelay(args.opts.nodelay) {
            tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        match &args.ctx.tls {
            None => {
                let (reader, writer) = stream.into_split();
                let label = format!("tcp {peer}");
                start_connection(
                    Box::new(reader),
                    Box::new(writer),
                    &args.ctx,
                    label,
                    slot,
                    (peer.ip(), per_address),
                    hibernated.clone(),
                )
                .await;
            }
            // The handshake in its own task, under its deadline, holding the connection's slot:
            // a client that never finishes it holds up no other.
            Some(tls) => {
                let (tls, ctx) = (Arc::clone(tls), args.ctx.clone());
                let hibernated = hibernated.clone();
                tokio::spawn(async move {
                    let Some((stream, principal)) = tls.accept(stream, "tcp", peer).await else {
                        return;
                    };
                    let label = match principal {
                        Some(principal) => format!("tcp {peer} tls ({principal})"),
                        None => format!("tcp {peer} tls"),
                    };
                    let (reader, writer) = tokio::io::split(stream);
                    start_connection(
                        Box::new(reader),
                        Box::new(writer),
                        &ctx,
                        label,
                        slot,
                        (peer.ip(), per_address),
                        hibernated,
                    )
                    .await;
                });
            }
        }
    }
}

/// Starts the connection actor of an accepted (and, under TLS, handshaken) stream.
async fn start_connection(
    reader: BoxRead,
    writer: BoxWrite,
    ctx: &TransportContext,
    label: String,
    slot: ConnectionSlot,
    (peer, per_address): (std::net::IpAddr, crate::admission::rate::ConnectionGuard),
    hibernated: Weak<Hibernated>,
) {
    let conn = ConnectionArgs::new(reader, writer, ctx.clone(), label, Some(slot))
        .with_peer(peer, per_address)
        .hibernating_in(hibernated);
    start_child(conn).await;
}

/// Starts a hibernated connection's actor again.
fn start_woken(conn: ConnectionArgs) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(start_child(conn))
}

/// Starts a connection actor under `erlmcp_tcp_connections`; where it cannot start, its
/// arguments go, and with them its socket.
async fn start_child(conn: ConnectionArgs) {
    let Some(sup) = SupervisorRef::whereis(TCP_CONNECTIONS) else {
        tracing::error!(
            "erlmcp_tcp_connections is not running; closing {}",
            conn.label
        );
        return;
    };
    let connections = DynamicSupervisor::<ConnectionArgs>::from_ref(sup);
    if let Err(e) = connections.start_child(conn).await {
        tracing::error!(error = %e, "cannot start a connection");
    }
}

async fn refuse(mut stream: tokio::net::TcpStream, max: usize, _permit: RefusalPermit) {
    let mut line = jsonrpc::encode_error(
        None,
        &RpcError::new(
            -32000,
            format!("server busy: max_connections ({max}) reached; try again later"),
        ),
    );
    line.push(b'\n');
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&line).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
