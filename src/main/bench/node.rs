//! Owns the node `erlmcp bench run` starts when it is given no `--target`: this same binary as a
//! child (`erlmcp start --tcp|--http 127.0.0.1:0`) in a private home under the run's output
//! directory (its cookie, admin socket and data; removed at the end), its address read from its
//! log, and its stop (SIGTERM, SIGKILL after a grace); `bench vs`'s peer server, started and
//! stopped the same way. Also the sampler of a process's RSS and
//! CPU from /proc, for the report's charts.

use super::results::NodeSample;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the node gets to say where it listens.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long a stopping node gets after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Clock ticks per second of /proc/PID/stat's CPU times (Linux's USER_HZ, 100 everywhere it runs).
const CLOCK_TICKS: f64 = 100.0;

/// The transport the child serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listen {
    /// `--tcp`.
    Tcp,
    /// `--http`.
    Http,
}

/// A node started as a child; stopped when dropped.
pub(crate) struct ChildNode {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its node name (`erlmcp-bench-<the bench's pid>`).
    pub(crate) name: String,
    home: PathBuf,
    /// How it was started (for [`ChildNode::restart`]); `None` for a peer.
    spawned: Option<Spawned>,
}

/// What a node was started with, to start it again as it was.
struct Spawned {
    listen: Listen,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ChildNode {
    /// Starts this binary as a node listening on a loopback port the OS picks, its home in
    /// `home` (created; removed when the node is dropped).
    pub(crate) fn start(listen: Listen, home: &Path) -> std::io::Result<Self> {
        Self::start_with(listen, home, &[])
    }

    /// As [`ChildNode::start`], with variables added to the node's environment (`ERLMCP_*`
    /// included: those of the bench's own are not passed on).
    pub(crate) fn start_with(
        listen: Listen,
        home: &Path,
        env: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let name = format!("erlmcp-bench-{}", std::process::id());
        Self::start_named(listen, home, &name, &[], env)
    }

    /// As [`ChildNode::start_with`], named `name` (unique among the nodes of a cluster), with
    /// `args` added to `erlmcp start`'s (`--cluster-listen`, `--join`, `--config`).
    pub(crate) fn start_named(
        listen: Listen,
        home: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(home)?;
        let home = home.canonicalize()?;
        let spawned = Spawned {
            listen,
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let (child, addr) = spawn(&spawned, "127.0.0.1:0", &home, name)?;
        Ok(Self {
            child,
            addr,
            name: name.to_owned(),
            home,
            spawned: Some(spawned),
        })
    }

    /// Kills the node with SIGKILL, as a crash would, and reaps it; its home stays.
    pub(crate) fn crash(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Starts the node again after [`ChildNode::crash`], as a supervisor would: the same home
    /// (its store, its cookie), name, arguments and address.
    pub(crate) fn restart(&mut self) -> std::io::Result<()> {
        let spawned = self
            .spawned
            .as_ref()
            .ok_or_else(|| std::io::Error::other("only a node the bench started restarts"))?;
        let (child, addr) = spawn(spawned, &self.addr.to_string(), &self.home, &self.name)?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }

    /// Starts `program args` (`bench vs`'s peer: any server) in the private `home` as a node's
    /// (see [`node_command`]), its stderr appended to `log`, and waits until `addr` accepts
    /// connections.
    pub(crate) fn start_peer(
        program: &Path,
        args: &[String],
        addr: SocketAddr,
        home: &Path,
        log: &Path,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(home)?;
        let home = home.canonicalize()?;
        let mut command = Command::new(program);
        in_private_home(&mut command, &home);
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        let name = program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut peer = Self {
            child,
            addr,
            name,
            home,
            spawned: None,
        };
        let deadline = Instant::now() + START_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = peer.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "the peer exited at start: {status} (its log: {})",
                    log.display()
                )));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(peer);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "nothing listens on {addr} (the peer's log: {})",
                log.display()
            ),
        ))
    }

    /// Its home (HOME, XDG_RUNTIME_DIR: its admin socket is in `erlmcp/` there).
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// The node's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts this binary as node `name` in `home`, listening on `bind`; waits until it says where.
fn spawn(
    spawned: &Spawned,
    bind: &str,
    home: &Path,
    name: &str,
) -> std::io::Result<(Child, SocketAddr)> {
    let (flag, needle) = match spawned.listen {
        Listen::Tcp => ("--tcp", "tcp listening on "),
        Listen::Http => ("--http", "http listening on "),
    };
    let mut command = node_command(home, name)?;
    command.envs(spawned.env.iter().map(|(k, v)| (k, v)));
    let mut child = command
        .args([flag, bind, "--log-level", "info"])
        .args(&spawned.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        // Read to the end: a node whose stderr pipe is not drained would block on logging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "the node exited at start: {status}"
                )));
            }
            continue;
        };
        if let Some(addr) = line
            .split_once(needle)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
        {
            return Ok((child, addr));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the node did not say where it listens",
    ))
}

/// `erlmcp start --log-format text --name NAME` of this same binary, in the private `home`
/// (HOME, XDG_RUNTIME_DIR, XDG_DATA_HOME, TMPDIR there), with none of the bench's own `ERLMCP_*`
/// variables nor `RUST_LOG`: the transport flags are the caller's to add.
pub(crate) fn node_command(home: &Path, name: &str) -> std::io::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    in_private_home(&mut command, home);
    command.args(["start", "--log-format", "text", "--name", name]);
    Ok(command)
}

/// HOME, XDG_RUNTIME_DIR, XDG_DATA_HOME and TMPDIR in `home`; none of the bench's own
/// `ERLMCP_*` variables nor `RUST_LOG`.
fn in_private_home(command: &mut Command, home: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|key| key.starts_with("ERLMCP_")) {
            command.env_remove(key);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TMPDIR", home);
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        if let Ok(None) = self.child.try_wait() {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// CPU ticks (user + system) and resident bytes of process `pid`, from /proc.
fn cpu_and_rss(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields counted from after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss_kb * 1024))
}

/// Resident bytes and open descriptors of process `pid`, from /proc.
pub(crate) fn rss_and_fds(pid: u32) -> Option<(u64, usize)> {
    let (_, rss) = cpu_and_rss(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// CPU seconds used so far by process `pid` (0 if unknown).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    cpu_and_rss(pid).map_or(0.0, |(ticks, _)| ticks as f64 / CLOCK_TICKS)
}

/// Samples a process's RSS and CPU every `every` on a thread of its own until stopped.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<NodeSample>>>,
}

impl Sampler {
    /// Starts sampling `pid`.
    pub(crate) fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut last = (started, cpu_and_rss(pid).map_or(0, |(ticks, _)| ticks));
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let Some((ticks, rss_bytes)) = cpu_and_rss(pid) else {
                    break;
                };
                let now = Instant::now();
                let wall = (now - last.0).as_secs_f64().max(1e-3);
                samples.push(NodeSample {
                    t_s: (now - started).as_secs_f64(),
                    rss_bytes,
                    cpu_percent: (ticks.saturating_sub(last.1)) as f64 / CLOCK_TICKS / wall * 100.0,
                });
                last = (now, ticks);
            }
            samples
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the samples taken.
    pub(crate) fn finish(mut self) -> Vec<NodeSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}
