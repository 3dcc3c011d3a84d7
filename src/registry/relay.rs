//! Owns the relay of the registry's broadcasts across the cluster (docs/cluster.md, "Broadcasts
//! across nodes"): a list changed (`notifications/*/list_changed`) or a resource changed
//! (`notifications/resources/updated`) on one node reaches the sessions of every node.
//!
//! Each clustered node runs one relay actor, `erlmcp_cluster_broadcast` (the last child of
//! `erlmcp_cluster_sup`), in the process group of the same name that ractor_cluster mirrors on
//! every node. What the registry broadcasts here is also put in this node's outbox
//! ([`publish_list_changed`], [`publish_resource_updated`]); the relay casts the outbox to every
//! remote member of the group — the first broadcast at once, later ones gathered for
//! `cluster.broadcast_window` and sent together, each list kind and URI once. A relay that
//! receives a batch tells this node's sessions (a URI's cached reads dropped first, as a local
//! update does) and never sends it on: no loops, whatever the members' views.
//!
//! Bounds: at most one batch per window; at most `cluster.broadcast_rate` URIs a second (a
//! window's share; past it the rest of the window is dropped and logged at most once a second);
//! list changes (three kinds) are never dropped. A member cut off is not in the group: what is
//! broadcast meanwhile is lost for it, never kept. Never a wire format of our own: a batch is
//! bincode inside ractor_cluster's frames.

use crate::common::ListKind;
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::session::broadcast::broadcast_list_changed;
use crate::tree_names::CLUSTER_BROADCAST;
use erlmcp_supervisors::ChildSpec;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// URIs a received batch is read for at most (a sender keeps far fewer in one).
const MAX_RECEIVED_URIS: usize = 65_536;

/// What a relay is sent.
#[derive(ractor_cluster::RactorClusterMessage)]
pub(crate) enum RelayMsg {
    /// Broadcasts another node made: told to this node's sessions, never sent on.
    Deliver(Broadcasts),
    /// Send this node's outbox to the others (cast by [`publish_list_changed`] and the like, then
    /// by the relay itself at the end of a window).
    Flush,
}

/// Broadcasts as they cross the cluster.
#[derive(Debug, Clone, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct Broadcasts {
    /// The sending node.
    from: String,
    /// The lists that changed, as their notification names.
    lists: Vec<String>,
    /// The resources that changed.
    uris: Vec<String>,
    /// False when the bytes received could not be read.
    readable: bool,
}

// Bytes that cannot be read give a batch marked unreadable, dropped (and logged).
crate::cluster::bincode_on_the_wire!(Broadcasts);

const KINDS: [ListKind; 3] = [ListKind::Tools, ListKind::Resources, ListKind::Prompts];

/// What this node broadcast since its relay last sent.
#[derive(Debug, Default)]
struct Outbox {
    lists: Vec<ListKind>,
    uris: BTreeSet<String>,
    /// URIs left out since the last send (past the window's share).
    dropped: u64,
    /// Whether a flush is on its way (cast, or waiting for the window's end).
    scheduled: bool,
}

impl Outbox {
    const fn new() -> Self {
        Self {
            lists: Vec::new(),
            uris: BTreeSet::new(),
            dropped: 0,
            scheduled: false,
        }
    }

    fn add_list(&mut self, kind: ListKind) {
        if !self.lists.contains(&kind) {
            self.lists.push(kind);
        }
    }

    /// Keeps `uri` unless the window's share (`cap`) is full.
    fn add_uri(&mut self, uri: &str, cap: usize) {
        if self.uris.contains(uri) {
            return;
        }
        if self.uris.len() >= cap {
            self.dropped += 1;
            return;
        }
        self.uris.insert(uri.to_owned());
    }

    /// Takes what is there (and the count dropped), leaving it empty and unscheduled.
    fn take(&mut self) -> (Vec<ListKind>, Vec<String>, u64) {
        self.scheduled = false;
        (
            std::mem::take(&mut self.lists),
            std::mem::take(&mut self.uris).into_iter().collect(),
            std::mem::take(&mut self.dropped),
        )
    }
}

/// This node's outbox (one tree per process), and a window's share of URIs (set by the relay).
static OUTBOX: Mutex<Outbox> = Mutex::new(Outbox::new());
static CAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Puts something in the outbox when the node runs clustered with its relay, and makes sure a
/// flush is on its way.
fn publish(add: impl FnOnce(&mut Outbox, usize)) {
    if crate::cluster::current().is_none() {
        return;
    }
    let Some(relay) = ractor::registry::where_is(CLUSTER_BROADCAST) else {
        return;
    };
    let cap = CAP.load(std::sync::atomic::Ordering::Relaxed);
    let mut outbox = lock(&OUTBOX);
    add(&mut outbox, cap);
    if !outbox.scheduled {
        outbox.scheduled = true;
        let relay: ActorRef<RelayMsg> = relay.into();
        if relay.cast(RelayMsg::Flush).is_err() {
            outbox.scheduled = false;
        }
    }
}

/// Tells the other nodes' sessions that list `kind` changed here.
pub(crate) fn publish_list_changed(kind: ListKind) {
    publish(|outbox, _| outbox.add_list(kind));
}

/// Tells the other nodes' sessions subscribed to `uri` that it changed here.
pub(crate) fn publish_resource_updated(uri: &str) {
    publish(|outbox, cap| outbox.add_uri(uri, cap));
}

/// What the relay starts from.
#[derive(Clone)]
pub(crate) struct RelayArgs {
    /// This node's registry (a received URI's cached reads are dropped through it).
    pub(crate) registry: super::RegistryHandle,
    /// This node's cluster name.
    pub(crate) name: String,
    pub(crate) window: Duration,
    /// URIs a second at most.
    pub(crate) rate: u64,
}

impl RelayArgs {
    /// A window's share of `rate`: at least one URI.
    fn cap(&self) -> usize {
        let share = u128::from(self.rate) * self.window.as_millis() / 1000;
        usize::try_from(share).unwrap_or(usize::MAX).max(1)
    }
}

/// The relay actor.
pub(crate) struct Relay;

pub(crate) struct RelayState {
    args: RelayArgs,
    last_sent: Option<Instant>,
}

/// `erlmcp_cluster_broadcast`, for `erlmcp_cluster_sup`.
pub(crate) fn relay_child(args: RelayArgs) -> ChildSpec {
    ChildSpec::named_actor(CLUSTER_BROADCAST, CLUSTER_BROADCAST, move || {
        (Relay, args.clone())
    })
}

impl Actor for Relay {
    type Msg = RelayMsg;
    type State = RelayState;
    type Arguments = RelayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RelayMsg>,
        args: RelayArgs,
    ) -> Result<RelayState, ActorProcessingErr> {
        CAP.store(args.cap(), std::sync::atomic::Ordering::Relaxed);
        ractor::pg::join(CLUSTER_BROADCAST.to_owned(), vec![myself.get_cell()]);
        // What a previous relay left scheduled is sent by this one.
        let mut outbox = lock(&OUTBOX);
        if outbox.scheduled && myself.cast(RelayMsg::Flush).is_err() {
            outbox.scheduled = false;
        }
        drop(outbox);
        Ok(RelayState {
            args,
            last_sent: None,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RelayMsg>,
        _: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(CLUSTER_BROADCAST.to_owned(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RelayMsg>,
        message: RelayMsg,
        state: &mut RelayState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RelayMsg::Deliver(batch) => deliver(&state.args.registry, batch),
            RelayMsg::Flush => {
                let now = Instant::now();
                if let Some(last) = state.last_sent {
                    let since = now.saturating_duration_since(last);
                    if since < state.args.window {
                        // Within the window: gathered, sent at its end.
                        myself.send_after(state.args.window - since, || RelayMsg::Flush);
                        return Ok(());
                    }
                }
                let (lists, uris, dropped) = lock(&OUTBOX).take();
                if dropped > 0 {
                    log_dropped(dropped, &state.args);
                }
                if lists.is_empty() && uris.is_empty() {
                    return Ok(());
                }
                state.last_sent = Some(now);
                send(Broadcasts {
                    from: state.args.name.clone(),
                    lists: lists.iter().map(|k| k.notification().to_owned()).collect(),
                    uris,
                    readable: true,
                });
            }
        }
        Ok(())
    }
}

/// Casts `batch` to every remote member of the group (one per peer node).
fn send(batch: Broadcasts) {
    for cell in ractor::pg::get_members(&CLUSTER_BROADCAST.to_owned()) {
        if cell.get_id().is_local() {
            continue;
        }
        let peer: ActorRef<RelayMsg> = cell.into();
        let _ = peer.cast(RelayMsg::Deliver(batch.clone()));
    }
}

/// Tells this node's sessions what another node broadcast; never sent on.
fn deliver(registry: &super::RegistryHandle, batch: Broadcasts) {
    if !batch.readable {
        static UNREADABLE: LogLimiter = LogLimiter::per_second();
        if let Some(suppressed) = UNREADABLE.allow() {
            tracing::warn!(
                suppressed,
                "cluster: a batch of broadcasts from another node could not be read: dropped"
            );
        }
        return;
    }
    for name in &batch.lists {
        if let Some(kind) = KINDS.into_iter().find(|k| k.notification() == name) {
            broadcast_list_changed(kind);
        }
    }
    for uri in batch.uris.iter().take(MAX_RECEIVED_URIS) {
        registry.resource_updated_here(uri);
    }
    tracing::debug!(
        from = %batch.from,
        lists = batch.lists.len(),
        uris = batch.uris.len(),
        "cluster: broadcasts from another node told to this node's sessions"
    );
}

/// Logs, at most once a second, URIs left out past `cluster.broadcast_rate`.
fn log_dropped(dropped: u64, args: &RelayArgs) {
    static LIMIT: LogLimiter = LogLimiter::per_second();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            dropped,
            suppressed,
            rate = args.rate,
            "cluster: resources/updated of {dropped} URIs not sent to the other nodes: past cluster.broadcast_rate"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable as _;

    #[test]
    fn an_outbox_keeps_each_list_and_uri_once_and_drops_past_its_share() {
        let mut outbox = Outbox::new();
        outbox.scheduled = true;
        outbox.add_list(ListKind::Tools);
        outbox.add_list(ListKind::Tools);
        outbox.add_list(ListKind::Prompts);
        for uri in ["a", "b", "a", "c", "d", "b"] {
            outbox.add_uri(uri, 3);
        }
        let (lists, uris, dropped) = outbox.take();
        assert_eq!(lists, vec![ListKind::Tools, ListKind::Prompts]);
        assert_eq!(uris, vec!["a", "b", "c"]);
        assert_eq!(dropped, 1, "d, past the share of 3");
        assert!(!outbox.scheduled);
        assert_eq!(outbox.take(), (Vec::new(), Vec::new(), 0));
    }

    #[test]
    fn a_windows_share_of_the_rate_is_at_least_one() {
        let args = |window_ms, rate| RelayArgs {
            registry: super::super::RegistryHandle::new(Default::default()),
            name: "a@h".into(),
            window: Duration::from_millis(window_ms),
            rate,
        };
        assert_eq!(args(50, 1000).cap(), 50);
        assert_eq!(args(50, 1).cap(), 1);
        assert_eq!(args(1000, 7).cap(), 7);
    }

    #[test]
    fn a_batch_crosses_as_bytes_and_garbage_reads_as_unreadable() {
        let batch = Broadcasts {
            from: "a@h".into(),
            lists: vec!["notifications/tools/list_changed".into()],
            uris: vec!["test://x".into()],
            readable: true,
        };
        let back = Broadcasts::from_bytes(batch.into_bytes());
        assert!(back.readable);
        assert_eq!(back.uris, vec!["test://x".to_owned()]);
        assert_eq!(back.lists.len(), 1);
        assert!(!Broadcasts::from_bytes(vec![0xff; 3]).readable);
    }
}
