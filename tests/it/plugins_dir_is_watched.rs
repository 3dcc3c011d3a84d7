//! `plugins.watch`: a plugin copied into the watched directory is loaded once it holds still; a
//! new version of it is swapped in; a broken file is refused and logged while the serving version
//! stays; files that were there at start are left to the start-up load.

use crate::support::{plugin_build, tree};

use std::path::Path;
use std::time::Duration;

/// Copies `from` into `dir` as `name` the way a deployment should: write aside, then rename.
fn install(from: &Path, dir: &Path, name: &str) {
    let aside = dir.join(format!(".{name}.partial"));
    std::fs::copy(from, &aside).unwrap();
    std::fs::rename(&aside, dir.join(name)).unwrap();
}

async fn wait_for_version(app: &erlmcp::app::Application, version: &str) -> bool {
    for _ in 0..100 {
        if app
            .plugins()
            .list()
            .iter()
            .any(|p| p.name == "counter" && p.version == version)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn the_watched_directory_loads_new_and_changed_plugins_and_refuses_broken_ones() {
    tree::run(|home| async move {
        let builds = tempfile::tempdir().unwrap();
        let root = builds.path().to_owned();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &root.join("v1.so"));
            plugin_build::build("erlmcp-plugin-counter", &["v2"], &root.join("v2.so"));
            plugin_build::build(
                "erlmcp-plugin-broken",
                &["init_fails"],
                &root.join("broken.so"),
            );
        })
        .await
        .unwrap();
        let watched = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let mut config = home.config();
        config.http.enabled = false;
        config.admin.enabled = false;
        config.plugins.dir = watched.path().display().to_string();
        config.plugins.staging = staging.path().join("s").display().to_string();
        config.plugins.watch = true;
        config.plugins.watch_interval = 50;
        let app = erlmcp::app::Application::start(&config).await.unwrap();
        assert!(app.plugins().list().is_empty());
        let watcher = app.snapshot().await.unwrap();
        assert!(
            watcher.find_child("erlmcp_plugin_watch").is_some(),
            "the watcher is in the tree"
        );

        install(&builds.path().join("v1.so"), watched.path(), "counter.so");
        assert!(
            wait_for_version(&app, "1.0.0").await,
            "v1 loaded from the directory"
        );

        install(&builds.path().join("v2.so"), watched.path(), "counter.so");
        assert!(wait_for_version(&app, "2.0.0").await, "v2 swapped in");
        assert_eq!(app.plugins().list()[0].history, vec!["1.0.0"]);

        install(
            &builds.path().join("broken.so"),
            watched.path(),
            "broken.so",
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let plugins = app.plugins().list();
        assert_eq!(
            plugins.len(),
            1,
            "the broken plugin was refused: {plugins:?}"
        );
        assert_eq!(plugins[0].version, "2.0.0", "the serving version stays");
        app.stop().await.unwrap();
    });
}
