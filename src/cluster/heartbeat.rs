//! Owns `erlmcp_cluster_heartbeat`, the failure detector ractor_cluster lacks: its node
//! sessions ping each other but never time a missing answer out, so a peer that hangs (stopped,
//! swapping, cut off behind a link that keeps its TCP connection open) would stay "up" until TCP
//! itself gives up (minutes). Each node's heartbeat actor is in the process group
//! `erlmcp_cluster_heartbeat`, which ractor_cluster mirrors on every node (a remote actor per
//! peer's member); every `heartbeat_interval` it casts its node's name to the group's remote
//! members, over ractor_cluster's own connection, with its load (connections open, requests in
//! progress) beside it for the shell's `nodes`. A member that is up and has not been heard
//! from for `heartbeat_timeout` is cut off: the membership actor closes its node sessions, so it
//! is a departure like any other (logged, off the ring, dialled again).
//!
//! Never: a connection or a wire format of its own; the beat is a `String` cast through
//! ractor_cluster.

use super::members::MembersMsg;
use super::{ClusterView, Load, LocalLoad, MemberState};
use crate::tree_names::{CLUSTER_HEARTBEAT, CLUSTER_MEMBERS};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The heartbeat actor.
pub(crate) struct Heartbeat;

/// What the heartbeat actor starts from.
#[derive(Clone)]
pub(crate) struct HeartbeatArgs {
    pub(crate) view: Arc<ClusterView>,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) load: LocalLoad,
}

/// The heartbeat actor's state.
pub(crate) struct HeartbeatState {
    args: HeartbeatArgs,
    /// When each member was last heard from (or seen coming up), by name.
    heard: HashMap<String, Instant>,
    /// When the last tick ran.
    last_tick: Instant,
    ticker: Option<ractor::concurrency::JoinHandle<()>>,
}

/// The message a tick sends the actor itself: never a node's name (those hold an `@`).
const TICK: &str = "";

impl Actor for Heartbeat {
    /// A peer's beat (`<name>\t<connections>\t<in_flight>`, [`Load::beat`]), or [`TICK`]. A
    /// `String`: ractor_cluster carries it between nodes as it is.
    type Msg = String;
    type State = HeartbeatState;
    type Arguments = HeartbeatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<String>,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatState, ActorProcessingErr> {
        ractor::pg::join(CLUSTER_HEARTBEAT.to_owned(), vec![myself.get_cell()]);
        let ticker = myself.send_interval(args.interval, || TICK.to_owned());
        Ok(HeartbeatState {
            args,
            heard: HashMap::new(),
            last_tick: Instant::now(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<String>,
        state: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        ractor::pg::leave(CLUSTER_HEARTBEAT.to_owned(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<String>,
        message: String,
        state: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        if message != TICK {
            let (name, load) = Load::parse_beat(&message);
            if let Some(load) = load {
                state.args.view.set_load(name, load);
            }
            state.heard.insert(name.to_owned(), Instant::now());
            return Ok(());
        }
        let view = &state.args.view;
        let load = state.args.load.now();
        view.set_load(view.name(), load);
        beat(&load.beat(view.name()));
        let silent = state.silent(Instant::now());
        if !silent.is_empty() {
            if let Some(members) = ractor::registry::where_is(CLUSTER_MEMBERS) {
                let members: ActorRef<MembersMsg> = members.into();
                for (name, quiet) in silent {
                    let _ = members.cast(MembersMsg::Silent { name, quiet });
                }
            }
        }
        Ok(())
    }
}

impl HeartbeatState {
    /// The members up but not heard from for the timeout, and for how long; forgets the ones
    /// that are no longer up, and starts the clock of the ones newly up. After a tick that came
    /// half a timeout late, this node itself was paused (stopped, swapping): the silence is its
    /// own, and every clock starts again instead.
    fn silent(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let paused = now.saturating_duration_since(self.last_tick) > self.args.timeout / 2;
        self.last_tick = now;
        if paused {
            tracing::info!("cluster: this node was paused; the heartbeat's clocks start again");
            self.heard.values_mut().for_each(|heard| *heard = now);
            return Vec::new();
        }
        let members = self.args.view.members();
        let up: Vec<&str> = members
            .iter()
            .filter(|m| m.state == MemberState::Up)
            .map(|m| m.name.as_str())
            .collect();
        self.heard.retain(|name, _| up.contains(&name.as_str()));
        let mut silent = Vec::new();
        for name in up {
            let heard = *self.heard.entry(name.to_owned()).or_insert(now);
            let quiet = now.saturating_duration_since(heard);
            if quiet >= self.args.timeout {
                silent.push((name.to_owned(), quiet));
                // Counted again from now: one cut-off per timeout at most.
                self.heard.insert(name.to_owned(), now);
            }
        }
        silent
    }
}

/// Casts `beat` to every remote member of the heartbeat group (one per peer node).
fn beat(beat: &str) {
    for cell in ractor::pg::get_members(&CLUSTER_HEARTBEAT.to_owned()) {
        if cell.get_id().is_local() {
            continue;
        }
        let peer: ActorRef<String> = cell.into();
        let _ = peer.cast(beat.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterSettings, Member};

    fn state(timeout_ms: u64, up: &[&str]) -> HeartbeatState {
        let settings = ClusterSettings {
            name: "me@h".into(),
            short_name: "me".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            advertise: "127.0.0.1:1".into(),
            seeds: Vec::new(),
            vnodes: 10,
            replicas: 1,
            cookie: String::new(),
            reconnect_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_millis(timeout_ms / 5),
            heartbeat_timeout: Duration::from_millis(timeout_ms),
            forward_timeout: Duration::from_secs(10),
            quorum: 0,
            forward_lane: true,
            forward_lane_connections: 4,
            broadcast_window: Duration::from_millis(50),
            broadcast_rate: 1000,
        };
        let view = Arc::new(ClusterView::new(&settings));
        view.publish(
            up.iter()
                .map(|name| Member {
                    name: (*name).to_owned(),
                    address: String::new(),
                    state: MemberState::Up,
                    since_ms: 0,
                })
                .collect(),
        );
        HeartbeatState {
            args: HeartbeatArgs {
                view,
                interval: settings.heartbeat_interval,
                timeout: settings.heartbeat_timeout,
                load: LocalLoad {
                    stats: Arc::default(),
                    admission: Arc::new(crate::admission::Admission::new(
                        &crate::config::Config::embedded()
                            .expect("the embedded config")
                            .admission_settings(),
                    )),
                },
            },
            heard: HashMap::new(),
            last_tick: Instant::now(),
            ticker: None,
        }
    }

    #[test]
    fn a_member_silent_for_the_timeout_is_reported_once_per_timeout() {
        let mut state = state(1000, &["a@h", "b@h"]);
        let start = state.last_tick;
        let tick = Duration::from_millis(200);
        let mut at = start;
        let mut reported = Vec::new();
        for _ in 0..6 {
            at += tick;
            // b beats; a never does.
            state.heard.insert("b@h".into(), at);
            reported.extend(state.silent(at).into_iter().map(|(name, _)| name));
        }
        assert_eq!(
            reported,
            vec!["a@h".to_owned()],
            "after 1 s of silence, once"
        );
    }

    #[test]
    fn a_late_tick_means_this_node_was_paused_and_reports_nobody() {
        let mut state = state(1000, &["a@h"]);
        let start = state.last_tick;
        assert!(state.silent(start + Duration::from_millis(200)).is_empty());
        // Three seconds without a tick: this node was stopped, not its peers.
        assert!(state.silent(start + Duration::from_secs(3)).is_empty());
        assert!(state.silent(start + Duration::from_millis(3200)).is_empty());
    }

    #[test]
    fn a_beat_carries_the_senders_name_and_load_and_an_old_beat_only_the_name() {
        let load = Load {
            connections: 12,
            in_flight: 3,
        };
        let beat = load.beat("b@10.0.0.2");
        assert_eq!(Load::parse_beat(&beat), ("b@10.0.0.2", Some(load)));
        assert_eq!(Load::parse_beat("b@10.0.0.2"), ("b@10.0.0.2", None));
        assert_eq!(Load::parse_beat("b@h\tx\t1"), ("b@h", None));
    }
}
