//! Owns the Streamable HTTP transport (revisions 2025-03-26 … 2025-11-25) on axum: one endpoint,
//! `/mcp` — POST carries one JSON-RPC message (or a 2025-03-26 batch), GET opens the session's
//! stream for server-initiated messages, DELETE ends the session. The same listener serves the
//! legacy HTTP+SSE transport ([`legacy_sse`], `/sse` + `/messages`) and
//! WebSocket ([`websocket`], `/ws`), its children that share its state and checks.
//!
//! Rules kept here (each pinned by `tests/it/mcp_over_streamable_http/tests.rs`):
//! - `initialize` creates a session: a session actor under `erlmcp_session_sup` and a
//!   cryptographically random `Mcp-Session-Id`. Later requests without the header get 400, with an
//!   unknown or expired one 404. Idle sessions expire after `http.session_timeout` and their actor
//!   is stopped.
//! - A notification or response gets 202. A request gets `application/json` when its answer is
//!   ready at once and nothing else was sent for it; otherwise an SSE stream that starts with a
//!   priming event (id, empty data, `retry`) and carries the request's notifications, its requests
//!   to the client, then its answer.
//! - Every SSE event has an id `<stream>-<seq>`; each stream keeps a bounded replay buffer, and a
//!   GET with `Last-Event-ID` resumes that stream after the id. A handler may end its POST response
//!   early ([`crate::session::RequestContext::close_stream`]); the client resumes with GET.
//! - `MCP-Protocol-Version` decides the revision per request: a handshake revision (or none) is
//!   served here; anything else goes to the stateless 2026-07-28 path ([`stateless`]).
//! - DNS-rebinding protection: a `Host` or `Origin` that is not loopback (or listed in
//!   `http.allowed_hosts` / `http.allowed_origins`) gets 403; no `Host`, or two, 400; an
//!   absolute-form target is judged by its authority. Without the access token `[auth]` asks
//!   for: 401 / 403 ([`oauth`]; the metadata document is served without one). All
//!   that the head alone decides is decided before the body is read ([`head_checks`]); a body
//!   then has `http.body_read_timeout` to arrive, within `http.max_pending_body_bytes` over all
//!   connections ([`body_guard`]): 408 / 503, and the connection closes.
//! - Sessions are capped: `http.max_sessions` in all, `http.max_sessions_per_client` per source
//!   address ([`sessions`]): 503 with a JSON-RPC error past either.
//! - A write stuck for `write_timeout` (the client reads nothing) closes the connection, SSE
//!   streams and WebSockets included ([`listener`]).
//! - A connection with no request in progress for `http.header_read_timeout` is closed
//!   (slowloris; idle keep-alive): [`idle_watch`], up to a twentieth of the timeout late.
//! - Plain `POST /mcp` requests are read and answered by erlmcp's own HTTP/1.1 ([`fast_lane`],
//!   the hot path); the first request of any other kind hands its connection to hyper, where
//!   `POST /mcp` still goes past the router. Every lane hands an `/mcp` request to one entry,
//!   [`mcp_endpoint`] (the POST/GET/DELETE handlers), and writes the answer it gets back. With `http.pipeline_flush` the fast lane's answers
//!   to pipelined requests leave in one write (hyper's own `pipeline_flush` is never used).
//! - Accepted sockets get TCP_NODELAY; the connection limit in force (`max_connections`, or
//!   fewer where the open-file limit says so: [`crate::transport::descriptors`]) is enforced at
//!   accept; bodies over
//!   `max_message_size` get 413; JSON bodies over 1 KiB are gzip-compressed when the client
//!   accepts it.
//! - A `POST /mcp` whose `Accept` allows neither JSON nor an SSE stream gets 406; a body that is
//!   not JSON gets 400 with -32700 before its session is looked at ([`head_checks`]).

use crate::dispatch::ReadyAnswer;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::transport::TransportContext;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Idle sessions are removed after this long.
    pub(crate) session_timeout: Duration,
    /// Extra `Host` values accepted besides loopback names.
    pub(crate) allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted besides loopback origins.
    pub(crate) allowed_origins: Vec<String>,
    /// Who may call (`[auth]`, `http.bearer_token`); `None`: anyone.
    pub(crate) auth: Option<Arc<crate::auth::Auth>>,
    /// Serve GET streams (else 405).
    pub(crate) get_stream: bool,
    /// The `retry` sent on SSE streams.
    pub(crate) sse_retry: Duration,
    /// Keep-alive comment interval on SSE streams.
    pub(crate) keep_alive: Duration,
    /// Events kept per stream for resumption.
    pub(crate) replay_buffer: usize,
    /// Time allowed to send a request head (and to start the next one on a kept-alive connection).
    pub(crate) header_read_timeout: Duration,
    /// Write the answers to pipelined requests together (hyper's `pipeline_flush`).
    pub(crate) pipeline_flush: bool,
    /// The longest request head hyper reads (its `max_buf_size`): past it, 431.
    pub(crate) max_head_bytes: usize,
    /// Serve plain `POST /mcp` requests with erlmcp's own HTTP/1.1 ([`fast_lane`]), not hyper.
    pub(crate) fast_lane: bool,
    /// Offer permessage-deflate on `/ws`.
    pub(crate) ws_compression: bool,
    /// Time a request's body may take to arrive once its head has.
    pub(crate) body_read_timeout: Duration,
    /// Bytes of bodies being read at once, over all connections.
    pub(crate) max_pending_body_bytes: usize,
    /// Sessions at once, in all.
    pub(crate) max_sessions: usize,
    /// Sessions at once from one source address (0: no cap).
    pub(crate) max_sessions_per_client: usize,
}

mod answer;
mod body_guard;
mod connections;
mod event_stream;
mod fast_lane;
pub(crate) mod forward;
mod forward_lane;
mod forward_stream;
mod forwarder;
mod head_checks;
mod idle_watch;
pub mod kept;
pub(crate) mod legacy_sse;
mod listener;
mod mcp_endpoint;
mod oauth;
pub(crate) mod replica;
mod request_headers;
mod sessions;
mod stateless;
pub(crate) mod websocket;

pub(crate) use fast_lane::{LaneRead, lowercase_name, read_head};
pub(crate) use forward_lane::{LaneFraming, fuzz_answer};
pub(crate) use head_checks::check_caller;
pub(crate) use listener::LimitedListener;
pub(crate) use request_headers::RequestHeaders;
pub(crate) use sessions::reap_idle_sessions;
pub(crate) use sessions::{SeenAt, SessionCaps, SessionClient, SessionTable};

/// The transport's shared state.
pub struct HttpState {
    pub(crate) ctx: TransportContext,
    pub(crate) settings: HttpSettings,
    sessions: Mutex<SessionTable>,
    pub(crate) legacy: legacy_sse::LegacySessions,
    /// Bytes of request bodies being read now.
    bodies: body_guard::BodyBudget,
    /// The state store the sessions are kept in (`None`: they end with the process).
    kept: Option<Arc<kept::KeptSessions>>,
    /// The forwarding lane's connections to the other members (when clustered).
    lanes: forward_lane::Lanes,
}

/// Builds the router serving `/mcp`.
pub(crate) fn router(
    ctx: TransportContext,
    settings: HttpSettings,
    kept: Option<Arc<kept::KeptSessions>>,
) -> (Router, Arc<HttpState>) {
    let state = Arc::new(HttpState {
        ctx,
        kept,
        sessions: Mutex::new(SessionTable::new(SessionCaps {
            total: settings.max_sessions,
            per_client: settings.max_sessions_per_client,
        })),
        legacy: Mutex::new(HashMap::new()),
        bodies: body_guard::BodyBudget::new(settings.max_pending_body_bytes),
        lanes: forward_lane::Lanes::default(),
        settings,
    });
    let body_limit = state.ctx.limits.max_message_size.saturating_add(1);
    let router = Router::new()
        .route("/mcp", any(mcp))
        .route("/sse", axum::routing::get(legacy_sse::open))
        .route("/messages", axum::routing::post(legacy_sse::message))
        .route("/ws", axum::routing::get(websocket::upgrade))
        .route(
            crate::auth::METADATA_PREFIX,
            axum::routing::get(oauth::metadata),
        )
        .route(
            &format!("{}/{{*resource}}", crate::auth::METADATA_PREFIX),
            axum::routing::get(oauth::metadata),
        )
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(Arc::clone(&state));
    (router, state)
}

pub(crate) fn session_id() -> Result<String, RpcError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| RpcError::internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn plain(status: StatusCode, message: &str) -> Response {
    let body = jsonrpc::encode_error(None, &RpcError::invalid_request(message));
    (status, [(header::CONTENT_TYPE, APPLICATION_JSON)], body).into_response()
}

/// Header values of every answer, made once: a `&str` in a header pair is copied into a new
/// allocation for each response.
pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The headers of every SSE response.
pub(crate) const SSE_HEADERS: [(header::HeaderName, HeaderValue); 2] = [
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
];

/// `Mcp-Session-Id`.
const SESSION_ID: header::HeaderName = header::HeaderName::from_static("mcp-session-id");

/// A `/mcp` request the router serves (GET, DELETE and other methods; hyper's `POST /mcp` comes
/// past the router): to the MCP endpoint, like every lane.
async fn mcp(
    State(state): State<Arc<HttpState>>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer::into_axum_response(
        mcp_endpoint::answer(&state, &method, RequestHeaders::read(&headers), &body).await,
    )
}

/// 503 with a JSON-RPC error (-32000) saying which limit was reached.
fn busy(message: &str) -> Response {
    let body = jsonrpc::encode_error(None, &RpcError::new(-32000, message.to_owned()));
    unavailable(body, None)
}

/// The frame of an answer ready at once — or, for a request the admission point shed, its
/// `503` with `Retry-After` (whole seconds) and the JSON-RPC error (-32000 `server overloaded`).
/// Every HTTP path that dispatches a POST hands its answer through here.
fn unless_shed(answer: Option<ReadyAnswer>) -> Result<Option<Vec<u8>>, Overloaded> {
    match answer {
        Some(ReadyAnswer {
            frame,
            shed: Some(shed),
        }) => Err(Overloaded {
            frame,
            retry_after_secs: shed.retry_after_secs(),
        }),
        other => Ok(other.map(|answer| answer.frame)),
    }
}

/// A shed request's answer, made into its `503` when it is sent.
struct Overloaded {
    frame: Vec<u8>,
    retry_after_secs: u64,
}

impl Overloaded {
    fn into_answer(self) -> answer::Answer {
        use answer::IntoAnswer as _;
        unavailable(self.frame, Some(self.retry_after_secs)).into_answer()
    }
}

/// `503` with a JSON-RPC error as its body, and `Retry-After` when the node knows when to retry.
fn unavailable(body: Vec<u8>, retry_after_secs: Option<u64>) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, APPLICATION_JSON)],
        body,
    )
        .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub(crate) use crate::tree_names::HTTP;

/// The source address of a request hyper read, in its extensions (for the WebSocket upgrade's
/// rate-limit keys).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) std::net::IpAddr);

/// The principal of a TLS client's certificate (mTLS), in the extensions of a request hyper read.
pub(crate) type TlsClient = axum::Extension<Arc<crate::transport::tls::Principal>>;

/// The headers of a request hyper read, with its TLS client's principal.
pub(crate) fn with_tls<'a>(
    headers: &'a axum::http::HeaderMap,
    tls: Option<&'a TlsClient>,
) -> RequestHeaders<'a> {
    let mut read = RequestHeaders::read(headers);
    read.tls_client = tls.map(|axum::Extension(principal)| &**principal);
    read
}

/// Where the HTTP listener bound (useful with port 0).
pub(crate) type BoundAddr = Arc<std::sync::OnceLock<SocketAddr>>;

/// The HTTP listener actor: binds, serves `/mcp`, expires idle sessions.
pub(crate) struct HttpListener;

/// Its arguments.
#[derive(Clone)]
pub(crate) struct HttpListenerArgs {
    /// Where to listen.
    pub(crate) addr: SocketAddr,
    /// Listen backlog.
    pub(crate) backlog: u32,
    /// Node-wide transport context.
    pub(crate) ctx: TransportContext,
    /// Transport settings.
    pub(crate) settings: HttpSettings,
    /// Filled with the bound address.
    pub(crate) bound: BoundAddr,
    /// The state store its sessions are kept in.
    pub(crate) store: Arc<crate::store::Store>,
    /// Sessions kept in it at most (`store.max_sessions`).
    pub(crate) max_stored_sessions: usize,
}

/// What it owns: the server task and the reaper task.
pub(crate) struct HttpListenerState {
    server: tokio::task::JoinHandle<()>,
    /// Serves the requests other nodes forward here (when clustered).
    forwarder: Option<ractor::ActorRef<forward::ForwardMsg>>,
    reaper: tokio::task::JoinHandle<()>,
    state: Arc<HttpState>,
}

/// A listener killed (no `post_stop`) stops serving: its server task, which owns the socket,
/// and its reaper go with its state.
impl Drop for HttpListenerState {
    fn drop(&mut self) {
        self.server.abort();
        self.reaper.abort();
    }
}

impl ractor::Actor for HttpListener {
    type Msg = ();
    type State = HttpListenerState;
    type Arguments = HttpListenerArgs;

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<()>,
        args: HttpListenerArgs,
    ) -> Result<HttpListenerState, ractor::ActorProcessingErr> {
        let bind = |addr: SocketAddr| {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(args.backlog)
        };
        // A restart binds the port the first start got (see the TCP listener).
        let listener = match args.bound.get().copied() {
            Some(before) => crate::transport::tcp::bind_again(|| bind(before)).await,
            None => bind(args.addr),
        }
        .map_err(|e| format!("cannot listen on http {}: {e}", args.addr))?;
        let local = listener.local_addr()?;
        let _ = args.bound.set(local);
        let header_timeout = args.settings.header_read_timeout;
        let kept = kept::KeptSessions::new(args.store, args.max_stored_sessions);
        let (app, state) = router(args.ctx.clone(), args.settings, Some(kept));
        // Before the first request is accepted: a client's next request finds its session.
        kept::restore(&state).await;
        let forwarder = forwarder::start_forwarder(&state, local, myself.get_cell()).await?;
        let reaper = tokio::spawn(reap_idle_sessions(Arc::clone(&state)));
        let server = tokio::spawn(connections::serve_connections(
            LimitedListener::new(listener, args.ctx),
            app,
            Arc::clone(&state),
            header_timeout,
        ));
        tracing::info!(addr = %local, "http listening on {local}");
        Ok(HttpListenerState {
            server,
            forwarder,
            reaper,
            state,
        })
    }

    async fn post_stop(
        &self,
        _myself: ractor::ActorRef<()>,
        state: &mut HttpListenerState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        state.server.abort();
        state.reaper.abort();
        if let Some(forwarder) = state.forwarder.take() {
            forwarder.stop(None);
        }
        // The store's worker stops after this listener and snapshots what is written here.
        let http = Arc::clone(&state.state);
        let _ = tokio::task::spawn_blocking(move || kept::save_event_ids(&http)).await;
        tracing::info!("http listener stopped");
        Ok(())
    }
}
