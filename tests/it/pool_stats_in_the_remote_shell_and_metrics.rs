//! A node's pools are visible from outside: `erlmcp remote pools` lists the tool pool
//! `erlmcp_tool_pool`, sized by `pool_size` and warmed at start, as text and as `--json`; the
//! admin `/metrics` has its per-pool families; the tree shows it under `erlmcp_pool_sup`.

use crate::support::remote::{Remote, get_metrics, start_with_admin};
use serde_json::Value;
use std::ffi::OsStr;

const COOKIE: &str = "pool-cookie";

#[test]
fn the_tool_pool_shows_in_remote_pools_its_json_the_tree_and_metrics() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("pool-test-{}", std::process::id());
    let (_node, admin_http) = start_with_admin(
        runtime.path(),
        &name,
        COOKIE,
        &[("ERLMCP_POOL_SIZE", OsStr::new("3"))],
    );
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    };

    let out = remote.eval("pools", false);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("POOL") && text.contains("erlmcp_tool_pool"),
        "{text}"
    );

    let out = remote.eval("pools", true);
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

    let out = remote.eval("tree", false);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("erlmcp_pool_sup") && tree.contains("erlmcp_pool_owner:erlmcp_tool_pool"),
        "{tree}"
    );

    let (status, body) = get_metrics(admin_http, Some(COOKIE));
    assert_eq!(status, 200, "{body}");
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
