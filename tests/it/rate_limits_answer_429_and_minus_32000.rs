//! Black-box tests of the rate limits (`[rate_limit]`, issue 23): a client past its request
//! burst gets 429 with `Retry-After` and a JSON-RPC -32000 body over HTTP, decided from the head
//! (on the fast lane and on hyper's path), and -32000 with `data.retryAfterMs` on TCP, where its
//! connection lives on; new sessions (an `initialize`, a WebSocket upgrade) have their own bucket; connections per source address are
//! capped with a clean refusal; the refusals are counted by reason `rate_limit`.

use crate::support::{http, node};

use http::{JSON, initialize_request, post, request};
use node::Node;
use serde_json::json;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

const QUICK: Duration = Duration::from_secs(10);

fn ping() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "ping"})
}

#[test]
fn http_requests_past_the_burst_get_429_with_retry_after_on_both_paths() {
    for fast_lane in [true, false] {
        let node = Node::http_lane(
            Some("[rate_limit]\nrequests_per_second = 1\nrequest_burst = 3\n"),
            fast_lane,
        );
        let addr = node.http.unwrap();
        let session = http::initialize(addr);
        // initialize and its notification took two tokens; one is left.
        let ok = post(addr, Some(&session), &ping(), &[]);
        assert_eq!(ok.status, 200, "lane {fast_lane}: {}", ok.text());
        let refused = post(addr, Some(&session), &ping(), &[]);
        assert_eq!(refused.status, 429, "lane {fast_lane}: {}", refused.text());
        assert_eq!(refused.header("retry-after"), Some("1"));
        let error = &refused.json()["error"];
        assert_eq!(error["code"], -32000);
        assert!(error["data"]["retryAfterMs"].as_u64().unwrap() <= 1000);
        assert_eq!(error["data"]["reason"], "rate_limit");
        // The head decides: a request announcing a body it never sends is refused at once,
        // its body not awaited (else the answer would wait for the body's read timeout).
        let mut withheld = TcpStream::connect(addr).unwrap();
        withheld.set_read_timeout(Some(QUICK)).unwrap();
        write!(
            withheld,
            "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\ncontent-length: 100000\r\n\r\n"
        )
        .unwrap();
        let mut status = [0u8; 12];
        withheld.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 429", "lane {fast_lane}");
        // A token comes back within a second.
        std::thread::sleep(Duration::from_millis(1100));
        let again = post(addr, Some(&session), &ping(), &[]);
        assert_eq!(again.status, 200, "lane {fast_lane}: {}", again.text());
    }
}

#[test]
fn new_sessions_have_their_own_bucket() {
    let node = Node::http(Some(
        "[rate_limit]\nsessions_per_minute = 1\nsession_burst = 2\n",
    ));
    let addr = node.http.unwrap();
    for _ in 0..2 {
        let made = post(addr, None, &initialize_request(), &[]);
        assert_eq!(made.status, 200, "{}", made.text());
    }
    let refused = post(addr, None, &initialize_request(), &[]);
    assert_eq!(refused.status, 429, "{}", refused.text());
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(refused.json()["error"]["data"]["reason"], "rate_limit");
}

#[test]
fn websocket_upgrades_count_as_new_sessions() {
    let node = Node::http(Some(
        "[rate_limit]\nsessions_per_minute = 1\nsession_burst = 1\n",
    ));
    let addr = node.http.unwrap();
    let upgrade = |stream: &mut TcpStream| {
        use std::io::{Read, Write};
        stream.set_read_timeout(Some(QUICK)).unwrap();
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).into_owned()
    };
    let mut first = TcpStream::connect(addr).unwrap();
    assert_eq!(upgrade(&mut first), "HTTP/1.1 101");
    let mut second = TcpStream::connect(addr).unwrap();
    assert_eq!(upgrade(&mut second), "HTTP/1.1 429");
}

#[test]
fn tcp_requests_past_the_burst_get_minus_32000_with_retry_after_ms_and_the_connection_lives() {
    let node = Node::tcp(Some(
        "[rate_limit]\nrequests_per_second = 1\nrequest_burst = 2\nconnections_per_address = 2\n",
    ));
    let mut client = node.connect();
    let init = client.initialize("2025-11-25", json!({}));
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    let ok = client.call(2, "ping", json!({}));
    assert!(ok.get("result").is_some(), "{ok}");
    let refused = client.call(3, "ping", json!({}));
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert_eq!(refused["error"]["message"], "rate limited");
    let retry = refused["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry), "{retry}");
    std::thread::sleep(Duration::from_millis(retry + 50));
    let again = client.call(4, "ping", json!({}));
    assert!(again.get("result").is_some(), "{again}");
    // A third connection from the same address is told why and closed.
    let _second = node.connect();
    let third = TcpStream::connect(node.tcp.unwrap()).unwrap();
    third.set_read_timeout(Some(QUICK)).unwrap();
    let mut line = String::new();
    BufReader::new(third).read_line(&mut line).unwrap();
    let refusal: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(refusal["error"]["code"], -32000, "{line}");
    assert!(refusal["error"]["data"]["retryAfterMs"].as_u64().is_some());
    // The first connection still serves.
    std::thread::sleep(Duration::from_millis(1100));
    let still = client.call(5, "ping", json!({}));
    assert!(still.get("result").is_some(), "{still}");
}

#[test]
fn http_connections_past_the_cap_per_address_get_429_and_a_close() {
    let node = Node::http(Some("[rate_limit]\nconnections_per_address = 1\n"));
    let addr = node.http.unwrap();
    let _held = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let refused = request(addr, "POST", &[JSON], b"{}", QUICK);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"]["code"], -32000);
    drop(_held);
    std::thread::sleep(Duration::from_millis(300));
    let served = post(addr, None, &initialize_request(), &[]);
    assert_eq!(served.status, 200, "{}", served.text());
}
