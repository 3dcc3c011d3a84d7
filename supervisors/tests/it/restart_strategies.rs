//! Pins the restart strategies and restart types: which children a supervisor restarts, and when.

use crate::support::probe;

use erlmcp_supervisors::{ChildState, Restart, SupervisorRef, SupervisorSpec};
use probe::*;
use std::time::Duration;

fn generous(spec: SupervisorSpec) -> SupervisorSpec {
    spec.intensity(100, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_child_that_exited() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_one())
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    log.clear();
    make_exit_and_wait_replacement(&sup, "b", ProbeMsg::Fail).await;
    assert_eq!(log.events(), vec!["start_attempt:b", "start:b"]);
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.find_child("b").unwrap().restarts, 1);
    assert_eq!(snap.find_child("a").unwrap().restarts, 0);
    assert_eq!(snap.restarts_total, 1);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_list_order() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_all())
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log))
        .child(probe("d", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    log.clear();
    make_exit_and_wait_replacement(&sup, "b", ProbeMsg::Fail).await;
    eventually("all four restarted", || async { log.count("start:d") == 1 }).await;
    assert_eq!(log.with_prefix("stop:"), vec!["stop:d", "stop:c", "stop:a"]);
    assert_eq!(
        log.with_prefix("start:"),
        vec!["start:a", "start:b", "start:c", "start:d"]
    );
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_the_exited_child_and_those_started_after_it() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::rest_for_one())
        .child(probe("a", &log))
        .child(probe("b", &log))
        .child(probe("c", &log))
        .child(probe("d", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    log.clear();
    make_exit_and_wait_replacement(&sup, "b", ProbeMsg::Fail).await;
    eventually("b, c, d restarted", || async { log.count("start:d") == 1 }).await;
    assert_eq!(log.with_prefix("stop:"), vec!["stop:d", "stop:c"]);
    assert_eq!(
        log.with_prefix("start:"),
        vec!["start:b", "start:c", "start:d"]
    );
    assert_eq!(log.count("start:a"), 0);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_child_is_restarted_after_a_normal_exit() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_one()).child(probe("p", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "p", ProbeMsg::Exit(None)).await;
    assert_eq!(log.count("start:p"), 2);
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(
        snap.find_child("p").unwrap().last_exit.as_deref(),
        Some("normal")
    );
    sup.stop(None).await.unwrap();
}

/// Waits until every child of `sup` has terminated.
async fn until_all_terminated(sup: &SupervisorRef, what: &str) {
    eventually(what, || async {
        let snap = sup.snapshot().await.unwrap();
        snap.children
            .iter()
            .all(|c| c.state == ChildState::Terminated)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_child_is_not_restarted_after_a_normal_or_shutdown_exit() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_one())
        .child(probe("n", &log).restart(Restart::Transient))
        .child(probe("s", &log).restart(Restart::Transient));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    send_to(&sup, "n", ProbeMsg::Exit(None)).await;
    send_to(&sup, "s", ProbeMsg::Exit(Some("shutdown".into()))).await;
    until_all_terminated(&sup, "both exited").await;
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.children.len(), 2, "transient specs stay in the list");
    assert_eq!(
        snap.find_child("s").unwrap().last_exit.as_deref(),
        Some("shutdown")
    );
    assert_eq!(log.count("start:n") + log.count("start:s"), 2);
    assert_eq!(snap.restarts_total, 0);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_transient_child_exited_normally_and_is_not_restarted() {
    let log = Log::default();
    let spec =
        generous(SupervisorSpec::one_for_one()).child(probe("d", &log).restart(Restart::Transient));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    child(&sup, "d").await.unwrap().drain().unwrap();
    until_all_terminated(&sup, "drained").await;
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(
        snap.find_child("d").unwrap().last_exit.as_deref(),
        Some("normal")
    );
    assert_eq!(snap.restarts_total, 0);
    assert_eq!(log.count("start:d"), 1);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_child_is_restarted_after_an_abnormal_exit() {
    let log = Log::default();
    let spec =
        generous(SupervisorSpec::one_for_one()).child(probe("t", &log).restart(Restart::Transient));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "t", ProbeMsg::Exit(Some("disk on fire".into()))).await;
    make_exit_and_wait_replacement(&sup, "t", ProbeMsg::Panic).await;
    assert_eq!(log.count("start:t"), 3);
    let snap = sup.snapshot().await.unwrap();
    let last = snap.find_child("t").unwrap().last_exit.clone().unwrap();
    assert!(last.contains("panicked on request"), "{last}");
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_child_is_never_restarted_and_leaves_the_child_list() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_one())
        .child(probe("keep", &log))
        .child(probe("tmp", &log).restart(Restart::Temporary));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    send_to(&sup, "tmp", ProbeMsg::Fail).await;
    eventually("tmp removed", || async {
        sup.count_children().await.unwrap().specs == 1
    })
    .await;
    assert_eq!(log.count("start:tmp"), 1);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_sibling_stopped_by_a_one_for_all_restart_is_removed_not_restarted() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::one_for_all())
        .child(probe("a", &log))
        .child(probe("tmp", &log).restart(Restart::Temporary))
        .child(probe("c", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "a", ProbeMsg::Fail).await;
    eventually("c restarted", || async { log.count("start:c") == 2 }).await;
    let ids: Vec<String> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["a", "c"]);
    assert_eq!(log.count("start:tmp"), 1);
    assert_eq!(log.count("stop:tmp"), 1, "it was stopped gracefully");
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_sibling_stopped_by_a_rest_for_one_restart_is_removed_not_restarted() {
    let log = Log::default();
    let spec = generous(SupervisorSpec::rest_for_one())
        .child(probe("a", &log))
        .child(probe("tmp", &log).restart(Restart::Temporary))
        .child(probe("c", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "a", ProbeMsg::Fail).await;
    eventually("c restarted", || async { log.count("start:c") == 2 }).await;
    assert_eq!(sup.count_children().await.unwrap().specs, 2);
    assert_eq!(log.count("start:tmp"), 1);
    sup.stop(None).await.unwrap();
}
