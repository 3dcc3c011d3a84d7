//! Unit tests of the pool: checkout and checkin, FIFO waiters, timeouts, cancellation, overflow,
//! crashed workers replaced by the owner under its supervisor.

use super::*;
use crate::config::PoolConfig;
use std::sync::atomic::AtomicBool;

/// Workers that count themselves; a worker whose flag is down fails its health check.
#[derive(Clone, Default)]
struct Counted {
    made: Arc<AtomicUsize>,
}

struct Conn {
    id: usize,
    alive: Arc<AtomicBool>,
}

impl WorkerFactory for Counted {
    type Worker = Conn;
    async fn create(&self) -> Result<Conn, WorkerError> {
        Ok(Conn {
            id: self.made.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(AtomicBool::new(true)),
        })
    }
    fn is_healthy(&self, worker: &mut Conn) -> bool {
        worker.alive.load(Ordering::Relaxed)
    }
}

fn settings(size: usize, max_overflow: usize) -> PoolConfig {
    PoolConfig {
        size: Some(size),
        max_overflow,
        overflow_idle: 50,
        checkout_timeout: 200,
        ..PoolConfig::default()
    }
}

fn pool_of(size: usize, max_overflow: usize) -> (Pool<Conn>, Counted) {
    let factory = Counted::default();
    (
        Pool::new("t", &settings(size, max_overflow), factory.clone()),
        factory,
    )
}

#[tokio::test]
async fn a_worker_given_back_is_lent_again() {
    let (pool, factory) = pool_of(1, 0);
    pool.shared().fill_to_size().await.unwrap();
    let first = pool.checkout().await.unwrap().id;
    let again = pool.checkout().await.unwrap().id;
    assert_eq!(first, again);
    assert_eq!(factory.made.load(Ordering::Relaxed), 1);
    let stats = pool.stats();
    assert_eq!((stats.checkouts, stats.idle, stats.busy), (2, 1, 0));
}

#[tokio::test]
async fn a_checkout_past_the_timeout_is_a_typed_error() {
    let (pool, _) = pool_of(1, 0);
    let _held = pool.checkout().await.unwrap();
    let err = pool
        .checkout_within(Duration::from_millis(30))
        .await
        .unwrap_err();
    match err {
        PoolError::Timeout { pool: name, waited } => {
            assert_eq!(name, "t");
            assert!(waited >= Duration::from_millis(30), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(pool.stats().timeouts, 1);
}

#[tokio::test]
async fn waiters_are_served_in_the_order_they_came() {
    let (pool, _) = pool_of(1, 0);
    let held = pool.checkout().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for n in 0..5 {
        let (waiter, order) = (pool.clone(), Arc::clone(&order));
        waiters.push(tokio::spawn(async move {
            let guard = waiter
                .checkout_within(Duration::from_secs(5))
                .await
                .unwrap();
            lock(&order).push(n);
            tokio::time::sleep(Duration::from_millis(2)).await;
            drop(guard);
        }));
        // Each waiter queued before the next starts.
        while pool.stats().waiting < n + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*lock(&order), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_cancelled_borrower_gives_its_worker_back() {
    let (pool, _) = pool_of(1, 0);
    let borrower = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let _guard = pool.checkout().await.unwrap();
            std::future::pending::<()>().await;
        })
    };
    while pool.stats().busy == 0 {
        tokio::task::yield_now().await;
    }
    borrower.abort();
    let _ = borrower.await;
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.idle), (0, 1));
    assert!(
        pool.checkout_within(Duration::from_millis(50))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_queue() {
    let (pool, _) = pool_of(1, 0);
    let held = pool.checkout().await.unwrap();
    let waiter = pool.checkout_within(Duration::from_secs(5));
    // Polled once (queued), then dropped.
    assert!(
        tokio::time::timeout(Duration::from_millis(10), waiter)
            .await
            .is_err()
    );
    assert_eq!(pool.stats().waiting, 0);
    drop(held);
    assert!(
        pool.checkout_within(Duration::from_millis(50))
            .await
            .is_ok()
    );
}

#[test]
fn a_panicking_borrower_gives_its_worker_back() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (pool, _) = pool_of(1, 0);
    let guard = rt.block_on(pool.checkout()).unwrap();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("borrower panics");
    }));
    assert!(unwound.is_err());
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.idle), (0, 1));
}

#[tokio::test]
async fn overflow_workers_are_made_on_demand_and_reaped_when_idle() {
    let (pool, factory) = pool_of(1, 2);
    pool.shared().fill_to_size().await.unwrap();
    let a = pool.checkout().await.unwrap();
    let b = pool.checkout().await.unwrap();
    let c = pool.checkout().await.unwrap();
    assert_eq!(pool.stats().overflow, 2);
    assert!(
        pool.checkout_within(Duration::from_millis(20))
            .await
            .is_err(),
        "size + max_overflow is the bound"
    );
    drop((a, b, c));
    assert_eq!(factory.made.load(Ordering::Relaxed), 3);
    // Not yet idle for overflow_idle (50 ms): kept.
    assert_eq!(pool.shared().reap(Instant::now()), 0);
    let later = Instant::now() + Duration::from_millis(60);
    assert_eq!(pool.shared().reap(later), 2);
    let stats = pool.stats();
    assert_eq!((stats.workers, stats.overflow, stats.idle), (1, 0, 1));
}

#[tokio::test]
async fn a_worker_failing_its_check_is_never_lent() {
    let (pool, _) = pool_of(2, 0);
    pool.shared().fill_to_size().await.unwrap();
    {
        let guard = pool.checkout().await.unwrap();
        guard.alive.store(false, Ordering::Relaxed);
    }
    // The dead worker was given back idle; every checkout skips it.
    for _ in 0..4 {
        let guard = pool.checkout().await.unwrap();
        assert!(guard.alive.load(Ordering::Relaxed));
    }
    let stats = pool.stats();
    assert_eq!(stats.worker_restarts, 1);
    // Five loans; the dead worker passed over is not one of them.
    assert_eq!(stats.checkouts, 5);
}

#[tokio::test]
async fn with_the_check_off_a_dead_worker_is_lent() {
    let factory = Counted::default();
    let mut config = settings(1, 0);
    config.health_check = false;
    let pool = Pool::new("t", &config, factory);
    pool.checkout()
        .await
        .unwrap()
        .alive
        .store(false, Ordering::Relaxed);
    assert!(!pool.checkout().await.unwrap().alive.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_closed_pool_refuses_checkouts() {
    let (pool, _) = pool_of(1, 0);
    let held = pool.checkout().await.unwrap();
    pool.close();
    assert!(matches!(
        pool.checkout().await,
        Err(PoolError::Closed { .. })
    ));
    drop(held);
    assert_eq!(pool.stats().workers, 0);
}

#[tokio::test]
async fn the_owner_warms_the_pool_and_replaces_broken_workers() {
    use erlmcp_supervisors::SupervisorRef;
    let factory = Counted::default();
    let pool = Pool::new("unit_owner", &settings(3, 0), factory.clone());
    let spec = erlmcp_supervisors::SupervisorSpec::one_for_one().child(owner::pool_supervisor(
        pool.clone(),
        (5, Duration::from_secs(10)),
    ));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    assert_eq!(pool.stats().idle, 3, "warmed at start");
    pool.checkout().await.unwrap().mark_broken();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stats().workers < 3 {
        assert!(
            Instant::now() < deadline,
            "not replaced: {:?}",
            pool.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(factory.made.load(Ordering::Relaxed), 4);
    assert_eq!(pool.stats().worker_restarts, 1);
    sup.stop(None).await.unwrap();
}

#[tokio::test]
async fn the_tool_pool_bounds_blocking_calls() {
    let pool = Pool::new("tools_unit", &settings(2, 0), tool_pool::ToolSlots);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let calls = (0..6).map(|_| {
        let (pool, running, most) = (pool.clone(), Arc::clone(&running), Arc::clone(&most));
        tokio::spawn(async move {
            tool_pool::run_on(&pool, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
            .await
        })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_blocking_call_is_an_error_and_frees_its_slot() {
    let pool = Pool::new("tools_panic", &settings(1, 0), tool_pool::ToolSlots);
    let err = tool_pool::run_on(&pool, || panic!("tool panics"))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Failed { .. }), "{err}");
    assert_eq!(tool_pool::run_on(&pool, || 7).await.unwrap(), 7);
}

#[tokio::test]
async fn the_owner_reaps_idle_overflow_workers_by_itself() {
    use erlmcp_supervisors::SupervisorRef;
    let (pool, _) = pool_of(1, 1);
    let spec = erlmcp_supervisors::SupervisorSpec::one_for_one().child(owner::pool_supervisor(
        pool.clone(),
        (5, Duration::from_secs(10)),
    ));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let (a, b) = (
        pool.checkout().await.unwrap(),
        pool.checkout().await.unwrap(),
    );
    assert_eq!(pool.stats().overflow, 1);
    drop((a, b));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stats().overflow > 0 {
        assert!(Instant::now() < deadline, "not reaped: {:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.stats().workers, 1);
    sup.stop(None).await.unwrap();
}

#[tokio::test]
async fn replacements_past_the_intensity_fail_the_owner_and_its_supervisor_restarts_it() {
    use erlmcp_supervisors::SupervisorRef;
    let (pool, _) = pool_of(2, 0);
    let spec = erlmcp_supervisors::SupervisorSpec::one_for_one().child(owner::pool_supervisor(
        pool.clone(),
        (1, Duration::from_secs(10)),
    ));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    // Two crashes within the period: the second passes max_restarts = 1.
    pool.checkout().await.unwrap().mark_broken();
    pool.checkout().await.unwrap().mark_broken();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snapshot = sup.snapshot().await.unwrap();
        let pool_sup = serde_json::to_value(&snapshot).unwrap();
        let text = pool_sup.to_string();
        if text.contains("\"restarts\":1") {
            break;
        }
        assert!(Instant::now() < deadline, "owner not restarted: {text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while pool.stats().workers < 2 {
        assert!(
            Instant::now() < deadline,
            "not refilled: {:?}",
            pool.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.stats().worker_restarts, 2);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_contention_no_wake_up_is_lost_and_no_worker_is_lent_twice() {
    let (pool, _) = pool_of(2, 1);
    let held = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, held) = (pool.clone(), Arc::clone(&held));
            tokio::spawn(async move {
                for n in 0..2_000 {
                    let worker = pool
                        .checkout_within(Duration::from_secs(5))
                        .await
                        .expect("every wait ends with a worker");
                    assert!(
                        held.fetch_add(1, Ordering::SeqCst) < 3,
                        "more lent than permits"
                    );
                    if n % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                    held.fetch_sub(1, Ordering::SeqCst);
                    drop(worker);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.waiting, stats.checkouts), (0, 0, 16_000));
    assert_eq!(stats.idle, stats.workers);
}
