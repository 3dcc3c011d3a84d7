//! Tasks and broadcasts across a cluster of real `erlmcp start` processes on loopback
//! (docs/cluster.md, "Tasks through any node", "Broadcasts across nodes"): a task made through
//! one node is polled and cancelled through another; a resource updated or a list changed on one
//! node reaches the sessions of another, within the relay's bounds; a session's GET stream opened
//! through a node that does not own the session is relayed from its owner as its events come.
//! Every process is stopped when its `Node` drops.

use crate::support::cluster::*;

use serde_json::Value;
use std::time::{Duration, Instant};

/// A stateless (2026-07-28) request declaring the tasks extension, its routing headers from the
/// body (`Mcp-Name`: the tool, or the task id).
fn stateless_post(
    addr: std::net::SocketAddr,
    id: i64,
    method: &str,
    mut params: Value,
    name: &str,
) -> crate::support::http::Reply {
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":
            {"extensions": {"io.modelcontextprotocol/tasks": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "cluster-test", "version": "1"},
    });
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    crate::support::http::request(
        addr,
        "POST",
        &[
            crate::support::http::JSON,
            crate::support::http::ACCEPT,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
            ("mcp-name", name),
        ],
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    )
}

/// Tasks through any node (docs/cluster.md, "Tasks through any node"): a task made through a is
/// owned by a on every node's ring, polled and cancelled through b; a task of a session made
/// through a is made and polled through b; an unknown id through b gets what a single node
/// answers (-32602 `unknown task`).
#[test]
fn a_task_made_through_one_node_is_polled_and_cancelled_through_another() {
    let ports = free_ports(2);
    let a = start("a", ports[0], None, COOKIE);
    let b = start("b", ports[1], Some(ports[0]), COOKIE);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let (a_http, b_http) = (a.http.unwrap(), b.http.unwrap());

    let created = stateless_post(
        a_http,
        1,
        "tools/call",
        serde_json::json!({"name": "slow_compute", "arguments": {"seconds": 60, "label": "far"}}),
        "slow_compute",
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let created = rpc_answer(&created);
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let task = created["result"]["taskId"].as_str().unwrap().to_owned();
    let owner = remote(&b, "b").eval_json(&format!("nodes owner {task}"))["owner"].clone();
    assert_eq!(owner, "a@127.0.0.1", "a task id is drawn for its maker");

    // Polled through b: a answers.
    let params = serde_json::json!({"taskId": task});
    let got = stateless_post(b_http, 2, "tasks/get", params.clone(), &task);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        rpc_answer(&got)["result"]["status"],
        "working",
        "{}",
        got.text()
    );
    // Cancelled through b: the empty answer, and the task is cancelled on a.
    let cancelled = stateless_post(b_http, 3, "tasks/cancel", params.clone(), &task);
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    assert_eq!(
        rpc_answer(&cancelled)["result"]["resultType"],
        "complete",
        "{}",
        cancelled.text()
    );
    for addr in [a_http, b_http] {
        let got = stateless_post(addr, 4, "tasks/get", params.clone(), &task);
        assert_eq!(
            rpc_answer(&got)["result"]["status"],
            "cancelled",
            "{}",
            got.text()
        );
    }

    // In a session made through a (declaring the extension), a task made and polled through b:
    // the session's requests go to a, which made the task.
    let mut init = crate::support::http::initialize_request();
    init["params"]["capabilities"] =
        serde_json::json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let made = crate::support::http::post(a_http, None, &init, &[]);
    assert_eq!(made.status, 200, "{}", made.text());
    let session = made.header("mcp-session-id").unwrap().to_owned();
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    crate::support::http::post(b_http, Some(&session), &initialized, &[]);
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "slow_compute", "arguments": {"seconds": 60}}});
    let created = crate::support::http::post(b_http, Some(&session), &call, &[]);
    let in_session = rpc_answer(&created)["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task: {}", created.text()))
        .to_owned();
    let get = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/get",
        "params": {"taskId": in_session}});
    let got = crate::support::http::post(b_http, Some(&session), &get, &[]);
    assert_eq!(
        rpc_answer(&got)["result"]["status"],
        "working",
        "{}",
        got.text()
    );

    // An id nobody made, one the ring gives to a: through b, what a single node answers.
    let unknown = (0..64)
        .map(|i| format!("{i:032x}"))
        .find(|id| {
            remote(&b, "b").eval_json(&format!("nodes owner {id}"))["owner"] == "a@127.0.0.1"
        })
        .expect("an id the ring gives to a");
    let params = serde_json::json!({"taskId": unknown});
    let through_b = stateless_post(b_http, 5, "tasks/get", params.clone(), &unknown);
    let on_a = stateless_post(a_http, 5, "tasks/get", params, &unknown);
    assert_eq!(
        rpc_answer(&through_b)["error"]["code"],
        -32602,
        "{}",
        through_b.text()
    );
    assert_eq!(
        (through_b.status, rpc_answer(&through_b)),
        (on_a.status, rpc_answer(&on_a))
    );
}

/// A session's GET stream on `addr`, read as it comes.
struct EventStream {
    stream: std::net::TcpStream,
    seen: String,
}

impl EventStream {
    fn open(addr: std::net::SocketAddr, session: &str) -> Self {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "GET /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: text/event-stream\r\nmcp-session-id: {session}\r\n\r\n",
            addr.port()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut events = Self {
            stream,
            seen: String::new(),
        };
        events.until("text/event-stream", Duration::from_secs(10));
        events
    }

    /// Reads until `needle` has come (within `bound`); whether it did.
    fn until(&mut self, needle: &str, bound: Duration) -> bool {
        self.until_count(needle, 1, bound)
    }

    /// Reads until `needle` has come `times` times in all (within `bound`); whether it did.
    fn until_count(&mut self, needle: &str, times: usize, bound: Duration) -> bool {
        use std::io::Read as _;
        let deadline = Instant::now() + bound;
        let mut buf = [0u8; 8192];
        let come = |seen: &str| seen.matches(needle).count() >= times;
        while !come(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return come(&self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        true
    }
}

/// `session` subscribed to `test://watched-resource` and its GET stream opened, both through
/// `addr`: the URI and the stream.
fn subscribed_stream(addr: std::net::SocketAddr, session: &str) -> (&'static str, EventStream) {
    use crate::support::http;
    let uri = "test://watched-resource";
    let subscribe = serde_json::json!({"jsonrpc": "2.0", "id": 1,
        "method": "resources/subscribe", "params": {"uri": uri}});
    let subscribed = http::post(addr, Some(session), &subscribe, &[]);
    assert_eq!(subscribed.status, 200, "{}", subscribed.text());
    (uri, EventStream::open(addr, session))
}

/// Streamed forwarding (docs/cluster.md, "Sessions through any node"): a session made on a, its
/// GET stream opened through b, hears of an update made on a while the stream stays open — the
/// stream is relayed as it comes, never buffered whole (a GET stream never ends); and a POST's
/// SSE answer through b still brings the progress and the result.
#[test]
fn a_get_stream_through_another_node_is_relayed_as_its_events_come() {
    use crate::support::http;
    let ports = free_ports(2);
    let a = start("a", ports[0], None, COOKIE);
    let b = start("b", ports[1], Some(ports[0]), COOKIE);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let (a_http, b_http) = (a.http.unwrap(), b.http.unwrap());

    // Made on a; subscribed, its GET stream open, through b.
    let session = http::initialize(a_http);
    let (uri, mut events) = subscribed_stream(b_http, &session);
    assert!(
        events.seen.starts_with("HTTP/1.1 200"),
        "the GET through b: {}",
        events.seen
    );
    for round in 0..2 {
        let told = remote(&a, "a").eval_json(&format!("resources updated {uri}"));
        assert_eq!(told["updated"], uri, "{told}");
        assert!(
            events.until_count(
                "notifications/resources/updated",
                round + 1,
                Duration::from_secs(10)
            ),
            "round {round}: no resources/updated relayed through b: {}",
            events.seen
        );
    }

    let through_b = http::post(b_http, Some(&session), &echo_call(8, "via b", true), &[]);
    assert_eq!(through_b.status, 200, "{}", through_b.text());
    let messages = through_b.sse_messages();
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{messages:?}"
    );
    assert_eq!(rpc_answer(&through_b)["id"], 8, "{}", through_b.text());
}

/// Broadcasts across nodes (docs/cluster.md, "Broadcasts across nodes"): a session of b
/// subscribed to a resource hears of its update made on a (`resources updated URI` in a's
/// shell), once; a list changed on a (the demo's `test_trigger_tool_change`) reaches it too.
#[test]
fn a_resource_updated_on_one_node_reaches_a_subscribed_session_on_another() {
    use crate::support::http;
    let ports = free_ports(2);
    let a = start("a", ports[0], None, COOKIE);
    let b = start("b", ports[1], Some(ports[0]), COOKIE);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let (a_http, b_http) = (a.http.unwrap(), b.http.unwrap());

    // A session of b, subscribed, with its GET stream open on b.
    let session = http::initialize(b_http);
    let (uri, mut events) = subscribed_stream(b_http, &session);

    let asked_at = Instant::now();
    let told = remote(&a, "a").eval_json(&format!("resources updated {uri}"));
    assert_eq!(told["updated"], uri, "{told}");
    let shell_took = asked_at.elapsed();
    assert!(
        events.until("notifications/resources/updated", Duration::from_secs(5)),
        "no resources/updated on b's stream: {}",
        events.seen
    );
    // The figure docs/cluster.md quotes: the shell's round trip (a process start) bounds it.
    eprintln!(
        "a resource updated through a's shell reached a session of b {:?} after the shell started (the shell took {shell_took:?})",
        asked_at.elapsed()
    );
    assert!(events.seen.contains(uri), "{}", events.seen);

    // A list changed on a (a stateless call of the demo's trigger there).
    let changed = stateless_post(
        a_http,
        2,
        "tools/call",
        serde_json::json!({"name": "test_trigger_tool_change", "arguments": {}}),
        "test_trigger_tool_change",
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert!(
        events.until("notifications/tools/list_changed", Duration::from_secs(5)),
        "no tools/list_changed on b's stream: {}",
        events.seen
    );
    // Each once: nothing came back round.
    events.until("never", Duration::from_millis(500));
    assert_eq!(
        events
            .seen
            .matches("notifications/resources/updated")
            .count(),
        1,
        "{}",
        events.seen
    );
}

/// The relay's bounds (docs/cluster.md, "Broadcasts across nodes"): with one URI a second
/// (`cluster.broadcast_rate = 1`, `broadcast_window = 1000`), the first update goes at once, the
/// next gathers until the window ends, and one past the window's share is dropped and logged.
#[test]
fn broadcasts_past_the_rate_are_dropped_and_logged() {
    let ports = free_ports(2);
    let config = Some("[cluster]\nbroadcast_window = 1000\nbroadcast_rate = 1\n");
    let mut a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    for uri in ["test://one", "test://two", "test://three"] {
        let told = remote(&a, "a").eval_json(&format!("resources updated {uri}"));
        assert_eq!(told["updated"], uri, "{told}");
    }
    let dropped = a.wait_log("past cluster.broadcast_rate");
    assert!(dropped.contains("WARN"), "{dropped}");
    assert!(dropped.contains("of 1 URIs not sent"), "{dropped}");
}
