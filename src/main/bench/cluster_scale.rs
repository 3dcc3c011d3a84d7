//! Owns the scale profile across nodes (`bench run --profile scale --transport http --nodes N
//! --generators G`): past one process's descriptor limit (~19K connections here), idle
//! initialized Streamable HTTP sessions are opened on N clustered nodes the bench starts
//! (`cluster.rs`) by G generator processes — copies of this binary run as `erlmcp bench
//! scale-generator`, each from a loopback source address of its own (127.0.0.101, .102, …),
//! spreading its connections over the nodes round robin — and held, connections open, for
//! `--duration`; each node's memory per session, the total, the time until every generator had
//! opened its share, and what failed. A generator reports on its stdout (one JSON line) once its
//! connections are open, then holds them until its stdin closes; the bench closes it at the end
//! and kills a generator that does not exit.

use super::cluster::Cluster;
use super::node::rss_and_fds;
use super::results::Repeat;
use super::{Progress, ScalePlan, ScaleTransport};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long a generator may take to open its share (each connection has its own 10 s bound;
/// this bounds a generator that hangs).
const GENERATOR_WAIT: Duration = Duration::from_secs(900);
/// How long the nodes get after the last open before their memory is read (replicas sent,
/// buffers settled).
const SETTLE: Duration = Duration::from_secs(1);
/// How long a generator gets to exit once its stdin is closed.
const GENERATOR_STOP: Duration = Duration::from_secs(10);

/// The configuration the scale profile's nodes run with: no cap on sessions per source address
/// (a generator is one address), session caps above the run's, and idle connections kept
/// (`header_read_timeout` closes a connection with no request in progress: 10 s by default).
pub(crate) fn node_config(connections: usize) -> String {
    let cap = connections.max(10_000);
    format!(
        "[http]\nmax_sessions = {cap}\nmax_sessions_per_client = 0\nheader_read_timeout = 3600000\n\n[store]\nmax_sessions = {cap}\n"
    )
}

/// `erlmcp bench scale-generator`'s arguments (run by the scale profile, not by hand).
#[derive(Debug, clap::Args)]
pub(crate) struct GeneratorArgs {
    /// The nodes' HTTP addresses: connection i goes to the (i mod N)th.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<SocketAddr>,
    /// Connections opened, each with its initialized session.
    #[arg(long)]
    connections: usize,
    /// The loopback source address of every connection.
    #[arg(long)]
    source: Option<Ipv4Addr>,
    /// Opens a second; without it a burst.
    #[arg(long)]
    rate: Option<f64>,
}

/// What a generator reports once its connections are open.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct GeneratorReport {
    /// Connections open to each target, in the order given.
    per_target: Vec<usize>,
    failed: usize,
    open_seconds: f64,
    first_error: Option<String>,
}

/// Raises the soft open-file limit to the hard one (a generator holds a descriptor per
/// connection), as a node does at start.
fn raise_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let found = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (found.current, found.maximum)
        && soft < hard
    {
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            eprintln!("erlmcp bench scale-generator: cannot raise the open-file limit: {e}");
        }
    }
}

/// Runs `erlmcp bench scale-generator`: opens, reports, holds until stdin closes.
pub(crate) fn generator(args: GeneratorArgs) -> ExitCode {
    raise_open_files();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("erlmcp bench scale-generator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = ScalePlan {
        addr: args.targets[0],
        transport: ScaleTransport::Http,
        connections: args.connections,
        rate: args.rate,
        hold: Duration::ZERO,
    };
    let started = Instant::now();
    let opened = runtime.block_on(super::scale::open_all(
        plan,
        &args.targets,
        args.source,
        &Progress::default(),
    ));
    let report = GeneratorReport {
        per_target: opened.per_target,
        failed: opened.failed,
        open_seconds: started.elapsed().as_secs_f64(),
        first_error: opened.first_error,
    };
    let line = serde_json::to_string(&report).unwrap_or_default();
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // Held until the bench closes our stdin (or goes away).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(opened.held);
    ExitCode::SUCCESS
}

/// A generator process; killed (if still running) and waited for when dropped.
struct GeneratorChild {
    child: Child,
}

impl GeneratorChild {
    /// Closes its stdin (it then closes its connections and exits), waits a while, kills it.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + GENERATOR_STOP;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for GeneratorChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts generator `index` of `count`: its share of the connections and of the rate.
fn spawn_generator(
    plan: ScalePlan,
    targets: &[SocketAddr],
    index: usize,
    count: usize,
) -> std::io::Result<(GeneratorChild, std::sync::mpsc::Receiver<String>)> {
    let share = plan.connections / count + usize::from(index < plan.connections % count);
    let targets: Vec<String> = targets.iter().map(SocketAddr::to_string).collect();
    let source = Ipv4Addr::new(127, 0, 0, 101 + (index % 150) as u8);
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["bench", "scale-generator", "--targets", &targets.join(",")])
        .args(["--connections", &share.to_string()])
        .args(["--source", &source.to_string()]);
    if let Some(rate) = plan.rate {
        command.args(["--rate", &(rate / count as f64).to_string()]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut line = String::new();
        if BufReader::new(stdout).read_line(&mut line).is_ok() {
            let _ = tx.send(line);
        }
    });
    Ok((GeneratorChild { child }, rx))
}

/// Resident bytes and descriptors of each node (0 for a node that cannot be read).
fn nodes_memory(cluster: &Cluster) -> Vec<(u64, usize)> {
    cluster
        .nodes
        .iter()
        .map(|node| rss_and_fds(node.pid()).unwrap_or((0, 0)))
        .collect()
}

/// One repeat of the scale profile across the cluster's nodes with `generators` processes.
pub(crate) fn scale_repeat(
    cluster: &Cluster,
    plan: ScalePlan,
    generators: usize,
    label: &str,
) -> std::io::Result<Repeat> {
    let targets = cluster.addrs();
    let before = nodes_memory(cluster);
    let started = Instant::now();
    let mut children = Vec::with_capacity(generators);
    for index in 0..generators {
        children.push(spawn_generator(plan, &targets, index, generators)?);
    }
    let mut reports: Vec<Option<GeneratorReport>> = (0..generators).map(|_| None).collect();
    let mut last_said = Instant::now();
    while reports.iter().any(Option::is_none) {
        for (index, (child, said)) in children.iter_mut().enumerate() {
            if reports[index].is_some() {
                continue;
            }
            match said.try_recv() {
                Ok(line) => {
                    let report: GeneratorReport = serde_json::from_str(&line).map_err(|e| {
                        std::io::Error::other(format!("generator {index} said {line:?}: {e}"))
                    })?;
                    reports[index] = Some(report);
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let status = child.child.try_wait()?;
                    return Err(std::io::Error::other(format!(
                        "generator {index} ended without a report ({status:?})"
                    )));
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
        }
        if started.elapsed() > GENERATOR_WAIT {
            return Err(std::io::Error::other(format!(
                "the generators did not open their connections within {GENERATOR_WAIT:?}"
            )));
        }
        if last_said.elapsed() >= Duration::from_secs(5) {
            let done = reports.iter().filter(|r| r.is_some()).count();
            eprintln!(
                "erlmcp bench run: {label}: {:.0} s, {done} of {generators} generators opened their share",
                started.elapsed().as_secs_f64()
            );
            last_said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let opening = started.elapsed();
    let reports: Vec<GeneratorReport> = reports.into_iter().flatten().collect();
    std::thread::sleep(SETTLE);
    let after = nodes_memory(cluster);
    std::thread::sleep(plan.hold);
    let after_hold = nodes_memory(cluster);
    for (child, _) in &mut children {
        child.stop();
    }
    drop(children);
    let mut per_node = vec![0usize; targets.len()];
    for report in &reports {
        for (count, opened) in per_node.iter_mut().zip(&report.per_target) {
            *count += opened;
        }
    }
    let opened: usize = per_node.iter().sum();
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    if let Some(error) = reports.iter().find_map(|r| r.first_error.as_deref()) {
        eprintln!("erlmcp bench run: {failed} connections failed; a first: {error}");
    }
    let sum_rss = |memory: &[(u64, usize)]| memory.iter().map(|m| m.0).sum::<u64>() as f64;
    let sum_fds = |memory: &[(u64, usize)]| memory.iter().map(|m| m.1).sum::<usize>() as f64;
    let mut figures = BTreeMap::from([
        ("nodes".to_owned(), targets.len() as f64),
        ("generators".to_owned(), generators as f64),
        ("connections_opened".to_owned(), opened as f64),
        ("connections_failed".to_owned(), failed as f64),
        ("open_seconds".to_owned(), opening.as_secs_f64()),
        (
            "opens_per_sec".to_owned(),
            opened as f64 / opening.as_secs_f64().max(1e-9),
        ),
        (
            "generator_open_seconds_max".to_owned(),
            reports.iter().map(|r| r.open_seconds).fold(0.0, f64::max),
        ),
        ("node_rss_before_bytes".to_owned(), sum_rss(&before)),
        ("node_rss_after_bytes".to_owned(), sum_rss(&after)),
        ("node_rss_after_hold_bytes".to_owned(), sum_rss(&after_hold)),
        ("node_fds_before".to_owned(), sum_fds(&before)),
        ("node_fds_after".to_owned(), sum_fds(&after)),
    ]);
    if opened > 0 {
        figures.insert(
            "node_rss_per_connection_bytes".to_owned(),
            (sum_rss(&after) - sum_rss(&before)).max(0.0) / opened as f64,
        );
    }
    for (index, ((count, was), now)) in per_node.iter().zip(&before).zip(&after).enumerate() {
        figures.insert(format!("node{index}_connections"), *count as f64);
        figures.insert(format!("node{index}_rss_after_bytes"), now.0 as f64);
        if *count > 0 {
            figures.insert(
                format!("node{index}_rss_per_connection_bytes"),
                now.0.saturating_sub(was.0) as f64 / *count as f64,
            );
        }
    }
    Ok(Repeat {
        figures,
        timeline: Vec::new(),
        percentiles: Vec::new(),
        node: Vec::new(),
        faults: Vec::new(),
        stages: Vec::new(),
    })
}

/// The scale profile's summary across nodes (after the one-node line).
pub(crate) fn print_nodes(figures: &BTreeMap<String, f64>) {
    let f = |name: &str| figures.get(name).copied().unwrap_or(0.0);
    if f("nodes") < 1.0 {
        return;
    }
    let per_node: Vec<String> = (0..f("nodes") as usize)
        .map(|i| {
            format!(
                "{:.0} ({:.0} B each)",
                f(&format!("node{i}_connections")),
                f(&format!("node{i}_rss_per_connection_bytes"))
            )
        })
        .collect();
    println!(
        "scale: {} nodes, {} generators; sessions per node: {}; the nodes hold {:.1} MiB in all",
        f("nodes"),
        f("generators"),
        per_node.join(", "),
        f("node_rss_after_bytes") / 1_048_576.0
    );
}
