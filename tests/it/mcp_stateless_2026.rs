//! Black-box tests of revision 2026-07-28 (stateless) beside the session-based revisions:
//! `server/discover`, the per-request `_meta` envelope and its ladder (-32602, -32020, -32022),
//! the `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers, `resultType` and caching
//! directives on results, opt-in logging, progress over SSE, `input_required` rounds instead of
//! server→client requests, and the same envelope over a TCP connection.

use crate::support::{http, node};

use http::{MODERN, envelope, post_stateless as post, request};
use node::{Node, code};
use serde_json::{Value, json};
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(10);

fn with_meta(mut params: Value, meta: Value) -> Value {
    params["_meta"] = meta;
    params
}

fn call(id: i64, name: &str, args: Value, meta: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": with_meta(json!({"name": name, "arguments": args}), meta)})
}

#[test]
fn discover_then_stateless_calls_need_no_session_and_are_tagged() {
    let node = Node::http(None);
    let addr = node.http.unwrap();

    let discover = post(
        addr,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                "params": {"_meta": envelope(json!({}))}}),
        &[],
    );
    assert_eq!(discover.status, 200, "{}", discover.text());
    assert!(discover.header("mcp-session-id").is_none());
    let result = &discover.json()["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["ttlMs"], 0);
    assert_eq!(result["cacheScope"], "private");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN)),
        "{result}"
    );
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "erlmcp"
    );

    let echo = post(
        addr,
        &call(2, "echo", json!({"text": "hi"}), envelope(json!({}))),
        &[],
    );
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert!(echo.header("mcp-session-id").is_none());
    let answer = echo.json();
    assert_eq!(answer["result"]["resultType"], "complete");
    assert_eq!(answer["result"]["content"][0]["text"], "hi");
    assert!(
        answer["result"].get("ttlMs").is_none(),
        "tools/call is not cacheable"
    );

    let list = post(
        addr,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": envelope(json!({}))}}),
        &[],
    );
    assert_eq!(list.json()["result"]["cacheScope"], "private");
    assert!(list.json()["result"]["tools"].as_array().unwrap().len() > 3);

    // A session-based client on the same endpoint is unaffected.
    let legacy = request(
        addr,
        "POST",
        &[("content-type", "application/json"), ("accept", "application/json, text/event-stream")],
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params":
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
        QUICK,
    );
    assert_eq!(legacy.json()["result"]["protocolVersion"], "2025-11-25");
    assert!(legacy.header("mcp-session-id").is_some());
}

#[test]
fn the_ladder_answers_each_defect_with_its_code_and_status() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let good = call(1, "echo", json!({"text": "x"}), envelope(json!({})));

    let no_meta = post(
        addr,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
        &[],
    );
    assert_eq!(
        (no_meta.status, code(&no_meta.json())),
        (400, -32602),
        "{}",
        no_meta.text()
    );

    for (header, value) in [
        ("mcp-method", "tools/list"),
        ("mcp-name", "other"),
        ("mcp-protocol-version", "2026-99-99"),
    ] {
        let reply = post(addr, &good, &[(header, value)]);
        assert_eq!(reply.status, 400, "{header}: {}", reply.text());
        assert_eq!(code(&reply.json()), -32020, "{header}: {}", reply.text());
    }
    // `Mcp-Name` missing for a name-bearing method.
    let missing_name = post(addr, &good, &[("mcp-name", "")]);
    assert_eq!(code(&missing_name.json()), -32020);
    // A routing header sent twice.
    let twice = request(
        addr,
        "POST",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        good.to_string().as_bytes(),
        QUICK,
    );
    assert_eq!(
        (twice.status, code(&twice.json())),
        (400, -32020),
        "{}",
        twice.text()
    );

    let mut old_meta = envelope(json!({}));
    old_meta["io.modelcontextprotocol/protocolVersion"] = json!("2027-01-01");
    let unknown = post(
        addr,
        &call(4, "echo", json!({"text": "x"}), old_meta),
        &[("mcp-protocol-version", "2027-01-01")],
    );
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    let error = unknown.json();
    assert_eq!(code(&error), -32022);
    assert_eq!(error["error"]["data"]["supported"], json!([MODERN]));
    assert_eq!(error["error"]["data"]["requested"], "2027-01-01");

    let ping = post(
        addr,
        &json!({"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {"_meta": envelope(json!({}))}}),
        &[],
    );
    assert_eq!((ping.status, code(&ping.json())), (404, -32601));

    let note = post(
        addr,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &[],
    );
    assert_eq!(note.status, 202);

    let batch = request(
        addr,
        "POST",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("mcp-protocol-version", MODERN),
        ],
        format!("[{good}]").as_bytes(),
        QUICK,
    );
    assert_eq!((batch.status, code(&batch.json())), (400, -32600));

    let get = request(
        addr,
        "GET",
        &[
            ("accept", "text/event-stream"),
            ("mcp-protocol-version", MODERN),
        ],
        b"",
        QUICK,
    );
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));

    // The node serves on.
    assert_eq!(post(addr, &good, &[]).status, 200);
}

#[test]
fn logging_is_opt_in_progress_streams_and_client_requests_become_input_required() {
    let node = Node::http(None);
    let addr = node.http.unwrap();

    let quiet = post(
        addr,
        &call(1, "test_tool_with_logging", json!({}), envelope(json!({}))),
        &[],
    );
    assert_eq!(quiet.status, 200);
    let text = quiet.text();
    assert!(
        !text.contains("notifications/message"),
        "logged without opt-in: {text}"
    );

    let mut loud_meta = envelope(json!({}));
    loud_meta["io.modelcontextprotocol/logLevel"] = json!("debug");
    let loud = post(
        addr,
        &call(2, "test_tool_with_logging", json!({}), loud_meta),
        &[],
    );
    let messages = loud.sse_messages();
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/message"),
        "{}",
        loud.text()
    );
    assert_eq!(messages.last().unwrap()["result"]["resultType"], "complete");

    let mut progress_meta = envelope(json!({}));
    progress_meta["progressToken"] = json!("p1");
    let progress = post(
        addr,
        &call(3, "test_tool_with_progress", json!({}), progress_meta),
        &[],
    );
    let messages = progress.sse_messages();
    assert!(
        messages.iter().any(
            |m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p1"
        ),
        "{}",
        progress.text()
    );

    // Without the capability: -32021 (400) naming it.
    let refused = post(
        addr,
        &call(
            4,
            "test_sampling",
            json!({"prompt": "q"}),
            envelope(json!({})),
        ),
        &[],
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    let error = &refused.json()["error"];
    assert_eq!(error["code"], -32021, "{}", refused.text());
    assert!(error["data"]["requiredCapabilities"]["sampling"].is_object());

    // With it: the first round asks, the retry carries the answer.
    let caps = json!({"sampling": {}});
    let first = post(
        addr,
        &call(
            5,
            "test_sampling",
            json!({"prompt": "q"}),
            envelope(caps.clone()),
        ),
        &[],
    );
    let result = first.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    let (key, input) = result["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(input["method"], "sampling/createMessage");
    let mut retry = call(6, "test_sampling", json!({"prompt": "q"}), envelope(caps));
    retry["params"]["inputResponses"] = json!({ key.clone(): {
        "role": "assistant", "model": "m", "content": {"type": "text", "text": "sampled"}}});
    let second = post(addr, &retry, &[]);
    let result = &second.json()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["content"][0]["text"], "LLM response: sampled");
}

#[test]
fn the_envelope_works_on_a_tcp_connection_without_initialize() {
    let node = Node::tcp(None);
    let mut client = node.connect();
    let discover = client.call(1, "server/discover", json!({"_meta": envelope(json!({}))}));
    assert_eq!(discover["result"]["resultType"], "complete", "{discover}");
    let echo = client.call(
        2,
        "tools/call",
        with_meta(
            json!({"name": "echo", "arguments": {"text": "tcp"}}),
            envelope(json!({})),
        ),
    );
    assert_eq!(echo["result"]["resultType"], "complete");
    assert_eq!(echo["result"]["content"][0]["text"], "tcp");
    // Without the envelope and without initialize: refused, as before.
    let bare = client.call(3, "tools/list", json!({}));
    assert_eq!(code(&bare), -32600);

    // A handshake client on its own connection still gets untagged session-era results.
    let mut legacy = node.connect();
    legacy.initialize("2025-11-25", json!({}));
    let echo = legacy.call(
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "old"}}),
    );
    assert!(echo["result"].get("resultType").is_none(), "{echo}");
}

#[test]
fn mcp_param_headers_must_mirror_annotated_arguments() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let routed = call(
        1,
        "route",
        json!({"region": "eu-west", "text": "hi"}),
        envelope(json!({})),
    );
    let ok = post(addr, &routed, &[("mcp-param-region", "eu-west")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["result"]["content"][0]["text"], "hi via eu-west");
    for (header, value) in [("mcp-param-region", "us-east"), ("mcp-param-region", "")] {
        let reply = post(addr, &routed, &[(header, value)]);
        assert_eq!(
            (reply.status, code(&reply.json())),
            (400, -32020),
            "{value:?}: {}",
            reply.text()
        );
    }
    // Tools without annotations take no Mcp-Param headers into account.
    let echo = post(
        addr,
        &call(2, "echo", json!({"text": "x"}), envelope(json!({}))),
        &[],
    );
    assert_eq!(echo.status, 200);
}
