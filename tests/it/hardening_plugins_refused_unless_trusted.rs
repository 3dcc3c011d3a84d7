//! Nothing but what an operator loads may run in the node: a plugin reached through a symbolic
//! link into a world-writable directory, a plugin file or directory writable by group or others,
//! is refused with its reason logged (once, by the watcher); a staging directory that is not
//! private refuses the start, naming it; the staging directory is private (0700, copies 0600)
//! and gone after SIGTERM. (Tests run as root in CI, where every file is root's: ownership is
//! pinned by the unit tests of `plugin_host::trust`, modes and links here.)

use crate::support::home::PrivateHome;
use crate::support::{node, plugin_build, tree};

use node::Node;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A private directory (0700) under `root`.
fn private_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    dir
}

/// The names of the tools the node serves.
fn tool_names(node: &Node) -> Vec<String> {
    let mut client = node.connect();
    client.initialize("2025-06-18", json!({}));
    let listed = client.call(1, "tools/list", json!({}));
    listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads the node's stderr until a line holds every one of `needles`; returns it with every line
/// read meanwhile.
fn wait_line(node: &mut Node, needles: &[&str], seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + node::WAIT;
    while Instant::now() < deadline {
        if let Ok(line) = node.stderr.recv_timeout(Duration::from_millis(100)) {
            seen.push(line.clone());
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }
    panic!("no line with {needles:?} in stderr:\n{}", seen.join("\n"));
}

/// Copies `from` into `dir` as `name` (write aside, then rename), with `mode`.
fn install(from: &Path, dir: &Path, name: &str, mode: u32) {
    let aside = dir.join(format!(".{name}.partial"));
    std::fs::copy(from, &aside).unwrap();
    chmod(&aside, mode);
    std::fs::rename(&aside, dir.join(name)).unwrap();
}

#[test]
fn the_watcher_refuses_a_link_into_a_world_writable_directory_and_a_writable_file_once_each() {
    let root = tempfile::tempdir().unwrap();
    let counter = root.path().join("counter.so");
    plugin_build::build("erlmcp-plugin-counter", &[], &counter);
    let watched = private_dir(root.path(), "watched");
    // A world-writable directory anyone could have put a library in.
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(&counter, open.join("dropped.so")).unwrap();
    chmod(&open, 0o777);
    let config = format!(
        "[plugins]\ndir = \"{}\"\nstaging = \"{}\"\nwatch = true\nwatch_interval = 50\n",
        watched.display(),
        root.path().join("staging").display()
    );
    let mut node = Node::tcp(Some(&config));
    let mut seen = Vec::new();
    // Dropped in after the start-up load, for the watcher to find.
    wait_line(&mut node, &["erlmcp started"], &mut seen);

    std::os::unix::fs::symlink(open.join("dropped.so"), watched.join("evil.so")).unwrap();
    let refused = wait_line(
        &mut node,
        &[
            "in the watched directory not loaded",
            "evil.so",
            "trust:",
            "writable by its group or others (mode 0777)",
        ],
        &mut seen,
    );
    assert!(refused.contains(&open.display().to_string()), "{refused}");

    install(&counter, &watched, "loose.so", 0o666);
    let refused = wait_line(
        &mut node,
        &["in the watched directory not loaded", "loose.so"],
        &mut seen,
    );
    assert!(
        refused.contains("(the plugin file)") && refused.contains("mode 0666"),
        "{refused}"
    );
    assert!(!tool_names(&node).contains(&"count".to_owned()));

    // The watcher still loads what is trusted; the refusals were logged once each, not at every
    // look (some twenty looks have passed by now).
    install(&counter, &watched, "good.so", 0o644);
    wait_line(
        &mut node,
        &["plugin loaded from the watched directory", "good.so"],
        &mut seen,
    );
    std::thread::sleep(Duration::from_millis(500));
    while let Ok(line) = node.stderr.try_recv() {
        seen.push(line);
    }
    for file in ["evil.so", "loose.so"] {
        let lines = seen
            .iter()
            .filter(|l| l.contains("not loaded") && l.contains(file))
            .count();
        assert_eq!(lines, 1, "{file} refused once:\n{}", seen.join("\n"));
    }
    assert!(tool_names(&node).contains(&"count".to_owned()));
}

#[test]
fn a_plugin_directory_writable_by_others_loads_nothing_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    plugin_build::build("erlmcp-plugin-counter", &[], &dir.join("counter.so"));
    chmod(&dir, 0o777);
    let config = format!(
        "[plugins]\ndir = \"{}\"\nstaging = \"{}\"\nwatch = true\nwatch_interval = 50\n",
        dir.display(),
        root.path().join("staging").display()
    );
    let mut node = Node::tcp(Some(&config));
    let mut seen = Vec::new();
    let refused = wait_line(&mut node, &["plugin directory refused"], &mut seen);
    assert!(refused.contains("mode 0777"), "{refused}");
    assert!(!tool_names(&node).contains(&"count".to_owned()));
    // Fixed, the watcher loads what is there.
    chmod(&dir, 0o755);
    wait_line(&mut node, &["trusted again"], &mut seen);
    wait_line(
        &mut node,
        &["plugin loaded from the watched directory"],
        &mut seen,
    );
    assert!(tool_names(&node).contains(&"count".to_owned()));
}

/// `plugin load` from the admin channel, the embedding API, `plugins.dir` and its watcher share
/// one pipeline: the API refuses what the watcher refuses.
#[test]
fn a_load_by_path_refuses_a_writable_file_and_a_link_into_a_writable_directory() {
    tree::run(|home| async move {
        let root = tempfile::tempdir().unwrap();
        let counter = root.path().join("counter.so");
        let built = counter.clone();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &built)
        })
        .await
        .unwrap();
        let app = plugin_build::start_node(&home, &root.path().join("staging")).await;
        let host = app.plugins();

        chmod(&counter, 0o646);
        let err = host
            .load(&counter, json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("trust:") && err.contains("mode 0646"), "{err}");

        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::copy(&counter, open.join("c.so")).unwrap();
        chmod(&open.join("c.so"), 0o644);
        chmod(&open, 0o1777);
        let link = root.path().join("link.so");
        std::os::unix::fs::symlink(open.join("c.so"), &link).unwrap();
        let err = host.load(&link, json!({})).await.unwrap_err().to_string();
        assert!(
            err.contains("(the directory holding the plugin file)") && err.contains("mode 1777"),
            "{err}"
        );
        assert!(host.list().is_empty());

        chmod(&counter, 0o644);
        host.load(&counter, json!({})).await.unwrap();
        // The copy is private and loaded through its descriptor.
        let staged: Vec<_> = std::fs::read_dir(root.path().join("staging"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(staged.len(), 1);
        assert_eq!(mode(&staged[0]), 0o600);
        assert_eq!(mode(&root.path().join("staging")), 0o700);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.contains(&staged[0].display().to_string()),
            "the staged copy is mapped"
        );
        app.stop().await.unwrap();
        assert!(!root.path().join("staging").exists(), "removed at stop");
    });
}

/// Runs `erlmcp start` with `config`, which must fail; its exit code and stderr.
fn start_fails(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("erlmcp.toml");
    std::fs::write(&path, config).unwrap();
    let home = PrivateHome::new();
    let mut child = home
        .command()
        .args(["start", "--tcp", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + node::WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("erlmcp started with {config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_staging_directory_that_is_not_private_refuses_the_start_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let open = root.path().join("open-staging");
    std::fs::create_dir(&open).unwrap();
    std::fs::write(open.join("left.so"), b"someone's").unwrap();
    chmod(&open, 0o777);
    let (code, stderr) = start_fails(&format!("[plugins]\nstaging = \"{}\"\n", open.display()));
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains(&format!(
            "plugin staging directory {} refused",
            open.display()
        )) && stderr.contains("mode is 0777"),
        "{stderr}"
    );
    assert!(open.join("left.so").exists(), "left alone");

    let link = root.path().join("link-staging");
    std::os::unix::fs::symlink(private_dir(root.path(), "elsewhere"), &link).unwrap();
    let (code, stderr) = start_fails(&format!("[plugins]\nstaging = \"{}\"\n", link.display()));
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains(&link.display().to_string()) && stderr.contains("symbolic link"),
        "{stderr}"
    );
}

#[test]
fn the_default_staging_directory_is_private_and_removed_after_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let plugins = private_dir(root.path(), "plugins");
    plugin_build::build("erlmcp-plugin-counter", &[], &plugins.join("counter.so"));
    let run = root.path().join("run");
    let config = format!(
        "[plugins]\ndir = \"{}\"\n[admin]\nsocket_dir = \"{}\"\n",
        plugins.display(),
        run.display()
    );
    let mut node = Node::tcp(Some(&config));
    node.wait_log("plugin loaded at start");
    let staging = run.join(format!("erlmcp-{}.staging", node.child.id()));
    assert_eq!(mode(&staging), 0o700, "{}", staging.display());
    let staged: Vec<_> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(mode(&staged[0]), 0o600);
    assert!(tool_names(&node).contains(&"count".to_owned()));

    let status = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(node.wait_exit(), Some(0));
    assert!(!staging.exists(), "{} removed", staging.display());
}

/// `erlmcp plugin load PATH` through the admin channel: the same rules, the reason on stderr.
#[test]
fn the_admin_channel_refuses_an_untrusted_plugin_with_the_reason() {
    const COOKIE: &str = "trust-test-cookie";
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("trust-test-{}", std::process::id());
    let env_dir = runtime.path().as_os_str();
    let mut node = Node::with_env(
        &["--tcp", "127.0.0.1:0", "--name", &name],
        &[
            ("XDG_RUNTIME_DIR", env_dir),
            ("HOME", env_dir),
            ("ERLMCP_COOKIE", std::ffi::OsStr::new(COOKIE)),
        ],
    );
    node.wait_log("admin channel listening");
    let load = |path: &Path| {
        Command::new(node::BIN)
            .args(["plugin", "load"])
            .arg(path)
            .args(["--node", &name])
            .env("XDG_RUNTIME_DIR", env_dir)
            .env("HOME", env_dir)
            .env("ERLMCP_COOKIE", COOKIE)
            .output()
            .unwrap()
    };
    let builds = private_dir(runtime.path(), "builds");
    let counter = builds.join("counter.so");
    plugin_build::build("erlmcp-plugin-counter", &[], &counter);

    chmod(&counter, 0o666);
    let out = load(&counter);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("trust:") && stderr.contains("mode 0666"),
        "{stderr}"
    );

    let open = runtime.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(&counter, open.join("c.so")).unwrap();
    chmod(&open.join("c.so"), 0o644);
    chmod(&open, 0o777);
    let link = builds.join("link.so");
    std::os::unix::fs::symlink(open.join("c.so"), &link).unwrap();
    let out = load(&link);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("trust:") && stderr.contains("mode 0777"),
        "{stderr}"
    );
    assert!(!tool_names(&node).contains(&"count".to_owned()));

    chmod(&counter, 0o644);
    let out = load(&counter);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tool_names(&node).contains(&"count".to_owned()));
}
