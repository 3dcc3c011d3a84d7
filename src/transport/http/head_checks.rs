//! Owns what a request's head alone decides, before a byte of its body is read: the `Host`
//! (exactly one, RFC 9112 §3.2; loopback or listed — DNS-rebinding protection), the `Origin`,
//! the bearer token, and for `POST /mcp` its `Content-Type`, its length and (for a large body)
//! an unknown session; the body's framing (request smuggling: [`check_framing`]), the head's
//! size, and the client's rate limit ([`check_rate`]).
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

/// How a request says where its body ends, judged before anything else (request smuggling,
/// RFC 9112 §6.3): a `Content-Length` or a `Transfer-Encoding` sent twice, or both at once, is
/// refused with 400 rather than read one way here and another way by a proxy in front; an
/// `Expect` other than `100-continue` gets 417 (RFC 9110 §10.1.1). `headers` are the raw
/// (name, value) pairs, names in any case. hyper itself refuses a malformed length, a coding
/// other than `chunked`, obs-fold and bad bytes in a head, but folds a repeated equal
/// `Content-Length` into one and drops `Content-Length` beside `Transfer-Encoding` before a
/// request reaches us: the fast lane judges the raw head of the request it hands to hyper, and
/// hyper's path what is left to see (see docs/security.md, "Request smuggling").
pub(crate) fn check_framing<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<Response> {
    let (mut lengths, mut codings, mut expects, mut odd_expect) = (0, 0, 0, false);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expects += 1;
            odd_expect |= !value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    let refusal = match () {
        () if lengths > 1 => "more than one Content-Length header",
        () if codings > 1 => "more than one Transfer-Encoding header",
        () if lengths > 0 && codings > 0 => "Content-Length with Transfer-Encoding",
        () if odd_expect || expects > 1 => {
            return Some(plain(
                StatusCode::EXPECTATION_FAILED,
                "only `Expect: 100-continue` is understood",
            ));
        }
        () => return None,
    };
    Some(plain(StatusCode::BAD_REQUEST, refusal))
}

/// A head longer than `max` bytes (its request line and headers, counted as sent): 431. hyper's
/// own bound on its read buffer is not exact (a head that arrives in one read passes it).
pub(crate) fn check_head_size<'a>(
    target_len: usize,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    max: usize,
) -> Option<Response> {
    // "POST " + target + " HTTP/1.1\r\n", each "name: value\r\n", the blank line.
    let mut size = target_len + 20;
    for (name, value) in headers {
        size += name.len() + value.len() + 4;
        if size > max {
            return Some(too_large_head());
        }
    }
    None
}

/// The answer to a head over `http.max_head_bytes`.
pub(crate) fn too_large_head() -> Response {
    plain(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request head exceeds http.max_head_bytes",
    )
}

/// The principal a request's head proves without any wait: the subject of the static API key
/// it carries (`auth.api_keys`, `http.bearer_token`; compared in constant time). A JWT or an
/// opaque token is keyed where it was authenticated (the endpoint, the WebSocket upgrade); a
/// wrong token proves none, so it cannot grow the rate limits' tables.
pub(crate) fn principal(
    headers: &RequestHeaders<'_>,
    settings: &HttpSettings,
) -> Option<Arc<Principal>> {
    settings
        .auth
        .as_ref()?
        .static_principal(headers.authorization)
}

/// One request against its client's rate limit, from its head (`rate_limit.requests_per_second`,
/// keyed by `peer` and the principal): 429 with `Retry-After` and a JSON-RPC -32000 body
/// (`data.retryAfterMs`) when it has no token left. Nothing is keyed when no limit is set.
pub(crate) fn check_rate(
    state: &HttpState,
    headers: &RequestHeaders<'_>,
    peer: std::net::IpAddr,
) -> Option<Response> {
    let admission = &state.ctx.server.admission;
    if !admission.rate().limits_requests() {
        return None;
    }
    // Forwarded by another member: charged where it arrived, for the client's address.
    if super::forward_lane::is_trusted(headers) {
        return None;
    }
    let principal = principal(headers, &state.settings);
    let keys =
        crate::admission::rate::keys(Some(peer), principal.as_deref().map(|p| p.subject.as_str()));
    let shed = admission
        .check_rate("(http)", crate::metrics::Transport::Http, &keys)
        .err()?;
    Some(too_many_requests(&shed))
}

/// 429 for a client over a rate limit: `Retry-After` in whole seconds, the JSON-RPC error in
/// the body.
pub(crate) fn too_many_requests(shed: &crate::admission::Shed) -> Response {
    let frame = crate::protocol::jsonrpc::encode_error(None, &shed.to_rpc_error());
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::RETRY_AFTER, shed.retry_after_secs().to_string()),
        ],
        frame,
    )
        .into_response()
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

    fn framing(headers: &[(&str, &str)]) -> Option<StatusCode> {
        check_framing(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))).map(|r| r.status())
    }

    #[test]
    fn framing_two_parsers_could_read_two_ways_is_refused() {
        assert_eq!(framing(&[("Content-Length", "2")]), None);
        assert_eq!(framing(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(framing(&[("Expect", "100-Continue")]), None);
        let bad = StatusCode::BAD_REQUEST;
        for headers in [
            &[("Content-Length", "2"), ("content-length", "2")][..],
            &[
                ("Transfer-Encoding", "chunked"),
                ("TRANSFER-ENCODING", "chunked"),
            ],
            &[("Content-Length", "2"), ("Transfer-Encoding", "chunked")],
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "2")],
        ] {
            assert_eq!(framing(headers), Some(bad), "{headers:?}");
        }
        let odd = Some(StatusCode::EXPECTATION_FAILED);
        assert_eq!(framing(&[("expect", "200-ok")]), odd);
        assert_eq!(
            framing(&[("expect", "100-continue"), ("expect", "100-continue")]),
            odd
        );
        let head = |value: usize| {
            check_head_size(
                "/mcp".len(),
                [(&b"x"[..], &vec![b'a'; value][..])].into_iter(),
                100,
            )
            .map(|r| r.status())
        };
        assert_eq!(head(10), None);
        assert_eq!(head(100), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }

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
