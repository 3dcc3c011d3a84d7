//! Owns the shell's `nodes` command: the members of the cluster as this node sees them — name,
//! address, state (self, up, down), since when, their share of the hash ring (of sessions and
//! cache keys), and their load (connections open, requests in progress) as their last heartbeat
//! said, at most `cluster.heartbeat_interval` old — and `nodes owner KEY`: which member owns a key (a session id), and which
//! take over from it.

use super::{Answer, to_json};
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn nodes(args: &[&str]) -> Result<Answer, String> {
    match args {
        [] => members(),
        ["owner", key] => owner(key),
        _ => Err("usage: nodes [owner KEY]".to_owned()),
    }
}

fn owner(key: &str) -> Result<Answer, String> {
    let view = crate::cluster::current().ok_or("this node is not in a cluster")?;
    let owner = view.owner(key.as_bytes()).ok_or("the ring is empty")?;
    let owners = view.owners(key.as_bytes());
    let next: Vec<&String> = owners.iter().filter(|o| **o != owner).collect();
    let text = match next.as_slice() {
        [] => format!("{key}: {owner}"),
        next => format!(
            "{key}: {owner} (then {})",
            next.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(Answer::new(
        text,
        json!({"key": key, "owner": owner, "owners": owners}),
    ))
}

fn members() -> Result<Answer, String> {
    let Some(view) = crate::cluster::current() else {
        return Ok(Answer::new(
            "this node is not in a cluster (erlmcp start --cluster-listen ADDR, or cluster.enabled)"
                .to_owned(),
            json!({"node": null, "members": [], "up": 0}),
        ));
    };
    let members = view.members();
    let ring = view.ring();
    let now = crate::clock::wall_ms();
    let shares = ring.shares();
    let share_of = |name: &str| {
        shares
            .iter()
            .find(|(member, _)| *member == name)
            .map_or(0.0, |(_, share)| *share)
    };
    let mut text = format!(
        "{:<32} {:<24} {:<6} {:>10} {:>6} {:>7} {:>9}\n",
        "NAME", "ADDRESS", "STATE", "FOR", "RING", "CONNS", "IN FLIGHT"
    );
    let mut rows = Vec::with_capacity(members.len());
    for member in members.iter() {
        let share = share_of(&member.name);
        let load = view
            .load_of(&member.name)
            .filter(|_| member.state != crate::cluster::MemberState::Down);
        let figure = |f: fn(&crate::cluster::Load) -> u64| {
            load.as_ref().map_or("-".to_owned(), |l| f(l).to_string())
        };
        let _ = writeln!(
            text,
            "{:<32} {:<24} {:<6} {:>9}s {:>5.1}% {:>7} {:>9}",
            member.name,
            member.address,
            member.state.as_str(),
            now.saturating_sub(member.since_ms) / 1000,
            share * 100.0,
            figure(|l| l.connections),
            figure(|l| l.in_flight)
        );
        let mut row = to_json(member);
        row["ring_share"] = json!(share);
        row["connections"] = json!(load.map(|l| l.connections));
        row["in_flight"] = json!(load.map(|l| l.in_flight));
        rows.push(row);
    }
    let up = ring.members().count();
    let forwards = crate::cluster::forwards::FORWARDS.counts();
    let _ = write!(
        text,
        "{up} members up on the ring ({} virtual nodes each); forwarded from here: {} over the HTTP lane, {} over the cluster RPC ({} meant for the lane)",
        ring.vnodes(),
        forwards.lane,
        forwards.rpc,
        forwards.lane_fallbacks
    );
    match view.quorum() {
        0 => {}
        quorum if view.has_quorum() => {
            let _ = write!(text, "; quorum {quorum}: held");
        }
        quorum => {
            let _ = write!(text, "; quorum {quorum}: LOST (sessions refused here)");
        }
    }
    Ok(Answer::new(
        text,
        json!({
            "node": view.name(),
            "members": rows,
            "up": up,
            "vnodes": ring.vnodes(),
            "quorum": view.quorum(),
            "has_quorum": view.has_quorum(),
            "forwards": forwards,
        }),
    ))
}
