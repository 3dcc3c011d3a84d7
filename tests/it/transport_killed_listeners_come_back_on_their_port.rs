//! A killed listener — TCP's `erlmcp_tcp`, HTTP's `erlmcp_http` — stops serving with it (the
//! task that owns its socket goes with its state) and its supervisor's restart binds the port
//! its first start got, so clients find the node where they found it. Before, with
//! `127.0.0.1:0`, the restart picked another port while the killed listener's task went on
//! accepting on the old one, owned by no actor. The connections of a killed HTTP listener go
//! with it too: a keep-alive connection idle at the kill is closed, not served on by a task
//! nobody owns.

use crate::support::http;
use crate::support::node::Node;
use crate::support::remote::{Remote, text};
use serde_json::json;
use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::time::Duration;

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
    // A keep-alive HTTP connection that made a session and is idle when its listener dies.
    let mut kept = std::net::TcpStream::connect(web).unwrap();
    let body = http::initialize_request().to_string();
    write!(
        kept,
        "POST /mcp HTTP/1.1\r\nHost: {web}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 4096];
    let read = kept.read(&mut answer).unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..read])
    );
    std::thread::sleep(Duration::from_millis(200)); // the rest of the answer, if split
    kept.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let _ = kept.read(&mut answer);
    for (actor, needle, addr) in [
        ("erlmcp_tcp", "tcp listening on ", tcp),
        ("erlmcp_http", "http listening on ", web),
    ] {
        let killed = remote.eval(&format!("kill {actor}"), false);
        assert!(killed.status.success(), "{}", text(&killed));
        assert_eq!(node.wait_addr(needle), addr, "{actor} came back elsewhere");
    }
    // The idle connection was closed with its listener (EOF or a reset), within the bound.
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match kept.read(&mut answer) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the killed listener's connection is still open: {other:?}"),
    }
    // Served there, by the new listeners.
    let mut client = node.connect();
    let answer = client.initialize("2025-06-18", json!({}));
    assert!(answer["serverInfo"].is_object(), "{answer}");
    http::initialize(web);
}
