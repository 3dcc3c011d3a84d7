//! Black-box tests of the batch limits (2025-03-26) over TCP and Streamable HTTP: a batch of
//! more than `max_batch_size` messages, or one whose answer would pass `max_message_size`, gets
//! one -32600 error (id null) instead of its answers, and the connection goes on serving.

use crate::support::{http, node};

use node::{Node, code};
use serde_json::{Value, json};
use std::time::Duration;

/// A batch of `n` `method` requests with ids from 1.
fn batch(n: usize, method: &str) -> Value {
    Value::Array(
        (1..=n)
            .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}}))
            .collect(),
    )
}

#[test]
fn a_batch_over_max_batch_size_gets_one_error_and_the_connection_goes_on() {
    let node = Node::tcp(Some("max_batch_size = 5\n"));
    let mut client = node.connect();
    client.initialize("2025-03-26", json!({}));

    client.send(&batch(5, "ping"));
    let answers = client
        .next(node::WAIT)
        .expect("an answer to the batch of 5");
    assert_eq!(answers.as_array().map(Vec::len), Some(5), "{answers}");

    client.send(&batch(6, "ping"));
    let refused = client
        .next(node::WAIT)
        .expect("an answer to the batch of 6");
    assert_eq!(code(&refused), -32600, "{refused}");
    assert_eq!(refused["id"], Value::Null);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_batch_size (5)"), "{message}");
    assert!(message.contains("batch of 6"), "{message}");
    // One answer, not six.
    assert!(
        client.silent_for(Duration::from_millis(300)),
        "{:?}",
        client.backlog
    );

    // A batch far over the cap is refused the same way.
    client.send(&batch(5000, "tools/list"));
    let refused = client
        .next(node::WAIT)
        .expect("an answer to the batch of 5000");
    assert_eq!(code(&refused), -32600, "{refused}");
    assert!(
        client.silent_for(Duration::from_millis(300)),
        "{:?}",
        client.backlog
    );

    assert_eq!(client.call(7, "ping", json!({}))["result"], json!({}));
}

#[test]
fn a_batch_whose_answer_would_pass_max_message_size_gets_one_error() {
    // tools/list of the demo tools answers several KiB to a request of ~60 bytes: ten of them
    // pass 32 KiB (the demo's list grows: the bounds below say when it no longer fits).
    let node = Node::tcp(Some("max_message_size = 32768\n"));
    let mut client = node.connect();
    client.initialize("2025-03-26", json!({}));
    let one = client.call(1, "tools/list", json!({}));
    let one_len = one.to_string().len();
    assert!(
        one_len > 3400 && one_len < 30_000,
        "a tools/list answer of {one_len} bytes does not fit this test"
    );

    client.send(&batch(10, "tools/list"));
    let refused = client.next(node::WAIT).expect("an answer to the batch");
    assert_eq!(code(&refused), -32600, "{refused}");
    assert_eq!(refused["id"], Value::Null);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_message_size (32768"), "{message}");
    assert!(
        client.silent_for(Duration::from_millis(300)),
        "{:?}",
        client.backlog
    );

    // A batch whose answer fits is answered whole (as many as fit: the demo's list grows).
    let fits = (30_000 / one_len).max(1);
    client.send(&batch(fits, "tools/list"));
    let answers = client
        .next(node::WAIT)
        .expect("an answer to the batch that fits");
    assert_eq!(answers.as_array().map(Vec::len), Some(fits));
    assert_eq!(client.call(3, "ping", json!({}))["result"], json!({}));
}

/// The one JSON-RPC message of an HTTP answer, whether sent as JSON or as one SSE event.
fn http_answer(reply: &http::Reply) -> Value {
    if reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        let mut messages = reply.sse_messages();
        assert_eq!(messages.len(), 1, "{}", reply.text());
        messages.remove(0)
    } else {
        reply.json()
    }
}

#[test]
fn a_batch_over_max_batch_size_is_refused_over_http_too() {
    let node = Node::http(Some("max_batch_size = 5\n"));
    let addr = node.http.unwrap();
    let post = |session: Option<&str>, body: &Value| {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-03-26"),
        ];
        if let Some(id) = session {
            headers.push(("mcp-session-id", id));
        }
        http::request(
            addr,
            "POST",
            &headers,
            body.to_string().as_bytes(),
            Duration::from_secs(10),
        )
    };
    let init = post(
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-03-26", "capabilities": {}}}),
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let session = init.header("mcp-session-id").expect("a session").to_owned();
    post(
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );

    let refused = post(Some(&session), &batch(6, "ping"));
    let answer = http_answer(&refused);
    assert_eq!(code(&answer), -32600, "{answer}");
    assert_eq!(answer["id"], Value::Null);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_batch_size (5)")
    );

    let served = post(Some(&session), &batch(5, "ping"));
    let answers = http_answer(&served);
    assert_eq!(answers.as_array().map(Vec::len), Some(5), "{answers}");
}
