//! Owns `erlmcp bench`: a TCP load generator for newline-delimited JSON-RPC (`tools/call echo`
//! over many pipelined connections, reporting calls/s and latency percentiles), and the baseline
//! it is compared with — a raw tokio line-echo server that does no JSON work at all.
//!
//! The generator runs on one thread (a current-thread runtime) so that, pinned with `taskset`,
//! it leaves the other core to the server under test.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use tokio::net::{TcpListener, TcpStream};

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadReport {
    /// Connections used.
    pub(crate) connections: usize,
    /// Requests kept outstanding per connection.
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
    /// Answers that were errors or malformed.
    pub(crate) errors: u64,
}

/// Load parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadPlan {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Connections.
    pub(crate) connections: usize,
    /// Outstanding requests per connection.
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

struct ConnResult {
    histogram: Histogram<u64>,
    calls: u64,
    errors: u64,
}

impl ConnResult {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            histogram: Histogram::<u64>::new(3).map_err(std::io::Error::other)?,
            calls: 0,
            errors: 0,
        })
    }

    /// Counts one answer; only calls sent and answered inside `window` are measured.
    fn answered(&mut self, ok: bool, sent_at: Instant, done: Instant, window: (Instant, Instant)) {
        if !ok {
            self.errors += 1;
        }
        if sent_at >= window.0 && done <= window.1 {
            self.calls += 1;
            let _ = self
                .histogram
                .record((done - sent_at).as_nanos().max(1) as u64);
        }
    }
}

/// Runs the load (newline-delimited JSON-RPC over TCP) and reports; fails if a connection
/// cannot be set up.
pub(crate) async fn run_load(plan: LoadPlan) -> std::io::Result<LoadReport> {
    run_with(plan, |stream, plan, from, to| {
        Box::pin(drive_connection(stream, plan, from, to))
    })
    .await
}

type Driver =
    fn(
        TcpStream,
        LoadPlan,
        Instant,
        Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<ConnResult>>>>;

async fn run_with(plan: LoadPlan, drive: Driver) -> std::io::Result<LoadReport> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.duration;
    let mut tasks = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let stream = TcpStream::connect(plan.addr).await?;
        stream.set_nodelay(true)?;
        tasks.push(tokio::task::spawn_local(drive(
            stream,
            plan,
            measure_from,
            stop_at,
        )));
    }
    let mut histogram = Histogram::<u64>::new(3).map_err(std::io::Error::other)?;
    let (mut calls, mut errors) = (0, 0);
    for task in tasks {
        let result = task.await.map_err(std::io::Error::other)??;
        histogram
            .add(&result.histogram)
            .map_err(std::io::Error::other)?;
        calls += result.calls;
        errors += result.errors;
    }
    let seconds = plan.duration.as_secs_f64();
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(LoadReport {
        connections: plan.connections,
        pipeline: plan.pipeline,
        seconds,
        calls,
        calls_per_sec: calls as f64 / seconds,
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: histogram.max() as f64 / 1000.0,
        errors,
    })
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

async fn drive_connection(
    stream: TcpStream,
    plan: LoadPlan,
    measure_from: Instant,
    stop_at: Instant,
) -> std::io::Result<ConnResult> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::with_capacity(64 * 1024, read);
    let text = "x".repeat(plan.payload);
    let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"erlmcp-bench\",\"version\":\"1\"}}}\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
    write.write_all(init.as_bytes()).await?;
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    let mut result = ConnResult::new()?;
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
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let done = Instant::now();
        let position =
            answer_id(&line).and_then(|id| outstanding.iter().position(|(sent, _)| *sent == id));
        let Some((_, sent_at)) = position.and_then(|p| outstanding.remove(p)) else {
            result.errors += 1;
            continue;
        };
        let ok = !line.contains("\"error\"");
        result.answered(ok, sent_at, done, (measure_from, stop_at));
    }
    Ok(result)
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
    let init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{}}}";
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

/// One HTTP answer read off a keep-alive connection: (session id header, body).
async fn read_http_answer<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> std::io::Result<(Option<String>, String)> {
    let (mut length, mut chunked, mut session) = (0usize, false, None);
    line.clear();
    if reader.read_line(line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if !line.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(format!(
            "HTTP error: {}",
            line.trim_end()
        )));
    }
    loop {
        line.clear();
        reader.read_line(line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "mcp-session-id" => session = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    let mut body = Vec::with_capacity(length);
    if chunked {
        loop {
            line.clear();
            reader.read_line(line).await?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok((session, String::from_utf8_lossy(&body).into_owned()))
}

fn http_post(host: &str, session: Option<&str>, body: &str) -> String {
    let session = session
        .map(|id| format!("mcp-session-id: {id}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-06-18\r\n{session}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A 2026-07-28 `tools/call echo` POST: envelope in `_meta`, routing headers.
fn stateless_post(host: &str, id: u64, text: &str) -> String {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{text}\"}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}"
    );
    format!(
        "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: echo\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A session `tools/call echo` carrying a progress token (the answer comes over SSE).
fn progress_request(id: u64, text: &str) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{text}\"}},\"_meta\":{{\"progressToken\":{id}}}}}}}"
    )
}

async fn drive_http_connection(
    stream: TcpStream,
    plan: LoadPlan,
    measure_from: Instant,
    stop_at: Instant,
) -> std::io::Result<ConnResult> {
    let host = plan.addr.to_string();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = String::new();
    let mut session = None;
    if plan.http_mode != HttpMode::Stateless {
        let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"erlmcp-bench\",\"version\":\"1\"}}}";
        write
            .write_all(http_post(&host, None, init).as_bytes())
            .await?;
        session = read_http_answer(&mut reader, &mut line).await?.0;
        let initialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
        write
            .write_all(http_post(&host, session.as_deref(), initialized).as_bytes())
            .await?;
        read_http_answer(&mut reader, &mut line).await?;
    }
    let text = "x".repeat(plan.payload);
    let mut result = ConnResult::new()?;
    let mut next_id = 1u64;
    let mut batch = String::new();
    while Instant::now() < stop_at {
        let sent_at = Instant::now();
        batch.clear();
        for _ in 0..plan.pipeline {
            match plan.http_mode {
                HttpMode::Session => {
                    let body = request_line(next_id, plan.tool, &text);
                    batch.push_str(&http_post(&host, session.as_deref(), body.trim_end()));
                }
                HttpMode::Sse => {
                    let body = progress_request(next_id, &text);
                    batch.push_str(&http_post(&host, session.as_deref(), &body));
                }
                HttpMode::Stateless => batch.push_str(&stateless_post(&host, next_id, &text)),
            }
            next_id += 1;
        }
        write.write_all(batch.as_bytes()).await?;
        for _ in 0..plan.pipeline {
            let (_, body) = read_http_answer(&mut reader, &mut line).await?;
            let ok = body.contains("\"result\"") && !body.contains("\"error\"");
            result.answered(ok, sent_at, Instant::now(), (measure_from, stop_at));
        }
    }
    Ok(result)
}

/// Like [`run_load`], over Streamable HTTP: POST `/mcp` on keep-alive connections (session id
/// kept when the server gives one), `pipeline` requests written back to back per round.
pub(crate) async fn run_http_load(plan: LoadPlan) -> std::io::Result<LoadReport> {
    run_with(plan, |stream, plan, from, to| {
        Box::pin(drive_http_connection(stream, plan, from, to))
    })
    .await
}

/// `erlmcp bench store`: measures the store with typical session records and prints the figures.
pub(crate) fn store(
    sessions: usize,
    dir: Option<std::path::PathBuf>,
    keep: bool,
    json: bool,
) -> std::io::Result<()> {
    let scratch = dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("erlmcp-bench-store-{}", std::process::id()));
    let measured = erlmcp::transport::http::kept::snapshot_figures(&scratch, sessions);
    if keep {
        eprintln!("the store's files are kept in {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let figures = measured.map_err(std::io::Error::other)?;
    if json {
        println!("{}", serde_json::to_string(&figures).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{} sessions ({} bytes each, bincode): snapshot {:.0} ms, {} bytes ({:.1} per session); \
         restore {:.0} ms; puts through the change log {:.0}/s unsynced, {:.0}/s fsynced; \
         {:.0} bytes of memory per session held; the same puts into redb (a transaction each): \
         {:.0}/s Durability::None, {:.0}/s Durability::Immediate",
        figures.entries,
        figures.value_bytes,
        figures.snapshot_ms,
        figures.snapshot_bytes,
        figures.snapshot_bytes_per_entry,
        figures.restore_ms,
        figures.logged_puts_per_sec,
        figures.fsynced_puts_per_sec,
        figures.memory_bytes_per_entry,
        figures.redb_unsynced_puts_per_sec,
        figures.redb_fsynced_puts_per_sec,
    );
    Ok(())
}

/// Prints `erlmcp bench core`'s report: a table, or one JSON object.
pub(crate) fn print_core(report: &erlmcp::core_bench::CoreReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    println!(
        "{:<24} {:<9} {:>14} {:>9} {:>9}  through",
        "operation", "side", "ops/s", "p50 ns", "p99 ns"
    );
    for op in &report.ops {
        println!(
            "{:<24} {:<9} {:>14.0} {:>9.1} {:>9.1}  {}",
            op.name, op.side, op.ops_per_sec, op.p50_ns, op.p99_ns, op.through
        );
    }
    for (name, ratio) in &report.time_ratio_vs_baseline {
        println!("{name}: erlmcp's time / baseline's = {ratio:.2}");
    }
    println!(
        "mix of {} on {} threads: {:.0} ops/s (p50 {:.1} ns, p99 {:.1} ns per operation)",
        report.mix.join(" + "),
        report.mix_threads,
        report.mix_ops_per_sec,
        report.mix_p50_ns,
        report.mix_p99_ns,
    );
    println!(
        "the same mix of the baselines on {} threads: {:.0} ops/s (erlmcp's mix / theirs = {:.2})",
        report.mix_threads,
        report.baseline_mix_ops_per_sec,
        report.mix_ops_per_sec / report.baseline_mix_ops_per_sec.max(1.0),
    );
    println!(
        "core mix of {} on {} threads: {:.0} ops/s; of the baselines: {:.0} ops/s (ratio {:.2})",
        report.core_mix.join(" + "),
        report.mix_threads,
        report.core_mix_ops_per_sec,
        report.baseline_core_mix_ops_per_sec,
        report.core_mix_ops_per_sec / report.baseline_core_mix_ops_per_sec.max(1.0),
    );
    for alone in &report.on_all_threads {
        println!(
            "{} alone on {} threads: {:.0} ops/s; its baseline: {:.0} ops/s (ratio {:.2})",
            alone.name,
            alone.threads,
            alone.ops_per_sec,
            alone.baseline_ops_per_sec,
            alone.ops_per_sec / alone.baseline_ops_per_sec.max(1.0),
        );
    }
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
    }
}
