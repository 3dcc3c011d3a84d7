//! The forwarding lane (docs/cluster.md, "Sessions through any node"): a request for a session
//! another node owns goes to that node's HTTP listener over kept-alive HTTP/1.1, marked with an
//! HMAC keyed by the cookie; the shell's `nodes` counts forwards by the way they went. A mark a
//! client forges is not trusted (the request is forwarded like any other); an owner whose HTTP
//! address cannot be had (`cluster.forward_lane = "rpc"` on it) is reached over the cluster RPC.
//! Every process is stopped when its `Node` drops.

use crate::support::cluster::*;
use crate::support::http;
use serde_json::Value;

/// The forwards `node` counted (`nodes --json`): over the lane, over the RPC, lane fallbacks.
fn forwards(node: &crate::support::node::Node, name: &str) -> (u64, u64, u64) {
    let data = remote(node, name).eval_json("nodes");
    let count = |key: &str| {
        data["forwards"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("{data}"))
    };
    (count("lane"), count("rpc"), count("lane_fallbacks"))
}

fn echo_text(reply: &http::Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    rpc_answer(reply)["result"]["content"][0]["text"].clone()
}

#[test]
fn a_session_of_another_node_goes_over_the_lane_a_forged_mark_is_not_trusted_and_rpc_is_the_fallback()
 {
    let ports = free_ports(3);
    let a = start_with("a", ports[0], None, COOKIE, None);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, None);
    // c gives no lane address: forwards to it take the cluster RPC.
    let c = start_with(
        "c",
        ports[2],
        Some(ports[0]),
        COOKIE,
        Some("[cluster]\nforward_lane = \"rpc\"\n"),
    );
    wait_all_up(&[(&a, "a"), (&b, "b"), (&c, "c")]);
    let (a_http, b_http, c_http) = (a.http.unwrap(), b.http.unwrap(), c.http.unwrap());

    // Made through a, used through b: over the lane (a JSON answer, then an SSE one).
    let session = http::initialize(a_http);
    let before = forwards(&b, "b");
    for i in 0..5 {
        let reply = http::post(b_http, Some(&session), &echo_call(i, "via b", false), &[]);
        assert_eq!(echo_text(&reply), "via b");
        assert_eq!(reply.header("mcp-session-id"), Some(session.as_str()));
    }
    let streamed = http::post(b_http, Some(&session), &echo_call(9, "streamed", true), &[]);
    assert!(
        streamed
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{streamed:?}"
    );
    assert_eq!(echo_text(&streamed), "streamed");
    let after = forwards(&b, "b");
    assert_eq!(after.0 - before.0, 6, "{before:?} -> {after:?}");
    assert_eq!(
        after.1, before.1,
        "none over the RPC: {before:?} -> {after:?}"
    );

    // A client's own mark, made for b (were it trusted, b would serve a's session itself and
    // answer 404) or for a with a made-up HMAC: dropped, the request forwarded as any other.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for owner in ["b@127.0.0.1", "a@127.0.0.1"] {
        let forged = format!("{owner};10.9.9.9;{now};AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let reply = http::post(
            b_http,
            Some(&session),
            &echo_call(20, "forged", false),
            &[("x-erlmcp-forwarded", &forged)],
        );
        assert_eq!(echo_text(&reply), "forged", "{owner}");
    }
    // Sent straight to the owner, a forged mark is a client's request like any other too.
    let forged = format!("a@127.0.0.1;10.9.9.9;{now};AAAA");
    let reply = http::post(
        a_http,
        Some(&session),
        &echo_call(21, "at a", false),
        &[("x-erlmcp-forwarded", &forged)],
    );
    assert_eq!(echo_text(&reply), "at a");
    assert_eq!(forwards(&b, "b").0 - after.0, 2);

    // c has no lane: b forwards its session over the cluster RPC, counted as a fallback.
    let on_c = http::initialize(c_http);
    let before = forwards(&b, "b");
    let reply = http::post(b_http, Some(&on_c), &echo_call(30, "via rpc", false), &[]);
    assert_eq!(echo_text(&reply), "via rpc");
    let after = forwards(&b, "b");
    assert_eq!(after.0, before.0, "{before:?} -> {after:?}");
    assert_eq!(after.1 - before.1, 1, "{before:?} -> {after:?}");
    assert!(after.2 > before.2, "{before:?} -> {after:?}");
}
