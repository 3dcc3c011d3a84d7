//! Owns running an erlmcp tree inside the test process (the embedding API). ractor's registry
//! holds one tree's registered names per process, and the table of hibernating sessions is
//! process-wide, so the tests that start a tree take turns: [`run`] holds a process-wide turn
//! from before its runtime starts until after that runtime (and every task of the tree) is
//! dropped, even when the test fails. Each such test gets a private directory for the admin
//! socket, the cookie and the plugin staging directory, removed when it ends, so the test
//! process's `HOME` is never written.
#![allow(dead_code, unreachable_pub)]

use erlmcp::config::Config;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Held by the test whose tree runs; a failed test leaves it poisoned, which the next ignores.
static TURN: Mutex<()> = Mutex::new(());

/// The private directory of an in-process tree.
pub struct TreeHome {
    dir: PathBuf,
}

impl TreeHome {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The embedded default configuration with the admin socket directory (where the plugin
    /// staging directory goes by default), the cookie file and the state store in this private
    /// directory.
    pub fn config(&self) -> Config {
        let mut config = Config::embedded().expect("the embedded configuration");
        config.admin.socket_dir = self.dir.join("run").display().to_string();
        config.admin.cookie_file = self.dir.join("cookie").display().to_string();
        config.cache.dir = self.dir.join("cache").display().to_string();
        config.store.dir = self.dir.join("store").display().to_string();
        config
    }

    /// [`TreeHome::config`] serving TCP only, on a loopback port the OS picks.
    pub fn tcp_config(&self) -> Config {
        let mut config = self.config();
        config.http.enabled = false;
        config.tcp.enabled = true;
        config.tcp.addr = "127.0.0.1:0".parse().expect("a loopback address");
        config
    }
}

/// Runs `test` on a multi-threaded runtime of two workers (as `#[tokio::test(flavor =
/// "multi_thread", worker_threads = 2)]` does), in its turn, with a private [`TreeHome`].
pub fn run<F, T>(test: F)
where
    F: FnOnce(TreeHome) -> T,
    T: Future<Output = ()>,
{
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::Builder::new()
        .prefix("erlmcp-test-tree-")
        .tempdir()
        .expect("a temporary directory");
    // Declared after `dir`: dropped (its tasks with it) before the directory is removed.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(test(TreeHome {
        dir: dir.path().to_owned(),
    }));
}
