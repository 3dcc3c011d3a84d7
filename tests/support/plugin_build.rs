//! Owns building the workspace's plugin crates for tests: `cargo build -p CRATE --features …`
//! into `target/plugin-build` (a separate target directory, so it never waits on the running
//! `cargo test`), then copying the library to where the test wants it.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

/// Builds `package` with `features` and copies its `.so` to `dest`.
pub fn build(package: &str, features: &[&str], dest: &Path) {
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
