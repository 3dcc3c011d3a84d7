//! Owns the WebSocket transport: `/ws` on the HTTP listener (subprotocol `mcp`), one JSON-RPC
//! message per text frame, one session per socket.
//!
//! Per-connection buffers are kept small (an idle socket should cost kilobytes, not the 128 KiB
//! tungstenite allocates by default): a 4 KiB read buffer that grows only with traffic, no
//! write buffering beyond one frame. Frames over `max_message_size` close the socket (1009);
//! a socket silent for the idle timeout is closed; the server pings every `keep_alive`.

use crate::dispatch::Dispatcher;
use crate::metrics::Transport;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::session::start_session;
use crate::transport::http::{HttpState, check_caller};
use crate::transport::outbound::Outbound;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use std::sync::Arc;

/// Read buffer of each socket.
pub const READ_BUFFER: usize = 1024;

/// `GET /ws` with an upgrade.
pub async fn upgrade(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refusal) = check_caller(&headers, &state.settings) {
        return refusal;
    }
    let max = state.ctx.limits.max_message_size;
    ws.protocols(["mcp"])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(socket, state))
}

async fn serve(socket: WebSocket, state: Arc<HttpState>) {
    let (outbound, mut queue) = Outbound::channel();
    // The futures awaited below are boxed: an idle socket's task is as big as the biggest state
    // across its awaits, and handling a frame (the dispatcher) is by far the biggest.
    let session = match Box::pin(start_session(outbound, state.ctx.client_request_timeout)).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a websocket session");
            return;
        }
    };
    let dispatcher = Dispatcher::new(Arc::clone(&state.ctx.server), session.clone());
    let _gauge = state.ctx.server.metrics.connection(Transport::WebSocket);
    let (mut sink, mut stream) = socket.split();
    let idle = state.ctx.limits.idle_timeout;
    let mut ping = tokio::time::interval(state.settings.keep_alive);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let reason = loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_heard = tokio::time::Instant::now();
                    Box::pin(dispatcher.handle_frame(text.as_bytes())).await;
                }
                Some(Ok(Message::Binary(_))) => {
                    last_heard = tokio::time::Instant::now();
                    session.shared.send(jsonrpc::encode_error(
                        None,
                        &RpcError::invalid_request("binary frames are not JSON-RPC: send text frames"),
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = tokio::time::Instant::now(),
                Some(Ok(Message::Close(_))) | None => break "client closed",
                Some(Err(e)) => {
                    tracing::info!(error = %e, "websocket read failed");
                    break "read failed";
                }
            },
            frame = queue.rx.recv() => match frame {
                Some(frame) if !frame.is_empty() => {
                    queue.level.written(1, frame.len());
                    let text = String::from_utf8_lossy(&frame).into_owned();
                    if Box::pin(sink.send(Message::Text(text.into()))).await.is_err() {
                        break "write failed";
                    }
                }
                _ => break "session ended",
            },
            _ = ping.tick() => {
                if idle.is_some_and(|limit| last_heard.elapsed() > limit) {
                    break "idle timeout";
                }
                if Box::pin(sink.send(Message::Ping(Default::default()))).await.is_err() {
                    break "write failed";
                }
            }
        }
    };
    tracing::info!(session = %session.shared.id, reason, "websocket closed");
    let _ = Box::pin(sink.close()).await;
    let _ = Box::pin(
        session
            .actor
            .stop_and_wait(None, Some(std::time::Duration::from_secs(2))),
    )
    .await;
}
