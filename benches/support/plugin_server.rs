//! Owns what the plugin benches share: building the counter plugin (release) and a dispatcher
//! context serving it — a session supervisor, the registry actor and a plugin host — without the
//! rest of the tree.
#![allow(unreachable_pub)]

use erlmcp::dispatch::ServerContext;
use erlmcp::plugin_host::PluginHost;
use erlmcp::protocol::messages::Implementation;
use erlmcp::registry::{Change, Registry, RegistryHandle, RegistrySnapshot};
use erlmcp::session::{SESSION_SUP, session_template};
use erlmcp_supervisors::DynamicSupervisor;
use std::path::Path;
use std::sync::Arc;

/// Builds `erlmcp-plugin-counter` (release) with `features` and copies it to `dest`.
pub fn build_counter(dest: &Path, features: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // One target directory per feature set: a cdylib's file name carries no hash, so builds of
    // different features in one directory would rebuild each other every run.
    let target = root
        .join("target")
        .join(format!("plugin-build{}", features.join("-")));
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "erlmcp-plugin-counter",
            "--target-dir",
        ])
        .arg(&target);
    for feature in features {
        cmd.args(["--features", feature]);
    }
    assert!(
        cmd.status().expect("run cargo").success(),
        "building the counter plugin failed"
    );
    std::fs::copy(
        target.join("release").join("liberlmcp_plugin_counter.so"),
        dest,
    )
    .unwrap();
}

/// A dispatcher context serving `native` and the plugin at `library` (staged under `dir`).
pub async fn plugin_server(
    dir: &Path,
    library: &Path,
    native: Vec<Change>,
) -> (Arc<ServerContext>, Arc<PluginHost>) {
    DynamicSupervisor::start(session_template(), |s| s.named(SESSION_SUP))
        .await
        .unwrap();
    let (snapshot, _) = RegistrySnapshot::default().apply(native).unwrap();
    let registry = RegistryHandle::new(snapshot);
    ractor::Actor::spawn(
        Some(erlmcp::registry::REGISTRY.into()),
        Registry,
        registry.published(),
    )
    .await
    .unwrap();
    let host = PluginHost::new(registry.clone(), dir.join("staging")).unwrap();
    host.load(library, serde_json::json!({})).await.unwrap();
    let server = Arc::new(ServerContext {
        metrics: Arc::default(),
        registry,
        page_size: 100,
        server_info: Implementation::default(),
        instructions: None,
        max_batch_size: 100,
        max_message_size: 16 * 1024 * 1024,
        admission: Arc::default(),
    });
    (server, host)
}
