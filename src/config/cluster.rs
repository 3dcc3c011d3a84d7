//! Owns the `[cluster]` section: whether the node joins a cluster, where its cluster listener
//! binds, which seeds it joins through, and the hash ring's shape (docs/cluster.md).

use serde::{Deserialize, Serialize};

/// The cluster (`src/cluster/`): ractor_cluster's node server, membership, the hash ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run the cluster's node server and membership (`erlmcp start --cluster-listen ADDR`).
    pub enabled: bool,
    /// Where the node server listens for other nodes: `IP:PORT`. Other nodes reach this node at
    /// that address, so it must be one they can reach (not 0.0.0.0).
    pub listen: String,
    /// Where other nodes reach this node, `HOST:PORT`, when not at `listen` (a proxy, a NAT, a
    /// container's published port): what this node tells its peers, and the host part of its
    /// cluster name. Empty: `listen`.
    pub advertise: String,
    /// Seeds to join through, `HOST:PORT` each (`--join`); the node meets the seeds' peers
    /// through them.
    pub join: Vec<String>,
    /// Virtual nodes per member on the hash ring.
    pub vnodes: u32,
    /// Copies of a kept session's record on the members the ring names after its owner (they
    /// take it over when the owner leaves).
    pub replicas: u32,
    /// The fewest members up (this node included) for this node to serve sessions: below it —
    /// the minority side of a partition — session requests get 503 and nothing is taken over or
    /// handed off, so that only the majority serves them. 0: always serve (both sides of a
    /// partition serve). A majority of the cluster's size, e.g. 2 of 3.
    pub quorum: u32,
    /// How often the seeds (and members that left) are dialled again while not connected, in
    /// milliseconds.
    pub reconnect_interval: u64,
    /// How often each node beats to every peer, in milliseconds.
    pub heartbeat_interval: u64,
    /// A member not heard from for this long is cut off (a departure), in milliseconds.
    pub heartbeat_timeout: u64,
    /// How long a request forwarded to its session's owner may wait for the answer, in
    /// milliseconds.
    pub forward_timeout: u64,
    /// How a request is forwarded to its session's owner: `"http"`, over a kept-alive HTTP/1.1
    /// connection to the owner's HTTP listener (the forwarding lane), falling back to the
    /// cluster RPC when the owner's listener cannot be reached; `"rpc"`, always over the cluster
    /// RPC (ractor_cluster).
    pub forward_lane: String,
    /// Connections at most from this node to each other member's HTTP listener on the
    /// forwarding lane (a request that finds them all busy takes the cluster RPC).
    pub forward_lane_connections: u32,
    /// The registry's broadcasts (`list_changed`, `resources/updated`) made on this node within
    /// this many milliseconds go to the other nodes together, once each (the first at once).
    pub broadcast_window: u64,
    /// Resource URIs a second at most whose `resources/updated` this node sends to the others;
    /// past it the rest of a window is dropped, and logged.
    pub broadcast_rate: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: String::new(),
            advertise: String::new(),
            join: Vec::new(),
            vnodes: 100,
            replicas: 1,
            quorum: 0,
            reconnect_interval: 1000,
            heartbeat_interval: 1000,
            heartbeat_timeout: 5000,
            forward_timeout: 10_000,
            forward_lane: "http".to_owned(),
            forward_lane_connections: 32,
            broadcast_window: 50,
            broadcast_rate: 1000,
        }
    }
}

impl ClusterConfig {
    /// The first key out of range, and why.
    pub(crate) fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if !self.enabled {
            return None;
        }
        match self.listen.parse::<std::net::SocketAddr>() {
            Err(_) => {
                return Some((
                    "cluster.listen",
                    "must be an address such as 127.0.0.1:7420 when cluster.enabled",
                ));
            }
            Ok(addr) if addr.ip().is_unspecified() || addr.port() == 0 => {
                return Some((
                    "cluster.listen",
                    "must be an address other nodes can reach: not 0.0.0.0 or [::], not port 0",
                ));
            }
            Ok(_) => {}
        }
        if !self.advertise.is_empty() && !is_host_port(&self.advertise) {
            return Some((
                "cluster.advertise",
                "must be HOST:PORT (where other nodes reach this one), or empty",
            ));
        }
        if !self.join.iter().all(|seed| is_host_port(seed)) {
            return Some(("cluster.join", "each seed must be HOST:PORT"));
        }
        if !(1..=10_000).contains(&self.vnodes) {
            return Some(("cluster.vnodes", "must be between 1 and 10000"));
        }
        if self.quorum > 10_000 {
            return Some((
                "cluster.quorum",
                "must be at most 10000 members (0: no quorum)",
            ));
        }
        if self.reconnect_interval < 10 {
            return Some(("cluster.reconnect_interval", "must be at least 10 ms"));
        }
        if self.heartbeat_interval < 10 {
            return Some(("cluster.heartbeat_interval", "must be at least 10 ms"));
        }
        if self.heartbeat_timeout < 2 * self.heartbeat_interval {
            return Some((
                "cluster.heartbeat_timeout",
                "must be at least twice cluster.heartbeat_interval",
            ));
        }
        if !(100..=600_000).contains(&self.forward_timeout) {
            return Some((
                "cluster.forward_timeout",
                "must be between 100 and 600000 ms",
            ));
        }
        if !matches!(self.forward_lane.as_str(), "http" | "rpc") {
            return Some(("cluster.forward_lane", "must be \"http\" or \"rpc\""));
        }
        if !(1..=1024).contains(&self.forward_lane_connections) {
            return Some((
                "cluster.forward_lane_connections",
                "must be between 1 and 1024",
            ));
        }
        if !(1..=10_000).contains(&self.broadcast_window) {
            return Some(("cluster.broadcast_window", "must be between 1 and 10000 ms"));
        }
        if !(1..=1_000_000).contains(&self.broadcast_rate) {
            return Some((
                "cluster.broadcast_rate",
                "must be between 1 and 1000000 a second",
            ));
        }
        None
    }
}

/// `HOST:PORT` with a non-empty host and a port number.
fn is_host_port(seed: &str) -> bool {
    match seed.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_cluster_needs_no_address() {
        assert_eq!(ClusterConfig::default().invalid_key(), None);
    }

    #[test]
    fn an_enabled_cluster_needs_a_reachable_listen_address_and_host_port_seeds() {
        let mut cluster = ClusterConfig {
            enabled: true,
            listen: "0.0.0.0:7420".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(cluster.invalid_key().map(|k| k.0), Some("cluster.listen"));
        cluster.listen = "127.0.0.1:7420".into();
        assert_eq!(cluster.invalid_key(), None);
        cluster.advertise = "proxy.internal".into();
        assert_eq!(
            cluster.invalid_key().map(|k| k.0),
            Some("cluster.advertise")
        );
        cluster.advertise = "proxy.internal:17420".into();
        assert_eq!(cluster.invalid_key(), None);
        cluster.join = vec!["localhost:7421".into(), "nope".into()];
        assert_eq!(cluster.invalid_key().map(|k| k.0), Some("cluster.join"));
        cluster.join = vec!["localhost:7421".into(), "[::1]:7422".into()];
        assert_eq!(cluster.invalid_key(), None);
        cluster.vnodes = 0;
        assert_eq!(cluster.invalid_key().map(|k| k.0), Some("cluster.vnodes"));
        cluster.vnodes = 100;
        cluster.broadcast_window = 0;
        assert_eq!(
            cluster.invalid_key().map(|k| k.0),
            Some("cluster.broadcast_window")
        );
        cluster.broadcast_window = 50;
        cluster.quorum = 10_001;
        assert_eq!(cluster.invalid_key().map(|k| k.0), Some("cluster.quorum"));
        cluster.quorum = 2;
        assert_eq!(cluster.invalid_key(), None);
        cluster.broadcast_rate = 0;
        assert_eq!(
            cluster.invalid_key().map(|k| k.0),
            Some("cluster.broadcast_rate")
        );
    }
}
