//! Owns what the cluster tests share (tests/it/cluster*.rs): nodes started with
//! `--cluster-listen` on free loopback ports, the shell's view of their members, waiting for a
//! membership or a stopped process, and the JSON-RPC calls they make.

use crate::support::node::Node;
use crate::support::remote::Remote;
use serde_json::Value;
use std::ffi::OsStr;
use std::time::{Duration, Instant};

pub(crate) const COOKIE: &str = "cluster-test-cookie";

/// How long after a SIGKILL the other nodes must list the killed one as down. On one host the
/// kernel closes the dead process's sockets at once and the departure is seen in milliseconds
/// (docs/cluster.md); the bound leaves room for a loaded machine and the shell's own start-up.
pub(crate) const DEPARTURE_BOUND: Duration = Duration::from_secs(5);

/// How long after a SIGSTOP the other nodes must list the hung one as down: the heartbeat's
/// timeout (`cluster.heartbeat_timeout`, 5 s) plus one beat interval (1 s), with room to spare.
pub(crate) const SILENCE_BOUND: Duration = Duration::from_secs(10);

/// How long joining may take: a dial is retried every second.
pub(crate) const JOIN_BOUND: Duration = Duration::from_secs(20);

/// `n` loopback ports free a moment ago (the listeners are closed before the nodes bind them).
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    // Below the kernel's ephemeral range (32768–60999 here): a port bound and let go there may
    // be taken the next moment as the local port of any of the many loopback connections the
    // other tests open, and the node's bind then fails ("Address already in use"). Ports from
    // here are only ever handed out once per test binary, and checked free when handed out.
    static HANDED_OUT: std::sync::Mutex<Option<std::collections::HashSet<u16>>> =
        std::sync::Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(Default::default);
    let mut seed = u64::from(std::process::id())
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64));
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        // xorshift: enough to spread test binaries over the range.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = 20_000 + (seed % 12_000) as u16;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    ports
}

/// `erlmcp start --http 127.0.0.1:0 --name NAME --cluster-listen 127.0.0.1:PORT [--join SEED]`.
pub(crate) fn start(name: &str, port: u16, seed: Option<u16>, cookie: &str) -> Node {
    start_with(name, port, seed, cookie, None)
}

/// [`start`] with a config file holding `config`.
pub(crate) fn start_with(
    name: &str,
    port: u16,
    seed: Option<u16>,
    cookie: &str,
    config: Option<&str>,
) -> Node {
    let listen = format!("127.0.0.1:{port}");
    let join = seed.map(|p| format!("127.0.0.1:{p}"));
    let mut args = vec![
        "--http",
        "127.0.0.1:0",
        "--name",
        name,
        "--cluster-listen",
        &listen,
    ];
    if let Some(join) = &join {
        args.extend(["--join", join]);
    }
    let env = [("ERLMCP_COOKIE", OsStr::new(cookie))];
    match config {
        Some(config) => Node::with_env_and_config(&args, &env, config),
        None => Node::with_env(&args, &env),
    }
}

pub(crate) fn remote<'a>(node: &'a Node, name: &str) -> Remote<'a> {
    Remote {
        runtime_dir: node.home(),
        node: name.to_owned(),
        cookie: COOKIE,
    }
}

/// `nodes --json`: each member's name → state.
pub(crate) fn members(remote: &Remote<'_>) -> Vec<(String, String)> {
    let data = remote.eval_json("nodes");
    data["members"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_owned(),
                m["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Polls `nodes` on `remote` until `want` holds of its members, within `bound`; the time it took.
pub(crate) fn wait_members(
    remote: &Remote<'_>,
    bound: Duration,
    what: &str,
    want: impl Fn(&[(String, String)]) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < bound {
        last = members(remote);
        if want(&last) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{}: not {what} within {bound:?}; members: {last:?}",
        remote.node
    );
}

pub(crate) fn state_of<'m>(members: &'m [(String, String)], name: &str) -> Option<&'m str> {
    members
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s.as_str())
}

/// Waits (2 s at most) until every thread of process `pid` is stopped: a signal is delivered
/// after `kill` returns.
pub(crate) fn wait_stopped(pid: u32) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let all_stopped = tasks.filter_map(Result::ok).all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('T')))
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("process {pid} not stopped within 2 s");
}

/// A JSON-RPC answer from a Streamable HTTP reply: its body, or the last message of its SSE body.
pub(crate) fn rpc_answer(reply: &crate::support::http::Reply) -> Value {
    if reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        reply.sse_messages().pop().expect("an answer in the stream")
    } else {
        reply.json()
    }
}

pub(crate) fn echo_call(id: i64, text: &str, progress: bool) -> Value {
    let mut params = serde_json::json!({"name": "echo", "arguments": {"text": text}});
    if progress {
        params["_meta"] = serde_json::json!({"progressToken": id});
    }
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// Waits until every one of `nodes` (each with its node name) lists all of them up (or itself),
/// within [`JOIN_BOUND`].
pub(crate) fn wait_all_up(nodes: &[(&Node, &str)]) {
    let names: Vec<String> = nodes
        .iter()
        .map(|(_, name)| format!("{name}@127.0.0.1"))
        .collect();
    let what = format!("{} up", nodes.len());
    for (node, name) in nodes {
        wait_members(&remote(node, name), JOIN_BOUND, &what, |members| {
            names
                .iter()
                .all(|n| matches!(state_of(members, n), Some("up" | "self")))
        });
    }
}
