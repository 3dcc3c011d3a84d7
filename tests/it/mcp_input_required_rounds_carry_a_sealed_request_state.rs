//! Black-box tests of revision 2026-07-28 multi-round requests (SEP-2322) against the real
//! binary: input requests keyed as the handler names them, several in one round, a
//! `requestState` sealed by the node (HMAC-SHA256 over the state and the request it was issued
//! for) that carries earlier rounds' answers, a tampered or foreign state refused with -32602,
//! the same rounds on `prompts/get`, and -32021 for a capability the client did not declare.

use crate::support::{http, node};

use http::{Reply, request};
use node::Node;
use serde_json::{Value, json};
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(10);

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

fn all_capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {}})
}

/// POSTs a stateless request with its routing headers.
fn post(addr: std::net::SocketAddr, id: i64, method: &str, params: Value) -> Reply {
    let name = params["name"].as_str().unwrap_or_default().to_owned();
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("mcp-name", name.as_str()),
    ];
    request(addr, "POST", &headers, body.to_string().as_bytes(), QUICK)
}

fn call(addr: std::net::SocketAddr, id: i64, tool: &str, extra: Value) -> Reply {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": meta(all_capabilities())});
    for (key, value) in extra.as_object().into_iter().flatten() {
        params[key] = value.clone();
    }
    post(addr, id, "tools/call", params)
}

fn accept(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}

#[test]
fn rounds_are_keyed_by_the_handler_and_carry_earlier_answers_in_the_sealed_state() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let tool = "test_input_required_result_multi_round";

    let first = call(addr, 1, tool, json!({}));
    let result = first.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    assert_eq!(
        result["inputRequests"]["step1"]["method"],
        "elicitation/create"
    );
    let state1 = result["requestState"].as_str().expect("a state").to_owned();

    // Round two answers step1 only; the state comes back with it.
    let second = call(
        addr,
        2,
        tool,
        json!({"inputResponses": {"step1": accept(json!({"name": "Ada"}))}, "requestState": state1}),
    );
    let result = second.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    assert!(result["inputRequests"].get("step1").is_none(), "{result}");
    assert!(result["inputRequests"]["step2"].is_object(), "{result}");
    let state2 = result["requestState"].as_str().unwrap().to_owned();
    assert_ne!(state2, state1);

    // Round three sends only step2: step1's answer comes from the node's state.
    let third = call(
        addr,
        3,
        tool,
        json!({"inputResponses": {"step2": accept(json!({"color": "blue"}))}, "requestState": state2.clone()}),
    );
    let result = third.json()["result"].clone();
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["content"][0]["text"], "Ada likes blue");

    // Several requests in one round, keyed as the handler names them.
    let multiple = call(
        addr,
        4,
        "test_input_required_result_multiple_inputs",
        json!({}),
    );
    let requests = multiple.json()["result"]["inputRequests"].clone();
    let mut keys: Vec<&String> = requests.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["client_roots", "greeting", "user_name"],
        "{requests}"
    );

    // The handler's own state comes back intact.
    let first = call(
        addr,
        5,
        "test_input_required_result_request_state",
        json!({}),
    );
    let state = first.json()["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = call(
        addr,
        6,
        "test_input_required_result_request_state",
        json!({"inputResponses": {"confirm": accept(json!({"ok": true}))}, "requestState": state}),
    );
    let text = done.json()["result"]["content"][0]["text"].clone();
    assert!(text.as_str().unwrap().contains("state-ok"), "{text}");
}

#[test]
fn a_tampered_or_foreign_request_state_is_refused_with_a_clear_error() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let tool = "test_input_required_result_tampered_state";
    let first = call(addr, 1, tool, json!({}));
    let state = first.json()["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers = json!({"confirm": accept(json!({"ok": true}))});

    let (payload, tag) = state.split_once('.').unwrap();
    let mut flipped: Vec<char> = payload.chars().collect();
    flipped[2] = if flipped[2] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    let tampered = [
        format!("{state}-TAMPERED"),
        format!("{flipped}.{tag}"),
        "not-a-state".to_owned(),
    ];
    for (n, bad) in tampered.iter().enumerate() {
        let refused = call(
            addr,
            10 + n as i64,
            tool,
            json!({"inputResponses": answers.clone(), "requestState": bad}),
        );
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text());
        let error = &refused.json()["error"];
        assert_eq!(error["code"], -32602, "{bad}: {}", refused.text());
        assert!(
            error["message"].as_str().unwrap().contains("requestState"),
            "{error}"
        );
    }
    // A state is bound to its request: another tool, or other arguments, refuse it.
    let elsewhere = call(
        addr,
        20,
        "test_input_required_result_elicitation",
        json!({"inputResponses": answers.clone(), "requestState": state.clone()}),
    );
    assert_eq!(
        elsewhere.json()["error"]["code"],
        -32602,
        "{}",
        elsewhere.text()
    );
    let mut other_args =
        json!({"name": tool, "arguments": {"x": 1}, "_meta": meta(all_capabilities())});
    other_args["inputResponses"] = answers.clone();
    other_args["requestState"] = json!(state.clone());
    let other = post(addr, 21, "tools/call", other_args);
    assert_eq!(other.json()["error"]["code"], -32602, "{}", other.text());

    // Another node (another secret) refuses it too.
    let other_node = Node::http(None);
    let foreign = call(
        other_node.http.unwrap(),
        22,
        tool,
        json!({"inputResponses": answers.clone(), "requestState": state.clone()}),
    );
    assert_eq!(
        foreign.json()["error"]["code"],
        -32602,
        "{}",
        foreign.text()
    );

    // The state as issued still works.
    let ok = call(
        addr,
        23,
        tool,
        json!({"inputResponses": answers, "requestState": state}),
    );
    assert_eq!(
        ok.json()["result"]["resultType"],
        "complete",
        "{}",
        ok.text()
    );
}

#[test]
fn prompts_get_takes_rounds_and_an_undeclared_capability_is_32021() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let params =
        json!({"name": "test_input_required_result_prompt", "_meta": meta(all_capabilities())});
    let first = post(addr, 1, "prompts/get", params.clone());
    let result = first.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    assert!(
        result["inputRequests"]["user_context"].is_object(),
        "{result}"
    );
    let mut retry = params;
    retry["inputResponses"] = json!({"user_context": accept(json!({"context": "tests"}))});
    retry["requestState"] = result["requestState"].clone();
    let done = post(addr, 2, "prompts/get", retry);
    let result = done.json()["result"].clone();
    assert_eq!(result["resultType"], "complete", "{result}");
    assert!(
        result["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("tests")
    );

    // Only what the client declared is asked.
    let sampling_only = post(
        addr,
        3,
        "tools/call",
        json!({"name": "test_input_required_result_capabilities", "arguments": {},
               "_meta": meta(json!({"sampling": {}}))}),
    );
    let requests = sampling_only.json()["result"]["inputRequests"].clone();
    assert!(
        requests
            .as_object()
            .unwrap()
            .values()
            .all(|r| r["method"] == "sampling/createMessage"),
        "{requests}"
    );

    // A capability the handler needs and the client did not declare: -32021, 400.
    let missing = post(
        addr,
        4,
        "tools/call",
        json!({"name": "test_missing_capability", "arguments": {}, "_meta": meta(json!({}))}),
    );
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert_eq!(missing.json()["error"]["code"], -32021);
}
