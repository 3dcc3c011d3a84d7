//! Owns hot-swappable handler plugins: loading a version ([`loader`]), registering its tools,
//! swapping it in atomically, keeping a bounded history, and rolling back.
//!
//! Rules:
//! - A load that fails at any step leaves the current version serving, untouched, and says which
//!   step failed and why ([`loader::LoadError`]).
//! - Each plugin name has one slot, an `ArcSwap` of the current version. Its tools are registered
//!   in the registry with handlers that read the slot on every call, so a swap redirects new calls
//!   at once while calls in flight finish on the version they started with (each holds an `Arc`).
//! - The replaced version goes to a history of at most [`HISTORY`] versions; `rollback` brings
//!   back the newest one (with the state it had).
//! - Canary: a candidate version may take a share of calls (per mille). A canary call that fails
//!   (an error, a panic, or an `isError` result) is retried on the current version, so the client
//!   never sees it; once [`CANARY_MIN_CALLS`] canary calls have been made, an error rate above
//!   [`CANARY_MAX_ERROR_RATE`] aborts the canary. `promote` makes it current.
//! - The staging directory is emptied when the host starts.
//! - Each plugin has an owner actor under `erlmcp_plugin_sup` ([`owner`]); every change to the
//!   plugin runs in its turn, one at a time. Calls never pass through it.

pub mod loader;
pub mod owner;
pub mod watch;

use crate::locks::lock;
use crate::protocol::messages::{CallToolResult, Tool};
use crate::registry::{Arguments, Change, RegistryError, RegistryHandle, ToolEntry, ToolError};
use crate::session::RequestContext;
use arc_swap::{ArcSwap, ArcSwapOption};
use loader::{LoadError, LoadedPlugin};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Versions kept for rollback, per plugin.
pub const HISTORY: usize = 4;
/// Canary calls made before its error rate can abort it.
pub const CANARY_MIN_CALLS: u64 = 20;
/// The canary error rate above which it is aborted.
pub const CANARY_MAX_ERROR_RATE: f64 = 0.05;

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Loading failed at a step; nothing changed.
    #[error("plugin load failed at {0}")]
    Load(#[from] LoadError),
    /// Its tools could not be registered; nothing changed.
    #[error("plugin tools could not be registered: {0}")]
    Register(#[from] RegistryError),
    /// No such plugin.
    #[error("no plugin named `{0}`")]
    Unknown(String),
    /// A canary must serve exactly the tools of the current version.
    #[error("canary `{0}` does not serve the same tools as the current version")]
    CanaryTools(String),
    /// No canary is running.
    #[error("plugin `{0}` has no canary")]
    NoCanary(String),
    /// Nothing to roll back to.
    #[error("plugin `{0}` has no earlier version to roll back to")]
    NoHistory(String),
    /// The blocking load task failed.
    #[error("plugin load task failed: {0}")]
    Task(String),
}

/// What `list` shows of a plugin.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Current version.
    pub version: String,
    /// Its tools.
    pub tools: Vec<String>,
    /// Versions available for rollback, newest first.
    pub history: Vec<String>,
    /// The canary, if one runs.
    pub canary: Option<CanaryInfo>,
}

/// A running canary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CanaryInfo {
    /// Its version.
    pub version: String,
    /// Its share of calls, per mille.
    pub permille: u64,
    /// Calls it served or tried.
    pub calls: u64,
    /// Calls that failed on it (and were retried on the current version).
    pub failures: u64,
}

/// A candidate version taking a share of calls.
struct Canary {
    plugin: Arc<LoadedPlugin>,
    permille: u64,
    seq: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

/// What a plugin's tool handlers read on every call.
struct Route {
    current: ArcSwap<LoadedPlugin>,
    canary: ArcSwapOption<Canary>,
}

struct Slot {
    route: Arc<Route>,
    history: Vec<Arc<LoadedPlugin>>,
}

/// The plugin host of a node.
pub struct PluginHost {
    registry: RegistryHandle,
    staging: PathBuf,
    slots: Mutex<HashMap<String, Slot>>,
    /// This host, for jobs that run in an owner actor's turn.
    me: Weak<PluginHost>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("staging", &self.staging)
            .field("plugins", &self.list())
            .finish()
    }
}

impl PluginHost {
    /// A host staging copies in `staging` (emptied now).
    pub fn new(registry: RegistryHandle, staging: PathBuf) -> std::io::Result<Arc<Self>> {
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        Ok(Arc::new_cyclic(|me| Self {
            registry,
            staging,
            slots: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    /// Runs `change` in the turn of `name`'s owner actor (started if needed), or directly when
    /// no application tree runs.
    async fn in_turn<F, Fut>(&self, name: &str, change: F) -> Result<PluginInfo, PluginError>
    where
        F: FnOnce(Arc<PluginHost>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<PluginInfo, PluginError>> + Send + 'static,
    {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| PluginError::Task("the plugin host is gone".to_owned()))?;
        let Some(owner) = owner::owner_of(name).await else {
            return change(me).await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: owner::Job = Box::new(move || {
            Box::pin(async move {
                let _ = tx.send(change(me).await);
            })
        });
        owner.cast(owner::OwnerMsg::Run(job)).map_err(|_| {
            PluginError::Task(format!("the owner of plugin `{name}` is not running"))
        })?;
        rx.await.map_err(|_| {
            PluginError::Task(format!(
                "the owner of plugin `{name}` stopped before the change ran; nothing changed"
            ))
        })?
    }

    /// Loads `path` and makes it the current version of its plugin.
    pub async fn load(
        &self,
        path: &Path,
        config: serde_json::Value,
    ) -> Result<PluginInfo, PluginError> {
        let loaded = self.load_version(path, config).await?;
        let name = loaded.name().to_owned();
        self.in_turn(&name, move |host| async move { host.install(loaded).await })
            .await
    }

    /// Makes a loaded version the current one (in its owner's turn).
    async fn install(&self, loaded: Arc<LoadedPlugin>) -> Result<PluginInfo, PluginError> {
        let name = loaded.name().to_owned();
        tracing::info!(plugin = %name, version = %loaded.version(), "plugin loaded");
        let existing = lock(&self.slots)
            .get(&name)
            .map(|slot| Arc::clone(&slot.route));
        match existing {
            Some(route) => {
                let previous = route.current.load_full();
                self.registry
                    .apply(tool_changes(&route, Some(&previous), &loaded))
                    .await?;
                route.canary.store(None);
                self.make_current(&name, &route, loaded);
            }
            None => {
                let route = Arc::new(Route {
                    current: ArcSwap::new(Arc::clone(&loaded)),
                    canary: ArcSwapOption::empty(),
                });
                self.registry
                    .apply(tool_changes(&route, None, &loaded))
                    .await?;
                lock(&self.slots).insert(
                    name.clone(),
                    Slot {
                        route,
                        history: Vec::new(),
                    },
                );
            }
        }
        self.info(&name)
    }

    /// Runs the load pipeline on a blocking thread.
    async fn load_version(
        &self,
        path: &Path,
        config: serde_json::Value,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let (path, staging) = (path.to_owned(), self.staging.clone());
        tokio::task::spawn_blocking(move || LoadedPlugin::load(&path, &staging, &config))
            .await
            .map_err(|e| PluginError::Task(e.to_string()))?
            .map_err(PluginError::Load)
    }

    /// Swaps `next` in; the replaced version goes to the history.
    fn make_current(&self, name: &str, route: &Route, next: Arc<LoadedPlugin>) {
        let replaced = route.current.swap(next);
        if let Some(slot) = lock(&self.slots).get_mut(name) {
            slot.history.insert(0, replaced);
            slot.history.truncate(HISTORY);
        }
    }

    /// Loads `path` as a canary of its plugin, taking `permille` of the calls.
    pub async fn load_canary(
        &self,
        path: &Path,
        config: serde_json::Value,
        permille: u64,
    ) -> Result<PluginInfo, PluginError> {
        let loaded = self.load_version(path, config).await?;
        let name = loaded.name().to_owned();
        self.route(&name)?;
        self.in_turn(&name, move |host| async move {
            host.start_canary(loaded, permille)
        })
        .await
    }

    /// Starts a loaded version as a canary (in its owner's turn).
    fn start_canary(
        &self,
        loaded: Arc<LoadedPlugin>,
        permille: u64,
    ) -> Result<PluginInfo, PluginError> {
        let name = loaded.name().to_owned();
        let route = self.route(&name)?;
        let names = |p: &LoadedPlugin| {
            let mut tools: Vec<String> = p
                .description()
                .tools
                .iter()
                .map(|t| t.name.clone())
                .collect();
            tools.sort();
            tools
        };
        if names(&loaded) != names(&route.current.load()) {
            return Err(PluginError::CanaryTools(loaded.version().to_owned()));
        }
        tracing::info!(plugin = %name, version = %loaded.version(), permille, "canary started");
        route.canary.store(Some(Arc::new(Canary {
            plugin: loaded,
            permille: permille.min(1000),
            seq: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })));
        self.info(&name)
    }

    /// Makes the canary the current version.
    pub async fn promote(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.route(name)?;
        let owned = name.to_owned();
        self.in_turn(name, move |host| async move { host.promote_now(&owned) })
            .await
    }

    fn promote_now(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let route = self.route(name)?;
        let canary = route
            .canary
            .swap(None)
            .ok_or_else(|| PluginError::NoCanary(name.to_owned()))?;
        tracing::info!(plugin = %name, version = %canary.plugin.version(), "canary promoted");
        self.make_current(name, &route, Arc::clone(&canary.plugin));
        self.info(name)
    }

    fn route(&self, name: &str) -> Result<Arc<Route>, PluginError> {
        lock(&self.slots)
            .get(name)
            .map(|slot| Arc::clone(&slot.route))
            .ok_or_else(|| PluginError::Unknown(name.to_owned()))
    }

    /// Makes the newest earlier version current again.
    pub async fn rollback(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.route(name)?;
        let owned = name.to_owned();
        self.in_turn(
            name,
            move |host| async move { host.rollback_now(&owned).await },
        )
        .await
    }

    async fn rollback_now(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let (route, previous) = {
            let mut slots = lock(&self.slots);
            let slot = slots
                .get_mut(name)
                .ok_or_else(|| PluginError::Unknown(name.to_owned()))?;
            if slot.history.is_empty() {
                return Err(PluginError::NoHistory(name.to_owned()));
            }
            (Arc::clone(&slot.route), slot.history.remove(0))
        };
        let active = route.current.load_full();
        if let Err(e) = self
            .registry
            .apply(tool_changes(&route, Some(&active), &previous))
            .await
        {
            if let Some(slot) = lock(&self.slots).get_mut(name) {
                slot.history.insert(0, previous);
            }
            return Err(e.into());
        }
        route.canary.store(None);
        route.current.store(previous);
        tracing::info!(plugin = %name, from = %active.version(), to = %route.current.load().version(), "plugin rolled back");
        self.info(name)
    }

    /// Every plugin, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let slots = lock(&self.slots);
        let mut infos: Vec<PluginInfo> = slots
            .iter()
            .map(|(name, slot)| info_of(name, slot))
            .collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    fn info(&self, name: &str) -> Result<PluginInfo, PluginError> {
        lock(&self.slots)
            .get(name)
            .map(|slot| info_of(name, slot))
            .ok_or_else(|| PluginError::Unknown(name.to_owned()))
    }
}

fn info_of(name: &str, slot: &Slot) -> PluginInfo {
    let current = slot.route.current.load();
    let canary = slot.route.canary.load_full().map(|c| CanaryInfo {
        version: c.plugin.version().to_owned(),
        permille: c.permille,
        calls: c.calls.load(Ordering::Relaxed),
        failures: c.failures.load(Ordering::Relaxed),
    });
    PluginInfo {
        name: name.to_owned(),
        version: current.version().to_owned(),
        tools: current
            .description()
            .tools
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        history: slot
            .history
            .iter()
            .map(|p| p.version().to_owned())
            .collect(),
        canary,
    }
}

/// The registry batch that makes `next`'s tools served through `route` (and removes the tools
/// only `previous` had).
fn tool_changes(
    route: &Arc<Route>,
    previous: Option<&Arc<LoadedPlugin>>,
    next: &LoadedPlugin,
) -> Vec<Change> {
    let tools = &next.description().tools;
    let mut changes: Vec<Change> = tools
        .iter()
        .map(|decl| {
            let route = Arc::clone(route);
            let tool_name = decl.name.clone();
            let tool = Tool::new(&decl.name, &decl.description, decl.input_schema.clone());
            if decl.asks_client {
                // Its calls may wait for the client: on a blocking thread, so the connection
                // that must read the client's answer is not the one waiting.
                return Change::Tool(ToolEntry::new(
                    tool,
                    move |ctx: RequestContext, args: Arguments| {
                        let (route, tool_name) = (Arc::clone(&route), tool_name.clone());
                        async move {
                            tokio::task::spawn_blocking(move || {
                                loader::with_client_waits(|| {
                                    route_call(&route, &tool_name, &args, &ctx)
                                })
                            })
                            .await
                            .unwrap_or_else(|e| {
                                Err(ToolError::new(format!("the plugin call failed: {e}")))
                            })
                        }
                    },
                ));
            }
            Change::Tool(ToolEntry::new(
                tool,
                move |ctx: RequestContext, args: Arguments| {
                    std::future::ready(route_call(&route, &tool_name, &args, &ctx))
                },
            ))
        })
        .collect();
    if let Some(previous) = previous {
        for old in &previous.description().tools {
            if !tools.iter().any(|t| t.name == old.name) {
                changes.push(Change::RemoveTool(old.name.clone()));
            }
        }
    }
    changes
}

/// Serves one call: on the canary for its share (a failure there is counted and retried here),
/// else on the version current now — which keeps serving this call even if a swap happens
/// meanwhile.
fn route_call(
    route: &Route,
    tool: &str,
    args: &Arguments,
    ctx: &RequestContext,
) -> Result<CallToolResult, ToolError> {
    if let Some(canary) = route.canary.load_full() {
        // 617 is coprime with 1000: the canary's share is spread evenly over the sequence.
        let n = canary.seq.fetch_add(1, Ordering::Relaxed);
        if n.wrapping_mul(617) % 1000 < canary.permille {
            let calls = canary.calls.fetch_add(1, Ordering::Relaxed) + 1;
            match call_plugin_tool(&canary.plugin, tool, args, ctx) {
                Ok(result) if !result.is_error => return Ok(result),
                _ => {
                    let failures = canary.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    let rate = failures as f64 / calls as f64;
                    if calls >= CANARY_MIN_CALLS && rate > CANARY_MAX_ERROR_RATE {
                        let aborted = route
                            .canary
                            .compare_and_swap(&Some(Arc::clone(&canary)), None);
                        if aborted.is_some() {
                            tracing::error!(
                                plugin = %canary.plugin.name(),
                                version = %canary.plugin.version(),
                                calls,
                                failures,
                                "canary aborted: error rate {rate:.3} above {CANARY_MAX_ERROR_RATE}"
                            );
                        }
                    }
                }
            }
        }
    }
    let plugin = route.current.load_full();
    call_plugin_tool(&plugin, tool, args, ctx)
}

fn call_plugin_tool(
    plugin: &LoadedPlugin,
    name: &str,
    args: &Arguments,
    ctx: &RequestContext,
) -> Result<CallToolResult, ToolError> {
    // The request is spliced, not re-encoded: the arguments' JSON goes to the plugin as it came.
    let raw = args.raw();
    let mut request = Vec::with_capacity(48 + name.len() + raw.len());
    request.extend_from_slice(br#"{"op":"call_tool","name":"#);
    serde_json::to_writer(&mut request, name).map_err(|e| ToolError::new(e.to_string()))?;
    request.extend_from_slice(br#","arguments":"#);
    request.extend_from_slice(raw.as_bytes());
    request.push(b'}');
    let answer = plugin.call_for(ctx, &request).map_err(|e| {
        if e.panicked {
            tracing::error!(plugin = %plugin.name(), tool = name, error = %e.message, "plugin tool panicked");
        }
        ToolError::new(e.message)
    })?;
    checked_result(answer)
}

/// A plugin's answer as the result, written as it came once its shape is checked: an object with
/// `content` — blocks that each have a `type` — and an optional boolean `isError`.
fn checked_result(answer: Vec<u8>) -> Result<CallToolResult, ToolError> {
    #[derive(serde::Deserialize)]
    struct Block<'a> {
        #[serde(borrow, rename = "type")]
        _kind: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Shape<'a> {
        #[serde(borrow, rename = "content")]
        _content: Vec<Block<'a>>,
        #[serde(default, rename = "isError")]
        is_error: bool,
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        ToolError::new(format!("the plugin answered an unreadable result: {e}"))
    };
    let is_error = serde_json::from_slice::<Shape<'_>>(&answer)
        .map_err(|e| unreadable(&e))?
        .is_error;
    let text = String::from_utf8(answer).map_err(|e| unreadable(&e))?;
    let encoded = serde_json::value::RawValue::from_string(text).map_err(|e| unreadable(&e))?;
    Ok(CallToolResult::encoded(encoded, is_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_answer_is_passed_through_once_its_shape_is_checked() {
        let good = br#"{"content":[{"type":"text","text":"hi"}],"structuredContent":{"n":1}}"#;
        let result = checked_result(good.to_vec()).unwrap();
        assert!(!result.is_error);
        assert_eq!(serde_json::to_vec(&result).unwrap(), good.to_vec());
        let failed =
            checked_result(br#"{"content":[{"type":"text","text":"no"}],"isError":true}"#.to_vec());
        assert!(failed.unwrap().is_error);
        for bad in [
            &br#"{"contents":[]}"#[..],
            br#"{"content":[{"text":"no type"}]}"#,
            br#"{"content":"not a list"}"#,
            br#"not json"#,
        ] {
            let error = checked_result(bad.to_vec()).unwrap_err();
            assert!(error.0.contains("unreadable result"), "{}", error.0);
        }
    }
}
