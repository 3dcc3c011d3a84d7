//! Black-box tests of the WebSocket transport (`/ws` on the HTTP listener) with a plain
//! WebSocket client: subprotocol `mcp`, one JSON-RPC message per text frame.

#[path = "support/node.rs"]
mod node;

use futures::{SinkExt, StreamExt};
use node::Node;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

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
