//! Hot-swapping a handler plugin under load: two clients call the plugin's tool continuously
//! while v1 is loaded, swapped for v2, every broken plugin (plugins/broken) and a file that is not
//! a library are refused (v2 keeps serving), and v1 is rolled back — with zero failed requests,
//! and answers that show which version served them.
//!
//! The plugins are built here with cargo.

use crate::support::{node, plugin_build, tree};

use erlmcp::plugin_host::PluginError;
use node::Client;
use serde_json::json;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn connect(addr: SocketAddr) -> Client<TcpStream, TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    let mut client = Client::new(stream.try_clone().unwrap(), stream);
    client.initialize("2025-06-18", json!({}));
    client
}

/// Calls `count` until `stop`; returns every answer's text, and the failures.
fn hammer(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Vec<String>, Vec<String>) {
    let mut client = connect(addr);
    let (mut answers, mut failures) = (Vec::new(), Vec::new());
    let mut id = 1;
    while !stop.load(Ordering::Relaxed) {
        let r = client.call(id, "tools/call", json!({"name": "count", "arguments": {}}));
        id += 1;
        match r["result"]["content"][0]["text"].as_str() {
            Some(text) if r["result"]["isError"] != true => answers.push(text.to_owned()),
            _ => failures.push(r.to_string()),
        }
    }
    (answers, failures)
}

fn version_of(answer: &str) -> &str {
    answer.split(' ').next().unwrap_or_default()
}

#[test]
fn swap_refuse_broken_and_roll_back_under_load_without_a_failed_request() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (
            dir.path().join("counter-v1.so"),
            dir.path().join("counter-v2.so"),
        );
        let (d1, d2, root) = (v1.clone(), v2.clone(), dir.path().to_owned());
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &d1);
            plugin_build::build("erlmcp-plugin-counter", &["v2"], &d2);
            plugin_build::build_refused(&root);
        })
        .await
        .unwrap();

        let app = plugin_build::start_node(&home, &dir.path().join("staging")).await;
        let addr = app.tcp_addr().unwrap();
        let host = app.plugins();

        let loaded = host.load(&v1, json!({})).await.unwrap();
        assert_eq!(
            (loaded.name.as_str(), loaded.version.as_str()),
            ("counter", "1.0.0")
        );
        assert_eq!(loaded.tools, vec!["count"]);

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || hammer(addr, stop))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let swapped = host.load(&v2, json!({})).await.unwrap();
        assert_eq!(swapped.version, "2.0.0");
        assert_eq!(swapped.history, vec!["1.0.0"]);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Broken loads are refused with the step that failed; v2 keeps serving.
        for refused in plugin_build::REFUSED {
            plugin_build::assert_refused(host, dir.path(), *refused).await;
        }
        let not_a_library = dir.path().join("garbage.so");
        std::fs::write(&not_a_library, b"this is not an ELF file").unwrap();
        let err = host.load(&not_a_library, json!({})).await.unwrap_err();
        assert!(matches!(err, PluginError::Load(_)), "{err}");
        assert!(err.to_string().contains("open:"), "{err}");
        let missing = host
            .load(&dir.path().join("missing.so"), json!({}))
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("read:"), "{missing}");
        assert_eq!(host.list()[0].version, "2.0.0");
        tokio::time::sleep(Duration::from_millis(200)).await;

        let rolled = host.rollback("counter").await.unwrap();
        assert_eq!(rolled.version, "1.0.0");
        assert!(matches!(
            host.rollback("counter").await.unwrap_err(),
            PluginError::NoHistory(_)
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);

        let mut all = Vec::new();
        for client in clients {
            let (answers, failures) = client.join().unwrap();
            assert!(failures.is_empty(), "failed requests: {failures:?}");
            assert!(!answers.is_empty());
            let versions: Vec<&str> = answers.iter().map(|a| version_of(a)).collect();
            // Each client saw v1, then v2, then v1 again — in that order.
            let first_v2 = versions
                .iter()
                .position(|v| *v == "2.0.0")
                .expect("v2 answered");
            let last_v2 = versions.iter().rposition(|v| *v == "2.0.0").unwrap();
            assert!(versions[..first_v2].iter().all(|v| *v == "1.0.0"));
            assert!(versions[last_v2 + 1..].iter().all(|v| *v == "1.0.0"));
            assert!(
                last_v2 + 1 < versions.len(),
                "v1 answered after the rollback"
            );
            all.extend(answers);
        }
        // The rolled-back version kept its state: its counts continue past those before the swap.
        let v1_counts: Vec<u64> = all
            .iter()
            .filter(|a| version_of(a) == "1.0.0")
            .filter_map(|a| a.split(' ').nth(1)?.parse().ok())
            .collect();
        let mut sorted = v1_counts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), v1_counts.len(), "v1 counted each call once");
        app.stop().await.unwrap();
    });
}
