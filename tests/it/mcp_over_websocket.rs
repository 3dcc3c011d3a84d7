//! Black-box tests of the WebSocket transport (`/ws` on the HTTP listener) with a plain
//! WebSocket client: subprotocol `mcp`, one JSON-RPC message per text frame.

use crate::support::{node, ws};

use futures::SinkExt;
use node::Node;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ws::{next_json, send};

#[tokio::test]
async fn a_plain_websocket_client_speaks_mcp_one_message_per_text_frame() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("mcp")
    );
    send(
        &mut socket,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await["result"]["protocolVersion"],
        "2025-06-18"
    );
    send(
        &mut socket,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "over ws"}}}),
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await["result"]["content"][0]["text"],
        "over ws"
    );

    // Progress notifications arrive as their own frames before the answer.
    send(
        &mut socket,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "test_tool_with_progress", "_meta": {"progressToken": 1}}}),
    )
    .await;
    let mut methods = Vec::new();
    loop {
        let message = next_json(&mut socket).await;
        if message["id"] == 3 {
            break;
        }
        methods.push(message["method"].as_str().unwrap().to_owned());
    }
    assert_eq!(methods, vec!["notifications/progress"; 3]);

    // Bad input: a clear error, and the socket goes on.
    socket
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["error"]["code"], -32600);
    socket.send(Message::Text("{broken".into())).await.unwrap();
    assert_eq!(next_json(&mut socket).await["error"]["code"], -32700);
    send(
        &mut socket,
        json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["result"], json!({}));
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

/// A WebSocket client written against the wire, to see what a library would hide: the
/// `Sec-WebSocket-Extensions` answer and the RSV1 bit of each frame (RFC 7692).
mod wire {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};

    pub(super) struct Client {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
        /// The server's `Sec-WebSocket-Extensions`, if any.
        pub(super) extensions: Option<String>,
    }

    /// One frame from the server: whether RSV1 (compressed) was set, and its payload.
    pub(super) struct Frame {
        pub(super) compressed: bool,
        pub(super) opcode: u8,
        pub(super) payload: Vec<u8>,
    }

    impl Client {
        pub(super) fn connect(addr: SocketAddr, offer_deflate: bool) -> Client {
            let stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let extension = if offer_deflate {
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            } else {
                ""
            };
            write!(
                writer,
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Protocol: mcp\r\n{extension}\r\n"
            )
            .unwrap();
            let mut reader = BufReader::new(stream);
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 101"), "{status}");
            let mut extensions = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("sec-websocket-extensions")
                {
                    extensions = Some(value.trim().to_owned());
                }
            }
            Client {
                reader,
                writer,
                extensions,
            }
        }

        /// Sends one masked, uncompressed text frame.
        pub(super) fn send_text(&mut self, text: &str) {
            let payload = text.as_bytes();
            let mut frame = vec![0x81];
            match payload.len() {
                n if n < 126 => frame.push(0x80 | n as u8),
                n if n <= 0xffff => {
                    frame.push(0x80 | 126);
                    frame.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    frame.push(0x80 | 127);
                    frame.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            let mask = [0x12, 0x34, 0x56, 0x78];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            self.writer.write_all(&frame).unwrap();
        }

        /// The next data frame (pings skipped).
        pub(super) fn next(&mut self) -> Frame {
            loop {
                let mut head = [0u8; 2];
                self.reader.read_exact(&mut head).unwrap();
                let len = match head[1] & 0x7f {
                    126 => {
                        let mut n = [0u8; 2];
                        self.reader.read_exact(&mut n).unwrap();
                        u16::from_be_bytes(n) as usize
                    }
                    127 => {
                        let mut n = [0u8; 8];
                        self.reader.read_exact(&mut n).unwrap();
                        u64::from_be_bytes(n) as usize
                    }
                    n => n as usize,
                };
                assert_eq!(head[1] & 0x80, 0, "a server frame is never masked");
                let mut payload = vec![0u8; len];
                self.reader.read_exact(&mut payload).unwrap();
                let opcode = head[0] & 0x0f;
                assert_eq!(head[0] & 0x80, 0x80, "one frame per message");
                if opcode == 0x9 {
                    continue;
                }
                return Frame {
                    compressed: head[0] & 0x40 != 0,
                    opcode,
                    payload,
                };
            }
        }

        /// The next message as JSON, inflated when it came compressed.
        pub(super) fn next_json(&mut self) -> (bool, serde_json::Value) {
            let frame = self.next();
            assert_eq!(frame.opcode, 0x1, "a text frame");
            let text = if frame.compressed {
                inflate(&frame.payload)
            } else {
                frame.payload
            };
            (frame.compressed, serde_json::from_slice(&text).unwrap())
        }

        /// Sends `initialize` and reads its answer.
        pub(super) fn initialize(&mut self) {
            self.send_text(
                r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#,
            );
            let (_, answer) = self.next_json();
            assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
        }

        /// Sends `tools/call echo` with `text`; whether the answer came compressed, and the text
        /// it echoed.
        pub(super) fn echo(&mut self, id: u64, text: &str) -> (bool, String) {
            self.send_tools_call_echo(id, text);
            let (compressed, answer) = self.next_json();
            let echoed = answer["result"]["content"][0]["text"].as_str();
            (compressed, echoed.expect("an echoed text").to_owned())
        }

        /// Sends `tools/call echo` with `text`.
        pub(super) fn send_tools_call_echo(&mut self, id: u64, text: &str) {
            self.send_text(
                &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}})
                .to_string(),
            );
        }
    }

    /// A message's payload as RFC 7692 compresses it: raw deflate, its closing empty block
    /// (`00 00 ff ff`) left off.
    pub(super) fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut deflated = payload.to_vec();
        deflated.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let mut inflate = flate2::Decompress::new(false);
        let mut inflated = Vec::with_capacity(64 * payload.len() + 1024);
        inflate
            .decompress_vec(&deflated, &mut inflated, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(
            inflate.total_in() as usize,
            deflated.len(),
            "inflated whole"
        );
        inflated
    }
}

#[test]
fn permessage_deflate_is_agreed_and_large_messages_go_compressed() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    let mut client = wire::Client::connect(addr, true);
    let agreed = client.extensions.clone().expect("an extension agreed");
    assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
    client.send_text(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}}})
        .to_string(),
    );
    let (compressed, answer) = client.next_json();
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
    assert!(!compressed, "under 1 KiB: sent plain");
    let text = "an answer worth compressing ".repeat(200);
    client.send_tools_call_echo(2, &text);
    let frame = client.next();
    assert!(frame.compressed, "over 1 KiB: sent compressed");
    assert!(
        frame.payload.len() < text.len() / 4,
        "{} bytes for {} of text",
        frame.payload.len(),
        text.len()
    );
    let answer: Value = serde_json::from_slice(&wire::inflate(&frame.payload)).unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], text.as_str());
    // No context takeover: the next message inflates on its own (a fresh inflater), though it
    // repeats the last one.
    assert!(
        agreed.contains("server_no_context_takeover")
            && agreed.contains("client_no_context_takeover"),
        "{agreed}"
    );
    let (compressed, echoed) = client.echo(3, &text);
    assert!(compressed);
    assert_eq!(echoed, text);

    // A client that does not offer it gets plain frames, whatever their size.
    let mut plain = wire::Client::connect(addr, false);
    assert_eq!(plain.extensions, None);
    plain.initialize();
    let (compressed, echoed) = plain.echo(1, &text);
    assert!(!compressed);
    assert_eq!(echoed, text);
}

#[test]
fn ws_compression_false_never_agrees_to_deflate() {
    let node = Node::http(Some("[http]\nws_compression = false\n"));
    let mut client = wire::Client::connect(node.http.unwrap(), true);
    assert_eq!(client.extensions, None);
    client.initialize();
    let text = "plain ".repeat(400);
    let (compressed, echoed) = client.echo(1, &text);
    assert!(!compressed);
    assert_eq!(echoed, text);
}

#[test]
fn a_message_over_max_message_size_closes_the_socket_with_1009() {
    let node = Node::http(Some("max_message_size = 2048\n"));
    let mut client = wire::Client::connect(node.http.unwrap(), false);
    client.initialize();
    client.send_text(&"x".repeat(3000));
    let close = client.next();
    assert_eq!(close.opcode, 0x8, "a close frame");
    assert_eq!(close.payload[..2], 1009u16.to_be_bytes(), "message too big");
}

#[test]
fn a_socket_silent_for_idle_timeout_is_closed_without_waiting_for_a_ping() {
    // The keep-alive ping is every 15 s by default; the idle timeout is checked on its own
    // deadline, not only when a ping is due.
    let node = Node::http(Some("idle_timeout = 300\n"));
    let mut client = wire::Client::connect(node.http.unwrap(), false);
    client.initialize();
    let started = std::time::Instant::now();
    let close = client.next();
    assert_eq!(close.opcode, 0x8, "a close frame");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
}
