//! Owns the shell's commands that watch the node: `sessions`, `connections`, the catalog
//! (`tools`, `resources`, `prompts`), `metrics`, `memory`, `queue` (the admission point), and the
//! streams `trace` and `top`.

use super::tree::session_infos;
use super::{Answer, Outcome, to_json};
use crate::admin::AdminContext;
use crate::metrics::collector::{Sample, rss_bytes, status_bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

pub(super) async fn sessions() -> Result<Answer, String> {
    let infos = session_infos().await;
    let mut text = format!(
        "{:<8} {:<11} {:<12} {:<20} {:>9} {:>9} {:>5} {:>7}\n",
        "ID", "STATE", "REVISION", "CLIENT", "REQUESTS", "IN FLIGHT", "SUBS", "LISTENS"
    );
    for s in &infos {
        let _ = writeln!(
            text,
            "{:<8} {:<11} {:<12} {:<20} {:>9} {:>9} {:>5} {:>7}",
            s.id,
            if s.hibernating {
                "hibernating"
            } else {
                "awake"
            },
            s.revision.as_deref().unwrap_or("-"),
            s.client.as_deref().unwrap_or("-"),
            s.requests,
            s.in_flight,
            s.subscriptions.len(),
            s.listens
        );
    }
    let _ = write!(text, "{} sessions", infos.len());
    Ok(Answer::new(text, to_json(&infos)))
}

pub(super) fn connections(ctx: &AdminContext) -> Answer {
    use std::sync::atomic::Ordering::Relaxed;
    let by_transport = ctx.hub.metrics.connections();
    let mut text = String::new();
    for (transport, n) in &by_transport {
        let _ = writeln!(text, "{:<10} {n}", transport.as_str());
    }
    let (active, accepted, refused) = (
        ctx.stats.active.load(Relaxed),
        ctx.stats.accepted.load(Relaxed),
        ctx.stats.refused.load(Relaxed),
    );
    let _ = write!(
        text,
        "sockets open {active}, accepted {accepted}, refused {refused} (max_connections {})",
        ctx.config.max_connections
    );
    let map: serde_json::Map<String, Value> = by_transport
        .iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    Answer::new(
        text,
        json!({"by_transport": map, "sockets_open": active, "accepted": accepted, "refused": refused}),
    )
}

pub(super) fn queue(ctx: &AdminContext) -> Answer {
    let stats = ctx.hub.admission.stats();
    let mut text = format!(
        "capacity {}, shed above {}, in progress {}, peak {}, admitted {}, shed {}\n",
        stats.capacity,
        stats.shed_at,
        stats.in_progress,
        stats.peak,
        stats.admitted,
        stats.shed_total
    );
    for (method, limit, now) in &stats.method_limits {
        let _ = writeln!(text, "limit {method:<24} {now}/{limit}");
    }
    if stats.memory_limit == 0 {
        text.push_str("memory guard off (memory_limit = 0)\n");
    } else {
        let _ = writeln!(
            text,
            "memory guard {}: rss {} MiB, limit {} MiB, clears below {} MiB, tripped {} times",
            if stats.memory_over { "SHEDDING" } else { "ok" },
            stats.memory_rss / 1_048_576,
            stats.memory_limit / 1_048_576,
            stats.memory_clear_below / 1_048_576,
            stats.memory_trips
        );
    }
    if stats.shed.is_empty() {
        text.push_str("nothing shed");
    } else {
        let _ = write!(
            text,
            "{:<26} {:<10} {:<13} {:>9}",
            "SHED METHOD", "TRANSPORT", "REASON", "COUNT"
        );
        for shed in &stats.shed {
            let _ = write!(
                text,
                "\n{:<26} {:<10} {:<13} {:>9}",
                shed.method, shed.transport, shed.reason, shed.count
            );
        }
    }
    Answer::new(text, to_json(&stats))
}

/// `resources updated URI`: what `RegistryHandle::resource_updated` does (cached reads of URI
/// dropped, subscribed sessions told, on every node of a cluster).
pub(super) fn resource_updated(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    let [_, uri] = args else {
        return Err("usage: resources updated URI".to_owned());
    };
    ctx.registry.resource_updated(uri);
    Ok(Answer::new(
        format!("told the sessions subscribed to {uri}"),
        serde_json::json!({"updated": uri}),
    ))
}

pub(super) fn catalog(ctx: &AdminContext, kind: &str) -> Answer {
    let snapshot = ctx.registry.snapshot();
    let rows: Vec<(String, String)> = match kind {
        "tools" => snapshot
            .tools
            .values()
            .map(|e| {
                (
                    e.tool.name.clone(),
                    e.tool.description.clone().unwrap_or_default(),
                )
            })
            .collect(),
        "prompts" => snapshot
            .prompts
            .values()
            .map(|e| {
                (
                    e.prompt.name.clone(),
                    e.prompt.description.clone().unwrap_or_default(),
                )
            })
            .collect(),
        _ => snapshot
            .resources
            .values()
            .map(|e| (e.resource.uri.clone(), e.resource.name.clone()))
            .chain(snapshot.templates.values().map(|e| {
                (
                    e.template.uri_template.clone(),
                    format!("{} (template)", e.template.name),
                )
            }))
            .collect(),
    };
    let mut text = String::new();
    for (name, what) in &rows {
        let _ = writeln!(text, "{name:<40} {what}");
    }
    let _ = write!(
        text,
        "{} {kind} (registry version {})",
        rows.len(),
        snapshot.version
    );
    let data = rows
        .iter()
        .map(|(name, what)| json!({"name": name, "description": what}))
        .collect();
    Answer::new(text, Value::Array(data))
}

pub(super) fn metrics(ctx: &AdminContext) -> Answer {
    let counts = ctx.hub.metrics.counts();
    let totals = ctx.hub.totals();
    let latest = ctx.hub.latest();
    let mut text = format!(
        "{:<26} {:>10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}\n",
        "METHOD", "REQUESTS", "ERRORS", "REQ/S", "P50 µs", "P95 µs", "P99 µs", "MAX µs"
    );
    let mut rows = Vec::new();
    for ((method, requests, errors), (_, latency, _)) in counts.iter().zip(&totals) {
        if *requests == 0 {
            continue;
        }
        let rate = latest
            .as_ref()
            .and_then(|s| s.methods.iter().find(|m| m.method == *method))
            .map_or(0.0, |m| m.rate);
        let _ = writeln!(
            text,
            "{method:<26} {requests:>10} {errors:>8} {rate:>9.1} {:>8} {:>8} {:>8} {:>8}",
            latency.p50, latency.p95, latency.p99, latency.max
        );
        rows.push(
            json!({"method": method, "requests": requests, "errors": errors,
                         "rate": rate, "latency_us": to_json(latency)}),
        );
    }
    text.push_str(
        "(latency since start, as sampled by erlmcp_metrics; see `top` for the last interval)",
    );
    Answer::new(
        text,
        json!({"methods": rows, "latest": latest.as_deref().map(to_json)}),
    )
}

pub(super) async fn memory(ctx: &AdminContext) -> Result<Answer, String> {
    let rss = rss_bytes();
    let peak = status_bytes("VmHWM:");
    let sessions = session_infos().await;
    let snapshot = ctx.registry.snapshot();
    let samples = ctx.hub.history(usize::MAX).len();
    let sample_bytes = samples * std::mem::size_of::<Sample>();
    let plugins = ctx.plugins.list();
    let data = json!({
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
        "sessions": sessions.len(),
        "requests_in_flight": sessions.iter().map(|s| s.in_flight).sum::<usize>(),
        "registry": {"tools": snapshot.tools.len(), "resources": snapshot.resources.len(),
                     "templates": snapshot.templates.len(), "prompts": snapshot.prompts.len()},
        "metrics_history": {"samples": samples, "approx_bytes": sample_bytes},
        "plugins": plugins.len(),
    });
    let text = format!(
        "rss {:.1} MiB (peak {:.1} MiB)\n\
         sessions          {} ({} requests in flight)\n\
         registry          {} tools, {} resources, {} templates, {} prompts\n\
         metrics history   {} samples (~{} KiB)\n\
         plugins           {} loaded\n\
         (bytes per subsystem beyond these counts: not measured — no per-subsystem allocator accounting)",
        rss as f64 / 1_048_576.0,
        peak as f64 / 1_048_576.0,
        sessions.len(),
        data["requests_in_flight"],
        snapshot.tools.len(),
        snapshot.resources.len(),
        snapshot.templates.len(),
        snapshot.prompts.len(),
        samples,
        sample_bytes / 1024,
        plugins.len()
    );
    Ok(Answer::new(text, data))
}

pub(super) fn count_arg(arg: Option<&&str>) -> Result<Option<usize>, String> {
    arg.map(|n| {
        n.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}` is not a positive count"))
    })
    .transpose()
}

pub(super) fn trace(args: &[&str]) -> Outcome {
    let (filter, limit) = match args {
        [filter] => (filter.to_string(), None),
        [filter, n] => match count_arg(Some(n)) {
            Ok(limit) => (filter.to_string(), limit),
            Err(e) => return Outcome::Done(Answer::failed(e)),
        },
        _ => {
            return Outcome::Done(Answer::failed(
                "usage: trace FILTER [N]  (FILTER: a session id, an actor name, or *)",
            ));
        }
    };
    let Some(tap) = crate::logging::tap() else {
        return Outcome::Done(Answer::failed(
            "this process's logging was not set up by erlmcp: nothing to trace",
        ));
    };
    let lines = tokio_stream_of(tap).filter(move |line| {
        let keep = filter == "*" || line.contains(filter.as_str());
        async move { keep }
    });
    let answers = lines.map(|line| Answer::new(line.clone(), json!({ "line": line })));
    Outcome::Stream(match limit {
        Some(n) => answers.take(n).boxed(),
        None => answers.boxed(),
    })
}

/// The lines of a broadcast receiver as a stream (lagged lines are skipped, with a note).
pub(super) fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<String>,
) -> BoxStream<'static, String> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(line) => Some((line, rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Some((format!("… {n} events skipped (too fast to stream)"), rx))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// Which view `top` gives.
enum TopView {
    /// This node, refreshed every metrics interval.
    Live,
    /// This node's latest sample, as one answer (what `top --node`/`--all` ask members for).
    Once,
    /// Another member's view, asked for every interval of this node.
    Node(String),
    /// One row per member that is up, and the cluster's totals.
    All,
}

const TOP_USAGE: &str = "usage: top [N] [--once | --node NAME | --all]";

fn top_args(args: &[&str]) -> Result<(TopView, Option<usize>), String> {
    let mut view = TopView::Live;
    let mut limit = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let next = match *word {
            "--once" => TopView::Once,
            "--all" => TopView::All,
            "--node" => TopView::Node(words.next().ok_or(TOP_USAGE)?.to_string()),
            count if limit.is_none() && !count.starts_with("--") => {
                limit = count_arg(Some(&count))?;
                continue;
            }
            _ => return Err(TOP_USAGE.to_owned()),
        };
        if !matches!(view, TopView::Live) {
            return Err(TOP_USAGE.to_owned());
        }
        view = next;
    }
    Ok((view, limit))
}

pub(super) async fn top(ctx: &Arc<AdminContext>, args: &[&str]) -> Outcome {
    let (view, limit) = match top_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return Outcome::Done(Answer::failed(e)),
    };
    let samples = ctx.hub.subscribe();
    let frames = match view {
        TopView::Once => {
            let Some(sample) = ctx.hub.latest() else {
                return Outcome::Done(Answer::failed(
                    "no metrics sample yet (the first comes one metrics interval after start)",
                ));
            };
            let sessions = session_infos().await;
            return Outcome::Done(render_top(&ctx.node, &sample, &sessions, &HashMap::new()));
        }
        TopView::Live => local_frames(ctx, samples),
        TopView::Node(node) => super::cluster::top_of(ctx, samples, node),
        TopView::All => super::cluster::top_of_all(ctx, samples),
    };
    Outcome::Stream(match limit {
        Some(n) => frames.take(n).boxed(),
        None => frames,
    })
}

/// Every sample of this node, rendered.
fn local_frames(
    ctx: &Arc<AdminContext>,
    samples: tokio::sync::broadcast::Receiver<Arc<Sample>>,
) -> BoxStream<'static, Answer> {
    let node = ctx.node.clone();
    futures::stream::unfold(
        (samples, HashMap::<String, u64>::new()),
        move |(mut samples, mut previous)| {
            let node = node.clone();
            async move {
                let sample = next_sample(&mut samples).await?;
                let sessions = session_infos().await;
                let answer = render_top(&node, &sample, &sessions, &previous);
                previous = sessions.into_iter().map(|s| (s.id, s.requests)).collect();
                Some((answer, (samples, previous)))
            }
        },
    )
    .boxed()
}

/// The next sample (a lagging receiver skips to the newest), `None` once the hub is gone.
pub(super) async fn next_sample(
    samples: &mut tokio::sync::broadcast::Receiver<Arc<Sample>>,
) -> Option<Arc<Sample>> {
    loop {
        match samples.recv().await {
            Ok(sample) => return Some(sample),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        }
    }
}

pub(super) fn render_top(
    node: &str,
    sample: &Sample,
    sessions: &[crate::session::SessionInfo],
    previous: &HashMap<String, u64>,
) -> Answer {
    let mut text = format!(
        "erlmcp {node}  up {:.0}s  {:.0} req/s  {:.1} err/s  p50 {} µs  p99 {} µs  cpu {:.0}%  rss {:.1} MiB  sessions {}\n",
        sample.uptime_s,
        sample.requests_per_sec,
        sample.errors_per_sec,
        sample.latency.p50,
        sample.latency.p99,
        sample.cpu_percent,
        sample.rss_bytes as f64 / 1_048_576.0,
        sample.sessions
    );
    let _ = writeln!(
        text,
        "\n{:<26} {:>9} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "METHOD", "REQ/S", "P50 µs", "P99 µs", "MAX µs", "TOTAL", "ERRORS"
    );
    let mut methods: Vec<_> = sample.methods.iter().collect();
    methods.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    for m in methods.iter().take(10) {
        let _ = writeln!(
            text,
            "{:<26} {:>9.1} {:>8} {:>8} {:>8} {:>10} {:>7}",
            m.method, m.rate, m.interval.p50, m.interval.p99, m.interval.max, m.requests, m.errors
        );
    }
    let mut busiest: Vec<(&crate::session::SessionInfo, u64)> = sessions
        .iter()
        .map(|s| {
            (
                s,
                s.requests
                    .saturating_sub(previous.get(&s.id).copied().unwrap_or(0)),
            )
        })
        .collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.in_flight.cmp(&a.0.in_flight)));
    let _ = writeln!(
        text,
        "\n{:<10} {:>12} {:>10} {:>10}  CLIENT",
        "SESSION", "REQ/INTERVAL", "TOTAL", "IN FLIGHT"
    );
    for (s, delta) in busiest.iter().take(10) {
        let _ = writeln!(
            text,
            "{:<10} {:>12} {:>10} {:>10}  {}",
            s.id,
            delta,
            s.requests,
            s.in_flight,
            s.client.as_deref().unwrap_or("-")
        );
    }
    let connections: Vec<String> = sample
        .connections
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    let restarts: u64 = sample.restarts.iter().map(|r| r.restarts).sum();
    let _ = write!(
        text,
        "\nconnections {}  restarts {restarts}  alerts {}",
        connections.join(" "),
        if sample.alerts.is_empty() {
            "none".to_owned()
        } else {
            sample.alerts.join(", ")
        }
    );
    Answer::new(text, to_json(sample))
}
