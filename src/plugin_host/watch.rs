//! Owns the watch on `plugins.dir` (`plugins.watch = true`): the worker `erlmcp_plugin_watch`
//! polls the directory every `plugins.watch_interval` and loads each `*.so` that appeared or
//! changed since the last look — once its size and modification time have held still for one
//! interval, so a file still being copied is not loaded half-written. A load that fails is logged
//! once per version of the file; the plugin already serving is untouched. Files present at start
//! are left to the start-up load; removing a file unloads nothing (use `plugin rollback`).
//!
//! Polling, not inotify: it works the same on every filesystem (network mounts, containers'
//! bind mounts) and costs one `read_dir` per interval.

use crate::plugin_host::PluginHost;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The watcher's registered name.
pub const PLUGIN_WATCH: &str = "erlmcp_plugin_watch";

/// What the watcher knows of one file: its size and mtime, and whether that version was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    handled: bool,
}

/// The `*.so` files of `dir` with their size and mtime.
fn scan(dir: &Path) -> HashMap<PathBuf, (u64, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            Some((p, (meta.len(), meta.modified().ok())))
        })
        .collect()
}

/// The watcher actor.
pub struct PluginWatch;

/// Its arguments.
#[derive(Clone)]
pub struct PluginWatchArgs {
    /// The directory.
    pub dir: PathBuf,
    /// How often to look.
    pub interval: Duration,
    /// Where to load.
    pub host: Arc<PluginHost>,
}

/// Its mailbox.
#[derive(Debug)]
pub enum WatchMsg {
    /// Look at the directory.
    Look,
}

/// Its state.
pub struct WatchState {
    args: PluginWatchArgs,
    seen: HashMap<PathBuf, Seen>,
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
        // What is there now is loaded by the start-up load (or was, before a restart).
        let seen = scan(&args.dir)
            .into_iter()
            .map(|(path, (len, modified))| {
                (
                    path,
                    Seen {
                        len,
                        modified,
                        handled: true,
                    },
                )
            })
            .collect();
        let interval = args.interval;
        let ticker = crate::ticker::every(myself, interval, || WatchMsg::Look);
        tracing::info!(dir = %args.dir.display(), interval_ms = interval.as_millis() as u64, "watching the plugin directory");
        Ok(WatchState { args, seen, ticker })
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
        let now = scan(&state.args.dir);
        state.seen.retain(|path, _| now.contains_key(path));
        let mut ready = Vec::new();
        for (path, (len, modified)) in now {
            match state.seen.get_mut(&path) {
                Some(seen) if seen.len == len && seen.modified == modified => {
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
                            len,
                            modified,
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
