//! Owns the shell's commands on the supervision tree: `tree`, `ps`, `info`, `restart` and
//! `kill`, and the lookups they share (walking a snapshot, finding a child, listing sessions).

use super::{Answer, failed, to_json};
use crate::session::SESSION_SUP;
use crate::transport::connection::hibernate::hibernating_connections;
use crate::tree_names::{ROOT_SUP, TCP, TCP_CONNECTIONS};
use erlmcp_supervisors::{ChildSnapshot, SupervisorRef, SupervisorSnapshot};
use serde_json::{Value, json};
use std::fmt::Write as _;

pub(super) async fn root_snapshot() -> Result<SupervisorSnapshot, String> {
    let root = SupervisorRef::whereis(ROOT_SUP).ok_or("the tree is not running")?;
    root.snapshot().await.map_err(|e| e.to_string())
}

pub(super) async fn tree() -> Result<Answer, String> {
    let snapshot = root_snapshot().await?;
    let hibernating = crate::session::hibernating_count();
    let connections = hibernating_connections();
    let text = with_hibernating_sessions(snapshot.render(), hibernating);
    let text = with_hibernating_connections(text, connections);
    let mut data = to_json(&snapshot);
    if let Value::Object(fields) = &mut data {
        fields.insert("hibernating_sessions".to_owned(), json!(hibernating));
        fields.insert("hibernating_connections".to_owned(), json!(connections));
    }
    Ok(Answer::new(text, data))
}

/// The rendered tree with a line under `erlmcp_session_sup` counting the sessions that have no
/// actor there (hibernating), so the tree does not look empty of sessions that are served.
pub(super) fn with_hibernating_sessions(rendered: String, hibernating: usize) -> String {
    with_line_under(
        rendered,
        SESSION_SUP,
        hibernating,
        "sessions hibernating (no actor until they hold something; `sessions` lists them)",
    )
}

/// The rendered tree with a line under `erlmcp_tcp_connections` counting the TCP connections
/// hibernating (no actor; held by the listener `erlmcp_tcp` until they wake as its children).
pub(super) fn with_hibernating_connections(rendered: String, hibernating: usize) -> String {
    with_line_under(
        rendered,
        TCP_CONNECTIONS,
        hibernating,
        "connections hibernating (no actor until their client or a notification wakes them; held by erlmcp_tcp)",
    )
}

/// `+ {count} {what}` under the supervisor `sup`'s line, where `count` is not 0.
fn with_line_under(rendered: String, sup: &str, count: usize, what: &str) -> String {
    if count == 0 {
        return rendered;
    }
    let mut out = String::with_capacity(rendered.len() + 128);
    for line in rendered.lines() {
        out.push_str(line);
        out.push('\n');
        let body = line.trim_start();
        if body.starts_with(sup) && body[sup.len()..].starts_with(" (") {
            let indent = &line[..line.len() - body.len()];
            let _ = writeln!(out, "{indent}  + {count} {what}");
        }
    }
    out
}

/// Every child with the name of its supervisor, depth first.
pub(super) fn walk<'a>(sup: &'a SupervisorSnapshot, out: &mut Vec<(&'a str, &'a ChildSnapshot)>) {
    for child in &sup.children {
        out.push((sup.name.as_str(), child));
        if let Some(inner) = &child.supervisor {
            walk(inner, out);
        }
    }
}

/// The child named `name` (spec id, actor id, or registered name such as
/// `erlmcp_plugin:counter`) and its supervisor's name.
pub(super) fn find<'a>(
    root: &'a SupervisorSnapshot,
    name: &str,
) -> Option<(&'a str, &'a ChildSnapshot)> {
    let mut all = Vec::new();
    walk(root, &mut all);
    let registered = ractor::registry::where_is(name).map(|cell| cell.get_id().to_string());
    all.into_iter().find(|(_, c)| {
        c.id == name
            || c.actor_id.as_deref() == Some(name)
            || (registered.is_some() && c.actor_id == registered)
    })
}

pub(super) async fn session_infos() -> Vec<crate::session::SessionInfo> {
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

pub(super) async fn ps() -> Result<Answer, String> {
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

pub(super) fn one_arg<'a>(args: &[&'a str], usage: &str) -> Result<&'a str, String> {
    match args {
        [one] => Ok(one),
        _ => failed(format!("usage: {usage}")),
    }
}

pub(super) async fn info(args: &[&str]) -> Result<Answer, String> {
    let name = one_arg(args, "info NAME")?;
    let root = root_snapshot().await?;
    if let Some((parent, child)) = find(&root, name) {
        let mut data = to_json(child);
        data["supervisor"] = json!(parent);
        if child.id == TCP_CONNECTIONS || child.id == TCP {
            // Its connections hibernating: not its children while they sleep.
            data["hibernating_connections"] = json!(hibernating_connections());
        }
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

pub(super) async fn restart(args: &[&str]) -> Result<Answer, String> {
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

pub(super) async fn kill(args: &[&str]) -> Result<Answer, String> {
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

    #[test]
    fn the_tree_counts_hibernating_connections_under_the_tcp_connection_supervisor() {
        let rendered = "erlmcp_sup (one_for_one)\n  erlmcp_transport_sup (one_for_one)\n    erlmcp_tcp_connections (simple_one_for_one)\n    erlmcp_tcp [Worker] Running\n";
        let text = with_hibernating_connections(rendered.to_owned(), 2);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[3].starts_with("      + 2 connections hibernating"),
            "{text}"
        );
        assert_eq!(lines.len(), 5, "{text}");
    }
}
