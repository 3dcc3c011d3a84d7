//! What a plugin tool costs over the same tool written natively: `tools/call` through erlmcp's
//! dispatcher (frame in, answer frame out), served
//! - `native`: by a Rust handler doing the counter's work (count, report progress — none was
//!   asked for — and answer `"<version> <n>"`);
//! - `plugin`: by the counter plugin (plugins/counter, a `.so` through the C ABI, JSON payloads),
//!   whose `count` takes the fast path (`call_tool` entry, result written without a JSON tree);
//! - `plugin_value_api`: by the same plugin built with `value_api`, so the same tool runs through
//!   the convenient `Plugin::call_tool` (arguments and result as `serde_json::Value` trees).
//!
//! The variants are timed in rounds, interleaved (order alternating), so the machine's drift hits
//! them alike; each round times a batch of calls of each. Reported: the median ns per call of each
//! variant and, per plugin variant, its time minus `native`'s in the same round: the median over
//! the rounds that ran `native` first, averaged with the median over those that ran it second —
//! the plugin dispatch overhead. Every round also swaps the `value_api` build in (a `load`) and
//! out (a `rollback`); their times are reported too.
//!
//! Run: `cargo bench --bench plugin_dispatch [-- ROUNDS]` (default 30; it builds the plugin into
//! target/plugin-build). With `PLUGIN_DISPATCH_ONLY=native|plugin` it makes ROUNDS batches of
//! that variant alone and nothing else, for counting instructions: `perf stat -e instructions:u`
//! of one run minus the other, over ROUNDS × 20,000 calls, is the overhead in instructions — a
//! figure this noisy machine does not blur.

#[path = "support/plugin_server.rs"]
mod support;

use erlmcp::dispatch::Dispatcher;
use erlmcp::outbound::{Outbound, OutboundReceiver};
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, ToolEntry};
use erlmcp::session::{RequestContext, SessionSettings, start_session};
use futures::FutureExt;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{build_counter, plugin_server};

/// Calls per variant per round.
const BATCH: u32 = 20_000;
/// The counter plugin's version, which its answers carry.
const VERSION: &str = "1.0.0";

fn native_count() -> Change {
    let count = Arc::new(AtomicU64::new(0));
    Change::Tool(ToolEntry::new(
        Tool::without_arguments("native_count", "counts"),
        move |ctx: RequestContext, _args: Arguments| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            ctx.progress(1.0, Some(1.0), None);
            if n % 1000 == 0 {
                tracing::info!("counter reached {n}");
            }
            // The plugin's body, line for line: the bench compares dispatch, not tool bodies.
            let mut text = String::with_capacity(VERSION.len() + 21);
            let _ = write!(text, "{VERSION} {n}");
            std::future::ready(Ok(CallToolResult::text(text)))
        },
    ))
}

fn frame(tool: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
    .into_bytes()
}

/// ns per call over a batch of `frame`, checking each answer is a success.
fn time_batch(dispatcher: &Dispatcher, queue: &mut OutboundReceiver, frame: &[u8]) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        dispatcher
            .handle_frame(black_box(frame))
            .now_or_never()
            .expect("answers without waiting");
        let answer = queue.rx.try_recv().expect("one answer");
        queue.level().written(1, answer.len());
        black_box(&answer);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(BATCH);
    let answer = {
        dispatcher.handle_frame(frame).now_or_never().unwrap();
        queue.rx.try_recv().unwrap()
    };
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains(r#""text":"1.0.0 "#) && !text.contains("isError"),
        "{text}"
    );
    ns
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The overhead from per-round differences made in alternating order: the mean of the median of
/// each order, which cancels what running second costs or gains (a median over both orders at
/// once lands on whichever of the two clusters is larger).
fn overhead(differences: &[f64]) -> f64 {
    let (mut first, mut second): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for (round, d) in differences.iter().enumerate() {
        if round % 2 == 0 {
            first.push(*d);
        } else {
            second.push(*d);
        }
    }
    (median(&mut first) + median(&mut second)) / 2.0
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let fast = dir.path().join("counter.so");
    let value_api = dir.path().join("counter-value-api.so");
    build_counter(&fast, &[]);
    build_counter(&value_api, &["value_api"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dispatcher, mut queue, host) = rt.block_on(async {
        let (server, host) = plugin_server(dir.path(), &fast, vec![native_count()]).await;
        let (outbound, queue) = Outbound::channel();
        let session = start_session(
            outbound,
            SessionSettings::keeping_actors(Duration::from_secs(5)),
        ).await.unwrap();
        let dispatcher = Dispatcher::new(server, session, erlmcp::metrics::Transport::Tcp);
        dispatcher
            .handle_frame(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#)
            .await;
        (dispatcher, queue, host)
    });
    let _ = queue.rx.try_recv();
    let (native, plugin) = (frame("native_count"), frame("count"));
    let drain = |queue: &mut OutboundReceiver| while queue.rx.try_recv().is_ok() {};

    if let Ok(only) = std::env::var("PLUGIN_DISPATCH_ONLY") {
        let frame = if only == "native" { &native } else { &plugin };
        for _ in 0..rounds {
            time_batch(&dispatcher, &mut queue, frame);
        }
        return;
    }

    // Warm-up: one batch of each.
    time_batch(&dispatcher, &mut queue, &native);
    time_batch(&dispatcher, &mut queue, &plugin);

    let (mut native_ns, mut plugin_ns, mut value_ns) = (vec![], vec![], vec![]);
    let (mut plugin_over, mut value_over) = (vec![], vec![]);
    let (mut loads, mut rollbacks) = (vec![], vec![]);
    for round in 0..rounds {
        let pair = |queue: &mut OutboundReceiver| {
            if round % 2 == 0 {
                let n = time_batch(&dispatcher, queue, &native);
                (n, time_batch(&dispatcher, queue, &plugin))
            } else {
                let p = time_batch(&dispatcher, queue, &plugin);
                (time_batch(&dispatcher, queue, &native), p)
            }
        };
        let (n, p) = pair(&mut queue);
        native_ns.push(n);
        plugin_ns.push(p);
        plugin_over.push(p - n);

        let t = Instant::now();
        rt.block_on(host.load(&value_api, serde_json::json!({})))
            .unwrap();
        loads.push(t.elapsed().as_secs_f64() * 1e6);
        drain(&mut queue); // the list_changed notification of the swap
        let (n, v) = pair(&mut queue);
        native_ns.push(n);
        value_ns.push(v);
        value_over.push(v - n);
        let t = Instant::now();
        rt.block_on(host.rollback("counter")).unwrap();
        rollbacks.push(t.elapsed().as_secs_f64() * 1e6);
        drain(&mut queue);
    }

    println!("tools/call through the dispatcher, {rounds} rounds of {BATCH} calls per variant");
    println!(
        "  native            {:>7.0} ns/call",
        median(&mut native_ns)
    );
    println!(
        "  plugin            {:>7.0} ns/call",
        median(&mut plugin_ns)
    );
    println!("  plugin_value_api  {:>7.0} ns/call", median(&mut value_ns));
    println!("overhead over native in the same round (median of rounds, each order apart)");
    println!(
        "  plugin            {:>+7.0} ns/call",
        overhead(&plugin_over)
    );
    println!(
        "  plugin_value_api  {:>+7.0} ns/call",
        overhead(&value_over)
    );
    println!("swaps (one of each per round, median)");
    println!("  load value_api build   {:>7.0} µs", median(&mut loads));
    println!(
        "  rollback               {:>7.0} µs",
        median(&mut rollbacks)
    );
}
