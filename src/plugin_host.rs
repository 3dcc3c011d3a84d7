//! Owns hot-swappable handler plugins: loading a version (`loader`), registering its tools,
//! swapping it in atomically, keeping a bounded history, and rolling back.
//!
//! Rules:
//! - A load that fails at any step leaves the current version serving, untouched, and says which
//!   step failed and why ([`LoadError`]).
//! - Each plugin's tools are registered in the registry with handlers that hold the version they
//!   serve (and the canary, if one runs). A swap is the registry batch that replaces them — one
//!   atomic publication, which redirects new calls at once while calls in flight finish on the
//!   version they started with (each holds its handler, which holds the version). Nothing shared
//!   is read per call to find the version.
//! - The replaced version goes to a history of at most [`HISTORY`] versions; `rollback` brings
//!   back the newest one (with the state it had).
//! - Canary: a candidate version may take a share of calls (per mille). A canary call that fails
//!   (an error, a panic, or an `isError` result) is retried on the current version, so the client
//!   never sees it; once [`CANARY_MIN_CALLS`] canary calls have been made, an error rate above
//!   [`CANARY_MAX_ERROR_RATE`] aborts the canary (at once, by a flag its handlers read; the next
//!   change registers handlers without it). `promote` makes it current.
//! - Only trusted files are loaded (`trust`): the file, and every directory and link leading to
//!   it, owned by root or the node's user and writable by no one else. The rule is in the load
//!   pipeline, so a load from `plugins.dir`, its watcher, the admin channel and the embedding API
//!   all pass it.
//! - The staging directory (`staging`) is private to the node (0700, its user, not a link),
//!   emptied when the host starts and removed when the node stops; each version is loaded
//!   through the descriptor of the copy the host wrote, never by path.
//! - Each plugin has an owner actor under `erlmcp_plugin_sup` (`owner`); every change to the
//!   plugin runs in its turn, one at a time. Calls never pass through it.

pub(crate) mod answer;
mod callbacks;
pub(crate) mod cluster;
pub(crate) mod loader;
pub(crate) mod owner;
pub(crate) mod staging;
pub(crate) mod trust;
pub(crate) mod watch;

use crate::locks::lock;
use crate::protocol::messages::{CallToolResult, EncodedResult, Tool};
use crate::registry::{Arguments, Change, RegistryError, RegistryHandle, ToolEntry, ToolError};
use crate::session::RequestContext;
pub use loader::LoadError;
use loader::{LoadedPlugin, ToolAnswer};
use serde::Serialize;
use staging::Staging;
pub use staging::StagingError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Versions kept for rollback, per plugin.
pub const HISTORY: usize = 4;
/// Canary calls made before its error rate can abort it.
pub const CANARY_MIN_CALLS: u64 = 20;
/// The canary error rate above which it is aborted.
pub const CANARY_MAX_ERROR_RATE: f64 = 0.05;

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CanaryInfo {
    /// Its version.
    pub version: String,
    /// Its share of calls, per mille.
    pub(crate) permille: u64,
    /// Calls it served or tried.
    pub(crate) calls: u64,
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
    /// Set (once) when its error rate aborts it: its calls go to the current version from then
    /// on, before the handlers without it are registered.
    aborted: AtomicBool,
}

impl Canary {
    fn running(&self) -> bool {
        !self.aborted.load(Ordering::Relaxed)
    }
}

/// What one registered tool handler serves: the version current when it was registered, and the
/// canary, if one ran then. A swap (load, rollback, canary start, promote) is the registry batch
/// that replaces the handlers — one atomic publication — so a call reads nothing shared to find
/// its version (an `ArcSwap` read here cost two fenced atomics per call), and a call in flight
/// keeps its version alive through the handler it holds.
struct Serving {
    current: Arc<LoadedPlugin>,
    canary: Option<Arc<Canary>>,
}

struct Slot {
    /// The version the registered tool handlers serve.
    current: Arc<LoadedPlugin>,
    /// The canary they also serve, while it runs.
    canary: Option<Arc<Canary>>,
    history: Vec<Arc<LoadedPlugin>>,
}

impl Slot {
    /// Records `next` as current (its handlers are registered, without a canary); the version
    /// it replaces goes to the history.
    fn make_current(&mut self, next: Arc<LoadedPlugin>) {
        let replaced = std::mem::replace(&mut self.current, next);
        self.canary = None;
        self.history.insert(0, replaced);
        self.history.truncate(HISTORY);
    }
}

/// The plugin host of a node.
pub struct PluginHost {
    registry: RegistryHandle,
    staging: Arc<Staging>,
    slots: Mutex<HashMap<String, Slot>>,
    /// This host, for jobs that run in an owner actor's turn.
    me: Weak<PluginHost>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("staging", &self.staging.dir())
            .field("plugins", &self.list())
            .finish()
    }
}

impl PluginHost {
    /// A host staging copies in `staging`: created private (0700) if absent, else refused unless
    /// private to the node's user; emptied now.
    pub fn new(registry: RegistryHandle, staging: PathBuf) -> Result<Arc<Self>, StagingError> {
        let staging = Arc::new(Staging::prepare(staging, trust::effective_uid())?);
        Ok(Arc::new_cyclic(|me| Self {
            registry,
            staging,
            slots: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    /// Removes the staging directory (when the node stops). Loaded versions keep serving: each
    /// is mapped from its own descriptor.
    pub fn remove_staging(&self) {
        self.staging.remove();
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

    /// Makes a loaded version the current one (in its owner's turn); a canary running is dropped.
    async fn install(&self, loaded: Arc<LoadedPlugin>) -> Result<PluginInfo, PluginError> {
        let name = loaded.name().to_owned();
        tracing::info!(plugin = %name, version = %loaded.version(), "plugin loaded");
        let previous = self.current(&name).ok();
        self.serve(previous.as_deref(), &loaded, None).await?;
        let mut slots = lock(&self.slots);
        match slots.get_mut(&name) {
            Some(slot) => slot.make_current(loaded),
            None => {
                slots.insert(
                    name.clone(),
                    Slot {
                        current: loaded,
                        canary: None,
                        history: Vec::new(),
                    },
                );
            }
        }
        drop(slots);
        self.info(&name)
    }

    /// Registers handlers serving `current` (and `canary`), removing the tools only `previous`
    /// had: the swap.
    async fn serve(
        &self,
        previous: Option<&LoadedPlugin>,
        current: &Arc<LoadedPlugin>,
        canary: Option<Arc<Canary>>,
    ) -> Result<(), RegistryError> {
        let serving = Arc::new(Serving {
            current: Arc::clone(current),
            canary,
        });
        self.registry
            .apply(tool_changes(&serving, previous))
            .await
            .map(drop)
    }

    /// Runs the load pipeline on a blocking thread.
    async fn load_version(
        &self,
        path: &Path,
        config: serde_json::Value,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let (path, staging) = (path.to_owned(), Arc::clone(&self.staging));
        tokio::task::spawn_blocking(move || LoadedPlugin::load(&path, &staging, &config))
            .await
            .map_err(|e| PluginError::Task(e.to_string()))?
            .map_err(PluginError::Load)
    }

    /// The version serving `name` now.
    fn current(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        lock(&self.slots)
            .get(name)
            .map(|slot| Arc::clone(&slot.current))
            .ok_or_else(|| PluginError::Unknown(name.to_owned()))
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
        self.current(&name)?;
        self.in_turn(&name, move |host| async move {
            host.start_canary(loaded, permille).await
        })
        .await
    }

    /// Starts a loaded version as a canary (in its owner's turn).
    async fn start_canary(
        &self,
        loaded: Arc<LoadedPlugin>,
        permille: u64,
    ) -> Result<PluginInfo, PluginError> {
        let name = loaded.name().to_owned();
        let current = self.current(&name)?;
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
        if names(&loaded) != names(&current) {
            return Err(PluginError::CanaryTools(loaded.version().to_owned()));
        }
        let canary = Arc::new(Canary {
            plugin: loaded,
            permille: permille.min(1000),
            seq: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
        });
        self.serve(Some(&current), &current, Some(Arc::clone(&canary)))
            .await?;
        tracing::info!(plugin = %name, version = %canary.plugin.version(), permille, "canary started");
        if let Some(slot) = lock(&self.slots).get_mut(&name) {
            slot.canary = Some(canary);
        }
        self.info(&name)
    }

    /// Makes the canary the current version.
    pub async fn promote(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.current(name)?;
        let owned = name.to_owned();
        self.in_turn(
            name,
            move |host| async move { host.promote_now(&owned).await },
        )
        .await
    }

    async fn promote_now(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let current = self.current(name)?;
        let canary = lock(&self.slots)
            .get(name)
            .and_then(|slot| slot.canary.clone())
            .filter(|canary| canary.running())
            .ok_or_else(|| PluginError::NoCanary(name.to_owned()))?;
        self.serve(Some(&current), &canary.plugin, None).await?;
        tracing::info!(plugin = %name, version = %canary.plugin.version(), "canary promoted");
        if let Some(slot) = lock(&self.slots).get_mut(name) {
            slot.make_current(Arc::clone(&canary.plugin));
        }
        self.info(name)
    }

    /// Makes the newest earlier version current again.
    pub async fn rollback(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.current(name)?;
        let owned = name.to_owned();
        self.in_turn(
            name,
            move |host| async move { host.rollback_now(&owned).await },
        )
        .await
    }

    async fn rollback_now(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let (active, previous) = {
            let slots = lock(&self.slots);
            let slot = slots
                .get(name)
                .ok_or_else(|| PluginError::Unknown(name.to_owned()))?;
            let previous = slot
                .history
                .first()
                .ok_or_else(|| PluginError::NoHistory(name.to_owned()))?;
            (Arc::clone(&slot.current), Arc::clone(previous))
        };
        self.serve(Some(&active), &previous, None).await?;
        tracing::info!(plugin = %name, from = %active.version(), to = %previous.version(), "plugin rolled back");
        if let Some(slot) = lock(&self.slots).get_mut(name) {
            slot.history.remove(0);
            slot.current = previous;
            slot.canary = None;
        }
        self.info(name)
    }

    /// Removes plugin `name`: its tools leave the registry, its versions are forgotten (a
    /// rolling load undoing itself on a node that did not have the plugin). Returns what it was.
    pub async fn unload(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.current(name)?;
        let owned = name.to_owned();
        self.in_turn(
            name,
            move |host| async move { host.unload_now(&owned).await },
        )
        .await
    }

    async fn unload_now(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let current = self.current(name)?;
        let info = self.info(name)?;
        let removals = current
            .description()
            .tools
            .iter()
            .map(|tool| Change::RemoveTool(tool.name.clone()))
            .collect();
        self.registry.apply(removals).await?;
        lock(&self.slots).remove(name);
        tracing::info!(plugin = %name, version = %current.version(), "plugin unloaded");
        Ok(info)
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
    let current = &slot.current;
    let canary = slot
        .canary
        .as_ref()
        .filter(|c| c.running())
        .map(|c| CanaryInfo {
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

/// The registry batch of handlers serving `serving`'s tools, removing the tools only `previous`
/// had.
fn tool_changes(serving: &Arc<Serving>, previous: Option<&LoadedPlugin>) -> Vec<Change> {
    let tools = &serving.current.description().tools;
    let mut changes: Vec<Change> = tools
        .iter()
        .map(|decl| {
            let serving = Arc::clone(serving);
            let tool_name = decl.name.clone();
            let mut tool = Tool::new(&decl.name, &decl.description, decl.input_schema.clone());
            if decl.read_only || decl.idempotent {
                tool = tool.with_annotations(serde_json::json!({
                    "readOnlyHint": decl.read_only,
                    "idempotentHint": decl.idempotent,
                }));
            }
            // Cached results carry the plugin's version: a swap or a rollback changes it.
            let version = serving.current.version().to_owned();
            let (ttl, per_session) = (decl.cache_ttl_ms, decl.cache_per_session);
            let cached =
                move |entry: ToolEntry| entry.cached(ttl, per_session).with_version(&version);
            if decl.asks_client || decl.blocking {
                // Its calls may wait for the client, or block: on a slot of the tool pool (a
                // blocking thread, bounded in number), so the connection that must read the
                // client's answer is not the one waiting and no unbounded thread count grows.
                let asks_client = decl.asks_client;
                return Change::Tool(cached(ToolEntry::blocking(
                    tool,
                    move |ctx: RequestContext, args: Arguments| {
                        if asks_client {
                            callbacks::with_client_waits(|| {
                                route_call(&serving, &tool_name, &args, &ctx)
                            })
                        } else {
                            route_call(&serving, &tool_name, &args, &ctx)
                        }
                    },
                )));
            }
            Change::Tool(cached(ToolEntry::new(
                tool,
                move |ctx: RequestContext, args: Arguments| {
                    std::future::ready(route_call(&serving, &tool_name, &args, &ctx))
                },
            )))
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
/// else on the current version.
fn route_call(
    serving: &Serving,
    tool: &str,
    args: &Arguments,
    ctx: &RequestContext,
) -> Result<CallToolResult, ToolError> {
    if let Some(canary) = serving.canary.as_ref().filter(|c| c.running()) {
        // 617 is coprime with 1000: the canary's share is spread evenly over the sequence.
        let n = canary.seq.fetch_add(1, Ordering::Relaxed);
        if n.wrapping_mul(617) % 1000 < canary.permille {
            let calls = canary.calls.fetch_add(1, Ordering::Relaxed) + 1;
            match call_plugin_tool(&canary.plugin, tool, args, ctx) {
                Ok(result) if !result.is_error => return Ok(result),
                _ => {
                    let failures = canary.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    let rate = failures as f64 / calls as f64;
                    if calls >= CANARY_MIN_CALLS
                        && rate > CANARY_MAX_ERROR_RATE
                        && !canary.aborted.swap(true, Ordering::Relaxed)
                    {
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
    call_plugin_tool(&serving.current, tool, args, ctx)
}

fn call_plugin_tool(
    plugin: &LoadedPlugin,
    name: &str,
    args: &Arguments,
    ctx: &RequestContext,
) -> Result<CallToolResult, ToolError> {
    let answer = plugin.call_tool_for(ctx, name, args.raw()).map_err(|e| {
        if e.panicked {
            tracing::error!(plugin = %plugin.name(), tool = name, error = %e.message, "plugin tool panicked");
        }
        ToolError::new(e.message)
    })?;
    checked_result(answer)
}

/// A plugin's answer as the result, written as it came: as the plugin's typed writer made it, or
/// once its shape is checked (see [`answer`]) — one with line breaks re-encoded on one line, for
/// the line-delimited transports.
fn checked_result(answer: ToolAnswer) -> Result<CallToolResult, ToolError> {
    if let Some(is_error) = answer.well_formed {
        return Ok(CallToolResult::encoded(
            EncodedResult::checked(answer.json),
            is_error,
        ));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        ToolError::new(format!("the plugin answered an unreadable result: {e}"))
    };
    let text = String::from_utf8(answer.json).map_err(|e| unreadable(&e))?;
    let checked = answer::check_call_result(&text).map_err(|e| unreadable(&e))?;
    let text = if checked.has_line_breaks {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| unreadable(&e))?;
        serde_json::to_string(&value).map_err(|e| unreadable(&e))?
    } else {
        text
    };
    Ok(CallToolResult::encoded(
        EncodedResult::checked(text.into_bytes()),
        checked.is_error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unchecked(json: &[u8]) -> ToolAnswer {
        ToolAnswer {
            json: json.to_vec(),
            well_formed: None,
        }
    }

    #[test]
    fn a_plugin_answer_is_passed_through_once_its_shape_is_checked() {
        let good = br#"{"content":[{"type":"text","text":"hi"}],"structuredContent":{"n":1}}"#;
        let result = checked_result(unchecked(good)).unwrap();
        assert!(!result.is_error);
        assert_eq!(serde_json::to_vec(&result).unwrap(), good.to_vec());
        let failed = checked_result(unchecked(
            br#"{"content":[{"type":"text","text":"no"}],"isError":true}"#,
        ));
        assert!(failed.unwrap().is_error);
        let pretty = b"{\n  \"content\": [{\"type\": \"text\", \"text\": \"a\\nb\"}]\n}";
        let result = checked_result(unchecked(pretty)).unwrap();
        let written = serde_json::to_vec(&result).unwrap();
        assert!(!written.contains(&b'\n'));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&written).unwrap(),
            serde_json::from_slice::<serde_json::Value>(pretty).unwrap()
        );
        for bad in [
            &br#"{"contents":[]}"#[..],
            br#"{"content":[{"text":"no type"}]}"#,
            br#"{"content":"not a list"}"#,
            br#"not json"#,
        ] {
            let error = checked_result(unchecked(bad)).unwrap_err();
            assert!(error.0.contains("unreadable result"), "{}", error.0);
        }
    }
}
