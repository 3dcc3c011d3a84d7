//! What a plugin tool costs over the same tool written natively: `tools/call count` through
//! erlmcp's dispatcher, once served by the counter plugin (plugins/counter, loaded from a `.so`
//! through the C ABI with JSON payloads) and once by a native Rust handler doing the same work.
//! Also the time to swap a plugin version in (load excluded: swap = registry batch + arc-swap).
//!
//! Run: `cargo bench --bench plugin_dispatch` (it builds the plugin into target/plugin-build).

#[path = "support/plugin_server.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use erlmcp::dispatch::Dispatcher;
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, ToolEntry};
use erlmcp::session::{RequestContext, start_session};
use erlmcp::transport::outbound::Outbound;
use futures::FutureExt;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::{build_counter, plugin_server};

fn native_count() -> Change {
    let count = Arc::new(AtomicU64::new(0));
    Change::Tool(ToolEntry::new(
        Tool::without_arguments("native_count", "counts"),
        move |_ctx: RequestContext, _args: Arguments| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            std::future::ready(Ok(CallToolResult::text(format!("1.0.0 {n}"))))
        },
    ))
}

fn plugin_vs_native(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("counter.so");
    build_counter(&library, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dispatcher, mut queue, host) = rt.block_on(async {
        let (server, host) = plugin_server(dir.path(), &library, vec![native_count()]).await;
        let (outbound, queue) = Outbound::channel();
        let session = start_session(outbound, Duration::from_secs(5)).await.unwrap();
        let dispatcher = Dispatcher::new(server, session);
        dispatcher
            .handle_frame(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#)
            .await;
        (dispatcher, queue, host)
    });
    let _ = queue.rx.try_recv();
    let mut group = c.benchmark_group("tools_call_plugin_vs_native");
    for (label, tool) in [("native", "native_count"), ("plugin", "count")] {
        let frame = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        );
        group.bench_function(label, |b| {
            b.iter(|| {
                dispatcher
                    .handle_frame(black_box(frame.as_bytes()))
                    .now_or_never()
                    .expect("answers without waiting");
                let answer = queue.rx.try_recv().expect("one answer");
                queue.level.written(1, answer.len());
                black_box(answer);
            })
        });
    }
    group.finish();
    let mut swaps = c.benchmark_group("plugin_swap");
    swaps.sample_size(20);
    swaps.bench_function("load_then_rollback_pair", |b| {
        b.iter(|| {
            rt.block_on(async {
                host.load(&library, serde_json::json!({})).await.unwrap();
                host.rollback("counter").await.unwrap();
            })
        })
    });
    swaps.finish();
}

criterion_group!(benches, plugin_vs_native);
criterion_main!(benches);
