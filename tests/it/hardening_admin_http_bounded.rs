//! Black-box tests of the admin HTTP listener's bounds (issue #16, the admin side): an address
//! off loopback (`--admin-http`, `admin.tcp`) is refused at start with exit code 2; a connection
//! that sends no request head within `http.header_read_timeout` is closed while a live feed in
//! progress is not; past the connection cap (64) a connection is answered 503 and the refusal is
//! logged; `Host: [::1]` (with or without a port) is accepted and a foreign host is not.

use crate::support::node;

use node::{BIN, Node};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COOKIE: &str = "admin-http-cookie";
/// The cap of `erlmcp::admin::limits::ADMIN_HTTP_MAX_CONNECTIONS`.
const CAP: usize = 64;

/// Runs `erlmcp ARGS` to its end (killed, and the test failed, if it runs past 15 s); its exit
/// code and stderr.
fn run_to_exit(args: &[&str], home: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("RUST_LOG")
        .env_remove("ERLMCP_ADMIN_HTTP")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn erlmcp");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("erlmcp {args:?} kept running: an address off loopback was not refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn an_admin_address_off_loopback_is_refused_at_start_with_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(
        &[
            "start",
            "--tcp",
            "127.0.0.1:0",
            "--name",
            "off-loopback-http",
            "--admin-http",
            "0.0.0.0:0",
        ],
        home.path(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("admin.http") && stderr.contains("loopback"),
        "{stderr}"
    );

    let config = home.path().join("admin-tcp.toml");
    std::fs::write(&config, "[admin]\ntcp = \"0.0.0.0:0\"\n").unwrap();
    let (code, stderr) = run_to_exit(
        &[
            "start",
            "--tcp",
            "127.0.0.1:0",
            "--name",
            "off-loopback-tcp",
            "--config",
            config.to_str().unwrap(),
        ],
        home.path(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("admin.tcp") && stderr.contains("loopback"),
        "{stderr}"
    );
}

/// Sends `head` (a request head, or any bytes) on a new connection.
fn open(addr: SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

fn get(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {COOKIE}\r\nconnection: close\r\n\r\n"
    )
}

/// Reads until the server closes (or `wait` passes); what arrived, and whether it closed.
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = Instant::now() + wait;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&raw).into_owned(), false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&raw).into_owned(), true),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => {
                return (String::from_utf8_lossy(&raw).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&raw).into_owned(), false),
        }
    }
}

/// The status of a whole response.
fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[test]
fn admin_http_closes_silent_connections_refuses_past_its_cap_and_takes_host_ipv6_loopback() {
    let home = tempfile::tempdir().unwrap();
    let dir: &OsStr = home.path().as_os_str();
    let name = format!("admin-http-bounds-{}", std::process::id());
    let config = home.path().join("node.toml");
    // A short header timeout; samples once a second (64 live feeds stay cheap).
    std::fs::write(&config, "[http]\nheader_read_timeout = 300\n").unwrap();
    let mut node = Node::with_env(
        &[
            "--tcp",
            "127.0.0.1:0",
            "--name",
            &name,
            "--admin-http",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("XDG_RUNTIME_DIR", dir),
            ("HOME", dir),
            ("ERLMCP_COOKIE", OsStr::new(COOKIE)),
        ],
    );
    let addr = node.wait_addr("admin http listening on ");
    let port = addr.port();

    // Host: [::1] with and without a port, like localhost; a foreign host is refused.
    for host in ["[::1]", &format!("[::1]:{port}"), "localhost"] {
        let mut stream = open(addr, &get("/metrics", host));
        let (response, _) = read_until_closed(&mut stream, node::WAIT);
        assert_eq!(status(&response), 200, "Host: {host}\n{response}");
    }
    let mut stream = open(addr, &get("/metrics", "evil.example"));
    let (response, _) = read_until_closed(&mut stream, node::WAIT);
    assert_eq!(status(&response), 403, "{response}");

    // A connection that sends nothing, or half a head, is closed after the header timeout.
    let started = Instant::now();
    let mut silent = open(addr, "");
    let mut half = open(addr, "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for stream in [&mut silent, &mut half] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(5));
        assert!(closed, "a connection without a whole head is kept open");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );

    // Live feeds in progress are not cut by the header timeout, and they hold the cap's slots
    // (once the connections above have given theirs back: a slot is freed just after its socket
    // is closed).
    std::thread::sleep(Duration::from_millis(200));
    let mut feeds: Vec<TcpStream> = (0..CAP)
        .map(|_| open(addr, &get("/api/events", "127.0.0.1")))
        .collect();
    for (i, feed) in feeds.iter_mut().enumerate() {
        feed.set_read_timeout(Some(node::WAIT)).unwrap();
        let mut head = [0u8; 12];
        feed.read_exact(&mut head).expect("a live feed answers");
        assert_eq!(&head, b"HTTP/1.1 200", "feed {i}");
    }
    std::thread::sleep(Duration::from_millis(900));
    let first = &mut feeds[0];
    first
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let cut = matches!(first.read(&mut byte), Ok(0));
    assert!(!cut, "a live feed was cut by the header timeout");

    // One more connection is answered 503 and closed, and the refusal is logged.
    let mut over = open(addr, &get("/metrics", "127.0.0.1"));
    let (response, closed) = read_until_closed(&mut over, node::WAIT);
    assert_eq!(status(&response), 503, "{response}");
    assert!(closed);
    node.wait_log("admin http connection refused");

    // Once the feeds are gone, the listener serves again.
    drop(feeds);
    let deadline = Instant::now() + node::WAIT;
    loop {
        let mut stream = open(addr, &get("/metrics", "127.0.0.1"));
        let (response, _) = read_until_closed(&mut stream, node::WAIT);
        if status(&response) == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the feeds closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(node.is_running());
}
