//! Canary: a candidate version takes a per-mille share of calls; a failing canary is aborted
//! automatically and its failures are retried on the current version, so clients never see
//! them; a healthy canary is promoted.

use crate::support::{node, plugin_build, tree};

use erlmcp::plugin_host::CANARY_MIN_CALLS;
use node::Client;
use serde_json::json;
use std::net::TcpStream;

fn count_many(addr: std::net::SocketAddr, calls: i64) -> Vec<String> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    let mut client = Client::new(stream.try_clone().unwrap(), stream);
    client.initialize("2025-06-18", json!({}));
    (1..=calls)
        .map(|id| {
            let r = client.call(id, "tools/call", json!({"name": "count"}));
            assert_ne!(r["result"]["isError"], true, "a client saw a failure: {r}");
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_flaky_canary_is_aborted_unseen_and_a_healthy_one_is_promoted() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &root.join("v1.so"));
            plugin_build::build("erlmcp-plugin-counter", &["v2"], &root.join("v2.so"));
            plugin_build::build("erlmcp-plugin-broken", &["flaky"], &root.join("flaky.so"));
        })
        .await
        .unwrap();
        let app = plugin_build::start_node(&home, &dir.path().join("staging")).await;
        let addr = app.tcp_addr().unwrap();
        let host = app.plugins();
        host.load(&dir.path().join("v1.so"), json!({}))
            .await
            .unwrap();

        let canary = host
            .load_canary(&dir.path().join("flaky.so"), json!({}), 500)
            .await
            .unwrap();
        assert_eq!(canary.canary.unwrap().version, "9.9.9-flaky");
        let answers = tokio::task::spawn_blocking(move || count_many(addr, 200))
            .await
            .unwrap();
        assert!(
            answers.iter().any(|a| a.starts_with("flaky")),
            "the canary served some calls"
        );
        let info = &host.list()[0];
        assert_eq!(info.canary, None, "the flaky canary was aborted");
        assert_eq!(info.version, "1.0.0");
        let v1_after_abort = answers
            .iter()
            .rev()
            .take(20)
            .all(|a| a.starts_with("1.0.0"));
        assert!(
            v1_after_abort,
            "after the abort only v1 answers: {answers:?}"
        );

        host.load_canary(&dir.path().join("v2.so"), json!({}), 500)
            .await
            .unwrap();
        let answers =
            tokio::task::spawn_blocking(move || count_many(addr, (2 * CANARY_MIN_CALLS) as i64))
                .await
                .unwrap();
        assert!(answers.iter().any(|a| a.starts_with("1.0.0")));
        assert!(answers.iter().any(|a| a.starts_with("2.0.0")));
        let canary = host.list()[0]
            .canary
            .clone()
            .expect("the healthy canary runs on");
        assert_eq!(canary.failures, 0);
        let promoted = host.promote("counter").await.unwrap();
        assert_eq!(
            (promoted.version.as_str(), promoted.canary.is_none()),
            ("2.0.0", true)
        );
        assert_eq!(promoted.history, vec!["1.0.0"]);
        let answers = tokio::task::spawn_blocking(move || count_many(addr, 10))
            .await
            .unwrap();
        assert!(
            answers.iter().all(|a| a.starts_with("2.0.0")),
            "{answers:?}"
        );
        app.stop().await.unwrap();
    });
}
