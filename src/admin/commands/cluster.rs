//! Owns the shell's reach across the cluster (docs/operations.md, the `on` and `all` rows): the actor
//! `erlmcp_cluster_admin` that each clustered node with an admin channel runs under
//! `erlmcp_cluster_sup`, in the process group `erlmcp_admin:<node>`, answering one shell command
//! for another member; and the commands that use it — `on NODE COMMAND…` (one command on one
//! member) and `all COMMAND…` (on every member that is up, this node first); and `top --node NAME`
//! / `top --all`, live views of other members made by asking each for its latest sample
//! (`top --once`) at every interval of this node. A peer reached it by proving the node cookie,
//! the same secret the admin channel asks for; streams (`top`, `trace`) never cross.
//!
//! Requests and answers are JSON text inside ractor_cluster's frames.

use super::observe::next_sample;
use super::{Answer, Outcome};
use crate::admin::AdminContext;
use crate::metrics::collector::Sample;
use futures::StreamExt;
use futures::stream::BoxStream;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// The process group of a node's admin actor: this prefix, then the node's cluster name.
const ADMIN_GROUP: &str = "erlmcp_admin:";

/// What the admin actor is sent: a command line; answers `{"ok", "text", "data"}`.
#[derive(ractor_cluster::RactorClusterMessage)]
pub(crate) enum ClusterAdminMsg {
    #[rpc]
    Run(String, RpcReplyPort<String>),
}

/// The admin actor: runs a member's command here.
pub(crate) struct ClusterAdmin;

impl Actor for ClusterAdmin {
    type Msg = ClusterAdminMsg;
    /// The admin context, and the group joined.
    type State = (Arc<AdminContext>, String);
    /// The admin context, and this node's cluster name.
    type Arguments = (Arc<AdminContext>, String);

    async fn pre_start(
        &self,
        myself: ActorRef<ClusterAdminMsg>,
        (ctx, node): (Arc<AdminContext>, String),
    ) -> Result<Self::State, ActorProcessingErr> {
        let group = format!("{ADMIN_GROUP}{node}");
        ractor::pg::join(group.clone(), vec![myself.get_cell()]);
        Ok((ctx, group))
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ClusterAdminMsg>,
        (_, group): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(group.clone(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ClusterAdminMsg>,
        message: ClusterAdminMsg,
        (ctx, _): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ClusterAdminMsg::Run(line, reply) => {
                // Each on its own task: a slow command holds up no other.
                let ctx = Arc::clone(ctx);
                tokio::spawn(async move {
                    let answer = run_here(&ctx, &line).await;
                    let _ = reply.send(to_text(&answer));
                });
            }
        }
        Ok(())
    }
}

/// The admin actor's child spec under `erlmcp_cluster_sup`, for node `node`.
pub(crate) fn cluster_admin_child(
    ctx: &Arc<AdminContext>,
    node: &str,
) -> erlmcp_supervisors::ChildSpec {
    let (ctx, node) = (Arc::clone(ctx), node.to_owned());
    erlmcp_supervisors::ChildSpec::named_actor(
        crate::tree_names::CLUSTER_ADMIN,
        crate::tree_names::CLUSTER_ADMIN,
        move || (ClusterAdmin, (Arc::clone(&ctx), node.clone())),
    )
}

/// Runs `line` on this node: one answer (live views and the cluster commands themselves are
/// refused: no stream crosses, no command hops twice). Boxed, its type named: `on` and `all`
/// are commands that lead back here.
fn run_here<'a>(
    ctx: &'a Arc<AdminContext>,
    line: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'a>> {
    Box::pin(async move {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let one_sample = first == "top" && words.clone().eq(["--once"]);
        let hops_again = super::MEMBER_VIEWS.contains(&first)
            && words.any(|word| word == "--all" || word == "--node");
        if (super::LOCAL_ONLY.contains(&first) && !one_sample) || hops_again {
            return Answer::failed(format!(
                "`{first}` is not run across the cluster (live views stay local, `top --node`/`--all` excepted; no command hops twice)"
            ));
        }
        match super::run(ctx, line).await {
            Outcome::Done(answer) => answer,
            Outcome::Stream(_) => {
                Answer::failed(format!("`{first}` streams: not run across the cluster"))
            }
        }
    })
}

fn to_text(answer: &Answer) -> String {
    json!({"ok": answer.ok, "text": answer.text, "data": answer.data}).to_string()
}

/// Runs `line` on member `node` (this node directly).
async fn run_on(ctx: &Arc<AdminContext>, node: &str, line: &str) -> Answer {
    let view = match crate::cluster::required() {
        Ok(view) => view,
        Err(why) => return Answer::failed(why),
    };
    if node == view.name() {
        return run_here(ctx, line).await;
    }
    let wait = view.forward_timeout().max(Duration::from_secs(1));
    let line = line.to_owned();
    let asked = crate::cluster::call_member(
        ADMIN_GROUP,
        "admin",
        node,
        |port| ClusterAdminMsg::Run(line, port),
        wait,
    )
    .await;
    match asked {
        Ok(text) => {
            let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let answer = Answer::new(
                reply["text"].as_str().unwrap_or_default().to_owned(),
                reply["data"].clone(),
            );
            if reply["ok"] == Value::Bool(true) {
                answer
            } else {
                Answer::failed(answer.text)
            }
        }
        Err(e @ crate::cluster::MemberCallError::NotKnown { .. }) => Answer::failed(format!(
            "{e} (is it a member, up, with its admin channel on?)"
        )),
        Err(e) => Answer::failed(e.to_string()),
    }
}

/// `on NODE COMMAND…`.
pub(super) async fn on(ctx: &Arc<AdminContext>, args: &[&str]) -> Result<Answer, String> {
    let [node, command @ ..] = args else {
        return Err("usage: on NODE COMMAND…".to_owned());
    };
    if command.is_empty() {
        return Err("usage: on NODE COMMAND…".to_owned());
    }
    Ok(run_on(ctx, node, &command.join(" ")).await)
}

/// `all COMMAND…`: on every member up, this node first, then by name.
pub(super) async fn all(ctx: &Arc<AdminContext>, args: &[&str]) -> Result<Answer, String> {
    if args.is_empty() {
        return Err("usage: all COMMAND…".to_owned());
    }
    let view = crate::cluster::required()?;
    let others = crate::cluster::others_up()?;
    let line = args.join(" ");
    let mut text = String::new();
    let mut data = Vec::new();
    let mut every_ok = true;
    for node in std::iter::once(view.name().to_owned()).chain(others) {
        let answer = run_on(ctx, &node, &line).await;
        every_ok &= answer.ok;
        let _ = writeln!(text, "== {node}\n{}", answer.text);
        data.push(json!({"node": node, "ok": answer.ok, "text": answer.text, "data": answer.data}));
    }
    let answer = Answer::new(text.trim_end().to_owned(), Value::Array(data));
    Ok(if every_ok {
        answer
    } else {
        Answer::failed_with(answer)
    })
}

/// `top --node NAME`: member `node`'s own view, asked for at every sample of this node.
pub(super) fn top_of(
    ctx: &Arc<AdminContext>,
    samples: tokio::sync::broadcast::Receiver<Arc<Sample>>,
    node: String,
) -> BoxStream<'static, Answer> {
    let ctx = Arc::clone(ctx);
    futures::stream::unfold(samples, move |mut samples| {
        let (ctx, node) = (Arc::clone(&ctx), node.clone());
        async move {
            next_sample(&mut samples).await?;
            Some((run_on(&ctx, &node, "top --once").await, samples))
        }
    })
    .boxed()
}

/// `top --all`: at every sample of this node, one row per member that is up (this node first)
/// from each one's latest sample, then the cluster's totals; a member that does not answer gets a
/// row saying why.
pub(super) fn top_of_all(
    ctx: &Arc<AdminContext>,
    samples: tokio::sync::broadcast::Receiver<Arc<Sample>>,
) -> BoxStream<'static, Answer> {
    let ctx = Arc::clone(ctx);
    futures::stream::unfold(samples, move |mut samples| {
        let ctx = Arc::clone(&ctx);
        async move {
            next_sample(&mut samples).await?;
            let view = match crate::cluster::required() {
                Ok(view) => view,
                Err(why) => return Some((Answer::failed(why), samples)),
            };
            let members: Vec<String> = std::iter::once(view.name().to_owned())
                .chain(crate::cluster::others_up().unwrap_or_default())
                .collect();
            let answers =
                futures::future::join_all(members.iter().map(|m| run_on(&ctx, m, "top --once")))
                    .await;
            Some((render_cluster_top(&members, &answers), samples))
        }
    })
    .boxed()
}

/// The figures of one member's row, from its `top --once` answer's data (a metrics sample).
#[derive(Default)]
struct MemberRow {
    requests_per_sec: f64,
    errors_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    cpu_percent: f64,
    rss_bytes: u64,
    sessions: u64,
    connections: i64,
}

impl MemberRow {
    fn from_sample(data: &Value) -> Self {
        Self {
            requests_per_sec: data["requests_per_sec"].as_f64().unwrap_or_default(),
            errors_per_sec: data["errors_per_sec"].as_f64().unwrap_or_default(),
            p50_us: data["latency"]["p50"].as_u64().unwrap_or_default(),
            p99_us: data["latency"]["p99"].as_u64().unwrap_or_default(),
            cpu_percent: data["cpu_percent"].as_f64().unwrap_or_default(),
            rss_bytes: data["rss_bytes"].as_u64().unwrap_or_default(),
            sessions: data["sessions"].as_u64().unwrap_or_default(),
            connections: data["connections"]
                .as_array()
                .map(|by_transport| by_transport.iter().filter_map(|c| c[1].as_i64()).sum())
                .unwrap_or_default(),
        }
    }
}

fn render_cluster_top(members: &[String], answers: &[Answer]) -> Answer {
    let mut text = format!(
        "{:<20} {:>10} {:>8} {:>8} {:>8} {:>6} {:>10} {:>9} {:>7}\n",
        "NODE", "REQ/S", "ERR/S", "P50 µs", "P99 µs", "CPU%", "RSS MiB", "SESSIONS", "CONNS"
    );
    let mut total = MemberRow::default();
    let mut rows = Vec::new();
    for (node, answer) in members.iter().zip(answers) {
        if !answer.ok {
            let _ = writeln!(text, "{node:<20} ({})", answer.text);
            rows.push(json!({"node": node, "ok": false, "error": answer.text}));
            continue;
        }
        let row = MemberRow::from_sample(&answer.data);
        let _ = writeln!(
            text,
            "{node:<20} {:>10.1} {:>8.1} {:>8} {:>8} {:>6.0} {:>10.1} {:>9} {:>7}",
            row.requests_per_sec,
            row.errors_per_sec,
            row.p50_us,
            row.p99_us,
            row.cpu_percent,
            row.rss_bytes as f64 / 1_048_576.0,
            row.sessions,
            row.connections
        );
        total.requests_per_sec += row.requests_per_sec;
        total.errors_per_sec += row.errors_per_sec;
        total.cpu_percent += row.cpu_percent;
        total.rss_bytes += row.rss_bytes;
        total.sessions += row.sessions;
        total.connections += row.connections;
        rows.push(json!({"node": node, "ok": true, "sample": answer.data}));
    }
    let answered = rows.iter().filter(|r| r["ok"] == Value::Bool(true)).count();
    let _ = write!(
        text,
        "{:<20} {:>10.1} {:>8.1} {:>8} {:>8} {:>6.0} {:>10.1} {:>9} {:>7}\n{answered} of {} members answered",
        "TOTAL",
        total.requests_per_sec,
        total.errors_per_sec,
        "",
        "",
        total.cpu_percent,
        total.rss_bytes as f64 / 1_048_576.0,
        total.sessions,
        total.connections,
        members.len()
    );
    Answer::new(
        text,
        json!({"members": rows, "total": {
            "requests_per_sec": total.requests_per_sec,
            "errors_per_sec": total.errors_per_sec,
            "cpu_percent": total.cpu_percent,
            "rss_bytes": total.rss_bytes,
            "sessions": total.sessions,
            "connections": total.connections,
        }}),
    )
}
