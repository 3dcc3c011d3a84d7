//! Cost of one checkout + checkin of an idle worker through erlmcp's pool (`src/pool.rs`: the
//! atomic permit count, the idle queue's lock, the counters, the guard), beside two baselines in
//! the same run: deadpool's unmanaged pool (a semaphore and a mutex-guarded queue, the closest crate)
//! and a bare `Mutex<Vec>` pop/push (no waiting, no bound, no stats: the floor). One thread, then
//! two threads sharing one pool; each figure is the median of 7 rounds. Then checkout and checkin
//! apart: all of a pool's 256 workers taken in one timed loop, all given back in another.
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
        Self::sized(strategy, WORKERS)
    }

    fn sized(strategy: PoolStrategy, workers: usize) -> Vec<(&'static str, Subject)> {
        let settings = PoolConfig {
            size: Some(workers),
            strategy,
            ..PoolConfig::default()
        };
        let pool = Pool::new("bench", &settings, Items);
        let rt = runtime();
        // Warm it as its owner would: make every worker once.
        rt.block_on(async {
            let held: Vec<_> =
                futures::future::join_all((0..workers).map(|_| pool.checkout())).await;
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
                Subject::Deadpool(deadpool::unmanaged::Pool::from(vec![7u64; workers])),
            ),
            (
                "Mutex<Vec> pop/push",
                Subject::MutexVec(Arc::new(Mutex::new(vec![7u64; workers]))),
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

/// Workers of the pools whose checkouts and checkins are timed apart.
const SPLIT: usize = 256;

/// Median ns per checkout and per checkin, timed apart: all `SPLIT` workers taken, then all
/// given back (one thread).
fn measure_apart(subject: &Subject) -> (f64, f64) {
    let rt = runtime();
    let mut taken = Vec::with_capacity(ROUNDS * 64);
    let mut given = Vec::with_capacity(ROUNDS * 64);
    for _ in 0..ROUNDS * 64 {
        let (take, give) = rt.block_on(async {
            match subject {
                Subject::Erlmcp(pool) => {
                    let mut held = Vec::with_capacity(SPLIT);
                    let started = Instant::now();
                    for _ in 0..SPLIT {
                        held.push(pool.checkout().await.expect("an idle worker"));
                    }
                    let took = started.elapsed();
                    let started = Instant::now();
                    held.clear();
                    (took, started.elapsed())
                }
                Subject::Deadpool(pool) => {
                    let mut held = Vec::with_capacity(SPLIT);
                    let started = Instant::now();
                    for _ in 0..SPLIT {
                        held.push(pool.get().await.expect("an idle worker"));
                    }
                    let took = started.elapsed();
                    let started = Instant::now();
                    held.clear();
                    (took, started.elapsed())
                }
                Subject::MutexVec(items) => {
                    let mut held = Vec::with_capacity(SPLIT);
                    let started = Instant::now();
                    for _ in 0..SPLIT {
                        held.push(items.lock().unwrap().pop().expect("an idle worker"));
                    }
                    let took = started.elapsed();
                    let started = Instant::now();
                    for worker in held.drain(..) {
                        items.lock().unwrap().push(black_box(worker));
                    }
                    (took, started.elapsed())
                }
            }
        });
        taken.push(take.as_nanos() as f64 / SPLIT as f64);
        given.push(give.as_nanos() as f64 / SPLIT as f64);
    }
    taken.sort_by(f64::total_cmp);
    given.sort_by(f64::total_cmp);
    (taken[taken.len() / 2], given[given.len() / 2])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("checkout and checkin timed apart ({SPLIT} workers, all taken then all given back)");
    for (name, subject) in Subject::sized(PoolStrategy::RoundRobin, SPLIT) {
        let (checkout, checkin) = measure_apart(&subject);
        println!("1 thread  {name:<28} checkout {checkout:>6.1} ns  checkin {checkin:>6.1} ns");
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
