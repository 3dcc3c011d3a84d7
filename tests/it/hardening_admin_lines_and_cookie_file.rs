//! Black-box tests of the admin channel's bounds and cookie handling (issue #16, the admin
//! side): `--cookie-file` works for `erlmcp start`, `erlmcp remote` and `erlmcp plugin`, and wins
//! over `ERLMCP_COOKIE`, which `remote` honours too; `--cookie` works but warns that the process
//! list shows it; an admin line over 1 MiB after authentication is answered with an error and its
//! connection closed while the node goes on serving the next client; an authenticated
//! connection silent past `idle_timeout` is closed, and the interactive shell connects again
//! after that (it used to panic at start: rustyline's history file is not built in); past 64
//! admin connections the next is refused with a message, and served again once some close.

use crate::support::node;

use node::{BIN, Node};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// `erlmcp ARGS --node NAME` with this runtime directory and environment.
fn erlmcp(home: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .args(["--node", name])
        .env("XDG_RUNTIME_DIR", home)
        .env("HOME", home)
        .env_remove("ERLMCP_COOKIE")
        .env_remove("RUST_LOG");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run erlmcp")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn private_file(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn start(home: &Path, name: &str, args: &[&str], env: &[(&str, &OsStr)]) -> Node {
    let mut all = vec!["--tcp", "127.0.0.1:0", "--name", name];
    all.extend_from_slice(args);
    let mut vars: Vec<(&str, &OsStr)> = vec![
        ("XDG_RUNTIME_DIR", home.as_os_str()),
        ("HOME", home.as_os_str()),
    ];
    vars.extend_from_slice(env);
    let mut node = Node::with_env(&all, &vars);
    node.wait_log("admin channel listening");
    node
}

#[test]
fn the_cookie_file_serves_start_remote_and_plugin_and_the_cookie_flag_warns() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("node.cookie");
    private_file(&file, "file-cookie\n");
    let file_arg = file.to_str().unwrap();
    let name = format!("cookie-file-{}", std::process::id());
    // --cookie-file wins over ERLMCP_COOKIE in the node's environment.
    let _node = start(
        home.path(),
        &name,
        &["--cookie-file", file_arg],
        &[("ERLMCP_COOKIE", OsStr::new("env-cookie"))],
    );

    let ok = erlmcp(
        home.path(),
        &name,
        &["remote", "--cookie-file", file_arg, "--eval", "tree"],
        &[],
    );
    assert!(ok.status.success(), "remote --cookie-file: {}", text(&ok));
    let listed = erlmcp(
        home.path(),
        &name,
        &["plugin", "list", "--cookie-file", file_arg],
        &[],
    );
    assert!(
        listed.status.success(),
        "plugin --cookie-file: {}",
        text(&listed)
    );
    let from_env = erlmcp(
        home.path(),
        &name,
        &["remote", "--eval", "tree"],
        &[("ERLMCP_COOKIE", "file-cookie")],
    );
    assert!(
        from_env.status.success(),
        "ERLMCP_COOKIE: {}",
        text(&from_env)
    );
    let env_cookie = erlmcp(
        home.path(),
        &name,
        &["remote", "--eval", "tree"],
        &[("ERLMCP_COOKIE", "env-cookie")],
    );
    assert_eq!(
        env_cookie.status.code(),
        Some(2),
        "the node took ERLMCP_COOKIE over --cookie-file: {}",
        text(&env_cookie)
    );
    // --cookie still works, with a warning.
    let flag = erlmcp(
        home.path(),
        &name,
        &["remote", "--cookie", "file-cookie", "--eval", "tree"],
        &[],
    );
    assert!(flag.status.success(), "remote --cookie: {}", text(&flag));
    assert!(
        String::from_utf8_lossy(&flag.stderr).contains("process list"),
        "no warning: {}",
        text(&flag)
    );
    // A cookie file others can read is refused.
    let exposed = home.path().join("exposed.cookie");
    std::fs::write(&exposed, "file-cookie\n").unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = erlmcp(
        home.path(),
        &name,
        &[
            "remote",
            "--cookie-file",
            exposed.to_str().unwrap(),
            "--eval",
            "tree",
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{}",
        text(&refused)
    );

    // `erlmcp start --cookie` logs the warning.
    let other = format!("cookie-flag-{}", std::process::id());
    let mut flagged = start(home.path(), &other, &["--cookie", "flag-cookie"], &[]);
    flagged.wait_log("--cookie puts the cookie in the process list");
    let ok = erlmcp(
        home.path(),
        &other,
        &["remote", "--eval", "tree"],
        &[("ERLMCP_COOKIE", "flag-cookie")],
    );
    assert!(ok.status.success(), "{}", text(&ok));
}

/// An admin connection, authenticated.
struct Admin {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
}

impl Admin {
    /// Over the node's Unix socket.
    fn unix(socket: &PathBuf, cookie: &str) -> Admin {
        let stream = UnixStream::connect(socket).expect("connect to the admin socket");
        stream.set_read_timeout(Some(node::WAIT)).unwrap();
        Self::authenticate(
            Box::new(stream.try_clone().unwrap()),
            Box::new(stream),
            cookie,
        )
    }

    /// Over `admin.tcp`.
    fn tcp(addr: SocketAddr, cookie: &str) -> Admin {
        let stream = TcpStream::connect(addr).expect("connect to admin.tcp");
        stream.set_read_timeout(Some(node::WAIT)).unwrap();
        Self::authenticate(
            Box::new(stream.try_clone().unwrap()),
            Box::new(stream),
            cookie,
        )
    }

    fn authenticate(
        read: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        cookie: &str,
    ) -> Admin {
        let mut admin = Admin {
            reader: BufReader::new(read),
            writer,
        };
        let hello = admin.line().expect("hello");
        let challenge = hello["challenge"].as_str().unwrap();
        let response = erlmcp::admin::cookie::answer(cookie, challenge);
        admin.send(json!({ "response": response }).to_string().as_bytes());
        assert_eq!(admin.line().expect("welcome")["ok"], true);
        admin
    }

    fn send(&mut self, line: &[u8]) {
        self.writer.write_all(line).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    /// The next line, or `None` once the node closed the connection.
    fn line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("a JSON line")),
        }
    }

    /// Whether the node closed the connection (reads what is left).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }
}

#[test]
fn an_over_long_admin_line_is_refused_and_the_node_serves_the_next_client() {
    let home = tempfile::tempdir().unwrap();
    let name = format!("admin-lines-{}", std::process::id());
    let config = home.path().join("node.toml");
    std::fs::write(
        &config,
        "idle_timeout = 1500\n[admin]\ntcp = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut node = start(
        home.path(),
        &name,
        &["--config", config.to_str().unwrap()],
        &[("ERLMCP_COOKIE", OsStr::new("lines-cookie"))],
    );
    let tcp_line = node.wait_log("admin channel listening on tcp");
    let tcp: SocketAddr = tcp_line
        .rsplit("addr=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {tcp_line}"));
    let socket = home.path().join("erlmcp").join(format!("{name}.sock"));

    // Over the socket and over admin.tcp (where closing with unread input would reset the
    // connection and could lose the answer).
    for mut admin in [
        Admin::unix(&socket, "lines-cookie"),
        Admin::tcp(tcp, "lines-cookie"),
    ] {
        admin.send(json!({"id": 1, "command": "tree"}).to_string().as_bytes());
        assert_eq!(admin.line().expect("a reply")["ok"], true);
        // 2 MiB without a newline: an error naming the limit, then the connection is closed
        // (the node may close before it has read everything: a failed write is fine).
        let long = vec![b'x'; 2 * 1024 * 1024];
        let _ = admin.writer.write_all(&long);
        let _ = admin.writer.write_all(b"\n");
        let reply = admin.line().expect("an error reply before the close");
        assert_eq!(reply["ok"], false, "{reply}");
        let error = reply["text"].as_str().unwrap_or_default();
        assert!(error.contains("longer than 1048576 bytes"), "{reply}");
        assert!(admin.closed());
    }
    node.wait_log("admin connection closed: admin line longer than");

    // The next client is served.
    let next = erlmcp(
        home.path(),
        &name,
        &["remote", "--eval", "tree"],
        &[("ERLMCP_COOKIE", "lines-cookie")],
    );
    assert!(next.status.success(), "{}", text(&next));

    // An authenticated connection left silent is closed after idle_timeout.
    let started = Instant::now();
    let mut idle = Admin::unix(&socket, "lines-cookie");
    assert!(idle.line().is_none(), "an idle admin connection stays open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // The interactive shell (stdin piped) connects again once the node closed its idle
    // connection, and the next command runs.
    let mut shell = std::process::Command::new(BIN)
        .args(["remote", "--node", &name])
        .env("XDG_RUNTIME_DIR", home.path())
        .env("HOME", home.path())
        .env("ERLMCP_COOKIE", "lines-cookie")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn erlmcp remote");
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(b"tree\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let _ = stdin.write_all(b"tree\ntree\n");
    drop(stdin);
    let deadline = Instant::now() + node::WAIT;
    while shell.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = shell.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = shell.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reconnected"),
        "{}",
        text(&out)
    );
    assert_eq!(
        stdout.matches("erlmcp_registry").count(),
        2,
        "the first and the third tree ran: {}",
        text(&out)
    );
    assert!(node.is_running());
}

#[test]
fn admin_connections_past_the_cap_are_refused_and_served_again_once_some_close() {
    let home = tempfile::tempdir().unwrap();
    let name = format!("admin-cap-{}", std::process::id());
    let mut node = start(
        home.path(),
        &name,
        &[],
        &[("ERLMCP_COOKIE", OsStr::new("cap-cookie"))],
    );
    let socket = home.path().join("erlmcp").join(format!("{name}.sock"));
    // 64 connections that have their hello and have not answered it yet.
    let held: Vec<BufReader<UnixStream>> = (0..64)
        .map(|_| {
            let stream = UnixStream::connect(&socket).expect("connect");
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let mut reader = BufReader::new(stream);
            let mut hello = String::new();
            reader.read_line(&mut hello).unwrap();
            assert!(hello.contains("challenge"), "{hello}");
            reader
        })
        .collect();
    let remote = || {
        erlmcp(
            home.path(),
            &name,
            &["remote", "--eval", "tree"],
            &[("ERLMCP_COOKIE", "cap-cookie")],
        )
    };
    let refused = remote();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("too many admin connections"),
        "{}",
        text(&refused)
    );
    node.wait_log("admin connection refused: 64 admin connections open");
    drop(held);
    let deadline = Instant::now() + node::WAIT;
    loop {
        let served = remote();
        if served.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            text(&served)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
