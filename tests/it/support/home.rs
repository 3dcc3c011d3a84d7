//! Owns the private home of every `erlmcp` process a test starts: `HOME`, `XDG_RUNTIME_DIR` and
//! `TMPDIR` point into a temporary directory removed when the test ends, and the `ERLMCP_*`
//! variables of the test's own environment are not passed on. A node writes its cookie
//! (`~/.erlmcp/cookie`), its admin socket and its plugin staging directory under these, so a test
//! run leaves nothing in the user's home and nothing there changes what a test sees.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// The `erlmcp` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_erlmcp");

/// A temporary directory serving as a process's home; removed when dropped.
pub struct PrivateHome {
    dir: tempfile::TempDir,
}

impl PrivateHome {
    /// A new, empty home.
    pub fn new() -> PrivateHome {
        let dir = tempfile::Builder::new()
            .prefix("erlmcp-test-home-")
            .tempdir()
            .expect("a temporary home");
        PrivateHome { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `erlmcp` with this home (see [`isolate`]).
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        isolate(&mut command, self.path());
        command
    }
}

/// Points `command`'s `HOME`, `XDG_RUNTIME_DIR`, `XDG_DATA_HOME` (`home/data`: the node's store
/// and disk cache) and `TMPDIR` at `home` and drops the `ERLMCP_*`
/// variables it would inherit; variables set on `command` afterwards still win.
pub fn isolate(command: &mut Command, home: &Path) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|key| key.starts_with("ERLMCP_")) {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TMPDIR", home);
}
