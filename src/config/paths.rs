//! Where a node keeps its files by default: the admin socket's directory and the cookie file,
//! under `$XDG_RUNTIME_DIR` or `$HOME` (or the temporary directory without either). Shared by
//! the node and by `erlmcp remote`, so both find the same socket and the same cookie.

use std::path::PathBuf;

/// The admin socket directory for a configured value ("" for the default), shared by the node
/// and by `erlmcp remote`, so both find the same socket.
pub fn admin_socket_dir(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(runtime).join("erlmcp");
    }
    match home_dir() {
        Some(home) => home.join(".erlmcp").join("run"),
        None => std::env::temp_dir().join("erlmcp-run"),
    }
}

/// `$HOME`, when set.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The default cookie file: `~/.erlmcp/cookie` (or under the temporary directory without `$HOME`).
pub(crate) fn default_cookie_file() -> PathBuf {
    home_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(".erlmcp")
        .join("cookie")
}

/// A node's data directory for a configured value ("" for the default): where its state store
/// and its on-disk cache tier keep their files, one directory per node name, beside its runtime
/// files — `$XDG_DATA_HOME/erlmcp/<node>`, else `~/.erlmcp/data/<node>` (or under the temporary
/// directory without `$HOME`). Unlike the runtime directory, it must outlive the process.
pub(crate) fn node_data_dir(configured: &str, node_name: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("erlmcp").join(node_name);
    }
    home_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(".erlmcp")
        .join("data")
        .join(node_name)
}
