//! Black-box tests of `write_timeout`: a client that sends requests and never reads their
//! answers fills the kernel's buffers, then the server's queue; the server closes it once its
//! output has not moved for `write_timeout`, instead of holding the connection and the queued
//! answers (until `idle_timeout` or for ever). Over TCP and WebSocket (the client's receive buffer
//! kept small so that the buffers fill quickly) and stdio (where closing the connection stops the
//! node).

use crate::support::home::PrivateHome;
use crate::support::node;

use futures::{SinkExt, StreamExt};
use node::Node;
use serde_json::json;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What the server logs when it closes such a client.
const CLOSED: &str = "takes no output (write_timeout)";
/// Requests sent without reading (their answers: a few KiB each, megabytes in all).
const REQUESTS: usize = 3000;
/// How long after the client stops sending the server must have closed it: the write timeout
/// (500 ms) with a wide margin for a loaded machine, far below `idle_timeout` (300 s).
const WITHIN: Duration = Duration::from_secs(8);

const CONFIG: &str = "write_timeout = 500\n\
                      [tcp_opts]\nbuffer = 4096\nhigh_watermark = 65536\n";

/// A loopback socket with a small receive buffer.
async fn small_socket(addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

fn line(message: serde_json::Value) -> Vec<u8> {
    let mut bytes = message.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn tools_list(id: usize) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}})
}

fn initialize() -> [serde_json::Value; 2] {
    [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ]
}

#[test]
fn a_tcp_client_that_never_reads_is_closed_at_write_timeout() {
    let mut node = Node::tcp(Some(CONFIG));
    let addr = node.tcp.unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(small_socket(addr)).into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    // Once the server stops reading, this client's writes block: bounded.
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    for message in initialize() {
        writer.write_all(&line(message)).unwrap();
    }
    let mut sent = 0;
    for id in 1..=REQUESTS {
        if writer.write_all(&line(tools_list(id))).is_err() {
            break;
        }
        sent += 1;
    }
    let stopped = Instant::now();
    node.wait_log(CLOSED);
    assert!(
        stopped.elapsed() < WITHIN,
        "closed {:?} after the client stopped sending",
        stopped.elapsed()
    );

    // Reading now gets what the kernel held, then the end: not the answers still queued.
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut answers, mut buf) = (0, vec![0u8; 64 * 1024]);
    let ended = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answers += buf[..n].iter().filter(|b| **b == b'\n').count(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break false,
            Err(_) => break true,
        }
    };
    assert!(ended, "the connection is still open");
    assert!(
        answers < sent,
        "{answers} answers of {sent} requests: the queued answers were not dropped"
    );
    // The node goes on serving others.
    let mut other = node.connect();
    other.initialize("2025-06-18", json!({}));
    assert_eq!(other.call(1, "ping", json!({}))["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_reads_is_closed_at_write_timeout() {
    let mut node = Node::http(Some(CONFIG));
    let addr = node.http.unwrap();
    let request = format!("ws://{addr}/ws").into_client_request().unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(request, small_socket(addr).await)
        .await
        .unwrap();
    let messages = initialize()
        .into_iter()
        .chain((1..=REQUESTS).map(tools_list));
    let mut sent = 0;
    for message in messages {
        let text = Message::Text(message.to_string().into());
        // Once the server stops reading, this client's sends block: bounded.
        match tokio::time::timeout(Duration::from_secs(2), socket.send(text)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    let stopped = Instant::now();
    let node = tokio::task::spawn_blocking(move || {
        node.wait_log(CLOSED);
        node
    })
    .await
    .unwrap();
    assert!(
        stopped.elapsed() < WITHIN,
        "closed {:?} after the client stopped sending",
        stopped.elapsed()
    );

    let mut answers = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => answers += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the socket is still open");
    assert!(
        answers < sent,
        "{answers} answers of {sent} messages: the queued answers were not dropped"
    );
    drop(node);
}

/// Kills the child when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stdio_client_that_never_reads_is_closed_at_write_timeout_and_the_node_exits() {
    use std::process::Stdio;
    // Removed when the test ends, passed or not.
    let config = tempfile::Builder::new()
        .prefix("erlmcp-test-write-timeout-")
        .suffix(".toml")
        .tempfile()
        .unwrap()
        .into_temp_path();
    std::fs::write(&config, "write_timeout = 500\n").unwrap();
    let home = PrivateHome::new();
    let child = home
        .command()
        .args(["start", "--stdio", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    // stdout is held open and never read.
    let _stdout = child.0.stdout.take().unwrap();
    let mut stdin = child.0.stdin.take().unwrap();
    // The writes block once the node stops reading; they end when it exits.
    let writer = std::thread::spawn(move || {
        let messages = initialize()
            .into_iter()
            .chain((1..=REQUESTS).map(tools_list));
        for message in messages {
            if stdin.write_all(&line(message)).is_err() {
                return;
            }
        }
        // Keep stdin open: the node must not stop because it closed.
        std::thread::sleep(WITHIN + Duration::from_secs(2));
    });
    let started = Instant::now();
    let exited = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > WITHIN + Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exited.is_some(),
        "the node still runs {:?} after its stdio client stopped reading",
        started.elapsed()
    );
    drop(child);
    let _ = writer.join();
}
