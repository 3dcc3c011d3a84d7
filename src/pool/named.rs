//! Owns the pools a node runs, found by name: the set an application is started with
//! ([`PoolSet`]: the tool pool and the embedding program's own), and the process-wide table
//! handlers, `erlmcp remote pools` and `/metrics` read. One tree runs per process (its actors are
//! registered by name in ractor's registry), so one table of pools per process matches it.

use super::owner::pool_supervisor;
use super::{Pool, PoolError, PoolStats, WorkerFactory};
use crate::config::Config;
use erlmcp_supervisors::ChildSpec;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// A pool of any worker type, as the node holds it.
pub(crate) trait AnyPool: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> PoolStats;
    fn close(&self);
    fn as_any(&self) -> &dyn Any;
    fn supervisor(&self, intensity: (u32, Duration)) -> ChildSpec;
}

impl<W: Send + 'static> AnyPool for Pool<W> {
    fn name(&self) -> &str {
        Pool::name(self)
    }
    fn stats(&self) -> PoolStats {
        Pool::stats(self)
    }
    fn close(&self) {
        Pool::close(self);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn supervisor(&self, intensity: (u32, Duration)) -> ChildSpec {
        pool_supervisor(self.clone(), intensity)
    }
}

type Table = BTreeMap<String, Arc<dyn AnyPool>>;

/// The pools of the running node.
static RUNNING: RwLock<Table> = RwLock::new(BTreeMap::new());

/// The pools an application starts with, each under its own supervisor in `erlmcp_pool_sup`.
///
/// An embedding program lends its own resources to its handlers through a pool: it registers a
/// factory under a name, the sizes come from `[pools.NAME]` of the configuration, and a handler
/// checks a worker out (`docs/embedding.md`, "Pools of your own resources"):
/// ```
/// use erlmcp::pool::named::PoolSet;
/// use erlmcp::pool::{WorkerError, WorkerFactory};
/// use erlmcp::protocol::messages::{CallToolResult, Tool};
/// use erlmcp::registry::{Arguments, Change, ToolEntry, ToolError};
/// use erlmcp::session::RequestContext;
///
/// /// Stands for a database client.
/// struct DbClient { queries: u64 }
///
/// struct DbClients;
///
/// impl WorkerFactory for DbClients {
///     type Worker = DbClient;
///     async fn create(&self) -> Result<DbClient, WorkerError> {
///         Ok(DbClient { queries: 0 }) // connect here
///     }
///     fn is_healthy(&self, client: &mut DbClient) -> bool {
///         client.queries < 1_000_000 // e.g. the socket is still open
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let mut config = erlmcp::config::Config::embedded()?;
/// config.demo = false;
/// config.admin.enabled = false;
/// config.http.addr = "127.0.0.1:0".parse()?;
/// // Sizes from the config file, as `[pools.db]` would set them.
/// config.pools.insert("db".into(), toml::from_str("size = 4\nmax_overflow = 2\n")?);
///
/// let mut pools = PoolSet::new();
/// let db = pools.add(&config, "db", DbClients)?;
/// let query = ToolEntry::new(
///     Tool::new("query", "Runs a query", serde_json::json!({"type": "object"})),
///     move |_ctx: RequestContext, _args: Arguments| {
///         let db = db.clone();
///         async move {
///             // Waits (in line) up to pools.db.checkout_timeout; the client goes back to the
///             // pool when `client` is dropped, even if this call is cancelled.
///             let mut client = db.checkout().await.map_err(|e| ToolError::new(e.to_string()))?;
///             client.queries += 1;
///             Ok(CallToolResult::text(format!("query {} done", client.queries)))
///         }
///     },
/// );
/// let app = erlmcp::app::Application::start_with_pools(&config, vec![Change::Tool(query)], pools)
///     .await?;
/// // Also found by name, with its worker type.
/// assert_eq!(app.pool::<DbClient>("db")?.stats().idle, 4);
/// app.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Default, Clone)]
pub struct PoolSet {
    pools: Vec<Arc<dyn AnyPool>>,
}

impl std::fmt::Debug for PoolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pools.iter().map(|p| p.name().to_owned()))
            .finish()
    }
}

impl PoolSet {
    /// No pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds pool `name`, its workers made by `factory`, sized by `[pools.NAME]` of `config`;
    /// the handle is usable at once (handlers capture it), its workers are made when the node
    /// starts. A name already in the set is refused.
    pub fn add<F: WorkerFactory>(
        &mut self,
        config: &Config,
        name: &str,
        factory: F,
    ) -> Result<Pool<F::Worker>, PoolError> {
        if self.pools.iter().any(|p| p.name() == name) {
            return Err(PoolError::Duplicate {
                pool: name.to_owned(),
            });
        }
        let pool = Pool::new(name, &config.pool(name), factory);
        self.pools.push(Arc::new(pool.clone()));
        Ok(pool)
    }

    /// Whether a pool named `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name() == name)
    }

    /// The supervisors of the set's pools, in the order they were added.
    pub(crate) fn supervisors(&self, intensity: (u32, Duration)) -> Vec<ChildSpec> {
        self.pools.iter().map(|p| p.supervisor(intensity)).collect()
    }

    /// Makes the set's pools the ones found by name (replacing any of a previous node).
    pub(crate) fn publish(&self) {
        let mut running = RUNNING.write().unwrap_or_else(PoisonError::into_inner);
        running.clear();
        for pool in &self.pools {
            running.insert(pool.name().to_owned(), Arc::clone(pool));
        }
    }

    /// Closes the set's pools and forgets them (the node stops).
    pub(crate) fn close(&self) {
        let mut running = RUNNING.write().unwrap_or_else(PoisonError::into_inner);
        for pool in &self.pools {
            pool.close();
            if running
                .get(pool.name())
                .is_some_and(|p| Arc::ptr_eq(p, pool))
            {
                running.remove(pool.name());
            }
        }
    }
}

/// The running pool `name`, whose workers are `W`.
pub fn pool<W: Send + 'static>(name: &str) -> Result<Pool<W>, PoolError> {
    let running = RUNNING.read().unwrap_or_else(PoisonError::into_inner);
    let found = running.get(name).ok_or_else(|| PoolError::Unknown {
        pool: name.to_owned(),
    })?;
    found
        .as_any()
        .downcast_ref::<Pool<W>>()
        .cloned()
        .ok_or_else(|| PoolError::WrongType {
            pool: name.to_owned(),
        })
}

/// The stats of every running pool, by name.
pub fn all_stats() -> Vec<PoolStats> {
    let running = RUNNING.read().unwrap_or_else(PoisonError::into_inner);
    running.values().map(|p| p.stats()).collect()
}
