//! Owns `erlmcp bench run`: a profile (`core`, `tcp`, `http`, `ws`, `stdio`, …) run `--repeat` times against a
//! `--target` or a node it starts itself (a child, stopped at the end), closed or open loop, with
//! a progress bar on a terminal (plain lines otherwise); writes `results.json` and `report.html`
//! into `--out`.

#[path = "run/stress.rs"]
mod stress;

use super::chaos;
use super::node::{ChildNode, Listen, Sampler, cpu_seconds};
use super::recorder::show_progress;
use super::results::{Machine, Repeat, Results, SCHEMA, commit};
use super::{HttpMode, LoadPlan, LoadRun, Progress};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `bench run` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// The core operations in process, each beside its plain baseline (as `bench core`).
    Core,
    /// `tools/call echo` over newline-delimited JSON-RPC on TCP.
    Tcp,
    /// `tools/call echo` over Streamable HTTP (`--http-mode`: session, stateless, sse).
    Http,
    /// Open-loop load (`--transport tcp|http|ws`) on a node the bench starts, or on a cluster
    /// of `--nodes` (HTTP), while `--faults` are injected one after another through its admin
    /// channel (or, `node`, by killing a node); recovery, failed requests, lost writes per fault.
    Chaos,
    /// Steady open-loop TCP load (`--rate`, default 1,000/s) for a long `--duration`: the node's
    /// memory must stay flat; its slope is `node_rss_slope_bytes_per_sec`.
    Sustained,
    /// Open-loop TCP stages of `--duration` each, the rate multiplied by `--ramp` from stage to
    /// stage (from `--rate`, default 1,000/s), until one breaks the SLO (`--slo-p99-us`, no
    /// error, 95% of the rate answered); the knee is the last rate that held it.
    Stress,
    /// `tools/call echo` as text messages on WebSocket sessions (`/ws`).
    Ws,
    /// `tools/call echo` over stdio: each connection a node the bench starts as a child
    /// (`erlmcp start --stdio`), as an MCP client starts a stdio server.
    Stdio,
    /// Whole MCP flows over TCP, each on a new connection: initialize, tools/list, a call with
    /// progress, a sampling round trip, a subscription, a cancelled call; each step timed.
    Integration,
    /// `--connections` idle connections with their sessions opened (`--transport`), in a burst
    /// or at `--rate` opens a second, held for `--duration`: the node's memory per connection,
    /// the time to open them, what was refused; across `--nodes` with `--generators` processes.
    Scale,
    /// A session's `tools/call` through its owner and through another node of a cluster the
    /// bench starts (`--nodes`, default 2), in alternating phases: the cost of forwarding.
    Forward,
}

impl Profile {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Tcp => "tcp",
            Self::Http => "http",
            Self::Chaos => "chaos",
            Self::Sustained => "sustained",
            Self::Stress => "stress",
            Self::Ws => "ws",
            Self::Stdio => "stdio",
            Self::Integration => "integration",
            Self::Scale => "scale",
            Self::Forward => "forward",
        }
    }
}

/// `erlmcp bench run`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// What to measure.
    #[arg(long, value_enum)]
    pub(super) profile: Profile,
    /// The node to load: ADDR for tcp, URL (http://HOST:PORT/mcp) or ADDR for http. Without
    /// it, a node is started as a child on a loopback port and stopped at the end.
    #[arg(long, value_name = "ADDR|URL")]
    pub(super) target: Option<String>,
    /// Seconds measured per repeat (core: seconds per operation measured).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: requests per second over all connections, sent on a fixed schedule whatever
    /// the answers. Without it: closed loop (`--pipeline` outstanding per connection).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Closed loop: requests kept outstanding per connection.
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    /// Generator threads (default: half the cores, at least 1, at most 4; core: threads of the
    /// mix, default 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Runs repeated; the figures are their median, with the spread beside them.
    #[arg(long, default_value_t = 1)]
    pub(super) repeat: usize,
    /// Bytes of text echoed per call.
    #[arg(long, default_value_t = 16)]
    pub(super) payload: usize,
    /// The http profile: sessions with JSON answers, stateless 2026-07-28 requests, or
    /// sessions whose answers stream over SSE.
    #[arg(long, value_enum, default_value = "session")]
    http_mode: HttpMode,
    /// The demo tool called: `echo`, or `echo-cached` (the same answer, from the node's cache).
    /// Lines, WebSocket and `--http-mode session`.
    #[arg(long, value_enum, default_value = "echo")]
    pub(super) tool: super::BenchTool,
    /// The scale and chaos profiles: the transport of their connections.
    #[arg(long, value_enum, default_value = "tcp")]
    pub(super) transport: super::ScaleTransport,
    /// The chaos profile: the faults, in order, spread over the measured window: actors or
    /// supervisors to kill, `connections`, `plugin=PATH`, `latency=MS`, `cpu=MS`, `memory=MIB`
    /// (default: the registry, admission, the tool pool's owner, the cache's L1, metrics).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// The stress profile: the p99 a stage must stay within, microseconds.
    #[arg(long, default_value_t = 10_000.0)]
    slo_p99_us: f64,
    /// The stress profile: the factor from one stage's rate to the next.
    #[arg(long, default_value_t = 1.5)]
    ramp: f64,
    /// The stress profile: the most stages of the ramp (1.5 ^ 16 ≈ 650 times the first rate).
    #[arg(long, default_value_t = 16)]
    max_stages: usize,
    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,
    /// Where results.json and report.html go (created).
    #[arg(long)]
    pub(super) out: PathBuf,
}

/// Runs `bench run`: 0 when the run was measured and written, 1 when it failed, 2 on bad usage.
pub(crate) fn run(args: RunArgs) -> ExitCode {
    if let Err(why) = check(&args) {
        eprintln!("erlmcp bench run: {why}");
        return ExitCode::from(2);
    }
    match measure(&args) {
        Ok(results) => {
            print_summary(&results, &args.out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("erlmcp bench run: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn check(args: &RunArgs) -> Result<(), String> {
    let seconds = |s: f64| s.is_finite() && s >= 0.0;
    if !(seconds(args.duration) && args.duration > 0.0 && seconds(args.warmup)) {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    if args.connections == 0
        || args.pipeline == 0
        || args.repeat == 0
        || args.threads == Some(0)
        || args.max_stages == 0
    {
        return Err(
            "--connections, --pipeline, --repeat, --threads and --max-stages must be positive"
                .into(),
        );
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err("--rate must be a positive number of requests per second".into());
        }
        if args.profile == Profile::Core {
            return Err(
                "the core profile has no --rate: it measures operations back to back".into(),
            );
        }
    }
    if args.profile == Profile::Core && args.target.is_some() {
        return Err("the core profile runs in process: it takes no --target".into());
    }
    if args.profile == Profile::Stdio && args.target.is_some() {
        return Err(
            "the stdio profile starts a node per connection over its pipes: it takes no --target"
                .into(),
        );
    }
    if args.profile == Profile::Chaos && args.target.is_some() {
        return Err(
            "the chaos profile kills actors of a node it starts: it takes no --target".into(),
        );
    }
    if !(args.slo_p99_us.is_finite()
        && args.slo_p99_us > 0.0
        && args.ramp.is_finite()
        && args.ramp > 1.0)
    {
        return Err("--slo-p99-us must be positive and --ramp above 1".into());
    }
    if args.profile != Profile::Chaos && !args.faults.is_empty() {
        return Err("--faults is for the chaos profile".into());
    }
    if args.profile == Profile::Chaos {
        chaos::check(&args.faults, args.transport, args.cluster.nodes)?;
    }
    args.cluster
        .check(cluster_use(args), args.target.is_some(), args.http_mode)
}

/// Whether the run starts a cluster of its own (the forward profile; scale across nodes).
pub(super) fn clustered(args: &RunArgs) -> bool {
    args.cluster.nodes_for(cluster_use(args)).is_some()
}

fn cluster_use(args: &RunArgs) -> super::cluster::Use {
    match args.profile {
        Profile::Forward => super::cluster::Use::Forward,
        Profile::Scale => super::cluster::Use::Scale(args.transport),
        Profile::Chaos => super::cluster::Use::Chaos(args.transport),
        _ => super::cluster::Use::Other,
    }
}

fn measure(args: &RunArgs) -> std::io::Result<Results> {
    measure_on(args, &args.out, None)
}

/// A server the bench did not start as a node (`bench vs`'s peer): where it listens, and its
/// process, sampled as a node is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Served {
    pub(super) addr: SocketAddr,
    pub(super) pid: u32,
    /// What results.json's `config.node` says it is.
    pub(super) kind: &'static str,
}

/// Measures `args`' profile into `out`: against `served` when given (instead of `--target` or a
/// node started for the run).
pub(super) fn measure_on(
    args: &RunArgs,
    out: &Path,
    served: Option<Served>,
) -> std::io::Result<Results> {
    std::fs::create_dir_all(out)?;
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = Machine::this();
    let threads = args.threads.unwrap_or(match args.profile {
        Profile::Core => 2,
        _ => (machine.cores / 2).clamp(1, 4),
    });
    let step = step_for(args.duration);
    let mut node = None;
    let mut chaos = None;
    let cluster = super::cluster::Cluster::start_for(
        &args.cluster,
        cluster_use(args),
        args.connections,
        out,
    )?;
    let addr = match (args.profile, &args.target, served) {
        _ if cluster.is_some() => cluster.as_ref().map(|c| c.nodes[0].addr),
        (Profile::Core, ..) => None,
        // No address: each connection is a child's pipes (`bench/stdio.rs`).
        (Profile::Stdio, ..) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        (_, _, Some(served)) => Some(served.addr),
        (_, Some(target), None) => Some(parse_target(target)?),
        (Profile::Chaos, None, None) => {
            let faults = if args.faults.is_empty() {
                chaos::DEFAULT_FAULTS
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect()
            } else {
                args.faults.clone()
            };
            let started = chaos::Chaos::start(
                out,
                args.cluster.nodes,
                args.transport,
                faults,
                args.connections,
            )?;
            let addr = started.addr();
            chaos = Some(started);
            Some(addr)
        }
        (_, None, None) => {
            let started = ChildNode::start(listen_for(args), &out.join("node-home"))?;
            let addr = started.addr;
            node = Some(started);
            Some(addr)
        }
    };
    let mut repeats = Vec::with_capacity(args.repeat);
    for index in 0..args.repeat {
        let label = format!("{} {}/{}", args.profile.name(), index + 1, args.repeat);
        let repeat = match addr {
            None => core_repeat(args, threads, &label)?,
            Some(addr) => {
                let plan = LoadPlan {
                    addr,
                    connections: args.connections,
                    pipeline: args.pipeline,
                    warmup: Duration::from_secs_f64(args.warmup),
                    duration: Duration::from_secs_f64(args.duration),
                    payload: args.payload,
                    http_mode: args.http_mode,
                    tool: args.tool,
                    rate: offered_rate(args),
                    threads,
                    step,
                };
                let pid = node
                    .as_ref()
                    .map(ChildNode::pid)
                    .or(chaos.as_ref().map(chaos::Chaos::pid))
                    .or(served.map(|s| s.pid));
                if let Some(cluster) = &cluster {
                    cluster.repeat(
                        cluster_use(args),
                        args.cluster.generators,
                        plan,
                        index,
                        &label,
                    )?
                } else if args.profile == Profile::Scale {
                    scale_repeat(args, addr, pid, &label)?
                } else if args.profile == Profile::Stress {
                    stress::stress_repeat(args, plan, pid, &label)?
                } else {
                    let stdio_home = out.join("stdio-home");
                    let load = Load {
                        profile: args.profile,
                        chaos: chaos.as_ref(),
                        stdio_home: &stdio_home,
                    };
                    load_repeat(&load, plan, pid, &label)?
                }
            }
        };
        repeats.push(repeat);
    }
    drop(node);
    drop(cluster);
    let chaos_faults = chaos.as_ref().map(|chaos| chaos.faults.clone());
    drop(chaos);
    let (figures, spread) = Results::summarise(&repeats);
    let config = serde_json::json!({
        "target": served.map(|s| s.addr.to_string()).or_else(|| args.target.clone()),
        "node": match (args.profile, &args.target, served) {
            _ if args.cluster.nodes_for(cluster_use(args)).is_some() => "clustered children",
            (Profile::Core, ..) => "in-process",
            (Profile::Stdio, ..) => "a child per connection",
            (_, _, Some(served)) => served.kind,
            (_, Some(_), None) => "target",
            (_, None, None) => "child",
        },
        "loop": if offered_rate(args).is_some() { "open" } else { "closed" },
        "rate_per_sec": offered_rate(args),
        "faults": chaos_faults,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "pipeline": args.pipeline,
        "threads": threads,
        "repeat": args.repeat,
        "payload_bytes": args.payload,
        "slo_p99_us": (args.profile == Profile::Stress).then_some(args.slo_p99_us),
        "ramp": (args.profile == Profile::Stress).then_some(args.ramp),
        "max_stages": (args.profile == Profile::Stress).then_some(args.max_stages),
        "http_mode": matches!(args.profile, Profile::Http | Profile::Forward).then_some(args.http_mode),
        "nodes": args.cluster.nodes_for(cluster_use(args)).or(
            (args.profile == Profile::Chaos).then_some(args.cluster.nodes).flatten()
        ),
        "generators": (args.profile == Profile::Scale).then_some(args.cluster.generators),
        "transport": matches!(args.profile, Profile::Scale | Profile::Chaos).then_some(args.transport),
        "step_s": step.as_secs_f64(),
    });
    let results = Results {
        schema: SCHEMA,
        started_at,
        machine,
        commit: commit(),
        profile: args.profile.name().to_owned(),
        config,
        figures,
        spread,
        repeats,
    };
    results.write(out).map_err(std::io::Error::other)?;
    std::fs::write(out.join("report.html"), super::report::run_report(&results))?;
    Ok(results)
}

/// The transport a node started for the run serves.
pub(super) fn listen_for(args: &RunArgs) -> Listen {
    if matches!(args.profile, Profile::Http | Profile::Ws)
        || (args.profile == Profile::Scale && args.transport != super::ScaleTransport::Tcp)
    {
        Listen::Http
    } else {
        Listen::Tcp
    }
}

/// The chaos profile's rate when `--rate` is not given: steady, well below what a node serves.
const CHAOS_RATE: f64 = 200.0;

/// The sustained profile's rate when `--rate` is not given.
const SUSTAINED_RATE: f64 = 1_000.0;

/// The open loop's rate: `--rate`, or the chaos and sustained profiles' own; `None`: closed loop.
fn offered_rate(args: &RunArgs) -> Option<f64> {
    match args.profile {
        Profile::Chaos => Some(args.rate.unwrap_or(CHAOS_RATE)),
        Profile::Sustained => Some(args.rate.unwrap_or(SUSTAINED_RATE)),
        Profile::Stress => Some(args.rate.unwrap_or(stress::STRESS_START_RATE)),
        _ => args.rate,
    }
}

/// The least-squares slope of the node's RSS over the samples from `from_s` on (the measured
/// window), in bytes per second; `None` with fewer than two samples there.
fn rss_slope(samples: &[super::results::NodeSample], from_s: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= from_s)
        .map(|s| (s.t_s, s.rss_bytes as f64))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (mean_t, mean_r) = points
        .iter()
        .fold((0.0, 0.0), |(t, r), p| (t + p.0 / n, r + p.1 / n));
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (t, r) in &points {
        covariance += (t - mean_t) * (r - mean_r);
        variance += (t - mean_t) * (t - mean_t);
    }
    (variance > 0.0).then(|| covariance / variance)
}

/// The timeline's step: about 40 steps over the run, between 0.1 s and 1 s.
fn step_for(duration: f64) -> Duration {
    Duration::from_secs_f64((duration / 40.0).clamp(0.1, 1.0))
}

/// The address of `--target`: `HOST:PORT`, or a URL `http://HOST:PORT/...`.
fn parse_target(target: &str) -> std::io::Result<SocketAddr> {
    let authority = target
        .strip_prefix("http://")
        .unwrap_or(target)
        .split('/')
        .next()
        .unwrap_or_default();
    authority.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--target {target}: no address"),
        )
    })
}

/// What a load repeat drives besides its plan.
struct Load<'a> {
    profile: Profile,
    /// The chaos profile's admin channel and faults.
    chaos: Option<&'a chaos::Chaos>,
    /// The stdio profile's home for its nodes.
    stdio_home: &'a Path,
}

/// One repeat of a load profile: the load on its threads while this thread shows progress, the
/// node (when a child) sampled all along.
fn load_repeat(
    load: &Load<'_>,
    plan: LoadPlan,
    node: Option<u32>,
    label: &str,
) -> std::io::Result<Repeat> {
    let (profile, chaos) = (load.profile, load.chaos);
    let progress = Arc::new(Progress::default());
    let sampler = node.map(|pid| Sampler::start(pid, plan.step));
    let own_cpu = cpu_seconds(std::process::id());
    let began = Instant::now();
    let total = plan.warmup + plan.duration;
    let fault_times = chaos.map(|chaos| {
        chaos::schedule(
            Instant::now() + plan.warmup,
            plan.duration,
            chaos.faults.len(),
        )
    });
    let (outcome, injected) = std::thread::scope(|scope| {
        let injector = chaos
            .zip(fault_times.as_ref())
            .map(|(chaos, at)| scope.spawn(move || chaos::inject(chaos, at)));
        let load = {
            let progress = Arc::clone(&progress);
            let stdio_home = load.stdio_home;
            scope.spawn(move || match profile {
                Profile::Http => super::run_http_load(plan, progress),
                Profile::Ws => super::run_ws_load(plan, progress),
                Profile::Stdio => super::run_stdio_load(plan, progress, stdio_home),
                Profile::Integration => super::run_integration_load(plan, progress),
                _ => chaos::run_load(plan, progress, chaos),
            })
        };
        show_progress(label, total, &progress, || load.is_finished());
        let outcome: std::io::Result<LoadRun> = load
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the load generator panicked")));
        let injected = injector
            .map(|i| i.join().unwrap_or_default())
            .unwrap_or_default();
        (outcome, injected)
    });
    let wall = began.elapsed().as_secs_f64();
    let generator_cpu = (cpu_seconds(std::process::id()) - own_cpu) / wall * 100.0;
    let samples = sampler.map(Sampler::finish).unwrap_or_default();
    let run = outcome?;
    let report = &run.report;
    let mut figures = BTreeMap::from([
        ("calls_per_sec".to_owned(), report.calls_per_sec),
        ("calls".to_owned(), report.calls as f64),
        ("errors".to_owned(), report.errors as f64),
        ("p50_us".to_owned(), report.p50_us),
        ("p99_us".to_owned(), report.p99_us),
        ("p999_us".to_owned(), report.p999_us),
        ("max_us".to_owned(), report.max_us),
        ("send_lag_p99_us".to_owned(), report.send_lag_p99_us),
        ("generator_cpu_percent".to_owned(), generator_cpu),
    ]);
    let faults = chaos::outcome(chaos, &injected, &run, &mut figures);
    for step in &run.flow_steps {
        figures.insert(format!("{}_p50_us", step.name), step.p50_us);
        figures.insert(format!("{}_p99_us", step.name), step.p99_us);
        figures.insert(format!("{}_errors", step.name), step.errors as f64);
        figures.insert(format!("{}_count", step.name), step.count as f64);
    }
    if !samples.is_empty() {
        let rss_max = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        let cpu_mean = samples.iter().map(|s| s.cpu_percent).sum::<f64>() / samples.len() as f64;
        figures.insert("node_rss_max_bytes".into(), rss_max as f64);
        figures.insert("node_cpu_percent_mean".into(), cpu_mean);
        if let Some(slope) = rss_slope(&samples, plan.warmup.as_secs_f64()) {
            figures.insert("node_rss_slope_bytes_per_sec".into(), slope);
        }
    }
    Ok(Repeat {
        figures,
        timeline: run.timeline,
        percentiles: run.percentiles,
        node: samples,
        faults,
        stages: Vec::new(),
    })
}

/// One repeat of the scale profile: the connections opened and held while this thread shows
/// progress, the node (when a child) sampled all along.
fn scale_repeat(
    args: &RunArgs,
    addr: SocketAddr,
    node: Option<u32>,
    label: &str,
) -> std::io::Result<Repeat> {
    let plan = super::ScalePlan {
        addr,
        transport: args.transport,
        connections: args.connections,
        rate: args.rate,
        hold: Duration::from_secs_f64(args.duration),
    };
    let progress = Arc::new(Progress::default());
    let estimate = Duration::from_secs_f64(
        args.duration + args.rate.map_or(1.0, |rate| args.connections as f64 / rate),
    );
    let sampler = node.map(|pid| Sampler::start(pid, step_for(estimate.as_secs_f64())));
    let figures = std::thread::scope(|scope| {
        let measured = {
            let progress = Arc::clone(&progress);
            scope.spawn(move || super::run_scale(plan, node, progress))
        };
        show_progress(label, estimate, &progress, || measured.is_finished());
        measured
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the scale run panicked")))
    })?;
    Ok(Repeat {
        figures,
        timeline: Vec::new(),
        percentiles: Vec::new(),
        node: sampler.map(Sampler::finish).unwrap_or_default(),
        faults: Vec::new(),
        stages: Vec::new(),
    })
}

/// One repeat of the core profile: `erlmcp bench core`'s measurements as figures.
fn core_repeat(args: &RunArgs, threads: usize, label: &str) -> std::io::Result<Repeat> {
    let duration = Duration::from_secs_f64(args.duration);
    let progress = Progress::default();
    // Every pair's two sides one after the other, then four mixes.
    let estimate = duration.mul_f64(22.0);
    // In process: the process's own RSS and CPU are the measured operations' (and the sampler's).
    let sampler = Sampler::start(std::process::id(), step_for(estimate.as_secs_f64()));
    let report = std::thread::scope(|scope| {
        let measured = scope.spawn(|| {
            erlmcp::core_bench::run(duration, threads, erlmcp::core_bench::DEFAULT_SESSIONS)
        });
        show_progress(label, estimate, &progress, || measured.is_finished());
        measured
            .join()
            .map_err(|_| std::io::Error::other("the core measurement panicked"))
    })?;
    let mut figures = BTreeMap::new();
    for op in &report.ops {
        figures.insert(
            format!("{}_{}_ops_per_sec", op.name, op.side),
            op.ops_per_sec,
        );
        figures.insert(
            format!("{}_{}_p99_us", op.name, op.side),
            op.p99_ns / 1000.0,
        );
    }
    figures.insert("mix_ops_per_sec".into(), report.mix_ops_per_sec);
    figures.insert("mix_p99_us".into(), report.mix_p99_ns / 1000.0);
    figures.insert(
        "baseline_mix_ops_per_sec".into(),
        report.baseline_mix_ops_per_sec,
    );
    figures.insert("core_mix_ops_per_sec".into(), report.core_mix_ops_per_sec);
    figures.insert(
        "baseline_core_mix_ops_per_sec".into(),
        report.baseline_core_mix_ops_per_sec,
    );
    Ok(Repeat {
        figures,
        timeline: Vec::new(),
        percentiles: Vec::new(),
        node: sampler.finish(),
        faults: Vec::new(),
        stages: Vec::new(),
    })
}

pub(super) fn print_summary(results: &Results, out: &Path) {
    let f = |name: &str| results.figures.get(name).copied().unwrap_or(0.0);
    if results.profile == "core" {
        println!(
            "core: mix {:.0} ops/s (baselines {:.0}), core mix {:.0} ops/s (baselines {:.0})",
            f("mix_ops_per_sec"),
            f("baseline_mix_ops_per_sec"),
            f("core_mix_ops_per_sec"),
            f("baseline_core_mix_ops_per_sec")
        );
    } else if results.profile == "scale" {
        // The node's figures only when it was measured (a child, not a `--target`).
        let node = match results.figures.get("node_rss_per_connection_bytes") {
            Some(bytes) => format!(
                "; the node grew {bytes:.0} bytes per connection ({} descriptors)",
                f("node_fds_after")
            ),
            None => String::new(),
        };
        println!(
            "scale: {} connections open ({} failed) in {:.2} s, {:.0} opens/s{node}",
            f("connections_opened"),
            f("connections_failed"),
            f("open_seconds"),
            f("opens_per_sec"),
        );
        super::cluster_scale::print_nodes(&results.figures);
    } else if results.profile == "forward" {
        super::cluster::print_forward(&results.figures, results.repeats.len());
    } else if results.profile == "stress" {
        let knee = match results.figures.get("knee_p99_us") {
            Some(p99) => format!(
                "knee at {:.0} calls/s (p99 {p99:.1} µs there)",
                f("knee_calls_per_sec")
            ),
            None => "no stage held the SLO".to_owned(),
        };
        println!(
            "stress: {knee}; {} of {} stages held the SLO",
            f("stages_held"),
            f("stages")
        );
    } else {
        println!(
            "{}: {:.0} calls/s  p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs  {} errors  (median of {})",
            results.profile,
            f("calls_per_sec"),
            f("p50_us"),
            f("p99_us"),
            f("p999_us"),
            f("max_us"),
            f("errors"),
            results.repeats.len()
        );
        if let Some(lost) = results.figures.get("lost_writes") {
            println!(
                "chaos: {} writes acknowledged, {lost} of them lost; {} connections opened again",
                f("writes_acknowledged"),
                f("connections_reopened")
            );
        }
    }
    println!(
        "wrote {} and {}",
        out.join("results.json").display(),
        out.join("report.html").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::NodeSample;

    #[test]
    fn the_rss_slope_is_fitted_over_the_measured_window_only() {
        let sample = |t_s: f64, rss_bytes: u64| NodeSample {
            t_s,
            rss_bytes,
            cpu_percent: 0.0,
        };
        // Growth during warm-up is left out; 1,000 bytes a second after it.
        let samples = [
            sample(0.5, 1_000),
            sample(1.0, 50_000),
            sample(2.0, 51_000),
            sample(3.0, 52_000),
            sample(4.0, 53_000),
        ];
        let slope = rss_slope(&samples, 1.0).unwrap();
        assert!((slope - 1_000.0).abs() < 1e-6, "{slope}");
        assert_eq!(rss_slope(&samples[..1], 0.0), None);
    }
}
