//! Owns the legacy HTTP+SSE transport of revision 2024-11-05, for old clients: `GET /sse` opens
//! a session's event stream, whose first event (`endpoint`) names where to POST
//! (`/messages?sessionId=…`); every answer and notification then arrives on that stream as a
//! `message` event, and each POST is acknowledged with 202 (or, for a request the rules refuse
//! for a scope the token lacks, answered 403 with the scope challenge, as `/mcp` does).
//!
//! The session lives as long as its stream: when the client drops the GET connection, the
//! session actor is stopped and later POSTs get 404.

use super::{HttpState, SSE_HEADERS, TlsClient, check_caller, plain, session_id, with_tls};
use crate::dispatch::Dispatcher;
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::session::{SessionHandle, start_session};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::sync::Arc;

/// Legacy sessions by id.
/// The open legacy sessions by id, each with the subject of the token that opened it (`[auth]`):
/// only that subject's `POST /messages` reach it.
pub(crate) type LegacySessions =
    std::sync::Mutex<HashMap<String, (SessionHandle, Option<Arc<str>>)>>;

/// Removes the session when its stream is dropped.
struct EndOnDrop {
    state: Arc<HttpState>,
    id: String,
    _gauge: crate::metrics::ConnectionGauge,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let removed = lock(&self.state.legacy).remove(&self.id);
        if let Some((session, _owner)) = removed {
            tracing::info!(legacy_session = %self.id, "legacy sse stream closed; ending its session");
            tokio::spawn(async move { session.end().await });
        }
    }
}

/// `GET /sse`.
pub(crate) async fn open(
    State(state): State<Arc<HttpState>>,
    tls: Option<TlsClient>,
    headers: HeaderMap,
) -> Response {
    let owner = match check_caller(&with_tls(&headers, tls.as_ref()), &state.settings).await {
        Ok(principal) => principal.map(|p| Arc::<str>::from(p.subject.as_str())),
        Err(refusal) => return refusal,
    };
    let (outbound, queue) = Outbound::channel();
    let session = match start_session(outbound, state.ctx.sessions).await {
        Ok(session) => session,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    let id = match session_id() {
        Ok(id) => id,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    lock(&state.legacy).insert(id.clone(), (session, owner));
    let guard = EndOnDrop {
        state: Arc::clone(&state),
        id: id.clone(),
        _gauge: state
            .ctx
            .server
            .metrics
            .connection(crate::metrics::Transport::LegacySse),
    };
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: /messages?sessionId={id}\n\n"
    ));
    let keep_alive = state.settings.keep_alive;
    let messages = futures::stream::unfold((queue, guard), move |(mut queue, guard)| async move {
        let item = match tokio::time::timeout(keep_alive, queue.rx.recv()).await {
            Ok(Some(frame)) if frame.is_empty() => return None,
            Ok(Some(frame)) => {
                queue.level().written(1, frame.len());
                let text = String::from_utf8_lossy(&frame).into_owned();
                Bytes::from(format!("event: message\ndata: {text}\n\n"))
            }
            Ok(None) => return None,
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok::<_, std::convert::Infallible>(item), (queue, guard)))
    });
    let body = futures::stream::once(async move { Ok(endpoint) }).chain(messages);
    (SSE_HEADERS, Body::from_stream(body)).into_response()
}

/// `POST /messages?sessionId=…`.
pub(crate) async fn message(
    State(state): State<Arc<HttpState>>,
    Query(query): Query<HashMap<String, String>>,
    tls: Option<TlsClient>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match check_caller(&with_tls(&headers, tls.as_ref()), &state.settings).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let Some(id) = query.get("sessionId") else {
        return plain(StatusCode::BAD_REQUEST, "missing sessionId");
    };
    let session = lock(&state.legacy).get(id).cloned();
    let session = match (session, &principal) {
        (Some((_, Some(owner))), Some(principal)) if *owner != *principal.subject => None,
        (session, _) => session.map(|(session, _)| session),
    };
    let Some(session) = session else {
        return plain(StatusCode::NOT_FOUND, "unknown or closed session");
    };
    if body.len() > state.ctx.limits.max_message_size {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body exceeds max_message_size",
        );
    }
    let dispatcher = Dispatcher::new(
        Arc::clone(&state.ctx.server),
        session,
        crate::metrics::Transport::LegacySse,
    )
    .with_principal(principal.clone());
    // The rules' refusal for a missing scope: 403 with the scope challenge on this POST (the
    // client steps up and posts again), not on the stream.
    let step_up =
        |frame: &[u8]| super::oauth::step_up(&state.settings, principal.as_deref(), frame);
    match dispatcher.handle_frame_or(&body, step_up).await {
        Some(step_up) => step_up,
        None => (StatusCode::ACCEPTED, "Accepted").into_response(),
    }
}
