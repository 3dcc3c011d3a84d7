//! Black-box tests of the state store: a Streamable HTTP session made before `erlmcp start` stops
//! (gracefully, or killed with SIGKILL once its `initialize` was answered) is served as before by
//! the next `erlmcp start` on the same home, its GET stream resumes with `Last-Event-ID`; a
//! corrupt snapshot is refused by name and the node starts from the previous one; a session's
//! idle time goes on across a graceful stop (one that expired while the node was down is
//! forgotten), and starts again after a kill -9; under `[auth]` a restored session still belongs
//! to the subject that made it.

use crate::support::home::PrivateHome;
use crate::support::http::{self, Reply};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// One `erlmcp start --http 127.0.0.1:0` in a home the test keeps across starts.
struct Started {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    http: SocketAddr,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Started {
    fn start(home: &PrivateHome) -> Started {
        Self::start_with(home, &[])
    }

    fn start_with(home: &PrivateHome, args: &[&str]) -> Started {
        let mut cmd = home.command();
        cmd.args(["start", "--http", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn erlmcp");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Started {
            child,
            lines,
            seen: Vec::new(),
            http: "127.0.0.1:1".parse().unwrap(),
        };
        let needle = "http listening on ";
        let line = node.wait_log(needle);
        let at = line.find(needle).unwrap() + needle.len();
        node.http = line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        node
    }

    fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no `{needle}` in stderr:\n{}", self.seen.join("\n"));
    }

    /// A stderr line containing `needle`, already read or still to come.
    fn find_log(&mut self, needle: &str) -> String {
        match self.seen.iter().find(|l| l.contains(needle)) {
            Some(line) => line.clone(),
            None => self.wait_log(needle),
        }
    }

    /// SIGTERM, and the exit code once it stopped.
    fn stop(mut self) -> Option<i32> {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&self.child), Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("erlmcp did not stop after SIGTERM");
    }

    /// SIGKILL: nothing runs after it.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

fn tools_list(addr: SocketAddr, session: &str) -> Reply {
    http::post(
        addr,
        Some(session),
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
        &[],
    )
}

/// The session `session` is served as before: its requests are answered, its GET stream resumes
/// after `Last-Event-ID`; a session id never made is still refused.
fn assert_served(addr: SocketAddr, session: &str) {
    let listed = tools_list(addr, session);
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(
        listed.json()["result"]["tools"].is_array(),
        "{}",
        listed.text()
    );
    let resumed = http::request(
        addr,
        "GET",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", session),
            ("last-event-id", "0-0"),
        ],
        b"",
        Duration::from_millis(500),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    assert_eq!(
        resumed.header("content-type"),
        Some("text/event-stream"),
        "the GET stream resumes"
    );
    let unknown = tools_list(addr, "00000000000000000000000000000000");
    assert_eq!(unknown.status, 404, "an id never made is refused");
}

#[test]
fn a_session_is_served_after_a_graceful_restart() {
    let home = PrivateHome::new();
    let first = Started::start(&home);
    let session = http::initialize(first.http);
    assert_eq!(first.stop(), Some(0));
    let mut second = Started::start(&home);
    second.find_log("http sessions restored from the store");
    assert_served(second.http, &session);
    assert_eq!(second.stop(), Some(0));
}

#[test]
fn a_restored_session_still_belongs_to_the_subject_that_made_it() {
    let home = PrivateHome::new();
    let config = home.path().join("auth.toml");
    std::fs::write(&config, crate::tasks_belong_to_their_principal::CONFIG).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let (alice, bob) = (
        ("authorization", "Bearer alice-key-0123456789"),
        ("authorization", "Bearer bob-key-0123456789ab"),
    );
    let list = |addr, session: &str, key| {
        http::post(
            addr,
            Some(session),
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
            &[key],
        )
    };
    let first = Started::start_with(&home, &args);
    let made = http::post(first.http, None, &http::initialize_request(), &[alice]);
    assert_eq!(made.status, 200, "{}", made.text());
    let session = made.header("mcp-session-id").unwrap().to_owned();
    assert_eq!(list(first.http, &session, bob).status, 404);
    assert_eq!(first.stop(), Some(0));
    let mut second = Started::start_with(&home, &args);
    second.find_log("http sessions restored from the store");
    let listed = list(second.http, &session, alice);
    assert_eq!(listed.status, 200, "{}", listed.text());
    let stolen = list(second.http, &session, bob);
    assert_eq!(stolen.status, 404, "another subject: {}", stolen.text());
    assert_eq!(second.stop(), Some(0));
}

#[test]
fn a_session_is_served_after_a_kill_9_once_initialize_was_answered() {
    let home = PrivateHome::new();
    let first = Started::start(&home);
    let session = http::initialize(first.http);
    // No graceful stop, no snapshot: the change log alone holds the session.
    first.kill();
    let mut second = Started::start(&home);
    second.find_log("http sessions restored from the store");
    assert_served(second.http, &session);
    // And again, from the snapshot the restore wrote and the log after it.
    second.kill();
    let third = Started::start(&home);
    assert_served(third.http, &session);
}

#[test]
fn idle_time_goes_on_across_a_graceful_stop_and_starts_again_after_a_kill_9() {
    let home = PrivateHome::new();
    let config = home.path().join("short-timeout.toml");
    std::fs::write(&config, "[http]\nsession_timeout = 3000\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let args = ["--config", config.as_str()];

    // Stopped gracefully, then down for longer than the timeout: forgotten at the start.
    let first = Started::start_with(&home, &args);
    let gone = http::initialize(first.http);
    assert_eq!(first.stop(), Some(0));
    std::thread::sleep(Duration::from_millis(3300));
    let mut second = Started::start_with(&home, &args);
    second.find_log("kept http sessions expired while the node was down");
    assert_eq!(tools_list(second.http, &gone).status, 404, "it expired");

    // Stopped gracefully after 2 s idle: the session lives about 1 s more, not 3 (the reaper
    // looks every 0.75 s).
    let kept = http::initialize(second.http);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(second.stop(), Some(0));
    let third = Started::start_with(&home, &args);
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_millis(2400).saturating_sub(restarted.elapsed()));
    assert_eq!(
        tools_list(third.http, &kept).status,
        404,
        "2.4 s after the restart it is gone: its idle time went on"
    );

    // The times of a graceful stop are used once: a kill -9 later finds none, and a session's
    // timeout starts again at the restart.
    let fresh = http::initialize(third.http);
    assert_eq!(third.stop(), Some(0));
    let fourth = Started::start_with(&home, &args);
    for _ in 0..3 {
        assert_eq!(tools_list(fourth.http, &fresh).status, 200);
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(tools_list(fourth.http, &fresh).status, 200);
    fourth.kill();
    let fifth = Started::start_with(&home, &args);
    assert_eq!(
        tools_list(fifth.http, &fresh).status,
        200,
        "over 3 s after the graceful stop's time, but seen just before the kill"
    );
    assert_eq!(fifth.stop(), Some(0));
}

/// The snapshots in the node's store directory, oldest first.
fn snapshots(home: &Path) -> Vec<PathBuf> {
    let dir = home.join("data").join("erlmcp").join("erlmcp");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".bin"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_corrupt_snapshot_is_refused_by_name_and_the_previous_one_used() {
    let home = PrivateHome::new();
    let first = Started::start(&home);
    let older = http::initialize(first.http);
    assert_eq!(first.stop(), Some(0));
    let second = Started::start(&home);
    let newer = http::initialize(second.http);
    assert_eq!(second.stop(), Some(0));
    let written = snapshots(home.path());
    assert_eq!(written.len(), 2, "the two newest snapshots are kept");
    let newest = written.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(newest, bytes).unwrap();
    let mut third = Started::start(&home);
    let refusal = third.find_log("store snapshot refused");
    assert!(
        refusal.contains(&newest.display().to_string()),
        "the log line names the file: {refusal}"
    );
    assert!(refusal.contains("checksum"), "and says why: {refusal}");
    // The previous snapshot and the change log after it hold both sessions.
    assert_served(third.http, &older);
    assert_served(third.http, &newer);
    assert_eq!(third.stop(), Some(0));
}
