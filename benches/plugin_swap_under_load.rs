//! Swap latency under load, measured alone: callers keep calling the counter plugin's `count`
//! through erlmcp's dispatcher while versions are swapped, and we report
//! - how long a swap takes under that load: `rollback` (a registry batch, no library
//!   work) and `load` (staging copy, dlopen, init, self-test, describe, registry batch, swap);
//! - what callers see: call latency p50/p99/max with and without swaps going on, and failures
//!   (answers that are errors or `isError` — there must be none).
//!
//! Run: `cargo bench --bench plugin_swap_under_load [-- SECONDS]` (default 4 s per phase).

#[path = "support/plugin_server.rs"]
mod support;

use erlmcp::dispatch::{Dispatcher, ServerContext};
use erlmcp::outbound::Outbound;
use erlmcp::session::{SessionSettings, start_session};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{build_counter, plugin_server};

const CALLERS: usize = 4;

fn micros(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>6.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  ({} calls)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// Callers calling until `stop`; their latency (ns) and failures.
async fn call_until(
    server: Arc<ServerContext>,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
) -> Histogram<u64> {
    let (outbound, mut queue) = Outbound::channel();
    let session = start_session(
        outbound,
        SessionSettings::keeping_actors(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let dispatcher = Dispatcher::new(server, session, erlmcp::metrics::Transport::Tcp);
    dispatcher
        .handle_frame(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#)
        .await;
    let _ = queue.rx.recv().await;
    let frame = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"count","arguments":{}}}"#;
    let mut h = Histogram::<u64>::new(3).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        dispatcher.handle_frame(frame).await;
        // Skip the registry's list_changed notifications that swaps send to every session.
        let answer = loop {
            let frame = queue.rx.recv().await.expect("an answer");
            queue.level().written(1, frame.len());
            if !frame.starts_with(br#"{"jsonrpc":"2.0","method""#) {
                break frame;
            }
        };
        let _ = h.record(t0.elapsed().as_nanos() as u64);
        let text = String::from_utf8_lossy(&answer);
        let failed = !text.contains("\"result\"") || text.contains("\"isError\":true");
        if failed && failures.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("first failure: {text}");
        }
        tokio::task::yield_now().await;
    }
    h
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(4.0);
    let phase = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (dir.path().join("v1.so"), dir.path().join("v2.so"));
    build_counter(&v1, &[]);
    build_counter(&v2, &["v2"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (server, host) = plugin_server(dir.path(), &v1, Vec::new()).await;

        for swapping in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let failures = Arc::new(AtomicU64::new(0));
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| {
                    tokio::spawn(call_until(
                        Arc::clone(&server),
                        Arc::clone(&stop),
                        Arc::clone(&failures),
                    ))
                })
                .collect();
            let mut rollbacks = Histogram::<u64>::new(3).unwrap();
            let mut loads = Histogram::<u64>::new(3).unwrap();
            let until = Instant::now() + phase;
            while Instant::now() < until {
                if swapping {
                    let t0 = Instant::now();
                    host.load(&v2, serde_json::json!({})).await.unwrap();
                    let _ = loads.record(t0.elapsed().as_nanos() as u64);
                    let t0 = Instant::now();
                    host.rollback("counter").await.unwrap();
                    let _ = rollbacks.record(t0.elapsed().as_nanos() as u64);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.store(true, Ordering::Relaxed);
            let mut calls = Histogram::<u64>::new(3).unwrap();
            for caller in callers {
                calls.add(caller.await.unwrap()).unwrap();
            }
            let label = if swapping {
                "calls during swaps"
            } else {
                "calls, no swaps"
            };
            println!(
                "{label:<22} {}  failures {}",
                micros(&calls),
                failures.load(Ordering::Relaxed)
            );
            if swapping {
                println!(
                    "{:<22} {}",
                    "swap (rollback)",
                    micros(&rollbacks).replace("calls", "swaps")
                );
                println!(
                    "{:<22} {}",
                    "load + swap",
                    micros(&loads).replace("calls", "loads")
                );
            }
        }
    });
}
