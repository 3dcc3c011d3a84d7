//! Owns the application tree: which supervisor starts what, from the configuration, and the
//! tree's orderly start and stop.
//!
//! ```text
//! erlmcp_sup                       one_for_one
//! ├── erlmcp_core_sup              one_for_one
//! │   ├── erlmcp_store             worker: the state store's snapshots (first up, last down)
//! │   ├── erlmcp_registry          worker: the only writer of the registry snapshot
//! │   ├── erlmcp_admission         worker: the memory guard's sampling, the shedding log
//! │   ├── erlmcp_cache_sup         one_for_one: erlmcp_cache_l1, _l2, _l3 — one actor per
//! │   │                            cache tier (stats, warming, invalidation, compaction) [cache]
//! │   ├── erlmcp_session_sup       simple_one_for_one: one temporary session per client
//! │   ├── erlmcp_task_sup          simple_one_for_one: one temporary actor per task (tasks
//! │   │                            extension; records in the store's `tasks` table)
//! │   ├── erlmcp_plugin_sup        simple_one_for_one: one owner actor per loaded plugin
//! │   ├── erlmcp_pool_sup          one_for_one: one supervisor per pool
//! │   │   └── erlmcp_pool:NAME     one_for_one: its owner erlmcp_pool_owner:NAME (warms,
//! │   │                            replaces crashed workers, reaps overflow) [erlmcp_tool_pool, pools]
//! │   └── erlmcp_plugin_watch      worker: loads new and changed plugins of plugins.dir [watch]
//! ├── erlmcp_cluster_sup           rest_for_one: erlmcp_cluster_node (ractor_cluster's node
//! │                                server), erlmcp_cluster_members (membership),
//! │                                erlmcp_cluster_heartbeat (failure detector),
//! │                                erlmcp_cluster_plugins (rolling plugin loads),
//! │                                erlmcp_cluster_admin (the shell's `on`/`all`),
//! │                                erlmcp_cluster_broadcast (broadcasts relayed)  [cluster]
//! ├── erlmcp_transport_sup         one_for_one
//! │   ├── erlmcp_tcp_connections   simple_one_for_one: one temporary actor per connection  [tcp]
//! │   ├── erlmcp_tcp               worker: the listener                                   [tcp]
//! │   ├── erlmcp_http              worker: Streamable HTTP at /mcp                        [http]
//! │   └── erlmcp_stdio             temporary worker: the stdin/stdout connection          [stdio]
//! └── erlmcp_observability_sup     one_for_one
//!     ├── erlmcp_metrics           worker: samples metrics, keeps history, raises alerts
//!     ├── erlmcp_admin_connections simple_one_for_one: one temporary actor per admin peer
//!     ├── erlmcp_admin             worker: the admin socket (erlmcp remote)             [admin]
//!     └── erlmcp_admin_http        worker: /metrics and the dashboard            [admin.http]
//! ```
//!
//! Every supervisor is registered in ractor's registry under its name, so only one application
//! tree can run per process.

use crate::admin::http::{AdminHttp, AdminHttpArgs};
use crate::admin::{AdminContext, AdminListener, AdminListenerArgs, admin_connection_template};
use crate::admission::Admission;
use crate::admission::actor::AdmissionWorker;
use crate::cluster::{ClusterSettings, ClusterView};
use crate::config::Config;
use crate::dispatch::ServerContext;
use crate::metrics::ConnectionStats;
use crate::metrics::Metrics;
use crate::metrics::collector::{Collector, MetricsHub};
use crate::plugin_host::owner::owner_template;
use crate::plugin_host::watch::{PluginWatch, PluginWatchArgs};
use crate::pool::named::PoolSet;
use crate::pool::tool_pool::ToolSlots;
use crate::pool::{Pool, PoolError, TOOL_POOL};
use crate::protocol::messages::Implementation;
use crate::registry::{
    Change, REGISTRY, Registry, RegistryError, RegistryHandle, RegistrySnapshot,
};
use crate::session::{SESSION_SUP, SessionSettings, session_template};
use crate::store::actor::StoreOwner;
use crate::store::{Store, StoreSettings};
use crate::transport::TransportContext;
use crate::transport::lines::LineLimits;
use crate::transport::tcp::{BoundAddr, tcp_children};
use crate::transport::tls::{TlsFiles, TlsServer};
use crate::tree_names::{POOL_SUP, STORE, TASK_SUP};
use erlmcp_supervisors::{
    ChildSpec, SupervisorError, SupervisorRef, SupervisorSnapshot, SupervisorSpec,
};
use ractor::concurrency::JoinHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use crate::tree_names::{
    ADMIN, ADMIN_CONNECTIONS, ADMIN_HTTP, ADMISSION, COLLECTOR, CORE_SUP, OBSERVABILITY_SUP,
    PLUGIN_SUP, PLUGIN_WATCH, ROOT_SUP, TRANSPORT_SUP,
};

/// Why the application could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The tree failed to start; the message names the child at fault at every level.
    #[error("the supervision tree failed to start: {0}")]
    Start(#[source] SupervisorError),
    /// The plugin staging directory could not be prepared, or is not private to the node.
    #[error(transparent)]
    Plugins(crate::plugin_host::staging::StagingError),
    /// The initial registrations were refused.
    #[error("invalid registrations: {0}")]
    Registry(#[source] RegistryError),
    /// The node cookie could not be read or created.
    #[error("{0}")]
    Cookie(#[source] crate::admin::cookie::CookieError),
    /// A pool could not be declared.
    #[error("{0}")]
    Pool(#[source] PoolError),
    /// A TLS file could not be loaded (the message names it).
    #[error(transparent)]
    Tls(crate::transport::tls::TlsError),
    /// The tree did not stop within the shutdown timeout.
    #[error("the supervision tree did not stop within {0:?}")]
    StopTimeout(Duration),
}

/// What the tree is built from, besides the configuration.
struct TreeParts {
    registry: RegistryHandle,
    plugins: Option<Arc<crate::plugin_host::PluginHost>>,
    transport: TransportContext,
    stdio_closed: Arc<Notify>,
    tcp_bound: BoundAddr,
    http_bound: BoundAddr,
    hub: Arc<MetricsHub>,
    /// Present when the admin channel or the admin HTTP listener runs.
    admin: Option<Arc<AdminContext>>,
    admin_tcp_bound: BoundAddr,
    admin_http_bound: BoundAddr,
    /// The pools under `erlmcp_pool_sup`: the tool pool and the embedding program's.
    pools: PoolSet,
    /// The result cache, when `cache.enabled`: its tiers' actors run under `erlmcp_cache_sup`.
    cache: Option<Arc<crate::cache::Cache>>,
    /// Who may call over HTTP (`[auth]`, `http.bearer_token`).
    auth: Option<Arc<crate::auth::Auth>>,
    /// The state store, restored before the tree starts.
    store: Arc<Store>,
    /// The cluster, when `cluster.enabled`: its settings and the view its membership publishes.
    cluster: Option<(ClusterSettings, Arc<ClusterView>)>,
}

/// The children of `erlmcp_observability_sup`.
fn observability_spec(
    config: &Config,
    parts: &TreeParts,
    intensity: (u32, Duration),
) -> SupervisorSpec {
    let hub = Arc::clone(&parts.hub);
    let interval = Duration::from_millis(config.metrics_interval);
    let mut spec = SupervisorSpec::one_for_one()
        .named(OBSERVABILITY_SUP)
        .intensity(intensity.0, intensity.1)
        .child(ChildSpec::named_actor(COLLECTOR, COLLECTOR, move || {
            (Collector, (Arc::clone(&hub), interval))
        }));
    let Some(ctx) = &parts.admin else {
        return spec;
    };
    spec = spec.child(ChildSpec::supervisor(
        ADMIN_CONNECTIONS,
        SupervisorSpec::simple_one_for_one(admin_connection_template())
            .named(ADMIN_CONNECTIONS)
            .intensity(intensity.0, intensity.1),
    ));
    if config.admin.enabled {
        let args = AdminListenerArgs {
            ctx: Arc::clone(ctx),
            socket: config.admin_socket(),
            tcp: config.admin.tcp.parse().ok(),
            tcp_bound: Arc::clone(&parts.admin_tcp_bound),
            tls: parts.transport.tls.clone(),
        };
        spec = spec.child(ChildSpec::named_actor(ADMIN, ADMIN, move || {
            (AdminListener, args.clone())
        }));
    }
    if let Ok(addr) = config.admin.http.parse() {
        let args = AdminHttpArgs {
            ctx: Arc::clone(ctx),
            addr,
            bound: Arc::clone(&parts.admin_http_bound),
            tls: parts.transport.tls.clone(),
        };
        spec = spec.child(ChildSpec::named_actor(ADMIN_HTTP, ADMIN_HTTP, move || {
            (AdminHttp, args.clone())
        }));
    }
    spec
}

/// The specification of the whole tree.
fn tree_spec(config: &Config, parts: &TreeParts) -> SupervisorSpec {
    let intensity = (
        config.supervision.max_restarts,
        Duration::from_millis(config.supervision.period),
    );
    let sup = |name: &str| {
        SupervisorSpec::one_for_one()
            .named(name)
            .intensity(intensity.0, intensity.1)
    };
    let published = parts.registry.published();
    let admission = Arc::clone(&parts.transport.server.admission);
    let store = Arc::clone(&parts.store);
    let core = sup(CORE_SUP)
        .child(ChildSpec::named_actor(STORE, STORE, move || {
            (StoreOwner, Arc::clone(&store))
        }))
        .child(ChildSpec::named_actor(REGISTRY, REGISTRY, move || {
            (Registry, Arc::clone(&published))
        }))
        .child(ChildSpec::named_actor(ADMISSION, ADMISSION, move || {
            (AdmissionWorker, Arc::clone(&admission))
        }))
        .child(ChildSpec::supervisor(
            SESSION_SUP,
            SupervisorSpec::simple_one_for_one(session_template())
                .named(SESSION_SUP)
                .intensity(intensity.0, intensity.1),
        ))
        .child(ChildSpec::supervisor(
            TASK_SUP,
            SupervisorSpec::simple_one_for_one(crate::tasks::actor::task_template())
                .named(TASK_SUP)
                .intensity(intensity.0, intensity.1),
        ))
        .child(ChildSpec::supervisor(
            PLUGIN_SUP,
            SupervisorSpec::simple_one_for_one(owner_template())
                .named(PLUGIN_SUP)
                .intensity(intensity.0, intensity.1),
        ))
        .child(ChildSpec::supervisor(
            POOL_SUP,
            parts.pools.supervisors(intensity).into_iter().fold(
                SupervisorSpec::one_for_one()
                    .named(POOL_SUP)
                    .intensity(intensity.0, intensity.1),
                SupervisorSpec::child,
            ),
        ));
    let core = match &parts.cache {
        Some(cache) => core.child(crate::cache::actor::cache_sup(cache, intensity)),
        None => core,
    };
    let core = match &parts.plugins {
        Some(host) if config.plugins.watch => {
            let args = PluginWatchArgs {
                dir: std::path::PathBuf::from(&config.plugins.dir),
                interval: Duration::from_millis(config.plugins.watch_interval),
                host: Arc::clone(host),
            };
            core.child(ChildSpec::named_actor(
                PLUGIN_WATCH,
                PLUGIN_WATCH,
                move || (PluginWatch, args.clone()),
            ))
        }
        _ => core,
    };
    let mut transport = sup(TRANSPORT_SUP);
    if config.tcp.enabled {
        for child in tcp_children(
            config.tcp.addr,
            config.tcp_opts.clone(),
            parts.transport.clone(),
            Arc::clone(&parts.tcp_bound),
            intensity,
        ) {
            transport = transport.child(child);
        }
    }
    if config.http.enabled {
        let http = &config.http;
        let auth = &parts.auth;
        let args = crate::transport::http::HttpListenerArgs {
            addr: http.addr,
            backlog: config.tcp_opts.backlog,
            ctx: parts.transport.clone(),
            settings: crate::transport::http::HttpSettings {
                session_timeout: Duration::from_millis(http.session_timeout),
                allowed_hosts: http.allowed_hosts.clone(),
                allowed_origins: http.allowed_origins.clone(),
                auth: auth.clone(),
                get_stream: http.get_stream,
                sse_retry: Duration::from_millis(http.sse_retry),
                keep_alive: Duration::from_millis(http.keep_alive),
                replay_buffer: http.replay_buffer,
                header_read_timeout: Duration::from_millis(http.header_read_timeout),
                pipeline_flush: http.pipeline_flush,
                max_head_bytes: http.max_head_bytes,
                fast_lane: http.fast_lane,
                ws_compression: http.ws_compression,
                body_read_timeout: Duration::from_millis(http.body_read_timeout),
                max_pending_body_bytes: http.max_pending_body_bytes,
                max_sessions: http.max_sessions,
                max_sessions_per_client: http.max_sessions_per_client,
            },
            bound: Arc::clone(&parts.http_bound),
            store: Arc::clone(&parts.store),
            max_stored_sessions: config.store.max_sessions,
        };
        transport = transport.child(ChildSpec::named_actor(
            crate::transport::http::HTTP,
            crate::transport::http::HTTP,
            move || (crate::transport::http::HttpListener, args.clone()),
        ));
    }
    if config.stdio.enabled {
        transport = transport.child(crate::transport::stdio::stdio_child(
            parts.transport.clone(),
            Arc::clone(&parts.stdio_closed),
        ));
    }
    let root = sup(ROOT_SUP).child(ChildSpec::supervisor(CORE_SUP, core));
    let root = match &parts.cluster {
        Some((settings, view)) => {
            let load = crate::cluster::LocalLoad {
                stats: Arc::clone(&parts.transport.stats),
                admission: Arc::clone(&parts.transport.server.admission),
            };
            let relay = crate::registry::relay::relay_child(crate::registry::relay::RelayArgs {
                registry: parts.registry.clone(),
                name: settings.name.clone(),
                window: settings.broadcast_window,
                rate: settings.broadcast_rate,
            });
            let workers = parts
                .plugins
                .iter()
                .map(|host| crate::plugin_host::cluster::cluster_plugins_child(host, view.name()))
                .chain(parts.admin.iter().map(|ctx| {
                    crate::admin::commands::cluster::cluster_admin_child(ctx, view.name())
                }))
                .chain(std::iter::once(relay))
                .collect();
            root.child(crate::cluster::cluster_sup(
                settings, view, load, intensity, workers,
            ))
        }
        None => root,
    };
    root.child(ChildSpec::supervisor(TRANSPORT_SUP, transport))
        .child(ChildSpec::supervisor(
            OBSERVABILITY_SUP,
            observability_spec(config, parts, intensity),
        ))
}

/// Loads every `*.so` in `dir`, in name order; failures are logged and skipped. A directory that
/// is not trusted (see `plugin_host::trust`) is refused whole, with the reason.
async fn load_plugin_dir(host: &crate::plugin_host::PluginHost, dir: &std::path::Path) {
    use crate::plugin_host::trust::{check_dir, effective_uid};
    if let Err(e) = check_dir(dir, effective_uid()) {
        tracing::error!(dir = %dir.display(), reason = %e, "plugin directory refused: nothing loaded from it");
        return;
    }
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect(),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the plugin directory");
            return;
        }
    };
    files.sort();
    for file in files {
        match host.load(&file, serde_json::Value::Null).await {
            Ok(info) => {
                tracing::info!(file = %file.display(), plugin = %info.name, version = %info.version, "plugin loaded at start")
            }
            Err(e) => tracing::error!(file = %file.display(), error = %e, "plugin not loaded"),
        }
    }
}

/// A running application tree.
#[derive(Debug)]
pub struct Application {
    root: SupervisorRef,
    exited: JoinHandle<()>,
    shutdown_timeout: Duration,
    registry: RegistryHandle,
    stdio_closed: Arc<Notify>,
    tcp_bound: BoundAddr,
    http_bound: BoundAddr,
    stats: Arc<ConnectionStats>,
    plugins: Arc<crate::plugin_host::PluginHost>,
    hub: Arc<MetricsHub>,
    admin_tcp_bound: BoundAddr,
    admin_http_bound: BoundAddr,
    pools: PoolSet,
    store: Arc<Store>,
    /// Reloads the TLS files when they change (`tls.reload_interval`).
    tls_watch: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RegistryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryHandle")
            .field("version", &self.snapshot().version)
            .finish()
    }
}

impl Application {
    /// Starts the tree described by `config`, serving the demo toolset if configured.
    pub async fn start(config: &Config) -> Result<Self, AppError> {
        Self::start_with(config, Vec::new()).await
    }

    /// Starts the tree, registering `changes` (tools, resources, prompts of the embedding
    /// program) as one batch before anything is served.
    pub async fn start_with(config: &Config, changes: Vec<Change>) -> Result<Self, AppError> {
        Self::start_with_pools(config, changes, PoolSet::new()).await
    }

    /// Starts the tree with `changes` registered and the embedding program's `pools` (each
    /// sized by its `[pools.NAME]`) beside the tool pool, each under `erlmcp_pool_sup`. Handlers
    /// reach a pool through the handle [`PoolSet::add`] returned, or by name
    /// ([`crate::pool::named::pool`]).
    pub async fn start_with_pools(
        config: &Config,
        changes: Vec<Change>,
        mut pools: PoolSet,
    ) -> Result<Self, AppError> {
        if !pools.contains(TOOL_POOL) {
            pools
                .add(config, TOOL_POOL, ToolSlots)
                .map_err(AppError::Pool)?;
        }
        let mut initial = Vec::new();
        if config.demo {
            initial.extend(crate::demo::demo_changes());
        }
        initial.extend(changes);
        let (snapshot, _) = RegistrySnapshot::default()
            .apply(initial)
            .map_err(AppError::Registry)?;
        let registry = RegistryHandle::new(snapshot);
        let stats = Arc::new(ConnectionStats::default());
        let descriptors = crate::transport::descriptors::DescriptorBudget::of_this_process();
        let metrics = Arc::new(Metrics::default());
        // Before anything starts: a certificate that does not load stops the node here.
        let tls = if config.tls.enabled {
            Some(
                TlsServer::start(
                    TlsFiles::of(&config.tls),
                    config.tls.handshake_timeout(),
                    Arc::clone(&metrics),
                )
                .map_err(AppError::Tls)?,
            )
        } else {
            None
        };
        let admission = Arc::new(Admission::new(&config.admission_settings()));
        let hub = MetricsHub::new(
            &config.node_name,
            Arc::clone(&metrics),
            config.admin.retention,
            &config.alerts,
            Arc::clone(&stats),
            Arc::clone(&admission),
        );
        let parts = TreeParts {
            transport: TransportContext {
                server: Arc::new(ServerContext {
                    registry: registry.clone(),
                    page_size: config.page_size,
                    server_info: Implementation {
                        name: "erlmcp".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    },
                    instructions: None,
                    metrics,
                    max_batch_size: config.max_batch_size,
                    max_message_size: config.max_message_size,
                    admission: Arc::clone(&admission),
                }),
                limits: LineLimits {
                    max_message_size: config.max_message_size,
                    read_buffer: config.tcp_opts.buffer,
                    idle_timeout: config.idle_timeout(),
                    write_timeout: config.write_timeout(),
                    hibernate_after: (config.connection_hibernate_after > 0)
                        .then(|| Duration::from_millis(config.connection_hibernate_after)),
                    high_watermark: config.tcp_opts.high_watermark,
                    queue_size: config.queue_size,
                },
                sessions: SessionSettings {
                    client_request_timeout: Duration::from_millis(config.client_request_timeout),
                    hibernate_after: (config.hibernate_after > 0)
                        .then(|| Duration::from_millis(config.hibernate_after)),
                },
                max_connections: descriptors.effective_max_connections(config.max_connections),
                max_refusals: descriptors.refusals(),
                stats: Arc::clone(&stats),
                tls: tls.clone(),
            },
            registry,
            plugins: None,
            stdio_closed: Arc::new(Notify::new()),
            tcp_bound: BoundAddr::default(),
            http_bound: BoundAddr::default(),
            hub,
            admin: None,
            admin_tcp_bound: BoundAddr::default(),
            admin_http_bound: BoundAddr::default(),
            pools,
            cache: config
                .cache
                .enabled
                .then(|| Arc::new(crate::cache::Cache::new(config.cache_settings()))),
            store: Store::open(StoreSettings::of(config)),
            cluster: None,
            auth: crate::auth::Auth::from_config(&config.auth, &config.http.bearer_token),
        };
        crate::auth::install(parts.auth.clone());
        if let Some(cache) = &parts.cache {
            crate::cache::install(Arc::clone(cache));
        }
        crate::store::install(Arc::clone(&parts.store));
        let tasks = crate::tasks::Tasks::new(
            Arc::clone(&parts.store),
            parts.registry.clone(),
            crate::tasks::TaskSettings::of(config),
            Duration::from_millis(config.client_request_timeout),
        );
        crate::tasks::install(Arc::clone(&tasks));
        let plugins =
            crate::plugin_host::PluginHost::new(parts.registry.clone(), config.plugin_staging())
                .map_err(AppError::Plugins)?;
        let mut parts = parts;
        parts.plugins = Some(Arc::clone(&plugins));
        // The node cookie: the admin channel's, and the cluster's.
        let cookie = if config.admin.enabled
            || !config.admin.http.is_empty()
            || config.cluster.enabled
        {
            crate::admin::cookie::load_or_create(config.cookie.as_deref(), &config.cookie_file())
                .map_err(AppError::Cookie)?
        } else {
            String::new()
        };
        parts.cluster = ClusterSettings::of(config, &cookie).map(|settings| {
            let view = Arc::new(ClusterView::new(&settings));
            crate::cluster::install(Arc::clone(&view));
            (settings, view)
        });
        if config.admin.enabled || !config.admin.http.is_empty() {
            parts.admin = Some(Arc::new(AdminContext {
                node: config.node_name.clone(),
                cookie,
                config: config.clone(),
                registry: parts.registry.clone(),
                plugins: Arc::clone(&plugins),
                hub: Arc::clone(&parts.hub),
                stats: Arc::clone(&stats),
            }));
        }
        parts.pools.publish();
        let (root, exited) = match SupervisorRef::start(tree_spec(config, &parts)).await {
            Ok(started) => started,
            Err(e) => {
                parts.pools.close();
                crate::cache::uninstall();
                crate::auth::install(None);
                crate::store::uninstall();
                crate::tasks::uninstall();
                crate::cluster::uninstall();
                return Err(AppError::Start(e));
            }
        };
        if !config.plugins.dir.is_empty() {
            load_plugin_dir(&plugins, std::path::Path::new(&config.plugins.dir)).await;
        }
        // After the plugins: a task resumed from the store may run a plugin's tool.
        tasks.resume().await;
        let tls_watch = tls
            .as_ref()
            .zip(config.tls.reload_interval())
            .map(|(tls, interval)| tls.watch(interval));
        Ok(Self {
            root,
            exited,
            shutdown_timeout: config.shutdown_timeout(),
            registry: parts.registry,
            stdio_closed: parts.stdio_closed,
            tcp_bound: parts.tcp_bound,
            http_bound: parts.http_bound,
            stats,
            plugins,
            hub: parts.hub,
            admin_tcp_bound: parts.admin_tcp_bound,
            admin_http_bound: parts.admin_http_bound,
            pools: parts.pools,
            store: parts.store,
            tls_watch,
        })
    }

    /// The running pool `name` (the tool pool `erlmcp_tool_pool`, or one the embedding program
    /// added), whose workers are `W`.
    pub fn pool<W: Send + 'static>(&self, name: &str) -> Result<Pool<W>, PoolError> {
        crate::pool::named::pool(name)
    }

    /// The state store: its tables, and the stream of its changes (the replication hook).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The registry: read what is served, or change it.
    pub fn registry(&self) -> &RegistryHandle {
        &self.registry
    }

    /// Where the TCP listener bound, if it runs.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_bound.get().copied()
    }

    /// The node's plugin host: load, swap, roll back handler plugins.
    pub fn plugins(&self) -> &Arc<crate::plugin_host::PluginHost> {
        &self.plugins
    }

    /// Where the HTTP listener bound, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_bound.get().copied()
    }

    /// Metrics, their history and alerts.
    pub fn metrics(&self) -> &Arc<MetricsHub> {
        &self.hub
    }

    /// Where the admin HTTP listener (`/metrics`, dashboard) bound, if it runs.
    pub fn admin_http_addr(&self) -> Option<SocketAddr> {
        self.admin_http_bound.get().copied()
    }

    /// Where the admin channel's TCP listener bound, if it runs.
    pub fn admin_tcp_addr(&self) -> Option<SocketAddr> {
        self.admin_tcp_bound.get().copied()
    }

    /// Connection counters.
    pub fn connection_stats(&self) -> &Arc<ConnectionStats> {
        &self.stats
    }

    /// Notified when the stdio client has closed stdin.
    pub fn stdio_closed(&self) -> Arc<Notify> {
        Arc::clone(&self.stdio_closed)
    }

    /// The root supervisor.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// A snapshot of the whole tree.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, SupervisorError> {
        self.root.snapshot().await
    }

    /// Resolves when the root supervisor has stopped by itself (its restart intensity was
    /// exceeded: the failure escalated to the top).
    pub async fn exited(&mut self) {
        let _ = (&mut self.exited).await;
    }

    /// Stops the tree gracefully: every supervisor stops its children in reverse start order.
    /// The plugin staging directory is removed once the tree has stopped.
    pub async fn stop(self) -> Result<(), AppError> {
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        let timeout = self.shutdown_timeout;
        let stopped = match self.root.stop(Some(timeout)).await {
            Ok(()) => Ok(()),
            // Already stopped by itself: nothing left to stop.
            Err(_) if self.exited.is_finished() => Ok(()),
            Err(_) => Err(AppError::StopTimeout(timeout)),
        };
        self.plugins.remove_staging();
        self.pools.close();
        crate::cache::uninstall();
        crate::auth::install(None);
        crate::store::uninstall();
        crate::tasks::uninstall();
        crate::cluster::uninstall();
        stopped
    }
}
