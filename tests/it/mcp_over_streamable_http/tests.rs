//! The Streamable HTTP black-box tests, a module of `mcp_over_streamable_http` (fast lane on)
//! and of `mcp_over_streamable_http_on_hyper` (fast lane off), whose `FAST_LANE` they run on:
//! both paths keep every rule.

use super::FAST_LANE;
use crate::support::{http, node};

use http::{ACCEPT, JSON, initialize, post, request};
use node::Node;
use serde_json::{Value, json};
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

/// A node on this file's lane.
fn http_node(config: Option<&str>) -> Node {
    Node::http_lane(config, FAST_LANE)
}

const QUICK: Duration = Duration::from_secs(10);
/// A node serving HTTP and a session on it, initialized (the node stops when dropped).
fn node_with_session() -> (Node, SocketAddr, String) {
    let node = http_node(None);
    let addr = node.http.unwrap();
    let session = initialize(addr);
    (node, addr, session)
}

fn call(id: i64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

#[test]
fn initialize_creates_a_session_with_a_random_id_that_later_requests_must_carry() {
    let node = http_node(None);
    let addr = node.http.unwrap();
    let first = initialize(addr);
    let second = initialize(addr);
    assert_eq!(first.len(), 32);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, second);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(post(addr, None, &list, &[]).status, 400);
    assert_eq!(
        post(addr, Some("0123456789abcdef0123456789abcdef"), &list, &[]).status,
        404
    );
    let ok = post(addr, Some(&first), &list, &[]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), Some("application/json"));
    assert!(ok.json()["result"]["tools"].as_array().unwrap().len() > 10);
}

#[test]
fn a_request_answered_at_once_gets_json_and_one_that_sends_notifications_gets_an_sse_stream() {
    let (_node, addr, session) = node_with_session();
    let echo = post(
        addr,
        Some(&session),
        &call(1, "echo", json!({"text": "hi"})),
        &[],
    );
    assert_eq!(echo.json()["result"]["content"][0]["text"], "hi");

    let mut progress_call = call(2, "test_tool_with_progress", json!({}));
    progress_call["params"]["_meta"] = json!({"progressToken": "p"});
    let stream = post(addr, Some(&session), &progress_call, &[]);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let ids = stream.sse_ids();
    assert!(
        ids[0].ends_with("-0"),
        "a priming event comes first: {ids:?}"
    );
    assert!(
        stream
            .text()
            .starts_with(&format!("id: {}\nretry: ", ids[0]))
    );
    let messages = stream.sse_messages();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("answer"))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "answer"
        ]
    );
    assert_eq!(messages[3]["id"], 2);
}

#[test]
fn a_stream_ended_early_by_its_handler_is_resumed_with_last_event_id() {
    let (_node, addr, session) = node_with_session();
    let cut = post(
        addr,
        Some(&session),
        &call(5, "test_reconnection", json!({})),
        &[],
    );
    assert_eq!(cut.status, 200);
    assert!(
        cut.sse_messages().is_empty(),
        "the answer must not be on the cut stream"
    );
    let last = cut.sse_ids().last().cloned().expect("priming id");
    std::thread::sleep(Duration::from_millis(300));
    let resumed = request(
        addr,
        "GET",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &session),
            ("last-event-id", &last),
        ],
        b"",
        Duration::from_secs(2),
    );
    assert_eq!(resumed.status, 200);
    let messages = resumed.sse_messages();
    assert_eq!(messages[0]["id"], 5);
    assert_eq!(
        messages[0]["result"]["content"][0]["text"],
        "Reconnection test completed"
    );
}

#[test]
fn delete_ends_the_session_and_an_idle_session_expires() {
    let node = http_node(Some("[http]\nsession_timeout = 400\n"));
    let addr = node.http.unwrap();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let deleted = initialize(addr);
    let headers = [("mcp-session-id", deleted.as_str())];
    assert_eq!(request(addr, "DELETE", &headers, b"", QUICK).status, 200);
    assert_eq!(post(addr, Some(&deleted), &ping, &[]).status, 404);
    assert_eq!(request(addr, "DELETE", &headers, b"", QUICK).status, 404);

    let idle = initialize(addr);
    assert_eq!(post(addr, Some(&idle), &ping, &[]).status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(post(addr, Some(&idle), &ping, &[]).status, 404);
}

#[test]
fn foreign_hosts_and_origins_are_refused_and_loopback_ones_accepted() {
    let (_node, addr, session) = node_with_session();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        post(
            addr,
            Some(&session),
            &ping,
            &[("origin", "https://evil.example")]
        )
        .status,
        403
    );
    assert_eq!(
        post(
            addr,
            Some(&session),
            &ping,
            &[("origin", "http://localhost:3000")]
        )
        .status,
        200
    );
    assert_eq!(
        post(
            addr,
            Some(&session),
            &ping,
            &[("origin", "http://[::1]:8080")]
        )
        .status,
        200
    );
}

#[test]
fn a_configured_bearer_token_is_required() {
    let node = http_node(Some("[http]\nbearer_token = \"s3cret\"\n"));
    let addr = node.http.unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let refused = post(addr, None, &init, &[]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        post(addr, None, &init, &[("authorization", "Bearer wrong")]).status,
        401
    );
    assert_eq!(
        post(addr, None, &init, &[("authorization", "Bearer s3cret")]).status,
        200
    );
}

#[test]
fn bad_requests_get_clear_http_errors() {
    let node = http_node(Some("max_message_size = 2048\n"));
    let addr = node.http.unwrap();
    let session = initialize(addr);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        post(
            addr,
            Some(&session),
            &ping,
            &[("mcp-protocol-version", "1999-01-01")]
        )
        .status,
        400
    );
    assert_eq!(
        post(
            addr,
            Some(&session),
            &ping,
            &[("mcp-protocol-version", "2025-06-18")]
        )
        .status,
        200
    );
    let text_plain = request(
        addr,
        "POST",
        &[
            ("content-type", "text/plain"),
            ACCEPT,
            ("mcp-session-id", &session),
        ],
        ping.to_string().as_bytes(),
        QUICK,
    );
    assert_eq!(text_plain.status, 415);
    let big = call(2, "echo", json!({"text": "x".repeat(5000)}));
    assert_eq!(post(addr, Some(&session), &big, &[]).status, 413);
    let put = request(addr, "PUT", &[("mcp-session-id", &session)], b"", QUICK);
    assert_eq!(put.status, 405);
    // Bad JSON-RPC inside a good HTTP request is a JSON-RPC error.
    let garbage = request(
        addr,
        "POST",
        &[JSON, ACCEPT, ("mcp-session-id", &session)],
        b"{nope",
        QUICK,
    );
    assert_eq!(garbage.json()["error"]["code"], -32700);
    assert_eq!(
        garbage.status, 400,
        "a body that is not JSON is a bad request"
    );
}

#[test]
fn an_accept_without_json_or_sse_gets_406_and_a_body_not_json_400_before_any_session_check() {
    let (_node, addr, session) = node_with_session();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let with_accept = |accept: &str, session: Option<&str>| {
        let mut headers = vec![JSON, ("accept", accept)];
        if let Some(id) = session {
            headers.push(("mcp-session-id", id));
        }
        request(addr, "POST", &headers, ping.as_bytes(), QUICK)
    };
    for accept in ["text/html", "image/png, text/plain", "application/json;q=0"] {
        assert_eq!(with_accept(accept, Some(&session)).status, 406, "{accept}");
        assert_eq!(with_accept(accept, None).status, 406, "{accept}");
    }
    for accept in [
        "application/json",
        "text/event-stream",
        "*/*",
        "text/html, */*;q=0.1",
    ] {
        assert_eq!(with_accept(accept, Some(&session)).status, 200, "{accept}");
    }
    let stateless = request(
        addr,
        "POST",
        &[
            JSON,
            ("accept", "text/html"),
            ("mcp-protocol-version", "2026-07-28"),
        ],
        ping.as_bytes(),
        QUICK,
    );
    assert_eq!(stateless.status, 406, "the stateless path too");
    // Not JSON: 400 and -32700 whatever the session (none, unknown, known).
    let unknown = "0123456789abcdef0123456789abcdef";
    for session in [None, Some(unknown), Some(session.as_str())] {
        let mut headers = vec![JSON, ACCEPT];
        if let Some(id) = session {
            headers.push(("mcp-session-id", id));
        }
        let garbage = request(addr, "POST", &headers, b"{nope", QUICK);
        assert_eq!(garbage.status, 400, "{session:?}");
        assert_eq!(garbage.json()["error"]["code"], -32700, "{session:?}");
        assert_eq!(garbage.json()["id"], Value::Null);
    }
}

#[test]
fn large_json_answers_are_gzipped_when_the_client_accepts_it() {
    let (_node, addr, session) = node_with_session();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let zipped = post(addr, Some(&session), &list, &[("accept-encoding", "gzip")]);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value["result"]["tools"].is_array());
    let plain = post(addr, Some(&session), &list, &[]);
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn a_client_that_does_not_finish_its_request_head_in_time_is_disconnected() {
    use std::io::Write;
    let node = http_node(Some("[http]\nheader_read_timeout = 300\n"));
    let addr = node.http.unwrap();
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(read, 0, "the server closes the connection");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Others are served meanwhile.
    initialize(addr);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_but_a_long_response_is_not() {
    use std::io::{ErrorKind, Write};
    let node = http_node(Some("[http]\nheader_read_timeout = 300\n"));
    let addr = node.http.unwrap();
    let session = initialize(addr);
    let mut buf = [0u8; 4096];

    // A GET stream open for three timeouts and more stays open: a response in progress is not
    // an idle connection.
    let mut stream = raw_connect(addr);
    write!(
        stream,
        "GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\nmcp-session-id: {session}\r\n\r\n"
    )
    .unwrap();
    let read = stream.read(&mut buf).unwrap();
    assert!(
        buf[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..read])
    );
    std::thread::sleep(Duration::from_millis(1000));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    match stream.read(&mut buf) {
        Ok(0) => panic!("the open stream was closed"),
        Ok(_) => {} // a keep-alive comment
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
    }

    // A keep-alive connection left idle after its answer is closed, about a timeout later.
    let mut idle = raw_connect(addr);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    write!(
        idle,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut answered = Vec::new();
    loop {
        match idle.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(read) => answered.extend_from_slice(&buf[..read]),
        }
    }
    let closed_after = started.elapsed();
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    assert!(
        closed_after >= Duration::from_millis(250),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
    // The stream opened first is still served.
    drop(stream);
    assert_eq!(
        post(
            addr,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
            &[]
        )
        .status,
        200
    );
}

#[test]
fn http_connections_beyond_max_connections_get_503() {
    let node = http_node(Some("max_connections = 1\n"));
    let addr = node.http.unwrap();
    let _held = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let refused = request(addr, "GET", &[], b"", QUICK);
    assert_eq!(refused.status, 503);
    assert!(refused.text().contains("max_connections"));
}

/// A keep-alive connection for requests written by hand.
fn raw_connect(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(QUICK)).unwrap();
    stream
}

/// A session's `tools/call` as raw HTTP/1.1 (header names in mixed case, as some clients send).
fn raw_call(session: &str, id: i64, name: &str, args: Value) -> String {
    let body = call(id, name, args).to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads from `stream` until `needle` has been seen `times` times; what was read.
fn read_until(stream: &mut std::net::TcpStream, needle: &str, times: usize) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches(needle).count() < times {
        let n = stream.read(&mut buf).expect("the answer arrives");
        assert!(n > 0, "closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

/// `count` pipelined echo calls, ids 1.., texts `<prefix>1`...
fn echo_batch(session: &str, prefix: &str, count: i64) -> String {
    (1..=count)
        .map(|id| {
            raw_call(
                session,
                id,
                "echo",
                json!({"text": format!("{prefix}{id}")}),
            )
        })
        .collect()
}

/// Every echo of [`echo_batch`] is in `seen`, in order. Found by the whole text field: a bare
/// "b2" can be in a (hex) session id.
fn assert_echoes_in_order(seen: &str, prefix: &str, count: i64) {
    let order: Vec<usize> = (1..=count)
        .map(|n| {
            let field = format!("\"text\":\"{prefix}{n}\"");
            seen.find(&field)
                .unwrap_or_else(|| panic!("no {field} in {seen}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen}");
}

#[test]
fn pipelined_requests_on_one_connection_all_get_their_answers_in_order() {
    use std::io::Write;
    let (_node, addr, session) = node_with_session();
    let mut stream = raw_connect(addr);
    stream
        .write_all(echo_batch(&session, "n", 3).as_bytes())
        .unwrap();
    let seen = read_until(&mut stream, "\"result\"", 3);
    assert_echoes_in_order(&seen, "n", 3);
}

#[test]
fn pipelined_requests_written_in_small_pieces_are_each_answered_once_in_order() {
    use std::io::Write;
    let (_node, addr, session) = node_with_session();
    let mut stream = raw_connect(addr);
    stream.set_nodelay(true).unwrap();
    let batch = echo_batch(&session, "b", 4);
    // Pieces of 1 to 13 bytes with a pause after each (else the lane reads them together): it
    // sees heads and bodies cut at every kind of place.
    let mut rest = batch.as_bytes();
    for size in (1..=13).cycle() {
        let (piece, after) = rest.split_at(size.min(rest.len()));
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        rest = after;
        if rest.is_empty() {
            break;
        }
    }
    let seen = read_until(&mut stream, "\"result\"", 4);
    assert_echoes_in_order(&seen, "b", 4);
    assert_eq!(seen.matches("HTTP/1.1 200 OK").count(), 4, "{seen}");
}

#[test]
fn requests_the_fast_lane_does_not_take_are_served_by_hyper_on_the_same_connection() {
    use std::io::Write;
    let (_node, addr, session) = node_with_session();
    let mut stream = raw_connect(addr);
    let plain = |id: i64, text: &str| raw_call(&session, id, "echo", json!({"text": text}));

    // A plain request, its head and body split across writes (and names in mixed case).
    let first = plain(1, "split");
    let (head, body) = first.split_at(first.find("\r\n\r\n").unwrap() + 6);
    for part in [&head[..20], &head[20..], &body[..5], &body[5..]] {
        stream.write_all(part.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let answer = read_until(&mut stream, "\"id\":1", 1);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("split"), "{answer}");

    // A body of many reads (300 KB: the buffer grows as it comes), echoed whole.
    let long = "y".repeat(300_000);
    stream.write_all(plain(6, &long).as_bytes()).unwrap();
    let answer = read_until(&mut stream, &long, 1);
    assert!(answer.contains("\"id\":6"), "{}", &answer[..200]);

    // A chunked body: hyper's from here on, on the same connection.
    let body = call(2, "echo", json!({"text": "chunked"})).to_string();
    let (a, b) = body.split_at(10);
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    stream.write_all(chunked.as_bytes()).unwrap();
    let answer = read_until(&mut stream, "chunked\"", 1);
    assert!(answer.contains("\"id\":2"), "{answer}");

    // A plain request after it: still answered (by hyper now), in order with a pipelined one.
    stream
        .write_all(format!("{}{}", plain(3, "after"), plain(4, "last")).as_bytes())
        .unwrap();
    let answers = read_until(&mut stream, "\"result\"", 2);
    let (after, last) = (
        answers.find("after").unwrap(),
        answers.find("last").unwrap(),
    );
    assert!(after < last, "{answers}");

    // Expect: 100-continue gets its interim answer before the body is sent.
    let mut waiting = raw_connect(addr);
    let body = call(5, "echo", json!({"text": "expected"})).to_string();
    write!(
        waiting,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         accept: application/json\r\nmcp-session-id: {session}\r\nexpect: 100-continue\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let interim = read_until(&mut waiting, "\r\n\r\n", 1);
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    waiting.write_all(body.as_bytes()).unwrap();
    let answer = read_until(&mut waiting, "expected", 1);
    assert!(answer.contains("HTTP/1.1 200 OK"), "{answer}");

    // A body over max_message_size gets 413 from the lane's hand-over, unread.
    let mut large = raw_connect(addr);
    write!(
        large,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         mcp-session-id: {session}\r\ncontent-length: 999999999\r\n\r\n{{"
    )
    .unwrap();
    let refused = read_until(&mut large, "\r\n\r\n", 1);
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
}

#[test]
fn a_client_that_leaves_a_waiting_stream_frees_its_connection_at_once() {
    use std::io::Write;
    // One connection at a time: the next client gets 503 while the first one's is held.
    let node = http_node(Some("max_connections = 1\n"));
    let addr = node.http.unwrap();
    // The handshake on one kept-alive connection: one that closes frees its slot only just after
    // its answer, so a second connection right behind it could be refused.
    let mut handshake = raw_connect(addr);
    let hello = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params":
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    write!(
        handshake,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{hello}",
        hello.len()
    )
    .unwrap();
    let answer = read_until(&mut handshake, "\"result\"", 1);
    let session = answer
        .lines()
        .find_map(|line| line.strip_prefix("mcp-session-id: "))
        .expect("a session id")
        .to_owned();
    drop(handshake);
    // Its slot is freed as the server sees it close.
    std::thread::sleep(Duration::from_millis(200));
    let mut leaving = raw_connect(addr);
    let slow = raw_call(&session, 1, "sleep", json!({"ms": 5000}));
    leaving.write_all(slow.as_bytes()).unwrap();
    // The answer is a stream (the tool takes 5 s); its priming event comes first.
    let opened = read_until(&mut leaving, "retry:", 1);
    assert!(opened.contains("text/event-stream"), "{opened}");
    drop(leaving);
    std::thread::sleep(Duration::from_millis(300));
    let next = post(
        addr,
        Some(&session),
        &call(2, "echo", json!({"text": "next"})),
        &[],
    );
    assert_eq!(
        next.status, 200,
        "the slot is free long before the tool ends"
    );
}
