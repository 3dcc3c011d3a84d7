//! Tool results that opt in to the cache are served again from it: a counting tool's body runs
//! once for any number of calls with the same arguments (written in any key order); a tool cached
//! per session never answers one session with another's result; a tool that is not annotated
//! read-only and idempotent is refused a cache TTL at registration; and a plugin swap never
//! serves an answer of the old version from the cache.

use crate::support::node::{self, connect_initialized};
use crate::support::{plugin_build, tree};
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, RegistryError, ToolEntry};
use erlmcp::session::RequestContext;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A tool answering how many times its body ran, annotated read-only and idempotent.
fn counting_tool(name: &str, runs: &Arc<AtomicU64>) -> ToolEntry {
    let runs = Arc::clone(runs);
    let tool = Tool::new(name, "Counts its runs", json!({"type": "object"}))
        .with_annotations(json!({"readOnlyHint": true, "idempotentHint": true}));
    ToolEntry::new(tool, move |_ctx: RequestContext, _args: Arguments| {
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(CallToolResult::text(format!("run {n}"))) }
    })
}

fn text(response: &Value) -> String {
    assert_ne!(response["result"]["isError"], true, "{response}");
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
        .to_owned()
}

#[test]
fn a_cached_tool_runs_once_private_ones_never_cross_sessions_and_others_are_refused() {
    tree::run(|home| async move {
        let shared_runs = Arc::new(AtomicU64::new(0));
        let private_runs = Arc::new(AtomicU64::new(0));
        let config = home.tcp_config();
        let app = erlmcp::app::Application::start_with(
            &config,
            vec![
                Change::Tool(counting_tool("shared", &shared_runs).cached(60_000, false)),
                Change::Tool(counting_tool("mine", &private_runs).cached(60_000, true)),
            ],
        )
        .await
        .unwrap();
        let addr = app.tcp_addr().unwrap();

        let answers = tokio::task::spawn_blocking(move || {
            let mut first = connect_initialized(addr);
            let mut second = connect_initialized(addr);
            let call = |client: &mut node::Client<_, _>, id, name: &str, args: Value| {
                text(&client.call(id, "tools/call", json!({"name": name, "arguments": args})))
            };
            vec![
                call(&mut first, 2, "shared", json!({"a": 1, "b": [1, 2]})),
                // The same arguments, written in another order, from another session.
                call(&mut second, 2, "shared", json!({"b": [1, 2], "a": 1})),
                call(&mut first, 3, "shared", json!({"a": 2})),
                call(&mut first, 4, "mine", json!({})),
                call(&mut second, 4, "mine", json!({})),
                call(&mut first, 5, "mine", json!({})),
                call(&mut second, 5, "mine", json!({})),
            ]
        })
        .await
        .unwrap();
        assert_eq!(answers[0], "run 1");
        assert_eq!(answers[1], "run 1", "served from the cache");
        assert_eq!(answers[2], "run 2", "other arguments, another key");
        assert_eq!(shared_runs.load(Ordering::SeqCst), 2);
        assert_eq!(
            answers[3..],
            ["run 1", "run 2", "run 1", "run 2"],
            "each session its own answer, each served again to it alone"
        );
        assert_eq!(private_runs.load(Ordering::SeqCst), 2);

        // A tool not annotated read-only and idempotent may not be cached.
        let plain = ToolEntry::new(
            Tool::new("writer", "Writes", json!({"type": "object"})),
            |_ctx: RequestContext, _args: Arguments| async { Ok(CallToolResult::text("done")) },
        )
        .cached(1000, false);
        let refused = app.registry().apply(vec![Change::Tool(plain)]).await;
        assert!(
            matches!(&refused, Err(RegistryError::NotCacheable(name)) if name == "writer"),
            "{refused:?}"
        );
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("readOnlyHint and idempotentHint")
        );
        assert!(!app.registry().snapshot().tools.contains_key("writer"));
        app.stop().await.unwrap();
    });
}

#[test]
fn a_plugin_swap_never_serves_the_old_versions_answers() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (
            dir.path().join("counter-v1.so"),
            dir.path().join("counter-v2.so"),
        );
        let (d1, d2) = (v1.clone(), v2.clone());
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-counter", &[], &d1);
            plugin_build::build("erlmcp-plugin-counter", &["v2"], &d2);
        })
        .await
        .unwrap();
        let app = plugin_build::start_node(&home, &dir.path().join("staging")).await;
        let addr = app.tcp_addr().unwrap();
        let host = app.plugins();
        let peek_config = json!({"peek_ttl_ms": 600_000});

        let loaded = host.load(&v1, peek_config.clone()).await.unwrap();
        assert_eq!(loaded.tools, vec!["count", "peek"]);
        let peek = move |id: i64| {
            let mut client = connect_initialized(addr);
            text(&client.call(id, "tools/call", json!({"name": "peek", "arguments": {}})))
        };
        let count = move || {
            let mut client = connect_initialized(addr);
            text(&client.call(9, "tools/call", json!({"name": "count"})))
        };
        let before = tokio::task::spawn_blocking(move || {
            let first = peek(2);
            count();
            (first, peek(3))
        })
        .await
        .unwrap();
        assert_eq!(before.0, "1.0.0 0 peeks=1");
        assert_eq!(before.1, before.0, "served from the cache: peek ran once");

        let swapped = host.load(&v2, peek_config).await.unwrap();
        assert_eq!(swapped.version, "2.0.0");
        let after = tokio::task::spawn_blocking(move || (peek(4), peek(5)))
            .await
            .unwrap();
        assert_eq!(
            after.0, "2.0.0 0 peeks=1",
            "v2 ran: nothing of v1 was served"
        );
        assert_eq!(after.1, after.0, "v2's answer is cached in turn");
        app.stop().await.unwrap();
    });
}
