//! The floor of the HTTP load bench: what hyper alone costs on this machine for the bench's load,
//! with no MCP in it. Every `POST` gets a fixed JSON-RPC result carrying the request's id (found
//! by a byte scan, no JSON parsed), on keep-alive HTTP/1.1 connections with TCP_NODELAY, on the
//! same hyper server builder and options as `erlmcp start --http` (keep-alive, pipeline flush;
//! no hyper header read timeout, which erlmcp does not use either: it watches idle connections
//! itself, for a few atomic counts a request, which the floor does not pay). A server doing MCP on hyper cannot go faster than this; `scripts/bench-http` runs it
//! beside rmcp and erlmcp, so a goal above it is seen to be out of reach here.
//!
//! Not a criterion bench: run as `cargo bench --bench http_floor -- --addr 127.0.0.1:PORT` (it
//! serves until killed).

#[path = "support/serve_addr.rs"]
mod serve_addr;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serve_addr::serve_addr;
use std::convert::Infallible;

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

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(request_id(&body));
    out.extend_from_slice(br#","result":{"content":[{"type":"text","text":"x"}]}}"#);
    let mut response = Response::new(Full::new(Bytes::from(out)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let Some(addr) = serve_addr("http_floor") else {
        return Ok(());
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("http floor listening on {}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.keep_alive(true).pipeline_flush(true);
                    let _ = builder
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            hyper::service::service_fn(answer),
                        )
                        .await;
                });
            }
        })
}
