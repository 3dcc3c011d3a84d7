//! Owns the watch on `plugins.dir` (`plugins.watch = true`): the worker `erlmcp_plugin_watch`
//! polls the directory every `plugins.watch_interval` and loads each `*.so` that appeared or
//! changed since the last look — once its size and modification time have held still for one
//! interval, so a file still being copied is not loaded half-written. A load that fails is logged
//! once per version of the file; the plugin already serving is untouched. Files present at start
//! are left to the start-up load; removing a file unloads nothing (use `plugin rollback`).
//!
//! Polling, not inotify: it works the same on every filesystem (network mounts, containers'
//! bind mounts) and costs one `read_dir` per interval.
//!
//! Trust ([`super::trust`]): the directory is checked at every look; while it is refused (writable
//! by others, another user's, reached through an untrusted link) nothing in it is loaded, and
//! the refusal is logged when it starts or its reason changes, not at every look. A file refused
//! by the load pipeline (its mode, owner, or a link to somewhere untrusted) is logged once per
//! version of it, like any failed load; a change of its mode or owner is a new version.

use crate::plugin_host::PluginHost;
use crate::plugin_host::trust::check_dir;
use crate::plugin_host::trust::effective_uid;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What makes a version of a file (of what a link leads to): its identity, size, mtime, owner
/// and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    uid: u32,
    mode: u32,
}

/// What the watcher knows of one file: its version, and whether that version was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    version: Version,
    handled: bool,
}

/// The `*.so` files of `dir` with their versions.
fn scan(dir: &Path) -> HashMap<PathBuf, Version> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            let version = Version {
                ino: meta.ino(),
                len: meta.len(),
                modified: meta.modified().ok(),
                uid: meta.uid(),
                mode: meta.mode(),
            };
            Some((p, version))
        })
        .collect()
}

/// The watcher actor.
pub(crate) struct PluginWatch;

/// Its arguments.
#[derive(Clone)]
pub(crate) struct PluginWatchArgs {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// How often to look.
    pub(crate) interval: Duration,
    /// Where to load.
    pub(crate) host: Arc<PluginHost>,
}

/// Its mailbox.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    /// Look at the directory.
    Look,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for WatchMsg {}

/// Its state.
pub(crate) struct WatchState {
    args: PluginWatchArgs,
    seen: HashMap<PathBuf, Seen>,
    /// Why the directory is refused, while it is (logged when this changes).
    refused: Option<String>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Actor for PluginWatch {
    type Msg = WatchMsg;
    type State = WatchState;
    type Arguments = PluginWatchArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WatchMsg>,
        args: PluginWatchArgs,
    ) -> Result<WatchState, ActorProcessingErr> {
        // What is there now is loaded by the start-up load (or was, before a restart) — unless
        // the directory is refused: then it is loaded once the directory is fixed, and that is
        // logged ("trusted again") even when it is fixed before the first look.
        let mut refused = None;
        let seen = match check_dir(&args.dir, effective_uid()) {
            Ok(_) => scan(&args.dir)
                .into_iter()
                .map(|(path, version)| {
                    (
                        path,
                        Seen {
                            version,
                            handled: true,
                        },
                    )
                })
                .collect(),
            Err(e) => {
                refused = Some(e.to_string());
                HashMap::new()
            }
        };
        let interval = args.interval;
        let ticker = crate::ticker::every(myself, interval, || WatchMsg::Look);
        tracing::info!(dir = %args.dir.display(), interval_ms = interval.as_millis() as u64, "watching the plugin directory");
        Ok(WatchState {
            args,
            seen,
            refused,
            ticker,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WatchMsg>,
        state: &mut WatchState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<WatchMsg>,
        WatchMsg::Look: WatchMsg,
        state: &mut WatchState,
    ) -> Result<(), ActorProcessingErr> {
        match check_dir(&state.args.dir, effective_uid()) {
            Ok(_) => {
                if state.refused.take().is_some() {
                    tracing::info!(dir = %state.args.dir.display(), "plugin directory trusted again: watching it");
                }
            }
            Err(e) => {
                let reason = e.to_string();
                if state.refused.as_deref() != Some(reason.as_str()) {
                    tracing::error!(dir = %state.args.dir.display(), reason = %reason, "plugin directory refused: nothing in it is loaded until it is fixed");
                    state.refused = Some(reason);
                }
                return Ok(());
            }
        }
        let now = scan(&state.args.dir);
        state.seen.retain(|path, _| now.contains_key(path));
        let mut ready = Vec::new();
        for (path, version) in now {
            match state.seen.get_mut(&path) {
                Some(seen) if seen.version == version => {
                    // Held still for an interval: load it, once.
                    if !seen.handled {
                        seen.handled = true;
                        ready.push(path);
                    }
                }
                _ => {
                    state.seen.insert(
                        path,
                        Seen {
                            version,
                            handled: false,
                        },
                    );
                }
            }
        }
        ready.sort();
        for path in ready {
            match state.args.host.load(&path, serde_json::Value::Null).await {
                Ok(info) => {
                    tracing::info!(file = %path.display(), plugin = %info.name, version = %info.version, "plugin loaded from the watched directory")
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "plugin in the watched directory not loaded")
                }
            }
        }
        Ok(())
    }
}
