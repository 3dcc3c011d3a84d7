//! Black-box test of the memory guard through the real binary: a node with a small
//! `memory_limit` under a flood of sessions that each hold 2 MB of an unfinished message sheds new
//! sessions and new work (-32000, reason `memory`; `ping` still answers), never dies, and serves
//! again once the flood lets go of its memory.

use crate::support::{http, node};

use node::Node;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const LIMIT_MIB: u64 = 64;
const FLOOD: usize = 40;
const HELD: usize = 2_000_000;

/// The answer to `initialize` on a new connection.
fn initialize_on_new_session(node: &Node) -> Value {
    let mut client = node.connect();
    client.call(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
    )
}

fn until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn over_the_memory_limit_new_sessions_are_shed_the_node_lives_and_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "memory_limit = {}\nmemory_clear_percent = 80\n[queue]\nretry_after = 500\n",
            LIMIT_MIB * 1024 * 1024
        ),
    )
    .unwrap();
    let args = ["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--config"];
    let mut node = Node::with_env(&[&args[..], &[config.to_str().unwrap()]].concat(), &[]);
    node.find_log("memory guard on");
    let http = node.find_addr("http listening on ");
    let started = http::post(http, None, &http::initialize_request(), &[]);
    assert_eq!(
        started.status, 200,
        "below the limit an HTTP session starts"
    );
    assert!(
        initialize_on_new_session(&node)["result"].is_object(),
        "below the limit a session starts"
    );

    // The flood: every connection holds 2 MB of a message it never finishes.
    let mut flood = Vec::new();
    let mut chunk = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#.to_vec();
    chunk.resize(HELD, b'x');
    for _ in 0..FLOOD {
        let mut stream = TcpStream::connect(node.tcp.unwrap()).unwrap();
        stream.write_all(&chunk).unwrap();
        flood.push(stream);
    }
    node.wait_log("memory over the limit");
    let shed = initialize_on_new_session(&node);
    assert_eq!(shed["error"]["code"], -32000, "{shed}");
    assert_eq!(shed["error"]["data"]["reason"], "memory", "{shed}");
    assert_eq!(shed["error"]["data"]["retryAfterMs"], 500, "{shed}");
    let refused = http::post(http, None, &http::initialize_request(), &[]);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "500 ms, in whole seconds"
    );
    let mut client = node.connect();
    assert_eq!(
        client.call(2, "ping", json!({}))["result"],
        json!({}),
        "ping answers while the guard sheds"
    );

    // The flood ends; the node, still alive, takes sessions again below the clear line.
    drop(flood);
    node.wait_log("memory back below the clear line");
    assert!(node.is_running());
    until(
        "a new session after the flood",
        Duration::from_secs(20),
        || initialize_on_new_session(&node)["result"].is_object(),
    );
    let mut client = node.connect();
    client.initialize("2025-06-18", json!({}));
    let echo = client.call(
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "back"}}),
    );
    assert_eq!(echo["result"]["content"][0]["text"], "back", "{echo}");
}
