//! Owns the black-box test harness: an `erlmcp start` child process and a blocking line client
//! over TCP or the child's stdio. Every wait is bounded, so a broken server fails the test
//! instead of hanging it; a dropped child is stopped (SIGTERM, then SIGKILL after a grace), then
//! its private home (`super::home`) removed.
#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use super::home::BIN;
use super::home::{PrivateHome, isolate};
pub const WAIT: Duration = Duration::from_secs(20);

/// A running node.
pub struct Node {
    pub child: Child,
    pub stderr: mpsc::Receiver<String>,
    pub tcp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    /// The stderr lines [`Node::wait_log`] has read so far, in order.
    pub seen: Vec<String>,
    /// The config file given with `--config`: removed when the node drops (after the child has
    /// stopped), so a test run leaves no `erlmcp-test-*.toml` behind.
    config_file: Option<tempfile::TempPath>,
    /// The node's `HOME`, `XDG_RUNTIME_DIR` and `TMPDIR` (unless the test gave its own): removed
    /// when the node drops, after the child has stopped.
    home: PrivateHome,
    /// The arguments and environment it was started with, for [`Node::kill_and_restart`] (none
    /// for a stdio node or one under a file limit).
    relaunch: Option<Relaunch>,
}

/// What a node was started with: its arguments and extra environment variables.
type Relaunch = (Vec<String>, Vec<(String, std::ffi::OsString)>);

impl Node {
    /// `erlmcp start --tcp 127.0.0.1:0` with an optional config file body.
    pub fn tcp(config: Option<&str>) -> Node {
        Self::start(&["--tcp", "127.0.0.1:0"], config, false)
    }

    /// `erlmcp start --http 127.0.0.1:0` with an optional config file body.
    pub fn http(config: Option<&str>) -> Node {
        Self::start(&["--http", "127.0.0.1:0"], config, false)
    }

    /// `erlmcp start --http 127.0.0.1:0`, its plain POSTs served by the fast lane or, with
    /// `fast_lane` false, by hyper like every other request (`ERLMCP_HTTP_FAST_LANE`).
    pub fn http_lane(config: Option<&str>, fast_lane: bool) -> Node {
        let lane: &[(&str, &std::ffi::OsStr)] = if fast_lane {
            &[]
        } else {
            &[("ERLMCP_HTTP_FAST_LANE", std::ffi::OsStr::new("false"))]
        };
        Self::spawn(&["--http", "127.0.0.1:0"], config, false, lane)
    }

    /// `erlmcp start --stdio`.
    pub fn stdio() -> Node {
        Self::start(&["--stdio"], None, true)
    }

    /// `erlmcp start ARGS` with extra environment variables (no stdio).
    pub fn with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Node {
        Self::spawn(args, None, false, env)
    }

    /// `erlmcp start ARGS --config FILE` (a file holding `config`) with extra environment
    /// variables (no stdio).
    pub fn with_env_and_config(
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        config: &str,
    ) -> Node {
        Self::spawn(args, Some(config), false, env)
    }

    /// `erlmcp start --http 127.0.0.1:0` under an open-file limit of `open_files` (soft and
    /// hard, set by the shell that then becomes the node).
    pub fn http_with_open_files(open_files: u64, config: Option<&str>) -> Node {
        Self::spawn_in(
            &["--http", "127.0.0.1:0"],
            config,
            false,
            &[],
            Some(open_files),
        )
    }

    fn start(args: &[&str], config: Option<&str>, stdio: bool) -> Node {
        Self::spawn(args, config, stdio, &[])
    }

    fn spawn(
        args: &[&str],
        config: Option<&str>,
        stdio: bool,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Node {
        Self::spawn_in(args, config, stdio, env, None)
    }

    fn spawn_in(
        args: &[&str],
        config: Option<&str>,
        stdio: bool,
        env: &[(&str, &std::ffi::OsStr)],
        open_files: Option<u64>,
    ) -> Node {
        let home = PrivateHome::new();
        let mut cmd = match open_files {
            None => home.command(),
            Some(limit) => {
                // `exec`: the child killed on drop is the node itself, not a shell.
                let mut shell = Command::new("sh");
                isolate(&mut shell, home.path());
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                shell
            }
        };
        cmd.arg("start").args(args).env_remove("RUST_LOG");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let config_file = config.map(|body| {
            let mut file = tempfile::Builder::new()
                .prefix("erlmcp-test-")
                .suffix(".toml")
                .tempfile()
                .unwrap();
            file.write_all(body.as_bytes()).unwrap();
            let path = file.into_temp_path();
            cmd.arg("--config").arg(&path);
            path
        });
        cmd.stdin(if stdio { Stdio::piped() } else { Stdio::null() })
            .stdout(if stdio { Stdio::piped() } else { Stdio::null() });
        let (child, rx) = spawn_logged(&mut cmd);
        let relaunch = (!stdio && open_files.is_none()).then(|| {
            (
                args.iter().map(|a| (*a).to_owned()).collect(),
                env.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        });
        let mut node = Node {
            child,
            stderr: rx,
            tcp: None,
            http: None,
            seen: Vec::new(),
            config_file,
            home,
            relaunch,
        };
        node.wait_started(args);
        node
    }

    /// Kills the node (SIGKILL, as a crash would) and starts it again in the same home with the
    /// same arguments, environment and config file: what its store kept survives. Its listeners
    /// on port 0 get new ports (read again).
    pub fn kill_and_restart(&mut self) {
        let (args, env) = self
            .relaunch
            .clone()
            .expect("a node started without stdio or a file limit");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut cmd = self.home.command();
        cmd.arg("start").args(&args).env_remove("RUST_LOG");
        for (key, value) in &env {
            cmd.env(key, value);
        }
        if let Some(path) = &self.config_file {
            cmd.arg("--config").arg(path);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        (self.child, self.stderr) = spawn_logged(&mut cmd);
        self.seen.clear();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.wait_started(&args);
    }

    /// Waits until the node started with `args` listens (its address read) or says it started.
    fn wait_started(&mut self, args: &[&str]) {
        let node = self;
        if args.contains(&"--tcp") {
            node.tcp = Some(node.wait_addr("tcp listening on "));
        } else if args.contains(&"--http") {
            node.http = Some(node.wait_addr("http listening on "));
        } else {
            node.wait_log("erlmcp started");
        }
    }

    /// Waits for the log line `<needle><addr>` and returns the address.
    pub fn wait_addr(&mut self, needle: &str) -> SocketAddr {
        let line = self.wait_log(needle);
        addr_after(&line, needle)
    }

    /// The address in the log line `<needle><addr>`, already read or still to come.
    pub fn find_addr(&mut self, needle: &str) -> SocketAddr {
        let line = self.find_log(needle);
        addr_after(&line, needle)
    }

    /// Waits for a new stderr line (one not read before) containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no `{needle}` in stderr:\n{}", self.seen.join("\n"));
    }

    /// A stderr line containing `needle`, already read or still to come.
    pub fn find_log(&mut self, needle: &str) -> String {
        match self.seen.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.wait_log(needle),
        }
    }

    /// A new TCP client.
    pub fn connect(&self) -> Client<TcpStream, TcpStream> {
        let stream = TcpStream::connect(self.tcp.expect("tcp node")).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = stream.try_clone().unwrap();
        let mut client = Client::new(reader, stream.try_clone().unwrap());
        client.closer = Some(stream);
        client
    }

    /// The client over the child's stdin/stdout.
    pub fn stdio_client(&mut self) -> Client<ChildStdout, ChildStdin> {
        let stdout = self.child.stdout.take().unwrap();
        let stdin = self.child.stdin.take().unwrap();
        Client::new(stdout, stdin)
    }

    /// The file given with `--config`, if any (a test may rewrite it: `auth reload`).
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    /// The node's private home (its `HOME`, unless the test gave another).
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit; returns its code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("erlmcp did not exit");
    }
}

/// Spawns `cmd` with its stderr piped, read line by line into the returned channel.
fn spawn_logged(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn erlmcp");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// How long a dropped node gets to stop by itself after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Drop for Node {
    /// SIGTERM first: the node stops its tree and removes its plugin staging directory (SIGKILL
    /// would leave it behind in the runtime directory); killed if still running after
    /// [`STOP_GRACE`].
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        if let Ok(None) = self.child.try_wait() {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking newline-delimited JSON-RPC client. Messages that arrive while waiting for
/// something else are kept in `backlog`.
pub struct Client<R: Read, W: Write> {
    lines: mpsc::Receiver<Option<String>>,
    writer: W,
    pub backlog: Vec<Value>,
    /// Shut down when the client is dropped (the reader thread holds a clone of the socket).
    closer: Option<TcpStream>,
    _reader: std::marker::PhantomData<R>,
}

impl<R: Read, W: Write> Drop for Client<R, W> {
    fn drop(&mut self) {
        if let Some(stream) = &self.closer {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl<R: Read + Send + 'static, W: Write> Client<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        break;
                    }
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            lines,
            writer,
            backlog: Vec::new(),
            closer: None,
            _reader: std::marker::PhantomData,
        }
    }

    /// Sends raw bytes followed by a newline.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.write_all(b"\n").unwrap();
        self.writer.flush().unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        self.send_raw(message.to_string().as_bytes());
    }

    pub fn request(&mut self, id: Value, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message, or `None` if the connection closed; fails after `WAIT`.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(Some(line)) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {line}")),
            ),
            Ok(None) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no message within {timeout:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Whether the server closed the connection (within `WAIT`).
    pub fn closed(&mut self) -> bool {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(Some(line)) => self
                    .backlog
                    .push(serde_json::from_str(&line).unwrap_or(Value::Null)),
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Whether nothing arrives within `quiet`.
    pub fn silent_for(&mut self, quiet: Duration) -> bool {
        match self.lines.recv_timeout(quiet) {
            Ok(Some(line)) => {
                self.backlog
                    .push(serde_json::from_str(&line).unwrap_or(Value::Null));
                false
            }
            _ => true,
        }
    }

    /// Waits for the response to `id`, keeping everything else in the backlog.
    pub fn response(&mut self, id: &Value) -> Value {
        if let Some(pos) = self
            .backlog
            .iter()
            .position(|m| m.get("id") == Some(id) && m.get("method").is_none())
        {
            return self.backlog.remove(pos);
        }
        loop {
            let msg = self
                .next(WAIT)
                .expect("connection closed before the response");
            if msg.get("id") == Some(id) && msg.get("method").is_none() {
                return msg;
            }
            self.backlog.push(msg);
        }
    }

    /// Sends a request and waits for its response.
    pub fn call(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.request(json!(id), method, params);
        self.response(&json!(id))
    }

    /// `initialize` + `notifications/initialized`; returns the initialize result.
    pub fn initialize(&mut self, revision: &str, capabilities: Value) -> Value {
        let response = self.call(
            0,
            "initialize",
            json!({"protocolVersion": revision, "capabilities": capabilities,
                   "clientInfo": {"name": "erlmcp-tests", "version": "1"}}),
        );
        self.notify("notifications/initialized", json!({}));
        response["result"].clone()
    }

    /// Messages of the backlog with this method, removed from it.
    pub fn take_notifications(&mut self, method: &str) -> Vec<Value> {
        let (hits, rest) = std::mem::take(&mut self.backlog)
            .into_iter()
            .partition(|m| m.get("method").and_then(Value::as_str) == Some(method));
        self.backlog = rest;
        hits
    }
}

/// The error code of a response.
pub fn code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}

/// The text of a tool result that must be an error (`isError: true`).
pub fn tool_error_text(response: &Value) -> String {
    assert_eq!(
        response["result"]["isError"], true,
        "not a tool error: {response}"
    );
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The address that follows `needle` in a log line.
fn addr_after(line: &str, needle: &str) -> SocketAddr {
    let after = line.rsplit(needle).next().unwrap_or_default();
    let addr = after.split_whitespace().next().unwrap_or_default();
    addr.parse().expect("address in log")
}

/// A TCP client of the node at `addr` (an in-process tree's listener), initialized (2025-11-25).
pub fn connect_initialized(addr: SocketAddr) -> Client<TcpStream, TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut client = Client::new(stream.try_clone().unwrap(), stream);
    client.initialize("2025-11-25", json!({}));
    client
}
