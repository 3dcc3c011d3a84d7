//! Owns what the plugin tests share: building the workspace's plugin crates — `cargo build -p CRATE --features …`
//! into `target/plugin-build` (a separate target directory, so it never waits on the running
//! `cargo test`), then copying the library to where the test wants it.
#![allow(dead_code, unreachable_pub)]

use super::tree::TreeHome;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Held from a build's start until its library is copied: tests build in parallel in one
/// process, and a build of the same crate with other features would overwrite the library
/// between another build's end and its copy.
static BUILDING: Mutex<()> = Mutex::new(());

/// The plugins/broken features refused at load, each with the start of the reason the host gives.
pub const REFUSED: &[(&str, &str)] = &[
    ("wrong_abi", "abi: the plugin was built for ABI version 999"),
    (
        "no_vtable",
        "vtable: the library exports no `erlmcp_plugin_vtable`",
    ),
    ("undefined_import", "open:"),
    ("init_fails", "init: init refused"),
    (
        "init_panics",
        "init: plugin panicked: init panicked on purpose",
    ),
    ("self_test_fails", "self-test: self-test failed on purpose"),
    (
        "vtable_too_small",
        "vtable: 16 bytes, this host needs at least",
    ),
];

/// Builds every refused broken plugin into `dir` as `<feature>.so`.
pub fn build_refused(dir: &Path) {
    for (feature, _) in REFUSED {
        build(
            "erlmcp-plugin-broken",
            &[feature],
            &dir.join(format!("{feature}.so")),
        );
    }
}

/// Loads the refused plugin `feature` (built by [`build_refused`] into `dir`) and checks it is
/// refused with `reason`.
pub async fn assert_refused(
    host: &erlmcp::plugin_host::PluginHost,
    dir: &Path,
    (feature, reason): (&str, &str),
) {
    let err = host
        .load(&dir.join(format!("{feature}.so")), serde_json::json!({}))
        .await
        .expect_err(feature)
        .to_string();
    assert!(err.contains(reason), "{feature}: {err}");
}

/// Builds `package` with `features` and copies its `.so` to `dest`.
pub fn build(package: &str, features: &[&str], dest: &Path) {
    let _building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("plugin-build");
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.current_dir(root)
        .args(["build", "--quiet", "-p", package, "--target-dir"])
        .arg(&target);
    for feature in features {
        cmd.args(["--features", feature]);
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "building {package} {features:?} failed");
    let library = format!("lib{}.so", package.replace('-', "_"));
    std::fs::copy(target.join("debug").join(library), dest).unwrap();
}

/// An embedded node serving TCP on a free loopback port (no HTTP), staging plugins in `staging`,
/// its admin socket and cookie in `home`.
pub async fn start_node(home: &TreeHome, staging: &Path) -> erlmcp::app::Application {
    let mut config = home.config();
    config.tcp.enabled = true;
    config.http.enabled = false;
    config.tcp.addr = "127.0.0.1:0".parse().unwrap();
    config.plugins.staging = staging.display().to_string();
    erlmcp::app::Application::start(&config).await.unwrap()
}
