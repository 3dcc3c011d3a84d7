//! Owns `erlmcp_cluster_members`, the membership actor: it hears ractor_cluster's node server
//! say that a session to a peer opened, authenticated or closed, and turns that into members
//! joining and leaving (logged, and published in the [`ClusterView`] without a mailbox). It
//! also dials: the seeds, and members that left, every `reconnect_interval`, while not
//! connected to them — ractor_cluster itself never reconnects.
//!
//! A session that closes before it authenticated is a refusal: the peer failed the cookie
//! challenge (this node refused it, or it refused this node), logged as a warning on both sides
//! at a bounded rate. The exceptions: a second connection to a member already up (ractor_cluster
//! keeps one of two simultaneous connections and closes the other) and a dial of this node
//! itself (a seed list that names it), logged at debug.
//!
//! Never: a departure is never guessed from silence here; it is a closed connection (the peer's
//! kernel closes it when the process dies, kill -9 included). docs/cluster.md says what that
//! does not cover.

use super::{ClusterSettings, ClusterView, Member, MemberState};
use crate::log_limit::LogLimiter;
use crate::tree_names::CLUSTER_NODE;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage, NodeSessionMessage};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest wait between two dials of a target that keeps failing or refusing this node.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Peers this node refused (a failed cookie challenge), logged at a bounded rate.
static REFUSED: LogLimiter = LogLimiter::new(std::time::Duration::from_secs(5));

/// Peers that refused this node, logged at a bounded rate.
static REFUSED_BY: LogLimiter = LogLimiter::new(std::time::Duration::from_secs(5));

/// Dials that failed (nobody listening), logged at a bounded rate.
static DIAL_FAILED: LogLimiter = LogLimiter::new(std::time::Duration::from_secs(30));

/// The id of the membership actor's subscription at the node server (a restarted actor
/// replaces its predecessor's).
const SUBSCRIPTION: &str = "erlmcp_cluster_members";

/// The membership actor.
pub(crate) struct Membership;

/// What the membership actor starts from.
#[derive(Clone)]
pub(crate) struct MembersArgs {
    pub(crate) settings: ClusterSettings,
    pub(crate) view: Arc<ClusterView>,
}

/// A node session as the node server reported it.
#[derive(Debug, Clone)]
pub(crate) struct SessionReport {
    id: ActorId,
    /// The peer's `name@host`, once it said it.
    peer: Option<String>,
    /// Where the peer's node server listens, once it said it.
    address: Option<String>,
    /// The socket's far end (for a dial: the address dialled).
    socket_peer: String,
    /// The peer dialled this node.
    incoming: bool,
    /// The node session (stopped to cut a silent peer off).
    session: ActorRef<NodeSessionMessage>,
}

impl SessionReport {
    fn of(info: NodeServerSessionInformation) -> Self {
        Self {
            id: info.actor.get_id(),
            peer: info.peer_name.as_ref().map(|n| n.name.clone()),
            address: info.peer_name.map(|n| n.connection_string),
            socket_peer: info.peer_addr,
            incoming: info.is_server,
            session: info.actor,
        }
    }
}

/// The membership actor's messages.
#[derive(Debug)]
pub(crate) enum MembersMsg {
    /// A session to a peer opened (the handshake starts).
    Opened(SessionReport),
    /// A session authenticated: its peer is a member.
    Authenticated(SessionReport),
    /// A session closed.
    Closed(SessionReport),
    /// Time to dial what is not connected.
    Tick,
    /// The heartbeat has not heard from member `name` for `quiet`: cut it off.
    Silent { name: String, quiet: Duration },
    /// A dial of `target` ended: connected to `resolved`, or failed.
    Dialled {
        target: String,
        outcome: Result<String, String>,
    },
}

// A local message only (never sent to another node).
impl ractor::Message for MembersMsg {}

/// Forwards the node server's session events to the membership actor's mailbox.
struct Events(ActorRef<MembersMsg>);

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(MembersMsg::Opened(SessionReport::of(ses)));
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(MembersMsg::Closed(SessionReport::of(ses)));
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(MembersMsg::Authenticated(SessionReport::of(ses)));
    }
}

/// The membership actor's state.
pub(crate) struct MembersState {
    settings: ClusterSettings,
    view: Arc<ClusterView>,
    node_server: ActorRef<NodeServerMessage>,
    /// Sessions open, by session actor.
    sessions: HashMap<ActorId, SessionReport>,
    /// Sessions that authenticated, by session actor: their peer's name.
    authenticated: HashMap<ActorId, String>,
    /// Every member met, up or down, by name.
    known: BTreeMap<String, Member>,
    /// Targets being dialled now.
    dialling: HashSet<String>,
    /// What each dialled target resolved to (a seed given by host name).
    resolved: HashMap<String, String>,
    /// Targets that failed or refused this node: not dialled before the instant, and the
    /// delay that doubles at each failure up to [`MAX_BACKOFF`].
    backoff: HashMap<String, (Instant, Duration)>,
    ticker: Option<ractor::concurrency::JoinHandle<()>>,
}

impl MembersState {
    /// Whether a session (open or up) reaches `target`.
    fn reaches(&self, target: &str) -> bool {
        let resolved = self.resolved.get(target).map(String::as_str);
        self.sessions.values().any(|s| {
            let matches = |addr: &str| addr == target || Some(addr) == resolved;
            matches(&s.socket_peer) || s.address.as_deref().is_some_and(matches)
        })
    }

    /// The targets a session to `addr` (a socket's far end, or a node server's address) is for.
    fn targets_of(&self, addr: &str) -> Vec<String> {
        self.resolved
            .iter()
            .filter(|(target, resolved)| *target == addr || *resolved == addr)
            .map(|(target, _)| target.clone())
            .chain(std::iter::once(addr.to_owned()))
            .collect()
    }

    /// `target` failed or refused this node: wait longer before the next dial.
    fn back_off(&mut self, target: String) {
        let interval = self.settings.reconnect_interval;
        let entry = self
            .backoff
            .entry(target)
            .or_insert((Instant::now(), interval));
        entry.1 = (entry.1 * 2).min(MAX_BACKOFF).max(interval);
        entry.0 = Instant::now() + entry.1;
    }

    /// Publishes the members and the ring.
    fn publish(&self) {
        self.view.publish(self.known.values().cloned().collect());
    }

    /// Whether `name` has an authenticated session.
    fn is_up(&self, name: &str) -> bool {
        self.authenticated.values().any(|n| n == name)
    }

    fn authenticated(&mut self, report: SessionReport) {
        let Some(name) = report.peer.clone() else {
            return;
        };
        let was_up = self.is_up(&name);
        for addr in [Some(&report.socket_peer), report.address.as_ref()]
            .into_iter()
            .flatten()
        {
            for target in self.targets_of(addr) {
                self.backoff.remove(&target);
            }
        }
        self.authenticated.insert(report.id, name.clone());
        self.sessions.insert(report.id, report.clone());
        if was_up {
            return;
        }
        let address = report.address.clone().unwrap_or_default();
        let rejoined = self.known.contains_key(&name);
        self.known.insert(
            name.clone(),
            Member {
                name: name.clone(),
                address: address.clone(),
                state: MemberState::Up,
                since_ms: crate::clock::wall_ms(),
            },
        );
        self.publish();
        let up = self.view.ring().members().count();
        tracing::info!(
            node = %name,
            address = %address,
            members = up,
            "cluster: node {name} {} ({up} members up)",
            if rejoined { "rejoined" } else { "joined" }
        );
    }

    fn closed(&mut self, report: SessionReport) {
        self.sessions.remove(&report.id);
        match self.authenticated.remove(&report.id) {
            Some(name) => {
                if self.is_up(&name) {
                    // Another session to the same peer lives on (a duplicate was closed).
                    return;
                }
                if let Some(member) = self.known.get_mut(&name) {
                    member.state = MemberState::Down;
                    member.since_ms = crate::clock::wall_ms();
                }
                tracing::warn!(
                    node = %name,
                    "cluster: node {name} left (its connection closed); dialling it every {:?}",
                    self.settings.reconnect_interval
                );
                self.publish();
            }
            None => {
                if self.refused(&report) && !report.incoming {
                    for target in self.targets_of(&report.socket_peer) {
                        self.back_off(target);
                    }
                }
            }
        }
    }

    /// Closes the sessions of `name`, not heard from for `quiet`: their closing makes it a
    /// departure (logged, off the ring, dialled again).
    fn cut_off(&self, name: &str, quiet: Duration) {
        let sessions: Vec<&SessionReport> = self
            .authenticated
            .iter()
            .filter(|(_, peer)| *peer == name)
            .filter_map(|(id, _)| self.sessions.get(id))
            .collect();
        if sessions.is_empty() {
            return;
        }
        tracing::warn!(
            node = %name,
            quiet_ms = quiet.as_millis() as u64,
            "cluster: node {name} not heard from for {quiet:?}: closing its connection"
        );
        for report in sessions {
            report.session.stop(Some("heartbeat_timeout".to_owned()));
        }
    }

    /// A session closed before it authenticated: a refusal (logged; true), unless a duplicate
    /// or a dial of this node itself.
    fn refused(&self, report: &SessionReport) -> bool {
        let peer = report.peer.as_deref();
        if peer == Some(self.view.name()) || peer.is_some_and(|name| self.is_up(name)) {
            tracing::debug!(peer = ?peer, "cluster: a duplicate or self connection closed");
            return false;
        }
        let peer = peer.unwrap_or("(a peer that never said its name)");
        if report.incoming {
            if let Some(held) = REFUSED.allow() {
                tracing::warn!(
                    peer = %peer,
                    from = %report.socket_peer,
                    held_back = held,
                    "cluster: refused node {peer} from {}: it failed the cookie challenge (another cookie) or closed before authenticating",
                    report.socket_peer
                );
            }
        } else if let Some(held) = REFUSED_BY.allow() {
            tracing::warn!(
                peer = %peer,
                address = %report.socket_peer,
                held_back = held,
                "cluster: refused by node {peer} at {}: this node failed its cookie challenge (another cookie)",
                report.socket_peer
            );
        }
        true
    }

    /// Dials each seed and each member that left, when no session reaches it and no dial
    /// is under way.
    fn dial_missing(&mut self, myself: &ActorRef<MembersMsg>) {
        let targets: Vec<String> = self
            .settings
            .seeds
            .iter()
            .cloned()
            .chain(
                self.known
                    .values()
                    .filter(|m| m.state == MemberState::Down && !m.address.is_empty())
                    .map(|m| m.address.clone()),
            )
            .collect();
        let listen = self.settings.listen.to_string();
        let me = [listen.as_str(), self.settings.advertise.as_str()];
        for target in targets {
            if me.contains(&target.as_str())
                || self
                    .resolved
                    .get(&target)
                    .is_some_and(|resolved| me.contains(&resolved.as_str()))
                || self.dialling.contains(&target)
                || self
                    .backoff
                    .get(&target)
                    .is_some_and(|(at, _)| Instant::now() < *at)
                || self.reaches(&target)
            {
                continue;
            }
            self.dialling.insert(target.clone());
            let node_server = self.node_server.clone();
            let reply = myself.clone();
            tokio::spawn(async move {
                let outcome = dial(&node_server, &target).await;
                let _ = reply.cast(MembersMsg::Dialled { target, outcome });
            });
        }
    }
}

/// Resolves `target` and hands a connection to it to the node server; the address it reached.
async fn dial(node_server: &ActorRef<NodeServerMessage>, target: &str) -> Result<String, String> {
    let addr = tokio::net::lookup_host(target)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_owned())?;
    ractor_cluster::client_connect(node_server, addr)
        .await
        .map_err(|e| e.to_string())?;
    Ok(addr.to_string())
}

impl Actor for Membership {
    type Msg = MembersMsg;
    type State = MembersState;
    type Arguments = MembersArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembersMsg>,
        args: MembersArgs,
    ) -> Result<MembersState, ActorProcessingErr> {
        let node_server: ActorRef<NodeServerMessage> = ractor::registry::where_is(CLUSTER_NODE)
            .ok_or("the cluster's node server is not running")?
            .into();
        // ractor_cluster advertises the port it listens on: another one (`cluster.advertise`)
        // is told to it before this node dials anyone or is told of.
        let advertised = args.settings.advertised_port();
        if advertised != args.settings.listen.port() {
            node_server.cast(NodeServerMessage::PortChanged { port: advertised })?;
        }
        node_server.cast(NodeServerMessage::SubscribeToEvents {
            id: SUBSCRIPTION.to_owned(),
            subscription: Box::new(Events(myself.clone())),
        })?;
        // Sessions that authenticated before this actor (re)started.
        let sessions = ractor::call_t!(node_server, NodeServerMessage::GetSessions, 2000)?;
        let mut state = MembersState {
            settings: args.settings,
            view: args.view,
            node_server,
            sessions: HashMap::new(),
            authenticated: HashMap::new(),
            known: BTreeMap::new(),
            dialling: HashSet::new(),
            resolved: HashMap::new(),
            backoff: HashMap::new(),
            ticker: None,
        };
        for info in sessions.into_values() {
            state.authenticated(SessionReport::of(info));
        }
        state.publish();
        tracing::info!(
            node = %state.view.name(),
            listen = %state.settings.listen,
            advertise = %state.settings.advertise,
            seeds = ?state.settings.seeds,
            "cluster: node {} listening on {} (reached at {})",
            state.view.name(),
            state.settings.listen,
            state.settings.advertise
        );
        state.dial_missing(&myself);
        state.ticker =
            Some(myself.send_interval(state.settings.reconnect_interval, || MembersMsg::Tick));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MembersMsg>,
        state: &mut MembersState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        let _ = state
            .node_server
            .cast(NodeServerMessage::UnsubscribeToEvents(
                SUBSCRIPTION.to_owned(),
            ));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MembersMsg>,
        message: MembersMsg,
        state: &mut MembersState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MembersMsg::Opened(report) => {
                state.sessions.insert(report.id, report);
            }
            MembersMsg::Authenticated(report) => state.authenticated(report),
            MembersMsg::Closed(report) => state.closed(report),
            MembersMsg::Tick => state.dial_missing(&myself),
            MembersMsg::Silent { name, quiet } => state.cut_off(&name, quiet),
            MembersMsg::Dialled { target, outcome } => {
                state.dialling.remove(&target);
                match outcome {
                    Ok(resolved) => {
                        state.resolved.insert(target, resolved);
                    }
                    Err(error) => {
                        state.back_off(target.clone());
                        if let Some(held) = DIAL_FAILED.allow() {
                            tracing::info!(target = %target, error = %error, held_back = held, "cluster: cannot reach {target} yet");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
