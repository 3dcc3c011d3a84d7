//! The state store from outside: once an HTTP session is initialized, `erlmcp remote store`
//! shows the sessions table with one entry (as text and `--json`, with the files and the
//! restore at the start), and the admin `/metrics` has the store families.

use crate::support::http;
use crate::support::node::Node;
use crate::support::remote::{Remote, get_metrics, text};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

const COOKIE: &str = "store-cookie";
const SESSIONS_TABLE: &str = "http_sessions";

/// The node's MCP HTTP address (not the admin listener's), from its log.
fn mcp_http_addr(node: &mut Node) -> SocketAddr {
    let needle = "http listening on ";
    let is_mcp = |line: &String| line.contains(needle) && !line.contains("admin http");
    let line = match node.seen.iter().find(|l| is_mcp(l)) {
        Some(line) => line.clone(),
        None => loop {
            let line = node.wait_log(needle);
            if is_mcp(&line) {
                break line;
            }
        },
    };
    let at = line.find(needle).unwrap() + needle.len();
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The body of the admin HTTP `GET /api/state`, as JSON.
fn api_state(addr: SocketAddr) -> serde_json::Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(crate::support::node::WAIT))
        .unwrap();
    write!(
        stream,
        "GET /api/state HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {COOKIE}\r\n\
         connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}):\n{raw}"))
}

#[test]
fn remote_store_and_metrics_show_the_sessions_table() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("store-test-{}", std::process::id());
    let dir = runtime.path().as_os_str();
    let args = [
        "--http",
        "127.0.0.1:0",
        "--name",
        &name,
        "--admin-http",
        "127.0.0.1:0",
    ];
    let env = [
        ("XDG_RUNTIME_DIR", dir),
        ("HOME", dir),
        ("ERLMCP_COOKIE", OsStr::new(COOKIE)),
    ];
    let mut node = Node::with_env(&args, &env);
    node.find_log("admin channel listening");
    let admin_http = node.find_addr("admin http listening on ");
    let mcp = mcp_http_addr(&mut node);
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    };
    http::initialize(mcp);

    let out = remote.eval("store", false);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "TABLE",
        "ENTRIES",
        "BOUND",
        SESSIONS_TABLE,
        "last snapshot",
        "fsync",
        "restored at start",
    ] {
        assert!(shown.contains(needle), "no {needle} in:\n{shown}");
    }

    let data = &remote.eval_json("store");
    let sessions = data["tables"]
        .as_array()
        .expect("an array of tables")
        .iter()
        .find(|t| t["name"] == SESSIONS_TABLE)
        .unwrap_or_else(|| panic!("no {SESSIONS_TABLE} in {data}"));
    assert_eq!(sessions["entries"], 1, "{sessions}");
    assert!(sessions["changes"].as_u64().unwrap() >= 1, "{sessions}");
    assert!(sessions["bound"].as_u64().unwrap() > 0, "{sessions}");
    assert!(data["dir"].is_string(), "{data}");
    assert!(data["fsync"].is_string(), "{data}");
    assert!(data["log_bytes"].as_u64().unwrap() > 0, "{data}");
    assert_eq!(data["restore"]["replayed"], 0, "{data}");
    assert_eq!(data["restore"]["refused"], serde_json::json!([]), "{data}");

    let state = api_state(admin_http);
    let tables = state["store"]["tables"]
        .as_array()
        .expect("store in /api/state");
    assert!(
        tables
            .iter()
            .any(|t| t["name"] == SESSIONS_TABLE && t["entries"] == 1),
        "{state}"
    );

    let (status, body) = get_metrics(admin_http, Some(COOKIE));
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let sample = |metric: &str, table: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("table") == table)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{metric}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {metric} in:\n{body}"))
    };
    assert_eq!(sample("erlmcp_store_entries", Some(SESSIONS_TABLE)), 1.0);
    assert!(sample("erlmcp_store_changes_total", Some(SESSIONS_TABLE)) >= 1.0);
    assert!(sample("erlmcp_store_log_bytes", None) > 0.0);
    assert!(sample("erlmcp_store_snapshots_total", None) >= 0.0);
    for family in [
        "# TYPE erlmcp_store_entries gauge",
        "# TYPE erlmcp_store_changes_total counter",
        "# HELP erlmcp_store_log_bytes ",
        "# TYPE erlmcp_store_snapshots_total counter",
    ] {
        assert!(body.contains(family), "no `{family}` in:\n{body}");
    }
}
