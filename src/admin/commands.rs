//! Owns the commands of the remote shell: each takes the words of one command line and answers
//! with text for people and JSON for scripts (`--json`), or — `top`, `trace` — with a stream of
//! answers. An unknown command or a bad argument is a failed answer naming the problem; nothing
//! here closes the connection.

mod auth;
mod cache;
pub(crate) mod cluster;
mod config;
mod fault;
mod nodes;
mod observe;
mod plugins;
mod pools;
mod store;
mod tasks;
mod tree;

use crate::admin::AdminContext;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Success.
    pub(crate) ok: bool,
    /// For people.
    pub(crate) text: String,
    /// For scripts.
    pub(crate) data: Value,
}

impl Answer {
    pub(crate) fn new(text: String, data: Value) -> Self {
        Self {
            ok: true,
            text,
            data,
        }
    }

    /// `answer`, marked failed (its text and data kept).
    pub(crate) fn failed_with(answer: Answer) -> Self {
        Self {
            ok: false,
            ..answer
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

/// Commands never run on another member (`on`, `all`, and through another member from the
/// shell): the live views (streams never cross; `top --once` excepted, which answers once) and
/// the cluster commands themselves (no command hops twice).
pub const LOCAL_ONLY: &[&str] = &["top", "trace", "on", "all"];

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
        "plugins [list [--all]]",
        "loaded plugins, versions, rollback history, canaries (--all: every cluster member's)",
    ),
    (
        "plugins load PATH [--canary PERMILLE | --cluster]",
        "load (or canary) a plugin .so; --cluster: on every member in turn, undone on all if one refuses",
    ),
    ("plugins unload NAME", "remove a plugin and its tools"),
    (
        "plugins rollback NAME",
        "restore the previous version of a plugin",
    ),
    (
        "plugins promote NAME",
        "make a plugin's canary its current version",
    ),
    (
        "resources updated URI",
        "tell the sessions subscribed to URI (on every node of a cluster) that it changed",
    ),
    (
        "metrics",
        "per-method requests, errors and latency percentiles",
    ),
    ("memory", "resident memory and what each subsystem holds"),
    (
        "queue",
        "the admission point: capacity, in progress, shed by method/transport/reason, memory guard",
    ),
    (
        "config get [KEY]",
        "the effective configuration, or one key (dotted: http.addr)",
    ),
    ("config set KEY VALUE", "change a run-time key (log_level)"),
    ("alerts", "alerts firing now and recent alert changes"),
    (
        "pools",
        "worker pools: size, busy, idle, overflow, waiting, checkouts, timeouts, worker restarts",
    ),
    (
        "cache",
        "the result cache per tier: entries, bytes, hits, misses, hit ratio, evictions",
    ),
    (
        "cache clear [TIER]",
        "empty one cache tier (l1, l2, l3) or all",
    ),
    (
        "auth [rules|denials|reload]",
        "authorization: resource, keys, token cache, refusals; the rules in force; recent denials; read the rules again from the config file",
    ),
    (
        "store",
        "the state store: entries, bound and changes per table; snapshot, change log, fsync, restore",
    ),
    (
        "tasks",
        "the tasks kept (tasks extension): id, owner, tool, status, age, time to TTL, actor",
    ),
    (
        "nodes",
        "the cluster's members: name, address, state (self, up, down), since when",
    ),
    (
        "fault [latency MS FOR_MS | cpu FOR_MS [THREADS] | memory MIB FOR_MS | clear]",
        "chaos: faults active now; inject one (bounded, ends by itself); end them all",
    ),
    (
        "on NODE COMMAND…",
        "run one command on another member of the cluster (not top or trace)",
    ),
    (
        "all COMMAND…",
        "run one command on every member up, this node first (e.g. all tree, all metrics)",
    ),
    (
        "trace FILTER [N]",
        "stream log events containing FILTER (a session id, an actor name, or *)",
    ),
    (
        "top [N] [--once | --node NAME | --all]",
        "a live view refreshed every metrics interval (N frames, or until cancelled); --node: another member's; --all: one row per member",
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
    if let Some(answer) = across_the_cluster(ctx, command, args).await {
        return Outcome::Done(answer.unwrap_or_else(Answer::failed));
    }
    let answer = match command {
        "help" => Ok(help()),
        "tree" => tree::tree().await,
        "ps" => tree::ps().await,
        "info" => tree::info(args).await,
        "restart" => tree::restart(args).await,
        "kill" => tree::kill(args).await,
        "sessions" => observe::sessions().await,
        "connections" => Ok(observe::connections(ctx)),
        "resources" if args.first() == Some(&"updated") => observe::resource_updated(ctx, args),
        "tools" | "resources" | "prompts" => Ok(observe::catalog(ctx, command)),
        "plugins" => plugins::plugins(ctx, args).await,
        "metrics" => Ok(observe::metrics(ctx)),
        "memory" => observe::memory(ctx).await,
        "queue" => Ok(observe::queue(ctx)),
        "config" => config::config(ctx, args),
        "alerts" => Ok(config::alerts(ctx)),
        "pools" => Ok(pools::pools()),
        "cache" => cache::cache(args),
        "auth" => auth::auth(ctx, args),
        "store" => store::store(args),
        "tasks" => tasks::tasks(args),
        "nodes" => nodes::nodes(args),
        "fault" => fault::fault(args),
        "on" => cluster::on(ctx, args).await,
        "all" => cluster::all(ctx, args).await,
        "trace" => return observe::trace(args),
        "top" => return observe::top(ctx, args).await,
        other => failed(format!("unknown command `{other}`: try `help`")),
    };
    Outcome::Done(answer.unwrap_or_else(Answer::failed))
}

/// The one-answer views that also take `--node NAME` (member NAME's, as `on NAME …`) or `--all`
/// (every member's, as `all …`) at the end of their line.
pub const MEMBER_VIEWS: &[&str] = &[
    "tree",
    "ps",
    "info",
    "sessions",
    "connections",
    "metrics",
    "memory",
    "queue",
    "pools",
    "alerts",
];

/// `VIEW … --node NAME` and `VIEW … --all` for [`MEMBER_VIEWS`]; `None`: a line for this node.
async fn across_the_cluster(
    ctx: &Arc<AdminContext>,
    command: &str,
    args: &[&str],
) -> Option<Result<Answer, String>> {
    if !MEMBER_VIEWS.contains(&command) {
        return None;
    }
    match args {
        [rest @ .., "--all"] => {
            let line: Vec<&str> = std::iter::once(command)
                .chain(rest.iter().copied())
                .collect();
            Some(cluster::all(ctx, &line).await)
        }
        [rest @ .., "--node", node] => {
            let line: Vec<&str> = [*node, command]
                .into_iter()
                .chain(rest.iter().copied())
                .collect();
            Some(cluster::on(ctx, &line).await)
        }
        [.., "--node"] => Some(Err(format!("usage: {command} … --node NAME"))),
        _ => None,
    }
}

fn help() -> Answer {
    let mut text = String::from("commands:\n");
    for (usage, what) in COMMANDS {
        let _ = writeln!(text, "  {usage:<40} {what}");
    }
    let _ = writeln!(
        text,
        "in a cluster, {} also take --node NAME (that member's) or --all (every member's)",
        MEMBER_VIEWS.join(", ")
    );
    let data = COMMANDS
        .iter()
        .map(|(usage, what)| json!({"usage": usage, "description": what}))
        .collect();
    Answer::new(text, Value::Array(data))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
