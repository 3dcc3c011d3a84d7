//! Owns the cluster: `erlmcp_cluster_sup` (ractor_cluster's node server and the membership
//! actor), the live member list and the hash ring over it, readable by any part of the node
//! without a mailbox (docs/cluster.md).
//!
//! ```text
//! erlmcp_cluster_sup       rest_for_one
//! ├── erlmcp_cluster_node     ractor_cluster's NodeServer: the listener, one NodeSession per peer
//! ├── erlmcp_cluster_members  membership: subscribes to the node server's session events, logs
//! │                           joins, departures and refusals, dials seeds and departed members
//! ├── erlmcp_cluster_heartbeat the failure detector: beats to every peer, cuts silent ones off
//! └── erlmcp_cluster_broadcast the registry's broadcasts to and from the other nodes
//!                             (`registry::relay`, handed in by the tree)
//! ```
//!
//! `rest_for_one`: the membership actor's subscription lives in the node server, so a restarted
//! node server restarts the membership actor (and the heartbeat) after it. The cluster cookie is the node cookie
//! (the remote shell's, `src/admin/cookie.rs`); ractor_cluster proves it with its own
//! challenge–response (SHA-256 digests of the cookie and random challenges).
//!
//! Never: a wire protocol of our own. Every byte between nodes is ractor_cluster's.

use crate::tree_names::{CLUSTER_HEARTBEAT, CLUSTER_MEMBERS, CLUSTER_NODE, CLUSTER_SUP};
use arc_swap::{ArcSwap, ArcSwapOption};
use erlmcp_supervisors::{ChildSpec, SupervisorSpec};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) mod bench;
pub(crate) mod forwards;
pub(crate) mod heartbeat;
pub(crate) mod members;
pub(crate) mod ring;

use ring::Ring;

/// What the cluster is started from: the `[cluster]` section, the node's name and cookie.
#[derive(Clone)]
pub(crate) struct ClusterSettings {
    /// The node's name in the cluster: `<node_name>@<advertised host>` (Erlang's `name@host`).
    pub(crate) name: String,
    /// The node's `node_name`, which ractor_cluster puts before the `@`.
    pub(crate) short_name: String,
    /// Where the node server listens.
    pub(crate) listen: SocketAddr,
    /// Where other nodes reach it (`HOST:PORT`, `cluster.advertise`; else `listen`): what it
    /// tells its peers.
    pub(crate) advertise: String,
    /// Seeds to join through (`HOST:PORT`).
    pub(crate) seeds: Vec<String>,
    /// Virtual nodes per member on the ring.
    pub(crate) vnodes: u32,
    /// Copies of a session's state on other nodes (`cluster.replicas`).
    pub(crate) replicas: u32,
    /// The fewest members up for this node to serve sessions (`cluster.quorum`; 0: always).
    pub(crate) quorum: u32,
    /// The cluster cookie (the node cookie).
    pub(crate) cookie: String,
    /// How often seeds and departed members are dialled while not connected.
    pub(crate) reconnect_interval: Duration,
    /// How often the heartbeat beats to every peer.
    pub(crate) heartbeat_interval: Duration,
    /// How long a member may stay silent before it is cut off.
    pub(crate) heartbeat_timeout: Duration,
    /// How long a request forwarded to its session's owner waits for the answer.
    pub(crate) forward_timeout: Duration,
    /// Whether forwards take the HTTP lane (`cluster.forward_lane = "http"`).
    pub(crate) forward_lane: bool,
    /// Connections at most to each member on the lane.
    pub(crate) forward_lane_connections: usize,
    /// Broadcasts made within this window go to the other nodes together.
    pub(crate) broadcast_window: Duration,
    /// Resource URIs a second at most sent to the other nodes.
    pub(crate) broadcast_rate: u64,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the cookie.
        f.debug_struct("ClusterSettings")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("vnodes", &self.vnodes)
            .finish_non_exhaustive()
    }
}

impl ClusterSettings {
    /// The settings of `config` with `cookie`, when `cluster.enabled` (validated: `listen` is
    /// an address).
    pub(crate) fn of(config: &crate::config::Config, cookie: &str) -> Option<Self> {
        let cluster = &config.cluster;
        let listen: SocketAddr = cluster.listen.parse().ok().filter(|_| cluster.enabled)?;
        let advertise = if cluster.advertise.is_empty() {
            listen.to_string()
        } else {
            cluster.advertise.clone()
        };
        let settings = Self {
            name: String::new(),
            short_name: config.node_name.clone(),
            listen,
            advertise,
            seeds: cluster.join.clone(),
            vnodes: cluster.vnodes,
            replicas: cluster.replicas,
            quorum: cluster.quorum,
            cookie: cookie.to_owned(),
            reconnect_interval: Duration::from_millis(cluster.reconnect_interval),
            heartbeat_interval: Duration::from_millis(cluster.heartbeat_interval),
            heartbeat_timeout: Duration::from_millis(cluster.heartbeat_timeout),
            forward_timeout: Duration::from_millis(cluster.forward_timeout),
            forward_lane: cluster.forward_lane == "http",
            forward_lane_connections: usize::try_from(cluster.forward_lane_connections)
                .unwrap_or(usize::MAX),
            broadcast_window: Duration::from_millis(cluster.broadcast_window),
            broadcast_rate: cluster.broadcast_rate,
        };
        Some(Self {
            name: format!("{}@{}", config.node_name, settings.advertised_host()),
            ..settings
        })
    }

    /// The host other nodes reach this one at (`advertise` less its port; `listen`'s IP when
    /// not set).
    pub(crate) fn advertised_host(&self) -> String {
        match self.advertise.rsplit_once(':') {
            Some((host, _)) if self.advertise != self.listen.to_string() => host.to_owned(),
            _ => self.listen.ip().to_string(),
        }
    }

    /// The port other nodes reach this one at (`advertise`'s; `listen`'s when not set).
    pub(crate) fn advertised_port(&self) -> u16 {
        self.advertise
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(self.listen.port())
    }
}

/// What a member is to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MemberState {
    /// This node.
    #[serde(rename = "self")]
    Local,
    /// Connected and authenticated: on the ring.
    Up,
    /// Was up, its connection closed: off the ring, dialled again.
    Down,
}

impl MemberState {
    /// The state as the shell prints it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Local => "self",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// One member of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Member {
    /// `<node_name>@<host>`.
    pub(crate) name: String,
    /// Where its node server listens (`HOST:PORT`).
    pub(crate) address: String,
    /// Self, up or down.
    pub(crate) state: MemberState,
    /// Since when (wall clock, ms since the Unix epoch).
    pub(crate) since_ms: u64,
}

/// What a node carries: connections open and requests in progress (each beat says its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Load {
    /// Connections open (every transport; HTTP counts sessions).
    pub(crate) connections: u64,
    /// Requests in progress at the admission point.
    pub(crate) in_flight: u64,
}

impl Load {
    /// The beat's text: `<name>\t<connections>\t<in_flight>`.
    pub(crate) fn beat(&self, name: &str) -> String {
        format!("{name}\t{}\t{}", self.connections, self.in_flight)
    }

    /// A beat's sender and, when it carried them, its figures.
    pub(crate) fn parse_beat(beat: &str) -> (&str, Option<Load>) {
        let mut fields = beat.split('\t');
        let name = fields.next().unwrap_or_default();
        let mut number = || fields.next().and_then(|f| f.parse::<u64>().ok());
        let load = match (number(), number()) {
            (Some(connections), Some(in_flight)) => Some(Load {
                connections,
                in_flight,
            }),
            _ => None,
        };
        (name, load)
    }
}

/// Reads this node's [`Load`] from the counters the request path keeps anyway.
#[derive(Clone)]
pub(crate) struct LocalLoad {
    pub(crate) stats: Arc<crate::metrics::ConnectionStats>,
    pub(crate) admission: Arc<crate::admission::Admission>,
}

impl LocalLoad {
    /// The load now.
    pub(crate) fn now(&self) -> Load {
        use std::sync::atomic::Ordering;
        Load {
            connections: self.stats.active.load(Ordering::Relaxed) as u64,
            in_flight: self.admission.in_progress() as u64,
        }
    }
}

/// The forwarding lane's settings (`src/transport/http/forward_lane.rs`).
pub(crate) struct LaneSettings {
    /// Connections at most to each member.
    pub(crate) connections: usize,
    /// The key of the mark a forwarded request carries: derived from the cookie (the cookie
    /// itself is not kept here).
    pub(crate) key: [u8; 32],
}

impl std::fmt::Debug for LaneSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("LaneSettings")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// The lane's mark key for `cookie`: SHA-256 of a label and the cookie, so that a mark's key is
/// not the cookie that proves a node or a shell.
fn lane_key(cookie: &str) -> [u8; 32] {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    digest.update(b"erlmcp forwarding lane\0");
    digest.update(cookie.as_bytes());
    digest.finalize().into()
}

/// The live member list and the ring over it, published by the membership actor and read
/// without a mailbox (the shell's `nodes`, session placement).
#[derive(Debug)]
pub(crate) struct ClusterView {
    name: String,
    address: String,
    vnodes: u32,
    replicas: u32,
    quorum: u32,
    forward_timeout: Duration,
    /// The forwarding lane's settings and key (`None`: `cluster.forward_lane = "rpc"`).
    lane: Option<LaneSettings>,
    /// This node first, then the others by name.
    members: ArcSwap<Vec<Member>>,
    /// This node and the members that are up.
    ring: ArcSwap<Ring>,
    /// Each member's load as its last beat said (this node's too), by name.
    loads: ArcSwap<HashMap<String, Load>>,
}

impl ClusterView {
    /// A view holding only this node.
    pub(crate) fn new(settings: &ClusterSettings) -> Self {
        let view = Self {
            name: settings.name.clone(),
            address: settings.advertise.clone(),
            vnodes: settings.vnodes,
            replicas: settings.replicas,
            quorum: settings.quorum,
            forward_timeout: settings.forward_timeout,
            lane: settings.forward_lane.then(|| LaneSettings {
                connections: settings.forward_lane_connections,
                key: lane_key(&settings.cookie),
            }),
            members: ArcSwap::from_pointee(Vec::new()),
            ring: ArcSwap::from_pointee(Ring::default()),
            loads: ArcSwap::from_pointee(HashMap::new()),
        };
        view.publish(Vec::new());
        view
    }

    /// This node's name in the cluster.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How long a request forwarded to its session's owner waits for the answer.
    pub(crate) fn forward_timeout(&self) -> Duration {
        self.forward_timeout
    }

    /// The forwarding lane's settings, when forwards take it.
    pub(crate) fn lane(&self) -> Option<&LaneSettings> {
        self.lane.as_ref()
    }

    /// Every member this node knows: itself first, then the others (up or down) by name.
    pub(crate) fn members(&self) -> Arc<Vec<Member>> {
        self.members.load_full()
    }

    /// `cluster.quorum`: the fewest members up for this node to serve sessions (0: always).
    pub(crate) fn quorum(&self) -> u32 {
        self.quorum
    }

    /// Whether this node serves sessions: no quorum is set, or at least that many members are
    /// up on its ring (itself included) — not the minority side of a partition.
    pub(crate) fn has_quorum(&self) -> bool {
        self.quorum == 0
            || self.ring.load().members().count()
                >= usize::try_from(self.quorum).unwrap_or(usize::MAX)
    }

    /// The ring over this node and the members that are up.
    pub(crate) fn ring(&self) -> Arc<Ring> {
        self.ring.load_full()
    }

    /// The member owning `key` on the ring (this node when alone).
    pub(crate) fn owner(&self, key: &[u8]) -> Option<String> {
        self.ring.load().owner(key).map(str::to_owned)
    }

    /// The owner of `key`, then the `cluster.replicas` members that would take over from it.
    pub(crate) fn owners(&self, key: &[u8]) -> Vec<String> {
        let count = usize::try_from(self.replicas)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let ring = self.ring.load();
        ring.owners(key, count)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The load `name` last reported (this node: at its last beat).
    pub(crate) fn load_of(&self, name: &str) -> Option<Load> {
        self.loads.load().get(name).copied()
    }

    /// Records the load `name` reported.
    pub(crate) fn set_load(&self, name: &str, load: Load) {
        self.loads.rcu(|loads| {
            let mut loads = HashMap::clone(loads);
            loads.insert(name.to_owned(), load);
            loads
        });
    }

    /// Publishes `others` (every member but this node) and the ring over the ones up.
    pub(crate) fn publish(&self, mut others: Vec<Member>) {
        others.sort_by(|a, b| a.name.cmp(&b.name));
        let ring = Ring::new(
            std::iter::once(self.name.as_str()).chain(
                others
                    .iter()
                    .filter(|m| m.state == MemberState::Up)
                    .map(|m| m.name.as_str()),
            ),
            self.vnodes,
        );
        let since_ms = self
            .members
            .load()
            .first()
            .map_or_else(crate::clock::wall_ms, |me| me.since_ms);
        let mut all = Vec::with_capacity(others.len() + 1);
        all.push(Member {
            name: self.name.clone(),
            address: self.address.clone(),
            state: MemberState::Local,
            since_ms,
        });
        all.extend(others);
        self.members.store(Arc::new(all));
        self.ring.store(Arc::new(ring));
    }
}

/// The node's cluster view while a clustered tree runs (one per process, as the tree is).
static CURRENT: ArcSwapOption<ClusterView> = ArcSwapOption::const_empty();

/// Makes `view` the node's cluster view (the tree's start).
pub(crate) fn install(view: Arc<ClusterView>) {
    CURRENT.store(Some(view));
}

/// Forgets the node's cluster view (the tree's stop).
pub(crate) fn uninstall() {
    CURRENT.store(None);
}

/// The node's cluster view, when it runs clustered.
/// Why a cluster-wide command cannot run on a node that runs no cluster.
pub(crate) const NO_CLUSTER: &str = "this node runs no cluster (start it with --cluster-listen)";

/// The cluster, or [`NO_CLUSTER`].
pub(crate) fn required() -> Result<Arc<ClusterView>, &'static str> {
    current().ok_or(NO_CLUSTER)
}

/// How long a call to another member waits: `cluster.forward_timeout`, or 10 s outside a
/// cluster.
pub(crate) fn forward_timeout() -> Duration {
    current().map_or(Duration::from_secs(10), |view| view.forward_timeout())
}

pub(crate) fn current() -> Option<Arc<ClusterView>> {
    CURRENT.load_full()
}

/// Implements ractor's `BytesConvertable` for types that cross the cluster as bincode (every
/// message payload of erlmcp's own actors: the forwarder's, the relay's, the L2 cache's), within
/// a 16 MiB frame. ractor_cluster's trait says "panics are acceptable"; here bytes that cannot be
/// read decode as the type's `Default`, which each type makes mean "unreadable" (refused,
/// dropped or a miss, never a panic).
macro_rules! bincode_on_the_wire {
    ($($payload:ty),+ $(,)?) => {
        $(
            impl ractor::BytesConvertable for $payload {
                fn into_bytes(self) -> Vec<u8> {
                    bincode::encode_to_vec(&self, $crate::cluster::wire_config()).unwrap_or_default()
                }
                fn from_bytes(bytes: Vec<u8>) -> Self {
                    bincode::decode_from_slice(&bytes, $crate::cluster::wire_config())
                        .map(|(payload, _)| payload)
                        .unwrap_or_default()
                }
            }
        )+
    };
}
pub(crate) use bincode_on_the_wire;

/// The bincode configuration of [`bincode_on_the_wire`]: standard, at most 16 MiB (ractor_cluster's
/// frame limit).
pub(crate) fn wire_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 }>()
}

/// The actor another member runs in the mirrored process group `prefix` + `node` (its
/// forwarder, its L2 tier, its plugin or admin actor), when ractor_cluster has told this node of
/// it: how a member's actor is found by name, remote actors being absent from the registry.
pub(crate) fn member_actor<M: ractor::Message>(
    prefix: &str,
    node: &str,
) -> Option<ractor::ActorRef<M>> {
    ractor::pg::get_members(&format!("{prefix}{node}"))
        .into_iter()
        .find(|cell| !cell.get_id().is_local())
        .map(Into::into)
}

/// Why a call to a member's actor ([`call_member`]) got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemberCallError {
    /// No actor of the member is in the group (not a member, down, or without that part).
    #[error("no {part} of node {node} is known")]
    NotKnown {
        /// What was looked for: `admin`, `plugin actor`.
        part: &'static str,
        /// The member.
        node: String,
    },
    /// It did not answer in time.
    #[error("node {node} did not answer within {wait:?}")]
    Timeout {
        /// The member.
        node: String,
        /// How long it was waited for.
        wait: Duration,
    },
    /// The call could not be made or its answer was dropped.
    #[error("node {node} could not be asked")]
    Failed {
        /// The member.
        node: String,
    },
}

/// Calls member `node`'s actor in the mirrored group `prefix` + `node` ([`member_actor`];
/// `part` names it in errors), waiting `wait` for its answer.
pub(crate) async fn call_member<M: ractor::Message, T: Send + 'static>(
    prefix: &str,
    part: &'static str,
    node: &str,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
    wait: Duration,
) -> Result<T, MemberCallError> {
    let actor = member_actor::<M>(prefix, node).ok_or_else(|| MemberCallError::NotKnown {
        part,
        node: node.to_owned(),
    })?;
    match actor.call(message, Some(wait)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
        Ok(ractor::rpc::CallResult::Timeout) => Err(MemberCallError::Timeout {
            node: node.to_owned(),
            wait,
        }),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(MemberCallError::Failed {
            node: node.to_owned(),
        }),
    }
}

/// The other members that are up, by name (what a roll or an `all` goes through after this
/// node); an error when this node runs no cluster.
pub(crate) fn others_up() -> Result<Vec<String>, &'static str> {
    let view = required()?;
    let mut names: Vec<String> = view
        .members()
        .iter()
        .filter(|m| m.state == MemberState::Up)
        .map(|m| m.name.clone())
        .filter(|name| name != view.name())
        .collect();
    names.sort();
    Ok(names)
}

/// Keys drawn at most before one the ring gives to this node is found ([`owned_key`]).
pub(crate) const MAX_DRAWS: usize = 1024;

/// A key from `draw` that the ring gives to this node when it runs clustered (session ids, task
/// ids: requests for them through any node reach their maker); else the first draw.
pub(crate) fn owned_key<E>(mut draw: impl FnMut() -> Result<String, E>) -> Result<String, E> {
    match current() {
        Some(view) => view.ring().draw_owned(view.name(), MAX_DRAWS, draw),
        None => draw(),
    }
}

/// `erlmcp_cluster_sup`: the node server, then the membership actor, the heartbeat, then
/// `workers` of higher layers that serve the cluster (`rest_for_one`: a node server restarted
/// restarts them all, their process groups joined again).
pub(crate) fn cluster_sup(
    settings: &ClusterSettings,
    view: &Arc<ClusterView>,
    load: LocalLoad,
    intensity: (u32, Duration),
    workers: Vec<ChildSpec>,
) -> ChildSpec {
    let node = settings.clone();
    let members = members::MembersArgs {
        settings: settings.clone(),
        view: Arc::clone(view),
    };
    let heartbeat = heartbeat::HeartbeatArgs {
        view: Arc::clone(view),
        interval: settings.heartbeat_interval,
        timeout: settings.heartbeat_timeout,
        load,
    };
    let spec = SupervisorSpec::rest_for_one()
        .named(CLUSTER_SUP)
        .intensity(intensity.0, intensity.1)
        .child(ChildSpec::named_actor(
            CLUSTER_NODE,
            CLUSTER_NODE,
            move || (node_server(&node), ()),
        ))
        .child(ChildSpec::named_actor(
            CLUSTER_MEMBERS,
            CLUSTER_MEMBERS,
            move || (members::Membership, members.clone()),
        ))
        .child(ChildSpec::named_actor(
            CLUSTER_HEARTBEAT,
            CLUSTER_HEARTBEAT,
            move || (heartbeat::Heartbeat, heartbeat.clone()),
        ));
    let spec = workers.into_iter().fold(spec, SupervisorSpec::child);
    ChildSpec::supervisor(CLUSTER_SUP, spec)
}

/// ractor_cluster's node server for `settings`: listening on the listen address only, joining
/// transitively (a node meeting a seed connects to the seed's peers too, as Erlang's
/// `connect_all` does). It tells its peers the advertised host; an advertised port other than
/// the listen port is told to it by the membership actor before any dial
/// (`NodeServerMessage::PortChanged`: ractor_cluster listens and advertises one port).
fn node_server(settings: &ClusterSettings) -> ractor_cluster::NodeServer {
    ractor_cluster::NodeServer::new(
        settings.listen.port(),
        settings.cookie.clone(),
        settings.short_name.clone(),
        settings.advertised_host(),
        None,
        Some(ractor_cluster::node::NodeConnectionMode::Transitive),
    )
    .with_listen_addr(settings.listen.ip())
}
