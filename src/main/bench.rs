//! Owns `erlmcp bench`: the load generator for newline-delimited JSON-RPC over TCP and (in
//! `bench/http.rs`) Streamable HTTP — `tools/call echo` over many connections, closed loop
//! (pipelined, as fast as answers come) or open loop (a fixed arrival rate) — and the baseline it
//! is compared with: a raw tokio line-echo server that does no JSON work at all. Below it:
//! `run.rs` (`bench run`: profiles, repeats, the node it starts), `results.rs` (results.json),
//! `report.rs` (the HTML reports), `compare.rs` (`bench compare`, `bench history`), `node.rs`
//! (the node as a child and its RSS/CPU), `recorder.rs` (what a generator thread measures),
//! `chaos.rs` (the chaos profile's faults), `ws.rs` (the WebSocket generator), `stdio.rs` (the
//! stdio generator: a node per connection, driven over its pipes), `scale.rs` (idle connections
//! opened and held, the node's memory per connection), `cluster.rs` (clustered nodes, the
//! forward profile), `cluster_scale.rs` (the scale profile across nodes and generator processes),
//! `vs.rs` (`bench vs`: a profile against a peer server and a node, with the ratios), `printed.rs`
//! (what `bench store` and `bench core` print).
//!
//! The generator runs on `threads` threads, each a current-thread runtime with its share of the
//! connections; `bench tcp` uses one, so that, pinned with `taskset`, it leaves the other core to
//! the server under test.
//!
//! Open loop: each connection sends on a fixed schedule (request k is due at `first + k /
//! rate`), whatever the server's answers; a request sent late is still timed from when it was
//! due, so a stalled server shows in the latency instead of being hidden by the generator
//! waiting for it (coordinated omission).

#[path = "bench/chaos.rs"]
mod chaos;
#[path = "bench/cluster.rs"]
pub(crate) mod cluster;
#[path = "bench/cluster_scale.rs"]
pub(crate) mod cluster_scale;
#[path = "bench/compare.rs"]
pub(crate) mod compare;
#[path = "bench/http.rs"]
mod http;
#[path = "bench/integration.rs"]
mod integration;
#[path = "bench/node.rs"]
mod node;
#[path = "bench/pin.rs"]
mod pin;
#[path = "bench/printed.rs"]
mod printed;
#[path = "bench/recorder.rs"]
mod recorder;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/results.rs"]
pub(crate) mod results;
#[path = "bench/run.rs"]
pub(crate) mod run;
#[path = "bench/scale.rs"]
mod scale;
#[path = "bench/stdio.rs"]
mod stdio;
#[path = "bench/vs.rs"]
pub(crate) mod vs;
#[path = "bench/ws.rs"]
mod ws;

pub(crate) use http::run_http_load;
pub(crate) use http::{TLS as HTTP_TLS, new_connection_cost, tls_client};
pub(crate) use integration::run_integration_load;
pub(crate) use printed::{print_core, store};
pub(crate) use recorder::Progress;
use recorder::{Recorder, Shared};
use results::{PercentilePoint, TimelineStep};
pub(crate) use scale::{ScalePlan, ScaleTransport, run_scale};
pub(crate) use stdio::run_stdio_load;
pub(crate) use ws::run_ws_load;

use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use tokio::net::{TcpListener, TcpStream};

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// Connections used.
    pub(crate) connections: usize,
    /// Requests kept outstanding per connection (closed loop).
    pub(crate) pipeline: usize,
    /// Measured seconds (after warm-up).
    pub(crate) seconds: f64,
    /// Calls answered in the measured window.
    pub(crate) calls: u64,
    /// Calls per second.
    pub(crate) calls_per_sec: f64,
    /// Latency percentiles in microseconds.
    pub(crate) p50_us: f64,
    /// 99th percentile.
    pub(crate) p99_us: f64,
    /// 99.9th percentile.
    pub(crate) p999_us: f64,
    /// Maximum.
    pub(crate) max_us: f64,
    /// Answers that were errors or malformed, and (open loop) requests never answered.
    pub(crate) errors: u64,
    /// Open loop: how late the generator sent requests after they were due, 99th percentile
    /// (near zero while the generator keeps up; 0 in closed loop).
    pub(crate) send_lag_p99_us: f64,
}

/// What a load run measured, with its timeline and percentile curve (for results.json).
#[derive(Debug, Clone)]
pub(crate) struct LoadRun {
    /// The figures.
    pub(crate) report: LoadReport,
    /// Calls, errors and latency per step of the measured window.
    pub(crate) timeline: Vec<TimelineStep>,
    /// Latency at each percentile of [`results::CURVE_PERCENTILES`].
    pub(crate) percentiles: Vec<PercentilePoint>,
    /// When the measured window began (the timeline's zero).
    pub(crate) measure_from: Instant,
    /// The integration profile's steps (empty for the others).
    pub(crate) flow_steps: Vec<recorder::FlowStepFigures>,
}

/// Load parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadPlan {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Connections.
    pub(crate) connections: usize,
    /// Outstanding requests per connection (closed loop).
    pub(crate) pipeline: usize,
    /// Warm-up before measuring.
    pub(crate) warmup: Duration,
    /// Measured duration.
    pub(crate) duration: Duration,
    /// Size of the echoed text, in bytes.
    pub(crate) payload: usize,
    /// How HTTP requests are made (HTTP load only).
    pub(crate) http_mode: HttpMode,
    /// The tool called (lines, and HTTP sessions with JSON answers; the other HTTP modes call
    /// `echo`).
    pub(crate) tool: BenchTool,
    /// Open loop: requests per second over all connections; `None`: closed loop.
    pub(crate) rate: Option<f64>,
    /// Generator threads (each a runtime with its share of the connections).
    pub(crate) threads: usize,
    /// The width of one step of the timeline.
    pub(crate) step: Duration,
}

/// The demo tool the TCP load calls: both answer the text they are given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BenchTool {
    /// `echo`: its body runs on every call.
    #[default]
    Echo,
    /// `echo_cached`: the same body, its answer served from the node's cache after the first call.
    EchoCached,
}

impl BenchTool {
    fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::EchoCached => "echo_cached",
        }
    }
}

/// How long, after the measured window, an open-loop connection waits for the answers still
/// due; those not come by then are counted as errors.
const DRAIN: Duration = Duration::from_secs(3);

/// How the HTTP load generator talks to `/mcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HttpMode {
    /// One session per connection (`initialize`, `Mcp-Session-Id`), JSON answers.
    #[default]
    Session,
    /// Revision 2026-07-28: no session; each request carries the `_meta` envelope and the
    /// routing headers.
    Stateless,
    /// One session per connection; each call carries a progress token, so `echo` reports
    /// progress first and the answer comes as an SSE stream.
    Sse,
}

/// Runs the load (newline-delimited JSON-RPC over TCP) and reports; fails if a connection
/// cannot be set up.
pub(crate) fn run_load(plan: LoadPlan, progress: Arc<Progress>) -> std::io::Result<LoadRun> {
    run_with(plan, progress, |stream, plan, index, recorder| {
        Box::pin(async move {
            let (read, write) = stream.into_split();
            drive_lines(read, write, plan, index, recorder).await
        })
    })
}

/// Drives one line stream (a TCP connection, a stdio node's pipes): open loop when the plan
/// has a rate, closed loop otherwise.
async fn drive_lines<R, W>(
    read: R,
    write: W,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    if plan.rate.is_some() {
        drive_open(read, write, plan, index, recorder).await
    } else {
        drive_connection(read, write, plan, recorder).await
    }
}

/// A connection's future, made and run on its generator thread.
type Local<T> = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<T>>>>;

/// Drives one connection (a TCP stream unless said otherwise): the connection, the plan, its
/// index among all connections, the thread's recorder.
type Driver<S = TcpStream> = fn(S, LoadPlan, usize, Shared) -> Local<()>;

/// Opens connection `index` of the plan on its generator thread.
type Opener<'a, S> = &'a (dyn Fn(&LoadPlan, usize) -> Local<S> + Sync);

/// Runs `drive` on every TCP connection, spread over `plan.threads` threads, and merges what
/// they measured.
fn run_with(plan: LoadPlan, progress: Arc<Progress>, drive: Driver) -> std::io::Result<LoadRun> {
    run_over(
        plan,
        progress,
        &|plan, index| {
            let addr = plan.addr;
            Box::pin(async move {
                let stream = connect(addr, index).await?;
                stream.set_nodelay(true)?;
                Ok(stream)
            })
        },
        drive,
    )
}

/// Runs `drive` on every connection `open` makes, spread over `plan.threads` threads, and
/// merges what they measured.
fn run_over<S: 'static>(
    plan: LoadPlan,
    progress: Arc<Progress>,
    open: Opener<'_, S>,
    drive: Driver<S>,
) -> std::io::Result<LoadRun> {
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let measure_from = Instant::now() + plan.warmup;
    let recorders: Vec<std::io::Result<Recorder>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let progress = Arc::clone(&progress);
                let generator = Generator {
                    plan,
                    thread,
                    threads,
                    measure_from,
                };
                scope.spawn(move || generator.run(progress, open, drive))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a generator thread panicked")))
            })
            .collect()
    });
    let mut merged = Recorder::new(&plan, measure_from, progress)?;
    for recorder in recorders {
        merged.merge(&recorder?)?;
    }
    Ok(merged.into_run(&plan))
}

/// One generator thread: connections `thread`, `thread + threads`, … on a runtime of its own.
#[derive(Clone, Copy)]
struct Generator {
    plan: LoadPlan,
    thread: usize,
    threads: usize,
    measure_from: Instant,
}

impl Generator {
    fn run<S: 'static>(
        self,
        progress: Arc<Progress>,
        open: Opener<'_, S>,
        drive: Driver<S>,
    ) -> std::io::Result<Recorder> {
        let plan = self.plan;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let recorder: Shared = Rc::new(RefCell::new(Recorder::new(
            &plan,
            self.measure_from,
            progress,
        )?));
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let mut tasks = Vec::new();
            for index in (self.thread..plan.connections).step_by(self.threads) {
                let connection = open(&plan, index).await?;
                tasks.push(tokio::task::spawn_local(drive(
                    connection,
                    plan,
                    index,
                    Rc::clone(&recorder),
                )));
            }
            for task in tasks {
                task.await.map_err(std::io::Error::other)??;
            }
            Ok::<_, std::io::Error>(())
        })?;
        Rc::try_unwrap(recorder)
            .map(RefCell::into_inner)
            .map_err(|_| std::io::Error::other("a connection outlived its generator thread"))
    }
}

/// Loopback source addresses the connections to a loopback target are spread over
/// (127.0.0.1–127.0.0.16): each source address has its own ~28,000 ephemeral ports.
const LOOPBACK_SOURCES: u8 = 16;

/// Connects connection `index`: to a loopback IPv4 target from 127.0.0.(1 + index mod 16), where
/// the system allows binding it; otherwise from wherever the system picks.
async fn connect(addr: SocketAddr, index: usize) -> std::io::Result<TcpStream> {
    if let SocketAddr::V4(v4) = addr
        && v4.ip().is_loopback()
    {
        let source =
            std::net::Ipv4Addr::new(127, 0, 0, 1 + (index % LOOPBACK_SOURCES as usize) as u8);
        let socket = tokio::net::TcpSocket::new_v4()?;
        if socket.bind(SocketAddr::from((source, 0))).is_ok() {
            return socket.connect(addr).await;
        }
    }
    TcpStream::connect(addr).await
}

/// The open-loop schedule of one connection: when each request is due.
#[derive(Clone, Copy)]
struct Schedule {
    first: Instant,
    interval: Duration,
    stop_at: Instant,
}

impl Schedule {
    /// Connection `index`'s schedule: its share of the rate, its first request offset so that
    /// the connections' requests interleave instead of coming in bursts.
    fn of(plan: &LoadPlan, index: usize, stop_at: Instant) -> Self {
        let rate = plan.rate.unwrap_or(1.0).max(f64::MIN_POSITIVE);
        let interval = Duration::from_secs_f64((plan.connections as f64 / rate).min(3600.0));
        let offset = interval.mul_f64(index as f64 / plan.connections.max(1) as f64);
        Self {
            first: Instant::now() + offset,
            interval,
            stop_at,
        }
    }

    fn due(&self, k: u64) -> Instant {
        self.first + self.interval.mul_f64(k as f64)
    }
}

/// What an open-loop connection's writer and reader share: requests sent and not yet answered
/// (id, when due), whether the writer is done, and a wake-up for the reader.
#[derive(Default)]
struct InFlight {
    outstanding: RefCell<VecDeque<(u64, Instant)>>,
    writer_done: Cell<bool>,
    sent: tokio::sync::Notify,
}

impl InFlight {
    /// Waits until a request is outstanding; `false` once the writer is done and none is.
    async fn wait_for_one(&self) -> bool {
        loop {
            if !self.outstanding.borrow().is_empty() {
                return true;
            }
            if self.writer_done.get() {
                return false;
            }
            self.sent.notified().await;
        }
    }

    /// The writer's loop: every request due is written (those due together in one write), the
    /// lateness of the first of them recorded; `request(k)` makes request k (id k + 1).
    async fn write_on_schedule<W: BatchWriter>(
        &self,
        write: &mut W,
        schedule: Schedule,
        recorder: &Shared,
        mut request: impl FnMut(u64, &mut String),
    ) -> std::io::Result<()> {
        let mut batch = String::new();
        let mut k = 0u64;
        let outcome = async {
            loop {
                let now = Instant::now();
                batch.clear();
                let mut first_due = None;
                while schedule.due(k) <= now && schedule.due(k) < schedule.stop_at {
                    let due = schedule.due(k);
                    first_due.get_or_insert(due);
                    request(k, &mut batch);
                    self.outstanding.borrow_mut().push_back((k + 1, due));
                    k += 1;
                }
                if let Some(due) = first_due {
                    recorder.borrow_mut().lagged(due, now);
                    // A server that stops reading blocks the write: bounded like the reader, the
                    // requests not sent by then are counted unanswered by it.
                    let deadline = (schedule.stop_at + DRAIN).into();
                    let sent = tokio::time::timeout_at(deadline, write.send_batch(&batch)).await;
                    self.sent.notify_one();
                    match sent {
                        Ok(sent) => sent?,
                        Err(_) => return Ok(()),
                    }
                }
                let next = schedule.due(k);
                if next >= schedule.stop_at {
                    return Ok(());
                }
                tokio::time::sleep_until(next.into()).await;
            }
        }
        .await;
        self.writer_done.set(true);
        self.sent.notify_one();
        outcome
    }
}

/// Where the open loop's writer sends a batch of requests: a byte stream (TCP, HTTP), or
/// WebSocket messages (`bench/ws.rs`).
trait BatchWriter {
    /// Sends the batch (what `request` made for each request due).
    async fn send_batch(&mut self, batch: &str) -> std::io::Result<()>;
}

impl<W: tokio::io::AsyncWrite + Unpin> BatchWriter for W {
    async fn send_batch(&mut self, batch: &str) -> std::io::Result<()> {
        self.write_all(batch.as_bytes()).await
    }
}

fn request_line(id: u64, tool: BenchTool, text: &str) -> String {
    let tool = tool.name();
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"{tool}\",\"arguments\":{{\"text\":\"{text}\"}}}}}}\n"
    )
}

/// Reads the `"id":N` of an answer without a full JSON parse (the generator must be cheap).
fn answer_id(line: &str) -> Option<u64> {
    let at = line.find("\"id\":")? + 5;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether a line is a notification (no `id` at all: progress, a log message, the echoed
/// `notifications/initialized` of the raw echo server), which answers no request: skipped, not
/// an error. An answer with `"id":null` is an error answer.
fn is_notification(line: &str) -> bool {
    !line.contains("\"id\"")
}

/// Counts one message read at `done`: an answer to a request in `outstanding` (id, when sent or
/// due) is removed from it and recorded (an error answer as an error); an answer to no request
/// outstanding is unanswered; a notification answers nothing and is skipped.
fn settle(
    outstanding: &mut VecDeque<(u64, Instant)>,
    message: &str,
    done: Instant,
    recorder: &Shared,
) {
    if is_notification(message) {
        return;
    }
    let position =
        answer_id(message).and_then(|id| outstanding.iter().position(|(sent, _)| *sent == id));
    match position.and_then(|p| outstanding.remove(p)) {
        Some((_, at)) => recorder
            .borrow_mut()
            .answered(!message.contains("\"error\""), at, done),
        None => recorder.borrow_mut().unanswered(1),
    }
}

/// The generator's `initialize` request (id 0), every transport's.
macro_rules! initialize_request {
    () => {
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"erlmcp-bench\",\"version\":\"1\"}}}"
    };
}

/// The notification that follows it.
macro_rules! initialized_notification {
    () => {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"
    };
}

/// The generator's `initialize` (id 0), as a message (WebSocket, an HTTP body).
const INITIALIZE: &str = initialize_request!();
/// `notifications/initialized`, as a message.
const INITIALIZED: &str = initialized_notification!();
/// Both, as lines of the TCP and stdio streams.
const TCP_INITIALIZE: &str = concat!(
    initialize_request!(),
    "\n",
    initialized_notification!(),
    "\n"
);

/// Reads one line; end of stream is an error (the server closed the connection).
async fn read_answer<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut R,
    line: &mut String,
) -> std::io::Result<()> {
    line.clear();
    if lines.read_line(line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(())
}

/// Closed loop: `pipeline` requests outstanding, a new one sent as each answer comes.
async fn drive_connection<R, W>(
    read: R,
    mut write: W,
    plan: LoadPlan,
    recorder: Shared,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let stop_at = recorder.borrow().stop_at;
    let mut lines = BufReader::with_capacity(64 * 1024, read);
    let text = "x".repeat(plan.payload);
    write.write_all(TCP_INITIALIZE.as_bytes()).await?;
    let mut line = String::new();
    read_answer(&mut lines, &mut line).await?;
    let mut outstanding: VecDeque<(u64, Instant)> = VecDeque::with_capacity(plan.pipeline);
    let mut next_id = 1u64;
    let mut batch = String::new();
    loop {
        let now = Instant::now();
        if now < stop_at {
            batch.clear();
            while outstanding.len() < plan.pipeline {
                batch.push_str(&request_line(next_id, plan.tool, &text));
                outstanding.push_back((next_id, now));
                next_id += 1;
            }
            if !batch.is_empty() {
                write.write_all(batch.as_bytes()).await?;
            }
        } else if outstanding.is_empty() {
            break;
        }
        let read =
            tokio::time::timeout_at((stop_at + DRAIN).into(), read_answer(&mut lines, &mut line));
        let Ok(read) = read.await else {
            // A server that stopped answering: what it owes is unanswered.
            recorder.borrow_mut().unanswered(outstanding.len() as u64);
            return Ok(());
        };
        read?;
        settle(&mut outstanding, &line, Instant::now(), &recorder);
    }
    Ok(())
}

/// Open loop: requests written on the connection's schedule while a reader matches answers to
/// them by id; latency is from when each was due.
async fn drive_open<R, W>(
    read: R,
    mut write: W,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let stop_at = recorder.borrow().stop_at;
    let mut lines = BufReader::with_capacity(64 * 1024, read);
    write.write_all(TCP_INITIALIZE.as_bytes()).await?;
    let mut line = String::new();
    read_answer(&mut lines, &mut line).await?;
    let text = "x".repeat(plan.payload);
    let flight = InFlight::default();
    let schedule = Schedule::of(&plan, index, stop_at);
    let writer = flight.write_on_schedule(&mut write, schedule, &recorder, |k, batch| {
        batch.push_str(&request_line(k + 1, plan.tool, &text))
    });
    let reader = async {
        while flight.wait_for_one().await {
            let read = tokio::time::timeout_at(
                (stop_at + DRAIN).into(),
                read_answer(&mut lines, &mut line),
            );
            let Ok(read) = read.await else {
                let left = flight.outstanding.borrow().len() as u64;
                recorder.borrow_mut().unanswered(left);
                return Ok(());
            };
            read?;
            let done = Instant::now();
            settle(&mut flight.outstanding.borrow_mut(), &line, done, &recorder);
        }
        Ok::<_, std::io::Error>(())
    };
    let (written, read) = tokio::join!(writer, reader);
    written.and(read)
}

/// The baseline server: echoes every line back unchanged (each line carries its own id).
pub(crate) async fn raw_echo_server(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("echo server listening on {}", listener.local_addr()?);
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// Opens `connections` WebSocket sessions on `addr` (`/ws`), initializes each, and holds them
/// idle for `hold`; for measuring what an idle connection costs the server. With a `ramp` the
/// openings are spread evenly over that long (as a server sees clients arrive), else they come
/// one after the other as fast as the server takes them.
pub(crate) async fn hold_idle_websockets(
    addr: SocketAddr,
    connections: usize,
    hold: Duration,
    ramp: Duration,
    offer_deflate: bool,
) -> std::io::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let init = INITIALIZE;
    let mut sockets = Vec::with_capacity(connections);
    let started = tokio::time::Instant::now();
    for n in 0..connections {
        tokio::time::sleep_until(started + ramp.mul_f64(n as f64 / connections as f64)).await;
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .map_err(std::io::Error::other)?;
        if offer_deflate {
            // As browsers do; the answers read here are too small to come compressed.
            request.headers_mut().insert(
                "sec-websocket-extensions",
                axum::http::HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
            );
        }
        let (mut socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(std::io::Error::other)?;
        if offer_deflate && !response.headers().contains_key("sec-websocket-extensions") {
            return Err(std::io::Error::other(
                "the server did not agree to permessage-deflate",
            ));
        }
        socket
            .send(Message::Text(init.into()))
            .await
            .map_err(std::io::Error::other)?;
        socket.next().await;
        sockets.push(socket);
    }
    eprintln!("holding {connections} idle websocket sessions for {hold:?}");
    tokio::time::sleep(hold).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_reads_ids_from_answers_and_echoed_requests() {
        assert_eq!(
            answer_id(r#"{"jsonrpc":"2.0","id":42,"result":{}}"#),
            Some(42)
        );
        assert_eq!(
            answer_id(request_line(7, BenchTool::Echo, "x").trim_end()),
            Some(7)
        );
        assert_eq!(answer_id(r#"{"jsonrpc":"2.0","method":"x"}"#), None);
        assert!(is_notification(r#"{"jsonrpc":"2.0","method":"x"}"#));
        assert!(!is_notification(
            r#"{"jsonrpc":"2.0","id":null,"error":{}}"#
        ));
    }
}
