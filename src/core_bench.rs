//! Owns `erlmcp bench core`: the node's core operations measured in process, through the real
//! modules, each beside a plain baseline that does the same job in the same run — a registry
//! lookup beside a `Mutex<HashMap>`, the HTTP session table's lookup beside a `Mutex<HashMap>`
//! with SipHash, admission enter/leave beside a tokio `Semaphore`, a pool's checkout and checkin
//! beside a `Mutex<Vec>` — and a mix of them on several threads at once.
//!
//! It lives in the library, not the binary, because it measures parts no public API reaches
//! (the request path's own tables); it starts no node and opens no socket.
//!
//! Timing: each operation runs in batches of [`BATCH`]; a batch's time divided by its size is one
//! sample of the per-operation time (a single operation, tens of nanoseconds, is below what a
//! clock read can resolve), so p50/p99 are of batch means. Throughput is operations over the
//! whole run.

use crate::admission::{Admission, AdmissionSettings};
use crate::config::PoolConfig;
use crate::locks::lock;
use crate::metrics::Transport;
use crate::pool::{Pool, WorkerError, WorkerFactory};
use crate::registry::{Change, RegistryHandle, RegistrySnapshot, ToolEntry};
use crate::transport::http::{SeenAt, SessionCaps, SessionClient, SessionTable};
use futures::FutureExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Operations per timed batch.
pub const BATCH: u64 = 1024;

/// One operation: a name and a closure that does it once.
type Op = (&'static str, Arc<dyn Fn() + Send + Sync>);

/// One operation's figures.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// The operation (`registry_lookup`, …).
    pub name: &'static str,
    /// Whether this is erlmcp's operation or its baseline.
    pub side: &'static str,
    /// What it was measured through.
    pub through: &'static str,
    /// Operations per second on one thread.
    pub ops_per_sec: f64,
    /// Median time per operation (of batch means), nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile of batch means, nanoseconds.
    pub p99_ns: f64,
}

/// What `erlmcp bench core` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CoreReport {
    /// Each operation of erlmcp and its baseline, one thread each.
    pub ops: Vec<OpReport>,
    /// erlmcp's operation over its baseline's time, per operation (≤ 1: at least as fast).
    pub time_ratio_vs_baseline: Vec<(&'static str, f64)>,
    /// Threads of the mix.
    pub mix_threads: usize,
    /// Which operations the mix runs, in its order (each once per round).
    pub mix: Vec<&'static str>,
    /// Operations per second of the mix, all threads together.
    pub mix_ops_per_sec: f64,
    /// Median time per operation in the mix (of batch means), nanoseconds.
    pub mix_p50_ns: f64,
    /// 99th percentile of the mix's batch means, nanoseconds.
    pub mix_p99_ns: f64,
    /// Operations per second of the same mix made of the baselines, on as many threads, in the
    /// same run: what the machine gives shared tables done plainly.
    pub baseline_mix_ops_per_sec: f64,
    /// Which operations the core mix runs: the mix without the cache (issue 18's four).
    pub core_mix: Vec<&'static str>,
    /// Operations per second of the core mix, all threads together.
    pub core_mix_ops_per_sec: f64,
    /// The same core mix made of the baselines.
    pub baseline_core_mix_ops_per_sec: f64,
    /// Read operations run alone on all of the mix's threads at once, beside their baselines
    /// likewise: how a read scales when every core does it.
    pub on_all_threads: Vec<ThreadsReport>,
    /// Seconds each measurement ran.
    pub seconds_each: f64,
    /// Sessions in the session table (looked up spread over all of them).
    pub sessions: usize,
}

/// One operation alone on several threads at once, and its baseline likewise.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadsReport {
    /// The operation.
    pub name: &'static str,
    /// Threads.
    pub threads: usize,
    /// erlmcp's operations per second, all threads together.
    pub ops_per_sec: f64,
    /// The baseline's operations per second, all threads together.
    pub baseline_ops_per_sec: f64,
}

/// The reads measured alone on all threads: the cache's tiers and the store (issue 19's goals
/// are for L1 on two threads).
const ON_ALL_THREADS: [&str; 3] = ["cache_l1_get", "cache_l3_get_hot", "store_get"];

fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are within HdrHistogram's range")
}

/// Runs `op` in batches for `duration`; returns operations done and the batch means.
fn time_op(op: &(dyn Fn() + Send + Sync), duration: Duration) -> (u64, Duration, Histogram<u64>) {
    let mut histogram = new_histogram();
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < duration {
        let batch = Instant::now();
        for _ in 0..BATCH {
            op();
        }
        let ns = batch.elapsed().as_nanos() as u64;
        let _ = histogram.record((ns / BATCH).max(1));
        done += BATCH;
    }
    (done, start.elapsed(), histogram)
}

pub(crate) mod pair;
pub(crate) use pair::Pair;

/// Every operation measured, in the report's order (the mix runs erlmcp's side of each).
/// The operations of the mix: those in memory on every request's path (a registry lookup, a
/// session lookup, admission, a pool checkout, a cache L1 read and write). The disk tier's read
/// is measured alone: at microseconds it would be the whole mix.
/// The first `CORE_MIX` of them are the core mix (no cache).
const MIX: [&str; 6] = [
    "registry_lookup",
    "session_lookup",
    "admission_enter_leave",
    "pool_checkout_checkin",
    "cache_l1_get",
    "cache_l1_put",
];

const CORE_MIX: usize = 4;

fn pairs(sessions: usize) -> Vec<Pair> {
    vec![
        registry_pair(),
        session_pair(sessions),
        admission_pair(),
        pool_pair(),
    ]
    .into_iter()
    .chain(crate::cache::bench_pairs())
    .chain(crate::store::bench::bench_pairs())
    .chain(crate::protocol::request_state::bench_pairs())
    .chain(crate::cluster::bench::bench_pairs())
    .chain(crate::transport::http::forward::bench_pairs())
    .chain(crate::auth::bench::bench_pairs())
    .collect()
}

fn registry_pair() -> Pair {
    let changes: Vec<Change> = crate::demo::demo_changes();
    let (snapshot, _) = RegistrySnapshot::default()
        .apply(changes)
        .unwrap_or_else(|_| (RegistrySnapshot::default(), Vec::new()));
    let table: HashMap<String, Arc<ToolEntry>> = snapshot
        .tools
        .iter()
        .map(|(k, v)| (k.clone(), Arc::clone(v)))
        .collect();
    let handle = RegistryHandle::new(snapshot);
    let baseline = Mutex::new(table);
    Pair {
        name: "registry_lookup",
        ours: (
            "RegistryHandle::snapshot().tools.get (arc-swap)",
            Arc::new(move || {
                let snapshot = handle.snapshot();
                black_box(snapshot.tools.get(black_box("echo")).map(Arc::as_ptr));
            }),
        ),
        baseline: (
            "Mutex<HashMap<String, Arc<ToolEntry>>>::get",
            Arc::new(move || {
                let table = baseline.lock().unwrap_or_else(|e| e.into_inner());
                black_box(table.get(black_box("echo")).map(Arc::as_ptr));
            }),
        ),
    }
}

/// A session as the table holds it for the bench: what the request path touches on a lookup.
struct BenchSession {
    last_seen: SeenAt,
    /// What a plain table would hold instead (the baseline marks this one).
    seen_plainly: Mutex<Instant>,
}

impl SessionClient for BenchSession {
    fn client(&self) -> Option<std::net::IpAddr> {
        None
    }
}

/// Sessions in the table when none are asked for (`--sessions`).
pub const DEFAULT_SESSIONS: usize = 1_000;

/// The next of `sessions` each thread looks up, spread over the table (each thread its own
/// sequence: a shared counter would add its own contention to what is measured).
fn next_session(sessions: usize) -> usize {
    thread_local! {
        static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    NEXT.with(|next| {
        let n = next.get() % sessions;
        next.set((n + 7919) % sessions);
        n
    })
}

fn session_pair(sessions: usize) -> Pair {
    let sessions = sessions.max(1);
    let mut table = SessionTable::<BenchSession>::new(SessionCaps {
        total: sessions,
        per_client: 0,
    });
    let mut baseline = HashMap::new();
    let ids: Vec<String> = (0..sessions).map(|i| format!("{i:032x}")).collect();
    for id in &ids {
        let session = Arc::new(BenchSession {
            last_seen: SeenAt::now(),
            seen_plainly: Mutex::new(Instant::now()),
        });
        baseline.insert(id.clone(), Arc::clone(&session));
        let _ = table.insert(id.clone(), session);
    }
    let (table, baseline) = (Mutex::new(table), Mutex::new(baseline));
    let ids = Arc::new(ids);
    let baseline_ids = Arc::clone(&ids);
    // What the request path does: find the session by its id, keep it, mark it seen.
    let touch = |session: Option<Arc<BenchSession>>| {
        if let Some(session) = session {
            session.last_seen.mark();
            black_box(Arc::as_ptr(&session));
        }
    };
    let touch_plainly = |session: Option<Arc<BenchSession>>| {
        if let Some(session) = session {
            *lock(&session.seen_plainly) = Instant::now();
            black_box(Arc::as_ptr(&session));
        }
    };
    Pair {
        name: "session_lookup",
        ours: (
            "the HTTP session table (foldhash) under its mutex, then SeenAt::mark (coarse clock)",
            Arc::new(move || {
                let n = next_session(sessions);
                let found = lock(&table).get(black_box(&ids[n])).cloned();
                touch(found);
            }),
        ),
        baseline: (
            "Mutex<HashMap<String, Arc<_>>> (SipHash), then a Mutex<Instant> set to now",
            Arc::new(move || {
                let n = next_session(sessions);
                let found = lock(&baseline).get(black_box(&baseline_ids[n])).cloned();
                touch_plainly(found);
            }),
        ),
    }
}

/// Workers that are plain numbers: the bench measures lending, not the work.
struct Numbers;

impl WorkerFactory for Numbers {
    type Worker = u64;
    fn create(&self) -> impl std::future::Future<Output = Result<u64, WorkerError>> + Send {
        std::future::ready(Ok(7))
    }
}

/// Workers in the pool (and in the baseline's list).
const WORKERS: usize = 8;

fn pool_pair() -> Pair {
    let settings = PoolConfig {
        size: Some(WORKERS),
        ..PoolConfig::default()
    };
    let pool = Pool::new("erlmcp_bench_pool", &settings, Numbers);
    let baseline = Mutex::new(vec![7_u64; WORKERS]);
    Pair {
        name: "pool_checkout_checkin",
        ours: (
            "Pool::checkout (an idle worker, its health check on) + PoolGuard drop",
            Arc::new(move || {
                // An idle worker is lent at once: the future is done when first polled.
                if let Some(Ok(worker)) = pool.checkout().now_or_never() {
                    black_box(*worker);
                }
            }),
        ),
        baseline: (
            "Mutex<Vec<_>> pop + push",
            Arc::new(move || {
                let worker = lock(&baseline).pop();
                if let Some(worker) = worker {
                    black_box(worker);
                    lock(&baseline).push(worker);
                }
            }),
        ),
    }
}

fn admission_pair() -> Pair {
    let admission = Arc::new(Admission::new(&AdmissionSettings::default()));
    let semaphore = tokio::sync::Semaphore::new(AdmissionSettings::default().capacity);
    Pair {
        name: "admission_enter_leave",
        ours: (
            "Admission::try_enter + Permit drop",
            Arc::new(move || {
                black_box(admission.try_enter(black_box("tools/call"), Transport::Tcp)).ok();
            }),
        ),
        baseline: (
            "tokio Semaphore::try_acquire + drop",
            Arc::new(move || {
                black_box(semaphore.try_acquire()).ok();
            }),
        ),
    }
}

/// Measures every operation and its baseline on one thread, then the mix of erlmcp's operations
/// on `threads` threads, each for `duration`; the session table holds `sessions` sessions.
pub fn run(duration: Duration, threads: usize, sessions: usize) -> CoreReport {
    let pairs = pairs(sessions);
    let mut ops = Vec::new();
    let mut ratios = Vec::new();
    for pair in &pairs {
        let mut p50 = [0.0; 2];
        for (i, (side, (through, op))) in [("erlmcp", &pair.ours), ("baseline", &pair.baseline)]
            .into_iter()
            .enumerate()
        {
            let (done, took, histogram) = time_op(op.as_ref(), duration);
            p50[i] = histogram.value_at_quantile(0.5) as f64;
            ops.push(OpReport {
                name: pair.name,
                side,
                through,
                ops_per_sec: done as f64 / took.as_secs_f64(),
                p50_ns: p50[i],
                p99_ns: histogram.value_at_quantile(0.99) as f64,
            });
        }
        ratios.push((pair.name, p50[0] / p50[1].max(1.0)));
    }
    let mix: Vec<Op> = pairs
        .iter()
        .filter(|p| MIX.contains(&p.name))
        .map(|p| (p.name, Arc::clone(&p.ours.1)))
        .collect();
    let (mix_ops, mix_histogram) = run_mix(&mix, duration, threads.max(1));
    let baseline_mix: Vec<Op> = pairs
        .iter()
        .filter(|p| MIX.contains(&p.name))
        .map(|p| (p.name, Arc::clone(&p.baseline.1)))
        .collect();
    let (baseline_mix_ops, _) = run_mix(&baseline_mix, duration, threads.max(1));
    let core = |side: fn(&Pair) -> &Arc<dyn Fn() + Send + Sync>| -> Vec<Op> {
        pairs
            .iter()
            .filter(|p| MIX[..CORE_MIX].contains(&p.name))
            .map(|p| (p.name, Arc::clone(side(p))))
            .collect()
    };
    let core_mix = core(|p| &p.ours.1);
    let (core_mix_ops, _) = run_mix(&core_mix, duration, threads.max(1));
    let (baseline_core_mix_ops, _) = run_mix(&core(|p| &p.baseline.1), duration, threads.max(1));
    let on_all_threads = pairs
        .iter()
        .filter(|p| ON_ALL_THREADS.contains(&p.name))
        .map(|p| {
            let alone = |op: &Arc<dyn Fn() + Send + Sync>| {
                run_mix(&[(p.name, Arc::clone(op))], duration, threads.max(1)).0
            };
            ThreadsReport {
                name: p.name,
                threads: threads.max(1),
                ops_per_sec: alone(&p.ours.1),
                baseline_ops_per_sec: alone(&p.baseline.1),
            }
        })
        .collect();
    CoreReport {
        ops,
        on_all_threads,
        time_ratio_vs_baseline: ratios,
        mix_threads: threads.max(1),
        mix: mix.iter().map(|(name, _)| *name).collect(),
        mix_ops_per_sec: mix_ops,
        mix_p50_ns: mix_histogram.value_at_quantile(0.5) as f64,
        mix_p99_ns: mix_histogram.value_at_quantile(0.99) as f64,
        baseline_mix_ops_per_sec: baseline_mix_ops,
        core_mix: core_mix.iter().map(|(name, _)| *name).collect(),
        core_mix_ops_per_sec: core_mix_ops,
        baseline_core_mix_ops_per_sec: baseline_core_mix_ops,
        seconds_each: duration.as_secs_f64(),
        sessions,
    }
}

/// Runs every operation of `mix` in turn on `threads` threads for `duration`; returns operations
/// per second over all threads and the batch means of all threads.
fn run_mix(mix: &[Op], duration: Duration, threads: usize) -> (f64, Histogram<u64>) {
    let done = AtomicU64::new(0);
    let go = AtomicBool::new(false);
    let round = move || {
        for (_, op) in mix {
            op();
        }
    };
    let per_round = mix.len().max(1) as u64;
    let mut merged = new_histogram();
    let started = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (done, go, round) = (&done, &go, &round);
                s.spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let (rounds, _, mut histogram) = time_op(round, duration);
                    done.fetch_add(rounds * per_round, Ordering::Relaxed);
                    // A round is `per_round` operations: its mean is per operation.
                    let mut per_op = new_histogram();
                    for v in histogram.iter_recorded() {
                        let _ = per_op.record_n(
                            (v.value_iterated_to() / per_round).max(1),
                            v.count_at_value(),
                        );
                    }
                    histogram.reset();
                    per_op
                })
            })
            .collect();
        let started = Instant::now();
        go.store(true, Ordering::Release);
        for worker in workers {
            if let Ok(histogram) = worker.join() {
                let _ = merged.add(&histogram);
            }
        }
        started
    });
    let seconds = started.elapsed().as_secs_f64();
    (done.load(Ordering::Relaxed) as f64 / seconds, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_its_baseline_is_measured_and_the_mix_counts_all_threads() {
        let report = run(Duration::from_millis(30), 2, 100);
        let names: Vec<(&str, &str)> = report.ops.iter().map(|o| (o.name, o.side)).collect();
        assert_eq!(
            names,
            vec![
                ("registry_lookup", "erlmcp"),
                ("registry_lookup", "baseline"),
                ("session_lookup", "erlmcp"),
                ("session_lookup", "baseline"),
                ("admission_enter_leave", "erlmcp"),
                ("admission_enter_leave", "baseline"),
                ("pool_checkout_checkin", "erlmcp"),
                ("pool_checkout_checkin", "baseline"),
                ("cache_l1_get", "erlmcp"),
                ("cache_l1_get", "baseline"),
                ("cache_l1_put", "erlmcp"),
                ("cache_l1_put", "baseline"),
                ("cache_l3_get_hot", "erlmcp"),
                ("cache_l3_get_hot", "baseline"),
                ("store_get", "erlmcp"),
                ("store_get", "baseline"),
                ("store_put", "erlmcp"),
                ("store_put", "baseline"),
                ("request_state_seal_open", "erlmcp"),
                ("request_state_seal_open", "baseline"),
                ("cluster_ring_owner", "erlmcp"),
                ("cluster_ring_owner", "baseline"),
                ("http_owned_session_id", "erlmcp"),
                ("http_owned_session_id", "baseline"),
                ("auth_cached_jwt", "erlmcp"),
                ("auth_cached_jwt", "baseline"),
            ]
        );
        assert!(
            report
                .ops
                .iter()
                .all(|o| o.ops_per_sec > 0.0 && o.p50_ns >= 1.0)
        );
        assert_eq!(
            report.mix,
            vec![
                "registry_lookup",
                "session_lookup",
                "admission_enter_leave",
                "pool_checkout_checkin",
                "cache_l1_get",
                "cache_l1_put",
            ]
        );
        assert!(report.mix_ops_per_sec > 0.0 && report.baseline_mix_ops_per_sec > 0.0);
        assert_eq!(report.core_mix, report.mix[..4]);
        assert!(report.core_mix_ops_per_sec > 0.0 && report.baseline_core_mix_ops_per_sec > 0.0);
        assert_eq!(report.time_ratio_vs_baseline.len(), 13);
        let alone: Vec<&str> = report.on_all_threads.iter().map(|a| a.name).collect();
        assert_eq!(alone, ON_ALL_THREADS);
        assert!(
            report
                .on_all_threads
                .iter()
                .all(|a| a.threads == 2 && a.ops_per_sec > 0.0 && a.baseline_ops_per_sec > 0.0)
        );
    }
}
