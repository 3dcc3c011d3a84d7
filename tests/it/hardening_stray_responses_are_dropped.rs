//! Black-box test: a JSON-RPC response from the client that matches no pending request gets no
//! answer (no peer answers a response); it is logged at a bounded rate and the session goes on.

use crate::support::node;

use node::Node;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_response_to_no_pending_request_gets_no_answer_and_the_next_request_does() {
    let mut node = Node::tcp(None);
    let mut client = node.connect();
    client.initialize("2025-06-18", json!({}));

    client.send(&json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}}));
    client.send(&json!({"jsonrpc": "2.0", "id": 41, "error": {"code": -1, "message": "no"}}));
    client.request(json!(42), "ping", json!({}));
    // The first thing back is the ping's answer: nothing answered the two responses.
    let first = client.next(node::WAIT).expect("an answer");
    assert_eq!(first["id"], 42, "{first}");
    assert_eq!(first["result"], json!({}));
    assert!(
        client.silent_for(Duration::from_millis(300)),
        "{:?}",
        client.backlog
    );
    node.wait_log("response to no pending request dropped");

    // A flood of them is logged at most once a second.
    for i in 0..200 {
        client.send(&json!({"jsonrpc": "2.0", "id": 1000 + i, "result": {}}));
    }
    assert_eq!(client.call(43, "ping", json!({}))["result"], json!({}));
    let until = Instant::now() + Duration::from_millis(500);
    let mut lines = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match node.stderr.recv_timeout(left) {
            Ok(line) if line.contains("response to no pending request dropped") => lines += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(lines <= 2, "{lines} log lines for 200 stray responses");
    assert!(
        client.silent_for(Duration::from_millis(100)),
        "{:?}",
        client.backlog
    );
}
