//! Pins restart intensity, failed-restart retries and escalation through supervisor levels.

use crate::support::probe;

use erlmcp_supervisors::{ChildSpec, ChildState, Restart, SupervisorRef, SupervisorSpec};
use probe::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_max_restarts_within_period_shuts_the_supervisor_down_with_reason_shutdown() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(2, Duration::from_secs(60))
        .child(probe("a", &log))
        .child(probe("w", &log));
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "w", ProbeMsg::Fail).await;
    make_exit_and_wait_replacement(&sup, "w", ProbeMsg::Fail).await;
    send_to(&sup, "w", ProbeMsg::Fail).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the third restart within the period stops the supervisor")
        .unwrap();
    assert_eq!(log.count("start:w"), 3);
    // The remaining child was stopped gracefully.
    assert_eq!(log.count("stop:a"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_spread_wider_than_the_period_do_not_exceed_intensity() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(1, Duration::from_millis(150))
        .child(probe("w", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    for _ in 0..3 {
        make_exit_and_wait_replacement(&sup, "w", ProbeMsg::Fail).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.restarts_total, 3);
    assert_eq!(snap.restarts_in_window, 0);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_intensity_stops_the_remaining_children_in_reverse_order() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .intensity(0, Duration::from_secs(60))
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log))
        .child(probe("boom", &log));
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    send_to(&sup, "boom", ProbeMsg::Fail).await;
    handle.await.unwrap();
    assert_eq!(log.with_prefix("stop:"), vec!["stop:c", "stop:b", "stop:a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restart_is_retried_and_every_retry_counts_toward_intensity() {
    let log = Log::default();
    let args = ProbeArgs::new("flaky", &log);
    let fail_start = args.fail_start.clone();
    let spec = SupervisorSpec::one_for_one()
        .intensity(3, Duration::from_secs(60))
        .child(probe_with(args));
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    log.clear();
    fail_start.store(true, Ordering::SeqCst);
    send_to(&sup, "flaky", ProbeMsg::Fail).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("retries exhaust the intensity")
        .unwrap();
    // Restart 1 fails, retries 2 and 3 fail, the 4th restart exceeds 3 in 60 s.
    assert_eq!(log.count("start_attempt:flaky"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restart_that_later_succeeds_brings_the_child_back() {
    let log = Log::default();
    let args = ProbeArgs::new("flaky", &log);
    let fail_start = args.fail_start.clone();
    let spec = SupervisorSpec::one_for_one()
        .intensity(1000, Duration::from_secs(60))
        .child(probe_with(args));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    fail_start.store(true, Ordering::SeqCst);
    send_to(&sup, "flaky", ProbeMsg::Fail).await;
    eventually("a few retries failed", || async {
        log.count("start_attempt:flaky") >= 4
    })
    .await;
    fail_start.store(false, Ordering::SeqCst);
    eventually("child back", || async {
        child(&sup, "flaky").await.is_some()
    })
    .await;
    let snap = sup.snapshot().await.unwrap();
    assert!(snap.restarts_total >= 3, "{}", snap.restarts_total);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_supervisor_comes_back_once_its_named_children_have_gone() {
    // ractor kills a killed supervisor's children after the supervisor is reported gone; a
    // restart at once found their registered names still taken and, retried in a tight loop,
    // spent the whole intensity: the parent shut down.
    let log = Log::default();
    let worker = unique("named_worker");
    let inner = SupervisorSpec::one_for_one()
        .named(unique("inner_sup"))
        .intensity(5, Duration::from_secs(60))
        .child(ChildSpec::named_actor("worker", worker.clone(), {
            let args = ProbeArgs::new("worker", &log);
            move || (Probe, args.clone())
        }));
    let spec = SupervisorSpec::one_for_one()
        .intensity(2, Duration::from_secs(60))
        .child(ChildSpec::supervisor("inner", inner));
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    for round in 1..=2 {
        let before = log.count("start:worker");
        let inner_now = sup
            .which_children()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.id == "inner")
            .and_then(|c| c.actor)
            .expect("inner runs");
        inner_now.kill();
        eventually("the worker started again", || async {
            log.count("start:worker") > before
                && ractor::registry::where_is(worker.clone()).is_some()
        })
        .await;
        assert!(!handle.is_finished(), "round {round}: the parent gave up");
    }
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.find_child("inner").unwrap().restarts, 2);
    sup.stop(None).await.unwrap();
}

/// top (one_for_one, 1 in 60 s) → mid (one_for_one, 1 in 60 s) → leaf (0 restarts) → worker.
fn three_levels(log: &Log, top_max: u32) -> SupervisorSpec {
    let leaf = SupervisorSpec::one_for_one()
        .named(unique("leaf_sup"))
        .intensity(0, Duration::from_secs(60))
        .child(probe("worker", log));
    let mid = SupervisorSpec::one_for_one()
        .named(unique("mid_sup"))
        .intensity(1, Duration::from_secs(60))
        .child(probe("mid_sibling", log))
        .child(ChildSpec::supervisor("leaf", leaf));
    SupervisorSpec::one_for_one()
        .named(unique("top_sup"))
        .intensity(top_max, Duration::from_secs(60))
        .child(probe("top_sibling", log))
        .child(ChildSpec::supervisor("mid", mid))
}

async fn crash_worker(top: &SupervisorRef) {
    let snap = top.snapshot().await.unwrap();
    let mid = snap.find_child("mid").unwrap().supervisor.as_ref().unwrap();
    let leaf_name = &mid
        .find_child("leaf")
        .unwrap()
        .supervisor
        .as_ref()
        .unwrap()
        .name;
    let leaf = SupervisorRef::whereis(leaf_name).unwrap();
    let before = top.snapshot().await.unwrap();
    send_to(&leaf, "worker", ProbeMsg::Fail).await;
    // Wait until the tree has reacted: some supervisor's restart count changed, or top stopped.
    eventually("tree reacted", || async {
        match top.snapshot().await {
            Ok(now) => now != before && now.find_child("worker").is_some(),
            Err(_) => true,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_through_two_levels_restarts_the_failing_subtree_in_the_grandparent() {
    let log = Log::default();
    let (top, _) = SupervisorRef::start(three_levels(&log, 5)).await.unwrap();

    // 1st crash: leaf gives up (0 restarts allowed) → mid restarts leaf (mid: 1 restart).
    crash_worker(&top).await;
    let snap = top.snapshot().await.unwrap();
    let mid = snap.find_child("mid").unwrap();
    assert_eq!(mid.restarts, 0);
    let leaf = snap.find_child("leaf").unwrap();
    assert_eq!(leaf.restarts, 1);
    assert_eq!(leaf.last_exit.as_deref(), Some("shutdown"));

    // 2nd crash: leaf gives up → mid would restart it a 2nd time in 60 s → mid gives up →
    // top restarts mid (and with it a fresh leaf and worker).
    crash_worker(&top).await;
    eventually("top restarted mid", || async {
        top.snapshot()
            .await
            .unwrap()
            .find_child("mid")
            .unwrap()
            .restarts
            == 1
    })
    .await;
    let snap = top.snapshot().await.unwrap();
    let mid = snap.find_child("mid").unwrap();
    assert_eq!(mid.last_exit.as_deref(), Some("shutdown"));
    assert_eq!(mid.state, ChildState::Running);
    assert_eq!(snap.find_child("top_sibling").unwrap().restarts, 0);
    assert_eq!(log.count("start:worker"), 3);
    assert_eq!(log.count("start:mid_sibling"), 2);
    assert_eq!(log.count("start:top_sibling"), 1);
    top.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_reaches_the_root_when_every_level_exceeds_its_intensity() {
    let log = Log::default();
    let (top, handle) = SupervisorRef::start(three_levels(&log, 0)).await.unwrap();
    crash_worker(&top).await;
    crash_worker(&top).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the root gave up too")
        .unwrap();
    assert_eq!(
        log.count("stop:top_sibling"),
        1,
        "root stopped its other child gracefully"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_supervisor_child_that_gives_up_is_not_restarted() {
    let log = Log::default();
    let inner = SupervisorSpec::one_for_one()
        .intensity(0, Duration::from_secs(60))
        .child(probe("w", &log));
    let spec = SupervisorSpec::one_for_one()
        .child(ChildSpec::supervisor("inner", inner).restart(Restart::Transient));
    let (top, _) = SupervisorRef::start(spec).await.unwrap();
    let inner_cell = top.which_children().await.unwrap()[0]
        .actor
        .clone()
        .unwrap();
    let inner = SupervisorRef::from_cell(inner_cell).unwrap();
    send_to(&inner, "w", ProbeMsg::Fail).await;
    eventually("inner terminated", || async {
        top.snapshot().await.unwrap().children[0].state == ChildState::Terminated
    })
    .await;
    assert_eq!(top.snapshot().await.unwrap().restarts_total, 0);
    top.stop(None).await.unwrap();
}
