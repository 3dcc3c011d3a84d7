//! Owns the serialisable picture of a supervision (sub)tree: what the remote shell prints.

use crate::child_spec::{ChildKind, Restart};
use crate::supervisor_spec::{AutoShutdown, Strategy};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One supervisor and, recursively, its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorSnapshot {
    /// Registered name, or the actor id when it has none.
    pub name: String,
    /// The actor id.
    pub actor_id: String,
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restarts allowed per period.
    pub max_restarts: u32,
    /// The intensity period, in milliseconds.
    pub period_ms: u64,
    /// Auto-shutdown policy.
    pub auto_shutdown: AutoShutdown,
    /// Restarts performed since the supervisor started.
    pub restarts_total: u64,
    /// Restarts inside the current intensity window.
    pub restarts_in_window: usize,
    /// Children in start order.
    pub children: Vec<ChildSnapshot>,
}

/// The state of one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Running as an actor.
    Running,
    /// Not running: exited without restart, terminated, or waiting for a restart retry.
    Terminated,
    /// Its start function answered `Ignore`.
    Ignored,
}

/// One child of a supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSnapshot {
    /// The spec's id.
    pub id: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Restart type.
    pub restart: Restart,
    /// Shutdown policy, as OTP writes it (`brutal_kill`, `5000ms`, `infinity`).
    pub shutdown: String,
    /// Whether it is significant for auto-shutdown.
    pub significant: bool,
    /// Current state.
    pub state: ChildState,
    /// The running actor's id.
    pub actor_id: Option<String>,
    /// How long the running actor has run, in milliseconds.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    /// How many times this child has been restarted.
    pub restarts: u64,
    /// Why it last exited.
    pub last_exit: Option<String>,
    /// For a running supervisor child: its own snapshot.
    pub supervisor: Option<Box<SupervisorSnapshot>>,
}

impl SupervisorSnapshot {
    /// Renders the tree as indented text, one line per node.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, "");
        out
    }

    fn render_into(&self, out: &mut String, indent: &str) {
        let _ = writeln!(
            out,
            "{indent}{} ({}, intensity {}/{}ms, restarts {})",
            self.name, self.strategy, self.max_restarts, self.period_ms, self.restarts_total
        );
        let child_indent = format!("{indent}  ");
        for child in &self.children {
            match &child.supervisor {
                Some(sup) => sup.render_into(out, &child_indent),
                None => {
                    let _ = write!(
                        out,
                        "{child_indent}{} [{:?}, {:?}] {:?} restarts {}",
                        child.id, child.kind, child.restart, child.state, child.restarts
                    );
                    if let Some(exit) = &child.last_exit {
                        let _ = write!(out, " last exit: {exit}");
                    }
                    out.push('\n');
                }
            }
        }
    }

    /// Every supervisor name in the tree, depth first in start order.
    pub fn supervisor_names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        for child in &self.children {
            if let Some(sup) = &child.supervisor {
                names.extend(sup.supervisor_names());
            }
        }
        names
    }

    /// Finds a child by id anywhere in the tree.
    pub fn find_child(&self, id: &str) -> Option<&ChildSnapshot> {
        self.children.iter().find_map(|child| {
            if child.id == id {
                Some(child)
            } else {
                child.supervisor.as_ref().and_then(|s| s.find_child(id))
            }
        })
    }
}
