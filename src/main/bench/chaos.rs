//! Owns `erlmcp bench run --profile chaos`: steady open-loop load over TCP on a node the bench
//! starts, while actors of its tree are killed one after another through the node's own admin
//! channel (`kill NAME`, as `erlmcp remote` does). For each fault it reports when the component
//! was back (a new actor running under the same name), when the load was back (the first step
//! after that with no error and a p99 within 10% of the steady band before the first fault) and
//! how many requests failed until the next fault. Besides actors, `--faults` takes stresses the
//! node applies to itself through its `fault` command (src/fault.rs): `latency=MS` (added to
//! every `tools/call` for a second), `cpu=MS` (every core spun for MS), `memory=MIB` (held for a
//! second); their "component back" is when the node says the stress ended. The open-loop reader holds every request until
//! it is answered: one never answered, or an answer to no request (twice, or stray), is an error.

use super::node::ChildNode;
use super::results::{FaultRecord, TimelineStep};
use erlmcp::remote::{AdminClient, Target};
use std::time::{Duration, Instant};

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

/// A fault as the injector saw it: the actor, when it was killed, when its successor ran.
pub(crate) struct Injected {
    name: String,
    at: Instant,
    back_after: Option<Duration>,
    error: Option<String>,
}

/// The admin connection to the child: its name, socket directory and cookie.
pub(crate) fn admin_target(node: &ChildNode, cookie: &str) -> Target {
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

/// Kills each of `faults` at its time in `at` (one after the other), and waits for its
/// successor; runs on the calling thread.
pub(crate) fn inject(target: &Target, faults: &[String], at: &[Instant]) -> Vec<Injected> {
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
            let fault = match name.split_once('=') {
                Some((kind, size)) => stress(&mut client, kind, size, next).await,
                None => kill(&mut client, name, next).await,
            };
            injected.push(Injected {
                name: name.clone(),
                ..fault
            });
        }
        injected
    })
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
    Injected {
        name: name.to_owned(),
        at: killed_at,
        back_after,
        error,
    }
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
            return Injected {
                name: String::new(),
                at,
                back_after: None,
                error: Some(format!(
                    "unknown fault kind `{other}` (latency=MS, cpu=MS, memory=MIB, or an actor name)"
                )),
            };
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
    Injected {
        name: String::new(),
        at,
        back_after,
        error,
    }
}

fn failed_all(faults: &[String], at: &[Instant], why: &str) -> Vec<Injected> {
    faults
        .iter()
        .zip(at)
        .map(|(name, &at)| Injected {
            name: name.clone(),
            at,
            back_after: None,
            error: Some(why.to_owned()),
        })
        .collect()
}

/// What each fault cost, from the run's timeline (steps measured from `measure_from`).
pub(crate) fn assess(
    injected: &[Injected],
    timeline: &[TimelineStep],
    measure_from: Instant,
    step_s: f64,
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
            // Steps that end after the fault and start before the next one.
            let during = timeline
                .iter()
                .filter(|s| s.t_s > from && s.t_s - step_s < until);
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
            }
        })
        .collect()
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
