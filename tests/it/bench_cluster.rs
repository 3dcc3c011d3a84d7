//! Black-box tests of `erlmcp bench run`'s cluster profiles, run tiny: `--profile forward` starts
//! two clustered nodes, makes sessions on the first and drives them through it and through the
//! second (which forwards to the owner), and reports both paths and their ratio; `--profile
//! scale --nodes 2 --generators 2` opens initialized Streamable HTTP sessions on two nodes from
//! two generator processes and reports each node's share and memory. Every process the bench
//! starts (nodes, generators) has its home under the test's private home: none may be left
//! running, and a guard kills any that is (also when the test fails).

use crate::bench_suite::{bench, figure, read_json};
use crate::support::home::PrivateHome;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Processes whose `HOME` is `home` or under it.
fn processes_under(home: &Path) -> Vec<u32> {
    let wanted = format!("HOME={}", home.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var.starts_with(wanted.as_bytes()))
        {
            found.push(pid);
        }
    }
    found
}

/// Kills, when dropped, every process left with its home under the test's.
pub(crate) struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        for pid in processes_under(&self.0) {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// A private home and the guard that kills what is left under it.
pub(crate) fn home() -> (PrivateHome, Reaper) {
    let home = PrivateHome::new();
    let canonical = home.path().canonicalize().unwrap();
    (home, Reaper(canonical))
}

pub(crate) fn assert_none_left(reaper: &Reaper) {
    let left = processes_under(&reaper.0);
    assert!(left.is_empty(), "processes left running: pids {left:?}");
}

#[test]
fn bench_run_forward_drives_sessions_through_their_owner_and_through_another_node() {
    let (home, reaper) = home();
    let out = home.path().join("forward");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "forward",
            "--connections",
            "2",
            "--pipeline",
            "1",
            "--threads",
            "1",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--repeat",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("forward: direct"), "{stdout}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["profile"], "forward");
    assert_eq!(results["config"]["nodes"], 2);
    assert_eq!(results["repeats"].as_array().map(Vec::len), Some(2));
    for repeat in results["repeats"].as_array().unwrap() {
        let repeat = &serde_json::json!({ "figures": repeat["figures"].clone() });
        for path in ["direct", "forwarded"] {
            let f = |name: &str| figure(repeat, &format!("{path}_{name}"));
            assert!(f("calls") > 0.0, "{path}: no call measured: {repeat}");
            assert_eq!(f("errors"), 0.0, "{path}: errors: {repeat}");
            assert!(f("calls_per_sec") > 0.0, "{repeat}");
            assert!(f("p50_us") > 0.0 && f("p99_us") >= f("p50_us"), "{repeat}");
        }
        // Every session is the first node's as the second sees it: its requests are forwarded.
        assert_eq!(figure(repeat, "sessions_owned_elsewhere"), 2.0, "{repeat}");
        let ratio = figure(repeat, "forward_p50_ratio");
        let expected = figure(repeat, "forwarded_p50_us") / figure(repeat, "direct_p50_us");
        assert!((ratio - expected).abs() < 1e-9, "{ratio} vs {expected}");
        assert!(figure(repeat, "forward_p99_ratio") > 0.0);
        assert!(figure(repeat, "forward_throughput_ratio") > 0.0);
    }
    // The forwarded phase's timeline is the run's.
    assert!(
        results["repeats"][0]["timeline"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        results["repeats"][0]
    );
    assert!(
        !out.join("cluster-home").join("node-0").exists(),
        "a node's home left behind"
    );
    assert_none_left(&reaper);

    // Bad usage: one node, a target, stateless requests.
    for args in [
        &["--nodes", "1"][..],
        &["--target", "127.0.0.1:9"][..],
        &["--http-mode", "stateless"][..],
    ] {
        let mut all = vec!["run", "--profile", "forward", "--out", "bad"];
        all.extend(args);
        let (code, _, stderr) = bench(&home, &all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_run_scale_across_nodes_spreads_sessions_from_generator_processes() {
    let (home, reaper) = home();
    let out = home.path().join("scale");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "scale",
            "--transport",
            "http",
            "--nodes",
            "2",
            "--generators",
            "2",
            "--connections",
            "40",
            "--duration",
            "0.2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("40 connections open (0 failed)"),
        "{stdout}"
    );
    assert!(stdout.contains("scale: 2 nodes, 2 generators"), "{stdout}");
    let results: Value = read_json(&out.join("results.json"));
    assert_eq!(results["config"]["nodes"], 2);
    assert_eq!(results["config"]["generators"], 2);
    assert_eq!(figure(&results, "connections_opened"), 40.0);
    assert_eq!(figure(&results, "connections_failed"), 0.0);
    // Round robin over the nodes: 10 of each generator's 20 on each node.
    assert_eq!(figure(&results, "node0_connections"), 20.0);
    assert_eq!(figure(&results, "node1_connections"), 20.0);
    // Each node holds a descriptor for each of its connections.
    let fds = figure(&results, "node_fds_after") - figure(&results, "node_fds_before");
    assert!(fds >= 40.0, "{fds} more descriptors for 40 connections");
    assert!(figure(&results, "node_rss_per_connection_bytes") > 0.0);
    assert!(figure(&results, "node0_rss_after_bytes") > 0.0);
    assert!(figure(&results, "open_seconds") > 0.0);
    assert_none_left(&reaper);

    // Across nodes only Streamable HTTP sessions; no target.
    for args in [
        &["--transport", "tcp", "--nodes", "2"][..],
        &["--transport", "ws", "--generators", "2"][..],
        &["--target", "127.0.0.1:9", "--generators", "2"][..],
    ] {
        let mut all = vec!["run", "--profile", "scale", "--out", "bad"];
        all.extend(args);
        let (code, _, stderr) = bench(&home, &all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
    }
}
