//! Owns a minimal blocking HTTP/1.1 client for black-box tests: one request per connection
//! (`Connection: close`), chunked bodies decoded, every read bounded by a timeout so an open SSE
//! stream returns what arrived instead of hanging.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `data:` payloads of an SSE body, parsed as JSON (empty priming data skipped).
    pub fn sse_messages(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    /// The `id:` values of an SSE body.
    pub fn sse_ids(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(str::to_owned)
            .collect()
    }
}

/// Sends one request to `/mcp`; reads until the server closes or `wait` passes.
pub fn request(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    wait: Duration,
) -> Reply {
    request_to(addr, method, "/mcp", headers, body, wait)
}

/// Sends one request to `path`; reads until the server closes or `wait` passes.
pub fn request_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    wait: Duration,
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\ncontent-length: {}\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let deadline = Instant::now() + wait;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    parse(&raw)
}

/// The JSON content type and the `Accept` a Streamable HTTP client sends.
pub const JSON: (&str, &str) = ("content-type", "application/json");
pub const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");

/// A JSON-RPC message POSTed to `/mcp`, in a session or not, with `extra` headers.
pub fn post(
    addr: SocketAddr,
    session: Option<&str>,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Reply {
    let mut headers = vec![JSON, ACCEPT];
    if let Some(id) = session {
        headers.push(("mcp-session-id", id));
    }
    headers.extend_from_slice(extra);
    request(
        addr,
        "POST",
        &headers,
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
}

/// An `initialize` request (revision 2025-11-25).
pub fn initialize_request() -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params":
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// A session made with `initialize` and `notifications/initialized`: its id.
pub fn initialize(addr: SocketAddr) -> String {
    let reply = post(addr, None, &initialize_request(), &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["result"]["protocolVersion"], "2025-11-25");
    let id = reply
        .header("mcp-session-id")
        .expect("session id")
        .to_owned();
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let note = post(addr, Some(&id), &initialized, &[]);
    assert_eq!(note.status, 202);
    id
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break;
        };
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// The stateless revision (2026-07-28).
pub const MODERN: &str = "2026-07-28";

/// The per-request `_meta` envelope of a stateless request.
pub fn envelope(capabilities: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "erlmcp-tests", "version": "1"},
    })
}

/// POSTs one stateless (2026-07-28) request with routing headers derived from the body
/// (`overrides` replace them; an empty value leaves the header out).
pub fn post_stateless(
    addr: SocketAddr,
    body: &serde_json::Value,
    overrides: &[(&str, &str)],
) -> Reply {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let name = body["params"]["name"]
        .as_str()
        .or(body["params"]["uri"].as_str())
        .map(str::to_owned);
    let mut headers: Vec<(&str, &str)> = vec![JSON, ACCEPT];
    for (key, value) in [
        ("mcp-protocol-version", Some(MODERN)),
        ("mcp-method", Some(method.as_str())),
        ("mcp-name", name.as_deref()),
    ] {
        if let Some(value) = value
            && !overrides.iter().any(|(k, _)| *k == key)
        {
            headers.push((key, value));
        }
    }
    headers.extend(overrides.iter().filter(|(_, v)| !v.is_empty()));
    request(
        addr,
        "POST",
        &headers,
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
}
