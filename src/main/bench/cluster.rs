//! Owns the cluster side of `erlmcp bench run`: `--nodes N` nodes the bench starts as children,
//! joined into one cluster on loopback (each `--cluster-listen` on a free loopback port, all but
//! the first `--join` it; a private home each, one random cookie), waited for until every node
//! lists all of them up; and the forward profile (`--profile forward`): sessions made on the
//! first node (the maker owns its sessions) driven with the same `tools/call` load through their
//! owner (direct) and through the second node (forwarded: it sends each request to the owner
//! over ractor_cluster and relays the answer), in two phases of equal length and equal
//! connections per repeat, their order swapped from one repeat to the next; both paths'
//! throughput and percentiles side by side in results.json, with their ratios. The scale profile
//! across nodes and generator processes is `cluster_scale.rs`.

use super::node::{ChildNode, Listen};
use super::results::Repeat;
use super::{HttpMode, LoadPlan, LoadRun, Local, Progress, Shared};
use erlmcp::remote::{AdminClient, Target};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::TcpStream;

/// How long the nodes get to list each other up (a dial is retried every second).
const JOIN_WAIT: Duration = Duration::from_secs(60);

/// `bench run`'s cluster arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClusterArgs {
    /// Nodes the bench starts, joined into one cluster on loopback (forward: at least 2, default
    /// 2; scale: default 1, a node alone; with more, the connections are spread over them;
    /// chaos: at least 2, `--transport http`, for the `node` fault).
    #[arg(long)]
    pub(crate) nodes: Option<usize>,
    /// The scale profile: generator processes (copies of this binary), each opening its share of
    /// `--connections` from a loopback source address of its own (127.0.0.101, .102, …): one
    /// process holds at most ~19K descriptors here.
    #[arg(long, default_value_t = 1)]
    pub(crate) generators: usize,
}

/// What a profile is, as far as the cluster is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// `--profile forward`.
    Forward,
    /// `--profile scale` (over the transport named).
    Scale(super::ScaleTransport),
    /// `--profile chaos` (over the transport named): its cluster is its own (`chaos.rs`).
    Chaos(super::ScaleTransport),
    /// Any other profile.
    Other,
}

impl ClusterArgs {
    /// The nodes the bench starts for a profile: `None` for a single node (or none).
    pub(crate) fn nodes_for(&self, profile: Use) -> Option<usize> {
        match (profile, self.nodes) {
            (Use::Forward, nodes) => Some(nodes.unwrap_or(2)),
            (Use::Scale(_), Some(nodes)) if nodes > 1 || self.generators > 1 => Some(nodes),
            (Use::Scale(_), None) if self.generators > 1 => Some(1),
            _ => None,
        }
    }

    /// Checks the cluster arguments against the profile; `target`: whether `--target` was given.
    pub(crate) fn check(
        &self,
        profile: Use,
        target: bool,
        http_mode: HttpMode,
    ) -> Result<(), String> {
        if self.nodes == Some(0) || self.generators == 0 {
            return Err("--nodes and --generators must be positive".into());
        }
        match profile {
            Use::Forward if target => {
                Err("the forward profile starts its own nodes: it takes no --target".into())
            }
            Use::Forward if self.nodes.is_some_and(|n| n < 2) => {
                Err("the forward profile needs --nodes 2 or more".into())
            }
            Use::Forward if http_mode == HttpMode::Stateless => {
                Err("the forward profile drives sessions: --http-mode session or sse".into())
            }
            Use::Forward if self.generators > 1 => Err("--generators is for the scale profile".into()),
            Use::Scale(_) if target && self.nodes_for(profile).is_some() => Err(
                "--nodes and --generators start nodes and generator processes: no --target".into(),
            ),
            Use::Scale(transport)
                if self.nodes_for(profile).is_some() && transport != super::ScaleTransport::Http =>
            {
                Err("the scale profile across nodes holds Streamable HTTP sessions: --transport http".into())
            }
            Use::Chaos(_) if self.generators > 1 => {
                Err("--generators is for the scale profile".into())
            }
            Use::Chaos(transport)
                if self.nodes.is_some_and(|n| n < 2 || transport != super::ScaleTransport::Http) =>
            {
                Err("the chaos profile's cluster needs --nodes 2 or more and --transport http".into())
            }
            Use::Other if self.nodes.is_some() || self.generators > 1 => {
                Err("--nodes is for the forward, scale and chaos profiles, --generators for scale".into())
            }
            _ => Ok(()),
        }
    }
}

/// Nodes started as children and joined into one cluster; stopped when dropped.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<ChildNode>,
    cookie: String,
}

impl Cluster {
    /// Starts `count` clustered nodes serving Streamable HTTP, their homes under `home`, each
    /// with `config` (TOML layered on the default) when given; returns once every node lists
    /// all of them up.
    pub(crate) fn start(count: usize, home: &Path, config: Option<&str>) -> std::io::Result<Self> {
        let cookie = super::chaos::cookie()?;
        let mut nodes: Vec<ChildNode> = Vec::with_capacity(count);
        let mut seed = None;
        for index in 0..count {
            let node_home = home.join(format!("node-{index}"));
            std::fs::create_dir_all(&node_home)?;
            let port = free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec!["--cluster-listen".to_owned(), listen.clone()];
            if let Some(seed) = &seed {
                args.extend(["--join".to_owned(), String::clone(seed)]);
            }
            if let Some(config) = config {
                let path = node_home.join("bench.toml");
                std::fs::write(&path, config)?;
                args.extend(["--config".to_owned(), path.display().to_string()]);
            }
            let name = format!("bench-{}-n{index}", std::process::id());
            let env = [("ERLMCP_COOKIE", cookie.as_str())];
            nodes.push(ChildNode::start_named(
                Listen::Http,
                &node_home,
                &name,
                &args,
                &env,
            )?);
            seed.get_or_insert(listen);
        }
        let cluster = Self { nodes, cookie };
        cluster.wait_all_up()?;
        Ok(cluster)
    }

    /// The cluster a profile runs on (`None`: one node or none, as before): its nodes' homes in
    /// `out/cluster-home`; the scale profile's with [`super::cluster_scale::node_config`].
    pub(crate) fn start_for(
        args: &ClusterArgs,
        profile: Use,
        connections: usize,
        out: &Path,
    ) -> std::io::Result<Option<Self>> {
        let Some(count) = args.nodes_for(profile) else {
            return Ok(None);
        };
        let config = matches!(profile, Use::Scale(_))
            .then(|| super::cluster_scale::node_config(connections));
        Self::start(count, &out.join("cluster-home"), config.as_deref()).map(Some)
    }

    /// One repeat on this cluster: the forward profile's, or the scale profile's across nodes
    /// (`plan.connections` opened by `generators` processes at `plan.rate`, held for
    /// `plan.duration`).
    pub(crate) fn repeat(
        &self,
        profile: Use,
        generators: usize,
        plan: LoadPlan,
        index: usize,
        label: &str,
    ) -> std::io::Result<Repeat> {
        let Use::Scale(transport) = profile else {
            return forward_repeat(self, plan, index, label);
        };
        let scale = super::ScalePlan {
            addr: plan.addr,
            transport,
            connections: plan.connections,
            rate: plan.rate,
            hold: plan.duration,
        };
        super::cluster_scale::scale_repeat(self, scale, generators, label)
    }

    /// The admin channel to node `index`.
    pub(crate) fn admin(&self, index: usize) -> Target {
        let node = &self.nodes[index];
        Target {
            node: node.name.clone(),
            socket_dir: node.home().join("erlmcp"),
            cookie: self.cookie.clone(),
            tls: None,
        }
    }

    /// Waits until every node's `nodes` says all of them are up.
    fn wait_all_up(&self) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let targets: Vec<Target> = (0..self.nodes.len()).map(|i| self.admin(i)).collect();
        runtime
            .block_on(all_up(&targets, Instant::now() + JOIN_WAIT))
            .map_err(|why| std::io::Error::new(std::io::ErrorKind::TimedOut, why))
    }

    /// How many of `keys` node `index`'s ring gives to node `owner` (`nodes owner KEY` in its
    /// shell).
    fn owned_by(&self, index: usize, owner: usize, keys: &[String]) -> std::io::Result<usize> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let owner = format!("{}@127.0.0.1", self.nodes[owner].name);
        runtime.block_on(async {
            let mut client = AdminClient::connect(&self.admin(index))
                .await
                .map_err(std::io::Error::other)?;
            let mut owned = 0;
            for key in keys {
                let reply = client
                    .call(&format!("nodes owner {key}"))
                    .await
                    .map_err(std::io::Error::other)?;
                owned += usize::from(reply.data["owner"].as_str() == Some(owner.as_str()));
            }
            Ok(owned)
        })
    }

    /// Where each node serves Streamable HTTP.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.addr).collect()
    }
}

/// Waits until the node of each of `targets` lists all of them up (`nodes`), tried every
/// 100 ms until `deadline`; why not, past it.
pub(crate) async fn all_up(targets: &[Target], deadline: Instant) -> Result<(), String> {
    let want = targets.len() as u64;
    for target in targets {
        loop {
            let last;
            let up = match AdminClient::connect(target).await {
                Ok(mut client) => match client.call("nodes").await {
                    Ok(reply) => {
                        last = reply.text.clone();
                        reply.data["up"].as_u64()
                    }
                    Err(e) => {
                        last = e.to_string();
                        None
                    }
                },
                Err(e) => {
                    last = e.to_string();
                    None
                }
            };
            if up == Some(want) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {} did not list {want} nodes up in time: {last}",
                    target.node
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// A loopback port free a moment ago (the listener is closed before the node binds it).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Opens `count` sessions on the node at `owner` (`initialize`, then `notifications/initialized`,
/// on one keep-alive connection); their ids.
async fn open_sessions(owner: SocketAddr, count: usize) -> std::io::Result<Vec<String>> {
    let host = owner.to_string();
    let mut stream = TcpStream::connect(owner).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        let session =
            super::http::open_made_session(&mut reader, &mut write, &host, &mut line).await?;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Drives a connection with the session it was given (made on another node, maybe).
fn drive_session(
    connection: (TcpStream, String),
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> Local<()> {
    Box::pin(async move {
        let (stream, session) = connection;
        let (read, mut write) = stream.into_split();
        let reader = BufReader::with_capacity(64 * 1024, read);
        super::http::drive_http_calls(reader, &mut write, plan, index, recorder, Some(&session))
            .await
    })
}

/// One phase: the plan's load through `through`, connection `i` with session `i`.
fn phase(
    plan: LoadPlan,
    through: SocketAddr,
    sessions: &[String],
    progress: Arc<Progress>,
) -> std::io::Result<LoadRun> {
    let plan = LoadPlan {
        addr: through,
        ..plan
    };
    super::run_over(
        plan,
        progress,
        &|plan, index| {
            let addr = plan.addr;
            let session = sessions[index % sessions.len()].clone();
            Box::pin(async move {
                let stream = super::connect(addr, index).await?;
                stream.set_nodelay(true)?;
                Ok((stream, session))
            })
        },
        drive_session,
    )
}

/// The figures of one path (`direct` or `forwarded`).
fn path_figures(figures: &mut BTreeMap<String, f64>, path: &str, run: &LoadRun) {
    let report = &run.report;
    for (name, value) in [
        ("calls_per_sec", report.calls_per_sec),
        ("calls", report.calls as f64),
        ("errors", report.errors as f64),
        ("p50_us", report.p50_us),
        ("p99_us", report.p99_us),
        ("p999_us", report.p999_us),
        ("max_us", report.max_us),
    ] {
        figures.insert(format!("{path}_{name}"), value);
    }
}

/// One repeat of the forward profile: `plan.connections` sessions made on node 0, driven
/// through node 0 and through node 1, one phase each (direct first in the first, third, …
/// repeat; forwarded first in the others). Its timeline and percentile curve are the forwarded phase's.
fn forward_repeat(
    cluster: &Cluster,
    plan: LoadPlan,
    repeat: usize,
    label: &str,
) -> std::io::Result<Repeat> {
    let (owner, other) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sessions = runtime.block_on(open_sessions(owner, plan.connections))?;
    drop(runtime);
    // Requests through node 1 are forwarded only if its ring gives the sessions to node 0.
    let owned = cluster.owned_by(1, 0, &sessions)?;
    if owned != sessions.len() {
        return Err(std::io::Error::other(format!(
            "only {owned} of {} sessions made on the first node are its own as the second sees them",
            sessions.len()
        )));
    }
    let progress = Arc::new(Progress::default());
    let total = (plan.warmup + plan.duration) * 2;
    let order = if repeat % 2 == 0 {
        [("direct", owner), ("forwarded", other)]
    } else {
        [("forwarded", other), ("direct", owner)]
    };
    let runs = std::thread::scope(|scope| {
        let measured = {
            let progress = Arc::clone(&progress);
            let sessions = &sessions;
            scope.spawn(move || {
                order
                    .iter()
                    .map(|(path, through)| {
                        phase(plan, *through, sessions, Arc::clone(&progress))
                            .map(|run| (*path, run))
                    })
                    .collect::<std::io::Result<Vec<_>>>()
            })
        };
        super::recorder::show_progress(label, total, &progress, || measured.is_finished());
        measured
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the forward load panicked")))
    })?;
    let mut figures = BTreeMap::from([("sessions_owned_elsewhere".to_owned(), owned as f64)]);
    for (path, run) in &runs {
        path_figures(&mut figures, path, run);
    }
    let figure = |name: &str| figures.get(name).copied().unwrap_or(0.0);
    // No ratio (rather than a made-up 0) when the direct side measured nothing.
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let ratios = [
        (
            "forward_p50_ratio",
            ratio(figure("forwarded_p50_us"), figure("direct_p50_us")),
        ),
        (
            "forward_p99_ratio",
            ratio(figure("forwarded_p99_us"), figure("direct_p99_us")),
        ),
        (
            "forward_throughput_ratio",
            ratio(
                figure("forwarded_calls_per_sec"),
                figure("direct_calls_per_sec"),
            ),
        ),
    ];
    figures.extend(
        ratios
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    let forwarded = runs.into_iter().find(|(path, _)| *path == "forwarded");
    let (timeline, percentiles) =
        forwarded.map_or_else(Default::default, |(_, run)| (run.timeline, run.percentiles));
    Ok(Repeat {
        figures,
        timeline,
        percentiles,
        node: Vec::new(),
        faults: Vec::new(),
        stages: Vec::new(),
    })
}

/// The forward profile's summary line.
pub(crate) fn print_forward(figures: &BTreeMap<String, f64>, repeats: usize) {
    let f = |name: &str| figures.get(name).copied().unwrap_or(0.0);
    let ratio = |name: &str| {
        figures
            .get(name)
            .map_or("-".to_owned(), |r| format!("{r:.2}"))
    };
    println!(
        "forward: direct {:.0} calls/s p50 {:.1} µs p99 {:.1} µs; forwarded {:.0} calls/s p50 {:.1} µs p99 {:.1} µs; p50 ×{}, p99 ×{}, throughput ×{}; {} errors (median of {repeats})",
        f("direct_calls_per_sec"),
        f("direct_p50_us"),
        f("direct_p99_us"),
        f("forwarded_calls_per_sec"),
        f("forwarded_p50_us"),
        f("forwarded_p99_us"),
        ratio("forward_p50_ratio"),
        ratio("forward_p99_ratio"),
        ratio("forward_throughput_ratio"),
        f("direct_errors") + f("forwarded_errors"),
    );
}
