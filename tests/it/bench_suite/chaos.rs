//! Black-box tests of the chaos profile's faults on a cluster's node and on session actors, run
//! CI-sized: `--faults node` SIGKILLs one of two clustered nodes under Streamable HTTP load
//! spread over both, whose sessions go on through the other node with the same
//! `Mcp-Session-Id` (taken over from their replicas, none initialized again) while the node is
//! started again and rejoins; every write acknowledged before the kill is read back after it.
//! `--faults sessions` kills the awake session actors under TCP load: each killed session's
//! connection is closed, its requests in flight fail, and the load opens it again; over
//! WebSocket likewise, the socket opened again with a new session, and the writes read back.

use super::{bench, chaos, figure};
use crate::bench_cluster::{assert_none_left, home};

#[test]
fn bench_run_chaos_kills_a_cluster_node_and_its_http_sessions_go_on_through_the_other() {
    let (home, reaper) = home();
    let out = home.path().join("chaos-node");
    let (results, stdout, stderr) = chaos(
        &home,
        &out,
        &[
            "--transport",
            "http",
            "--nodes",
            "2",
            "--faults",
            "node",
            "--rate",
            "200",
            "--duration",
            "5",
            "--warmup",
            "0.5",
            "--connections",
            "4",
        ],
    );
    assert_eq!(results["config"]["nodes"], 2);
    assert_eq!(results["config"]["transport"], "http");
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{faults:?}");
    let fault = &faults[0];
    assert!(fault["error"].is_null(), "{fault}");
    // The node was started again and both nodes listed each other up.
    let back = fault["component_back_us"]
        .as_f64()
        .unwrap_or_else(|| panic!("the node did not come back: {fault}"));
    assert!(back > 0.0, "{fault}");
    assert_eq!(fault["lost_writes"], 0, "{fault}");
    // The killed node's two connections (1 and 3 of 4, round robin) were opened again on the
    // other node, their sessions taken over there: none had to be initialized again.
    assert!(fault["reopened"].as_u64().unwrap() >= 2, "{fault}");
    assert_eq!(
        figure(&results, "sessions_reinitialized"),
        0.0,
        "{}",
        results["figures"]
    );
    assert!(figure(&results, "writes_acknowledged") > 0.0);
    assert_eq!(
        figure(&results, "lost_writes"),
        0.0,
        "{}",
        results["figures"]
    );
    // What failed failed during the fault (in flight on the killed node's connections).
    assert_eq!(
        figure(&results, "errors"),
        figure(&results, "faults_failed_requests"),
        "{}\ntimeline: {}\nstderr:\n{stderr}",
        results["figures"],
        results["repeats"][0]["timeline"]
    );
    assert!(stdout.contains("0 of them lost"), "{stdout}");
    assert!(!out.join("cluster-home").join("node-1").exists());
    assert_none_left(&reaper);

    // The node fault needs a cluster, a cluster needs HTTP, and HTTP and WebSocket have no TCP
    // connection actors to kill.
    for args in [
        &["--faults", "node"][..],
        &["--nodes", "2", "--faults", "node"][..],
        &["--transport", "http", "--faults", "connections"][..],
        &["--transport", "ws", "--faults", "connections"][..],
        &["--transport", "http", "--faults", "sessions"][..],
    ] {
        let mut all = vec!["run", "--profile", "chaos", "--out", "bad"];
        all.extend(args);
        let (code, _, stderr) = bench(&home, &all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_run_chaos_kills_the_awake_session_actors_and_the_load_opens_new_sessions() {
    let (home, reaper) = home();
    let out = home.path().join("chaos-sessions");
    let (results, _, _) = chaos(
        &home,
        &out,
        &[
            "--faults",
            "sessions,sessions=1",
            "--rate",
            "200",
            "--duration",
            "3",
            "--warmup",
            "0.3",
            "--connections",
            "3",
        ],
    );
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    for fault in faults {
        // Session actors were found awake and killed, and new ones ran after.
        assert!(fault["error"].is_null(), "{fault}");
        assert!(fault["component_back_us"].as_f64().is_some(), "{fault}");
        assert_eq!(fault["lost_writes"], 0, "{fault}");
    }
    // A killed session closes its connection: all three, then one, opened again.
    assert!(
        faults[0]["reopened"].as_u64().unwrap() >= 3,
        "{}",
        faults[0]
    );
    assert!(
        faults[1]["reopened"].as_u64().unwrap() >= 1,
        "{}",
        faults[1]
    );
    assert!(figure(&results, "connections_reopened") >= 4.0);
    // What failed was in flight on a killed session, counted in its fault.
    assert_eq!(
        figure(&results, "errors"),
        figure(&results, "faults_failed_requests"),
        "{}",
        results["figures"]
    );
    assert_eq!(figure(&results, "lost_writes"), 0.0);
    assert_none_left(&reaper);
}

#[test]
fn bench_run_chaos_kills_websocket_sessions_the_load_opens_again_and_reads_the_writes_back() {
    let (home, reaper) = home();
    let out = home.path().join("chaos-ws");
    let (results, _, _) = chaos(
        &home,
        &out,
        &[
            "--transport",
            "ws",
            "--faults",
            "erlmcp_registry,sessions",
            "--rate",
            "200",
            "--duration",
            "3",
            "--warmup",
            "0.3",
            "--connections",
            "2",
        ],
    );
    assert_eq!(results["config"]["transport"], "ws");
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    for fault in faults {
        assert!(fault["error"].is_null(), "{fault}");
        assert!(fault["component_back_us"].as_f64().is_some(), "{fault}");
        assert_eq!(fault["lost_writes"], 0, "{fault}");
    }
    // The registry's kill drops no socket; each killed session closes its socket, which the
    // load opens again with a new session.
    assert_eq!(faults[0]["reopened"], 0, "{}", faults[0]);
    assert!(
        faults[1]["reopened"].as_u64().unwrap() >= 2,
        "{}",
        faults[1]
    );
    assert!(figure(&results, "writes_acknowledged") > 0.0);
    assert_eq!(figure(&results, "lost_writes"), 0.0);
    assert_eq!(
        figure(&results, "errors"),
        figure(&results, "faults_failed_requests"),
        "{}",
        results["figures"]
    );
    assert_none_left(&reaper);
}
