//! The `erlmcp` binary: the command line (clap) over the library.
//!
//! Exit codes: 0 success; 1 the node failed while running (start) or the command failed (remote,
//! plugin); 2 bad usage or configuration, or the node could not be reached or refused the cookie.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use erlmcp::app::Application;
use erlmcp::config::{Config, ConfigError, LogFormat, LogLevel};
use std::path::PathBuf;
use std::process::ExitCode;

// The binary's own modules live under src/main/, apart from the library's.
#[path = "main/bench.rs"]
mod bench;
#[path = "main/shell.rs"]
mod shell;

#[derive(Parser)]
#[command(
    name = "erlmcp",
    version,
    about = "An MCP server runtime with OTP-style supervision"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node: launch the supervision tree and run until SIGINT/SIGTERM.
    Start(StartArgs),
    /// Print the effective configuration (embedded default, --config file, ERLMCP_* variables).
    Config(ConfigArgs),
    /// Load generators and baselines for measuring a node.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A shell on a running node: the tree, processes, metrics, restarts, plugins (`help` lists
    /// the commands). With --eval, run one command and exit (0 if it succeeded).
    Remote(RemoteArgs),
    /// Load, roll back and list handler plugins of a running node (through its admin channel).
    Plugin(PluginArgs),
}

/// How to find and authenticate to a running node.
#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// The node: its name (found by its socket) or HOST:PORT of its admin TCP listener.
    /// Default: node_name of the configuration.
    #[arg(long, value_name = "NAME|ADDR", global = true)]
    node: Option<String>,
    /// The cookie, in plain text: every local user can read it in the process list, so prefer
    /// --cookie-file or ERLMCP_COOKIE (a warning is printed when it is used). Default:
    /// ERLMCP_COOKIE, else the cookie file of the configuration.
    #[arg(long, global = true, conflicts_with = "cookie_file")]
    cookie: Option<String>,
    /// A file holding the cookie (mode 0600; overrides ERLMCP_COOKIE and admin.cookie_file).
    #[arg(long, value_name = "PATH", global = true)]
    cookie_file: Option<PathBuf>,
    /// A configuration file to take node_name, admin.socket_dir and admin.cookie_file from.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// With --node HOST:PORT: speak TLS to the admin TCP listener (a node with [tls] on),
    /// trusting the CA certificates of this PEM file.
    #[arg(long, value_name = "FILE", global = true)]
    tls_ca: Option<PathBuf>,
    /// With --tls-ca: the name the node's certificate must carry (default: the host of --node).
    #[arg(long, value_name = "NAME", global = true)]
    tls_name: Option<String>,
    /// With --tls-ca: a client certificate (PEM) for a node with tls.client_ca; needs --tls-key.
    #[arg(long, value_name = "FILE", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct RemoteArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Run this command line and exit.
    #[arg(long, value_name = "COMMAND")]
    eval: Option<String>,
    /// Print replies as JSON (one object per line).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct PluginArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Print the reply as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: PluginAction,
}

#[derive(Subcommand)]
pub(crate) enum PluginAction {
    /// Load PATH (a plugin .so) as the current version of its plugin, or as a canary.
    Load {
        /// The .so file.
        path: PathBuf,
        /// Send this share of calls (per mille, 1–1000) to the new version first.
        #[arg(long, value_name = "PERMILLE", conflicts_with = "cluster")]
        canary: Option<u64>,
        /// Load it on every member of the node's cluster in turn (the same PATH on each); if
        /// one refuses, the nodes already loaded are rolled back.
        #[arg(long)]
        cluster: bool,
    },
    /// Remove plugin NAME and its tools.
    Unload {
        /// The plugin.
        name: String,
    },
    /// Restore the previous version of plugin NAME.
    Rollback {
        /// The plugin.
        name: String,
    },
    /// Make the canary of plugin NAME its current version.
    Promote {
        /// The plugin.
        name: String,
    },
    /// List loaded plugins, their versions and rollback history.
    List {
        /// Every member of the node's cluster, not only this node.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The core operations in process (registry lookup, admission enter/leave, …), each beside
    /// a plain baseline in the same run, then their mix on several threads.
    Core {
        /// Seconds each measurement runs.
        #[arg(long, default_value_t = 2.0)]
        duration: f64,
        /// Threads of the mix.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Sessions in the session table whose lookups are measured (spread over all of them:
        /// past the CPU's caches, each lookup waits for memory).
        #[arg(long, default_value_t = erlmcp::core_bench::DEFAULT_SESSIONS)]
        sessions: usize,
        /// Print the report as JSON (the mix's throughput as `mix_ops_per_sec`).
        #[arg(long)]
        json: bool,
    },
    /// The state store: SESSIONS typical HTTP session records put through the change log
    /// (fsynced and not), a snapshot of them written, and the store opened again from it; times
    /// and bytes per session. Files go to a temporary directory under DIR, removed at the end.
    Store {
        /// Session records stored.
        #[arg(long, default_value_t = 100_000)]
        sessions: usize,
        /// Where the temporary directory goes (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Keep the store's files (their directory is printed): `erlmcp start` with that
        /// `store.dir` serves the sessions again, which measures a node's restore of them.
        #[arg(long)]
        keep: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drive `tools/call echo` over newline-delimited JSON-RPC on TCP and report calls/s and
    /// latency percentiles (one thread: pin it with taskset away from the server).
    Tcp {
        /// The server (`erlmcp start --tcp ADDR`, or `erlmcp bench echo-server`).
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Requests kept outstanding per connection.
        #[arg(long, default_value_t = 16)]
        pipeline: usize,
        /// Seconds measured.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of warm-up before measuring.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Bytes of text echoed per call.
        #[arg(long, default_value_t = 16)]
        payload: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Speak Streamable HTTP (POST /mcp on keep-alive connections) instead of lines.
        #[arg(long)]
        http: bool,
        /// With --http: sessions with JSON answers, stateless 2026-07-28 requests, or sessions
        /// whose answers stream over SSE.
        #[arg(long, value_enum, default_value = "session")]
        http_mode: bench::HttpMode,
        /// The demo tool called: `echo`, or `echo-cached` (the same answer, from the node's
        /// cache). Lines and `--http-mode session` only.
        #[arg(long, value_enum, default_value = "echo")]
        tool: bench::BenchTool,
        /// With --http: speak TLS, trusting the CA certificates of this PEM file (a node with
        /// `[tls]` on).
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// With --tls-ca: the name the server's certificate must carry.
        #[arg(long, default_value = "localhost")]
        tls_name: String,
        /// With --http: first measure N requests each on a new connection (connect, the TLS
        /// handshake with --tls-ca, one stateless `tools/call echo`, close), one after the
        /// other, and print their mean, p50 and p99.
        #[arg(long, default_value_t = 0)]
        new_connections: usize,
    },
    /// Open N WebSocket sessions (`/ws`, initialized) and hold them idle, to measure what an idle
    /// connection costs the server.
    IdleWs {
        /// The server (`erlmcp start --http ADDR`).
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
        /// Seconds over which to spread the openings (0: one after the other at once).
        #[arg(long, default_value_t = 0.0)]
        ramp: f64,
        /// Offer permessage-deflate, as browsers do.
        #[arg(long)]
        offer_deflate: bool,
    },
    /// Run a profile (core, tcp, http) against --target or a node started for it, closed loop
    /// or open loop (--rate), --repeat times; writes results.json and report.html into --out.
    Run(bench::run::RunArgs),
    /// A generator process of `bench run --profile scale --generators N` (run by it, not by hand).
    #[command(hide = true)]
    ScaleGenerator(bench::cluster_scale::GeneratorArgs),
    /// Run a profile against a peer server (--peer: rmcp's echo bench, the raw line echo,
    /// another build) and a node of this binary with the same load, after checking both give
    /// the same answer to the same call; writes both runs and vs.json / vs.html with the ratios.
    Vs(bench::vs::VsArgs),
    /// Compare two runs (results.json files or their folders): every figure's change; exits 1
    /// when a throughput falls by more than --threshold or a p99 rises by more than twice it.
    Compare {
        /// The run under test.
        current: PathBuf,
        /// The run it is held against.
        baseline: PathBuf,
        /// The fraction a throughput may fall (a p99 may rise twice as much).
        #[arg(long, default_value_t = 0.10)]
        threshold: f64,
        /// Write compare.html (both runs on the same charts) into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The figures of every run in DIR (DIR/results.json and DIR/*/results.json), oldest first:
    /// a table, and history.html (into --out, default DIR).
    History {
        /// The folder of runs.
        dir: PathBuf,
        /// Where history.html goes.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The baseline: a raw tokio server that echoes each line back, with no JSON work.
    EchoServer {
        /// Where to listen.
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// A TOML file layered on the embedded default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct StartArgs {
    /// A TOML file layered on the embedded default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level (overrides the config; RUST_LOG overrides both).
    #[arg(long, value_enum)]
    log_level: Option<LevelArg>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    log_format: Option<FormatArg>,
    /// Serve MCP over stdin/stdout (the node stops when stdin closes). Transport flags choose the
    /// transports: with any of --stdio, --tcp, --http, only those run.
    #[arg(long)]
    stdio: bool,
    /// Serve Streamable HTTP at http://ADDR/mcp (port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Serve newline-delimited JSON-RPC over TCP at ADDR (e.g. 127.0.0.1:7400; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    tcp: Option<std::net::SocketAddr>,
    /// The node's name (overrides node_name): how `erlmcp remote --node NAME` finds it.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The node cookie, in plain text: every local user can read it in the process list, so
    /// prefer --cookie-file or ERLMCP_COOKIE (a warning is logged when it is used).
    #[arg(long, conflicts_with = "cookie_file")]
    cookie: Option<String>,
    /// A file holding the node cookie (overrides ERLMCP_COOKIE and admin.cookie_file); created
    /// with a random cookie, mode 0600, when missing; refused when others can read it.
    #[arg(long, value_name = "PATH")]
    cookie_file: Option<PathBuf>,
    /// Serve Prometheus /metrics and the dashboard at ADDR (e.g. 127.0.0.1:9090): a loopback
    /// address only, unless `[tls]` is on (then it speaks HTTPS).
    #[arg(long, value_name = "ADDR")]
    admin_http: Option<std::net::SocketAddr>,
    /// Join a cluster: listen for other nodes at ADDR (IP:PORT they can reach; enables
    /// `[cluster]`). The cluster cookie is the node cookie.
    #[arg(long, value_name = "ADDR")]
    cluster_listen: Option<std::net::SocketAddr>,
    /// Where other nodes reach this node, HOST:PORT, when not at --cluster-listen (a proxy, a
    /// NAT): what it tells its peers, and the host of its cluster name (`cluster.advertise`).
    #[arg(long, value_name = "HOST:PORT", requires = "cluster_listen")]
    cluster_advertise: Option<String>,
    /// Seeds of the cluster to join through, HOST:PORT[,...] (their --cluster-listen).
    #[arg(
        long,
        value_name = "HOST:PORT",
        value_delimiter = ',',
        requires = "cluster_listen"
    )]
    join: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LevelArg {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LevelArg> for LogLevel {
    fn from(level: LevelArg) -> Self {
        match level {
            LevelArg::Error => Self::Error,
            LevelArg::Warn => Self::Warn,
            LevelArg::Info => Self::Info,
            LevelArg::Debug => Self::Debug,
            LevelArg::Trace => Self::Trace,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

impl From<FormatArg> for LogFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Text => Self::Text,
            FormatArg::Json => Self::Json,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Start(args) => start(args),
        Command::Bench(command) => bench(command),
        Command::Remote(args) => shell::run(args),
        Command::Plugin(args) => shell::plugin(args),
        Command::Config(args) => match load_config(args.config.as_deref()) {
            Ok(config) => {
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(err) => config_failure(&err),
        },
    }
}

fn bench(command: BenchCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("erlmcp bench: cannot build a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        BenchCommand::Core {
            duration,
            threads,
            sessions,
            json,
        } => {
            if !(duration.is_finite() && duration > 0.0) || threads == 0 || sessions == 0 {
                eprintln!("erlmcp bench core: duration, threads and sessions must be positive");
                return ExitCode::from(2);
            }
            let report = erlmcp::core_bench::run(
                std::time::Duration::from_secs_f64(duration),
                threads,
                sessions,
            );
            bench::print_core(&report, json);
            Ok(())
        }
        BenchCommand::Store {
            sessions,
            dir,
            keep,
            json,
        } => bench::store(sessions, dir, keep, json),
        BenchCommand::EchoServer { addr } => runtime.block_on(bench::raw_echo_server(addr)),
        BenchCommand::IdleWs {
            addr,
            connections,
            hold,
            ramp,
            offer_deflate,
        } => {
            if !(hold.is_finite() && hold >= 0.0 && ramp.is_finite() && ramp >= 0.0) {
                eprintln!("erlmcp bench: hold and ramp must be non-negative numbers of seconds");
                return ExitCode::from(2);
            }
            runtime.block_on(bench::hold_idle_websockets(
                addr,
                connections,
                std::time::Duration::from_secs_f64(hold),
                std::time::Duration::from_secs_f64(ramp),
                offer_deflate,
            ))
        }
        BenchCommand::Tcp {
            addr,
            connections,
            pipeline,
            duration,
            warmup,
            payload,
            json,
            http,
            http_mode,
            tool,
            tls_ca,
            tls_name,
            new_connections,
        } => {
            if let Some(ca) = &tls_ca {
                match bench::tls_client(ca, &tls_name) {
                    Ok(client) => {
                        let _ = bench::HTTP_TLS.set(client);
                    }
                    Err(e) => {
                        eprintln!("erlmcp bench: --tls-ca: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            if http && new_connections > 0 {
                match runtime.block_on(bench::new_connection_cost(addr, new_connections)) {
                    Ok((mean, p50, p99)) => println!(
                        "new connection + request ({}): mean {mean:.1} µs  p50 {p50:.1} µs  p99 {p99:.1} µs  ({new_connections} one after the other)",
                        if tls_ca.is_some() { "tls" } else { "plain" }
                    ),
                    Err(e) => {
                        eprintln!("erlmcp bench: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let times_ok =
                duration.is_finite() && duration > 0.0 && warmup.is_finite() && warmup >= 0.0;
            if connections == 0 || pipeline == 0 || !times_ok {
                eprintln!("erlmcp bench: connections, pipeline and duration must be positive");
                return ExitCode::from(2);
            }
            let plan = bench::LoadPlan {
                addr,
                connections,
                pipeline,
                warmup: std::time::Duration::from_secs_f64(warmup),
                duration: std::time::Duration::from_secs_f64(duration),
                payload,
                http_mode,
                tool,
                rate: None,
                threads: 1,
                step: std::time::Duration::from_secs(1),
            };
            let progress = std::sync::Arc::default();
            let measured = if http {
                bench::run_http_load(plan, progress)
            } else {
                bench::run_load(plan, progress)
            };
            measured.map(|run| {
                let report = run.report;
                if json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    println!(
                        "{:.0} calls/s  p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs  ({} calls, {} errors, c={} pipeline={})",
                        report.calls_per_sec, report.p50_us, report.p99_us, report.p999_us,
                        report.max_us, report.calls, report.errors, report.connections, report.pipeline
                    );
                }
            })
        }
        BenchCommand::Run(args) => return bench::run::run(args),
        BenchCommand::ScaleGenerator(args) => return bench::cluster_scale::generator(args),
        BenchCommand::Vs(args) => return bench::vs::run(args),
        BenchCommand::Compare {
            current,
            baseline,
            threshold,
            out,
        } => return bench::compare::command(&current, &baseline, threshold, out.as_deref()),
        BenchCommand::History { dir, out } => {
            return bench::compare::history_command(&dir, out.as_deref());
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erlmcp bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Said when `--cookie` is used.
pub(crate) const COOKIE_FLAG_WARNING: &str = "--cookie puts the cookie in the process list, where every local user can read it: use --cookie-file PATH or ERLMCP_COOKIE instead";

pub(crate) fn load_config(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded()?,
    };
    config.apply_env(|var| std::env::var(var).ok())?;
    Ok(config)
}

fn config_failure(err: &ConfigError) -> ExitCode {
    eprintln!("erlmcp: {err}");
    ExitCode::from(2)
}

fn start(args: StartArgs) -> ExitCode {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => return config_failure(&err),
    };
    if let Some(level) = args.log_level {
        config.log_level = level.into();
    }
    if let Some(format) = args.log_format {
        config.log_format = format.into();
    }
    // Transport flags choose the transports: with any of them, exactly those run.
    if args.stdio || args.http.is_some() || args.tcp.is_some() {
        config.stdio.enabled = args.stdio;
        config.http.enabled = args.http.is_some();
        config.tcp.enabled = args.tcp.is_some();
    }
    if let Some(addr) = args.http {
        config.http.addr = addr;
    }
    if let Some(addr) = args.tcp {
        config.tcp.addr = addr;
    }
    if let Some(name) = args.name {
        config.node_name = name;
    }
    if let Some(file) = &args.cookie_file {
        let Some(file) = file.to_str() else {
            eprintln!("erlmcp: --cookie-file: the path must be UTF-8");
            return ExitCode::from(2);
        };
        config.admin.cookie_file = file.to_owned();
        // The flag is the more explicit choice: it wins over ERLMCP_COOKIE.
        config.cookie = None;
    }
    let cookie_in_process_list = args.cookie.is_some();
    if let Some(cookie) = args.cookie {
        config.cookie = Some(cookie);
    }
    if let Some(addr) = args.admin_http {
        config.admin.http = addr.to_string();
    }
    if let Some(addr) = args.cluster_listen {
        config.cluster.enabled = true;
        config.cluster.listen = addr.to_string();
    }
    if let Some(advertise) = args.cluster_advertise {
        config.cluster.advertise = advertise;
    }
    if !args.join.is_empty() {
        config.cluster.join = args.join;
    }
    if let Err(err) = config.validate() {
        return config_failure(&err);
    }
    erlmcp::logging::init(config.log_level, config.log_format);
    match run_node(config, cookie_in_process_list) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "erlmcp stopped on an error");
            eprintln!("erlmcp: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the node until a signal; `cookie_in_process_list`: `--cookie` was used (warned about
/// once the node is up, next to the line saying so).
fn run_node(config: Config, cookie_in_process_list: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("erlmcp")
        .build()
        .context("cannot build the tokio runtime")?;
    let ran = runtime.block_on(async move {
        // Listen before starting, so a signal that arrives during start-up is not fatal.
        let mut signals = ShutdownSignals::install()?;
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let mut app = Application::start(&config).await?;
        let stdio_closed = app.stdio_closed();
        let tree = app.snapshot().await?;
        tracing::info!(node = %config.node_name, "erlmcp started; supervision tree:\n{}", tree.render().trim_end());
        if cookie_in_process_list {
            tracing::warn!("{COOKIE_FLAG_WARNING}");
        }
        let closed = stdio_closed.notified();
        tokio::pin!(closed);
        let reason = loop {
            tokio::select! {
                signal = signals.recv() => break signal,
                _ = hangups.recv() => reload_auth_rules(&config),
                () = &mut closed, if config.stdio.enabled => break "stdin closed",
                () = app.exited() => {
                    anyhow::bail!("the root supervisor stopped: a failure escalated to the top of the tree");
                }
            }
        };
        tracing::info!(signal = reason, "stopping the supervision tree");
        app.stop().await?;
        tracing::info!("erlmcp stopped");
        Ok(())
    });
    // The stdio transport reads stdin and writes stdout on blocking threads; after its client
    // stopped reading (write_timeout), a write (and the read of a stdin still open) may never
    // end, and waiting for them would keep the stopped node from exiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ran
}

/// SIGHUP: the per-tool rules read again from the config file (`erlmcp remote auth reload`
/// does the same); the outcome is logged, and a failure leaves the rules in force.
fn reload_auth_rules(config: &Config) {
    match erlmcp::dispatch::reload_rules(config) {
        Ok(_) => {} // logged by the reload
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: auth rules not reloaded; the rules in force are unchanged")
        }
    }
}

/// SIGINT and SIGTERM, installed once.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM with the signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
