//! A tool declared blocking (`ToolEntry::blocking`) runs on the tool pool `erlmcp_tool_pool`:
//! with `size = 2`, no more than two calls run at once whatever the number of clients; the others
//! wait in order, and one that cannot get a slot within `checkout_timeout` gets a tool error
//! naming the pool. The pool's counters show it.
//!
//! One test function: the application tree registers global names, so one tree per process.

use crate::support::{node, tree};

use erlmcp::app::Application;
use erlmcp::config::{PoolConfig, TOOL_POOL};
use erlmcp::pool::tool_pool::ToolSlot;
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, ToolEntry};
use erlmcp::session::RequestContext;
use node::connect_initialized as connect;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

/// A tool that holds its thread for `ms` milliseconds, counting how many run at once.
fn crunch() -> ToolEntry {
    ToolEntry::blocking(
        Tool::new("crunch", "Blocks its thread", json!({"type": "object"})),
        |_ctx: RequestContext, args: Arguments| {
            let ms = args.parse::<Value>()?["ms"].as_u64().unwrap_or(0);
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(ms));
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            Ok(CallToolResult::text("done"))
        },
    )
}

/// `calls` clients each call `crunch` once at the same time; their answers and how long each took.
fn call_at_once(addr: SocketAddr, calls: usize, ms: u64) -> Vec<(Value, Duration)> {
    let mut clients: Vec<_> = (0..calls).map(|_| connect(addr)).collect();
    let threads: Vec<_> = clients
        .drain(..)
        .map(|mut client| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let answer = client.call(
                    1,
                    "tools/call",
                    json!({"name": "crunch", "arguments": {"ms": ms}}),
                );
                (answer, started.elapsed())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn is_ok(answer: &Value) -> bool {
    answer["result"]["isError"] != true && answer["result"]["content"][0]["text"] == "done"
}

#[test]
fn blocking_tools_run_at_most_size_at_once_and_wait_in_line_until_their_timeout() {
    tree::run(|home| async move {
        let mut config = home.tcp_config();
        config.demo = false;
        config.admin.enabled = false;
        config.pools.insert(
            TOOL_POOL.to_owned(),
            PoolConfig {
                size: Some(2),
                checkout_timeout: 1_500,
                ..PoolConfig::default()
            },
        );
        let app = Application::start_with(&config, vec![Change::Tool(crunch())])
            .await
            .unwrap();
        let addr = app.tcp_addr().unwrap();
        let pool = app.pool::<ToolSlot>(TOOL_POOL).unwrap();
        assert_eq!(pool.stats().size, 2);

        // Three calls of 500 ms with two slots: two run, the third waits for a slot, then runs.
        let answers = tokio::task::spawn_blocking(move || call_at_once(addr, 3, 500))
            .await
            .unwrap();
        assert!(answers.iter().all(|(a, _)| is_ok(a)), "{answers:?}");
        assert_eq!(MOST.load(Ordering::SeqCst), 2, "more than size ran at once");
        let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
        assert!(
            slowest >= Duration::from_millis(1_000),
            "the third did not wait: {slowest:?}"
        );

        // Five calls of 900 ms: two run, two wait 900 ms and run, the fifth would wait 1.8 s, past
        // checkout_timeout (1.5 s): it alone gets the pool's timeout as a tool error.
        let answers = tokio::task::spawn_blocking(move || call_at_once(addr, 5, 900))
            .await
            .unwrap();
        let failed: Vec<_> = answers.iter().filter(|(a, _)| !is_ok(a)).collect();
        assert_eq!(failed.len(), 1, "{answers:?}");
        let text = node::tool_error_text(&failed[0].0);
        assert!(
            text.contains("erlmcp_tool_pool") && text.contains("no worker free"),
            "{text}"
        );
        assert_eq!(MOST.load(Ordering::SeqCst), 2);
        let stats = pool.stats();
        assert_eq!((stats.checkouts, stats.timeouts), (7, 1), "{stats:?}");
        assert_eq!((stats.busy, stats.waiting), (0, 0), "{stats:?}");
        app.stop().await.unwrap();
    });
}
