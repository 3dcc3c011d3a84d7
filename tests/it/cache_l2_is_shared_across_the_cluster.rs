//! The clustered L2 (docs/cache.md, "L2 across the cluster"), black-box: three `erlmcp start`
//! processes on loopback. Calls of the cached demo tool `echo_cached` through a fill L2 on each
//! key's owner (every key held by exactly one node); the same calls through b, in a session of
//! its own, are L2 hits — from b's own share for the keys b owns, from the owner (an RPC) for
//! the others, which `remote cache` counts as remote hits. An owner that hangs (SIGSTOP) costs
//! b's gets of its keys `cache.l2_timeout` each (counted timeouts), and the calls answer. Then an
//! owner is killed: the calls
//! of its keys through b still answer (misses, computed again), none with an error or a hang.
//! Every process is stopped when its `Node` drops.

use crate::support::cluster::{
    COOKIE, DEPARTURE_BOUND, free_ports, remote, rpc_answer, start_with, state_of, wait_all_up,
    wait_members, wait_stopped,
};
use crate::support::http;
use crate::support::node::Node;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Distinct calls per round: with three members each owns some of them (the ring is fixed by
/// the names, so this is deterministic).
const CALLS: usize = 12;

fn cached_call(id: usize, text: &str) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo_cached", "arguments": {"text": text}}})
}

/// Calls `echo_cached {text}` through `addr` in `session`; checks the answer; how long it took.
fn call(addr: SocketAddr, session: &str, id: usize, text: &str) -> Duration {
    let started = Instant::now();
    let reply = http::post(addr, Some(session), &cached_call(id, text), &[]);
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{text}: {}", reply.text());
    let answer = rpc_answer(&reply);
    assert_eq!(
        answer["result"]["content"][0]["text"], text,
        "{text}: {answer}"
    );
    took
}

/// The L2 row of `cache --json` on `node`.
fn l2(node: &Node, name: &str) -> Value {
    let tiers = remote(node, name).eval_json("cache");
    tiers
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["tier"] == "l2"))
        .cloned()
        .unwrap_or_else(|| panic!("{name}: no L2 row in {tiers}"))
}

fn count(row: &Value, path: &[&str]) -> u64 {
    let mut at = row;
    for step in path {
        at = &at[*step];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path:?} not a count in {row}"))
}

/// Polls until the L2 entries held on the three nodes sum to `want` (puts to another owner are
/// casts: they arrive shortly after the answer); each node's count.
fn wait_held(nodes: [(&Node, &str); 3], want: u64) -> [u64; 3] {
    let started = Instant::now();
    loop {
        let held = nodes.map(|(node, name)| count(&l2(node, name), &["entries"]));
        if held.iter().sum::<u64>() == want {
            return held;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "L2 entries {held:?}, not {want} in all"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[test]
fn a_result_cached_through_one_node_is_an_l2_hit_through_another_and_a_dead_owner_is_a_miss() {
    let ports = free_ports(3);
    // No disk tier: every hit below L1 is L2's.
    let config = Some("[cache]\nl3_max_bytes = 0\n");
    let a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    let c = start_with("c", ports[2], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b"), (&c, "c")]);
    let (a_http, b_http, c_http) = (a.http.unwrap(), b.http.unwrap(), c.http.unwrap());
    let tree = remote(&a, "a").eval_json("tree").to_string();
    assert!(tree.contains("erlmcp_cache_l2"), "{tree}");

    // Through a: each answer goes to its key's owner's L2, one owner per key.
    let on_a = http::initialize(a_http);
    for i in 0..CALLS {
        call(a_http, &on_a, i, &format!("t{i}"));
    }
    let held = wait_held([(&a, "a"), (&b, "b"), (&c, "c")], CALLS as u64);
    let owned_by_b = held[1];
    assert!(
        owned_by_b < CALLS as u64,
        "some keys are owned by another node than b: {held:?}"
    );

    // Through b, in a session b made (served on b, not forwarded): every call is an L2 hit,
    // from b's share or from the owner.
    let before = l2(&b, "b");
    let on_b = http::initialize(b_http);
    let mut from_l2 = Vec::new();
    for i in 0..CALLS {
        from_l2.push(call(b_http, &on_b, 100 + i, &format!("t{i}")));
    }
    let after = l2(&b, "b");
    let hits = count(&after, &["hits"]) - count(&before, &["hits"]);
    let remote_hits = count(&after, &["remote", "hits"]) - count(&before, &["remote", "hits"]);
    assert_eq!(hits, CALLS as u64, "every call an L2 hit on b: {after}");
    assert_eq!(
        remote_hits,
        CALLS as u64 - owned_by_b,
        "the keys b does not own came from their owners: {after}"
    );
    assert_eq!(count(&after, &["remote", "timeouts"]), 0, "{after}");
    // The same calls again: L1 hits on b now (the figure beside the L2 hits, docs/cache.md).
    let mut from_l1 = Vec::new();
    for i in 0..CALLS {
        from_l1.push(call(b_http, &on_b, 200 + i, &format!("t{i}")));
    }
    eprintln!(
        "echo_cached through b, {CALLS} calls, whole HTTP request (debug build): L2 hits (owner's share, {remote_hits} remote) p50 {:?}; L1 hits p50 {:?}; a remote hit waited {} µs on average",
        median(from_l2),
        median(from_l1),
        count(&after, &["remote", "mean_wait_us"]),
    );
    assert_eq!(
        count(&l2(&b, "b"), &["hits"]),
        count(&after, &["hits"]),
        "L1 answered"
    );

    // The owner of the most keys besides b hangs, then is killed; the other fills new keys first:
    // `v…` for the hang, `u…` for the kill.
    let (victim, filler) = if held[2] >= held[0] {
        ((c, "c"), (a, "a", a_http))
    } else {
        ((a, "a"), (c, "c", c_http))
    };
    let (mut victim, victim_name) = victim;
    let (filler, filler_name, filler_http) = filler;
    let on_filler = http::initialize(filler_http);
    for i in 0..CALLS {
        call(filler_http, &on_filler, 300 + i, &format!("u{i}"));
        call(filler_http, &on_filler, 350 + i, &format!("v{i}"));
    }
    let nodes = if victim_name == "c" {
        [(&filler, filler_name), (&b, "b"), (&victim, victim_name)]
    } else {
        [(&victim, victim_name), (&b, "b"), (&filler, filler_name)]
    };
    let held = wait_held(nodes, 3 * CALLS as u64);
    let victim_index = if victim_name == "c" { 2 } else { 0 };
    assert!(held[victim_index] > 0, "{held:?}");

    // Hung (SIGSTOP, shorter than the heartbeat's timeout: still on b's ring): b waits
    // `cache.l2_timeout` (20 ms) for each of its keys, counts a timeout, and computes the answer.
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&victim.child), Signal::STOP).unwrap();
    wait_stopped(victim.child.id());
    let before = l2(&b, "b");
    let hung_at = Instant::now();
    for i in 0..CALLS {
        let took = call(b_http, &on_b, 450 + i, &format!("v{i}"));
        assert!(took < Duration::from_secs(1), "v{i} took {took:?}");
    }
    let hung_for = hung_at.elapsed();
    let after = l2(&b, "b");
    kill_process(Pid::from_child(&victim.child), Signal::CONT).unwrap();
    let timeouts = count(&after, &["remote", "timeouts"]) - count(&before, &["remote", "timeouts"]);
    assert!(timeouts > 0, "a hung owner's keys time out: {after}");
    eprintln!(
        "{CALLS} calls through b while the owner of {timeouts} of their keys hung: {hung_for:?} in all"
    );

    victim.child.kill().unwrap();
    let _ = victim.child.wait();
    let killed_at = Instant::now();

    // Through b at once, while b may still place keys on the dead owner: every call answers
    // (computed again), none hangs.
    let before = l2(&b, "b");
    for i in 0..CALLS {
        let took = call(b_http, &on_b, 400 + i, &format!("u{i}"));
        assert!(took < Duration::from_secs(2), "u{i} took {took:?}");
    }
    let after = l2(&b, "b");
    let misses = count(&after, &["misses"]) - count(&before, &["misses"]);
    assert!(misses > 0, "the dead owner's keys are misses: {after}");
    assert!(
        killed_at.elapsed() < DEPARTURE_BOUND,
        "{CALLS} calls after the kill took {:?}",
        killed_at.elapsed()
    );
    wait_members(
        &remote(&b, "b"),
        DEPARTURE_BOUND,
        "victim down",
        |members| state_of(members, &format!("{victim_name}@127.0.0.1")) == Some("down"),
    );
    // The keys computed again are cached again, on the owners that remain.
    for i in 0..CALLS {
        call(b_http, &on_b, 500 + i, &format!("u{i}"));
    }
}
