//! Every deliberately broken plugin (plugins/broken) is refused at the step that catches it, with
//! the reason, while the version already serving keeps serving; a plugin whose handler panics is
//! loaded, and each call of it becomes a result with `isError` while the node goes on; so does
//! each call of a tool that answers something that is not a result. A plugin built against the
//! ABI's first vtable (before `call_tool` was appended) loads and serves through `handle`.

use crate::support::{node, plugin_build, tree};

use node::Client;
use serde_json::json;
use std::net::TcpStream;

#[test]
fn broken_plugins_are_refused_at_their_step_and_a_panicking_handler_is_an_error_result() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let served = ["handler_panics", "bad_answer", "first_release_vtable"];
        let counter = dir.path().join("counter.so");
        let root = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &root.join("counter.so"));
            plugin_build::build_refused(&root);
            for feature in served {
                plugin_build::build(
                    "erlmcp-plugin-broken",
                    &[feature],
                    &root.join(format!("{feature}.so")),
                );
            }
        })
        .await
        .unwrap();

        let app = plugin_build::start_node(&home, &dir.path().join("staging")).await;
        let host = app.plugins();
        host.load(&counter, json!({"start": 100})).await.unwrap();

        for &(feature, reason) in plugin_build::REFUSED {
            plugin_build::assert_refused(host, dir.path(), (feature, reason)).await;
            let listed = host.list();
            assert_eq!(
                listed.len(),
                1,
                "{feature} left something behind: {listed:?}"
            );
            assert_eq!(listed[0].version, "1.0.0");
        }
        // The staging directory holds only the serving version's copy.
        let staged = std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count();
        assert_eq!(staged, 1);

        host.load(&dir.path().join("handler_panics.so"), json!({}))
            .await
            .unwrap();
        host.load(&dir.path().join("first_release_vtable.so"), json!({}))
            .await
            .unwrap();
        let addr = app.tcp_addr().unwrap();
        tokio::task::spawn_blocking(move || {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let mut client = Client::new(stream.try_clone().unwrap(), stream);
            client.initialize("2025-06-18", json!({}));
            for id in 1..=3 {
                let r = client.call(id, "tools/call", json!({"name": "explode"}));
                let text = node::tool_error_text(&r);
                assert!(text.contains("panicked on purpose"), "{text}");
            }
            let counted = client.call(9, "tools/call", json!({"name": "count"}));
            assert_eq!(counted["result"]["content"][0]["text"], "1.0.0 101");
            for n in 1..=2 {
                let old = client.call(10 + n, "tools/call", json!({"name": "old_abi"}));
                assert_eq!(
                    old["result"]["content"][0]["text"],
                    format!("served through handle, call {n}"),
                    "{old}"
                );
            }
        })
        .await
        .unwrap();
        // A tool answering what is not a result: an error result that says so (the same `broken`
        // plugin, next version).
        host.load(&dir.path().join("bad_answer.so"), json!({}))
            .await
            .unwrap();
        tokio::task::spawn_blocking(move || {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let mut client = Client::new(stream.try_clone().unwrap(), stream);
            client.initialize("2025-06-18", json!({}));
            let r = client.call(1, "tools/call", json!({"name": "explode"}));
            let text = node::tool_error_text(&r);
            assert!(
                text.contains("unreadable result") && text.contains("`content` is not an array"),
                "{text}"
            );
            let counted = client.call(2, "tools/call", json!({"name": "count"}));
            assert_eq!(counted["result"]["content"][0]["text"], "1.0.0 102");
        })
        .await
        .unwrap();
        app.stop().await.unwrap();
    });
}
