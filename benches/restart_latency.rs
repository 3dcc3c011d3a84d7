//! Restart latency: the time from a child's crash until its replacement answers a call, under an
//! erlmcp `one_for_one` supervisor — beside the baseline of spawning a plain ractor actor and
//! calling it (the least a restart can cost).
//!
//! Run: `cargo bench --bench restart_latency`. Criterion reports the mean per cycle; afterwards
//! the bench prints p50/p99/max over `ERLMCP_BENCH_SAMPLES` cycles (default 20000) measured one
//! by one with HdrHistogram, for a two-worker and a single-thread tokio runtime.

use criterion::Criterion;
use erlmcp_supervisors::{ChildSpec, SupervisorRef, SupervisorSpec};
use hdrhistogram::Histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Worker;

enum WorkerMsg {
    Ping(RpcReplyPort<u64>),
    Crash,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for WorkerMsg {}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    /// Where the worker announces itself once it is running (None for the baseline).
    type Arguments = Option<mpsc::UnboundedSender<ActorRef<WorkerMsg>>>;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        announce: Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(tx) = announce {
            let _ = tx.send(myself);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(1);
                Ok(())
            }
            WorkerMsg::Crash => Err("crash requested by the bench".into()),
        }
    }
}

async fn ping(worker: &ActorRef<WorkerMsg>) {
    let answer = ractor::call!(worker, WorkerMsg::Ping).expect("worker answers");
    assert_eq!(answer, 1);
}

/// A supervised worker that can be crashed again and again.
struct Supervised {
    sup: SupervisorRef,
    current: ActorRef<WorkerMsg>,
    announcements: mpsc::UnboundedReceiver<ActorRef<WorkerMsg>>,
}

impl Supervised {
    async fn start() -> Self {
        let (tx, mut announcements) = mpsc::unbounded_channel();
        let spec = SupervisorSpec::one_for_one()
            .intensity(u32::MAX, Duration::from_millis(1))
            .child(ChildSpec::actor("worker", move || {
                (Worker, Some(tx.clone()))
            }));
        let (sup, _) = SupervisorRef::start(spec).await.expect("supervisor starts");
        let current = announcements.recv().await.expect("first start");
        Self {
            sup,
            current,
            announcements,
        }
    }

    /// Crash → replacement announced → replacement answers a call.
    async fn crash_and_recover(&mut self) -> Duration {
        let started = Instant::now();
        self.current.cast(WorkerMsg::Crash).expect("cast crash");
        self.current = self.announcements.recv().await.expect("replacement");
        ping(&self.current).await;
        started.elapsed()
    }
}

/// Baseline: spawn a plain actor and call it once.
async fn spawn_and_call() -> Duration {
    let started = Instant::now();
    let (worker, handle) = Actor::spawn(None, Worker, None).await.expect("spawn");
    ping(&worker).await;
    let elapsed = started.elapsed();
    worker.stop(None);
    let _ = handle.await;
    elapsed
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    }
}

fn criterion_benches(c: &mut Criterion) {
    let rt = runtime(2);
    let mut group = c.benchmark_group("restart_latency");
    group.bench_function("supervised_crash_to_answer", |b| {
        let mut supervised = rt.block_on(Supervised::start());
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += supervised.crash_and_recover().await;
                }
                total
            })
        });
        rt.block_on(supervised.sup.stop(None)).unwrap();
    });
    group.bench_function("baseline_plain_spawn_and_call", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += spawn_and_call().await;
                }
                total
            })
        });
    });
    group.finish();
}

fn record(histogram: &mut Histogram<u64>, d: Duration) {
    let _ = histogram.record(d.as_nanos().max(1) as u64);
}

fn summary(label: &str, h: &Histogram<u64>) {
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "{label:<48} n={:<6} p50={:>7.2}µs p99={:>7.2}µs p99.9={:>8.2}µs max={:>9.2}µs",
        h.len(),
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
    );
}

fn percentiles() {
    let samples: usize = std::env::var("ERLMCP_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!("\nrestart latency percentiles ({samples} samples each, after 1000 warm-up cycles)");
    for threads in [2, 1] {
        let rt = runtime(threads);
        let (sup, base) = rt.block_on(async {
            let mut supervised = Supervised::start().await;
            let mut sup = Histogram::<u64>::new(3).unwrap();
            let mut base = Histogram::<u64>::new(3).unwrap();
            for _ in 0..1000 {
                supervised.crash_and_recover().await;
                spawn_and_call().await;
            }
            // Interleaved, so both see the same machine noise.
            for _ in 0..samples {
                record(&mut sup, supervised.crash_and_recover().await);
                record(&mut base, spawn_and_call().await);
            }
            supervised.sup.stop(None).await.unwrap();
            (sup, base)
        });
        let flavour = if threads == 1 {
            "current_thread"
        } else {
            "multi_thread(2)"
        };
        summary(&format!("supervised crash→answer, {flavour}"), &sup);
        summary(&format!("baseline spawn→answer, {flavour}"), &base);
        println!(
            "  ratio p50 {:.2}x, p99 {:.2}x",
            sup.value_at_quantile(0.5) as f64 / base.value_at_quantile(0.5) as f64,
            sup.value_at_quantile(0.99) as f64 / base.value_at_quantile(0.99) as f64
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
    // `cargo test --benches` runs benches in test mode: keep that quick.
    if !std::env::args().any(|a| a == "--test") {
        percentiles();
    }
}
