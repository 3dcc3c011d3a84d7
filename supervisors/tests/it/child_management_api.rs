//! Pins the run-time API (start/terminate/restart/delete/which/count), spec validation,
//! registration, the tree snapshot, and the visibility of restarts.

use crate::support::probe;

use erlmcp_supervisors::{
    AutoShutdown, ChildKind, ChildSpec, ChildState, Restart, SupervisorError, SupervisorRef,
    SupervisorSnapshot, SupervisorSpec,
};
use probe::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_child_adds_and_starts_a_child_and_refuses_a_duplicate_id() {
    let log = Log::default();
    let (sup, _) = SupervisorRef::start(SupervisorSpec::one_for_one())
        .await
        .unwrap();
    let cell = sup.start_child(probe("x", &log)).await.unwrap();
    assert!(cell.is_some());
    assert_eq!(log.count("start:x"), 1);
    let err = sup.start_child(probe("x", &log)).await.unwrap_err();
    assert_eq!(err, SupervisorError::AlreadyPresent("x".into()));
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_child_stops_it_without_restart_and_keeps_the_spec_for_restart_child() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().child(probe("x", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.terminate_child("x").await.unwrap();
    assert_eq!(log.count("stop:x"), 1);
    let snap = sup.snapshot().await.unwrap();
    assert_eq!(snap.children[0].state, ChildState::Terminated);
    assert_eq!(snap.restarts_total, 0);
    assert!(sup.restart_child("x").await.unwrap().is_some());
    assert_eq!(log.count("start:x"), 2);
    assert_eq!(
        sup.restart_child("x").await.unwrap_err(),
        SupervisorError::Running("x".into())
    );
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_child_removes_a_temporary_child() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().child(probe("t", &log).restart(Restart::Temporary));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.terminate_child("t").await.unwrap();
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_child_removes_a_terminated_spec_and_refuses_a_running_one() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one().child(probe("x", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    assert_eq!(
        sup.delete_child("x").await.unwrap_err(),
        SupervisorError::Running("x".into())
    );
    sup.terminate_child("x").await.unwrap();
    sup.delete_child("x").await.unwrap();
    assert_eq!(
        sup.delete_child("x").await.unwrap_err(),
        SupervisorError::NotFound("x".into())
    );
    assert_eq!(sup.count_children().await.unwrap().specs, 0);
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn which_children_and_count_children_describe_every_spec() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .child(probe("w1", &log))
        .child(ChildSpec::supervisor("s", SupervisorSpec::one_for_one()))
        .child(probe("w2", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    sup.terminate_child("w2").await.unwrap();
    let children = sup.which_children().await.unwrap();
    let kinds: Vec<(String, ChildKind, bool)> = children
        .into_iter()
        .map(|c| (c.id, c.kind, c.actor.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("w1".into(), ChildKind::Worker, true),
            ("s".into(), ChildKind::Supervisor, true),
            ("w2".into(), ChildKind::Worker, false),
        ]
    );
    let counts = sup.count_children().await.unwrap();
    assert_eq!(
        (
            counts.specs,
            counts.active,
            counts.supervisors,
            counts.workers
        ),
        (3, 2, 1, 2)
    );
    sup.stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_before_anything_starts() {
    let log = Log::default();
    let dup = SupervisorSpec::one_for_one()
        .child(probe("x", &log))
        .child(probe("x", &log));
    assert!(matches!(
        SupervisorRef::start(dup).await.unwrap_err(),
        SupervisorError::InvalidSpec(m) if m.contains("duplicate")
    ));
    let permanent_significant = SupervisorSpec::one_for_one()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(probe("x", &log).significant(true));
    assert!(matches!(
        SupervisorRef::start(permanent_significant).await.unwrap_err(),
        SupervisorError::InvalidSpec(m) if m.contains("permanent")
    ));
    let significant_without_auto = SupervisorSpec::one_for_one().child(
        probe("x", &log)
            .restart(Restart::Transient)
            .significant(true),
    );
    assert!(matches!(
        SupervisorRef::start(significant_without_auto).await.unwrap_err(),
        SupervisorError::InvalidSpec(m) if m.contains("auto_shutdown")
    ));
    assert_eq!(log.count("start_attempt:x"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_are_registered_under_their_names() {
    let top_name = unique("erlmcp_sup");
    let inner_name = unique("erlmcp_core_sup");
    let spec = SupervisorSpec::one_for_one()
        .named(&top_name)
        .child(ChildSpec::supervisor(
            "core",
            SupervisorSpec::one_for_one().named(&inner_name),
        ));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let found = SupervisorRef::whereis(&inner_name).expect("registered");
    assert_eq!(found.snapshot().await.unwrap().name, inner_name);
    assert_eq!(
        SupervisorRef::whereis(&top_name).unwrap().cell().get_id(),
        sup.cell().get_id()
    );
    sup.stop(None).await.unwrap();
    assert!(SupervisorRef::whereis(&inner_name).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_snapshot_shows_strategies_states_restart_counts_and_last_exit_reasons() {
    let log = Log::default();
    let inner_name = unique("inner");
    let inner = SupervisorSpec::rest_for_one()
        .named(&inner_name)
        .intensity(5, Duration::from_secs(10))
        .child(probe("leaf", &log));
    let spec = SupervisorSpec::one_for_all()
        .named(unique("root"))
        .child(ChildSpec::supervisor("inner", inner));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    let inner = SupervisorRef::whereis(&inner_name).unwrap();
    make_exit_and_wait_replacement(&inner, "leaf", ProbeMsg::Exit(Some("bad luck".into()))).await;

    let snap = sup.snapshot().await.unwrap();
    let json = serde_json::to_string(&snap).unwrap();
    let back: SupervisorSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    let inner_snap = snap.children[0].supervisor.as_ref().unwrap();
    assert_eq!(inner_snap.strategy.as_str(), "rest_for_one");
    assert_eq!((inner_snap.max_restarts, inner_snap.period_ms), (5, 10_000));
    let leaf = snap.find_child("leaf").unwrap();
    assert_eq!(leaf.restarts, 1);
    assert_eq!(leaf.last_exit.as_deref(), Some("bad luck"));
    assert_eq!(leaf.state, ChildState::Running);
    let text = snap.render();
    assert!(text.contains("one_for_all"), "{text}");
    assert!(text.contains("last exit: bad luck"), "{text}");
    sup.stop(None).await.unwrap();
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_restart_emits_a_tracing_event_with_child_reason_and_count_in_window() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .named(unique("visible"))
        .intensity(10, Duration::from_secs(60))
        .child(probe("w", &log));
    let (sup, _) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "w", ProbeMsg::Exit(Some("oops".into()))).await;
    make_exit_and_wait_replacement(&sup, "w", ProbeMsg::Exit(Some("again".into()))).await;
    sup.stop(None).await.unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let restarts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("restarting child"))
        .collect();
    assert_eq!(restarts.len(), 2, "{text}");
    assert!(restarts[0].contains("child=w") && restarts[0].contains("reason=\"oops\""));
    assert!(
        restarts[1].contains("restarts_in_window=2"),
        "{}",
        restarts[1]
    );
}
