//! Black-box tests of what a hostile HTTP client can hold of a node (issue 16): a head is
//! judged before its body is read, a body that stalls is cut at `http.body_read_timeout`, the
//! bodies being read are bounded over all connections, a client that stops reading is cut at
//! `write_timeout`, sessions are capped in all and per address, the descriptor limit bounds
//! connections, `Host` must come exactly once, and pipelined requests on hyper's path are each
//! answered. Each test runs on the fast lane and, where the path differs, on hyper's.

use crate::support::{http, node};

use http::{ACCEPT, JSON, initialize, initialize_request, post, request};
use node::Node;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const QUICK: Duration = Duration::from_secs(10);
/// Both of the node's HTTP paths: the fast lane (on by default), and hyper alone.
const LANES: [&str; 2] = ["", "[http]\nfast_lane = false\n"];

/// A config of `lane`'s `[http]` table with `http` added to it, and top-level `top`.
fn config(lane: &str, top: &str, http: &str) -> String {
    let http_table = if lane.is_empty() {
        format!("[http]\n{http}")
    } else {
        format!("{lane}{http}")
    };
    format!("{top}\n{http_table}")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(QUICK)).unwrap();
    stream
}

/// Everything the server sends until it closes (or `QUICK` passes: then `closed` is false).
fn read_to_close(stream: &mut TcpStream) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&seen).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

/// A `POST /mcp` head announcing `length` bytes of JSON body, with `extra` header lines.
fn post_head(addr: SocketAddr, length: usize, extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}Content-Length: {length}\r\n\r\n",
        addr.port()
    )
}

#[test]
fn a_head_refused_is_answered_before_its_body_is_sent_and_the_connection_closed() {
    for lane in LANES {
        let node = Node::http(Some(&config(lane, "", "bearer_token = \"s3cret\"\n")));
        let addr = node.http.unwrap();
        let fifteen_mib = 15 * 1024 * 1024;
        // The body announced is never sent: each refusal comes from the head alone.
        for (extra, status) in [
            ("", 401),
            ("Authorization: Bearer wrong\r\n", 401),
            (
                "Authorization: Bearer s3cret\r\nOrigin: http://evil.example\r\n",
                403,
            ),
            (
                "Authorization: Bearer s3cret\r\nMcp-Session-Id: 00ff\r\n",
                404,
            ),
        ] {
            let mut stream = connect(addr);
            stream
                .write_all(post_head(addr, fifteen_mib, extra).as_bytes())
                .unwrap();
            let started = Instant::now();
            let (seen, closed) = read_to_close(&mut stream);
            assert!(
                seen.starts_with(&format!("HTTP/1.1 {status} ")),
                "lane {lane:?}, {extra:?}: {seen}"
            );
            assert!(closed, "lane {lane:?}: the connection closes: {seen}");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        // The scheme is read without regard to case.
        let reply = request(
            addr,
            "POST",
            &[JSON, ACCEPT, ("authorization", "bearer s3cret")],
            initialize_request().to_string().as_bytes(),
            QUICK,
        );
        assert_eq!(reply.status, 200, "lane {lane:?}: {}", reply.text());
    }
}

#[test]
fn a_stalled_body_gets_408_at_body_read_timeout_and_its_connection_closes() {
    for lane in LANES {
        let node = Node::http(Some(&config(lane, "", "body_read_timeout = 400\n")));
        let addr = node.http.unwrap();
        let mut stream = connect(addr);
        let started = Instant::now();
        stream
            .write_all(format!("{}{{\"jsonrpc\":", post_head(addr, 4096, "")).as_bytes())
            .unwrap();
        let (seen, closed) = read_to_close(&mut stream);
        let waited = started.elapsed();
        assert!(seen.starts_with("HTTP/1.1 408 "), "lane {lane:?}: {seen}");
        assert!(closed, "lane {lane:?}");
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
            "lane {lane:?}: cut after {waited:?}"
        );
        // A body that comes in time, in pieces, is served.
        let session = initialize(addr);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
        let mut stream = connect(addr);
        let head = post_head(addr, body.len(), &format!("Mcp-Session-Id: {session}\r\n"));
        stream.write_all(head.as_bytes()).unwrap();
        for piece in body.as_bytes().chunks(8) {
            std::thread::sleep(Duration::from_millis(20));
            stream.write_all(piece).unwrap();
        }
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200 "),
            "lane {lane:?}: {}",
            String::from_utf8_lossy(&answer[..n])
        );
    }
}

#[test]
fn bodies_being_read_are_bounded_over_all_connections() {
    for lane in LANES {
        let top = "max_message_size = 1048576\n";
        let http = "max_pending_body_bytes = 2097152\nbody_read_timeout = 5000\n";
        let node = Node::http(Some(&config(lane, top, http)));
        let addr = node.http.unwrap();
        let session = initialize(addr);
        let extra = format!("Mcp-Session-Id: {session}\r\n");
        // Two bodies of 1 MiB in progress take the whole budget...
        let mut held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut stream = connect(addr);
                stream
                    .write_all(format!("{}[", post_head(addr, 1 << 20, &extra)).as_bytes())
                    .unwrap();
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // ...so a third is refused, at once.
        let mut third = connect(addr);
        third
            .write_all(format!("{}[", post_head(addr, 1 << 20, &extra)).as_bytes())
            .unwrap();
        let (seen, closed) = read_to_close(&mut third);
        assert!(seen.starts_with("HTTP/1.1 503 "), "lane {lane:?}: {seen}");
        assert!(seen.contains("max_pending_body_bytes"), "{seen}");
        assert!(closed);
        // Once the first two leave, their bytes are free again.
        held.clear();
        std::thread::sleep(Duration::from_millis(300));
        let mut fourth = connect(addr);
        let body = vec![b' '; 1 << 20];
        fourth
            .write_all(post_head(addr, body.len(), &extra).as_bytes())
            .unwrap();
        fourth.write_all(&body).unwrap();
        let mut answer = [0u8; 64];
        let n = fourth.read(&mut answer).unwrap();
        // A body of spaces is no JSON-RPC message: answered (400 or 200 with an error), not 503.
        let text = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 ") && !text.starts_with("HTTP/1.1 503"),
            "lane {lane:?}: {text}"
        );
    }
}

#[test]
fn a_client_that_never_reads_is_closed_at_write_timeout() {
    for lane in LANES {
        let node = Node::http(Some(&config(lane, "write_timeout = 500\n", "")));
        let addr = node.http.unwrap();
        let session = initialize(addr);
        let text = "x".repeat(256 * 1024);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}})
        .to_string();
        let one = format!(
            "{}{body}",
            post_head(addr, body.len(), &format!("Mcp-Session-Id: {session}\r\n"))
        );
        // 75 MiB of answers: more than loopback buffers here hold (tcp_rmem's ceiling is 32 MiB).
        let total = 300;
        let stream = connect(addr);
        let mut writer = stream.try_clone().unwrap();
        writer
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // None read: the server's writes get stuck.
        let sender = std::thread::spawn(move || {
            for _ in 0..total {
                if writer.write_all(one.as_bytes()).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_secs(3));
        let mut reader = stream;
        let (seen, closed) = read_to_close(&mut reader);
        let answered = seen.matches("HTTP/1.1 200 ").count();
        assert!(closed, "lane {lane:?}: still open after {answered} answers");
        assert!(
            answered < total,
            "lane {lane:?}: every answer was written ({answered}): nothing was stuck"
        );
        sender.join().unwrap();
        // The node goes on serving others.
        assert_eq!(post(addr, None, &initialize_request(), &[]).status, 200);
    }
}

#[test]
fn sessions_are_capped_per_address_and_in_all() {
    let node = Node::http(Some(
        "[http]\nmax_sessions = 3\nmax_sessions_per_client = 2\n",
    ));
    let addr = node.http.unwrap();
    let first = initialize(addr);
    let _second = initialize(addr);
    let refused = post(addr, None, &initialize_request(), &[]);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], -32000);
    let message = refused.json()["error"]["message"].to_string();
    assert!(message.contains("max_sessions_per_client (2)"), "{message}");
    // A session ended frees its place.
    let ended = request(addr, "DELETE", &[("mcp-session-id", &first)], b"", QUICK);
    assert_eq!(ended.status, 200);
    let _third = initialize(addr);

    let node = Node::http(Some(
        "[http]\nmax_sessions = 2\nmax_sessions_per_client = 0\n",
    ));
    let addr = node.http.unwrap();
    let _one = initialize(addr);
    let _two = initialize(addr);
    let refused = post(addr, None, &initialize_request(), &[]);
    assert_eq!(refused.status, 503);
    let message = refused.json()["error"]["message"].to_string();
    assert!(message.contains("http.max_sessions (2)"), "{message}");
}

#[test]
fn a_request_without_exactly_one_host_is_refused_and_an_absolute_target_is_judged_by_its_authority()
{
    for lane in LANES {
        let node = Node::http(Some(lane));
        let addr = node.http.unwrap();
        let body = initialize_request().to_string();
        let ask = |head: &str| {
            let mut stream = connect(addr);
            stream
                .write_all(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
                .unwrap();
            let mut answer = [0u8; 256];
            let n = stream.read(&mut answer).unwrap_or(0);
            String::from_utf8_lossy(&answer[..n]).into_owned()
        };
        let typed =
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
        let none = ask(&format!("POST /mcp HTTP/1.1\r\n{typed}"));
        assert!(none.starts_with("HTTP/1.1 400 "), "lane {lane:?}: {none}");
        let two = ask(&format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n{typed}"
        ));
        assert!(two.starts_with("HTTP/1.1 400 "), "lane {lane:?}: {two}");
        let foreign = ask(&format!(
            "POST http://evil.example/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{typed}"
        ));
        assert!(
            foreign.starts_with("HTTP/1.1 403 "),
            "lane {lane:?}: {foreign}"
        );
        let loopback = ask(&format!(
            "POST http://127.0.0.1/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{typed}"
        ));
        assert!(
            loopback.starts_with("HTTP/1.1 200 "),
            "lane {lane:?}: {loopback}"
        );
    }
}

#[test]
fn every_pipelined_request_hyper_reads_gets_its_answer_in_order() {
    let node = Node::http(Some("[http]\nfast_lane = false\npipeline_flush = true\n"));
    let addr = node.http.unwrap();
    let get = |close: bool| {
        format!(
            "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        )
    };
    let mut stream = connect(addr);
    stream
        .write_all(format!("{}{}{}", get(false), get(true), get(false)).as_bytes())
        .unwrap();
    let (seen, closed) = read_to_close(&mut stream);
    assert!(closed);
    assert_eq!(
        seen.matches("HTTP/1.1 400 ").count(),
        2,
        "two answers (no session id), the third request after the close unread: {seen}"
    );
    let mut stream = connect(addr);
    stream
        .write_all(format!("{}\x01\x02 not http\r\n\r\n", get(false)).as_bytes())
        .unwrap();
    let (seen, _) = read_to_close(&mut stream);
    assert!(
        seen.starts_with("HTTP/1.1 400 ") && seen.contains("Mcp-Session-Id"),
        "the GET is answered before the garbage is refused: {seen}"
    );
}

#[test]
fn connections_past_the_open_file_limit_are_refused_cleanly_and_the_node_keeps_serving() {
    let mut node = Node::http_with_open_files(128, None);
    let addr = node.http.unwrap();
    let line = node.find_log("is above what the open-file limit allows");
    let effective: usize = line
        .split("effective=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the effective limit in {line}"));
    assert!(effective < 128, "{line}");
    // More connections than the limit allows: those past it get 503 at once.
    let mut streams: Vec<TcpStream> = (0..effective + 20)
        .map_while(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 128];
        if let Ok(n) = stream.read(&mut buf)
            && buf[..n].starts_with(b"HTTP/1.1 503 ")
        {
            refused += 1;
        }
    }
    assert!(refused >= 15, "{refused} of {} refused", streams.len());
    streams.clear();
    std::thread::sleep(Duration::from_millis(500));
    // Their descriptors are back: the node serves again, and it did not spin on EMFILE.
    assert_eq!(post(addr, None, &initialize_request(), &[]).status, 200);
    let mut accept_failures = 0;
    while let Ok(line) = node.stderr.try_recv() {
        accept_failures += usize::from(line.contains("accept failed"));
    }
    assert!(
        accept_failures <= 3,
        "{accept_failures} accept-failure lines"
    );
}
