//! Black-box tests of the admin channel: `erlmcp remote --eval` against a running node (the
//! tree, killing a worker and seeing its restart count go up, unknown commands, sessions,
//! config, a wrong cookie refused and logged), `erlmcp plugin load|list|rollback` through it,
//! and `/metrics` on the admin HTTP listener parsed as Prometheus text, counting the test's own
//! requests.

use crate::support::plugin_build;
use crate::support::remote::{Remote, get_metrics, start_with_admin, text};

use serde_json::{Value, json};
use std::ffi::OsStr;
use std::time::Duration;

const COOKIE: &str = "right-cookie";

fn registry_restarts(tree: &Value) -> u64 {
    let core = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "erlmcp_core_sup")
        .expect("core supervisor");
    let registry = core["supervisor"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "erlmcp_registry")
        .expect("registry");
    registry["restarts"].as_u64().unwrap()
}

fn requests_total(body: &str, method: &str) -> f64 {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == "erlmcp_requests_total" && s.labels.get("method") == Some(method))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("erlmcp_requests_total is not a counter: {other:?}"),
        })
        .expect("erlmcp_requests_total for the method")
}

#[test]
fn the_remote_shell_kills_and_watches_restarts_refuses_a_wrong_cookie_and_metrics_count_requests() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("remote-test-{}", std::process::id());
    let (mut node, admin_http) = start_with_admin(
        runtime.path(),
        &name,
        COOKIE,
        &[("ERLMCP_METRICS_INTERVAL", OsStr::new("100"))],
    );
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    };

    // The socket is private to its owner.
    let socket = runtime.path().join("erlmcp").join(format!("{name}.sock"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", socket.display());

    // tree, as text and as JSON.
    let tree = remote.eval("tree", false);
    assert!(tree.status.success(), "{}", text(&tree));
    let shown = String::from_utf8_lossy(&tree.stdout);
    assert!(
        shown.contains("erlmcp_registry") && shown.contains("erlmcp_observability_sup"),
        "{shown}"
    );
    let before = registry_restarts(&remote.eval_json("tree"));

    // kill a worker: its supervisor restarts it and the count goes up.
    let killed = remote.eval("kill erlmcp_registry", false);
    assert!(killed.status.success(), "{}", text(&killed));
    let mut after = before;
    for _ in 0..50 {
        after = registry_restarts(&remote.eval_json("tree"));
        if after > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(after, before + 1, "the registry's restart count");

    // ps lists every actor with its uptime; the restarted registry's is fresh.
    let ps = remote.eval_json("ps");
    let registry = ps["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "erlmcp_registry")
        .expect("the registry in ps");
    assert_eq!(registry["restarts"], after, "{registry}");
    assert!(registry["uptime_ms"].as_u64().is_some(), "{registry}");

    // `--json` is structured data only: rows with fields, not the human table.
    let out = remote.eval("ps", true);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 1, "one reply, one line: {printed}");
    let reply: Value = serde_json::from_str(printed.trim()).unwrap();
    assert!(reply.get("text").is_none(), "no human table: {reply}");
    assert!(
        !printed.contains("SUPERVISOR"),
        "no table header: {printed}"
    );
    let rows = reply["data"]["actors"].as_array().expect("actors rows");
    assert!(rows.len() >= 5, "{reply}");
    for row in rows {
        for field in ["name", "kind", "state", "actor", "restarts"] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
    }
    assert!(reply["data"]["sessions"].is_array(), "{reply}");
    let tree = remote.eval_json("tree");
    assert!(tree["hibernating_sessions"].is_u64(), "{tree}");

    // An unknown command or a bad argument is an error, exit 1, and the node serves on.
    let unknown = remote.eval("frobnicate", false);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown command"));
    let bad = remote.eval("kill", false);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let no_such = remote.eval("kill no_such_actor", false);
    assert_eq!(no_such.status.code(), Some(1), "{}", text(&no_such));

    // A wrong cookie is refused (exit 2) and logged by the node.
    let refused = remote.run("wrong-cookie", &["remote", "--eval", "tree"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused"),
        "{}",
        text(&refused)
    );
    node.wait_log("admin connection refused");

    // MCP requests of this test show in `sessions` and in /metrics.
    let mut client = node.connect();
    client.initialize("2025-11-25", json!({}));
    for id in 1..=5 {
        let r = client.call(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "m"}}),
        );
        assert_eq!(r["result"]["content"][0]["text"], "m");
    }
    let sessions = remote.eval_json("sessions");
    let ours = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client"] == "erlmcp-tests")
        .expect("the test's session is listed");
    assert!(ours["requests"].as_u64().unwrap() >= 6, "{ours}");

    let (status, _) = get_metrics(admin_http, None);
    assert_eq!(status, 401, "/metrics needs the cookie");
    let (status, _) = get_metrics(admin_http, Some("wrong-cookie"));
    assert_eq!(status, 401);
    let (status, body) = get_metrics(admin_http, Some(COOKIE));
    assert_eq!(status, 200);
    assert_eq!(requests_total(&body, "tools/call"), 5.0, "{body}");
    assert_eq!(requests_total(&body, "initialize"), 1.0);
    // The restart shows after the collector's next sample.
    let mut restarts_seen = false;
    for _ in 0..50 {
        let (_, body) = get_metrics(admin_http, Some(COOKIE));
        if body.contains("erlmcp_supervisor_restarts_total{")
            && body.contains("supervisor=\"erlmcp_core_sup\"} 1")
        {
            restarts_seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        restarts_seen,
        "erlmcp_supervisor_restarts_total for erlmcp_core_sup"
    );

    // config get/set: the level changes at run time; other keys are refused with a reason.
    let set = remote.eval("config set log_level debug", false);
    assert!(set.status.success(), "{}", text(&set));
    assert_eq!(remote.eval_json("config get log_level"), json!("debug"));
    let fixed = remote.eval("config set http.addr 127.0.0.1:1", false);
    assert_eq!(fixed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fixed.stderr).contains("cannot change while the node runs"));

    // trace streams the log events that match: a new connection's "connection opened" (the
    // filter "opened": the node's earlier connection, idle, hibernates and wakes, and those
    // events name it too).
    let tracing = {
        let (dir, node_name) = (runtime.path().to_owned(), name.clone());
        std::thread::spawn(move || {
            Remote {
                runtime_dir: &dir,
                node: node_name,
                cookie: COOKIE,
            }
            .eval("trace opened 1", false)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let _another = node.connect();
    let traced = tracing.join().unwrap();
    assert!(traced.status.success(), "{}", text(&traced));
    assert!(
        String::from_utf8_lossy(&traced.stdout).contains("connection opened"),
        "{}",
        text(&traced)
    );

    // top streams frames; `top 2` ends after two.
    let top = remote.eval("top 2", false);
    assert!(top.status.success(), "{}", text(&top));
    assert_eq!(
        String::from_utf8_lossy(&top.stdout)
            .matches("req/s")
            .count(),
        2,
        "{}",
        text(&top)
    );

    // Plugins through the CLI: load v1, load v2, list, roll back.
    let build = tempfile::tempdir().unwrap();
    plugin_build::build("erlmcp-plugin-counter", &[], &build.path().join("v1.so"));
    plugin_build::build(
        "erlmcp-plugin-counter",
        &["v2"],
        &build.path().join("v2.so"),
    );
    let so = |v: &str| build.path().join(format!("{v}.so"));
    for version in ["v1", "v2"] {
        let load = remote.run(COOKIE, &["plugin", "load", so(version).to_str().unwrap()]);
        assert!(load.status.success(), "{}", text(&load));
    }
    // The plugin's owner actor is in the tree; killed, it is restarted and the plugin serves on.
    let killed = remote.eval("kill erlmcp_plugin:counter", false);
    assert!(killed.status.success(), "{}", text(&killed));
    let mut client = node.connect();
    client.initialize("2025-11-25", json!({}));
    let counted = client.call(1, "tools/call", json!({"name": "count"}));
    assert!(
        counted["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("2.0.0"),
        "{counted}"
    );
    let list = remote.run(COOKIE, &["plugin", "--json", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    let counter = &listed["data"][0];
    assert_eq!(counter["history"].as_array().unwrap().len(), 1, "{listed}");
    let current = counter["version"].clone();
    let rollback = remote.run(
        COOKIE,
        &["plugin", "rollback", counter["name"].as_str().unwrap()],
    );
    assert!(rollback.status.success(), "{}", text(&rollback));
    let listed: Value =
        serde_json::from_slice(&remote.run(COOKIE, &["plugin", "--json", "list"]).stdout).unwrap();
    assert_ne!(
        listed["data"][0]["version"], current,
        "rolled back to the other version"
    );
    let missing = remote.run(COOKIE, &["plugin", "load", "/no/such/plugin.so"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));

    // A node that is not running: exit 2 with a clear message.
    let absent = Remote {
        runtime_dir: runtime.path(),
        node: "no-such-node".to_owned(),
        cookie: COOKIE,
    }
    .eval("tree", false);
    assert_eq!(absent.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&absent.stderr).contains("cannot reach node"));
}
