//! Cost of one checkout + checkin of an idle worker through erlmcp's pool (`src/pool.rs`: the
//! atomic permit count, the idle queue's lock, the counters, the guard), beside two baselines in
//! the same run: deadpool's unmanaged pool (a semaphore and a mutex-guarded queue, the closest crate)
//! and a bare `Mutex<Vec>` pop/push (no waiting, no bound, no stats: the floor). One thread, then
//! two threads sharing one pool; each figure is the median of 7 rounds.
//!
//! Run: `cargo bench --bench pool`.

use erlmcp::config::{PoolConfig, PoolStrategy};
use erlmcp::pool::{Pool, WorkerError, WorkerFactory};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OPS: u64 = 2_000_000;
const ROUNDS: usize = 7;
const WORKERS: usize = 4;

struct Items;

impl WorkerFactory for Items {
    type Worker = u64;
    async fn create(&self) -> Result<u64, WorkerError> {
        Ok(7)
    }
}

/// The three ways of taking an idle worker and giving it back.
#[derive(Clone)]
enum Subject {
    Erlmcp(Pool<u64>),
    Deadpool(deadpool::unmanaged::Pool<u64>),
    MutexVec(Arc<Mutex<Vec<u64>>>),
}

impl Subject {
    fn all(strategy: PoolStrategy) -> Vec<(&'static str, Subject)> {
        let settings = PoolConfig {
            size: Some(WORKERS),
            strategy,
            ..PoolConfig::default()
        };
        let pool = Pool::new("bench", &settings, Items);
        let rt = runtime();
        // Warm it as its owner would: make every worker once.
        rt.block_on(async {
            let held: Vec<_> =
                futures::future::join_all((0..WORKERS).map(|_| pool.checkout())).await;
            drop(held);
        });
        let name = match strategy {
            PoolStrategy::RoundRobin => "erlmcp Pool (round_robin)",
            PoolStrategy::LeastLoaded => "erlmcp Pool (least_loaded)",
            PoolStrategy::Weighted => "erlmcp Pool (weighted)",
            PoolStrategy::Adaptive => "erlmcp Pool (adaptive)",
        };
        vec![
            (name, Subject::Erlmcp(pool)),
            (
                "deadpool unmanaged",
                Subject::Deadpool(deadpool::unmanaged::Pool::from(vec![7u64; WORKERS])),
            ),
            (
                "Mutex<Vec> pop/push",
                Subject::MutexVec(Arc::new(Mutex::new(vec![7u64; WORKERS]))),
            ),
        ]
    }

    /// `ops` checkouts and checkins; the time they took.
    fn run(&self, ops: u64) -> Duration {
        let rt = runtime();
        rt.block_on(async {
            let started = Instant::now();
            match self {
                Subject::Erlmcp(pool) => {
                    for _ in 0..ops {
                        let worker = pool.checkout().await.expect("an idle worker");
                        black_box(*worker);
                    }
                }
                Subject::Deadpool(pool) => {
                    for _ in 0..ops {
                        let worker = pool.get().await.expect("an idle worker");
                        black_box(*worker);
                    }
                }
                Subject::MutexVec(items) => {
                    for _ in 0..ops {
                        let worker = items.lock().unwrap().pop().expect("an idle worker");
                        black_box(worker);
                        items.lock().unwrap().push(worker);
                    }
                }
            }
            started.elapsed()
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Median ns per checkout+checkin with `threads` threads sharing `subject` (each thread does
/// OPS / threads; the figure is wall time over all operations, so lower is better throughput).
fn measure(subject: &Subject, threads: u64) -> f64 {
    let per_thread = OPS / threads;
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    let subject = subject.clone();
                    s.spawn(move || subject.run(per_thread));
                }
            });
            started.elapsed().as_nanos() as f64 / (per_thread * threads) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("checkout + checkin of an idle worker ({WORKERS} workers), median of {ROUNDS} rounds");
    for strategy in [
        PoolStrategy::RoundRobin,
        PoolStrategy::LeastLoaded,
        PoolStrategy::Weighted,
        PoolStrategy::Adaptive,
    ] {
        for threads in [1, 2] {
            let subjects = Subject::all(strategy);
            let figures: Vec<(&str, f64)> = subjects
                .iter()
                .map(|(name, subject)| (*name, measure(subject, threads)))
                .collect();
            let floor = figures[2].1;
            for (name, ns) in &figures {
                if strategy != PoolStrategy::RoundRobin && !name.starts_with("erlmcp") {
                    continue;
                }
                println!(
                    "{threads} thread(s)  {name:<28} {ns:>7.1} ns/op  {:>5.2}x Mutex<Vec>  {:>6.1} M ops/s",
                    ns / floor,
                    1e3 / ns
                );
            }
        }
    }
}
