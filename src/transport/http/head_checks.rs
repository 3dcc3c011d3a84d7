//! Owns what a request's head alone decides, before a byte of its body is read: the `Host`
//! (exactly one, RFC 9112 §3.2; loopback or listed — DNS-rebinding protection), the `Origin`,
//! the bearer token, and for `POST /mcp` its `Content-Type`, its length and (for a large body)
//! an unknown session.
//! A client refused here has sent its head and nothing more, and holds nothing of the node's.
//!
//! Never reads a body, never waits: every check is on headers already parsed.

use super::{HttpSettings, HttpState, RequestHeaders, plain};
use crate::auth::Principal;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Whether `host` (a `Host` value, or an `Origin`'s authority) names this machine's loopback:
/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').is_some_and(|(ip, rest)| {
            ip == "::1" && (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port))
        }),
        None => {
            // Up to the port, byte by byte (a host is short: a searcher costs more).
            let end = host.bytes().position(|b| b == b':').unwrap_or(host.len());
            matches!(&host.as_bytes()[..end], b"localhost" | b"127.0.0.1")
                && (end == host.len() || is_port(&host[end + 1..]))
        }
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// DNS-rebinding protection and the access token: [`check_origin`], then who the bearer token
/// stands for (401 / 403 with `WWW-Authenticate`: [`super::oauth`]); `Ok(None)` when no token
/// is asked for.
pub(crate) async fn check_caller(
    headers: &RequestHeaders<'_>,
    settings: &HttpSettings,
) -> Result<Option<Arc<Principal>>, Response> {
    if let Some(refusal) = check_origin(headers, settings) {
        return Err(refusal);
    }
    super::oauth::authenticate(headers, settings).await
}

/// DNS-rebinding protection: exactly one `Host`, loopback or listed (400 / 403); an `Origin`,
/// when sent, loopback or listed (403).
pub(crate) fn check_origin(
    headers: &RequestHeaders<'_>,
    settings: &HttpSettings,
) -> Option<Response> {
    let Some(host) = headers.host else {
        return Some(plain(StatusCode::BAD_REQUEST, "missing Host header"));
    };
    if headers.repeated_host {
        return Some(plain(StatusCode::BAD_REQUEST, "more than one Host header"));
    }
    if !is_loopback_host(host) && !settings.allowed_hosts.iter().any(|h| h == host) {
        return Some(plain(
            StatusCode::FORBIDDEN,
            &format!("host `{host}` is not allowed"),
        ));
    }
    if let Some(origin) = headers.origin {
        let host = origin.split("://").nth(1).unwrap_or_default();
        if !is_loopback_host(host) && !settings.allowed_origins.iter().any(|o| o == origin) {
            return Some(plain(
                StatusCode::FORBIDDEN,
                &format!("origin `{origin}` is not allowed"),
            ));
        }
    }
    None
}

/// Everything the head of a request to this listener decides before its body is read:
/// [`check_caller`] (for the metadata document, [`check_origin`] alone), then for `POST /mcp` the `Content-Type` (415), an announced length past
/// `max_message_size` (413) and, for a body over 64 KiB, a session id this node does not know
/// (404). `None`: read the body. A request the checks pass is checked again, whole, by its handler; they agree.
pub(crate) async fn check_head(
    state: &HttpState,
    method: &Method,
    path: &str,
    headers: &RequestHeaders<'_>,
    announced_length: u64,
) -> Option<Response> {
    if path.starts_with(crate::auth::METADATA_PREFIX) {
        return check_origin(headers, &state.settings);
    }
    if let Err(refusal) = check_caller(headers, &state.settings).await {
        return Some(refusal);
    }
    let limit = state.ctx.limits.max_message_size;
    if announced_length > limit as u64 {
        return Some(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body exceeds max_message_size",
        ));
    }
    if path != "/mcp" || method != Method::POST {
        return None;
    }
    if let Some(refusal) = check_content_type(headers) {
        return Some(refusal);
    }
    // A stateless (2026-07-28) request names no session; a handshake one may. A body up to
    // `HEAD_DECIDES_SESSION_ABOVE` is read first, so that one that is not JSON is told so
    // (400, -32700) before its unknown session; a larger one is not worth reading for a session
    // that is not there. A session another member of the cluster owns is not refused here: the
    // request is forwarded; nor one replicated here: it is taken over.
    if announced_length > HEAD_DECIDES_SESSION_ABOVE
        && !headers.takes_stateless_path()
        && let Some(id) = headers.session_id
        && !super::sessions::session_exists(state, id)
        && super::forward::ring_owner_elsewhere(id).is_none()
        && !super::replica::has_replica(state, id)
    {
        return Some(super::forward::unknown_session());
    }
    None
}

/// Announced bodies longer than this, for a session this node does not know, are refused from
/// the head (404) without being read.
const HEAD_DECIDES_SESSION_ABOVE: u64 = 64 * 1024;

/// 400 with a -32700 error (id `null`) for a body that is not JSON: decided before any session
/// check, so that a client learns what is wrong with its message first.
pub(super) fn not_json(body: &[u8]) -> Option<Response> {
    let error = serde_json::from_slice::<serde::de::IgnoredAny>(body).err()?;
    let frame = crate::protocol::jsonrpc::encode_error(
        None,
        &crate::protocol::jsonrpc::RpcError::new(
            crate::protocol::jsonrpc::PARSE_ERROR,
            format!("parse error: {error}"),
        ),
    );
    Some(
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            frame,
        )
            .into_response(),
    )
}

/// 415 for a request whose `Content-Type` is not JSON.
fn check_content_type(headers: &RequestHeaders<'_>) -> Option<Response> {
    let json_type = headers.content_type.is_some_and(|t| {
        t.get(..16)
            .is_some_and(|start| start.eq_ignore_ascii_case("application/json"))
    });
    (!json_type).then(|| {
        plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
    })
}

/// 406 for a `POST /mcp` whose `Accept` allows neither JSON nor an SSE stream, 415 for a body
/// that is not declared JSON, 413 for one over `max_message_size`.
pub(super) fn check_body(
    state: &HttpState,
    headers: &RequestHeaders<'_>,
    body: &[u8],
) -> Option<Response> {
    if !headers.accepts_mcp_answer() {
        return Some(plain(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must allow application/json or text/event-stream",
        ));
    }
    if let Some(refusal) = check_content_type(headers) {
        return Some(refusal);
    }
    if body.len() > state.ctx.limits.max_message_size {
        return Some(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body exceeds max_message_size",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_look_alikes() {
        for host in [
            "localhost",
            "localhost:7410",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:7410",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example:80",
            "[::2]:80",
            "[::1]evil.example",
            "[::1]:80.evil",
            "localhost:evil",
            "127.0.0.1:",
            "localhost:80:80",
            "[::1",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
