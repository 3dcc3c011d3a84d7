//! Owns the Streamable HTTP side of the load generator: `tools/call echo` POSTed to `/mcp` on
//! keep-alive connections (HTTP/1.1 pipelining: answers come back in order), in session,
//! stateless 2026-07-28 or SSE mode, closed loop or open loop. Reuses the parent's recorder,
//! threads and open-loop schedule.

use super::{
    DRAIN, HttpMode, InFlight, LoadPlan, LoadRun, Progress, Schedule, Shared, request_line,
    run_with,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One HTTP answer read off a keep-alive connection: (session id header, body).
pub(super) async fn read_http_answer<R: tokio::io::AsyncBufRead + Unpin>(
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

/// Opens an MCP session on a keep-alive connection (`reader` and `write` its two sides):
/// `initialize`, then `notifications/initialized` carrying the session id the first answer gave;
/// that id (`None` when the server made no session). Every HTTP client of the bench opens its
/// sessions here.
pub(super) async fn open_session<R, W>(
    reader: &mut R,
    write: &mut W,
    host: &str,
    line: &mut String,
) -> std::io::Result<Option<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    write
        .write_all(http_post(host, None, super::INITIALIZE).as_bytes())
        .await?;
    let session = read_http_answer(reader, line).await?.0;
    write
        .write_all(http_post(host, session.as_deref(), super::INITIALIZED).as_bytes())
        .await?;
    read_http_answer(reader, line).await?;
    Ok(session)
}

/// As [`open_session`], where a session must be made.
pub(super) async fn open_made_session<R, W>(
    reader: &mut R,
    write: &mut W,
    host: &str,
    line: &mut String,
) -> std::io::Result<String>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    open_session(reader, write, host, line)
        .await?
        .ok_or_else(|| std::io::Error::other("initialize made no session"))
}

pub(super) fn http_post(host: &str, session: Option<&str>, body: &str) -> String {
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

/// The request of `plan.http_mode` with id `id`, appended to `batch`.
fn push_request(
    plan: &LoadPlan,
    host: &str,
    session: Option<&str>,
    id: u64,
    text: &str,
    batch: &mut String,
) {
    match plan.http_mode {
        HttpMode::Session => {
            let body = request_line(id, plan.tool, text);
            batch.push_str(&http_post(host, session, body.trim_end()));
        }
        HttpMode::Sse => {
            let body = progress_request(id, text);
            batch.push_str(&http_post(host, session, &body));
        }
        HttpMode::Stateless => batch.push_str(&stateless_post(host, id, text)),
    }
}

/// Whether an answer's body is a result (not an error).
fn answer_ok(body: &str) -> bool {
    body.contains("\"result\"") && !body.contains("\"error\"")
}

/// The client side of TLS for the HTTP load (`--tls-ca`): set once, before the load starts.
pub(crate) static TLS: std::sync::OnceLock<(tokio_rustls::TlsConnector, ServerName<'static>)> =
    std::sync::OnceLock::new();

/// A TLS client trusting the CA certificates of the PEM file `ca`, naming the server `name`.
pub(crate) fn tls_client(
    ca: &std::path::Path,
    name: &str,
) -> std::io::Result<(tokio_rustls::TlsConnector, ServerName<'static>)> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", ca.display())))?
    {
        let cert = cert.map_err(|e| std::io::Error::other(format!("{}: {e}", ca.display())))?;
        roots.add(cert).map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

use rustls::pki_types::ServerName;

async fn drive_http_connection(
    stream: TcpStream,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()> {
    match TLS.get() {
        None => {
            let (read, write) = stream.into_split();
            drive_http_halves(read, write, plan, index, recorder).await
        }
        Some((connector, name)) => {
            let stream = connector.connect(name.clone(), stream).await?;
            let (read, write) = tokio::io::split(stream);
            drive_http_halves(read, write, plan, index, recorder).await
        }
    }
}

async fn drive_http_halves<R, W>(
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
    let host = plan.addr.to_string();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = String::new();
    let mut session = None;
    if plan.http_mode != HttpMode::Stateless {
        session = open_session(&mut reader, &mut write, &host, &mut line).await?;
    }
    drive_http_calls(
        &mut reader,
        &mut write,
        plan,
        index,
        recorder,
        session.as_deref(),
    )
    .await
}

/// Drives the calls of one keep-alive connection whose session (if any) is made: open loop
/// when the plan has a rate, closed loop otherwise. The cluster's forward profile drives a
/// session made on another node through it.
pub(super) async fn drive_http_calls<R, W>(
    mut reader: R,
    mut write: W,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
    session: Option<&str>,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let stop_at = recorder.borrow().stop_at;
    let host = plan.addr.to_string();
    let mut line = String::new();
    let text = "x".repeat(plan.payload);
    if plan.rate.is_some() {
        let flight = InFlight::default();
        let schedule = Schedule::of(&plan, index, stop_at);
        let writer = flight.write_on_schedule(&mut write, schedule, &recorder, |k, batch| {
            push_request(&plan, &host, session, k + 1, &text, batch)
        });
        let reader = async {
            while flight.wait_for_one().await {
                let read = tokio::time::timeout_at(
                    (stop_at + DRAIN).into(),
                    read_http_answer(&mut reader, &mut line),
                );
                let Ok(read) = read.await else {
                    let left = flight.outstanding.borrow().len() as u64;
                    recorder.borrow_mut().unanswered(left);
                    return Ok(());
                };
                let (_, body) = read?;
                let done = Instant::now();
                let due = flight.outstanding.borrow_mut().pop_front();
                if let Some((_, due)) = due {
                    recorder.borrow_mut().answered(answer_ok(&body), due, done);
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let (written, read) = tokio::join!(writer, reader);
        return written.and(read);
    }
    let mut next_id = 1u64;
    let mut batch = String::new();
    while Instant::now() < stop_at {
        let sent_at = Instant::now();
        batch.clear();
        for _ in 0..plan.pipeline {
            push_request(&plan, &host, session, next_id, &text, &mut batch);
            next_id += 1;
        }
        write.write_all(batch.as_bytes()).await?;
        for answered in 0..plan.pipeline {
            let read = tokio::time::timeout_at(
                (stop_at + DRAIN).into(),
                read_http_answer(&mut reader, &mut line),
            );
            let Ok(read) = read.await else {
                // A server that stopped answering: what it owes is unanswered.
                recorder
                    .borrow_mut()
                    .unanswered((plan.pipeline - answered) as u64);
                return Ok(());
            };
            let (_, body) = read?;
            recorder
                .borrow_mut()
                .answered(answer_ok(&body), sent_at, Instant::now());
        }
    }
    Ok(())
}

/// Like [`super::run_load`], over Streamable HTTP: POST `/mcp` on keep-alive connections
/// (session id kept when the server gives one), `pipeline` requests written back to back per
/// round (closed loop), or on the connection's schedule (open loop).
pub(crate) fn run_http_load(plan: LoadPlan, progress: Arc<Progress>) -> std::io::Result<LoadRun> {
    run_with(plan, progress, |stream, plan, index, recorder| {
        Box::pin(drive_http_connection(stream, plan, index, recorder))
    })
}

/// What a request on a new connection costs: `count` times one after the other, connect (and,
/// with [`TLS`] set, the TLS handshake), one stateless `tools/call echo` POST, its answer, close.
/// The per-connection times in µs: (mean, p50, p99).
pub(crate) async fn new_connection_cost(
    addr: std::net::SocketAddr,
    count: usize,
) -> std::io::Result<(f64, f64, f64)> {
    let host = addr.to_string();
    let request = stateless_post(&host, 1, "x");
    let mut times = Vec::with_capacity(count);
    let mut line = String::new();
    for _ in 0..count.max(1) {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let body = match TLS.get() {
            None => one_request(stream, &request, &mut line).await?,
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), stream).await?;
                one_request(stream, &request, &mut line).await?
            }
        };
        if !answer_ok(&body) {
            return Err(std::io::Error::other(format!("not a result: {body}")));
        }
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((mean, at(0.5), at(0.99)))
}

/// Writes `request` on `stream`, reads its answer's body, closes.
async fn one_request<S>(stream: S, request: &str, line: &mut String) -> std::io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(request.as_bytes()).await?;
    let (_, body) = read_http_answer(&mut reader, line).await?;
    let _ = reader.get_mut().shutdown().await;
    Ok(body)
}
