//! Owns the commands of the remote shell: each takes the words of one command line and answers
//! with text for people and JSON for scripts (`--json`), or — `top`, `trace` — with a stream of
//! answers. An unknown command or a bad argument is a failed answer naming the problem; nothing
//! here closes the connection.

use crate::admin::AdminContext;
use crate::config::LogLevel;
use crate::metrics::collector::{Sample, rss_bytes, status_bytes};
use crate::session::SESSION_SUP;
use crate::tree_names::ROOT_SUP;
use erlmcp_supervisors::{ChildSnapshot, SupervisorRef, SupervisorSnapshot};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Success.
    pub ok: bool,
    /// For people.
    pub text: String,
    /// For scripts.
    pub data: Value,
}

impl Answer {
    fn new(text: String, data: Value) -> Self {
        Self {
            ok: true,
            text,
            data,
        }
    }

    /// A failed answer.
    pub fn failed(message: impl Into<String>) -> Self {
        let text = message.into();
        Self {
            ok: false,
            data: json!({ "error": text }),
            text,
        }
    }
}

/// What a command produces.
pub enum Outcome {
    /// One answer.
    Done(Answer),
    /// Answers until the stream ends or the peer cancels.
    Stream(BoxStream<'static, Answer>),
}

/// Every command: its usage and what it does (also the shell's completion list).
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "this list"),
    (
        "tree",
        "the supervision tree: strategies, children, states, restarts, last exits",
    ),
    (
        "ps",
        "every actor of the tree and every session, with restarts and requests handled",
    ),
    (
        "info NAME",
        "one actor (child id, registered name or actor id) or session (s12)",
    ),
    (
        "restart CHILD",
        "terminate a child and start it again through its supervisor",
    ),
    ("kill NAME", "kill an actor, to watch its supervisor act"),
    (
        "sessions",
        "MCP sessions: awake or hibernating, revision, client, requests, in flight, subscriptions",
    ),
    (
        "connections",
        "open connections by transport; accepted and refused",
    ),
    ("tools", "the tools served"),
    ("resources", "the resources and resource templates served"),
    ("prompts", "the prompts served"),
    (
        "plugins [list]",
        "loaded plugins, versions, rollback history, canaries",
    ),
    (
        "plugins load PATH [--canary PERMILLE]",
        "load (or canary) a plugin .so",
    ),
    (
        "plugins rollback NAME",
        "restore the previous version of a plugin",
    ),
    (
        "plugins promote NAME",
        "make a plugin's canary its current version",
    ),
    (
        "metrics",
        "per-method requests, errors and latency percentiles",
    ),
    ("memory", "resident memory and what each subsystem holds"),
    (
        "config get [KEY]",
        "the effective configuration, or one key (dotted: http.addr)",
    ),
    ("config set KEY VALUE", "change a run-time key (log_level)"),
    ("alerts", "alerts firing now and recent alert changes"),
    (
        "trace FILTER [N]",
        "stream log events containing FILTER (a session id, an actor name, or *)",
    ),
    (
        "top [N]",
        "a live view refreshed every metrics interval (N frames, or until cancelled)",
    ),
];

fn failed<T>(message: impl Into<String>) -> Result<T, String> {
    Err(message.into())
}

/// Runs one command line.
pub async fn run(ctx: &Arc<AdminContext>, line: &str) -> Outcome {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&command, args)) = words.split_first() else {
        return Outcome::Done(Answer::failed("empty command: try `help`"));
    };
    let answer = match command {
        "help" => Ok(help()),
        "tree" => tree().await,
        "ps" => ps().await,
        "info" => info(args).await,
        "restart" => restart(args).await,
        "kill" => kill(args).await,
        "sessions" => sessions().await,
        "connections" => Ok(connections(ctx)),
        "tools" | "resources" | "prompts" => Ok(catalog(ctx, command)),
        "plugins" => plugins(ctx, args).await,
        "metrics" => Ok(metrics(ctx)),
        "memory" => memory(ctx).await,
        "config" => config(ctx, args),
        "alerts" => Ok(alerts(ctx)),
        "trace" => return trace(args),
        "top" => return top(ctx, args),
        other => failed(format!("unknown command `{other}`: try `help`")),
    };
    Outcome::Done(answer.unwrap_or_else(Answer::failed))
}

fn help() -> Answer {
    let mut text = String::from("commands:\n");
    for (usage, what) in COMMANDS {
        let _ = writeln!(text, "  {usage:<40} {what}");
    }
    let data = COMMANDS
        .iter()
        .map(|(usage, what)| json!({"usage": usage, "description": what}))
        .collect();
    Answer::new(text, Value::Array(data))
}

async fn root_snapshot() -> Result<SupervisorSnapshot, String> {
    let root = SupervisorRef::whereis(ROOT_SUP).ok_or("the tree is not running")?;
    root.snapshot().await.map_err(|e| e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn tree() -> Result<Answer, String> {
    let snapshot = root_snapshot().await?;
    let hibernating = crate::session::hibernating_count();
    let text = with_hibernating_sessions(snapshot.render(), hibernating);
    let mut data = to_json(&snapshot);
    if let Value::Object(fields) = &mut data {
        fields.insert("hibernating_sessions".to_owned(), json!(hibernating));
    }
    Ok(Answer::new(text, data))
}

/// The rendered tree with a line under `erlmcp_session_sup` counting the sessions that have no
/// actor there (hibernating), so the tree does not look empty of sessions that are served.
fn with_hibernating_sessions(rendered: String, hibernating: usize) -> String {
    if hibernating == 0 {
        return rendered;
    }
    let mut out = String::with_capacity(rendered.len() + 96);
    for line in rendered.lines() {
        out.push_str(line);
        out.push('\n');
        let body = line.trim_start();
        if body.starts_with(SESSION_SUP) && body[SESSION_SUP.len()..].starts_with(" (") {
            let indent = &line[..line.len() - body.len()];
            let _ = writeln!(
                out,
                "{indent}  + {hibernating} sessions hibernating (no actor until they hold something; `sessions` lists them)"
            );
        }
    }
    out
}

/// Every child with the name of its supervisor, depth first.
fn walk<'a>(sup: &'a SupervisorSnapshot, out: &mut Vec<(&'a str, &'a ChildSnapshot)>) {
    for child in &sup.children {
        out.push((sup.name.as_str(), child));
        if let Some(inner) = &child.supervisor {
            walk(inner, out);
        }
    }
}

/// The child named `name` (spec id, actor id, or registered name such as
/// `erlmcp_plugin:counter`) and its supervisor's name.
fn find<'a>(root: &'a SupervisorSnapshot, name: &str) -> Option<(&'a str, &'a ChildSnapshot)> {
    let mut all = Vec::new();
    walk(root, &mut all);
    let registered = ractor::registry::where_is(name).map(|cell| cell.get_id().to_string());
    all.into_iter().find(|(_, c)| {
        c.id == name
            || c.actor_id.as_deref() == Some(name)
            || (registered.is_some() && c.actor_id == registered)
    })
}

async fn session_infos() -> Vec<crate::session::SessionInfo> {
    let Some(sup) = SupervisorRef::whereis(SESSION_SUP) else {
        return Vec::new();
    };
    let mut infos = Vec::new();
    for child in sup.which_children().await.unwrap_or_default() {
        if let Some(cell) = child.actor
            && let Ok(info) = crate::session::describe(cell).await
        {
            infos.push(info);
        }
    }
    // A session caught between its actor and the table shows once.
    for info in crate::session::hibernating_sessions() {
        if !infos.iter().any(|awake| awake.id == info.id) {
            infos.push(info);
        }
    }
    infos
}

async fn ps() -> Result<Answer, String> {
    let root = root_snapshot().await?;
    let mut all = Vec::new();
    walk(&root, &mut all);
    let mut text = format!(
        "{:<34} {:<10} {:<10} {:<10} {:>8} {:>10}  SUPERVISOR\n",
        "NAME", "KIND", "STATE", "ACTOR", "RESTARTS", "UPTIME"
    );
    let _ = writeln!(
        text,
        "{:<34} {:<10} {:<10} {:<10} {:>8} {:>10}  -",
        root.name, "supervisor", "running", root.actor_id, root.restarts_total, "-"
    );
    let mut rows = vec![
        json!({"name": root.name, "kind": "supervisor", "state": "running",
                               "actor": root.actor_id, "restarts": root.restarts_total}),
    ];
    for (parent, child) in &all {
        let kind = format!("{:?}", child.kind).to_lowercase();
        let state = format!("{:?}", child.state).to_lowercase();
        let actor = child.actor_id.as_deref().unwrap_or("-");
        let uptime = child.uptime_ms.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let _ = writeln!(
            text,
            "{:<34} {kind:<10} {state:<10} {actor:<10} {:>8} {uptime:>10}  {parent}",
            child.id, child.restarts
        );
        rows.push(
            json!({"name": child.id, "kind": kind, "state": state, "actor": actor,
                         "restarts": child.restarts, "uptime_ms": child.uptime_ms,
                         "supervisor": parent}),
        );
    }
    let sessions = session_infos().await;
    if !sessions.is_empty() {
        let _ = writeln!(
            text,
            "\n{:<10} {:>10} {:>10}",
            "SESSION", "REQUESTS", "IN FLIGHT"
        );
        for s in &sessions {
            let _ = writeln!(text, "{:<10} {:>10} {:>10}", s.id, s.requests, s.in_flight);
        }
    }
    text.push_str("\n(mailbox lengths and messages per actor: not available from ractor 0.16; sessions count their requests, IN FLIGHT their unfinished ones)\n");
    Ok(Answer::new(
        text,
        json!({"actors": rows, "sessions": to_json(&sessions)}),
    ))
}

fn one_arg<'a>(args: &[&'a str], usage: &str) -> Result<&'a str, String> {
    match args {
        [one] => Ok(one),
        _ => failed(format!("usage: {usage}")),
    }
}

async fn info(args: &[&str]) -> Result<Answer, String> {
    let name = one_arg(args, "info NAME")?;
    let root = root_snapshot().await?;
    if let Some((parent, child)) = find(&root, name) {
        let mut data = to_json(child);
        data["supervisor"] = json!(parent);
        let text = serde_json::to_string_pretty(&data).unwrap_or_default();
        return Ok(Answer::new(text, data));
    }
    if let Some(session) = session_infos().await.into_iter().find(|s| s.id == name) {
        let data = to_json(&session);
        return Ok(Answer::new(
            serde_json::to_string_pretty(&data).unwrap_or_default(),
            data,
        ));
    }
    failed(format!(
        "no actor or session named `{name}` (see `ps` and `sessions`)"
    ))
}

async fn restart(args: &[&str]) -> Result<Answer, String> {
    let name = one_arg(args, "restart CHILD")?;
    let root = root_snapshot().await?;
    let (parent, child) = find(&root, name).ok_or(format!("no child named `{name}` (see `ps`)"))?;
    let id = child.id.clone();
    let sup = SupervisorRef::whereis(parent)
        .ok_or(format!("its supervisor `{parent}` is not running"))?;
    sup.terminate_child(id.as_str())
        .await
        .map_err(|e| format!("cannot terminate `{id}`: {e}"))?;
    sup.restart_child(&id)
        .await
        .map_err(|e| format!("terminated `{id}` but cannot restart it: {e}"))?;
    tracing::info!(child = %id, supervisor = %parent, "restarted from the remote shell");
    Ok(Answer::new(
        format!("restarted {id} under {parent}"),
        json!({"restarted": id, "supervisor": parent}),
    ))
}

async fn kill(args: &[&str]) -> Result<Answer, String> {
    let name = one_arg(args, "kill NAME")?;
    let root = root_snapshot().await?;
    let (parent, child) = find(&root, name).ok_or(format!("no actor named `{name}` (see `ps`)"))?;
    let sup = SupervisorRef::whereis(parent)
        .ok_or(format!("its supervisor `{parent}` is not running"))?;
    let cell = sup
        .which_children()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|c| c.id == child.id)
        .and_then(|c| c.actor)
        .ok_or(format!("`{name}` is not running"))?;
    tracing::warn!(actor = %child.id, supervisor = %parent, "killed from the remote shell");
    cell.kill();
    Ok(Answer::new(
        format!(
            "killed {} (actor {}); {parent} restarts it as its restart type ({:?}) says",
            child.id,
            cell.get_id(),
            child.restart
        ),
        json!({"killed": child.id, "supervisor": parent}),
    ))
}

async fn sessions() -> Result<Answer, String> {
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

fn connections(ctx: &AdminContext) -> Answer {
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

fn catalog(ctx: &AdminContext, kind: &str) -> Answer {
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

async fn plugins(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    let host = &ctx.plugins;
    let describe = |info: &crate::plugin_host::PluginInfo| {
        let mut line = format!(
            "{} {} tools [{}]",
            info.name,
            info.version,
            info.tools.join(", ")
        );
        if !info.history.is_empty() {
            let _ = write!(line, " history [{}]", info.history.join(", "));
        }
        if let Some(canary) = &info.canary {
            let _ = write!(line, " canary {} at {}‰", canary.version, canary.permille);
        }
        line
    };
    match args {
        [] | ["list"] => {
            let list = host.list();
            let mut text: String = list.iter().map(|i| describe(i) + "\n").collect();
            let _ = write!(text, "{} plugins", list.len());
            Ok(Answer::new(text, to_json(&list)))
        }
        ["load", path, rest @ ..] => {
            let canary = match rest {
                [] => None,
                ["--canary", permille] => Some(
                    permille
                        .parse::<u64>()
                        .ok()
                        .filter(|p| (1..=1000).contains(p))
                        .ok_or("--canary takes a per-mille share from 1 to 1000")?,
                ),
                _ => return failed("usage: plugins load PATH [--canary PERMILLE]"),
            };
            let path = std::path::Path::new(path);
            let loaded = match canary {
                Some(permille) => host.load_canary(path, Value::Null, permille).await,
                None => host.load(path, Value::Null).await,
            }
            .map_err(|e| format!("load refused: {e}"))?;
            Ok(Answer::new(
                format!("loaded {}", describe(&loaded)),
                to_json(&loaded),
            ))
        }
        ["rollback", name] => {
            let info = host.rollback(name).await.map_err(|e| e.to_string())?;
            Ok(Answer::new(
                format!("rolled back: {}", describe(&info)),
                to_json(&info),
            ))
        }
        ["promote", name] => {
            let info = host.promote(name).await.map_err(|e| e.to_string())?;
            Ok(Answer::new(
                format!("promoted: {}", describe(&info)),
                to_json(&info),
            ))
        }
        _ => failed(
            "usage: plugins [list] | plugins load PATH [--canary PERMILLE] | plugins rollback NAME | plugins promote NAME",
        ),
    }
}

fn metrics(ctx: &AdminContext) -> Answer {
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

async fn memory(ctx: &AdminContext) -> Result<Answer, String> {
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

fn config(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    match args {
        ["get"] => {
            let text = ctx.config.to_toml();
            Ok(Answer::new(text, to_json(&ctx.config)))
        }
        ["get", key] => {
            let mut value = to_json(&ctx.config);
            for part in key.split('.') {
                value = value
                    .get(part)
                    .cloned()
                    .ok_or(format!("no configuration key `{key}`"))?;
            }
            if *key == "log_level"
                && let Some(current) = crate::logging::current_level()
            {
                value = json!(current.as_str());
            }
            Ok(Answer::new(format!("{key} = {value}"), value))
        }
        ["set", "log_level", level] => {
            let parsed: LogLevel = level.parse()?;
            crate::logging::set_level(parsed)?;
            tracing::info!(
                level = parsed.as_str(),
                "log level changed from the remote shell"
            );
            Ok(Answer::new(
                format!("log_level = {}", parsed.as_str()),
                json!({"log_level": parsed.as_str()}),
            ))
        }
        ["set", key, _] => failed(format!(
            "`{key}` cannot change while the node runs (restart it with --config); run-time keys: log_level"
        )),
        _ => failed("usage: config get [KEY] | config set KEY VALUE"),
    }
}

fn alerts(ctx: &AdminContext) -> Answer {
    let firing = ctx
        .hub
        .latest()
        .map(|s| s.alerts.clone())
        .unwrap_or_default();
    let recent = ctx.hub.recent_alerts();
    let mut text = if firing.is_empty() {
        "firing: none\n".to_owned()
    } else {
        format!("firing: {}\n", firing.join(", "))
    };
    for event in &recent {
        let _ = writeln!(
            text,
            "{} {:<12} {:<8} value {:.2} threshold {:.2}",
            event.at_ms, event.alert, event.state, event.value, event.threshold
        );
    }
    Answer::new(text, json!({"firing": firing, "recent": to_json(&recent)}))
}

fn count_arg(arg: Option<&&str>) -> Result<Option<usize>, String> {
    arg.map(|n| {
        n.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}` is not a positive count"))
    })
    .transpose()
}

fn trace(args: &[&str]) -> Outcome {
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
fn tokio_stream_of(rx: tokio::sync::broadcast::Receiver<String>) -> BoxStream<'static, String> {
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

fn top(ctx: &Arc<AdminContext>, args: &[&str]) -> Outcome {
    let limit = match count_arg(args.first()) {
        Ok(limit) if args.len() <= 1 => limit,
        Ok(_) => return Outcome::Done(Answer::failed("usage: top [N]")),
        Err(e) => return Outcome::Done(Answer::failed(e)),
    };
    let samples = ctx.hub.subscribe();
    let node = ctx.node.clone();
    let frames = futures::stream::unfold(
        (samples, HashMap::<String, u64>::new()),
        move |(mut samples, mut previous)| {
            let node = node.clone();
            async move {
                let sample = loop {
                    match samples.recv().await {
                        Ok(sample) => break sample,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                };
                let sessions = session_infos().await;
                let answer = render_top(&node, &sample, &sessions, &previous);
                previous = sessions.into_iter().map(|s| (s.id, s.requests)).collect();
                Some((answer, (samples, previous)))
            }
        },
    );
    Outcome::Stream(match limit {
        Some(n) => frames.take(n).boxed(),
        None => frames.boxed(),
    })
}

fn render_top(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_counts_hibernating_sessions_under_the_session_supervisor() {
        let rendered = "erlmcp_sup (one_for_one)\n  erlmcp_core_sup (one_for_one)\n    erlmcp_session_sup (simple_one_for_one)\n      session [Worker] Running\n    erlmcp_session_sup_other (x)\n";
        let text = with_hibernating_sessions(rendered.to_owned(), 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "    erlmcp_session_sup (simple_one_for_one)");
        assert!(
            lines[3].starts_with("      + 3 sessions hibernating"),
            "{text}"
        );
        assert_eq!(
            lines.len(),
            6,
            "one line added, under that supervisor only: {text}"
        );
        assert_eq!(with_hibernating_sessions(rendered.to_owned(), 0), rendered);
    }
}
