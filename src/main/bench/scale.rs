//! Owns the scale profile (`bench run --profile scale --transport tcp|ws|http`): idle connections
//! opened on a node, each with its MCP session (TCP: `initialize` on the line stream; WebSocket:
//! an upgrade and `initialize`; Streamable HTTP: a keep-alive connection whose `initialize` made
//! a session, then `notifications/initialized`), in a burst (at most [`OPENING_AT_ONCE`] at a time) or ramped (`--rate` opens a
//! second), then held for `--duration`; what the node's memory grew by per connection, how long
//! opening took, and what was refused (past the node's limits: its descriptor limit, its
//! `max_connections`, its session caps). Connections come from 16 loopback source addresses.
//! The generator holds one descriptor per connection: one process opens at most ~19K here; past
//! that, several nodes and generator processes (`cluster_scale.rs`) share [`open_all`].

use super::http::open_made_session;
use super::node::rss_and_fds;
use super::{Progress, TCP_INITIALIZE, connect};
use futures::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Connections being opened at once in a burst.
const OPENING_AT_ONCE: usize = 64;
/// How long one connection may take to open and answer its `initialize`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures in a row that end the opening (the node refuses everything now).
const FAILURES_IN_A_ROW: usize = 256;

/// The transport the connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScaleTransport {
    /// Newline-delimited JSON-RPC over TCP.
    Tcp,
    /// WebSocket sessions (`/ws`).
    Ws,
    /// Streamable HTTP: a session per keep-alive connection.
    Http,
}

/// What a scale run asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScalePlan {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: ScaleTransport,
    pub(crate) connections: usize,
    /// Opens a second; `None`: a burst.
    pub(crate) rate: Option<f64>,
    pub(crate) hold: Duration,
}

/// An open idle connection, held (never read) until the run ends: dropping it closes it.
pub(super) enum Held {
    Lines {
        _stream: tokio::net::TcpStream,
    },
    Socket {
        _socket: Box<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>,
    },
}

/// Connects connection `index` to `addr`: from `source` when given (a generator process of
/// the scale profile across nodes), else from one of the loopback sources [`connect`] spreads
/// connections over.
async fn connect_from(
    addr: SocketAddr,
    source: Option<Ipv4Addr>,
    index: usize,
) -> std::io::Result<tokio::net::TcpStream> {
    let Some(source) = source else {
        return connect(addr, index).await;
    };
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// Opens connection `index` to `addr` and its session.
async fn open(
    plan: ScalePlan,
    addr: SocketAddr,
    source: Option<Ipv4Addr>,
    index: usize,
) -> std::io::Result<Held> {
    let stream = connect_from(addr, source, index).await?;
    stream.set_nodelay(true)?;
    match plan.transport {
        ScaleTransport::Tcp => {
            let mut stream = stream;
            stream.write_all(TCP_INITIALIZE.as_bytes()).await?;
            let mut reader = BufReader::new(&mut stream);
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 || line.contains("\"error\"") {
                return Err(refused(&line));
            }
            Ok(Held::Lines { _stream: stream })
        }
        ScaleTransport::Http => {
            // An initialized session: `initialize`, then `notifications/initialized`.
            let mut stream = stream;
            let (read, mut write) = stream.split();
            let mut reader = BufReader::new(read);
            let mut line = String::new();
            open_made_session(&mut reader, &mut write, &addr.to_string(), &mut line).await?;
            Ok(Held::Lines { _stream: stream })
        }
        ScaleTransport::Ws => {
            use tokio_tungstenite::tungstenite::Message;
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let request = format!("ws://{addr}/ws")
                .into_client_request()
                .map_err(std::io::Error::other)?;
            let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(std::io::Error::other)?;
            let init = super::INITIALIZE;
            socket
                .send(Message::Text(init.into()))
                .await
                .map_err(std::io::Error::other)?;
            match socket.next().await {
                Some(Ok(Message::Text(text))) if !text.contains("\"error\"") => {}
                other => return Err(refused(&format!("{other:?}"))),
            }
            Ok(Held::Socket {
                _socket: Box::new(socket),
            })
        }
    }
}

fn refused(said: &str) -> std::io::Error {
    let said: String = said.trim().chars().take(200).collect();
    std::io::Error::other(format!("refused: {said}"))
}

/// What [`open_all`] opened.
pub(super) struct Opened {
    /// The connections open, held until dropped.
    pub(super) held: Vec<Held>,
    /// Connections opened to each target.
    pub(super) per_target: Vec<usize>,
    pub(super) failed: usize,
    /// The first failure's reason.
    pub(super) first_error: Option<String>,
}

/// Opens `plan.connections` connections with their sessions, connection `i` to
/// `targets[i mod targets.len()]` (from `source` when given), in a burst of
/// [`OPENING_AT_ONCE`] at a time or at `plan.rate`; stops early after [`FAILURES_IN_A_ROW`]
/// failures in a row.
pub(super) async fn open_all(
    plan: ScalePlan,
    targets: &[SocketAddr],
    source: Option<Ipv4Addr>,
    progress: &Progress,
) -> Opened {
    let started = Instant::now();
    let mut opened = Opened {
        held: Vec::with_capacity(plan.connections),
        per_target: vec![0; targets.len()],
        failed: 0,
        first_error: None,
    };
    let mut in_a_row = 0usize;
    let opens = futures::stream::iter(0..plan.connections).map(|index| async move {
        if let Some(rate) = plan.rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let target = index % targets.len().max(1);
        let addr = targets.get(target).copied().unwrap_or(plan.addr);
        let held = tokio::time::timeout(OPEN_TIMEOUT, open(plan, addr, source, index))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::other(format!(
                    "no answer within {OPEN_TIMEOUT:?}"
                )))
            });
        (target, held)
    });
    let mut opens = std::pin::pin!(opens.buffer_unordered(OPENING_AT_ONCE));
    while let Some((target, held)) = opens.next().await {
        match held {
            Ok(connection) => {
                opened.held.push(connection);
                if let Some(count) = opened.per_target.get_mut(target) {
                    *count += 1;
                }
                in_a_row = 0;
                progress.calls.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                opened.failed += 1;
                in_a_row += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                opened.first_error.get_or_insert_with(|| e.to_string());
                if in_a_row >= FAILURES_IN_A_ROW {
                    break;
                }
            }
        }
    }
    opened
}

/// Opens the connections, holds them, and measures; `node`: the node's process, when it is a
/// child (its memory and descriptors are read from /proc).
pub(crate) fn run_scale(
    plan: ScalePlan,
    node: Option<u32>,
    progress: Arc<Progress>,
) -> std::io::Result<BTreeMap<String, f64>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = node.and_then(rss_and_fds);
    let started = Instant::now();
    let Opened {
        held,
        failed,
        first_error,
        ..
    } = runtime.block_on(open_all(plan, &[plan.addr], None, &progress));
    let opening = started.elapsed();
    // Settled: a moment for the node to finish what the last opens started.
    std::thread::sleep(Duration::from_millis(200));
    let after = node.and_then(rss_and_fds);
    std::thread::sleep(plan.hold);
    let after_hold = node.and_then(rss_and_fds);
    let opened = held.len();
    drop(held);
    let mut figures = BTreeMap::from([
        ("connections_opened".to_owned(), opened as f64),
        ("connections_failed".to_owned(), failed as f64),
        ("open_seconds".to_owned(), opening.as_secs_f64()),
        (
            "opens_per_sec".to_owned(),
            opened as f64 / opening.as_secs_f64().max(1e-9),
        ),
    ]);
    if let (Some((rss0, fds0)), Some((rss1, fds1))) = (before, after) {
        figures.insert("node_rss_before_bytes".into(), rss0 as f64);
        figures.insert("node_rss_after_bytes".into(), rss1 as f64);
        figures.insert("node_fds_after".into(), fds1 as f64);
        figures.insert("node_fds_before".into(), fds0 as f64);
        if opened > 0 {
            figures.insert(
                "node_rss_per_connection_bytes".into(),
                rss1.saturating_sub(rss0) as f64 / opened as f64,
            );
        }
    }
    if let Some((rss2, _)) = after_hold {
        figures.insert("node_rss_after_hold_bytes".into(), rss2 as f64);
    }
    if let Some(error) = first_error {
        eprintln!("erlmcp bench run: {failed} connections failed; the first: {error}");
    }
    Ok(figures)
}
