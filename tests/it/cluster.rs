//! A cluster of real `erlmcp start` processes on loopback (docs/cluster.md): three nodes joining
//! through one seed each see the other two (`erlmcp remote nodes --json`) and place keys on the
//! same member; a fourth with
//! another cookie is refused, and both sides log it; a node that hangs (SIGSTOP) is cut off by
//! the others' heartbeat within [`SILENCE_BOUND`] and rejoins when it resumes; a node killed with
//! SIGKILL is seen as gone by the others within [`DEPARTURE_BOUND`]; sessions made through one
//! node are served through the others, and by their new owner once their own is killed. Tasks
//! and broadcasts: cluster_tasks_and_broadcasts.rs; rolling plugin loads:
//! cluster_plugins_roll.rs. Every process is stopped when its `Node` drops.

use crate::support::cluster::*;

use serde_json::Value;
use std::time::{Duration, Instant};

/// Echo calls timed through the owner and through another node.
const FORWARD_SAMPLES: i64 = 200;

#[test]
fn three_nodes_join_through_one_seed_refuse_another_cookie_and_see_a_sigkill() {
    let ports = free_ports(4);
    let a = start("a", ports[0], None, COOKIE);
    let b = start("b", ports[1], Some(ports[0]), COOKIE);
    let mut c = start("c", ports[2], Some(ports[0]), COOKIE);
    let names = ["a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"];

    // Each sees the other two up (b and c met through a: ractor_cluster's transitive join).
    for (node, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        wait_members(&remote(node, name), JOIN_BOUND, "3 up", |members| {
            names
                .iter()
                .all(|n| matches!(state_of(members, n), Some("up" | "self")))
        });
    }
    let data = remote(&a, "a").eval_json("nodes");
    assert_eq!(data["node"], "a@127.0.0.1");
    assert_eq!(data["up"], 3);
    let share: f64 = data["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["ring_share"].as_f64())
        .sum();
    assert!((share - 1.0).abs() < 1e-6, "ring shares sum to {share}");
    // Each member's load arrives with its heartbeat (every second).
    let asked_since = Instant::now();
    loop {
        let data = remote(&a, "a").eval_json("nodes");
        let rows = data["members"].as_array().cloned().unwrap_or_default();
        if rows.len() == 3
            && rows
                .iter()
                .all(|m| m["connections"].is_u64() && m["in_flight"].is_u64())
        {
            break;
        }
        assert!(
            asked_since.elapsed() < JOIN_BOUND,
            "no load from every member: {data}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every node places a key on the same member (one ring, computed on each), and the tree of a
    // clustered node has the cluster's supervisor.
    for key in ["s-1", "session-42", "0123456789abcdef"] {
        let owners: Vec<Value> = [(&a, "a"), (&b, "b"), (&c, "c")]
            .into_iter()
            .map(|(node, name)| {
                remote(node, name).eval_json(&format!("nodes owner {key}"))["owner"].clone()
            })
            .collect();
        assert!(owners[0].is_string(), "{owners:?}");
        assert!(owners.iter().all(|o| *o == owners[0]), "{key}: {owners:?}");
    }
    let tree = remote(&a, "a").eval_json("tree").to_string();
    for child in [
        "erlmcp_cluster_sup",
        "erlmcp_cluster_node",
        "erlmcp_cluster_members",
        "erlmcp_cluster_heartbeat",
        "erlmcp_cluster_broadcast",
        "erlmcp_cluster_plugins",
        "erlmcp_cluster_admin",
    ] {
        assert!(tree.contains(child), "{child} not in the tree: {tree}");
    }

    // The shell reaches the other members through the cluster: one command on b from a's
    // shell, one on every member; what cannot be run there is refused with the reason.
    let on_a = remote(&a, "a");
    let b_tree = on_a.eval_json("on b@127.0.0.1 tree").to_string();
    assert!(b_tree.contains("erlmcp_cluster_sup"), "{b_tree}");
    let every = on_a.eval_json("all nodes");
    let answered: Vec<&str> = every
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(answered, names, "{every}");
    for each in every.as_array().unwrap() {
        assert_eq!(
            each["data"]["node"], each["node"],
            "each member answered itself: {each}"
        );
    }
    // `metrics --all` is `all metrics`; `tree --node b` is b's tree.
    let metrics_all = on_a.eval_json("metrics --all");
    let answered: Vec<&str> = metrics_all
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(answered, names, "{metrics_all}");
    let b_tree = on_a.eval_json("tree --node b@127.0.0.1").to_string();
    assert!(b_tree.contains("erlmcp_cluster_sup"), "{b_tree}");
    for (command, why) in [
        ("on b@127.0.0.1 top", "not run across the cluster"),
        (
            "on nobody@127.0.0.1 tree",
            "no admin of node nobody@127.0.0.1",
        ),
        ("on b@127.0.0.1", "usage: on NODE"),
        // The views' own flags: `--node` goes through `on`, and no line hops twice.
        (
            "tree --node nobody@127.0.0.1",
            "no admin of node nobody@127.0.0.1",
        ),
        ("tree --node", "usage: tree … --node NAME"),
        ("on b@127.0.0.1 metrics --all", "not run across the cluster"),
    ] {
        let out = on_a.eval(command, false);
        let said = crate::support::remote::text(&out);
        assert!(
            !out.status.success() && said.contains(why),
            "{command}: {said}"
        );
    }

    // `top` across the cluster: one row per member, this node first, each from that member's own
    // sample; and another member's own view, asked for at every interval of this one.
    let top = on_a.eval_json("top 1 --all");
    let rows: Vec<&str> = top["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in top --all: {top}"))
        .iter()
        .map(|m| m["node"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(rows, names, "{top}");
    for row in top["members"].as_array().unwrap() {
        assert_eq!(row["ok"], true, "{row}");
        assert!(row["sample"]["rss_bytes"].as_u64() > Some(0), "{row}");
    }
    let total_rss = top["total"]["rss_bytes"].as_u64().unwrap_or_default();
    let each_rss: u64 = top["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["sample"]["rss_bytes"].as_u64())
        .sum();
    assert_eq!(total_rss, each_rss, "{top}");
    let b_top = on_a.eval("top 1 --node b@127.0.0.1", false);
    assert!(
        String::from_utf8_lossy(&b_top.stdout).starts_with("erlmcp b "),
        "b's own view: {}",
        crate::support::remote::text(&b_top)
    );

    // `erlmcp remote --node NAME` for a member with no socket here (as on another host): reached
    // through the local node's cluster (the configuration's node_name), `on`/`top --node` made
    // for the user; a name that is not a member is refused, naming both reasons.
    let local_config = a.home().join("local-node.toml");
    std::fs::write(&local_config, "node_name = \"a\"\n").unwrap();
    let config_arg = local_config.to_str().unwrap();
    let through_a = |node: &str, command: &str| {
        let mut remote = remote(&a, "a");
        remote.node = node.to_owned();
        remote.run(
            COOKIE,
            &[
                "remote", "--config", config_arg, "--json", "--eval", command,
            ],
        )
    };
    let c_nodes = through_a("c@127.0.0.1", "nodes");
    let said = crate::support::remote::text(&c_nodes);
    assert!(c_nodes.status.success(), "{said}");
    let reply: Value = serde_json::from_str(
        String::from_utf8_lossy(&c_nodes.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply["data"]["node"], "c@127.0.0.1", "c answered: {reply}");
    assert!(
        said.contains("reaching it through the cluster of local node `a`"),
        "{said}"
    );
    let c_top = through_a("c@127.0.0.1", "top 1");
    assert!(
        c_top.status.success(),
        "{}",
        crate::support::remote::text(&c_top)
    );
    let c_trace = through_a("c@127.0.0.1", "trace *");
    assert!(
        !c_trace.status.success()
            && crate::support::remote::text(&c_trace).contains("not run through another member"),
        "{}",
        crate::support::remote::text(&c_trace)
    );
    let stranger = through_a("nobody@127.0.0.1", "nodes");
    let said = crate::support::remote::text(&stranger);
    assert!(
        !stranger.status.success()
            && said.contains("nobody@127.0.0.1")
            && said.contains("nor is it a member of local node `a`'s cluster"),
        "{said}"
    );

    // A fourth node with another cookie: refused, logged on both sides, never a member.
    let mut a = a;
    let mut d = start("d", ports[3], Some(ports[0]), "another-cookie");
    let refused = a.wait_log("cluster: refused node d@127.0.0.1");
    assert!(refused.contains("WARN"), "{refused}");
    let refused_by = d.wait_log("cluster: refused by node a@127.0.0.1");
    assert!(refused_by.contains("WARN"), "{refused_by}");
    for (node, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        let members = members(&remote(node, name));
        assert_eq!(
            state_of(&members, "d@127.0.0.1"),
            None,
            "{name}: {members:?}"
        );
    }
    drop(d);

    // c hangs (SIGSTOP): its connections stay open, only the heartbeat can tell. a and b cut it
    // off; once resumed, it is back up.
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&c.child), Signal::STOP).unwrap();
    let stopped_at = Instant::now();
    for (node, name) in [(&a, "a"), (&b, "b")] {
        wait_members(&remote(node, name), SILENCE_BOUND, "c down", |members| {
            state_of(members, "c@127.0.0.1") == Some("down")
        });
    }
    eprintln!(
        "a hung node was listed as down by both others within {:?}",
        stopped_at.elapsed()
    );
    let cut = a.wait_log("cluster: node c@127.0.0.1 not heard from");
    assert!(cut.contains("WARN"), "{cut}");
    kill_process(Pid::from_child(&c.child), Signal::CONT).unwrap();
    for (node, name) in [(&a, "a"), (&b, "b")] {
        wait_members(&remote(node, name), JOIN_BOUND, "c up again", |members| {
            state_of(members, "c@127.0.0.1") == Some("up")
        });
    }

    // c killed with SIGKILL: a and b list it as down within the bound, and log its departure.
    c.child.kill().unwrap();
    let killed_at = Instant::now();
    let _ = c.child.wait();
    for (node, name) in [(&a, "a"), (&b, "b")] {
        wait_members(&remote(node, name), DEPARTURE_BOUND, "c down", |members| {
            state_of(members, "c@127.0.0.1") == Some("down")
        });
    }
    let seen_within = killed_at.elapsed();
    assert!(seen_within < DEPARTURE_BOUND, "{seen_within:?}");
    // The figure docs/cluster.md quotes (`cargo test --test it cluster -- --nocapture`).
    eprintln!("a SIGKILLed node was listed as down by both others within {seen_within:?}");
    let left = a.wait_log("cluster: node c@127.0.0.1 left");
    assert!(left.contains("WARN"), "{left}");
    let data: Value = remote(&b, "b").eval_json("nodes");
    assert_eq!(data["up"], 2, "{data}");
}

/// Sessions through any node (docs/cluster.md): a session made through a is owned by a on every
/// node's ring, used through b and c (a JSON answer, and an SSE answer buffered by the owner),
/// ended through c; once a is killed, a request for its session through b gets a clear error.
#[test]
fn a_session_made_through_one_node_is_served_through_the_others_until_its_owner_dies() {
    use crate::support::http;
    let ports = free_ports(3);
    // A short forward deadline: a hung owner is waited for 1 s.
    let config = Some("[cluster]\nforward_timeout = 1000\n");
    let mut a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    let c = start_with("c", ports[2], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b"), (&c, "c")]);
    let (a_http, b_http, c_http) = (a.http.unwrap(), b.http.unwrap(), c.http.unwrap());

    // Made through a: the ring of every node names a as its owner.
    let session = http::initialize(a_http);
    for (node, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        let owner =
            remote(node, name).eval_json(&format!("nodes owner {session}"))["owner"].clone();
        assert_eq!(owner, "a@127.0.0.1", "{name}");
    }

    // Through b: a JSON answer; through c: an SSE answer (progress, then the result).
    let through_b = http::post(b_http, Some(&session), &echo_call(7, "via b", false), &[]);
    assert_eq!(through_b.status, 200, "{}", through_b.text());
    assert_eq!(through_b.header("mcp-session-id"), Some(session.as_str()));
    let answer = rpc_answer(&through_b);
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "via b", "{answer}");
    let through_c = http::post(c_http, Some(&session), &echo_call(8, "via c", true), &[]);
    assert_eq!(through_c.status, 200, "{}", through_c.text());
    assert!(
        through_c
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{through_c:?}"
    );
    let messages = through_c.sse_messages();
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{messages:?}"
    );
    let answer = rpc_answer(&through_c);
    assert_eq!(answer["id"], 8, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "via c", "{answer}");
    // An id no node made: the owner says it does not know it, as a single node would.
    let unknown = http::post(
        b_http,
        Some("0123456789abcdef0123456789abcdef"),
        &echo_call(9, "x", false),
        &[],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // Ended through c: a no longer knows it.
    let deleted = http::request(
        c_http,
        "DELETE",
        &[("mcp-session-id", session.as_str())],
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let after = http::post(a_http, Some(&session), &echo_call(10, "gone", false), &[]);
    assert_eq!(after.status, 404, "{}", after.text());

    // The cost of a forward (the figure in docs/cluster.md; a debug build, one request per
    // connection): echo calls through the owner and through a non-owner, alternating.
    let session = http::initialize(a_http);
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for i in 0..FORWARD_SAMPLES {
        for (addr, times) in [(a_http, &mut direct), (b_http, &mut forwarded)] {
            let started = Instant::now();
            let reply = http::post(addr, Some(&session), &echo_call(100 + i, "t", false), &[]);
            times.push(started.elapsed());
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    }
    let quantile = |times: &mut Vec<Duration>, q: f64| {
        times.sort();
        times[((times.len() - 1) as f64 * q) as usize]
    };
    eprintln!(
        "{FORWARD_SAMPLES} echo calls: through the owner p50 {:?} p99 {:?}; through another node p50 {:?} p99 {:?}",
        quantile(&mut direct, 0.5),
        quantile(&mut direct, 0.99),
        quantile(&mut forwarded, 0.5),
        quantile(&mut forwarded, 0.99),
    );

    // a hung (SIGSTOP) for less than the heartbeat's timeout: still on the ring, so b forwards
    // to it and answers 504 with a JSON-RPC error at the deadline; resumed, it answers again.
    let session = http::initialize(a_http);
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&a.child), Signal::STOP).unwrap();
    wait_stopped(a.child.id());
    let hung_at = Instant::now();
    let hung = http::post(b_http, Some(&session), &echo_call(20, "hung", false), &[]);
    let waited = hung_at.elapsed();
    kill_process(Pid::from_child(&a.child), Signal::CONT).unwrap();
    assert_eq!(hung.status, 504, "after {waited:?}: {}", hung.text());
    assert_eq!(hung.json()["error"]["code"], -32000, "{}", hung.text());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    eprintln!("a hung owner: b answered 504 after {waited:?}");
    let resumed = http::post(
        b_http,
        Some(&session),
        &echo_call(21, "resumed", false),
        &[],
    );
    assert_eq!(rpc_answer(&resumed)["id"], 21, "{}", resumed.text());

    // A session whose initialize was answered the moment before a is killed: its record was on
    // its replica before the answer went out.
    let last_moment = http::initialize(a_http);
    let before = http::post(b_http, Some(&session), &echo_call(11, "before", false), &[]);
    assert_eq!(rpc_answer(&before)["id"], 11, "{}", before.text());
    a.child.kill().unwrap();
    let _ = a.child.wait();

    // a killed: its sessions are taken over from their replicas by their new owners on the
    // ring, through any node. Until b's ring drops a (milliseconds), a request may get a clear
    // error (a JSON-RPC body), never a hang.
    let killed_at = Instant::now();
    for (n, id) in [&session, &last_moment].into_iter().enumerate() {
        let text = format!("after {n}");
        let mut errors = Vec::new();
        let served = loop {
            let body = echo_call(12, &text, false).to_string();
            let reply = http::request(
                b_http,
                "POST",
                &[http::JSON, http::ACCEPT, ("mcp-session-id", id.as_str())],
                body.as_bytes(),
                Duration::from_secs(15),
            );
            if reply.status == 200 {
                break reply;
            }
            assert!(
                [404, 502, 503, 504].contains(&reply.status),
                "{}: {}",
                reply.status,
                reply.text()
            );
            assert!(
                reply.json()["error"]["message"].is_string(),
                "{}",
                reply.text()
            );
            errors.push(reply.status);
            assert!(
                killed_at.elapsed() < DEPARTURE_BOUND,
                "session {n} not taken over within {DEPARTURE_BOUND:?}: {errors:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let answer = rpc_answer(&served);
        assert_eq!(answer["result"]["content"][0]["text"], text, "{answer}");
        // Through c too: one owner serves it, whichever node the request reaches.
        let through_c = http::post(c_http, Some(id), &echo_call(13, "and c", false), &[]);
        assert_eq!(through_c.status, 200, "{}", through_c.text());
        assert_eq!(
            rpc_answer(&through_c)["result"]["content"][0]["text"],
            "and c"
        );
        eprintln!(
            "after a SIGKILL of the owner, session {n} was served through b {:?} after the kill (errors before: {errors:?})",
            killed_at.elapsed()
        );
    }
}
