//! Tasks of stateless (2026-07-28) requests belong to their caller's principal when the node
//! asks for one (`[auth]`, docs/security.md): a task made with one API key is polled with it,
//! and is `unknown task` to another key, as an id that never existed. Without auth every
//! stateless caller is one principal (docs/protocol.md, "Tasks").

use crate::support::cluster::rpc_answer;
use crate::support::http::{self, Reply};
use crate::support::node::Node;
use serde_json::{Value, json};
use std::time::Duration;

/// Two API keys, two subjects (alice, bob): also the store tests' `[auth]`.
pub(crate) const CONFIG: &str = r#"
[auth]
enabled = true
resource = "https://mcp.test/mcp"
[[auth.api_keys]]
key = "alice-key-0123456789"
subject = "alice"
[[auth.api_keys]]
key = "bob-key-0123456789ab"
subject = "bob"
"#;

/// A stateless request declaring the tasks extension, with `key` as its bearer token.
fn post(
    addr: std::net::SocketAddr,
    key: &str,
    method: &str,
    mut params: Value,
    name: &str,
) -> Reply {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":
            {"extensions": {"io.modelcontextprotocol/tasks": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let bearer = format!("Bearer {key}");
    http::request(
        addr,
        "POST",
        &[
            http::JSON,
            http::ACCEPT,
            ("authorization", bearer.as_str()),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
            ("mcp-name", name),
        ],
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
}

#[test]
fn a_stateless_task_is_its_makers_and_unknown_to_another_principal() {
    let node = Node::http(Some(CONFIG));
    let addr = node.http.unwrap();
    let made = post(
        addr,
        "alice-key-0123456789",
        "tools/call",
        json!({"name": "slow_compute", "arguments": {"seconds": 60, "label": "mine"}}),
        "slow_compute",
    );
    assert_eq!(made.status, 200, "{}", made.text());
    let made = rpc_answer(&made);
    assert_eq!(made["result"]["resultType"], "task", "{made}");
    let task = made["result"]["taskId"].as_str().unwrap().to_owned();
    let params = json!({"taskId": task});

    let mine = post(
        addr,
        "alice-key-0123456789",
        "tasks/get",
        params.clone(),
        &task,
    );
    assert_eq!(
        rpc_answer(&mine)["result"]["status"],
        "working",
        "{}",
        mine.text()
    );

    let theirs = post(
        addr,
        "bob-key-0123456789ab",
        "tasks/get",
        params.clone(),
        &task,
    );
    let never = post(
        addr,
        "bob-key-0123456789ab",
        "tasks/get",
        json!({"taskId": "0123456789abcdef0123456789abcdef"}),
        "0123456789abcdef0123456789abcdef",
    );
    assert_eq!(
        rpc_answer(&theirs)["error"]["code"],
        -32602,
        "{}",
        theirs.text()
    );
    let said = |reply: &Reply, id: &str| {
        let message = rpc_answer(reply)["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .replace(id, "<id>");
        (reply.status, message)
    };
    assert_eq!(
        said(&theirs, &task),
        said(&never, "0123456789abcdef0123456789abcdef"),
        "another principal learns nothing a made-up id would not tell"
    );
    let cancelled = post(
        addr,
        "bob-key-0123456789ab",
        "tasks/cancel",
        params.clone(),
        &task,
    );
    assert_eq!(
        rpc_answer(&cancelled)["error"]["code"],
        -32602,
        "{}",
        cancelled.text()
    );
    let still = post(addr, "alice-key-0123456789", "tasks/get", params, &task);
    assert_eq!(
        rpc_answer(&still)["result"]["status"],
        "working",
        "{}",
        still.text()
    );
}
