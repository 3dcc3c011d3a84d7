//! Black-box tests of the admission point through the real binary: a flood of slow tool calls
//! from many clients gets exactly one answer per request — a result or the shed error
//! (-32000 `server overloaded`, `retryAfterMs`, reason) — with nothing lost and nothing answered
//! twice; `ping` and `initialize` pass during the flood; the node serves normally once it ends;
//! and the shell's `queue` counts exactly the shed answers the clients saw.

use crate::support::remote::Remote;
use crate::support::{http, node};

use node::Node;
use serde_json::json;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::time::Duration;

const COOKIE: &str = "admission-cookie";
const CLIENTS: usize = 6;
const CALLS: usize = 10;

/// The outcome of one client's flood: ids answered with a result, ids shed.
#[derive(Default)]
struct Tally {
    served: Vec<i64>,
    shed: Vec<i64>,
}

#[test]
fn a_flood_of_slow_calls_gets_one_answer_or_one_shed_error_each_and_the_node_recovers() {
    let runtime = tempfile::tempdir().unwrap();
    let dir: &OsStr = runtime.path().as_os_str();
    let name = format!("admission-test-{}", std::process::id());
    let config = runtime.path().join("node.toml");
    // 4 places for work (8 × 0.5): 60 calls of 400 ms cannot all fit.
    std::fs::write(
        &config,
        "[queue]\ncapacity = 8\nshed_at = 0.5\nretry_after = 250\n",
    )
    .unwrap();
    let mut node = Node::with_env(
        &[
            "--tcp",
            "127.0.0.1:0",
            "--name",
            &name,
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("XDG_RUNTIME_DIR", dir),
            ("HOME", dir),
            ("ERLMCP_COOKIE", OsStr::new(COOKIE)),
        ],
    );
    node.find_log("admin channel listening");

    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut client = node.connect();
            client.initialize("2025-06-18", json!({}));
            client
        })
        .collect();
    // Every client sends its calls at once, without waiting for answers.
    for client in &mut clients {
        for id in 1..=CALLS as i64 {
            client.request(
                json!(id),
                "tools/call",
                json!({"name": "sleep", "arguments": {"ms": 400}}),
            );
        }
    }
    // During the flood, ping and a new session's initialize are never shed.
    let mut late = node.connect();
    assert_eq!(late.call(900, "ping", json!({}))["result"], json!({}));
    let init = late.initialize("2025-06-18", json!({}));
    assert_eq!(init["serverInfo"]["name"], "erlmcp", "{init}");

    let mut tallies = Vec::new();
    for client in &mut clients {
        let mut tally = Tally::default();
        let mut seen = HashSet::new();
        while seen.len() < CALLS {
            let message = client
                .next(Duration::from_secs(20))
                .expect("every request is answered within the deadline");
            if message.get("method").is_some() {
                continue; // progress notifications
            }
            let id = message["id"]
                .as_i64()
                .expect("an answer has the request's id");
            assert!(seen.insert(id), "request {id} answered twice: {message}");
            if let Some(error) = message.get("error") {
                assert_eq!(error["code"], -32000, "{message}");
                assert_eq!(error["message"], "server overloaded", "{message}");
                assert_eq!(error["data"]["retryAfterMs"], 250, "{message}");
                assert_eq!(error["data"]["reason"], "queue", "{message}");
                tally.shed.push(id);
            } else {
                assert_eq!(
                    message["result"]["content"][0]["text"], "slept 400 ms",
                    "{message}"
                );
                tally.served.push(id);
            }
        }
        // Nothing more comes for this client: no second answer to any request.
        assert!(client.silent_for(Duration::from_millis(300)));
        tallies.push(tally);
    }
    let served: usize = tallies.iter().map(|t| t.served.len()).sum();
    let shed: usize = tallies.iter().map(|t| t.shed.len()).sum();
    assert_eq!(
        served + shed,
        CLIENTS * CALLS,
        "answers + shed = requests sent"
    );
    assert!(
        served >= 4,
        "the places of the queue were used: {served} served"
    );
    assert!(shed > 0, "a flood past the line was shed: {served} served");

    // The flood is over: every client is served normally again.
    for (i, client) in clients.iter_mut().enumerate() {
        let answer = client.call(
            1000 + i as i64,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "after"}}),
        );
        assert_eq!(answer["result"]["content"][0]["text"], "after", "{answer}");
    }

    // The shell counts exactly the shed answers the clients saw, by method, transport, reason.
    let data = &Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    }
    .eval_json("queue");
    assert_eq!(data["capacity"], 8, "{data}");
    assert_eq!(data["shed_at"], 4, "{data}");
    assert_eq!(data["shed_total"], shed, "{data}");
    assert_eq!(
        data["shed"],
        json!([{"method": "tools/call", "transport": "tcp", "reason": "queue", "count": shed}]),
        "{data}"
    );
    assert!(data["peak"].as_u64().unwrap() <= 4 + 2, "{data}"); // work + ping/initialize
    assert_eq!(data["in_progress"], 0, "{data}");
}

#[test]
fn a_method_limit_sheds_that_method_and_lets_others_through() {
    let node = Node::tcp(Some(
        "[queue]\nretry_after = 100\n[queue.methods]\n\"tools/call\" = 1\n",
    ));
    let mut slow = node.connect();
    slow.initialize("2025-06-18", json!({}));
    slow.request(
        json!(1),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 1500}}),
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut other = node.connect();
    other.initialize("2025-06-18", json!({}));
    let shed = other.call(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    assert_eq!(shed["error"]["code"], -32000, "{shed}");
    assert_eq!(shed["error"]["data"]["reason"], "method_limit", "{shed}");
    assert_eq!(shed["error"]["data"]["retryAfterMs"], 100, "{shed}");
    let listed = other.call(3, "tools/list", json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let done = slow.response(&json!(1));
    assert_eq!(
        done["result"]["content"][0]["text"], "slept 1500 ms",
        "{done}"
    );
    let again = other.call(
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "y"}}),
    );
    assert_eq!(again["result"]["content"][0]["text"], "y", "{again}");
}

#[test]
fn over_http_a_shed_request_is_503_with_retry_after_and_the_error() {
    // One place for work (2 × 0.5).
    let node = Node::http(Some(
        "[queue]\ncapacity = 2\nshed_at = 0.5\nretry_after = 1500\n",
    ));
    let addr = node.http.unwrap();
    let session = http::initialize(addr);
    let slow = {
        let session = session.clone();
        std::thread::spawn(move || {
            http::post(
                addr,
                Some(&session),
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"ms": 1500}}}),
                &[],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "x"}}});
    let shed = http::post(addr, Some(&session), &echo, &[]);
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert_eq!(shed.header("retry-after"), Some("2"), "1500 ms, rounded up");
    assert_eq!(shed.header("mcp-session-id"), Some(session.as_str()));
    let error = shed.json();
    assert_eq!(error["id"], 2, "{error}");
    assert_eq!(error["error"]["code"], -32000, "{error}");
    assert_eq!(error["error"]["data"]["retryAfterMs"], 1500, "{error}");
    // The same over the stateless (2026-07-28) path.
    let stateless = http::post(
        addr,
        None,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}}}),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
    );
    assert_eq!(stateless.status, 503, "{}", stateless.text());
    assert_eq!(stateless.header("retry-after"), Some("2"));
    // And a stateless subscriptions/listen, which gets a session of its own.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}});
    let listen = http::post(
        addr,
        None,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "subscriptions/listen",
                "params": {"_meta": meta}}),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ],
    );
    assert_eq!(listen.status, 503, "{}", listen.text());
    assert_eq!(listen.json()["error"]["code"], -32000, "{}", listen.text());
    let done = slow.join().unwrap();
    assert_eq!(done.status, 200, "{}", done.text());
    let again = http::post(addr, Some(&session), &echo, &[]);
    assert_eq!(again.status, 200, "{}", again.text());
}
