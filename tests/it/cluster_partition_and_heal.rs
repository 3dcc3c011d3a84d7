//! A network partition between two cluster nodes, and its heal (docs/cluster.md, "Partitions"):
//! each node advertises a TCP proxy the test controls (`cluster.advertise`), so every connection
//! between them passes through one; cutting both proxies closes the link and refuses new
//! connections, healing them lets the nodes' dials through again. During the cut each side lists
//! the other down, owns the whole ring, serves its own sessions and takes the other side's over
//! from its replicas (two copies: split brain); after the heal the rings agree, each session is
//! handed back to its ring owner (the copy the other side changed wins), and every session —
//! one made during the cut too — is served through either node. A link that stops carrying
//! bytes without closing (the proxies stall) is cut by the heartbeat, and heals alike; so does a
//! minority of one cut off from two (the proxies cut only the connections it opens); with
//! `cluster.quorum = 2` that minority refuses every session request (503) while the majority
//! serves its sessions, and serves again after the heal. Also: a
//! replica whose owner left and that nobody asked for is dropped after `http.session_timeout`;
//! an owner that comes back from a crash gets its session back with the changes made while it
//! was gone. Every node and proxy is stopped when it drops.

use crate::support::cluster::*;
use crate::support::http;
use crate::support::node::Node;
use crate::support::proxy::Proxy;
use crate::support::remote::Remote;

use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long after the heal every session must be held by one node only (the handoff follows
/// the ring change within a quarter second).
const CONVERGE_BOUND: Duration = Duration::from_secs(10);

/// Entries of the store table `table` on a node (`store --json`).
fn entries(remote: &Remote<'_>, table: &str) -> u64 {
    let stats = remote.eval_json("store");
    stats["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t["name"] == table))
        .and_then(|t| t["entries"].as_u64())
        .unwrap_or(0)
}

/// Polls `what` until it holds, within `bound`.
fn wait_until(bound: Duration, what: &str, mut holds: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !holds() {
        assert!(start.elapsed() < bound, "not {what} within {bound:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// An echo call in `session` through `addr`: its text, asserted 200.
fn echo(addr: SocketAddr, session: &str, id: i64, text: &str) {
    let reply = http::post(addr, Some(session), &echo_call(id, text, false), &[]);
    assert_eq!(reply.status, 200, "{addr} {session}: {}", reply.text());
    let answer = rpc_answer(&reply);
    assert_eq!(
        answer["result"]["content"][0]["text"], text,
        "{addr}: {answer}"
    );
}

/// The member `nodes owner KEY` names on a node.
fn owner(remote: &Remote<'_>, key: &str) -> Value {
    remote.eval_json(&format!("nodes owner {key}"))["owner"].clone()
}

/// A clustered node whose peers reach it only through `proxy`.
fn behind(proxy: &Proxy, name: &str, port: u16, seed: Option<u16>) -> Node {
    behind_with(proxy, name, port, seed, "")
}

/// [`behind`], with more `[cluster]` keys.
fn behind_with(proxy: &Proxy, name: &str, port: u16, seed: Option<u16>, more: &str) -> Node {
    let config = format!(
        "[cluster]\nadvertise = \"{}\"\nreconnect_interval = 200\n{more}",
        proxy.addr()
    );
    start_with(name, port, seed, COOKIE, Some(&config))
}

#[test]
fn a_partition_keeps_each_side_serving_and_the_heal_leaves_one_copy_of_each_session() {
    let ports = free_ports(2);
    let to = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (proxy_a, proxy_b) = (Proxy::start(to(ports[0])), Proxy::start(to(ports[1])));
    let a = behind(&proxy_a, "a", ports[0], None);
    // b joins through a's proxy; a dials b at the address b advertises: b's proxy.
    let b = behind(&proxy_b, "b", ports[1], Some(proxy_a.port));
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let (on_a, on_b) = (remote(&a, "a"), remote(&b, "b"));
    let (a_http, b_http) = (a.http.unwrap(), b.http.unwrap());
    // Each lists the other at its advertised address (its proxy), not where it listens.
    let address_of = |remote: &Remote<'_>, name: &str| -> Value {
        let data = remote.eval_json("nodes");
        data["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == name))
            .map(|m| m["address"].clone())
            .unwrap_or_default()
    };
    assert_eq!(address_of(&on_b, "a@127.0.0.1"), proxy_a.addr().as_str());
    assert_eq!(address_of(&on_a, "b@127.0.0.1"), proxy_b.addr().as_str());
    assert_eq!(address_of(&on_a, "a@127.0.0.1"), proxy_a.addr().as_str());

    // A session of each side, used through the other (forwarded through the proxies).
    let of_a = http::initialize(a_http);
    let of_b = http::initialize(b_http);
    assert_eq!(owner(&on_b, &of_a), "a@127.0.0.1");
    assert_eq!(owner(&on_a, &of_b), "b@127.0.0.1");
    echo(b_http, &of_a, 1, "a's through b");
    echo(a_http, &of_b, 2, "b's through a");
    // Their records reached their replicas (each node keeps the other's).
    wait_until(Duration::from_secs(5), "replicated", || {
        entries(&on_a, "http_sessions_replica") == 1 && entries(&on_b, "http_sessions_replica") == 1
    });

    // The cut: both sides see the other down at once (their connections closed).
    proxy_a.cut();
    proxy_b.cut();
    let cut_at = Instant::now();
    wait_members(&on_a, DEPARTURE_BOUND, "b down", |m| {
        state_of(m, "b@127.0.0.1") == Some("down")
    });
    wait_members(&on_b, DEPARTURE_BOUND, "a down", |m| {
        state_of(m, "a@127.0.0.1") == Some("down")
    });
    eprintln!(
        "cut: each side listed the other down within {:?}",
        cut_at.elapsed()
    );
    // Each side's ring holds itself only: it owns every key.
    for (remote, me) in [(&on_a, "a@127.0.0.1"), (&on_b, "b@127.0.0.1")] {
        let data = remote.eval_json("nodes");
        assert_eq!(data["up"], 1, "{data}");
        for key in [&of_a, &of_b] {
            assert_eq!(owner(remote, key), me);
        }
    }
    // Each side serves its own sessions...
    echo(a_http, &of_a, 3, "a's on a");
    echo(b_http, &of_b, 4, "b's on b");
    // ...and takes the other side's over from its replica: two copies now (split brain).
    echo(b_http, &of_a, 5, "a's taken over by b");
    echo(a_http, &of_b, 6, "b's taken over by a");
    // A change on b's copy only: a subscription.
    let uri = "test://watched-resource";
    let subscribe = serde_json::json!({"jsonrpc": "2.0", "id": 7,
        "method": "resources/subscribe", "params": {"uri": uri}});
    let subscribed = http::post(b_http, Some(&of_a), &subscribe, &[]);
    assert_eq!(subscribed.status, 200, "{}", subscribed.text());
    // A session made during the cut, on a's side.
    let during = http::initialize(a_http);
    echo(a_http, &during, 8, "made during the cut");
    assert_eq!(
        entries(&on_a, "http_sessions"),
        3,
        "a holds a's, b's and the new one"
    );
    assert_eq!(entries(&on_b, "http_sessions"), 2, "b holds b's and a's");

    // The heal: the dials get through again; both list the other up.
    proxy_a.heal();
    proxy_b.heal();
    let healed_at = Instant::now();
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    eprintln!("heal: both up again within {:?}", healed_at.elapsed());
    // One ring again: the same owner for every key on both.
    for key in [of_a.as_str(), of_b.as_str(), during.as_str(), "k-1", "k-2"] {
        assert_eq!(owner(&on_a, key), owner(&on_b, key), "{key}");
    }
    assert_eq!(owner(&on_a, &of_a), "a@127.0.0.1");
    assert_eq!(owner(&on_a, &of_b), "b@127.0.0.1");
    // Each session ends up held by one node: the copies the other side took over are handed
    // back to their ring owner.
    let took = wait_until(CONVERGE_BOUND, "one copy of each session", || {
        entries(&on_a, "http_sessions") + entries(&on_b, "http_sessions") == 3
    });
    eprintln!(
        "heal: one copy of each session {:?} after both were up",
        took
    );
    // The copy b changed during the cut won: a's session carries b's subscription.
    assert_eq!(subscribed_to(&on_a, uri), 1);
    // Every session, the one made during the cut too, is served through either node.
    for (n, session) in [&of_a, &of_b, &during].into_iter().enumerate() {
        let n = n as i64;
        echo(a_http, session, 10 + n, "after the heal, through a");
        echo(b_http, session, 20 + n, "after the heal, through b");
    }
    // Each side logged what it was handed: a replaced its own copy of its session with b's.
    let mut a = a;
    let handed = a.wait_log("sessions handed over by b@127.0.0.1");
    assert!(handed.contains("1 replaced"), "{handed}");
}

/// A replica whose owner died and that nobody asked for is dropped once it has been orphaned
/// for `http.session_timeout`; a request for it then gets 404, as on its owner it would have
/// expired.
#[test]
fn an_orphaned_replica_is_dropped_after_the_session_timeout() {
    let ports = free_ports(2);
    let config = Some("[http]\nsession_timeout = 2000\n");
    let mut a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let on_b = remote(&b, "b");
    let session = http::initialize(a.http.unwrap());
    assert_eq!(owner(&on_b, &session), "a@127.0.0.1");
    wait_until(Duration::from_secs(5), "replicated to b", || {
        entries(&on_b, "http_sessions_replica") == 1
    });

    a.child.kill().unwrap();
    let _ = a.child.wait();
    let killed_at = Instant::now();
    // Dropped after the timeout (2 s) and at most a sweep (half a second) later.
    wait_until(Duration::from_secs(6), "the orphan dropped", || {
        entries(&on_b, "http_sessions_replica") == 0
    });
    let dropped_after = killed_at.elapsed();
    eprintln!("an orphaned replica was dropped {dropped_after:?} after its owner was killed");
    assert!(
        dropped_after >= Duration::from_millis(1900),
        "{dropped_after:?}"
    );
    let reply = http::post(
        b.http.unwrap(),
        Some(&session),
        &echo_call(1, "x", false),
        &[],
    );
    assert_eq!(reply.status, 404, "{}", reply.text());
}

/// The sessions of `remote`'s node subscribed to `uri` (`sessions --json`).
fn subscribed_to(remote: &Remote<'_>, uri: &str) -> usize {
    let sessions = remote.eval_json("sessions");
    sessions.as_array().map_or(0, |all| {
        all.iter()
            .filter(|s| {
                s["subscriptions"]
                    .as_array()
                    .is_some_and(|subs| subs.iter().any(|u| u == uri))
            })
            .count()
    })
}

/// An owner killed and restarted with its store: meanwhile its session was taken over by b and
/// changed there; when a is back on the ring, b hands the session back and a's restored (older)
/// copy is replaced by b's — a serves the session with the change made while it was gone, and
/// one copy is left.
#[test]
fn a_returning_owner_takes_its_session_back_with_the_changes_made_while_it_was_gone() {
    let ports = free_ports(2);
    let config = Some("[cluster]\nreconnect_interval = 200\n");
    let mut a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let b_http = b.http.unwrap();
    let on_b = remote(&b, "b");
    let session = http::initialize(a.http.unwrap());
    assert_eq!(owner(&on_b, &session), "a@127.0.0.1");
    wait_until(Duration::from_secs(5), "replicated to b", || {
        entries(&on_b, "http_sessions_replica") == 1
    });

    // a dies: b takes the session over at its next request, and it changes there.
    a.child.kill().unwrap();
    let _ = a.child.wait();
    wait_members(&on_b, DEPARTURE_BOUND, "a down", |m| {
        state_of(m, "a@127.0.0.1") == Some("down")
    });
    echo(b_http, &session, 1, "taken over by b");
    let uri = "test://watched-resource";
    let subscribe = serde_json::json!({"jsonrpc": "2.0", "id": 2,
        "method": "resources/subscribe", "params": {"uri": uri}});
    let subscribed = http::post(b_http, Some(&session), &subscribe, &[]);
    assert_eq!(subscribed.status, 200, "{}", subscribed.text());
    assert_eq!(subscribed_to(&on_b, uri), 1);

    // a comes back with its store: it restores its own copy (without the subscription), joins,
    // and is handed b's.
    a.kill_and_restart();
    let restored = a.wait_log("sessions handed over by b@127.0.0.1");
    assert!(restored.contains("1 replaced"), "{restored}");
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let on_a = remote(&a, "a");
    assert_eq!(subscribed_to(&on_a, uri), 1, "a serves b's copy");
    assert_eq!(entries(&on_b, "http_sessions"), 0, "b forgot its copy");
    assert_eq!(entries(&on_a, "http_sessions"), 1);
    echo(a.http.unwrap(), &session, 3, "back on a");
    echo(b_http, &session, 4, "forwarded by b to a");
}

/// A link that stops carrying bytes without closing (the proxies stall: connections open, new
/// ones accepted, nothing relayed): only the heartbeat can tell. Each side lists the other down
/// within `heartbeat_timeout` + `heartbeat_interval` (with room for a loaded machine), serves
/// its own session and takes the other's over; once the bytes flow again they are up again and
/// each session is served through either node, held once.
#[test]
fn a_link_that_stops_carrying_bytes_is_cut_by_the_heartbeat_and_heals() {
    // 200 ms beats, 1 s of silence: seen within 1.2 s.
    const BEATS: &str = "heartbeat_interval = 200\nheartbeat_timeout = 1000\n";
    const SEEN_BOUND: Duration = Duration::from_secs(6);
    let ports = free_ports(2);
    let to = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (proxy_a, proxy_b) = (Proxy::start(to(ports[0])), Proxy::start(to(ports[1])));
    let config = |proxy: &Proxy| {
        format!(
            "[cluster]\nadvertise = \"{}\"\nreconnect_interval = 200\n{BEATS}",
            proxy.addr()
        )
    };
    let a = start_with("a", ports[0], None, COOKIE, Some(&config(&proxy_a)));
    let b = start_with(
        "b",
        ports[1],
        Some(proxy_a.port),
        COOKIE,
        Some(&config(&proxy_b)),
    );
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    let (on_a, on_b) = (remote(&a, "a"), remote(&b, "b"));
    let (a_http, b_http) = (a.http.unwrap(), b.http.unwrap());
    let of_a = http::initialize(a_http);
    let of_b = http::initialize(b_http);
    wait_until(Duration::from_secs(5), "replicated", || {
        entries(&on_a, "http_sessions_replica") == 1 && entries(&on_b, "http_sessions_replica") == 1
    });

    proxy_a.stall();
    proxy_b.stall();
    let stalled_at = Instant::now();
    wait_members(&on_a, SEEN_BOUND, "b down", |m| {
        state_of(m, "b@127.0.0.1") == Some("down")
    });
    wait_members(&on_b, SEEN_BOUND, "a down", |m| {
        state_of(m, "a@127.0.0.1") == Some("down")
    });
    eprintln!(
        "stall: each side listed the other down within {:?} (heartbeat_timeout 1 s, interval 0.2 s)",
        stalled_at.elapsed()
    );
    echo(a_http, &of_a, 1, "a's on a");
    echo(b_http, &of_b, 2, "b's on b");
    echo(b_http, &of_a, 3, "a's taken over by b");

    proxy_a.heal();
    proxy_b.heal();
    let healed_at = Instant::now();
    wait_all_up(&[(&a, "a"), (&b, "b")]);
    eprintln!(
        "stall healed: both up again within {:?}",
        healed_at.elapsed()
    );
    wait_until(CONVERGE_BOUND, "one copy of each session", || {
        entries(&on_a, "http_sessions") + entries(&on_b, "http_sessions") == 2
    });
    for (n, session) in [&of_a, &of_b].into_iter().enumerate() {
        let n = n as i64;
        echo(a_http, session, 10 + n, "after the stall, through a");
        echo(b_http, session, 20 + n, "after the stall, through b");
    }
}

/// Three nodes, one cut off from the other two (a minority of one): a's proxy is cut, and b's
/// and c's cut the connections a opens (a names itself in its handshake), so b and c stay
/// connected. a lists both down and owns its whole ring; b and c list a down, each other up, and
/// agree on their ring of two; a's session is served on both sides (taken over on the majority's
/// side by the member the ring names next). After the heal the three agree on one ring, each
/// session is held once and served through every node.
#[test]
fn a_minority_of_one_cut_off_from_two_serves_on_both_sides_and_heals() {
    let ports = free_ports(3);
    let to = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let proxies: Vec<Proxy> = ports.iter().map(|p| Proxy::start(to(*p))).collect();
    let a = behind(&proxies[0], "a", ports[0], None);
    let b = behind(&proxies[1], "b", ports[1], Some(proxies[0].port));
    let c = behind(&proxies[2], "c", ports[2], Some(proxies[0].port));
    let nodes = [(&a, "a"), (&b, "b"), (&c, "c")];
    wait_all_up(&nodes);
    let (on_a, on_b, on_c) = (remote(&a, "a"), remote(&b, "b"), remote(&c, "c"));
    let https = [a.http.unwrap(), b.http.unwrap(), c.http.unwrap()];
    let of_a = http::initialize(https[0]);
    let of_b = http::initialize(https[1]);
    wait_until(Duration::from_secs(5), "replicated", || {
        [&on_a, &on_b, &on_c]
            .iter()
            .map(|r| entries(r, "http_sessions_replica"))
            .sum::<u64>()
            == 2
    });

    proxies[0].cut();
    proxies[1].cut_from("a@127.0.0.1");
    proxies[2].cut_from("a@127.0.0.1");
    let cut_at = Instant::now();
    wait_members(&on_a, DEPARTURE_BOUND, "b and c down", |m| {
        state_of(m, "b@127.0.0.1") == Some("down") && state_of(m, "c@127.0.0.1") == Some("down")
    });
    for on in [&on_b, &on_c] {
        wait_members(on, DEPARTURE_BOUND, "a down", |m| {
            state_of(m, "a@127.0.0.1") == Some("down")
        });
    }
    eprintln!(
        "minority cut: seen on every node within {:?}",
        cut_at.elapsed()
    );
    // b and c stayed connected: two up on each, the same ring.
    for on in [&on_b, &on_c] {
        let data = on.eval_json("nodes");
        assert_eq!(data["up"], 2, "{data}");
    }
    assert_eq!(on_a.eval_json("nodes")["up"], 1);
    for key in [of_a.as_str(), of_b.as_str(), "k-1", "k-2", "k-3"] {
        assert_eq!(owner(&on_b, key), owner(&on_c, key), "{key}");
        assert_eq!(owner(&on_a, key), "a@127.0.0.1", "{key}");
    }
    // a's session: served by a on its side, taken over on the other side (through b and c).
    echo(https[0], &of_a, 1, "a's on a");
    echo(https[1], &of_a, 2, "a's through b");
    echo(https[2], &of_a, 3, "a's through c");
    echo(https[1], &of_b, 4, "b's through b");
    echo(https[2], &of_b, 5, "b's through c");

    for proxy in &proxies {
        proxy.heal();
    }
    let healed_at = Instant::now();
    wait_all_up(&nodes);
    eprintln!(
        "minority heal: all up again within {:?}",
        healed_at.elapsed()
    );
    for key in [of_a.as_str(), of_b.as_str(), "k-1", "k-2", "k-3"] {
        let owners: Vec<Value> = [&on_a, &on_b, &on_c]
            .iter()
            .map(|r| owner(r, key))
            .collect();
        assert!(owners.iter().all(|o| *o == owners[0]), "{key}: {owners:?}");
    }
    wait_until(CONVERGE_BOUND, "one copy of each session", || {
        [&on_a, &on_b, &on_c]
            .iter()
            .map(|r| entries(r, "http_sessions"))
            .sum::<u64>()
            == 2
    });
    for (n, session) in [&of_a, &of_b].into_iter().enumerate() {
        for (m, addr) in https.iter().enumerate() {
            echo(*addr, session, (10 * n + m) as i64, "after the heal");
        }
    }
}

#[test]
fn with_a_quorum_the_minority_refuses_sessions_while_the_majority_serves_them() {
    let ports = free_ports(3);
    let to = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let proxies: Vec<Proxy> = ports.iter().map(|p| Proxy::start(to(*p))).collect();
    let quorum = "quorum = 2\n";
    let a = behind_with(&proxies[0], "a", ports[0], None, quorum);
    let b = behind_with(&proxies[1], "b", ports[1], Some(proxies[0].port), quorum);
    let c = behind_with(&proxies[2], "c", ports[2], Some(proxies[0].port), quorum);
    let nodes = [(&a, "a"), (&b, "b"), (&c, "c")];
    wait_all_up(&nodes);
    let (on_a, on_b, on_c) = (remote(&a, "a"), remote(&b, "b"), remote(&c, "c"));
    let https = [a.http.unwrap(), b.http.unwrap(), c.http.unwrap()];
    for on in [&on_a, &on_b, &on_c] {
        assert_eq!(on.eval_json("nodes")["has_quorum"], true);
    }
    let of_a = http::initialize(https[0]);
    wait_until(Duration::from_secs(5), "replicated", || {
        [&on_b, &on_c]
            .iter()
            .map(|r| entries(r, "http_sessions_replica"))
            .sum::<u64>()
            == 1
    });

    // a cut off from b and c: one up of the two it needs.
    proxies[0].cut();
    proxies[1].cut_from("a@127.0.0.1");
    proxies[2].cut_from("a@127.0.0.1");
    wait_members(&on_a, DEPARTURE_BOUND, "b and c down", |m| {
        state_of(m, "b@127.0.0.1") == Some("down") && state_of(m, "c@127.0.0.1") == Some("down")
    });
    for on in [&on_b, &on_c] {
        wait_members(on, DEPARTURE_BOUND, "a down", |m| {
            state_of(m, "a@127.0.0.1") == Some("down")
        });
    }
    let nodes_on_a = on_a.eval_json("nodes");
    assert_eq!(nodes_on_a["has_quorum"], false, "{nodes_on_a}");
    assert_eq!(on_b.eval_json("nodes")["has_quorum"], true);
    // The minority refuses its own session and a new one, saying why; it still answers.
    let refused = http::post(https[0], Some(&of_a), &echo_call(1, "on a", false), &[]);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("cluster.quorum"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    let init = http::initialize_request();
    assert_eq!(http::post(https[0], None, &init, &[]).status, 503);
    // The majority serves a's session, taken over from its replica.
    echo(https[1], &of_a, 2, "a's through b");
    echo(https[2], &of_a, 3, "a's through c");

    for proxy in &proxies {
        proxy.heal();
    }
    wait_all_up(&nodes);
    wait_until(CONVERGE_BOUND, "a's quorum back", || {
        on_a.eval_json("nodes")["has_quorum"] == true
    });
    wait_until(CONVERGE_BOUND, "one copy of a's session", || {
        [&on_a, &on_b, &on_c]
            .iter()
            .map(|r| entries(r, "http_sessions"))
            .sum::<u64>()
            == 1
    });
    for (m, addr) in https.iter().enumerate() {
        echo(*addr, &of_a, 10 + m as i64, "after the heal");
    }
}
