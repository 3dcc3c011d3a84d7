//! Black-box tests of `erlmcp bench vs`: one profile against a peer server and a node of the
//! binary under test, after the same call to both. A second erlmcp node as the peer (cheap to
//! start here: rmcp's echo bench would need a release build of its own) gives the same answer,
//! so both sides are measured and the ratios written; the raw line echo sends the request back,
//! so it is refused unless `--any-answer` says it is a floor. The peer is stopped at the end.

use crate::bench_suite::{bench, figure, read_json};
use crate::support::home::PrivateHome;

/// A short run: two connections, half a second measured.
const SHORT: [&str; 10] = [
    "--duration",
    "0.5",
    "--warmup",
    "0.2",
    "--connections",
    "2",
    "--pipeline",
    "2",
    "--threads",
    "1",
];

#[test]
fn bench_vs_runs_one_profile_against_a_peer_and_a_node_and_writes_their_ratios() {
    let home = PrivateHome::new();
    let out = home.path().join("vs-http");
    let mut args = vec![
        "vs",
        "--profile",
        "http",
        "--peer",
        env!("CARGO_BIN_EXE_erlmcp"),
        "--peer-args",
        "start --http {addr} --log-level error",
        "--peer-name",
        "other-erlmcp",
        "--repeat",
        "2",
        "--pin",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SHORT);
    let (code, stdout, stderr) = bench(&home, &args);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Two rounds, the peer first in the first, erlmcp first in the second.
    let vs = read_json(&out.join("vs.json"));
    assert_eq!(
        vs["order"],
        serde_json::json!(["other-erlmcp", "erlmcp", "erlmcp", "other-erlmcp"])
    );
    // Pinned apart: the servers' CPUs and the load's do not overlap (2 CPUs or more here).
    let (servers, load) = (
        vs["pinned"]["servers"].as_str().unwrap(),
        vs["pinned"]["load"].as_str().unwrap(),
    );
    assert!(!servers.is_empty() && !load.is_empty(), "{vs}");
    assert!(
        servers
            .split(',')
            .all(|cpu| !load.split(',').any(|l| l == cpu))
    );
    assert!(
        stdout.contains("the same answer from both sides"),
        "{stdout}"
    );
    let peer = read_json(&out.join("other-erlmcp/results.json"));
    let node = read_json(&out.join("erlmcp/results.json"));
    for (side, kind) in [(&peer, "peer"), (&node, "child")] {
        assert_eq!(side["profile"], "http");
        assert_eq!(side["config"]["node"], kind);
        assert_eq!(side["config"]["connections"], 2);
        // Each side's rounds merged into one run: two repeats, their median.
        assert_eq!(side["config"]["repeat"], 2);
        assert_eq!(side["repeats"].as_array().map(Vec::len), Some(2));
        assert!(figure(side, "calls_per_sec") > 0.0);
        assert_eq!(figure(side, "errors"), 0.0);
        // Both sides' processes were sampled.
        assert!(figure(side, "node_rss_max_bytes") > 0.0);
    }
    assert_eq!(vs["profile"], "http");
    assert_eq!(vs["answers"]["same"], true);
    assert_eq!(vs["peer"]["name"], "other-erlmcp");
    let calls = &vs["figures"]["calls_per_sec"];
    let ratio = calls["ratio"].as_f64().unwrap();
    let expected = figure(&node, "calls_per_sec") / figure(&peer, "calls_per_sec");
    assert!(
        (ratio - expected).abs() < 1e-9,
        "{ratio} against {expected}"
    );
    let html = std::fs::read_to_string(out.join("vs.html")).unwrap();
    assert!(html.contains("id=\"ratios\"") && html.contains("other-erlmcp"));
    // The peer was stopped: nothing listens where it did; its home is gone.
    let addr: std::net::SocketAddr = peer["config"]["target"].as_str().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the peer still listens on {addr}"
    );
    assert!(!out.join("peer-home").exists() && !out.join("node-home").exists());
}

#[test]
fn bench_vs_refuses_a_peer_that_answers_otherwise_unless_it_is_called_a_floor() {
    let home = PrivateHome::new();
    let out = home.path().join("vs-tcp");
    let mut args = vec![
        "vs",
        "--profile",
        "tcp",
        "--peer",
        env!("CARGO_BIN_EXE_erlmcp"),
        "--peer-args",
        "bench echo-server --addr {addr}",
        "--peer-name",
        "raw-echo",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SHORT);
    let (code, stdout, stderr) = bench(&home, &args);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("does other work"), "{stderr}");
    assert!(!out.join("vs.json").exists() && !out.join("raw-echo").exists());

    args.push("--any-answer");
    let (code, stdout, stderr) = bench(&home, &args);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let vs = read_json(&out.join("vs.json"));
    assert_eq!(vs["answers"]["same"], false);
    assert!(vs["figures"]["calls_per_sec"]["ratio"].as_f64().unwrap() > 0.0);

    // Bad usage: a profile without a server to load, a --target.
    let (code, _, stderr) = bench(
        &home,
        &["vs", "--profile", "core", "--peer", "x", "--out", "o"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = bench(
        &home,
        &[
            "vs",
            "--profile",
            "tcp",
            "--peer",
            "x",
            "--target",
            "127.0.0.1:1",
            "--out",
            "o",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
}
