//! Pins start order, start failures, `Ignore`, and the ordered, policy-driven shutdown.

use crate::support::probe;

use erlmcp_supervisors::{
    ChildSpec, ChildState, Shutdown, StartOutcome, SupervisorError, SupervisorRef, SupervisorSpec,
};
use probe::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_one_at_a_time_in_list_order() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    assert_eq!(
        log.with_prefix("start:"),
        vec!["start:a", "start:b", "start:c"]
    );
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_failing_to_start_stops_the_started_ones_in_reverse_and_fails_the_supervisor() {
    let log = Log::default();
    let bad = ProbeArgs::new("bad", &log);
    bad.fail_start.store(true, Ordering::SeqCst);
    let spec = SupervisorSpec::one_for_one()
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe_with(bad))
        .child(probe("never", &log));
    let err = SupervisorRef::start(spec).await.unwrap_err();
    match &err {
        SupervisorError::FailedToStartChild { id, reason } => {
            assert_eq!(id, "bad");
            assert!(reason.contains("bad refuses to start"), "{reason}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(log.with_prefix("stop:"), vec!["stop:b", "stop:a"]);
    assert_eq!(log.count("start_attempt:never"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_start_failure_names_the_child_at_every_level() {
    let log = Log::default();
    let bad = ProbeArgs::new("bad", &log);
    bad.fail_start.store(true, Ordering::SeqCst);
    let inner = SupervisorSpec::one_for_one().child(probe_with(bad));
    let spec = SupervisorSpec::one_for_one().child(ChildSpec::supervisor("inner", inner));
    let err = SupervisorRef::start(spec).await.unwrap_err().to_string();
    assert!(err.contains("failed to start child `inner`"), "{err}");
    assert!(err.contains("failed to start child `bad`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_function_that_panics_is_a_failed_start_not_a_crash() {
    let spec = SupervisorSpec::one_for_one().child(ChildSpec::worker("p", |_ctx| async {
        if true {
            panic!("start exploded");
        }
        Ok(StartOutcome::Ignore)
    }));
    let err = SupervisorRef::start(spec).await.unwrap_err().to_string();
    assert!(err.contains("start exploded"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_keeps_the_spec_and_starts_nothing() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(ChildSpec::worker("quiet", |_ctx| async {
            Ok(StartOutcome::Ignore)
        }))
        .child(probe("b", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.children[0].state, ChildState::Ignored);
    let counts = sup.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active), (2, 1));
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_stops_children_in_reverse_start_order_and_runs_each_post_stop() {
    let log = Log::default();
    let inner = SupervisorSpec::one_for_one()
        .child(probe("i1", &log))
        .child(probe("i2", &log));
    let spec = SupervisorSpec::one_for_one()
        .child(probe("a", &log))
        .child(ChildSpec::supervisor("inner", inner))
        .child(probe("c", &log).shutdown(Shutdown::Infinity));
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    sup.stop(None).await.unwrap();
    handle.await.unwrap();
    assert_eq!(
        log.with_prefix("stop:"),
        vec!["stop:c", "stop:i2", "stop:i1", "stop:a"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_child_is_stopped_only_after_the_one_started_after_it_has_finished_stopping() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(probe("a", &log))
        .child(probe_with(
            ProbeArgs::new("slow", &log).stop_delay(Duration::from_millis(150)),
        ));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.stop(None).await.unwrap();
    // "a" may not begin stopping while "slow" is still in its post_stop.
    assert_eq!(log.with_prefix("stop:"), vec!["stop:slow", "stop:a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_timeout_kills_a_child_that_does_not_stop_in_time() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().child(
        probe_with(ProbeArgs::new("stuck", &log).stop_delay(Duration::from_secs(30)))
            .shutdown(Shutdown::Timeout(Duration::from_millis(100))),
    );
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let started = Instant::now();
    sup.stop(Some(Duration::from_secs(10))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        log.count("stop:stuck"),
        0,
        "its post_stop was cut short by the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brutal_kill_stops_a_child_without_its_post_stop() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(probe("graceful", &log))
        .child(probe("brutal", &log).shutdown(Shutdown::BrutalKill));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.stop(None).await.unwrap();
    assert_eq!(log.with_prefix("stop:"), vec!["stop:graceful"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinity_waits_for_a_slow_child_to_finish_its_post_stop() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().child(
        probe_with(ProbeArgs::new("slow", &log).stop_delay(Duration::from_millis(300)))
            .shutdown(Shutdown::Infinity),
    );
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.stop(None).await.unwrap();
    assert_eq!(log.count("stop:slow"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_default_to_a_5000ms_shutdown_and_supervisors_to_infinity() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(probe("w", &log))
        .child(ChildSpec::supervisor("s", SupervisorSpec::one_for_one()));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.children[0].shutdown, "5000ms");
    assert_eq!(snap.children[1].shutdown, "infinity");
    sup.stop(None).await.unwrap();
}
