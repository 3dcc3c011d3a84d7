//! Owns the admin channel of a running node — what `erlmcp remote` and `erlmcp plugin` talk to —
//! and its HTTP side (`/metrics`, the dashboard).
//!
//! ```text
//! erlmcp_observability_sup
//! ├── erlmcp_metrics             the collector (crate::metrics::collector)
//! ├── erlmcp_admin_connections   simple_one_for_one: one temporary actor per admin connection
//! ├── erlmcp_admin               the listener: Unix socket <node>.sock (0600) [+ loopback TCP]
//! └── erlmcp_admin_http          /metrics, the dashboard and its live feed     [admin.http]
//! ```
//!
//! Rules kept here (pinned by `tests/it/remote_shell_and_metrics.rs`):
//! - No command runs before the peer proved it knows the cookie ([`cookie`]); a wrong proof is
//!   answered `{"ok":false}`, logged with the peer, and the connection closed.
//! - The socket lives in a 0700 directory and is itself 0600. A live node already listening on
//!   the same name keeps its socket: the new node serves MCP without an admin socket and says so
//!   in its log (several `erlmcp start --stdio` spawned by clients must not fail on a name).
//! - The TCP listener, when configured, binds loopback addresses only (and the configuration
//!   refuses any other `admin.tcp`), unless `tls.enabled`: then it speaks TLS (each handshake
//!   in its own task under `tls.handshake_timeout`, a client certificate required when
//!   `tls.client_ca` is set) and may bind any address.
//! - A bad line or an unknown command gets a failed reply; the connection stays open.
//! - Bounds (pinned by `tests/it/hardening_admin_lines_and_cookie_file.rs`): the handshake must end
//!   within `AUTH_TIMEOUT` of the connection; lines are at most `limits::MAX_AUTH_LINE`
//!   before it and `limits::MAX_ADMIN_LINE` after it — a longer one gets a failed reply and
//!   the connection is closed; an authenticated peer silent for `idle_timeout` between commands
//!   is disconnected, and so is one that leaves a reply unread for `write_timeout`. At most
//!   `limits::ADMIN_MAX_CONNECTIONS` admin connections are open at once (socket and TCP
//!   together); the next is told `{"ok":false,"error":"too many admin connections …"}` instead
//!   of a hello, and closed.

pub mod commands;
pub mod cookie;
pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod prometheus;
pub mod protocol;

use crate::config::Config;
use crate::log_limit::LogLimiter;
use crate::metrics::ConnectionStats;
use crate::metrics::collector::MetricsHub;
use crate::plugin_host::PluginHost;
use crate::registry::RegistryHandle;
use crate::transport::descriptors::AcceptGuard;
use commands::{Outcome, run};
use erlmcp_supervisors::{ChildTemplate, DynamicSupervisor, Restart, Shutdown, SupervisorRef};
use futures::StreamExt;
use limits::{ADMIN_MAX_CONNECTIONS, LineError, LineReader, MAX_ADMIN_LINE, MAX_AUTH_LINE};
use protocol::{Hello, PeerMessage, Proof, Reply, Welcome};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::tree_names::ADMIN_CONNECTIONS;
/// How long a peer has to prove the cookie, from its connection to its proof.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// What admin commands read and steer.
pub struct AdminContext {
    /// The node's name.
    pub(crate) node: String,
    /// The cookie peers must prove.
    pub(crate) cookie: String,
    /// The effective configuration.
    pub(crate) config: Config,
    /// What is served.
    pub(crate) registry: RegistryHandle,
    /// Plugins.
    pub(crate) plugins: Arc<PluginHost>,
    /// Metrics and alerts.
    pub(crate) hub: Arc<MetricsHub>,
    /// Socket counters.
    pub(crate) stats: Arc<ConnectionStats>,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

type BoxedRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An accepted admin peer: its halves, boxed, and a name for the logs.
fn accepted(
    read: impl AsyncRead + Send + Unpin + 'static,
    write: impl AsyncWrite + Send + Unpin + 'static,
    peer: String,
) -> (BoxedRead, BoxedWrite, String) {
    (Box::new(read), Box::new(write), peer)
}

async fn write_line<T: serde::Serialize>(out: &mut BoxedWrite, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await
}

/// The peer's lines.
type Lines = LineReader<BufReader<BoxedRead>>;

/// Refused admin peers (a wrong cookie, a handshake past its deadline), logged at a bounded rate.
static REFUSALS: LogLimiter = LogLimiter::per_second();

/// Refusals answered at once past the admin connection cap; beyond them a peer is closed unanswered.
const ADMIN_REFUSALS_IN_FLIGHT: usize = 16;

/// The challenge and the proof, within [`AUTH_TIMEOUT`]: whether the peer proved the cookie.
async fn authenticate(ctx: &AdminContext, input: &mut Lines, out: &mut BoxedWrite) -> bool {
    let challenge = match cookie::random_hex(32) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "admin: cannot make a challenge");
            return false;
        }
    };
    let hello = Hello {
        erlmcp: protocol::PROTOCOL.to_owned(),
        node: ctx.node.clone(),
        challenge: challenge.clone(),
    };
    let handshake = async {
        write_line(out, &hello).await.ok()?;
        input.next_line().await.ok().flatten()
    };
    let proof = tokio::time::timeout(AUTH_TIMEOUT, handshake)
        .await
        .ok()
        .flatten();
    proof.is_some_and(|line| proof_verifies(&ctx.cookie, &challenge, &line))
}

/// Whether a peer's proof line (`{"response":"<hex>"}`) answers `challenge` for `cookie`.
pub(crate) fn proof_verifies(cookie: &str, challenge: &str, line: &str) -> bool {
    serde_json::from_str::<Proof>(line)
        .is_ok_and(|p| cookie::verify(cookie, challenge, p.response.trim()))
}

/// Serves one admin connection: the challenge, then commands until the peer leaves, sends a
/// line longer than [`MAX_ADMIN_LINE`], stays silent past `idle_timeout` between commands, or
/// leaves a reply unread past `write_timeout`.
async fn serve(ctx: Arc<AdminContext>, read: BoxedRead, mut out: BoxedWrite, peer: String) {
    let mut lines = LineReader::new(BufReader::new(read), MAX_AUTH_LINE);
    if !authenticate(&ctx, &mut lines, &mut out).await {
        if let Some(refused) = REFUSALS.allow().map(|held| held + 1) {
            tracing::warn!(peer = %peer, refused, "admin connection refused: wrong or missing cookie proof (refusals since the last such line: {refused})");
        }
        let welcome = Welcome {
            ok: false,
            error: Some("authentication failed: wrong cookie".to_owned()),
        };
        let _ = tokio::time::timeout(AUTH_TIMEOUT, write_line(&mut out, &welcome)).await;
        return;
    }
    tracing::info!(peer = %peer, "admin connection authenticated");
    lines.set_max(MAX_ADMIN_LINE);
    let mut out = TimedWriter {
        out,
        limit: ctx.config.write_timeout(),
    };
    if out
        .send(&Welcome {
            ok: true,
            error: None,
        })
        .await
        .is_err()
    {
        return;
    }
    let idle = ctx.config.idle_timeout();
    loop {
        let next = match idle {
            Some(limit) => match tokio::time::timeout(limit, lines.next_line()).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::info!(peer = %peer, "admin connection closed: idle past idle_timeout");
                    return;
                }
            },
            None => lines.next_line().await,
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Io(_)) => return,
            Err(e) => return out.refuse_line(&peer, &e, &mut lines).await,
        };
        let (id, command) = match serde_json::from_str::<PeerMessage>(&line) {
            Ok(PeerMessage::Command { id, command }) => (id, command),
            Ok(PeerMessage::Cancel { .. }) => continue,
            Err(e) => {
                let reply = failed_reply(0, format!("bad request: {e}"));
                if out.send(&reply).await.is_err() {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(peer = %peer, command = %command, "admin command");
        match run(&ctx, &command).await {
            Outcome::Done(answer) => {
                let reply = Reply {
                    id,
                    ok: answer.ok,
                    text: answer.text,
                    data: answer.data,
                    more: false,
                };
                if out.send(&reply).await.is_err() {
                    return;
                }
            }
            Outcome::Stream(mut answers) => {
                // `next_line` is cancel-safe: a line half read when an answer wins the select
                // is finished by the next call.
                let ended = loop {
                    tokio::select! {
                        next = answers.next() => match next {
                            Some(answer) => {
                                let reply = Reply { id, ok: answer.ok, text: answer.text, data: answer.data, more: true };
                                if out.send(&reply).await.is_err() {
                                    return;
                                }
                            }
                            None => break true,
                        },
                        read = lines.next_line() => match read {
                            Ok(Some(line)) => {
                                if matches!(serde_json::from_str::<PeerMessage>(&line), Ok(PeerMessage::Cancel { cancel }) if cancel == id) {
                                    break true;
                                }
                            }
                            Ok(None) | Err(LineError::Io(_)) => break false,
                            Err(e) => return out.refuse_line(&peer, &e, &mut lines).await,
                        },
                    }
                };
                if !ended {
                    return;
                }
                let done = Reply {
                    id,
                    ok: true,
                    text: String::new(),
                    data: serde_json::Value::Null,
                    more: false,
                };
                if out.send(&done).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The write half of an authenticated connection: a reply the peer leaves unread past
/// `write_timeout` ends the connection.
struct TimedWriter {
    out: BoxedWrite,
    limit: Duration,
}

impl TimedWriter {
    /// Writes a reply; fails only when the peer takes no byte of it for the write timeout (a
    /// large reply read slowly but steadily is not cut).
    async fn send<T: serde::Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        crate::transport::lines::write_moving(&mut self.out, &line, self.limit).await
    }

    /// Answers a line that could not be taken (too long, not text) and ends the connection,
    /// reading on for up to a second first so that the answer is not lost: a TCP socket closed
    /// with unread input resets the connection, and the peer may lose what was sent to it.
    async fn refuse_line(&mut self, peer: &str, error: &LineError, lines: &mut Lines) {
        if let Some(refused) = REFUSALS.allow().map(|held| held + 1) {
            tracing::warn!(peer = %peer, refused, "admin connection closed: {error}");
        }
        let _ = self
            .send(&failed_reply(0, format!("{error}: closing the connection")))
            .await;
        let _ = self.out.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), lines.drain(MAX_ADMIN_LINE)).await;
    }
}

fn failed_reply(id: u64, text: String) -> Reply {
    Reply {
        id,
        ok: false,
        data: serde_json::json!({ "error": text }),
        text,
        more: false,
    }
}

/// One admin connection as an actor: its task serves the protocol; the actor ends with it.
pub struct AdminConnection;

/// Arguments of an admin connection; the stream is taken by the first start.
#[derive(Clone)]
pub struct AdminConnectionArgs {
    io: Arc<Mutex<Option<(BoxedRead, BoxedWrite, OwnedSemaphorePermit)>>>,
    ctx: Arc<AdminContext>,
    peer: String,
}

/// An admin connection's mailbox.
#[derive(Debug)]
pub enum AdminConnectionMsg {
    /// The peer left.
    Done,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for AdminConnectionMsg {}

impl Actor for AdminConnection {
    type Msg = AdminConnectionMsg;
    type State = JoinHandle<()>;
    type Arguments = AdminConnectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AdminConnectionMsg>,
        args: AdminConnectionArgs,
    ) -> Result<JoinHandle<()>, ActorProcessingErr> {
        let (read, write, slot) = crate::locks::lock(&args.io)
            .take()
            .ok_or("an admin connection cannot be restarted: its stream is gone")?;
        Ok(tokio::spawn(async move {
            let _slot = slot;
            serve(args.ctx, read, write, args.peer).await;
            let _ = myself.cast(AdminConnectionMsg::Done);
        }))
    }

    async fn handle(
        &self,
        myself: ActorRef<AdminConnectionMsg>,
        _message: AdminConnectionMsg,
        _state: &mut JoinHandle<()>,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop(None);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AdminConnectionMsg>,
        task: &mut JoinHandle<()>,
    ) -> Result<(), ActorProcessingErr> {
        task.abort();
        Ok(())
    }
}

/// The template of `erlmcp_admin_connections`: temporary children.
pub fn admin_connection_template() -> ChildTemplate<AdminConnectionArgs> {
    ChildTemplate::actor("admin_connection", |args: AdminConnectionArgs| {
        (AdminConnection, args)
    })
    .restart(Restart::Temporary)
    .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
}

/// The admin listener.
pub struct AdminListener;

/// What the listener needs.
#[derive(Clone)]
pub struct AdminListenerArgs {
    /// Shared with every connection.
    pub(crate) ctx: Arc<AdminContext>,
    /// The Unix socket.
    pub(crate) socket: PathBuf,
    /// The optional loopback TCP address.
    pub(crate) tcp: Option<std::net::SocketAddr>,
    /// Filled with the bound TCP address.
    pub(crate) tcp_bound: crate::transport::tcp::BoundAddr,
    /// TLS on the TCP listener, when `tls.enabled`.
    pub(crate) tls: Option<Arc<crate::transport::tls::TlsServer>>,
}

/// The listener's state: its accept loops and the socket file to remove.
pub struct AdminListenerState {
    accepting: Vec<JoinHandle<()>>,
    /// The socket file this node created (removed when it stops).
    socket: Option<PathBuf>,
}

async fn hand_over(
    ctx: &Arc<AdminContext>,
    (read, write, peer): (BoxedRead, BoxedWrite, String),
    slot: OwnedSemaphorePermit,
) {
    let Some(sup) = SupervisorRef::whereis(ADMIN_CONNECTIONS) else {
        return;
    };
    let args = AdminConnectionArgs {
        io: Arc::new(Mutex::new(Some((read, write, slot)))),
        ctx: Arc::clone(ctx),
        peer,
    };
    if let Err(e) = DynamicSupervisor::<AdminConnectionArgs>::from_ref(sup)
        .start_child(args)
        .await
    {
        tracing::error!(error = %e, "cannot start an admin connection");
    }
}

/// Binds the admin socket; `None` when a running node already listens there (its socket is
/// left alone).
fn bind_unix(socket: &std::path::Path) -> std::io::Result<Option<tokio::net::UnixListener>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(None);
        }
        std::fs::remove_file(socket)?;
    }
    let listener = match tokio::net::UnixListener::bind(socket) {
        Ok(listener) => listener,
        // Another node bound it between the check and here.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(listener))
}

/// Accepts peers with `accept` (a stream's halves and a label for logs) until aborted, handing
/// each to its own actor while one of `slots` is free (else the peer is told so and closed); a
/// failed accept is logged and retried after a pause.
fn accept_loop<F, Fut>(ctx: Arc<AdminContext>, slots: Arc<Semaphore>, accept: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<(BoxedRead, BoxedWrite, String)>> + Send,
{
    tokio::spawn(async move {
        let mut guard = AcceptGuard::new("admin", ADMIN_REFUSALS_IN_FLIGHT);
        loop {
            let accepted = accept().await;
            if accepted.is_ok() {
                guard.accepted();
            }
            match accepted {
                Ok(peer) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => hand_over(&ctx, peer, slot).await,
                    Err(_) => {
                        let (_read, mut write, peer) = peer;
                        if let Some(refused) = REFUSALS.allow().map(|held| held + 1) {
                            tracing::warn!(peer = %peer, refused, max = ADMIN_MAX_CONNECTIONS, "admin connection refused: {ADMIN_MAX_CONNECTIONS} admin connections open (refusals since the last such line: {refused})");
                        }
                        // Past the refusals in flight, the peer is closed unanswered.
                        let Some(permit) = guard.refusal_permit() else {
                            continue;
                        };
                        tokio::spawn(async move {
                            let _permit = permit;
                            let busy = Welcome {
                                ok: false,
                                error: Some(format!(
                                    "too many admin connections ({ADMIN_MAX_CONNECTIONS}); try again later"
                                )),
                            };
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                write_line(&mut write, &busy),
                            )
                            .await;
                        });
                    }
                },
                Err(e) => guard.failed(&e).await,
            }
        }
    })
}

/// The admin TCP peers whose TLS handshake is done, for the accept loop.
type HandshakenPeers =
    Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(BoxedRead, BoxedWrite, String)>>>;

/// Accepts admin TCP peers and runs their TLS handshakes, each in its own task under the
/// handshake deadline (a peer that never finishes holds up no other), at most
/// [`ADMIN_MAX_CONNECTIONS`] at once (more are closed at once); the peers that finish come out of
/// the receiver, for the accept loop.
fn tls_handshakes(
    tcp: tokio::net::TcpListener,
    tls: Arc<crate::transport::tls::TlsServer>,
) -> (JoinHandle<()>, HandshakenPeers) {
    let (done_tx, done_rx) = tokio::sync::mpsc::channel(ADMIN_MAX_CONNECTIONS);
    let in_handshake = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        let mut guard = AcceptGuard::new("admin tls", ADMIN_REFUSALS_IN_FLIGHT);
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    guard.failed(&e).await;
                    continue;
                }
            };
            guard.accepted();
            let Ok(permit) = Arc::clone(&in_handshake).try_acquire_owned() else {
                continue;
            };
            let (tls, done_tx) = (Arc::clone(&tls), done_tx.clone());
            tokio::spawn(async move {
                let Some((stream, principal)) = tls.accept(stream, "admin", peer).await else {
                    return;
                };
                drop(permit);
                let label = match principal {
                    Some(principal) => format!("{peer} ({principal})"),
                    None => peer.to_string(),
                };
                let (read, write) = tokio::io::split(stream);
                let _ = done_tx.send(accepted(read, write, label)).await;
            });
        }
    });
    (task, Arc::new(tokio::sync::Mutex::new(done_rx)))
}

impl Actor for AdminListener {
    type Msg = ();
    type State = AdminListenerState;
    type Arguments = AdminListenerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: AdminListenerArgs,
    ) -> Result<AdminListenerState, ActorProcessingErr> {
        let unix = bind_unix(&args.socket)
            .map_err(|e| format!("admin socket {}: {e}", args.socket.display()))?;
        let mut accepting = Vec::new();
        let mut owned_socket = None;
        // One cap over the socket and admin.tcp.
        let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
        if let Some(unix) = unix {
            let unix = Arc::new(unix);
            tracing::info!(socket = %args.socket.display(), node = %args.ctx.node, "admin channel listening");
            owned_socket = Some(args.socket.clone());
            let ctx = Arc::clone(&args.ctx);
            accepting.push(accept_loop(ctx, Arc::clone(&slots), move || {
                let unix = Arc::clone(&unix);
                async move {
                    let (stream, _) = unix.accept().await?;
                    let (read, write) = stream.into_split();
                    Ok(accepted(read, write, "unix socket".to_owned()))
                }
            }));
        } else {
            tracing::warn!(
                socket = %args.socket.display(),
                node = %args.ctx.node,
                "another running node already uses this node name: this node serves without an admin socket (give it its own --name)"
            );
        }
        if let Some(addr) = args.tcp {
            if !addr.ip().is_loopback() && args.tls.is_none() {
                return Err(format!(
                    "admin.tcp must be a loopback address unless tls.enabled, not {addr}"
                )
                .into());
            }
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("admin tcp {addr}: {e}"))?;
            let bound = tcp.local_addr()?;
            let _ = args.tcp_bound.set(bound);
            tracing::info!(addr = %bound, "admin channel listening on tcp");
            let ctx = Arc::clone(&args.ctx);
            if let Some(tls) = args.tls.clone() {
                let (handshakes, done) = tls_handshakes(tcp, tls);
                accepting.push(handshakes);
                accepting.push(accept_loop(ctx, Arc::clone(&slots), move || {
                    let done = Arc::clone(&done);
                    async move {
                        done.lock().await.recv().await.ok_or_else(|| {
                            std::io::Error::other("the admin tls handshakes stopped")
                        })
                    }
                }));
            } else {
                let tcp = Arc::new(tcp);
                accepting.push(accept_loop(ctx, Arc::clone(&slots), move || {
                    let tcp = Arc::clone(&tcp);
                    async move {
                        let (stream, peer) = tcp.accept().await?;
                        let (read, write) = stream.into_split();
                        Ok(accepted(read, write, peer.to_string()))
                    }
                }));
            }
        }
        Ok(AdminListenerState {
            accepting,
            socket: owned_socket,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut AdminListenerState,
    ) -> Result<(), ActorProcessingErr> {
        for task in &state.accepting {
            task.abort();
        }
        if let Some(socket) = &state.socket {
            let _ = std::fs::remove_file(socket);
        }
        Ok(())
    }
}
