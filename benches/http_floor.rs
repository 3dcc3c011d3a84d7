//! The floor of the HTTP load bench: what an HTTP server alone costs on this machine for the
//! bench's load, with no MCP in it. Every `POST` gets a fixed JSON-RPC result carrying the
//! request's id (found by a byte scan, no JSON parsed), on keep-alive HTTP/1.1 connections with
//! TCP_NODELAY. Two servers, one per run:
//! - hyper (the default), on the same builder and options as erlmcp's hyper path (keep-alive,
//!   pipeline flush; no hyper header read timeout, which erlmcp does not use: it watches idle
//!   connections itself). A server doing MCP on hyper cannot go faster than this.
//! - `--own-http1`: the shape of erlmcp's fast lane — httparse on the connection's buffer, the
//!   answer's bytes written directly, one write per batch of answers. What a server of that shape
//!   can reach on this machine with no MCP work at all.
//!
//! `scripts/bench-http` and its siblings run them beside rmcp and erlmcp, so a goal above them is
//! seen to be out of reach here.
//!
//! Not a criterion bench: run as `cargo bench --bench http_floor -- --addr 127.0.0.1:PORT
//! [--own-http1]` (it serves until killed).

#[path = "support/serve_addr.rs"]
mod serve_addr;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serve_addr::serve_addr;
use std::convert::Infallible;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The request's `"id":` value (digits, or a string with its quotes), if it has one.
fn request_id(body: &[u8]) -> &[u8] {
    let Some(at) = body.windows(5).position(|w| w == b"\"id\":") else {
        return b"null";
    };
    let rest = &body[at + 5..];
    let end = rest
        .iter()
        .position(|&b| b == b',' || b == b'}')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The fixed answer to a request with this body.
fn answer_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(request_id(body));
    out.extend_from_slice(br#","result":{"content":[{"type":"text","text":"x"}]}}"#);
    out
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer_body(&body))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn serve_hyper(stream: tokio::net::TcpStream) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).pipeline_flush(true);
    let _ = builder
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper::service::service_fn(answer),
        )
        .await;
}

/// Every request whole in the buffer is answered, the answers written together, then the
/// socket is read again. A request it cannot read ends the connection.
async fn serve_own_http1(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = bytes::BytesMut::with_capacity(8192);
    let mut out = Vec::with_capacity(1024);
    loop {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut slots);
            let head = match request.parse(&buf) {
                Ok(httparse::Status::Complete(head)) => head,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return Ok(()),
            };
            let length = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < head + length {
                break;
            }
            let body = answer_body(&buf[head..head + length]);
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\ndate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\n");
            out.extend_from_slice(&body);
            bytes::Buf::advance(&mut buf, head + length);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        buf.reserve(4096);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let Some(addr) = serve_addr("http_floor") else {
        return Ok(());
    };
    let own_http1 = std::env::args().any(|a| a == "--own-http1");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            let server = if own_http1 { "own HTTP/1.1" } else { "hyper" };
            eprintln!(
                "http floor ({server}) listening on {}",
                listener.local_addr()?
            );
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                if own_http1 {
                    tokio::spawn(serve_own_http1(stream));
                } else {
                    tokio::spawn(serve_hyper(stream));
                }
            }
        })
}
