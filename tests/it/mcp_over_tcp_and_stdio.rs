//! Black-box tests of the MCP core through the real binary, over TCP and stdio: negotiation, the
//! server methods, every kind of bad input, cancellation, progress, server→client requests,
//! concurrency, disconnects and the connection limits.

use crate::support::node;

use node::{Node, code, tool_error_text};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn initialize_answers_the_clients_revision_when_supported_else_the_latest() {
    let node = Node::tcp(None);
    for (asked, expected) in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let mut client = node.connect();
        let result = client.initialize(asked, json!({}));
        assert_eq!(result["protocolVersion"], expected, "asked {asked}");
        assert_eq!(result["serverInfo"]["name"], "erlmcp");
        assert!(
            result["capabilities"]["tools"]["listChanged"]
                .as_bool()
                .unwrap()
        );
        // completions exist from 2025-03-26 on.
        assert_eq!(
            result["capabilities"].get("completions").is_some(),
            expected != "2024-11-05"
        );
    }
}

#[test]
fn a_second_initialize_on_the_same_session_is_refused() {
    let node = Node::tcp(None);
    let mut client = node.connect();
    client.initialize("2025-06-18", json!({}));
    let again = client.call(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
    );
    assert_eq!(code(&again), -32600);
}

#[test]
fn requests_before_initialize_are_refused_except_ping() {
    let node = Node::tcp(None);
    let mut client = node.connect();
    assert_eq!(client.call(1, "ping", json!({}))["result"], json!({}));
    let early = client.call(2, "tools/list", json!({}));
    assert_eq!(code(&early), -32600);
    assert!(
        early["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize")
    );
}

#[test]
fn tools_list_call_and_echo_work_over_stdio_and_stdout_carries_only_mcp() {
    let mut node = Node::stdio();
    let mut client = node.stdio_client();
    client.initialize("2025-11-25", json!({}));
    let tools = client.call(1, "tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "echo",
        "test_simple_text",
        "test_sampling",
        "json_schema_2020_12_tool",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let echo = client.call(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "héllo"}}),
    );
    assert_eq!(echo["result"]["content"][0]["text"], "héllo");
    // Closing stdin stops the node cleanly.
    drop(client);
    assert_eq!(node.wait_exit(), Some(0));
}

#[test]
fn every_bad_input_gets_a_clear_error_and_the_connection_goes_on() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-06-18", json!({}));

    c.send_raw(b"{this is not json");
    let r = c.next(node::WAIT).unwrap();
    assert_eq!((code(&r), r["id"].clone()), (-32700, Value::Null));

    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"p\xffng\"}");
    assert_eq!(code(&c.next(node::WAIT).unwrap()), -32700);

    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":6,"method":"ping","params":{{"a":{}1{}}}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    c.send_raw(deep.as_bytes());
    let r = c.next(node::WAIT).unwrap();
    assert_eq!(code(&r), -32700);
    assert!(r["error"]["message"].as_str().unwrap().contains("too deep"));

    c.send(&json!({"jsonrpc": "1.0", "id": 7, "method": "ping"}));
    let r = c.response(&json!(7));
    assert_eq!(code(&r), -32600);

    c.send(&json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}));
    assert_eq!(code(&c.next(node::WAIT).unwrap()), -32600);

    assert_eq!(code(&c.call(8, "no/such/method", json!({}))), -32601);
    assert_eq!(
        code(&c.call(9, "tools/call", json!({"name": "no_such_tool"}))),
        -32602
    );
    assert_eq!(
        code(&c.call(10, "tools/call", json!({"arguments": {}}))),
        -32602
    );
    // tools/call params of the wrong shape: -32602 to the request's id, whether they are read in
    // the message's own parse (method first) or kept raw and read by the call (params first).
    for (id, params) in [
        (101, "[1,2]"),
        (102, r#"{"name":7}"#),
        (103, r#"{"name":"echo","name":"echo"}"#),
        (104, r#"{"name":"echo","_meta":5}"#),
    ] {
        for frame in [
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#),
            format!(r#"{{"params":{params},"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#),
        ] {
            c.send_raw(frame.as_bytes());
            let r = c.response(&json!(id));
            assert_eq!(code(&r), -32602, "{frame}: {r}");
        }
    }
    let params_first = r#"{"params":{"name":"echo","arguments":{"text":"hi"}},"id":105,"jsonrpc":"2.0","method":"tools/call"}"#;
    c.send_raw(params_first.as_bytes());
    assert_eq!(
        c.response(&json!(105))["result"]["content"][0]["text"],
        "hi"
    );
    assert_eq!(
        code(&c.call(11, "resources/read", json!({"uri": "test://nothing"}))),
        -32002
    );
    assert_eq!(
        code(&c.call(
            12,
            "prompts/get",
            json!({"name": "test_prompt_with_arguments"})
        )),
        -32602
    );
    assert_eq!(
        code(&c.call(13, "tools/list", json!({"cursor": "not-a-cursor!"}))),
        -32602
    );
    assert_eq!(
        code(&c.call(14, "logging/setLevel", json!({"level": "loud"}))),
        -32602
    );

    // A tool's own failure and bad tool arguments are results with isError, not protocol errors.
    let failed = c.call(15, "tools/call", json!({"name": "test_error_handling"}));
    assert_eq!(failed["result"]["isError"], true);
    let bad_args = c.call(
        16,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": 5}}),
    );
    assert_eq!(bad_args["result"]["isError"], true);

    // A response to a request the server never sent gets no answer (no peer answers a
    // response): the next thing back is the ping's.
    c.send(&json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}}));

    // Still serving, ids echoed exactly.
    c.request(json!(17), "ping", json!({}));
    assert_eq!(c.next(node::WAIT).unwrap()["id"], 17);
    c.request(json!("string-id"), "ping", json!({}));
    assert_eq!(c.response(&json!("string-id"))["result"], json!({}));
}

#[test]
fn batches_are_accepted_in_2025_03_26_only() {
    let node = Node::tcp(None);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}}
    ]);
    let mut old = node.connect();
    old.initialize("2025-03-26", json!({}));
    old.send(&batch);
    let answers = old.next(node::WAIT).unwrap();
    let answers = answers.as_array().expect("an array of responses");
    assert_eq!(answers.len(), 2, "the notification gets no response");
    assert_eq!(answers[1]["result"]["content"][0]["text"], "b");
    old.send(&json!([]));
    assert_eq!(code(&old.next(node::WAIT).unwrap()), -32600);

    let mut new = node.connect();
    new.initialize("2025-06-18", json!({}));
    new.send(&batch);
    let refused = new.next(node::WAIT).unwrap();
    assert_eq!(code(&refused), -32600);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
    assert_eq!(new.call(3, "ping", json!({}))["result"], json!({}));
}

#[test]
fn a_cancelled_request_gets_no_response_and_the_others_do() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-06-18", json!({}));
    c.request(
        json!(1),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 3000}}),
    );
    c.request(
        json!(2),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 50}}),
    );
    c.notify(
        "notifications/cancelled",
        json!({"requestId": 1, "reason": "changed my mind"}),
    );
    assert_eq!(
        c.response(&json!(2))["result"]["content"][0]["text"],
        "slept 50 ms"
    );
    assert!(
        c.silent_for(Duration::from_millis(3500)),
        "a cancelled request was answered: {:?}",
        c.backlog
    );
    assert_eq!(c.call(3, "ping", json!({}))["result"], json!({}));
}

#[test]
fn progress_notifications_carry_the_requests_token() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({}));
    let r = c.call(
        1,
        "tools/call",
        json!({"name": "test_tool_with_progress", "_meta": {"progressToken": "tok-9"}}),
    );
    assert!(r["result"]["content"][0]["text"].is_string());
    let progress = c.take_notifications("notifications/progress");
    let values: Vec<f64> = progress
        .iter()
        .map(|p| p["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![0.0, 50.0, 100.0]);
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-9" && p["params"]["total"] == 100.0)
    );
    // Without a token, no progress.
    c.call(2, "tools/call", json!({"name": "test_tool_with_progress"}));
    assert!(c.take_notifications("notifications/progress").is_empty());
}

#[test]
fn log_notifications_honour_the_sessions_level() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({}));
    c.call(1, "tools/call", json!({"name": "test_tool_with_logging"}));
    let logs = c.take_notifications("notifications/message");
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0]["params"]["data"], "Tool execution started");
    assert_eq!(
        c.call(2, "logging/setLevel", json!({"level": "error"}))["result"],
        json!({})
    );
    c.call(3, "tools/call", json!({"name": "test_tool_with_logging"}));
    assert!(c.take_notifications("notifications/message").is_empty());
}

#[test]
fn a_tool_can_ask_the_client_to_sample_and_gets_a_clear_error_without_the_capability() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({"sampling": {}}));
    c.request(
        json!(1),
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "2+2?"}}),
    );
    let ask = c.next(node::WAIT).unwrap();
    assert_eq!(ask["method"], "sampling/createMessage");
    assert_eq!(ask["params"]["messages"][0]["content"]["text"], "2+2?");
    c.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result":
        {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}}));
    assert_eq!(
        c.response(&json!(1))["result"]["content"][0]["text"],
        "LLM response: four"
    );

    let mut plain = node.connect();
    plain.initialize("2025-11-25", json!({}));
    let r = plain.call(
        1,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "x"}}),
    );
    assert!(tool_error_text(&r).contains("sampling"));
}

#[test]
fn a_client_error_answer_to_elicitation_becomes_a_tool_error() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({"elicitation": {}}));
    c.request(
        json!(1),
        "tools/call",
        json!({"name": "test_elicitation", "arguments": {"message": "who?"}}),
    );
    let ask = c.next(node::WAIT).unwrap();
    assert_eq!(ask["method"], "elicitation/create");
    c.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -1, "message": "user went away"}}));
    let r = c.response(&json!(1));
    assert!(tool_error_text(&r).contains("user went away"));
}

#[test]
fn ten_thousand_requests_in_flight_on_one_connection_are_all_answered_with_their_own_ids() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-06-18", json!({}));
    let mut batch = String::new();
    for id in 0..10_000 {
        let method = if id % 10 == 0 { "sleep" } else { "echo" };
        let args = if method == "sleep" {
            json!({"ms": 20})
        } else {
            json!({"text": format!("m{id}")})
        };
        batch.push_str(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": method, "arguments": args}})
                .to_string(),
        );
        batch.push('\n');
    }
    // One write of all 10,000 requests before reading any answer.
    c.send_raw(batch.trim_end().as_bytes());
    let mut seen = vec![false; 10_000];
    for _ in 0..10_000 {
        let r = c.next(node::WAIT).unwrap();
        let id = r["id"].as_u64().unwrap() as usize;
        assert!(!seen[id], "id {id} answered twice");
        seen[id] = true;
        if id % 10 != 0 {
            assert_eq!(r["result"]["content"][0]["text"], format!("m{id}"));
        }
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn a_client_that_disconnects_mid_request_leaves_the_node_serving() {
    let node = Node::tcp(None);
    {
        let mut c = node.connect();
        c.initialize("2025-06-18", json!({}));
        c.request(
            json!(1),
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 500}}),
        );
        // Dropped here with the request in flight.
    }
    std::thread::sleep(Duration::from_millis(700));
    let mut again = node.connect();
    again.initialize("2025-06-18", json!({}));
    assert_eq!(again.call(1, "ping", json!({}))["result"], json!({}));
}

#[test]
fn an_oversized_message_gets_an_error_and_closes_only_its_connection() {
    let node = Node::tcp(Some("max_message_size = 4096\n"));
    let mut big = node.connect();
    big.initialize("2025-06-18", json!({}));
    let text = "x".repeat(10_000);
    big.request(
        json!(1),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
    );
    let r = big.next(node::WAIT).unwrap();
    assert_eq!(code(&r), -32600);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_message_size")
    );
    assert!(big.closed());
    let mut other = node.connect();
    other.initialize("2025-06-18", json!({}));
    assert_eq!(other.call(1, "ping", json!({}))["result"], json!({}));
}

#[test]
fn connections_beyond_max_connections_are_refused_cleanly() {
    let mut node = Node::tcp(Some("max_connections = 2\n"));
    let mut a = node.connect();
    let mut b = node.connect();
    a.initialize("2025-06-18", json!({}));
    b.initialize("2025-06-18", json!({}));
    let mut c = node.connect();
    let refusal = c.next(node::WAIT).unwrap();
    assert_eq!(code(&refusal), -32000);
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_connections")
    );
    assert!(c.closed());
    node.wait_log("refusing connection");
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut d = node.connect();
    d.initialize("2025-06-18", json!({}));
    assert_eq!(d.call(1, "ping", json!({}))["result"], json!({}));
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let node = Node::tcp(Some("idle_timeout = 300\n"));
    let mut c = node.connect();
    c.initialize("2025-06-18", json!({}));
    assert!(c.closed());
}

#[test]
fn lists_are_paginated_with_opaque_cursors_covering_every_item_once() {
    let node = Node::tcp(Some("page_size = 4\n"));
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({}));
    let mut names = Vec::new();
    let mut cursor: Option<Value> = None;
    for id in 1.. {
        let params = cursor
            .as_ref()
            .map_or(json!({}), |cur| json!({"cursor": cur}));
        let page = c.call(id, "tools/list", params);
        let tools = page["result"]["tools"].as_array().unwrap();
        assert!(tools.len() <= 4);
        names.extend(tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        match page["result"].get("nextCursor") {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    assert!(names.len() > 8, "{names:?}");
}

#[test]
fn resources_templates_prompts_completion_and_subscriptions_answer_as_specified() {
    let node = Node::tcp(None);
    let mut c = node.connect();
    c.initialize("2025-11-25", json!({}));
    let read = c.call(1, "resources/read", json!({"uri": "test://static-text"}));
    assert_eq!(
        read["result"]["contents"][0]["text"],
        "This is the content of the static text resource."
    );
    let binary = c.call(2, "resources/read", json!({"uri": "test://static-binary"}));
    assert_eq!(binary["result"]["contents"][0]["mimeType"], "image/png");
    assert!(binary["result"]["contents"][0]["blob"].is_string());
    let templated = c.call(
        3,
        "resources/read",
        json!({"uri": "test://template/123/data"}),
    );
    let text: Value =
        serde_json::from_str(templated["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        text,
        json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"})
    );
    let templates = c.call(4, "resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "test://template/{id}/data"
    );
    let prompt = c.call(
        5,
        "prompts/get",
        json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "hello", "arg2": "world"}}),
    );
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='hello', arg2='world'"
    );
    let completion = c.call(
        6,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
               "argument": {"name": "arg1", "value": "par"}}),
    );
    assert_eq!(
        completion["result"]["completion"]["values"],
        json!(["paris", "park", "party"])
    );
    assert_eq!(
        c.call(
            7,
            "resources/subscribe",
            json!({"uri": "test://watched-resource"})
        )["result"],
        json!({})
    );
    assert_eq!(
        c.call(
            8,
            "resources/unsubscribe",
            json!({"uri": "test://watched-resource"})
        )["result"],
        json!({})
    );
}
