//! Owns `erlmcp bench run --profile chaos`: steady open-loop load over TCP, Streamable HTTP or
//! WebSocket on a node the bench starts, or over HTTP on a cluster of `--nodes` it starts
//! (`chaos_load.rs`: a dropped connection is opened again, one request in four writes a value to
//! the node's state store), while faults are injected one after another through the node's own
//! admin channel (as `erlmcp remote` does): `kill NAME` of an actor of its tree (a supervisor
//! too: `erlmcp_transport_sup` drops every TCP connection and the listener), `connections`
//! (every connection actor of the TCP transport killed: the load's connections are dropped),
//! `sessions[=N]` (the awake session actors killed: their connections are closed), or, on a
//! cluster, `node[=I]` (a node SIGKILLed and started again: `chaos_node.rs`). For each fault it
//! reports when the component was back (a new actor running under the same name; for
//! `connections` and `sessions`, as many new actors as were killed, at most the load's
//! connections; for `node`, every node listing all up again),
//! when the load was back (the first step after that with no error and a p99 within 10% of the
//! steady band before the first fault), how many requests failed until the next fault, the
//! connections opened again, and `lost_writes`: the writes acknowledged before the fault that
//! are not read back (`kv_get`) after it. Besides these, `--faults` takes stresses the node
//! applies to itself through its `fault` command (src/fault.rs): `latency=MS` (added to every
//! `tools/call` for a second), `cpu=MS` (every core spun for MS), `memory=MIB` (held for a
//! second); their "component back" is when the node says the stress ended. `plugin=PATH` loads a
//! failing plugin version under the load and undoes it (`chaos_plugin.rs`). The open-loop reader
//! holds every request until it is answered: one never answered, or an answer to no request
//! (twice, or stray), is an error; one in flight on a dropped connection fails once.

#[path = "chaos_load.rs"]
pub(crate) mod load;
#[path = "chaos_node.rs"]
mod node;
#[path = "chaos_plugin.rs"]
mod plugin;

use super::cluster::Cluster;
use super::node::{ChildNode, Listen};
use super::recorder::Progress;
use super::results::{FaultRecord, TimelineStep};
use super::{LoadPlan, LoadRun};
use erlmcp::remote::{AdminClient, Target};
use erlmcp::session::SESSION_SUP;
use load::{Ledger, Wire};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The chaos profile's node or cluster: the admin channel of its (first) node, the faults to
/// inject, the wire of the load (for the read-back of acknowledged writes too) and the ledger
/// of those writes.
pub(crate) struct Chaos {
    target: Target,
    /// The faults, in order.
    pub(crate) faults: Vec<String>,
    wire: Wire,
    /// The load's connections (all of them back: a connections fault is over).
    connections: usize,
    ledger: Arc<Ledger>,
    nodes: Nodes,
}

/// What the chaos run started: one node, or a cluster (whose nodes a `node` fault kills).
enum Nodes {
    One(ChildNode),
    Cluster(Mutex<Cluster>),
}

impl Chaos {
    /// Starts the chaos run's node (`nodes` `None`) or cluster of `nodes` nodes (Streamable
    /// HTTP), homes under `out`, the load over `transport`.
    pub(crate) fn start(
        out: &Path,
        nodes: Option<usize>,
        transport: super::ScaleTransport,
        faults: Vec<String>,
        connections: usize,
    ) -> std::io::Result<Self> {
        let (target, wire, nodes) = match nodes {
            Some(count) => {
                let cluster = Cluster::start(count, &out.join("cluster-home"), None)?;
                let wire = Wire::Http(cluster.addrs().into());
                (cluster.admin(0), wire, Nodes::Cluster(Mutex::new(cluster)))
            }
            None => {
                let cookie = cookie()?;
                let listen = match transport {
                    super::ScaleTransport::Tcp => Listen::Tcp,
                    super::ScaleTransport::Http | super::ScaleTransport::Ws => Listen::Http,
                };
                let home = out.join("node-home");
                let node = ChildNode::start_with(listen, &home, &[("ERLMCP_COOKIE", &cookie)])?;
                // Sessions subscribe (and so keep their actors) when they are to be killed.
                let subscribe = faults
                    .iter()
                    .any(|f| f.split_once('=').map_or(f.as_str(), |(k, _)| k) == SESSIONS);
                let addr = node.addr;
                let wire = match transport {
                    super::ScaleTransport::Ws => Wire::Ws { addr, subscribe },
                    super::ScaleTransport::Http => Wire::Http(vec![addr].into()),
                    super::ScaleTransport::Tcp => Wire::Tcp { addr, subscribe },
                };
                (admin_target(&node, &cookie), wire, Nodes::One(node))
            }
        };
        Ok(Self {
            target,
            faults,
            wire,
            connections,
            ledger: Arc::new(Ledger::new()?),
            nodes,
        })
    }

    /// Where the load goes first (the first node).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.wire.nodes()[0]
    }

    /// The process of the first node (sampled for the report).
    pub(crate) fn pid(&self) -> u32 {
        match &self.nodes {
            Nodes::One(node) => node.pid(),
            Nodes::Cluster(cluster) => {
                cluster.lock().unwrap_or_else(PoisonError::into_inner).nodes[0].pid()
            }
        }
    }
}

/// The chaos load (`chaos_load.rs`: connections opened again when dropped, writes recorded)
/// with `chaos`; the plain TCP load without.
pub(crate) fn run_load(
    plan: LoadPlan,
    progress: Arc<Progress>,
    chaos: Option<&Chaos>,
) -> std::io::Result<LoadRun> {
    match chaos {
        Some(chaos) => {
            chaos.ledger.begin();
            load::run_load(plan, progress, &chaos.ledger, &chaos.wire)
        }
        None => super::run_load(plan, progress),
    }
}

/// Checks the chaos profile's `faults` against its transport and `nodes`.
pub(crate) fn check(
    faults: &[String],
    transport: super::ScaleTransport,
    nodes: Option<usize>,
) -> Result<(), String> {
    let (http, ws) = (
        transport == super::ScaleTransport::Http,
        transport == super::ScaleTransport::Ws,
    );
    for fault in faults {
        let kind = fault
            .split_once('=')
            .map_or(fault.as_str(), |(kind, _)| kind);
        if kind == NODE && nodes.is_none() {
            return Err(format!(
                "`{fault}` kills a node of a cluster: give --nodes 2 or more"
            ));
        }
        if (http || ws) && (kind == "plugin" || kind == CONNECTIONS) {
            return Err(format!(
                "`{fault}` acts on TCP connections: --transport tcp"
            ));
        }
        if http && kind == SESSIONS {
            return Err(format!(
                "`{fault}` kills TCP and WebSocket sessions: --transport tcp or ws"
            ));
        }
    }
    Ok(())
}

/// The actors killed when `--faults` is not given, in order: the registry, admission, the tool
/// pool's owner, the cache's memory tier, the metrics collector.
pub(crate) const DEFAULT_FAULTS: [&str; 5] = [
    "erlmcp_registry",
    "erlmcp_admission",
    "erlmcp_pool_owner:erlmcp_tool_pool",
    "erlmcp_cache_l1",
    "erlmcp_metrics",
];

/// How long a killed component gets to be running again before it counts as not back (less
/// when the next fault comes first).
const COMPONENT_WAIT: Duration = Duration::from_secs(10);

/// A fault as the injector saw it: the actor, when it was killed, when its successor ran, the
/// writes acknowledged before it that were not read back after it, and how many connections
/// the load had opened again when it was injected.
pub(crate) struct Injected {
    name: String,
    at: Instant,
    back_after: Option<Duration>,
    error: Option<String>,
    lost_writes: Option<u64>,
    reopened_before: u64,
}

/// The admin connection to the child: its name, socket directory and cookie.
fn admin_target(node: &ChildNode, cookie: &str) -> Target {
    Target {
        node: node.name.clone(),
        socket_dir: node.home().join("erlmcp"),
        cookie: cookie.to_owned(),
        tls: None,
    }
}

/// A fresh random cookie for the child.
pub(crate) fn cookie() -> std::io::Result<String> {
    erlmcp::common::random_hex(16).map_err(|e| std::io::Error::other(e.to_string()))
}

/// The actor id `info NAME` reports while it runs.
async fn running_actor(client: &mut AdminClient, name: &str) -> Option<String> {
    let reply = client.call(&format!("info {name}")).await.ok()?;
    if !reply.ok || reply.data["state"] != "running" {
        return None;
    }
    reply.data["actor_id"].as_str().map(str::to_owned)
}

/// The `--faults` name that kills every connection actor of the TCP transport: the load's
/// connections are dropped and opened again.
pub(crate) const CONNECTIONS: &str = "connections";

/// The supervisor of the TCP connections.
const CONNECTIONS_SUP: &str = "erlmcp_tcp_connections";

/// The `--faults` name that SIGKILLs a node of the cluster (`node`: the last one, `node=I`:
/// node I) and restarts it (`chaos_node.rs`).
pub(crate) const NODE: &str = "node";

/// The `--faults` name that kills the awake session actors (`sessions`: all of them,
/// `sessions=N`: N): each killed session ends and its connection is closed; the load opens it
/// again with a new session.
pub(crate) const SESSIONS: &str = "sessions";

/// Injects each of `chaos.faults` at its time in `at` (one after the other), waits for it to be
/// over, then reads back every write acknowledged before it; runs on the calling thread.
pub(crate) fn inject(chaos: &Chaos, at: &[Instant]) -> Vec<Injected> {
    let (target, faults) = (&chaos.target, &chaos.faults);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return failed_all(faults, at, &e.to_string()),
    };
    runtime.block_on(async {
        // The admin channel comes up after the listener the node announced: tried until it
        // answers, for as long as a component gets to come back.
        let connect_until = Instant::now() + COMPONENT_WAIT;
        let mut client = loop {
            match AdminClient::connect(target).await {
                Ok(client) => break client,
                Err(e) if Instant::now() >= connect_until => {
                    return failed_all(faults, at, &e.to_string());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let mut injected = Vec::new();
        for (i, (name, &when)) in faults.iter().zip(at).enumerate() {
            tokio::time::sleep_until(when.into()).await;
            let next = at.get(i + 1).copied();
            let written = chaos.ledger.acknowledged();
            let reopened_before = chaos.ledger.reopened();
            let expected = chaos.connections;
            let fault = match name.split_once('=') {
                Some(("plugin", path)) => plugin::fail(&mut client, chaos.addr(), path, next).await,
                Some((NODE, index)) => match index.parse() {
                    Ok(index) => node::kill(chaos, index, next).await,
                    Err(_) => struck(
                        Instant::now(),
                        None,
                        Some(format!("node={index}: not a node index")),
                    ),
                },
                Some((SESSIONS, count)) => match count.parse() {
                    Ok(count) => {
                        kill_children(&mut client, SESSION_SUP, Some(count), expected, next).await
                    }
                    Err(_) => struck(
                        Instant::now(),
                        None,
                        Some(format!("sessions={count}: not a count")),
                    ),
                },
                Some((kind, size)) => stress(&mut client, kind, size, next).await,
                None if name == CONNECTIONS => {
                    kill_children(&mut client, CONNECTIONS_SUP, None, expected, next).await
                }
                None if name == NODE => node::kill(chaos, usize::MAX, next).await,
                None if name == SESSIONS => {
                    kill_children(&mut client, SESSION_SUP, None, expected, next).await
                }
                None => kill(&mut client, name, next).await,
            };
            let (lost_writes, unread) = match read_back(&chaos.wire, &written).await {
                Ok(lost) => (Some(lost), None),
                Err(e) => (None, Some(format!("reading the writes back: {e}"))),
            };
            injected.push(Injected {
                name: name.clone(),
                error: fault.error.or(unread),
                lost_writes,
                reopened_before,
                ..fault
            });
        }
        injected
    })
}

/// [`load::read_back`], given [`COMPONENT_WAIT`] at most.
async fn read_back(wire: &Wire, written: &[(String, String)]) -> std::io::Result<u64> {
    tokio::time::timeout(COMPONENT_WAIT, load::read_back(wire, written))
        .await
        .map_err(|_| std::io::Error::other(format!("no answer within {COMPONENT_WAIT:?}")))?
}

/// The actors running under `supervisor`, by actor id (`ps`).
async fn running_children(client: &mut AdminClient, supervisor: &str) -> Option<Vec<String>> {
    let reply = client.call("ps").await.ok().filter(|reply| reply.ok)?;
    let actors = reply.data["actors"].as_array()?;
    Some(
        actors
            .iter()
            .filter(|a| a["supervisor"] == supervisor && a["state"] == "running")
            .filter_map(|a| a["actor"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Kills `count` (all when `None`) of the actors running under `supervisor`; back once
/// `expected` actors run there again that were not running before (until the `next` fault at
/// most).
async fn kill_children(
    client: &mut AdminClient,
    supervisor: &str,
    count: Option<usize>,
    expected: usize,
    next: Option<Instant>,
) -> Injected {
    let at = Instant::now();
    let before = running_children(client, supervisor)
        .await
        .unwrap_or_default();
    let doomed = &before[..count.unwrap_or(before.len()).min(before.len())];
    let mut error = doomed
        .is_empty()
        .then(|| format!("no actor running under {supervisor} to kill"));
    for actor in doomed {
        // One that closed by itself meanwhile is no failure: only the channel's are.
        if let Err(e) = client.call(&format!("kill {actor}")).await {
            error = Some(e.to_string());
            break;
        }
    }
    let expected = expected.min(doomed.len()).max(1);
    let mut back_after = None;
    if error.is_none() {
        while Instant::now() < give_up(at, next) {
            if let Some(now) = running_children(client, supervisor).await
                && now.iter().filter(|a| !before.contains(a)).count() >= expected
            {
                back_after = Some(at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    struck(at, back_after, error)
}

/// A fault injected at `at`, over after `back_after` (or not), or not injected (`error`).
fn struck(at: Instant, back_after: Option<Duration>, error: Option<String>) -> Injected {
    Injected {
        name: String::new(),
        at,
        back_after,
        error,
        lost_writes: None,
        reopened_before: 0,
    }
}

/// Kills actor `name` and waits for its successor (until the `next` fault at most).
async fn kill(client: &mut AdminClient, name: &str, next: Option<Instant>) -> Injected {
    let before = running_actor(client, name).await;
    let killed_at = Instant::now();
    let error = match client.call(&format!("kill {name}")).await {
        Ok(reply) if reply.ok => None,
        Ok(reply) => Some(reply.text),
        Err(e) => Some(e.to_string()),
    };
    let mut back_after = None;
    if error.is_none() {
        while Instant::now() < give_up(killed_at, next) {
            let now = running_actor(client, name).await;
            if now.is_some() && now != before {
                back_after = Some(killed_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    struck(killed_at, back_after, error)
}

/// When waiting for a fault's end gives up: at the next fault, or [`COMPONENT_WAIT`] after.
fn give_up(from: Instant, next: Option<Instant>) -> Instant {
    next.unwrap_or(from + COMPONENT_WAIT)
        .min(from + COMPONENT_WAIT)
}

/// How long a latency or memory fault holds: [`STRESS_HOLD`], or half the time to the next
/// fault when that is shorter.
const STRESS_HOLD: Duration = Duration::from_secs(1);

/// Injects `latency=MS`, `cpu=MS` or `memory=MIB` through the node's `fault` command and waits
/// until the node says it ended (the "component back" of a stress fault).
async fn stress(
    client: &mut AdminClient,
    kind: &str,
    size: &str,
    next: Option<Instant>,
) -> Injected {
    let at = Instant::now();
    let hold = next.map_or(STRESS_HOLD, |next| {
        STRESS_HOLD.min(next.saturating_duration_since(at) / 2)
    });
    let hold_ms = hold.as_millis().max(1);
    let (command, field) = match kind {
        "latency" => (format!("fault latency {size} {hold_ms}"), "latency_ms"),
        "cpu" => (format!("fault cpu {size}"), "cpu_threads"),
        "memory" => (format!("fault memory {size} {hold_ms}"), "memory_mib"),
        other => {
            return struck(
                at,
                None,
                Some(format!(
                    "unknown fault kind `{other}` (latency=MS, cpu=MS, memory=MIB, plugin=PATH, connections, or an actor name)"
                )),
            );
        }
    };
    let error = match client.call(&command).await {
        Ok(reply) if reply.ok => None,
        Ok(reply) => Some(reply.text),
        Err(e) => Some(e.to_string()),
    };
    let mut back_after = None;
    if error.is_none() {
        while Instant::now() < give_up(at, next) {
            let ended = client
                .call("fault")
                .await
                .is_ok_and(|reply| reply.ok && reply.data[field] == 0);
            if ended {
                back_after = Some(at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    struck(at, back_after, error)
}

fn failed_all(faults: &[String], at: &[Instant], why: &str) -> Vec<Injected> {
    faults
        .iter()
        .zip(at)
        .map(|(name, &at)| Injected {
            name: name.clone(),
            ..struck(at, None, Some(why.to_owned()))
        })
        .collect()
}

/// What each fault cost, from the run's timeline (steps measured from `measure_from`).
fn assess(
    injected: &[Injected],
    timeline: &[TimelineStep],
    measure_from: Instant,
    reopened_end: u64,
) -> Vec<FaultRecord> {
    let offset = |at: Instant| at.saturating_duration_since(measure_from).as_secs_f64();
    let first_fault = injected.first().map_or(f64::INFINITY, |f| offset(f.at));
    // The steady band: the 90th percentile of the p99s of whole steps before the first fault.
    let mut steady: Vec<f64> = timeline
        .iter()
        .filter(|s| s.t_s <= first_fault && s.calls_per_sec > 0.0)
        .map(|s| s.p99_us)
        .collect();
    steady.sort_by(f64::total_cmp);
    let band = steady
        .get((steady.len() * 9 / 10).min(steady.len().saturating_sub(1)))
        .copied();
    injected
        .iter()
        .enumerate()
        .map(|(i, fault)| {
            let from = offset(fault.at);
            let until = injected
                .get(i + 1)
                .map_or(f64::INFINITY, |next| offset(next.at));
            // Steps that end after the fault, up to the one the next fault falls in: each step
            // is one fault's, so the faults' failed requests add up to the errors after them.
            let during = timeline.iter().filter(|s| s.t_s > from && s.t_s <= until);
            let failed: u64 = during.clone().map(|s| s.errors).sum();
            let component_s = fault.back_after.map(|d| d.as_secs_f64());
            let recovered = match (band, component_s) {
                (Some(band), Some(back)) => during
                    .clone()
                    .find(|s| {
                        s.t_s >= from + back
                            && s.errors == 0
                            && s.calls_per_sec > 0.0
                            && s.p99_us <= band * 1.1
                    })
                    .map(|s| s.t_s - from),
                _ => None,
            };
            FaultRecord {
                actor: fault.name.clone(),
                at_s: from,
                component_back_us: component_s.map(|s| s * 1e6),
                recovered_us: recovered.map(|s| s * 1e6),
                failed,
                error: fault.error.clone(),
                lost_writes: fault.lost_writes,
                reopened: injected
                    .get(i + 1)
                    .map_or(reopened_end, |next| next.reopened_before)
                    .saturating_sub(fault.reopened_before),
            }
        })
        .collect()
}

/// What each fault cost (from the run's timeline), and the chaos figures added to `figures`:
/// faults, those recovered, requests failed, the longest recovery and component restart, the
/// writes acknowledged, the connections opened again, and `lost_writes`: every acknowledged
/// write read back once the run is over (left out when it could not be read back). Nothing
/// without `chaos`.
pub(crate) fn outcome(
    chaos: Option<&Chaos>,
    injected: &[Injected],
    run: &LoadRun,
    figures: &mut BTreeMap<String, f64>,
) -> Vec<FaultRecord> {
    let Some(chaos) = chaos else {
        return Vec::new();
    };
    let reopened = chaos.ledger.reopened();
    let faults = assess(injected, &run.timeline, run.measure_from, reopened);
    let recovered: Vec<f64> = faults.iter().filter_map(|f| f.recovered_us).collect();
    let back: Vec<f64> = faults.iter().filter_map(|f| f.component_back_us).collect();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let failed = faults.iter().map(|f| f.failed).sum::<u64>();
    let written = chaos.ledger.acknowledged();
    for (name, value) in [
        ("faults", faults.len() as f64),
        ("faults_recovered", recovered.len() as f64),
        ("faults_failed_requests", failed as f64),
        ("recovery_max_us", max(&recovered)),
        ("component_back_max_us", max(&back)),
        ("writes_acknowledged", written.len() as f64),
        ("connections_reopened", reopened as f64),
        (
            "sessions_reinitialized",
            chaos.ledger.reinitialized() as f64,
        ),
    ] {
        figures.insert(name.to_owned(), value);
    }
    let read = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(read_back(&chaos.wire, &written)));
    match read {
        Ok(lost) => {
            figures.insert("lost_writes".to_owned(), lost as f64);
        }
        Err(e) => eprintln!("erlmcp bench run: the acknowledged writes were not read back: {e}"),
    }
    faults
}

/// When each of `count` faults falls: evenly spread over the measured window, none in its first
/// fifth (the steady band is measured there).
pub(crate) fn schedule(measure_from: Instant, duration: Duration, count: usize) -> Vec<Instant> {
    (0..count)
        .map(|i| {
            let fraction = 0.2 + 0.7 * (i as f64 + 0.5) / count.max(1) as f64;
            measure_from + duration.mul_f64(fraction)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_counts_for_one_fault_and_the_reopened_connections_go_to_the_fault_they_follow() {
        let t0 = Instant::now();
        let fault = |at_s: f64, reopened_before| Injected {
            name: "connections".into(),
            at: t0 + Duration::from_secs_f64(at_s),
            back_after: Some(Duration::from_millis(10)),
            error: None,
            lost_writes: Some(0),
            reopened_before,
        };
        let step = |t_s: f64, errors, p99_us| TimelineStep {
            t_s,
            calls_per_sec: 100.0,
            errors,
            p50_us: p99_us / 2.0,
            p99_us,
        };
        // Steady before 1.0; the first fault at 1.02 costs 2 errors and a slow step; the second,
        // at 1.45, falls inside the step ending at 1.5, whose 3 errors are its own.
        let timeline = [
            step(0.5, 0, 100.0),
            step(1.0, 0, 100.0),
            step(1.1, 2, 5_000.0),
            step(1.2, 0, 105.0),
            step(1.5, 3, 100.0),
            step(1.6, 0, 100.0),
        ];
        let faults = assess(&[fault(1.02, 0), fault(1.45, 3)], &timeline, t0, 7);
        assert_eq!(faults[0].failed, 2);
        assert_eq!(faults[1].failed, 3);
        assert_eq!((faults[0].reopened, faults[1].reopened), (3, 4));
        let recovered = faults[0].recovered_us.unwrap();
        assert!((recovered - 180_000.0).abs() < 1.0, "{recovered}");
        assert_eq!(faults[0].lost_writes, Some(0));
    }
}
