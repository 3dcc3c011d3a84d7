//! Owns rolling plugin loads across the cluster (docs/plugins.md, "Across a cluster"): the actor
//! `erlmcp_cluster_plugins` that each clustered node runs under `erlmcp_cluster_sup`, in the
//! process group `erlmcp_plugins:<node>` (which ractor_cluster mirrors on every node), loading,
//! undoing and listing plugins on its node for another member; and the roll itself —
//! `plugins load PATH --cluster` loads on this node, then on every other member that is up, one
//! after another in name order, and when one refuses, undoes the load on each node already done,
//! in reverse order (a rollback to the version it replaced, or an unload of a plugin that node
//! did not have). The plugin file must be at the same path on every node and pass each node's
//! own trust checks (owner, mode: src/plugin_host/trust.rs): a node never receives code over
//! the cluster, only the path.
//!
//! Requests and answers are JSON text inside ractor_cluster's frames: no wire format of our own.

use super::{PluginHost, PluginInfo};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The process group of a node's plugin actor: this prefix, then the node's cluster name.
const PLUGINS_GROUP: &str = "erlmcp_plugins:";

/// Loads remembered per node for their rolls to undo (the oldest forgotten first).
const REMEMBERED_ROLLS: usize = 64;

/// What the plugin actor is sent.
#[derive(ractor_cluster::RactorClusterMessage)]
pub(crate) enum ClusterPluginMsg {
    /// Load the plugin at this path (JSON: [`LoadRequest`]); answers a JSON [`Outcome`].
    #[rpc]
    Load(String, RpcReplyPort<String>),
    /// Undo a load (JSON: [`UndoRequest`]); answers a JSON [`Outcome`].
    #[rpc]
    Undo(String, RpcReplyPort<String>),
    /// List this node's plugins; answers a JSON [`Listing`].
    #[rpc]
    List((), RpcReplyPort<String>),
}

#[derive(Debug, Serialize, Deserialize)]
struct LoadRequest {
    path: String,
    /// The roll it belongs to (random), by which it is undone.
    roll: String,
}

/// Undo what roll `roll` loaded on the node, if it loaded anything there. A node's actor
/// takes its messages in order, so an undo sent after a load that timed out (a hung node) is
/// done after that load, whenever the node gets to it.
#[derive(Debug, Serialize, Deserialize)]
struct UndoRequest {
    roll: String,
}

/// How a load on one node is undone.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    name: String,
    /// The node did not have the plugin before: unloaded. Else rolled back.
    unload: bool,
}

/// One node's answer.
#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    ok: bool,
    /// The plugin after the change (when ok).
    info: Option<PluginInfo>,
    /// Why not (when not ok).
    error: Option<String>,
    /// Whether the node had a plugin of that name before (a load only).
    had_before: bool,
}

/// One node's plugins.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Listing {
    /// The node.
    pub(crate) node: String,
    /// Its plugins; `None` when it could not be asked.
    pub(crate) plugins: Option<Vec<PluginInfo>>,
    /// Why it could not be asked.
    pub(crate) error: Option<String>,
}

/// What a rolling load did on one node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RollStep {
    /// The node.
    pub(crate) node: String,
    /// `loaded`, `refused`, `skipped`; when undone: `rolled back`, `unloaded`, `nothing to
    /// undo`, `undo failed`.
    pub(crate) action: String,
    /// The version now serving there, or why it failed.
    pub(crate) detail: String,
}

/// The end of a rolling load.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Roll {
    /// Every node loaded it.
    pub(crate) complete: bool,
    /// What happened, node by node, in order.
    pub(crate) steps: Vec<RollStep>,
}

fn outcome_text(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|_| "{\"ok\":false}".to_owned())
}

async fn load_here(host: &PluginHost, path: &str) -> Outcome {
    let name_before: Vec<String> = host.list().into_iter().map(|p| p.name).collect();
    match host.load(Path::new(path), serde_json::Value::Null).await {
        Ok(info) => Outcome {
            had_before: name_before.contains(&info.name),
            ok: true,
            info: Some(info),
            error: None,
        },
        Err(e) => Outcome {
            ok: false,
            info: None,
            error: Some(e.to_string()),
            had_before: false,
        },
    }
}

async fn undo_here(host: &PluginHost, undo: &Undo) -> Outcome {
    let done = if undo.unload {
        host.unload(&undo.name).await
    } else {
        host.rollback(&undo.name).await
    };
    match done {
        Ok(info) => Outcome {
            ok: true,
            info: Some(info),
            error: None,
            had_before: !undo.unload,
        },
        Err(e) => Outcome {
            ok: false,
            info: None,
            error: Some(e.to_string()),
            had_before: !undo.unload,
        },
    }
}

/// The plugin actor's child spec under `erlmcp_cluster_sup`, for node `node`.
pub(crate) fn cluster_plugins_child(
    host: &Arc<PluginHost>,
    node: &str,
) -> erlmcp_supervisors::ChildSpec {
    let (host, node) = (Arc::clone(host), node.to_owned());
    erlmcp_supervisors::ChildSpec::named_actor(
        crate::tree_names::CLUSTER_PLUGINS,
        crate::tree_names::CLUSTER_PLUGINS,
        move || (ClusterPlugins, (Arc::clone(&host), node.clone())),
    )
}

/// The plugin actor: does on this node what another member's roll asks.
pub(crate) struct ClusterPlugins;

impl Actor for ClusterPlugins {
    type Msg = ClusterPluginMsg;
    /// The host, the group joined, and the loads done for rolls (roll → how to undo it).
    type State = (Arc<PluginHost>, String, Vec<(String, Undo)>);
    /// The host, and this node's cluster name.
    type Arguments = (Arc<PluginHost>, String);

    async fn pre_start(
        &self,
        myself: ActorRef<ClusterPluginMsg>,
        (host, node): (Arc<PluginHost>, String),
    ) -> Result<Self::State, ActorProcessingErr> {
        let group = format!("{PLUGINS_GROUP}{node}");
        ractor::pg::join(group.clone(), vec![myself.get_cell()]);
        Ok((host, group, Vec::new()))
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ClusterPluginMsg>,
        (_, group, _): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(group.clone(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ClusterPluginMsg>,
        message: ClusterPluginMsg,
        (host, _, rolls): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // One at a time, in the actor's turn: two rolls never interleave on one node.
        match message {
            ClusterPluginMsg::Load(request, reply) => {
                let outcome = match serde_json::from_str::<LoadRequest>(&request) {
                    Ok(request) => {
                        let outcome = load_here(host, &request.path).await;
                        if let (true, Some(info)) = (outcome.ok, &outcome.info) {
                            if rolls.len() >= REMEMBERED_ROLLS {
                                rolls.remove(0);
                            }
                            let undo = Undo {
                                name: info.name.clone(),
                                unload: !outcome.had_before,
                            };
                            rolls.push((request.roll, undo));
                        }
                        outcome
                    }
                    Err(e) => refused(format!("unreadable load request: {e}")),
                };
                let _ = reply.send(outcome_text(&outcome));
            }
            ClusterPluginMsg::Undo(request, reply) => {
                let outcome = match serde_json::from_str::<UndoRequest>(&request) {
                    Ok(request) => match rolls.iter().position(|(roll, _)| *roll == request.roll) {
                        Some(at) => {
                            let (_, undo) = rolls.remove(at);
                            undo_here(host, &undo).await
                        }
                        None => Outcome {
                            ok: true,
                            info: None,
                            error: None,
                            had_before: false,
                        },
                    },
                    Err(e) => refused(format!("unreadable undo request: {e}")),
                };
                let _ = reply.send(outcome_text(&outcome));
            }
            ClusterPluginMsg::List((), reply) => {
                let _ = reply.send(serde_json::to_string(&host.list()).unwrap_or_default());
            }
        }
        Ok(())
    }
}

fn refused(why: String) -> Outcome {
    Outcome {
        ok: false,
        info: None,
        error: Some(why),
        had_before: false,
    }
}

/// Calls member `node`'s plugin actor; the text it answered, or why not.
async fn call(
    node: &str,
    message: impl FnOnce(RpcReplyPort<String>) -> ClusterPluginMsg,
) -> Result<String, String> {
    let wait = crate::cluster::forward_timeout();
    crate::cluster::call_member(PLUGINS_GROUP, "plugin actor", node, message, wait)
        .await
        .map_err(|e| e.to_string())
}

fn read_outcome(text: Result<String, String>) -> Outcome {
    match text {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| refused(format!("an answer that could not be read: {e}"))),
        Err(why) => refused(why),
    }
}

/// Loads `path` on this node, then on every other member that is up, one after another; when
/// one refuses, undoes it on the nodes already done, in reverse order.
pub(crate) async fn roll(host: &PluginHost, path: &str) -> Result<Roll, String> {
    let members = crate::cluster::others_up()?;
    let me = crate::cluster::current()
        .map(|view| view.name().to_owned())
        .unwrap_or_default();
    let roll_id = crate::common::random_hex(16).map_err(|e| format!("no random roll id: {e}"))?;
    let mut steps = Vec::new();
    // This node's undo, when it loaded; the other nodes asked (each undone by the roll's id:
    // one that refused or did not answer in time may still load it later).
    let mut undo_here_too: Option<Undo> = None;
    let mut asked: Vec<String> = Vec::new();
    let mut failed = false;
    for node in std::iter::once(me.clone()).chain(members.iter().cloned()) {
        if failed {
            steps.push(RollStep {
                node,
                action: "skipped".into(),
                detail: "an earlier node refused".into(),
            });
            continue;
        }
        let outcome = if node == me {
            load_here(host, path).await
        } else {
            asked.push(node.clone());
            let request = serde_json::json!({ "path": path, "roll": roll_id }).to_string();
            read_outcome(call(&node, |port| ClusterPluginMsg::Load(request, port)).await)
        };
        match (outcome.ok, outcome.info) {
            (true, Some(info)) => {
                steps.push(RollStep {
                    node: node.clone(),
                    action: "loaded".into(),
                    detail: format!("{} {}", info.name, info.version),
                });
                if node == me {
                    undo_here_too = Some(Undo {
                        name: info.name,
                        unload: !outcome.had_before,
                    });
                }
            }
            _ => {
                failed = true;
                steps.push(RollStep {
                    node,
                    action: "refused".into(),
                    detail: outcome.error.unwrap_or_else(|| "no reason given".into()),
                });
            }
        }
    }
    if failed {
        for node in asked.into_iter().rev() {
            let request = serde_json::json!({ "roll": roll_id }).to_string();
            let outcome =
                read_outcome(call(&node, |port| ClusterPluginMsg::Undo(request, port)).await);
            steps.push(undo_step(node, outcome));
        }
        if let Some(undo) = undo_here_too {
            let outcome = undo_here(host, &undo).await;
            steps.push(undo_step(me, outcome));
        }
    }
    Ok(Roll {
        complete: !failed,
        steps,
    })
}

/// What undoing a roll on `node` did.
fn undo_step(node: String, outcome: Outcome) -> RollStep {
    let action = match (outcome.ok, &outcome.info, outcome.had_before) {
        (false, _, _) => "undo failed",
        (true, None, _) => "nothing to undo",
        (true, Some(_), true) => "rolled back",
        (true, Some(_), false) => "unloaded",
    };
    let detail = match (&outcome.info, outcome.error) {
        (_, Some(error)) => error,
        (Some(info), None) => format!("{} {}", info.name, info.version),
        (None, None) => String::new(),
    };
    tracing::warn!(node = %node, action, "a rolling plugin load was undone");
    RollStep {
        node,
        action: action.into(),
        detail,
    }
}

/// Every member's plugins (this node's first, then the others that are up, by name).
pub(crate) async fn list_all(host: &PluginHost) -> Result<Vec<Listing>, String> {
    let members = crate::cluster::others_up()?;
    let me = crate::cluster::current()
        .map(|view| view.name().to_owned())
        .unwrap_or_default();
    let mut listings = vec![Listing {
        node: me,
        plugins: Some(host.list()),
        error: None,
    }];
    for node in members {
        let answer = call(&node, |port| ClusterPluginMsg::List((), port)).await;
        let listing = match answer.and_then(|text| {
            serde_json::from_str::<Vec<PluginInfo>>(&text).map_err(|e| e.to_string())
        }) {
            Ok(plugins) => Listing {
                node,
                plugins: Some(plugins),
                error: None,
            },
            Err(error) => Listing {
                node,
                plugins: None,
                error: Some(error),
            },
        };
        listings.push(listing);
    }
    Ok(listings)
}
