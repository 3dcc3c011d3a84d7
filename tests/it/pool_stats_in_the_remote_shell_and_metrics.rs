//! A node's pools are visible from outside: `erlmcp remote pools` lists the tool pool
//! `erlmcp_tool_pool`, sized by `pool_size` and warmed at start, as text and as `--json`; the
//! admin `/metrics` has its per-pool families; the tree shows it under `erlmcp_pool_sup`.

use crate::support::node;

use node::{BIN, Node};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Output;

const COOKIE: &str = "pool-cookie";

fn remote(runtime: &Path, node: &str, command: &str, json: bool) -> Output {
    let mut args = vec!["remote", "--eval", command, "--node", node];
    if json {
        args.push("--json");
    }
    std::process::Command::new(BIN)
        .args(&args)
        .env("XDG_RUNTIME_DIR", runtime)
        .env("HOME", runtime)
        .env("ERLMCP_COOKIE", COOKIE)
        .output()
        .expect("run erlmcp remote")
}

fn metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {COOKIE}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[test]
fn the_tool_pool_shows_in_remote_pools_its_json_the_tree_and_metrics() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("pool-test-{}", std::process::id());
    let dir: &OsStr = runtime.path().as_os_str();
    let mut node = Node::with_env(
        &[
            "--tcp",
            "127.0.0.1:0",
            "--name",
            &name,
            "--admin-http",
            "127.0.0.1:0",
        ],
        &[
            ("XDG_RUNTIME_DIR", dir),
            ("HOME", dir),
            ("ERLMCP_COOKIE", OsStr::new(COOKIE)),
            ("ERLMCP_POOL_SIZE", OsStr::new("3")),
        ],
    );
    node.wait_log("admin channel listening");
    let admin_http = node.wait_addr("admin http listening on ");

    let out = remote(runtime.path(), &name, "pools", false);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("POOL") && text.contains("erlmcp_tool_pool"),
        "{text}"
    );

    let out = remote(runtime.path(), &name, "pools", true);
    assert!(out.status.success(), "{out:?}");
    let reply: Value = serde_json::from_slice(&out.stdout).expect("one JSON reply");
    let pools = reply["data"].as_array().expect("an array of pools");
    let tool_pool = pools
        .iter()
        .find(|p| p["name"] == "erlmcp_tool_pool")
        .expect("the tool pool");
    for (key, value) in [
        ("size", 3),
        ("workers", 3),
        ("idle", 3),
        ("busy", 0),
        ("overflow", 0),
        ("waiting", 0),
        ("timeouts", 0),
        ("worker_restarts", 0),
    ] {
        assert_eq!(tool_pool[key], value, "{key}: {tool_pool}");
    }
    assert_eq!(tool_pool["strategy"], "round_robin");

    let out = remote(runtime.path(), &name, "tree", false);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("erlmcp_pool_sup") && tree.contains("erlmcp_pool_owner:erlmcp_tool_pool"),
        "{tree}"
    );

    let body = metrics(admin_http);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let sample = |metric: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("pool") == Some("erlmcp_tool_pool"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{metric}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {metric} for the tool pool in:\n{body}"))
    };
    assert_eq!(sample("erlmcp_pool_size"), 3.0);
    assert_eq!(sample("erlmcp_pool_idle"), 3.0);
    assert_eq!(sample("erlmcp_pool_checkouts_total"), 0.0);
    assert_eq!(sample("erlmcp_pool_worker_restarts_total"), 0.0);
}
