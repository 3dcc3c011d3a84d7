//! Owns the stateless side of `/mcp` (revision 2026-07-28), chosen per request by an
//! `MCP-Protocol-Version` header that names no handshake revision.
//!
//! Rules kept here (pinned by `tests/mcp_stateless_2026.rs`):
//! - A POST is one self-contained request: no `initialize`, no `Mcp-Session-Id`. It carries its
//!   revision and capabilities in `params._meta`; the `MCP-Protocol-Version`, `Mcp-Method` and
//!   (for `tools/call`, `prompts/get`, `resources/read`) `Mcp-Name` headers must agree with the
//!   body (-32020, 400); a routing header sent twice is a mismatch too.
//! - The answer is `application/json` with the status of its error code (-32601 → 404, the
//!   ladder's codes → 400), unless the handler sends notifications first: then an SSE stream.
//! - `subscriptions/listen` answers with an SSE stream owned by a session actor (so registry
//!   broadcasts reach it); the actor stops when the client goes.
//! - A notification gets 202; a batch or a posted response gets 400; GET and DELETE get 405.

use super::answer::{self, Answer, IntoAnswer as _, drain_ready, json_response, sse_frames};
use super::head_checks::check_body;
use super::{HttpState, RequestHeaders, plain, unless_shed};
use crate::dispatch::Dispatcher;
use crate::outbound::Outbound;
use crate::protocol::incoming::{self, Incoming};
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::modern;
use crate::session::{SessionShared, start_session};
use axum::http::{StatusCode, header};
use std::sync::Arc;

/// A JSON-RPC error answer with the status its code maps to.
fn error_response(id: Option<&str>, error: &RpcError) -> Answer {
    status_json(jsonrpc::encode_error(id, error))
}

/// One JSON answer; an error gets the HTTP status of its code.
fn status_json(frame: Vec<u8>) -> Answer {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i32,
    }
    #[derive(serde::Deserialize)]
    struct ErrorFrame {
        error: Option<Code>,
    }
    let status = serde_json::from_slice::<ErrorFrame>(&frame)
        .ok()
        .and_then(|f| f.error)
        .map_or(200, |e| modern::http_status_of(e.code));
    answer::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        frame,
        None,
    )
}

/// Serves one stateless request.
pub(super) async fn handle(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    if method != axum::http::Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_answer();
    }
    if let Some(refusal) = check_body(state, &read, body) {
        return refusal.into_answer();
    }
    if let Some(twice) = read.repeated_routing {
        return error_response(
            None,
            &RpcError::new(
                modern::HEADER_MISMATCH,
                format!("{twice} header appears more than once"),
            ),
        );
    }
    let routing = &read.routing;
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
    if trimmed.is_some_and(|at| body[at] == b'[') {
        return error_response(
            None,
            &RpcError::invalid_request(
                "a batch is not allowed at 2026-07-28: send one request per POST",
            ),
        );
    }
    let message = match incoming::parse(body) {
        Ok(message) => message,
        Err(rejection) => {
            return error_response(rejection.id.map(|id| id.get()), &rejection.error);
        }
    };
    // The id borrows from the body, not from `message`: it outlives handing `message` over.
    let (request_id, listen) = match &message {
        Incoming::Notification { .. } => {
            let version = routing.headers.protocol_version.unwrap_or_default();
            if !modern::is_served(version) {
                return error_response(None, &modern::unsupported_version(version));
            }
            // No client→server notification acts on anything at 2026-07-28: acknowledged.
            return StatusCode::ACCEPTED.into_answer();
        }
        Incoming::Response { .. } => {
            return error_response(
                None,
                &RpcError::invalid_request("a client cannot send responses at 2026-07-28"),
            );
        }
        Incoming::Request { id, method, .. } => (id.get(), method == "subscriptions/listen"),
    };
    let settings = state.ctx.sessions;
    let server = Arc::clone(&state.ctx.server);
    if listen {
        if !read.accepts_sse() {
            return plain(
                StatusCode::NOT_ACCEPTABLE,
                "subscriptions/listen needs Accept: text/event-stream",
            )
            .into_answer();
        }
        let (outbound, mut queue) = Outbound::channel();
        let session = match start_session(outbound.clone(), settings).await {
            Ok(session) => session,
            Err(e) => return error_response(Some(request_id), &e),
        };
        let dispatcher = Dispatcher::with_reply(server, session.clone(), outbound)
            .with_principal(read.principal.clone());
        // Parsed once, above: handed over as it is.
        state.ctx.server.metrics.received(body.len());
        let answer = dispatcher.answer_routed_message(message, routing).await;
        drop(dispatcher);
        let answer = match unless_shed(answer) {
            Ok(answer) => answer,
            Err(refusal) => return refusal.into_answer(),
        };
        let (mut ready, finished) = drain_ready(&mut queue);
        ready.extend(answer);
        // Refused before the stream began (bad envelope, bad filter): one JSON error.
        if finished
            || ready
                .first()
                .is_some_and(|f| !f.starts_with(b"{\"jsonrpc\":\"2.0\",\"method\""))
        {
            drop(session);
            return ready
                .into_iter()
                .next()
                .map_or_else(|| StatusCode::ACCEPTED.into_answer(), status_json);
        }
        // The session ends when the stream does: this is its last handle.
        return sse_frames(ready, queue, &state.settings, Some(Box::new(session))).into_answer();
    }
    let (reply, mut queue) = Outbound::channel();
    let shared = SessionShared::new("stateless", reply.clone(), settings.client_request_timeout);
    let dispatcher =
        Dispatcher::stateless(server, shared, reply).with_principal(read.principal.clone());
    // Parsed once, above: handed over as it is.
    state.ctx.server.metrics.received(body.len());
    let answer = dispatcher.answer_routed_message(message, routing).await;
    drop(dispatcher);
    let answer = match unless_shed(answer) {
        Ok(answer) => answer,
        Err(refusal) => return refusal.into_answer(),
    };
    let (mut ready, finished) = drain_ready(&mut queue);
    match answer {
        // Nothing sent before the answer (no progress, no log): one JSON body.
        Some(frame) if ready.is_empty() => return json_or_error(state, &read, frame, request_id),
        Some(frame) => ready.push(frame),
        None => {}
    }
    if finished && ready.len() == 1 {
        return json_or_error(state, &read, ready.remove(0), request_id);
    }
    sse_frames(ready, queue, &state.settings, None).into_answer()
}

/// The one JSON answer to request `id`: a result as it is (gzipped when it pays), an error with
/// the HTTP status of its code — the rules' refusal for a missing scope with 403 and the scope
/// challenge, as on a session's POST.
fn json_or_error(
    state: &HttpState,
    headers: &RequestHeaders<'_>,
    frame: Vec<u8>,
    id: &str,
) -> Answer {
    if jsonrpc::is_error_answer(&frame, id) {
        if let Some(step_up) =
            super::oauth::step_up(&state.settings, headers.principal.as_deref(), &frame)
        {
            return step_up.into_answer();
        }
        return status_json(frame);
    }
    json_response(headers, frame)
}
