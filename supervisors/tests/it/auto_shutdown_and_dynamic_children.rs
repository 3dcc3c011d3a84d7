//! Pins auto-shutdown on significant children and the dynamic (`simple_one_for_one`) supervisor.

use crate::support::probe;

use erlmcp_supervisors::{
    AutoShutdown, ChildTemplate, DynamicSupervisor, Restart, Shutdown, SupervisorError,
    SupervisorRef, SupervisorSpec,
};
use probe::*;
use ractor::ActorRef;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_significant_stops_the_supervisor_when_one_significant_child_exits() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(probe("plain", &log))
        .child(
            probe("sig", &log)
                .restart(Restart::Transient)
                .significant(true),
        );
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    send_to(&sup, "sig", ProbeMsg::Exit(None)).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("auto-shutdown")
        .unwrap();
    assert_eq!(log.count("stop:plain"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_significant_waits_until_every_significant_child_has_exited() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .auto_shutdown(AutoShutdown::AllSignificant)
        .child(
            probe("s1", &log)
                .restart(Restart::Temporary)
                .significant(true),
        )
        .child(
            probe("s2", &log)
                .restart(Restart::Transient)
                .significant(true),
        );
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    send_to(&sup, "s1", ProbeMsg::Exit(None)).await;
    eventually("s1 gone", || async {
        sup.count_children()
            .await
            .map(|c| c.specs == 1)
            .unwrap_or(false)
    })
    .await;
    assert!(!handle.is_finished(), "one significant child still runs");
    send_to(&sup, "s2", ProbeMsg::Exit(None)).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("auto-shutdown once all significant children exited")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_significant_child_that_is_restarted_does_not_trigger_auto_shutdown() {
    let log = Log::default();
    let spec = SupervisorSpec::one_for_one()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(
            probe("sig", &log)
                .restart(Restart::Transient)
                .significant(true),
        );
    let (sup, handle) = SupervisorRef::start(spec).await.unwrap();
    make_exit_and_wait_replacement(&sup, "sig", ProbeMsg::Fail).await;
    assert!(!handle.is_finished());
    sup.stop(None).await.unwrap();
}

fn template(log: &Log) -> ChildTemplate<String> {
    let log = log.clone();
    ChildTemplate::actor("worker", move |name: String| {
        (Probe, ProbeArgs::new(&name, &log))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_starts_children_from_its_template_with_extra_args() {
    let log = Log::default();
    let (dyn_sup, _) = DynamicSupervisor::start(template(&log), |s| s)
        .await
        .unwrap();
    for name in ["s1", "s2", "s3"] {
        dyn_sup.start_child(name.to_owned()).await.unwrap().unwrap();
    }
    assert_eq!(
        log.with_prefix("start:"),
        vec!["start:s1", "start:s2", "start:s3"]
    );
    let counts = dyn_sup.supervisor().count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active), (3, 3));
    dyn_sup.supervisor().stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_child_is_restarted_alone_with_the_same_args() {
    let log = Log::default();
    let (dyn_sup, _) = DynamicSupervisor::start(template(&log), |s| s)
        .await
        .unwrap();
    let a: ActorRef<ProbeMsg> = dyn_sup
        .start_child("a".into())
        .await
        .unwrap()
        .unwrap()
        .into();
    dyn_sup.start_child("b".into()).await.unwrap().unwrap();
    a.cast(ProbeMsg::Fail).unwrap();
    eventually("a restarted", || async { log.count("start:a") == 2 }).await;
    assert_eq!(log.count("start:b"), 1);
    assert_eq!(
        dyn_sup.supervisor().count_children().await.unwrap().active,
        2
    );
    dyn_sup.supervisor().stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_children_refuses_one_child_more() {
    let log = Log::default();
    let (dyn_sup, _) = DynamicSupervisor::start(template(&log), |s| s.max_children(2))
        .await
        .unwrap();
    dyn_sup.start_child("a".into()).await.unwrap();
    dyn_sup.start_child("b".into()).await.unwrap();
    assert_eq!(
        dyn_sup.start_child("c".into()).await.unwrap_err(),
        SupervisorError::MaxChildren(2)
    );
    dyn_sup.supervisor().stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_child_by_reference_stops_and_removes_a_dynamic_child() {
    let log = Log::default();
    let (dyn_sup, _) = DynamicSupervisor::start(template(&log), |s| s)
        .await
        .unwrap();
    let a = dyn_sup.start_child("a".into()).await.unwrap().unwrap();
    dyn_sup.start_child("b".into()).await.unwrap();
    dyn_sup.terminate_child(a.get_id()).await.unwrap();
    assert_eq!(log.count("stop:a"), 1);
    assert_eq!(
        dyn_sup.supervisor().count_children().await.unwrap().specs,
        1
    );
    assert!(matches!(
        dyn_sup.terminate_child(a.get_id()).await.unwrap_err(),
        SupervisorError::NotFound(_)
    ));
    dyn_sup.supervisor().stop(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_stops_all_children_in_parallel_under_one_timer() {
    let log = Log::default();
    let args = ProbeArgs::new("x", &log).stop_delay(Duration::from_millis(100));
    let (max, now) = (args.stopping_max.clone(), args.stopping_now.clone());
    let tmpl = ChildTemplate::actor("slow", move |name: String| {
        let mut a = args.clone();
        a.name = name;
        (Probe, a)
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)));
    let (dyn_sup, _) = DynamicSupervisor::start(tmpl, |s| s).await.unwrap();
    for i in 0..5 {
        dyn_sup.start_child(format!("c{i}")).await.unwrap();
    }
    dyn_sup.supervisor().stop(None).await.unwrap();
    assert_eq!(log.with_prefix("stop:").len(), 5);
    assert_eq!(
        max.load(Ordering::SeqCst),
        5,
        "all five were stopping at once"
    );
    assert_eq!(now.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_child_that_outlives_the_shared_deadline_is_killed() {
    let log = Log::default();
    let stuck = ProbeArgs::new("stuck", &log).stop_delay(Duration::from_secs(30));
    let tmpl = ChildTemplate::actor("stuck", move |_: ()| (Probe, stuck.clone()))
        .shutdown(Shutdown::Timeout(Duration::from_millis(100)));
    let (dyn_sup, _) = DynamicSupervisor::start(tmpl, |s| s).await.unwrap();
    for _ in 0..3 {
        dyn_sup.start_child(()).await.unwrap();
    }
    dyn_sup
        .supervisor()
        .stop(Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(log.count("stop:stuck"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_arguments_of_the_wrong_type_are_refused() {
    let log = Log::default();
    let (dyn_sup, _) = DynamicSupervisor::start(template(&log), |s| s)
        .await
        .unwrap();
    let wrong: DynamicSupervisor<u32> = DynamicSupervisor::from_ref(dyn_sup.supervisor().clone());
    assert!(matches!(
        wrong.start_child(7).await.unwrap_err(),
        SupervisorError::WrongArgumentType { .. }
    ));
    let static_sup: DynamicSupervisor<String> = {
        let (s, _) = SupervisorRef::start(SupervisorSpec::one_for_one())
            .await
            .unwrap();
        DynamicSupervisor::from_ref(s)
    };
    assert!(matches!(
        static_sup.start_child("x".into()).await.unwrap_err(),
        SupervisorError::WrongStrategy { .. }
    ));
    assert!(matches!(
        dyn_sup
            .supervisor()
            .start_child(probe("x", &log))
            .await
            .unwrap_err(),
        SupervisorError::WrongStrategy { .. }
    ));
    dyn_sup.supervisor().stop(None).await.unwrap();
    static_sup.supervisor().stop(None).await.unwrap();
}
