//! Owns the MCP endpoint, `/mcp`: the one entry every lane calls with a request's method, its
//! headers read and its body whole — erlmcp's own fast lane, hyper's `POST /mcp` past the router,
//! and the router for the other methods — and the handlers behind it: POST (a message or a
//! batch, within a session or making one with `initialize`), GET (a session's stream, or a
//! resumed one), DELETE (ending a session). A request on the stateless revision goes to
//! [`super::stateless`]. Each lane writes the [`Answer`] it gets back in its own way.

use super::answer::{self, Answer, IntoAnswer as _, drain_ready, json_response, sse};
use super::head_checks::{check_body, check_caller, not_json};
use super::sessions::{HttpSession, NewSessionError, create_session, end_session};
use super::{HttpState, RequestHeaders, busy, plain, stateless, unavailable, unless_shed};
use super::{forward, forward_lane, kept};
use crate::dispatch::Dispatcher;
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Any request to `/mcp`, its headers read and its body whole.
pub(super) async fn answer(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    mut read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    match check_caller(&read, &state.settings).await {
        Ok(principal) => read.principal = principal,
        Err(refusal) => return refusal.into_answer(),
    }
    // Forwarded by another member over the lane: served here, never forwarded again, for the
    // client at the address its mark says. A mark that does not check is dropped.
    if let Some(mark) = read.forwarded.take() {
        match forward_lane::judge(mark) {
            forward_lane::Judged::Trusted(peer) => {
                read.peer = peer;
                return serve_here(state, method, read, body).await;
            }
            forward_lane::Judged::Misdirected => return forward_lane::misdirected(),
            forward_lane::Judged::Forged => forward_lane::log_forged(read.peer),
        }
    }
    // The revision is decided per request: a version header that names no handshake revision
    // (2026-07-28, or one this server does not know) takes the stateless path, which answers an
    // unknown version with -32022 naming the versions it serves.
    if read.takes_stateless_path() {
        // Clustered, a task request for a task kept on another member goes there.
        if let Some(owner) = forward::task_owner_elsewhere(method, &read) {
            return forward_lane::forward_from(
                state,
                &owner,
                forward::Named::Task,
                method,
                &read,
                body,
            )
            .await;
        }
        return stateless::handle(state, method, read, body).await;
    }
    if let Some(owner) = forward::owner_elsewhere(state, &read) {
        return forward_lane::forward_from(
            state,
            &owner,
            forward::Named::Session,
            method,
            &read,
            body,
        )
        .await;
    }
    serve(state, method, read, body).await
}

/// A request forwarded by another node of the cluster: served here whatever the ring says
/// (never forwarded again), after the same checks as a request that arrived here.
pub(super) async fn answer_here(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    mut read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    match check_caller(&read, &state.settings).await {
        Ok(principal) => read.principal = principal,
        Err(refusal) => return refusal.into_answer(),
    }
    serve_here(state, method, read, body).await
}

/// A request served here whatever the ring says, its caller already checked.
async fn serve_here(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    if read.takes_stateless_path() {
        return stateless::handle(state, method, read, body).await;
    }
    serve(state, method, read, body).await
}

/// A request for a session held here (or none): to its handler by method. Clustered, a session
/// not held here but replicated here is taken over first (its owner left the ring).
async fn serve(
    state: &Arc<HttpState>,
    method: &axum::http::Method,
    read: RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    if let Some(view) = crate::cluster::current() {
        if !view.has_quorum() {
            return no_quorum(&view);
        }
        if let Some(id) = read.session_id {
            super::replica::take_over(state, id).await;
        }
    }
    match *method {
        axum::http::Method::POST => post(state, &read, body).await,
        axum::http::Method::GET => get(state, &read).into_answer(),
        axum::http::Method::DELETE => delete(state, &read).await.into_answer(),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST, DELETE")],
        )
            .into_answer(),
    }
}

/// 503 (Retry-After: 1) with a JSON-RPC error: this node sees fewer members up than
/// `cluster.quorum` (it is on the minority side of a partition), so the majority serves the
/// sessions. Logged at most once a second.
fn no_quorum(view: &crate::cluster::ClusterView) -> Answer {
    static REFUSED: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::per_second();
    let up = view.ring().members().count();
    let quorum = view.quorum();
    if let Some(held) = REFUSED.allow() {
        tracing::warn!(
            up,
            quorum,
            refused_since_last_line = held,
            "cluster: no quorum; a session request refused"
        );
    }
    let message = format!(
        "this node sees {up} of the {quorum} cluster members it needs up (cluster.quorum): \
         it serves no session until the cluster heals; send the request to another node"
    );
    let body = jsonrpc::encode_error(None, &jsonrpc::RpcError::new(-32000, message));
    unavailable(body, Some(1)).into_answer()
}

/// How the dispatcher's answer to a body that is not JSON starts (id `null`, code -32700).
const PARSE_ERROR_FRAME: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,";

/// Why a request names no usable session.
enum NoSession {
    /// No `Mcp-Session-Id`: 400.
    Missing,
    /// Unknown or expired: 404.
    Unknown,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            Self::Missing => plain(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id header"),
            Self::Unknown => forward::unknown_session(),
        }
    }
}

/// The session named by `id` (the request's `Mcp-Session-Id`), marked as seen now. A session
/// made with an access token is another subject's unknown (404): a session id is not a
/// credential.
fn find_session(
    state: &HttpState,
    id: Option<&str>,
    principal: Option<&crate::auth::Principal>,
) -> Result<Arc<HttpSession>, NoSession> {
    let id = id.ok_or(NoSession::Missing)?;
    let session = lock(&state.sessions)
        .get(id)
        .cloned()
        .ok_or(NoSession::Unknown)?;
    if let (Some(owner), Some(principal)) = (session.owner.get(), principal)
        && **owner != *principal.subject
    {
        return Err(NoSession::Unknown);
    }
    session.last_seen.mark();
    Ok(session)
}

/// Whether a POST body is an `initialize` request (only asked when it carries no session id).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(default, borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(body)
        .is_ok_and(|p| p.method.as_deref() == Some("initialize"))
}

async fn post(state: &Arc<HttpState>, read: &RequestHeaders<'_>, body: &[u8]) -> Answer {
    if let Some(refusal) = check_body(state, read, body) {
        return refusal.into_answer();
    }
    let id = read.session_id;
    let created = id.is_none() && is_initialize(body);
    let session = if created {
        let admission = &state.ctx.server.admission;
        if let Err(shed) = admission.check_new_session(crate::metrics::Transport::Http) {
            let error = jsonrpc::encode_error(None, &shed.to_rpc_error());
            return unavailable(error, Some(shed.retry_after_secs())).into_answer();
        }
        if admission.rate().limits_sessions() {
            // Keyed by who the token proved (checked above, the head's `check_caller`).
            let principal = read.principal.as_deref().map(|p| p.subject.as_str());
            let keys = crate::admission::rate::keys(read.peer, principal);
            if let Err(shed) = admission.check_session_rate(crate::metrics::Transport::Http, &keys)
            {
                return super::head_checks::too_many_requests(&shed).into_answer();
            }
        }
        match create_session(state, read.peer).await {
            Ok(session) => {
                if let Some(principal) = &read.principal {
                    let _ = session.owner.set(principal.subject.as_str().into());
                }
                if let Some(client) = read.tls_client {
                    tracing::debug!(session = ?session.id, %client, "session of tls client {client}");
                }
                session
            }
            Err(NewSessionError::Full(full)) => return busy(&full.message()).into_answer(),
            Err(NewSessionError::Failed(e)) => {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.message).into_answer();
            }
        }
    } else {
        match find_session(state, id, read.principal.as_deref()) {
            Ok(session) => session,
            // A body that is not JSON is told so before its missing or unknown session.
            Err(refusal) => {
                return not_json(body).map_or(refusal.into_answer(), |e| e.into_answer());
            }
        }
    };
    let session_header = session.id.clone();
    let (reply, mut queue) = Outbound::resumable_stream();
    let dispatcher =
        Dispatcher::with_reply(Arc::clone(&state.ctx.server), session.handle.clone(), reply)
            .with_principal(read.principal.clone());
    let answer = dispatcher.answer_frame(body).await;
    drop(dispatcher);
    // Kept in the store before the answer goes out (acknowledged = durable, per store.fsync).
    if created {
        // Clustered, on its replicas too before the answer goes out (a bounded wait).
        let replicated = session
            .id
            .to_str()
            .ok()
            .and_then(super::replica::expect_created);
        if kept::keep_new(state, &session).await
            && let Some(replicated) = replicated
        {
            replicated.wait().await;
        }
    } else {
        kept::initialized(&session);
    }
    let (mut ready, finished) = drain_ready(&mut queue);
    let answer = match unless_shed(answer) {
        Ok(answer) => answer,
        Err(refusal) => {
            let mut response = refusal.into_answer();
            response.set_session_id(session.id.clone());
            return response;
        }
    };
    ready.extend(answer);
    // Nothing answered and nothing pending: the body held only notifications or responses.
    let mut response = if finished && ready.is_empty() {
        StatusCode::ACCEPTED.into_answer()
    } else if finished && ready.len() == 1 && !ready[0].is_empty() {
        let frame = ready.remove(0);
        if frame.starts_with(PARSE_ERROR_FRAME) {
            // The body was not JSON: 400, as the session-less checks above answer it.
            answer::json(StatusCode::BAD_REQUEST, frame, None)
        } else if let Some(step_up) =
            super::oauth::step_up(&state.settings, read.principal.as_deref(), &frame)
        {
            // The rules refused it for a missing scope: 403 with the scope challenge.
            step_up.into_answer()
        } else {
            json_response(read, frame)
        }
    } else {
        let stream = session.new_stream();
        for frame in ready {
            stream.push(frame, state.settings.replay_buffer);
        }
        if finished {
            stream.finish();
        } else {
            stream.feed(queue, state.settings.replay_buffer);
        }
        // Everything already there (the common case: a handler that reported progress and
        // answered without waiting): one body with a length, the events still kept for
        // resumption. Else events as they come.
        match stream.finished_body(state.settings.sse_retry) {
            Some(body) => answer::events(body),
            None => sse(
                stream.events(0, Some(state.settings.sse_retry), Some(0)),
                &state.settings,
            )
            .into_answer(),
        }
    };
    response.set_session_id(session_header);
    response
}

fn get(state: &Arc<HttpState>, headers: &RequestHeaders<'_>) -> Response {
    if !state.settings.get_stream {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, DELETE")],
        )
            .into_response();
    }
    if !headers.accepts_sse() {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "GET needs Accept: text/event-stream",
        );
    }
    let session = match find_session(state, headers.session_id, headers.principal.as_deref()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    // Resume a stream after the last event the client saw.
    if let Some(last) = headers.last_event_id {
        let parsed = last
            .split_once('-')
            .and_then(|(s, q)| Some((s.parse::<u64>().ok()?, q.parse::<u64>().ok()?)));
        if let Some((stream_id, seq)) = parsed
            && let Some(stream) = session.stream(stream_id)
        {
            if session.restored {
                stream.skip_past(seq);
            }
            return sse(stream.events(seq, None, None), &state.settings);
        }
    }
    let Some(standalone) = session.stream(0) else {
        return plain(StatusCode::NOT_FOUND, "the session has no stream");
    };
    let now = standalone.last_seq();
    sse(
        standalone.events(now, Some(state.settings.sse_retry), None),
        &state.settings,
    )
}

async fn delete(state: &Arc<HttpState>, headers: &RequestHeaders<'_>) -> Response {
    let id = headers.session_id;
    let session = match find_session(state, id, headers.principal.as_deref()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(id) = id {
        lock(&state.sessions).remove(id);
        if let Some(kept) = &state.kept {
            kept.forget(id);
        }
        tracing::debug!(http_session = %id, "http session deleted");
    }
    end_session(&session).await;
    StatusCode::OK.into_response()
}
