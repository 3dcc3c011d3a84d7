//! Owns the stdio side of the load generator (`bench run --profile stdio`): each connection is a
//! node of its own — this binary started as a child, `erlmcp start --stdio`, as an MCP client
//! starts a stdio server — whose stdin and stdout carry the same newline-delimited JSON-RPC as
//! TCP, driven by the same closed- and open-loop drivers. The children share one private home
//! under the run's output directory (each under its own node name; their logs there), removed
//! at the end. A child is stopped as its client would stop it: its stdin is closed (the node
//! stops when its client goes), and it is killed if it has not exited after a grace.

use super::node::node_command;
use super::{LoadPlan, LoadRun, Progress, Shared, drive_lines, run_over};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;

/// How long a child gets to exit once its stdin is closed before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A stdio node started for one connection, its pipes on the generator thread's runtime.
struct StdioNode {
    child: std::process::Child,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    /// Its log (stderr).
    log: PathBuf,
}

/// Runs the load over `plan.connections` stdio nodes started in `home` (created; removed at the
/// end) and reports.
pub(crate) fn run_stdio_load(
    plan: LoadPlan,
    progress: Arc<Progress>,
    home: &Path,
) -> std::io::Result<LoadRun> {
    std::fs::create_dir_all(home)?;
    let home = home.canonicalize()?;
    let run = run_over(
        plan,
        progress,
        &|_, index| Box::pin(start_node(home.clone(), index)),
        |node, plan, index, recorder| Box::pin(drive_node(node, plan, index, recorder)),
    );
    // Every child was waited for (or killed when its connection failed): the home is no
    // one's now.
    let _ = std::fs::remove_dir_all(&home);
    run
}

/// Starts the node for connection `index`; its log goes to `home/node-INDEX.log`.
async fn start_node(home: PathBuf, index: usize) -> std::io::Result<StdioNode> {
    let name = format!("erlmcp-bench-{}-stdio-{index}", std::process::id());
    let log_path = home.join(format!("node-{index}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut child = node_command(&home, &name)?
        .args(["--stdio", "--log-level", "warn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;
    let pipes = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => pipe::Sender::from_owned_fd(stdin.into())
            .and_then(|stdin| Ok((stdin, pipe::Receiver::from_owned_fd(stdout.into())?))),
        _ => Err(std::io::Error::other(
            "a stdio node was started without its pipes",
        )),
    };
    match pipes {
        Ok((stdin, stdout)) => Ok(StdioNode {
            child,
            stdin,
            stdout,
            log: log_path,
        }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Drives one node's pipes, then stops it: stdin closed, exit awaited for [`STOP_GRACE`], a kill
/// after (when the node is dropped).
async fn drive_node(
    node: StdioNode,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()> {
    let log = node.log.clone();
    let StdioNode {
        mut child,
        stdin,
        stdout,
        log: _,
    } = node;
    // `drive_lines` consumes the stdin and drops it at the end: the node sees its client gone.
    let driven = drive_lines(stdout, stdin, plan, index, recorder).await;
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while matches!(child.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Ok(None) = child.try_wait() {
        tracing::warn!(
            index,
            "a stdio node did not exit once its stdin was closed: killed"
        );
        let _ = child.kill();
    }
    child.wait()?;
    // A node that went away mid-run says why in its log: the error carries its last lines.
    driven.map_err(|e| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(LOG_LINES_SHOWN).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        std::io::Error::new(
            e.kind(),
            format!(
                "{e} (stdio node {index}; the end of its log:\n{})",
                tail.join("\n")
            ),
        )
    })
}

/// Lines of a failed node's log shown in the error.
const LOG_LINES_SHOWN: usize = 20;
