//! Owns the chaos profile's `node` fault: one node of the cluster the bench started is killed
//! with SIGKILL (a crash: its connections reset, its sessions' owners gone, no goodbye to the
//! cluster), held down for [`NODE_DOWN`] (less when the next fault comes first) while the load
//! goes on through the others (its HTTP sessions taken over there from their replicas), then
//! started again as a supervisor would — the same home (its store and its log), name,
//! arguments and address — and the fault is over ("component back") once every node lists all
//! of them up again.

use super::{Chaos, Injected, Nodes, struck};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// How long the killed node stays down before it is started again.
const NODE_DOWN: Duration = Duration::from_secs(1);

/// How long the restarted node gets to be listed up by every node (a dial is retried every
/// second; a debug build starts in a few).
const REJOIN_WAIT: Duration = Duration::from_secs(30);

/// Kills node `index` of the cluster (`usize::MAX`: the last one) and starts it again; back once
/// every node lists all of them up (until the `next` fault at most, [`REJOIN_WAIT`] at most).
pub(super) async fn kill(chaos: &Chaos, index: usize, next: Option<Instant>) -> Injected {
    let at = Instant::now();
    let Nodes::Cluster(cluster) = &chaos.nodes else {
        return struck(
            at,
            None,
            Some("the node fault needs a cluster: --nodes 2 or more".to_owned()),
        );
    };
    let lock = || cluster.lock().unwrap_or_else(PoisonError::into_inner);
    let count = lock().nodes.len();
    let index = if index == usize::MAX {
        count - 1
    } else {
        index
    };
    if index >= count {
        return struck(
            at,
            None,
            Some(format!(
                "node={index}: the cluster has nodes 0 to {}",
                count - 1
            )),
        );
    }
    if let Err(e) = lock().nodes[index].crash() {
        return struck(at, None, Some(format!("killing node {index}: {e}")));
    }
    let down = next.map_or(NODE_DOWN, |next| {
        NODE_DOWN.min(next.saturating_duration_since(at) / 2)
    });
    tokio::time::sleep(down).await;
    // Blocks this thread (the injector's own) until the node says where it listens.
    if let Err(e) = lock().nodes[index].restart() {
        return struck(at, None, Some(format!("restarting node {index}: {e}")));
    }
    let targets: Vec<_> = (0..count).map(|i| lock().admin(i)).collect();
    let until = next.unwrap_or(at + REJOIN_WAIT).min(at + REJOIN_WAIT);
    match super::super::cluster::all_up(&targets, until).await {
        Ok(()) => struck(at, Some(at.elapsed()), None),
        Err(_) => struck(at, None, None),
    }
}
