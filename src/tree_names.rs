//! The registered names of the supervision tree (supervisors, workers, process groups), in one
//! place below every module that starts a child or looks one up: `app` starts the tree under these
//! names; `admin`, `metrics` and the rest find its members by them without importing `app`.

// The application's supervisors.

/// The root supervisor's registered name.
pub(crate) const ROOT_SUP: &str = "erlmcp_sup";

/// The core supervisor (registry, sessions, plugins).
pub(crate) const CORE_SUP: &str = "erlmcp_core_sup";

/// The transport supervisor (listeners and their connections).
pub(crate) const TRANSPORT_SUP: &str = "erlmcp_transport_sup";

/// The observability supervisor (metrics, alerts, admin channel).
pub(crate) const OBSERVABILITY_SUP: &str = "erlmcp_observability_sup";

// The core.

/// The state store's worker (snapshots on an interval and at a graceful stop).
pub(crate) const STORE: &str = "erlmcp_store";

/// The registry actor's registered name.
pub const REGISTRY: &str = "erlmcp_registry";

/// The dynamic supervisor of sessions.
pub const SESSION_SUP: &str = "erlmcp_session_sup";

/// The dynamic supervisor of tasks (the tasks extension): one temporary actor per task.
pub(crate) const TASK_SUP: &str = "erlmcp_task_sup";

/// The process group every session joins, for registry broadcasts.
pub(crate) const SESSIONS_GROUP: &str = "erlmcp_sessions";

/// The dynamic supervisor of plugin owners.
pub(crate) const PLUGIN_SUP: &str = "erlmcp_plugin_sup";

/// The admission point's worker (memory guard sampling, shedding log).
pub(crate) const ADMISSION: &str = "erlmcp_admission";

/// The plugin directory watcher's registered name.
pub(crate) const PLUGIN_WATCH: &str = "erlmcp_plugin_watch";

// Transports.

/// The stdio worker's registered name.
pub(crate) const STDIO: &str = "erlmcp_stdio";

/// The TCP listener's registered name.
pub(crate) const TCP: &str = "erlmcp_tcp";

/// The supervisor of TCP connections.
pub(crate) const TCP_CONNECTIONS: &str = "erlmcp_tcp_connections";

/// The HTTP listener's registered name.
pub(crate) const HTTP: &str = "erlmcp_http";

// Observability.

/// The metrics collector's registered name.
pub(crate) const COLLECTOR: &str = "erlmcp_metrics";

/// The admin listener's registered name.
pub(crate) const ADMIN: &str = "erlmcp_admin";

/// The supervisor of admin connections.
pub(crate) const ADMIN_CONNECTIONS: &str = "erlmcp_admin_connections";

/// The admin HTTP listener's registered name.
pub(crate) const ADMIN_HTTP: &str = "erlmcp_admin_http";

// Pools.

/// The supervisor of the pools' own supervisors (`erlmcp_pool:NAME`, one per pool).
pub(crate) const POOL_SUP: &str = "erlmcp_pool_sup";

// The cache.

/// The supervisor of the cache tiers' actors.
pub(crate) const CACHE_SUP: &str = "erlmcp_cache_sup";

/// The in-memory tier's actor.
pub(crate) const CACHE_L1: &str = "erlmcp_cache_l1";

/// The shared tier's actor (a single-node stand-in).
pub(crate) const CACHE_L2: &str = "erlmcp_cache_l2";

/// The disk tier's actor.
pub(crate) const CACHE_L3: &str = "erlmcp_cache_l3";

// The cluster.

/// The cluster's supervisor (node server and membership).
pub(crate) const CLUSTER_SUP: &str = "erlmcp_cluster_sup";

/// ractor_cluster's node server: the cluster listener and one session per peer node.
pub(crate) const CLUSTER_NODE: &str = "erlmcp_cluster_node";

/// The membership actor: joins, departures, refusals, dialling seeds.
pub(crate) const CLUSTER_MEMBERS: &str = "erlmcp_cluster_members";

/// The heartbeat actor, and the process group (mirrored on every node) it is in.
pub(crate) const CLUSTER_HEARTBEAT: &str = "erlmcp_cluster_heartbeat";

/// The worker under [`CLUSTER_SUP`] that loads, undoes and lists plugins on this node for a
/// rolling load started on another member (src/plugin_host/cluster.rs).
pub(crate) const CLUSTER_PLUGINS: &str = "erlmcp_cluster_plugins";

/// The worker under [`CLUSTER_SUP`] that answers shell commands for another member
/// (`on NODE …`, `all …`: src/admin/commands/cluster.rs).
pub(crate) const CLUSTER_ADMIN: &str = "erlmcp_cluster_admin";

/// The relay of the registry's broadcasts to the other nodes, and its process group.
pub(crate) const CLUSTER_BROADCAST: &str = "erlmcp_cluster_broadcast";
