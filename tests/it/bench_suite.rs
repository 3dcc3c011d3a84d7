//! Black-box tests of `erlmcp bench run`, `compare` and `history`: a short run against the node
//! the bench starts itself writes a results.json with its schema's fields, sane figures and a
//! self-contained report; the open loop holds its rate; compare exits 0 on equal runs and 1 on
//! a regression fabricated in a copy, naming it; history reads a folder of runs. Every command
//! runs in a private home, its output folder inside it, under a time bound.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::home::PrivateHome;
use crate::support::plugin_build;

/// The chaos faults that kill a cluster's node and session actors.
#[path = "bench_suite/chaos.rs"]
mod chaos;

/// The bound on one bench command (a run of about a second, its node's start and stop).
const BOUND: Duration = Duration::from_secs(90);

/// `erlmcp bench run --profile chaos ARGS --out OUT` in `home`, which must succeed: its
/// results.json, its stdout and its stderr.
pub(crate) fn chaos(
    home: &PrivateHome,
    out: &std::path::Path,
    args: &[&str],
) -> (serde_json::Value, String, String) {
    let out_arg = out.to_str().unwrap();
    let all: Vec<&str> = ["run", "--profile", "chaos"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--out", out_arg])
        .collect();
    let (code, stdout, stderr) = bench(home, &all);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    (read_json(&out.join("results.json")), stdout, stderr)
}

/// `erlmcp bench ARGS` in `home`: exit code, stdout, stderr.
pub(crate) fn bench(home: &PrivateHome, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command: Command = home.command();
    command
        .arg("bench")
        .args(args)
        .env_remove("RUST_LOG")
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn erlmcp bench");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("erlmcp bench {args:?} ran past {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

pub(crate) fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn figure(results: &Value, name: &str) -> f64 {
    results["figures"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no figure {name} in {}", results["figures"]))
}

#[test]
fn bench_run_tcp_writes_results_json_with_its_schema_and_a_self_contained_report() {
    let home = PrivateHome::new();
    let out = home.path().join("run");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "tcp",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "4",
            "--threads",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["schema"], 1);
    assert_eq!(results["profile"], "tcp");
    assert!(results["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        results["machine"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert!(results["machine"]["cpu_model"].is_string());
    assert!(results["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(results["config"]["loop"], "closed");
    assert_eq!(results["config"]["node"], "child");
    assert_eq!(results["config"]["connections"], 4);
    assert!(figure(&results, "calls_per_sec") > 0.0);
    assert_eq!(figure(&results, "errors"), 0.0);
    let (p50, p99, max) = (
        figure(&results, "p50_us"),
        figure(&results, "p99_us"),
        figure(&results, "max_us"),
    );
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= max,
        "p50 {p50} p99 {p99} max {max}"
    );
    assert!(figure(&results, "node_rss_max_bytes") > 1_000_000.0);
    let figures = results["figures"].as_object().unwrap();
    assert!(
        figures.keys().all(|k| k.ends_with("_per_sec")
            || k.ends_with("_us")
            || k.ends_with("_bytes")
            || k.ends_with("_percent")
            || k.ends_with("_mean")
            || k == "calls"
            || k == "errors"),
        "a figure without its unit in its name: {figures:?}"
    );
    let repeat = &results["repeats"][0];
    assert!(!repeat["timeline"].as_array().unwrap().is_empty());
    assert!(!repeat["percentiles"].as_array().unwrap().is_empty());
    assert!(!repeat["node"].as_array().unwrap().is_empty());
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for chart in [
        "latency-over-time",
        "percentile-curve",
        "throughput-over-time",
        "errors-over-time",
        "node-rss",
        "node-cpu",
    ] {
        assert!(
            report.contains(&format!("id=\"{chart}\"")),
            "no chart {chart}"
        );
    }
    assert!(!report.contains("chart-failed"), "a chart was not drawn");
    assert!(
        !report.contains("src=\"http") && !report.contains("href=\"http"),
        "the report fetches something"
    );
    // The node's private home under the output folder is removed with the node.
    assert!(!out.join("node-home").exists());

    // compare: the same run against itself passes the gate.
    let (code, stdout, _) = bench(
        &home,
        &["compare", out.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("no regression"), "{stdout}");

    // A copy whose throughput fell by a half and whose p99 tripled fails it, naming both.
    let slower = home.path().join("slower");
    std::fs::create_dir_all(&slower).unwrap();
    let mut fabricated = results.clone();
    fabricated["figures"]["calls_per_sec"] = (figure(&results, "calls_per_sec") / 2.0).into();
    fabricated["figures"]["p99_us"] = (p99 * 3.0).into();
    std::fs::write(slower.join("results.json"), fabricated.to_string()).unwrap();
    let compared = home.path().join("compared");
    let (code, stdout, _) = bench(
        &home,
        &[
            "compare",
            slower.to_str().unwrap(),
            out.to_str().unwrap(),
            "--threshold",
            "0.10",
            "--out",
            compared.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("regression: calls_per_sec fell"),
        "{stdout}"
    );
    assert!(stdout.contains("regression: p99_us rose"), "{stdout}");
    let page = std::fs::read_to_string(compared.join("compare.html")).unwrap();
    assert!(page.contains("id=\"throughput-over-time\"") && page.contains("baseline"));

    // history: both runs of the folder, oldest first, as a table and a page.
    let (code, stdout, stderr) = bench(&home, &["history", home.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let rows = stdout.lines().filter(|l| l.contains(" tcp ")).count();
    assert_eq!(rows, 2, "{stdout}");
    let page = std::fs::read_to_string(home.path().join("history.html")).unwrap();
    assert!(page.contains("id=\"history-throughput\"") && page.contains("id=\"history-p99\""));
}

#[test]
fn bench_run_open_loop_holds_its_rate_over_stateless_http() {
    let home = PrivateHome::new();
    let out = home.path().join("open");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "http",
            "--http-mode",
            "stateless",
            "--rate",
            "200",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["config"]["loop"], "open");
    assert_eq!(results["config"]["rate_per_sec"], 200.0);
    assert_eq!(results["config"]["http_mode"], "stateless");
    // Every request due in the measured second was sent and answered: the rate, not what the
    // server's answers allowed.
    let rate = figure(&results, "calls_per_sec");
    assert!(
        (180.0..=220.0).contains(&rate),
        "{rate} calls/s at 200 offered"
    );
    assert_eq!(figure(&results, "errors"), 0.0);
    assert!(figure(&results, "p99_us") > 0.0);
}

#[test]
fn bench_run_core_measures_every_pair_and_bad_usage_exits_2() {
    let home = PrivateHome::new();
    let out = home.path().join("core");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "core",
            "--duration",
            "0.02",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["config"]["node"], "in-process");
    assert!(figure(&results, "registry_lookup_erlmcp_ops_per_sec") > 0.0);
    assert!(figure(&results, "registry_lookup_baseline_ops_per_sec") > 0.0);
    assert!(figure(&results, "mix_ops_per_sec") > 0.0);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("id=\"core-ops\"") && report.contains("<rect"));
    // In process: the process's own memory and CPU over the run.
    assert!(report.contains("id=\"node-rss\"") && report.contains("id=\"node-cpu\""));
    assert!(!results["repeats"][0]["node"].as_array().unwrap().is_empty());

    let (code, _, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "core",
            "--rate",
            "100",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = bench(&home, &["compare", "/nonexistent-a", "/nonexistent-b"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn bench_run_chaos_kills_actors_through_the_admin_channel_and_loses_no_request() {
    let home = PrivateHome::new();
    let out = home.path().join("chaos");
    let (results, _, _) = chaos(
        &home,
        &out,
        &[
            "--faults",
            "erlmcp_registry,erlmcp_metrics",
            "--rate",
            "200",
            "--duration",
            "2",
            "--warmup",
            "0.3",
            "--connections",
            "2",
        ],
    );
    assert_eq!(results["config"]["loop"], "open");
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    let actors: Vec<&str> = faults
        .iter()
        .map(|f| f["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["erlmcp_registry", "erlmcp_metrics"]);
    for fault in faults {
        assert!(fault["error"].is_null(), "{fault}");
        // The supervisor put a new actor in its place, within the run.
        let back = fault["component_back_us"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}"));
        assert!(back > 0.0 && back < 10_000_000.0, "{fault}");
        assert!(fault["at_s"].as_f64().unwrap() > 0.0, "{fault}");
    }
    assert_eq!(figure(&results, "faults"), 2.0);
    assert!(figure(&results, "faults_recovered") <= 2.0);
    // Every request due was answered, once: the kills lost nothing.
    assert_eq!(figure(&results, "errors"), 0.0);
    assert_eq!(figure(&results, "faults_failed_requests"), 0.0);
    let rate = figure(&results, "calls_per_sec");
    assert!(
        (180.0..=220.0).contains(&rate),
        "{rate} calls/s at 200 offered"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("id=\"faults\""));
    assert!(!out.join("node-home").exists());
}

#[test]
fn bench_run_chaos_drops_connections_the_load_opens_again_and_loses_no_acknowledged_write() {
    let home = PrivateHome::new();
    let out = home.path().join("chaos-drops");
    let (results, stdout, _) = chaos(
        &home,
        &out,
        &[
            "--faults",
            "connections,erlmcp_transport_sup,erlmcp_store",
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
    assert_eq!(faults.len(), 3, "{faults:?}");
    for fault in faults {
        assert!(fault["error"].is_null(), "{fault}");
        let back = fault["component_back_us"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}"));
        assert!(back > 0.0 && back < 10_000_000.0, "{fault}");
        // Every write acknowledged before the fault was read back after it.
        assert_eq!(fault["lost_writes"], 0, "{fault}");
    }
    // Killing the connection actors, or the transport's supervisor, dropped every connection
    // of the load, which opened each again.
    for fault in &faults[..2] {
        let reopened = fault["reopened"].as_u64().unwrap();
        assert!(reopened >= 3, "{fault}");
    }
    assert!(figure(&results, "connections_reopened") >= 6.0);
    assert!(figure(&results, "writes_acknowledged") > 0.0);
    assert_eq!(
        figure(&results, "lost_writes"),
        0.0,
        "{}",
        results["figures"]
    );
    // What failed failed during the faults (in flight on a dropped connection), never after.
    assert_eq!(
        figure(&results, "errors"),
        figure(&results, "faults_failed_requests"),
        "{}",
        results["figures"]
    );
    assert!(stdout.contains("0 of them lost"), "{stdout}");
}

#[test]
fn bench_run_chaos_loads_failing_plugins_under_load_and_the_node_serves_on_unharmed() {
    let home = PrivateHome::new();
    // One version that loads and whose tool panics, one whose init panics (refused).
    let (panics, refused) = (
        home.path().join("handler_panics.so"),
        home.path().join("init_panics.so"),
    );
    plugin_build::build("erlmcp-plugin-broken", &["handler_panics"], &panics);
    plugin_build::build("erlmcp-plugin-broken", &["init_panics"], &refused);
    let out = home.path().join("chaos-plugins");
    let faults = format!("plugin={},plugin={}", panics.display(), refused.display());
    let (results, _, _) = chaos(
        &home,
        &out,
        &[
            "--faults",
            &faults,
            "--rate",
            "200",
            "--duration",
            "2",
            "--warmup",
            "0.3",
            "--connections",
            "2",
        ],
    );
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    for fault in faults {
        // Its tool answered (no dropped connection), it was undone, and the node listed the
        // plugins it had before.
        assert!(fault["error"].is_null(), "{fault}");
        assert!(fault["component_back_us"].as_f64().is_some(), "{fault}");
        assert_eq!(fault["lost_writes"], 0, "{fault}");
    }
    // A failing plugin costs the rest of the node nothing.
    assert_eq!(figure(&results, "errors"), 0.0, "{}", results["figures"]);
    assert_eq!(figure(&results, "lost_writes"), 0.0);
}

#[test]
fn bench_run_sustained_holds_an_open_loop_and_reports_the_memory_slope() {
    let home = PrivateHome::new();
    let out = home.path().join("sustained");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "sustained",
            "--rate",
            "100",
            "--duration",
            "1.5",
            "--warmup",
            "0.3",
            "--connections",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["profile"], "sustained");
    assert_eq!(results["config"]["loop"], "open");
    let slope = figure(&results, "node_rss_slope_bytes_per_sec");
    // Flat within what a node's allocator does in a second and a half: under 64 MiB/s either way.
    assert!(slope.abs() < 64.0 * 1024.0 * 1024.0, "{slope} bytes/s");
    assert_eq!(figure(&results, "errors"), 0.0);
}

#[test]
fn bench_run_stress_ramps_until_the_slo_breaks_and_reports_the_knee() {
    let home = PrivateHome::new();
    let out = home.path().join("stress");
    // An SLO no stage can hold past the first few: a p99 of 1 µs breaks at once, so the ramp
    // ends on its first stage with no knee.
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "stress",
            "--rate",
            "200",
            "--ramp",
            "2",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
            "--connections",
            "2",
            "--slo-p99-us",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    let stages = results["repeats"][0]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert_eq!(stages[0]["held"], false);
    assert_eq!(stages[0]["rate_per_sec"], 200.0);
    assert_eq!(figure(&results, "knee_calls_per_sec"), 0.0);

    // A generous SLO and three stages at most: 200 and 800/s hold it (3,200/s as well, or it is
    // where the node cannot answer 95% of the rate);
    // each held stage answered its rate, and the knee is the last of them.
    let out = home.path().join("stress-generous");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "stress",
            "--rate",
            "200",
            "--ramp",
            "4",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
            "--connections",
            "2",
            "--slo-p99-us",
            "5000000",
            "--max-stages",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    let stages = results["repeats"][0]["stages"].as_array().unwrap();
    let held: Vec<&Value> = stages.iter().filter(|s| s["held"] == true).collect();
    assert!(held.len() >= 2 && stages.len() <= 3, "{stages:?}");
    for (i, stage) in stages.iter().enumerate().skip(1) {
        let ratio = stage["rate_per_sec"].as_f64().unwrap()
            / stages[i - 1]["rate_per_sec"].as_f64().unwrap();
        assert!((ratio - 4.0).abs() < 1e-9, "{stages:?}");
    }
    let last_held = held.last().unwrap();
    assert_eq!(
        figure(&results, "knee_calls_per_sec"),
        last_held["calls_per_sec"].as_f64().unwrap()
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("id=\"stress-p99\""));
}

/// `bench run --profile PROFILE` for a second over two connections, closed loop then open loop
/// at 200/s, each run's results (and its output folder) checked by `also`: no error, answers in
/// closed loop, 180–220 answers a second in open loop.
fn closed_then_open(profile: &str, also: impl Fn(&Value, &Path)) {
    let home = PrivateHome::new();
    for (name, rate) in [("closed", None), ("open", Some("200"))] {
        let out = home.path().join(format!("{profile}-{name}"));
        let mut args = vec![
            "run",
            "--profile",
            profile,
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(rate) = rate {
            args.extend(["--rate", rate]);
        }
        let (code, stdout, stderr) = bench(&home, &args);
        assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
        let results = read_json(&out.join("results.json"));
        assert_eq!(results["profile"], profile);
        assert_eq!(figure(&results, "errors"), 0.0);
        let calls = figure(&results, "calls_per_sec");
        match rate {
            None => assert!(calls > 0.0),
            Some(_) => assert!((180.0..=220.0).contains(&calls), "{calls} calls/s at 200"),
        }
        also(&results, &out);
    }
}

#[test]
fn bench_run_ws_drives_websocket_sessions_closed_and_open_loop() {
    closed_then_open("ws", |_, _| {});
}

/// Processes of this user whose environment says `HOME=home`.
fn processes_at_home(home: &Path) -> Vec<String> {
    let wanted = format!("HOME={}", home.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
        {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn bench_run_stdio_drives_a_node_per_connection_over_its_pipes_and_stops_them_all() {
    closed_then_open("stdio", |results, out| {
        assert_eq!(results["config"]["node"], "a child per connection");
        // The nodes' home is gone, and no node outlived the run.
        let stdio_home = out.join("stdio-home");
        assert!(!stdio_home.exists(), "{} left behind", stdio_home.display());
        let canonical = out.canonicalize().unwrap().join("stdio-home");
        let left = processes_at_home(&canonical);
        assert!(left.is_empty(), "stdio nodes left running: pids {left:?}");
    });
    let home = PrivateHome::new();
    let out = home.path().join("stdio-target");
    let (code, _, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "stdio",
            "--target",
            "127.0.0.1:9",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("takes no --target"), "{stderr}");
}

#[test]
fn bench_run_integration_times_every_step_of_whole_mcp_flows() {
    let home = PrivateHome::new();
    let out = home.path().join("integration");
    let (code, stdout, stderr) = bench(
        &home,
        &[
            "run",
            "--profile",
            "integration",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["profile"], "integration");
    assert_eq!(figure(&results, "errors"), 0.0);
    assert!(figure(&results, "calls_per_sec") > 0.0);
    for step in [
        "connect",
        "initialize",
        "tools_list",
        "call_with_progress",
        "sampling_round_trip",
        "subscribe",
        "cancel",
    ] {
        assert!(figure(&results, &format!("{step}_count")) > 0.0, "{step}");
        assert_eq!(figure(&results, &format!("{step}_errors")), 0.0, "{step}");
        let (p50, p99) = (
            figure(&results, &format!("{step}_p50_us")),
            figure(&results, &format!("{step}_p99_us")),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{step}: p50 {p50} p99 {p99}");
    }
}

#[test]
fn bench_run_chaos_injects_latency_cpu_and_memory_stress_and_reports_when_each_ended() {
    let home = PrivateHome::new();
    let out = home.path().join("chaos-stress");
    let (results, _, _) = chaos(
        &home,
        &out,
        &[
            "--faults",
            "latency=30,cpu=200,memory=32,bogus=1",
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
    let faults = results["repeats"][0]["faults"].as_array().unwrap();
    let names: Vec<&str> = faults
        .iter()
        .map(|f| f["actor"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["latency=30", "cpu=200", "memory=32", "bogus=1"]);
    for fault in &faults[..3] {
        assert!(fault["error"].is_null(), "{fault}");
        // The node said the stress ended, by itself, within the run.
        let ended = fault["component_back_us"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}"));
        assert!(ended > 0.0 && ended < 10_000_000.0, "{fault}");
    }
    let bogus = faults[3]["error"].as_str().unwrap_or_default();
    assert!(bogus.contains("unknown fault kind"), "{}", faults[3]);
    // The injected latency reached the calls: the slowest waited at least its 30 ms.
    assert!(
        figure(&results, "max_us") >= 30_000.0,
        "{}",
        results["figures"]
    );
    // Slowed, never lost.
    assert_eq!(figure(&results, "errors"), 0.0);
}

#[test]
fn bench_run_scale_opens_idle_sessions_on_each_transport_and_reports_memory_per_connection() {
    let home = PrivateHome::new();
    for transport in ["tcp", "ws", "http"] {
        let out = home.path().join(format!("scale-{transport}"));
        let (code, stdout, stderr) = bench(
            &home,
            &[
                "run",
                "--profile",
                "scale",
                "--transport",
                transport,
                "--connections",
                "200",
                "--duration",
                "0.2",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(
            stdout.contains("200 connections open (0 failed)"),
            "{stdout}"
        );
        let results = read_json(&out.join("results.json"));
        assert_eq!(results["config"]["transport"], transport);
        assert_eq!(figure(&results, "connections_opened"), 200.0);
        // The node holds a descriptor for each (its listener and others besides).
        let fds = figure(&results, "node_fds_after") - figure(&results, "node_fds_before");
        assert!(
            fds >= 200.0,
            "{transport}: {fds} more descriptors for 200 connections"
        );
        assert!(figure(&results, "node_rss_per_connection_bytes") > 0.0);
    }
}
