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
//! - The staging directory is emptied when the host starts.

pub mod loader;

use crate::protocol::messages::{CallToolResult, Tool};
use crate::registry::{Arguments, Change, RegistryError, RegistryHandle, ToolEntry, ToolError};
use crate::session::RequestContext;
use arc_swap::ArcSwap;
use erlmcp_plugin_api::Request;
use loader::{LoadError, LoadedPlugin};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Versions kept for rollback, per plugin.
pub const HISTORY: usize = 4;

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
}

struct Slot {
    current: Arc<ArcSwap<LoadedPlugin>>,
    history: Vec<Arc<LoadedPlugin>>,
}

/// The plugin host of a node.
pub struct PluginHost {
    registry: RegistryHandle,
    staging: PathBuf,
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("staging", &self.staging)
            .field("plugins", &self.list())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PluginHost {
    /// A host staging copies in `staging` (emptied now).
    pub fn new(registry: RegistryHandle, staging: PathBuf) -> std::io::Result<Self> {
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        Ok(Self {
            registry,
            staging,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Loads `path` and makes it the current version of its plugin.
    pub async fn load(
        &self,
        path: &Path,
        config: serde_json::Value,
    ) -> Result<PluginInfo, PluginError> {
        let (path, staging) = (path.to_owned(), self.staging.clone());
        let loaded =
            tokio::task::spawn_blocking(move || LoadedPlugin::load(&path, &staging, &config))
                .await
                .map_err(|e| PluginError::Task(e.to_string()))??;
        let name = loaded.name().to_owned();
        tracing::info!(plugin = %name, version = %loaded.version(), "plugin loaded");
        let existing = lock(&self.slots)
            .get(&name)
            .map(|slot| Arc::clone(&slot.current));
        match existing {
            Some(current) => {
                let previous = current.load_full();
                self.registry
                    .apply(tool_changes(&current, Some(&previous), &loaded))
                    .await?;
                let replaced = current.swap(loaded);
                let mut slots = lock(&self.slots);
                if let Some(slot) = slots.get_mut(&name) {
                    slot.history.insert(0, replaced);
                    slot.history.truncate(HISTORY);
                }
            }
            None => {
                let current = Arc::new(ArcSwap::new(Arc::clone(&loaded)));
                self.registry
                    .apply(tool_changes(&current, None, &loaded))
                    .await?;
                lock(&self.slots).insert(
                    name.clone(),
                    Slot {
                        current,
                        history: Vec::new(),
                    },
                );
            }
        }
        self.info(&name)
    }

    /// Makes the newest earlier version current again.
    pub async fn rollback(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let (current, previous) = {
            let mut slots = lock(&self.slots);
            let slot = slots
                .get_mut(name)
                .ok_or_else(|| PluginError::Unknown(name.to_owned()))?;
            if slot.history.is_empty() {
                return Err(PluginError::NoHistory(name.to_owned()));
            }
            (Arc::clone(&slot.current), slot.history.remove(0))
        };
        let active = current.load_full();
        if let Err(e) = self
            .registry
            .apply(tool_changes(&current, Some(&active), &previous))
            .await
        {
            if let Some(slot) = lock(&self.slots).get_mut(name) {
                slot.history.insert(0, previous);
            }
            return Err(e.into());
        }
        current.store(previous);
        tracing::info!(plugin = %name, from = %active.version(), to = %current.load().version(), "plugin rolled back");
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
    let current = slot.current.load();
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
    }
}

/// The registry batch that makes `next`'s tools served through `slot` (and removes the tools
/// only `previous` had).
fn tool_changes(
    slot: &Arc<ArcSwap<LoadedPlugin>>,
    previous: Option<&Arc<LoadedPlugin>>,
    next: &LoadedPlugin,
) -> Vec<Change> {
    let tools = &next.description().tools;
    let mut changes: Vec<Change> = tools
        .iter()
        .map(|decl| {
            let slot = Arc::clone(slot);
            let tool_name = decl.name.clone();
            Change::Tool(ToolEntry::new(
                Tool::new(&decl.name, &decl.description, decl.input_schema.clone()),
                move |_ctx: RequestContext, args: Arguments| {
                    // The version current now serves this call, even if a swap happens meanwhile.
                    let plugin = slot.load_full();
                    let result = call_plugin_tool(&plugin, &tool_name, &args);
                    std::future::ready(result)
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

fn call_plugin_tool(
    plugin: &LoadedPlugin,
    name: &str,
    args: &Arguments,
) -> Result<CallToolResult, ToolError> {
    let arguments: serde_json::Value = args.parse()?;
    let answer = plugin
        .call(&Request::CallTool {
            name: name.to_owned(),
            arguments,
        })
        .map_err(|e| {
            if e.panicked {
                tracing::error!(plugin = %plugin.name(), tool = name, error = %e.message, "plugin tool panicked");
            }
            ToolError::new(e.message)
        })?;
    #[derive(serde::Deserialize)]
    struct Answer {
        content: Vec<crate::protocol::messages::Content>,
        #[serde(default, rename = "structuredContent")]
        structured_content: Option<serde_json::Value>,
        #[serde(default, rename = "isError")]
        is_error: bool,
    }
    let answer: Answer = serde_json::from_slice(&answer)
        .map_err(|e| ToolError::new(format!("the plugin answered an unreadable result: {e}")))?;
    Ok(CallToolResult {
        content: answer.content,
        structured_content: answer.structured_content,
        is_error: answer.is_error,
    })
}
