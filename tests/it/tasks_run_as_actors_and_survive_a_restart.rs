//! Black-box tests of the tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) over TCP:
//! a task tool called by a client that declares the extension answers a flat `CreateTaskResult`
//! that `tasks/get` resolves at once (working, then completed with the result inlined); a panic
//! is `failed` with its JSON-RPC error inlined, a tool's own error `completed` with `isError`;
//! `tasks/cancel` is an empty ack, the same on an ended task; input goes through `tasks/update`;
//! the creating session is told of each change of status (`notifications/tasks`);
//! another session never sees a task (-32602, as an unknown id), a session without the extension
//! is refused (-32021); a task kept in the store outlives a graceful restart of the node
//! (`erlmcp remote tasks` lists it); and the caps hold (`tasks.max_tasks`, `tasks.ttl`,
//! `tasks.max_result_size`).

use crate::support::node::{Client, Node, code};
use crate::support::remote::Remote;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const EXTENSION: &str = "io.modelcontextprotocol/tasks";

fn with_tasks() -> Value {
    json!({"extensions": {EXTENSION: {}}, "elicitation": {}})
}

/// A session over TCP that declared the tasks extension (or not).
fn session(node: &Node, declares: bool) -> Client<TcpStream, TcpStream> {
    let mut client = node.connect();
    let caps = if declares { with_tasks() } else { json!({}) };
    let result = client.initialize("2025-11-25", caps);
    assert!(
        result["capabilities"]["extensions"][EXTENSION].is_object(),
        "the server announces the extension: {result}"
    );
    client
}

fn call_tool(client: &mut Client<TcpStream, TcpStream>, id: i64, name: &str, args: Value) -> Value {
    client.call(id, "tools/call", json!({"name": name, "arguments": args}))
}

fn task_id(created: &Value) -> String {
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert!(created["result"].get("task").is_none(), "flat: {created}");
    assert!(
        created["result"]["ttlMs"].as_u64().is_some_and(|t| t > 0),
        "{created}"
    );
    let id = created["result"]["taskId"].as_str().expect("taskId");
    assert_eq!(id.len(), 32, "128 random bits, hex: {id}");
    id.to_owned()
}

/// The `notifications/tasks` telling the session that task `id` reached `status` (5 s at most).
fn told(client: &mut Client<TcpStream, TcpStream>, id: &str, status: &str) -> Value {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.extend(client.take_notifications("notifications/tasks"));
        if let Some(note) = seen
            .iter()
            .find(|n| n["params"]["taskId"] == id && n["params"]["status"] == status)
        {
            return note.clone();
        }
        client.silent_for(Duration::from_millis(50));
    }
    panic!("no notifications/tasks {status} for {id}: {seen:?}");
}

/// `tasks/get` until the task ends (10 s at most).
fn until_ended(client: &mut Client<TcpStream, TcpStream>, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 1000;
    loop {
        n += 1;
        let got = client.call(n, "tasks/get", json!({"taskId": id}));
        let status = got["result"]["status"].as_str().unwrap_or("?").to_owned();
        if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
            return got["result"].clone();
        }
        assert!(Instant::now() < deadline, "task {id} did not end: {got}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_task_is_created_polled_and_completes_with_its_result_inlined() {
    let node = Node::tcp(None);
    let mut client = session(&node, true);
    let created = call_tool(
        &mut client,
        1,
        "slow_compute",
        json!({"seconds": 1, "label": "it"}),
    );
    let id = task_id(&created);
    assert_eq!(created["result"]["status"], "working");
    // Durably created: resolvable at once.
    let now = client.call(2, "tasks/get", json!({"taskId": id}));
    assert_eq!(now["result"]["taskId"], id.as_str(), "{now}");
    assert_eq!(now["result"]["status"], "working", "{now}");
    assert!(now["result"].get("result").is_none(), "{now}");
    let ended = until_ended(&mut client, &id);
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["resultType"], "complete", "{ended}");
    let text = ended["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("computed `it`"), "{ended}");
    // The session was told, with the result inlined.
    let told = told(&mut client, &id, "completed");
    assert_eq!(told["params"]["result"], ended["result"], "{told}");
    assert!(told["params"].get("resultType").is_none(), "{told}");
    // An ordinary tool is never a task.
    let greeted = call_tool(&mut client, 3, "greet", json!({"name": "you"}));
    assert_eq!(
        greeted["result"]["content"][0]["text"], "Hello, you!",
        "{greeted}"
    );
}

#[test]
fn a_panic_fails_the_task_with_its_error_and_a_tool_error_completes_it_as_is_error() {
    let node = Node::tcp(None);
    let mut client = session(&node, true);
    let failing = task_id(&call_tool(&mut client, 1, "protocol_error_job", json!({})));
    let tool_error = task_id(&call_tool(&mut client, 2, "failing_job", json!({})));
    let failed = until_ended(&mut client, &failing);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], -32603, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panicked"),
        "{failed}"
    );
    assert!(failed.get("result").is_none(), "{failed}");
    let completed = until_ended(&mut client, &tool_error);
    assert_eq!(completed["status"], "completed", "{completed}");
    assert_eq!(completed["result"]["isError"], true, "{completed}");
    // The node goes on.
    assert_eq!(
        code(&client.call(3, "tasks/get", json!({"taskId": "nope"}))),
        -32602
    );
}

#[test]
fn cancel_is_an_empty_ack_and_the_same_on_an_ended_task() {
    let node = Node::tcp(None);
    let mut client = session(&node, true);
    let id = task_id(&call_tool(
        &mut client,
        1,
        "slow_compute",
        json!({"seconds": 60}),
    ));
    for n in [2, 3] {
        let ack = client.call(n, "tasks/cancel", json!({"taskId": id}));
        assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    }
    let ended = until_ended(&mut client, &id);
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let unknown = client.call(4, "tasks/cancel", json!({"taskId": "0123"}));
    assert_eq!(code(&unknown), -32602, "{unknown}");
}

#[test]
fn input_goes_through_tasks_update_one_answer_at_a_time() {
    let node = Node::tcp(None);
    let mut client = session(&node, true);
    let id = task_id(&call_tool(&mut client, 1, "multi_input", json!({})));
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let got = client.call(2, "tasks/get", json!({"taskId": id}));
        if got["result"]["status"] == "input_required" {
            break got["result"].clone();
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let keys: Vec<String> = waiting["inputRequests"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 2, "{waiting}");
    assert_eq!(
        waiting["inputRequests"][&keys[0]]["method"],
        "elicitation/create"
    );
    let answer = |name: &str| json!({"action": "accept", "content": {"name": name}});
    let ack = client.call(
        3,
        "tasks/update",
        json!({"taskId": id, "inputResponses": {keys[0].as_str(): answer("a")}}),
    );
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let partial = client.call(4, "tasks/get", json!({"taskId": id}));
    assert_eq!(partial["result"]["status"], "input_required", "{partial}");
    assert!(
        partial["result"]["inputRequests"].get(&keys[0]).is_none(),
        "{partial}"
    );
    assert!(
        partial["result"]["inputRequests"].get(&keys[1]).is_some(),
        "{partial}"
    );
    client.call(
        5,
        "tasks/update",
        json!({"taskId": id, "inputResponses": {keys[1].as_str(): answer("b")}}),
    );
    let ended = until_ended(&mut client, &id);
    assert_eq!(ended["status"], "completed", "{ended}");
    let text = ended["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("first: ") && text.contains("second: "),
        "{ended}"
    );
}

#[test]
fn another_session_never_sees_a_task_and_one_without_the_extension_is_refused() {
    let node = Node::tcp(None);
    let mut owner = session(&node, true);
    let mut other = session(&node, true);
    let mut plain = session(&node, false);
    let id = task_id(&call_tool(
        &mut owner,
        1,
        "slow_compute",
        json!({"seconds": 60}),
    ));
    for (n, method) in [(1, "tasks/get"), (2, "tasks/cancel"), (3, "tasks/update")] {
        let refused = other.call(n, method, json!({"taskId": id, "inputResponses": {}}));
        assert_eq!(
            code(&refused),
            -32602,
            "{method} from another session: {refused}"
        );
        let gated = plain.call(n, method, json!({"taskId": id, "inputResponses": {}}));
        assert_eq!(
            code(&gated),
            -32021,
            "{method} without the extension: {gated}"
        );
        assert!(
            gated["error"]["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object(),
            "{gated}"
        );
    }
    // Still the owner's, still running.
    let mine = owner.call(2, "tasks/get", json!({"taskId": id}));
    assert_eq!(mine["result"]["status"], "working", "{mine}");
    // Without the extension: an optional task tool runs at once, a required one is refused.
    let at_once = call_tool(&mut plain, 4, "slow_compute", json!({"seconds": 0}));
    assert!(at_once["result"].get("taskId").is_none(), "{at_once}");
    assert!(at_once["result"]["content"].is_array(), "{at_once}");
    assert_eq!(
        code(&call_tool(&mut plain, 5, "failing_job", json!({}))),
        -32021
    );
    // Per request, in `_meta`: a task.
    let opted = plain.call(
        6,
        "tools/call",
        json!({"name": "slow_compute", "arguments": {"seconds": 60},
               "_meta": {"io.modelcontextprotocol/clientCapabilities": with_tasks()}}),
    );
    task_id(&opted);
}

/// A stateless (2026-07-28) request over TCP: its envelope in `_meta`.
fn stateless(method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": with_tasks(),
    });
    json!({"method": method, "params": params})
}

fn stateless_call(client: &mut Client<TcpStream, TcpStream>, id: i64, request: Value) -> Value {
    client.call(
        id,
        request["method"].as_str().unwrap(),
        request["params"].clone(),
    )
}

fn start(dir: &std::path::Path, name: &str) -> Node {
    let dir = dir.as_os_str();
    let env = [
        ("XDG_RUNTIME_DIR", dir),
        ("HOME", dir),
        ("XDG_DATA_HOME", dir),
        ("ERLMCP_COOKIE", OsStr::new("tasks-cookie")),
    ];
    let mut node = Node::with_env(&["--tcp", "127.0.0.1:0", "--name", name], &env);
    node.wait_log("admin channel listening");
    node
}

fn stop_gracefully(mut node: Node) {
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&node.child), Signal::TERM).expect("SIGTERM");
    assert_eq!(node.wait_exit(), Some(0), "a graceful stop");
}

#[test]
fn a_task_outlives_a_graceful_restart_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("tasks-test-{}", std::process::id());
    let first = start(dir.path(), &name);
    let mut client = first.connect();
    let done = task_id(&stateless_call(
        &mut client,
        1,
        stateless(
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 0, "label": "kept"}}),
        ),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stateless_call(
        &mut client,
        2,
        stateless("tasks/get", json!({"taskId": done})),
    )["result"]["status"]
        != "completed"
    {
        assert!(Instant::now() < deadline, "the first task did not complete");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still running when the node stops: run again after the restart.
    let running = task_id(&stateless_call(
        &mut client,
        3,
        stateless(
            "tools/call",
            json!({"name": "slow_compute", "arguments": {"seconds": 1, "label": "resumed"}}),
        ),
    ));
    drop(client);
    stop_gracefully(first);

    let second = start(dir.path(), &name);
    let mut client = second.connect();
    let kept = stateless_call(
        &mut client,
        1,
        stateless("tasks/get", json!({"taskId": done})),
    );
    assert_eq!(kept["result"]["status"], "completed", "{kept}");
    assert_eq!(
        kept["result"]["result"]["content"][0]["text"], "computed `kept` in 0 s",
        "{kept}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let got = stateless_call(
            &mut client,
            2,
            stateless("tasks/get", json!({"taskId": running})),
        );
        if got["result"]["status"] == "completed" {
            break got;
        }
        assert_eq!(got["result"]["status"], "working", "{got}");
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        resumed["result"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("resumed")
    );
    // A session of the new node is another principal.
    let mut other = session(&second, true);
    assert_eq!(
        code(&other.call(3, "tasks/get", json!({"taskId": done}))),
        -32602
    );

    let remote = Remote {
        runtime_dir: dir.path(),
        node: name.clone(),
        cookie: "tasks-cookie",
    };
    let listed = remote.eval_json("tasks");
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        ids.contains(&done.as_str()) && ids.contains(&running.as_str()),
        "{listed}"
    );
    assert_eq!(listed["tasks"][0]["owner"], "stateless", "{listed}");
    drop(client);
    stop_gracefully(second);
}

#[test]
fn the_caps_hold_too_many_tasks_refused_a_large_result_fails_and_the_ttl_deletes() {
    let node = Node::tcp(Some(
        "[tasks]\nmax_tasks = 2\nttl = 1500\nmax_result_size = 64\n",
    ));
    let mut client = session(&node, true);
    let large = task_id(&call_tool(
        &mut client,
        1,
        "slow_compute",
        json!({"seconds": 0, "label": "a label long enough to pass sixty-four bytes of JSON"}),
    ));
    assert_eq!(
        created_ttl(&client.call(2, "tasks/get", json!({"taskId": large}))),
        1500
    );
    let failed = until_ended(&mut client, &large);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tasks.max_result_size"),
        "{failed}"
    );
    let second = task_id(&call_tool(
        &mut client,
        3,
        "slow_compute",
        json!({"seconds": 60}),
    ));
    let refused = call_tool(&mut client, 4, "slow_compute", json!({"seconds": 60}));
    assert_eq!(code(&refused), -32000, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many tasks"),
        "{refused}"
    );
    // At its TTL a task is gone (a running one too), and makes room for another.
    std::thread::sleep(Duration::from_millis(1800));
    for (n, id) in [(5, &large), (6, &second)] {
        let gone = client.call(n, "tasks/get", json!({"taskId": id}));
        assert_eq!(code(&gone), -32602, "{gone}");
    }
    task_id(&call_tool(
        &mut client,
        7,
        "slow_compute",
        json!({"seconds": 0}),
    ));
}

fn created_ttl(got: &Value) -> u64 {
    got["result"]["ttlMs"].as_u64().unwrap_or(0)
}
