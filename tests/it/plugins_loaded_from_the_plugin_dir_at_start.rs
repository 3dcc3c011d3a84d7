//! `plugins.dir`: every `*.so` there is loaded when the node starts; one that fails is logged and
//! skipped, and the node serves the rest — including the plugins' progress reports.

use crate::support::{node, plugin_build};

use node::Node;
use serde_json::json;

#[test]
fn plugins_in_the_plugin_dir_are_loaded_at_start_and_a_broken_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    plugin_build::build("erlmcp-plugin-counter", &[], &plugins.join("a-counter.so"));
    std::fs::write(plugins.join("b-garbage.so"), b"not a library").unwrap();
    std::fs::write(plugins.join("notes.txt"), b"not a plugin").unwrap();
    let config = format!(
        "[plugins]\ndir = \"{}\"\nstaging = \"{}\"\n",
        plugins.display(),
        dir.path().join("staging").display()
    );
    let mut node = Node::tcp(Some(&config));
    // The listeners start with the tree; the directory is loaded right after (in name order):
    // its tools come with a list_changed, so wait for both files' verdicts first.
    node.find_log("plugin loaded at start");
    node.find_log("plugin not loaded");
    let mut client = node.connect();
    client.initialize("2025-06-18", json!({}));
    let r = client.call(1, "tools/call", json!({"name": "count"}));
    assert_eq!(r["result"]["content"][0]["text"], "1.0.0 1");
    assert!(
        client
            .take_notifications("notifications/progress")
            .is_empty()
    );
    // A plugin's progress reports reach the client that asked for them.
    let r = client.call(
        2,
        "tools/call",
        json!({"name": "count", "_meta": {"progressToken": "p-7"}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "1.0.0 2");
    let progress = client.take_notifications("notifications/progress");
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "p-7");
    let skipped = node.find_log("plugin not loaded");
    assert!(skipped.contains("b-garbage.so"), "{skipped}");
}
