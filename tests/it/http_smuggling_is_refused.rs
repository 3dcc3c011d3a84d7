//! Black-box tests of request smuggling on the HTTP listener (issue 23): heads whose body
//! framing two parsers could read two ways — `Content-Length` with `Transfer-Encoding`,
//! repeated or odd lengths, odd codings, obs-fold, huge or many headers, `Expect`, pipelined
//! requests of mixed kinds — each sent over a raw TCP socket to a running node. The expected
//! refusal is an answer (400, 417, 431, 505) and then a close, never a silent close; requests
//! that are fine are answered in order. docs/security.md has the same table.

use crate::support::node::Node;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smuggler","version":"1"}}}"#;

fn head(extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}"
    )
}

fn chunked(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

/// Each case: its name, the bytes sent, the statuses expected in order, and whether the fast
/// lane (the default) and hyper's path alone answer alike (`Some(statuses)` where hyper differs).
type Case = (&'static str, String, Vec<u16>, Option<Vec<u16>>);

fn cases() -> Vec<Case> {
    let n = INIT.len();
    let post = |extra: &str| format!("{}Content-Length: {n}\r\n{extra}\r\n{INIT}", head(""));
    let get = "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    let close = "Connection: close\r\n";
    vec![
        // The lane judges the raw head; hyper drops the Content-Length and reads the chunked body
        // (RFC 9112 §6.3), then closes: no desync either way.
        (
            "Content-Length then Transfer-Encoding",
            format!(
                "{}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                head(""),
                chunked(INIT)
            ),
            vec![400],
            Some(vec![200]),
        ),
        (
            "Transfer-Encoding then Content-Length",
            format!(
                "{}Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{}",
                head(""),
                chunked(INIT)
            ),
            vec![400],
            Some(vec![200]),
        ),
        (
            "the same Content-Length twice",
            format!(
                "{}Content-Length: {n}\r\nContent-Length: {n}\r\n{close}\r\n{INIT}",
                head("")
            ),
            vec![400],
            Some(vec![200]),
        ),
        (
            "two different Content-Lengths",
            format!(
                "{}Content-Length: {n}\r\nContent-Length: {}\r\n\r\n{INIT}",
                head(""),
                n + 5
            ),
            vec![400],
            None,
        ),
        (
            "a Content-Length list",
            format!("{}Content-Length: {n}, {n}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a signed Content-Length",
            format!("{}Content-Length: +{n}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a negative Content-Length",
            format!("{}Content-Length: -1\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a hex Content-Length",
            format!("{}Content-Length: 0x{n:x}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "an overflowing Content-Length",
            format!(
                "{}Content-Length: 99999999999999999999999\r\n\r\n",
                head("")
            ),
            vec![400],
            None,
        ),
        (
            "Transfer-Encoding twice",
            format!(
                "{}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                head(""),
                chunked(INIT)
            ),
            vec![400],
            None,
        ),
        (
            "a coding other than chunked",
            format!("{}Transfer-Encoding: gzip\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "chunked not last",
            format!("{}Transfer-Encoding: chunked, gzip\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "an unknown coding",
            format!("{}Transfer-Encoding: xchunked\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "{}Transfer-Encoding: chunked\r\n\r\n{}",
                head("").replace("HTTP/1.1", "HTTP/1.0"),
                chunked(INIT)
            ),
            vec![400],
            None,
        ),
        (
            "a space before the colon",
            format!(
                "{}Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n\r\n{INIT}",
                head("")
            ),
            vec![400],
            None,
        ),
        (
            "obs-fold",
            format!(
                "{}X-Folded: a\r\n b\r\nContent-Length: {n}\r\n\r\n{INIT}",
                head("")
            ),
            vec![400],
            None,
        ),
        (
            "a folded Content-Length",
            format!("{}Content-Length:\r\n {n}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a NUL in a value",
            format!("{}X-A: a\0b\r\nContent-Length: {n}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a bare CR in a value",
            format!("{}X-A: a\rb\r\nContent-Length: {n}\r\n\r\n{INIT}", head("")),
            vec![400],
            None,
        ),
        (
            "a bad chunk size",
            format!(
                "{}Transfer-Encoding: chunked\r\n\r\nzz\r\n{INIT}\r\n0\r\n\r\n",
                head("")
            ),
            vec![400],
            None,
        ),
        (
            "an overflowing chunk size",
            format!(
                "{}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n{INIT}\r\n0\r\n\r\n",
                head("")
            ),
            vec![400],
            None,
        ),
        (
            "a 70 KB header",
            post(&format!("X-Big: {}\r\n", "a".repeat(70_000))),
            vec![431],
            None,
        ),
        (
            "150 headers",
            post(
                &(0..150)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            ),
            vec![431],
            None,
        ),
        (
            "Expect: 100-continue",
            post("Expect: 100-continue\r\nConnection: close\r\n"),
            vec![100, 200],
            None,
        ),
        (
            "an Expect other than 100-continue",
            post("Expect: 200-ok\r\n"),
            vec![417],
            None,
        ),
        (
            "HTTP/2's preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            vec![505],
            Some(vec![]),
        ),
        ("HTTP/0.9", "GET /mcp\r\n\r\n".to_owned(), vec![400], None),
        (
            "pipelined: POST, GET, POST + close",
            format!("{}{get}{}", post(""), post(close)),
            vec![200, 400, 200],
            None,
        ),
        (
            "pipelined: POST, chunked POST, POST + close",
            format!(
                "{}{}Transfer-Encoding: chunked\r\n\r\n{}{}",
                post(""),
                head(""),
                chunked(INIT),
                post(close)
            ),
            vec![200, 200, 200],
            None,
        ),
        (
            "pipelined: POST, then Content-Length with Transfer-Encoding",
            format!(
                "{}{}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                post(""),
                head(""),
                chunked(INIT)
            ),
            vec![200, 400],
            Some(vec![200, 200]),
        ),
        (
            "pipelined: POST, then bytes that are no request",
            format!("{}\x01\x02 not http\r\n\r\n", post("")),
            vec![200, 400],
            None,
        ),
    ]
}

/// The statuses of every answer the node sends until it closes, and whether it closed.
fn exchange(addr: SocketAddr, request: &str) -> (Vec<u16>, bool, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A refusal may come (and the node close) before all of a large request is written.
    let _ = stream.write_all(request.as_bytes());
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&seen).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect();
    (statuses, closed, text)
}

fn check(fast_lane: bool) {
    let node = Node::http_lane(None, fast_lane);
    let addr = node.http.unwrap();
    let mut wrong = Vec::new();
    for (name, request, lane, hyper) in cases() {
        let expected = if fast_lane {
            lane
        } else {
            hyper.unwrap_or(lane)
        };
        let (statuses, closed, text) = exchange(addr, &request);
        if statuses != expected || !closed {
            let start: String = text.chars().take(300).collect();
            wrong.push(format!(
                "{name}: {statuses:?} (closed: {closed}), expected {expected:?} and a close: {start}"
            ));
        }
    }
    assert!(wrong.is_empty(), "fast lane {fast_lane}: {wrong:#?}");
    // The node still serves.
    let (statuses, _, _) = exchange(
        addr,
        &format!(
            "{}Content-Length: {}\r\nConnection: close\r\n\r\n{INIT}",
            head(""),
            INIT.len()
        ),
    );
    assert_eq!(statuses, [200]);
}

#[test]
fn smuggling_heads_get_an_answer_and_a_close_on_the_fast_lane() {
    check(true);
}

#[test]
fn smuggling_heads_get_an_answer_and_a_close_on_hyper_alone() {
    check(false);
}
