//! Black-box tests of `erlmcp start`: the tree starts and is logged, SIGTERM/SIGINT stop it in
//! reverse order with exit code 0, bad configuration exits 2 with a message naming the key.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::home::PrivateHome;

struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// The node's `HOME`: removed after the node (stopped when dropped).
    _home: PrivateHome,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Node {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Node {
        let home = PrivateHome::new();
        let mut cmd = home.command();
        cmd.arg("start")
            .args(args)
            .env_remove("RUST_LOG")
            // The default HTTP listener on a free port, so parallel tests do not collide.
            .env("ERLMCP_HTTP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn erlmcp");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            lines,
            seen: Vec::new(),
            _home: home,
        }
    }

    /// Reads stderr until a line contains `needle`; fails after 20 s.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        let _ = self.child.kill();
        panic!("no `{needle}` in stderr:\n{}", self.seen.join("\n"));
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for exit (20 s at most) and returns the code and all of stderr.
    fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("erlmcp did not exit:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut stdout);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"), stdout)
    }
}

fn position(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{log}"))
}

#[test]
fn sigterm_stops_the_tree_in_reverse_start_order_and_exits_0() {
    let mut node = Node::start(&[], &[]);
    node.wait_for("erlmcp started");
    node.signal("TERM");
    let (code, log, stdout) = node.finish();
    assert_eq!(code, 0, "{log}");
    // The tree was logged with erlmcp's names.
    for name in [
        "erlmcp_sup (one_for_one",
        "erlmcp_core_sup",
        "erlmcp_transport_sup",
        "erlmcp_observability_sup",
    ] {
        assert!(log.contains(name), "{name} missing:\n{log}");
    }
    // Reverse order: observability, transport, core, then the root.
    let stopped = |name: &str| {
        position(
            log.as_str(),
            &format!("supervisor stopped supervisor={name}"),
        )
    };
    assert!(stopped("erlmcp_observability_sup") < stopped("erlmcp_transport_sup"));
    assert!(stopped("erlmcp_transport_sup") < stopped("erlmcp_core_sup"));
    assert!(stopped("erlmcp_core_sup") < stopped("erlmcp_sup"));
    assert!(log.contains("erlmcp stopped"));
    assert!(
        stdout.is_empty(),
        "stdout belongs to the stdio transport: {stdout:?}"
    );
}

#[test]
fn sigint_stops_the_node_gracefully_too() {
    let mut node = Node::start(&[], &[]);
    node.wait_for("erlmcp started");
    node.signal("INT");
    let (code, log, _) = node.finish();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("signal=\"SIGINT\""), "{log}");
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let mut node = Node::start(&["--log-format", "json"], &[]);
    node.wait_for("erlmcp started");
    node.signal("TERM");
    let (code, log, _) = node.finish();
    assert_eq!(code, 0);
    for line in log.lines().filter(|l| !l.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

/// Runs `erlmcp start --config FILE` with `contents` in a file called `name`; returns the exit
/// code and stderr (a bad config must stop it before it runs).
fn start_with_config(name: &str, contents: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    let out = PrivateHome::new()
        .command()
        .args(["start", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_file_with_an_unknown_key_exits_2_naming_the_key() {
    let (code, err) =
        start_with_config("bad.toml", "pool_size = 10\n[tcp_opts]\nno_delay = true\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no_delay") && err.contains("bad.toml"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_config_value_out_of_range_exits_2_naming_the_key() {
    let (code, err) = start_with_config("zero.toml", "[supervision]\nperiod = 0\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("supervision.period"), "{err}");
}

#[test]
fn a_missing_config_file_exits_2() {
    let out = PrivateHome::new()
        .command()
        .args(["start", "--config", "/nonexistent/erlmcp.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/erlmcp.toml"));
}

#[test]
fn a_bad_environment_override_exits_2_naming_the_variable() {
    let out = PrivateHome::new()
        .command()
        .arg("start")
        .env("ERLMCP_MAX_CONNECTIONS", "plenty")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERLMCP_MAX_CONNECTIONS"));
}

#[test]
fn environment_overrides_reach_the_running_node() {
    let mut node = Node::start(&[], &[("ERLMCP_NODE_NAME", "node_from_env")]);
    node.wait_for("node=node_from_env");
    node.signal("TERM");
    assert_eq!(node.finish().0, 0);
}

#[test]
fn erlmcp_config_prints_the_effective_configuration() {
    let out = PrivateHome::new()
        .command()
        .arg("config")
        .env("ERLMCP_POOL_SIZE", "42")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool_size = 42"), "{text}");
}
