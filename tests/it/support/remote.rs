//! Owns `erlmcp remote` (and `erlmcp plugin`) run against a test node through its admin socket —
//! the node's runtime directory, name and cookie — and reading the admin HTTP `/metrics`.
#![allow(dead_code, unreachable_pub)]

use super::node::{self, BIN, Node};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Output;

/// How to reach one node's admin channel.
pub struct Remote<'a> {
    /// The node's `XDG_RUNTIME_DIR` (and `HOME`), where its socket is.
    pub runtime_dir: &'a Path,
    /// Its `--name`.
    pub node: String,
    /// Its cookie.
    pub cookie: &'a str,
}

impl Remote<'_> {
    /// `erlmcp ARGS --node NODE` with `cookie`.
    pub fn run(&self, cookie: &str, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--node", &self.node])
            .env("XDG_RUNTIME_DIR", self.runtime_dir)
            .env("HOME", self.runtime_dir)
            .env("ERLMCP_COOKIE", cookie)
            .output()
            .expect("run erlmcp")
    }

    /// `erlmcp remote --eval COMMAND [--json]` with the node's cookie.
    pub fn eval(&self, command: &str, json: bool) -> Output {
        let mut args = vec!["remote", "--eval", command];
        if json {
            args.push("--json");
        }
        self.run(self.cookie, &args)
    }

    /// The `data` of `erlmcp remote --eval COMMAND --json`, which must succeed.
    pub fn eval_json(&self, command: &str) -> Value {
        let out = self.eval(command, true);
        assert!(out.status.success(), "{command}: {}", text(&out));
        let line = String::from_utf8_lossy(&out.stdout);
        let reply: Value = serde_json::from_str(line.lines().next().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {line}"));
        reply["data"].clone()
    }
}

/// A node on TCP with its admin socket (in `runtime_dir`, named `name`, with `cookie`) and its admin
/// HTTP listener, `env` set besides: the node, once its admin channel listens, and the admin HTTP
/// address.
pub fn start_with_admin(
    runtime_dir: &Path,
    name: &str,
    cookie: &str,
    env: &[(&str, &OsStr)],
) -> (Node, SocketAddr) {
    let dir = runtime_dir.as_os_str();
    let args = [
        "--tcp",
        "127.0.0.1:0",
        "--name",
        name,
        "--admin-http",
        "127.0.0.1:0",
    ];
    let own = [
        ("XDG_RUNTIME_DIR", dir),
        ("HOME", dir),
        ("ERLMCP_COOKIE", OsStr::new(cookie)),
    ];
    let mut node = Node::with_env(&args, &[&own[..], env].concat());
    node.wait_log("admin channel listening");
    let admin_http = node.wait_addr("admin http listening on ");
    (node, admin_http)
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `GET /metrics` on the admin HTTP listener at `addr`, with `auth` as the bearer cookie: the
/// status and the body.
pub fn get_metrics(addr: SocketAddr, auth: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    let auth = auth
        .map(|c| format!("authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
