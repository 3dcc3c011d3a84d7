//! Owns the HTTP face of authorization ([`crate::auth`]): a request's bearer token turned into its
//! principal from the head alone, a refusal made into its 401 / 403 with `WWW-Authenticate`
//! (RFC 6750, RFC 9728 §5.1), and the Protected Resource Metadata document (RFC 9728), served
//! without a token at `/.well-known/oauth-protected-resource` (and that prefix followed by the
//! resource URI's path).

use super::{APPLICATION_JSON, HttpSettings, HttpState, RequestHeaders};
use crate::auth::{Principal, Refusal};
use crate::protocol::jsonrpc::{self, RpcError};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Who the request's bearer token stands for (`None`: no token is asked for), or its refusal.
pub(super) async fn authenticate(
    headers: &RequestHeaders<'_>,
    settings: &HttpSettings,
) -> Result<Option<Arc<Principal>>, Response> {
    let Some(auth) = &settings.auth else {
        return Ok(None);
    };
    if headers.authorization.is_none()
        && let Some(certificate) = headers.tls_client
        && let Some(outcome) = auth.certificate_principal(certificate.name())
    {
        return outcome.map(Some).map_err(|refusal| refused(auth, &refusal));
    }
    match auth.authenticate(headers.authorization).await {
        Ok(principal) => Ok(Some(principal)),
        Err(refusal) => Err(refused(auth, &refusal)),
    }
}

/// 401 (no token, or a bad one) or 403 (a scope of `auth.required_scopes` missing), with the
/// challenge (503 with `Retry-After` when the token could not be checked now) that tells the client where the metadata is, and a JSON-RPC error as the body.
fn refused(auth: &crate::auth::Auth, refusal: &Refusal) -> Response {
    let (status, message) = match refusal {
        Refusal::Missing if auth.enabled() => (
            StatusCode::UNAUTHORIZED,
            "an access token is needed: Authorization: Bearer <token>".to_owned(),
        ),
        Refusal::Missing => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".to_owned(),
        ),
        Refusal::Invalid(why) => (StatusCode::UNAUTHORIZED, why.clone()),
        Refusal::Unavailable(why) => {
            let body = jsonrpc::encode_error(None, &RpcError::new(-32000, why.clone()));
            return super::unavailable(body, Some(1));
        }
        Refusal::InsufficientScope(missing) => (
            StatusCode::FORBIDDEN,
            format!(
                "insufficient_scope: the token lacks scope {}",
                missing.join(" ")
            ),
        ),
    };
    let challenge = HeaderValue::from_str(&auth.challenge(refusal))
        .unwrap_or(HeaderValue::from_static("Bearer"));
    let body = jsonrpc::encode_error(None, &RpcError::new(-32001, message));
    (
        status,
        [
            (header::WWW_AUTHENTICATE, challenge),
            (header::CONTENT_TYPE, APPLICATION_JSON),
        ],
        body,
    )
        .into_response()
}

/// The step-up challenge (MCP authorization, "scope challenge handling") for an answer that is
/// the rules' refusal (-32003) naming scopes the token lacks: 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<held and missing>"`, the JSON-RPC
/// error as its body; `None` for any other answer (looked at only for a request with a
/// principal, and parsed only when it holds that code).
pub(super) fn step_up(
    settings: &HttpSettings,
    principal: Option<&Principal>,
    frame: &[u8],
) -> Option<Response> {
    let (auth, principal) = (settings.auth.as_ref()?, principal?);
    if !auth.enabled() || memchr::memmem::find(frame, b"\"code\":-32003").is_none() {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(frame).ok()?;
    let missing: Vec<String> = answer["error"]["data"]["missingScopes"]
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    if missing.is_empty() {
        return None;
    }
    // The scopes to ask for: those held, and those missing (a new token must not lose any).
    let mut scopes = principal.scopes.clone();
    scopes.extend(missing.iter().filter(|m| !principal.has_scope(m)).cloned());
    let challenge = auth.challenge(&Refusal::InsufficientScope(scopes));
    let challenge = HeaderValue::from_str(&challenge).ok()?;
    Some(
        (
            StatusCode::FORBIDDEN,
            [
                (header::WWW_AUTHENTICATE, challenge),
                (header::CONTENT_TYPE, APPLICATION_JSON),
            ],
            frame.to_vec(),
        )
            .into_response(),
    )
}

/// `GET /.well-known/oauth-protected-resource[/path]`: the metadata document; 404 when `[auth]`
/// is off or the path is not this resource's.
pub(super) async fn metadata(
    State(state): State<Arc<HttpState>>,
    uri: axum::http::Uri,
) -> Response {
    let Some(auth) = &state.settings.auth else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = uri.path();
    match auth.metadata_path() {
        Some(served) if path == served || path == crate::auth::METADATA_PREFIX => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, APPLICATION_JSON),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=300"),
                ),
            ],
            auth.metadata().to_vec(),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_token_check_adds_little_to_every_request_future() {
        // Every request's future (a fast-lane connection's, held while it lives) holds the
        // check's: what may wait — a JWKS fetch, an introspection call — is boxed (it was 5.5 KB
        // inline).
        fn size<F>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let second = Duration::from_secs(1);
        let settings = super::HttpSettings {
            session_timeout: second,
            allowed_hosts: vec![],
            allowed_origins: vec![],
            auth: None,
            get_stream: true,
            sse_retry: second,
            keep_alive: second,
            replay_buffer: 1,
            header_read_timeout: second,
            pipeline_flush: true,
            fast_lane: true,
            ws_compression: true,
            body_read_timeout: second,
            max_pending_body_bytes: 1,
            max_sessions: 1,
            max_sessions_per_client: 1,
            max_head_bytes: 1,
        };
        let headers = super::RequestHeaders::default();
        let check = super::super::head_checks::check_caller(&headers, &settings);
        assert!(size(&check) <= 512, "{} B", size(&check));
    }
}
