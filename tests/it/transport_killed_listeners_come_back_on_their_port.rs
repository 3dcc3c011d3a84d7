//! A killed listener — TCP's `erlmcp_tcp`, HTTP's `erlmcp_http` — stops serving with it (the
//! task that owns its socket goes with its state) and its supervisor's restart binds the port
//! its first start got, so clients find the node where they found it. Before, with
//! `127.0.0.1:0`, the restart picked another port while the killed listener's task went on
//! accepting on the old one, owned by no actor.

use crate::support::http;
use crate::support::node::Node;
use crate::support::remote::{Remote, text};
use serde_json::json;
use std::ffi::OsStr;

const COOKIE: &str = "listener-cookie";

#[test]
fn a_killed_listener_is_restarted_on_the_port_it_had_and_serves_there() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("listener-test-{}", std::process::id());
    let dir = runtime.path().as_os_str();
    let mut node = Node::with_env(
        &[
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--name",
            &name,
        ],
        &[
            ("XDG_RUNTIME_DIR", dir),
            ("HOME", dir),
            ("ERLMCP_COOKIE", OsStr::new(COOKIE)),
        ],
    );
    node.find_log("admin channel listening");
    let tcp = node.find_addr("tcp listening on ");
    let web = node.find_addr("http listening on ");
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    };
    for (actor, needle, addr) in [
        ("erlmcp_tcp", "tcp listening on ", tcp),
        ("erlmcp_http", "http listening on ", web),
    ] {
        let killed = remote.eval(&format!("kill {actor}"), false);
        assert!(killed.status.success(), "{}", text(&killed));
        assert_eq!(node.wait_addr(needle), addr, "{actor} came back elsewhere");
    }
    // Served there, by the new listeners.
    let mut client = node.connect();
    let answer = client.initialize("2025-06-18", json!({}));
    assert!(answer["serverInfo"].is_object(), "{answer}");
    http::initialize(web);
}
