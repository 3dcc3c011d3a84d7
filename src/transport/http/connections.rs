//! Owns how an accepted HTTP connection is served: its plain `POST /mcp` requests in the
//! [`super::fast_lane`], the rest with hyper (keep-alive, upgrades for `/ws`), each request hyper
//! reads judged by its head before its body is read and its body read under the body deadline and
//! budget; a connection idle past the header timeout is closed. Under `tls.enabled` the
//! handshake comes first (under its deadline), then the same lanes over the TLS stream.

use super::answer;
use super::answer::{Answer, IntoAnswer as _};
use super::{
    HttpState, LimitedListener, RequestHeaders, body_guard, busy, fast_lane, head_checks,
    idle_watch, mcp_endpoint, plain,
};
use crate::transport::tls::Principal;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves every accepted connection: its plain `POST /mcp` requests in the [`fast_lane`] (when
/// `http.fast_lane` is on), the rest with hyper's HTTP/1.1 (keep-alive, upgrades for `/ws`). A
/// connection with no request in progress for the header timeout — slowloris, or a keep-alive
/// connection left idle — is disconnected.
pub(super) async fn serve_connections(
    mut listener: LimitedListener,
    app: Router,
    state: Arc<HttpState>,
    header_timeout: Duration,
) {
    use axum::serve::Listener as _;
    let idle = idle_watch::IdleWatch::new(header_timeout);
    loop {
        let (io, peer) = listener.accept().await;
        let watched = idle.watch();
        let (app, state) = (app.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let activity = Arc::clone(watched.activity());
            let client = peer.ip();
            let connection = async {
                let Some(tls) = state.ctx.tls.clone() else {
                    return serve_stream(io, app, state, activity, client, None).await;
                };
                // Under its own deadline (tls.handshake_timeout); the idle watch runs too.
                // Boxed: inline, the TLS stream's state would size every plain connection's
                // task as well.
                Box::pin(async move {
                    let Some((io, principal)) = tls.accept(io, "http", peer).await else {
                        return Ok(());
                    };
                    serve_stream(io, app, state, activity, client, principal.map(Arc::new)).await
                })
                .await
            };
            tokio::select! {
                biased;
                () = watched.expired() => {
                    if watched.listener_gone() {
                        tracing::debug!(%peer, "http connection closed: its listener stopped");
                    } else {
                        tracing::debug!(%peer, "http connection closed: idle past header_read_timeout");
                    }
                }
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "http connection ended");
                    }
                }
            }
        });
    }
}

/// Serves an accepted connection (plain, or TLS after its handshake): its plain `POST /mcp`
/// requests in the [`fast_lane`] when it is on, the rest with hyper.
async fn serve_stream<IO>(
    io: IO,
    app: Router,
    state: Arc<HttpState>,
    activity: Arc<idle_watch::Activity>,
    client: std::net::IpAddr,
    principal: Option<Arc<Principal>>,
) -> Result<(), ConnectionError>
where
    IO: AsyncRead + AsyncWrite + fast_lane::PeerWatch + Unpin + Send + 'static,
{
    // hyper's connection (its buffers, its dispatch state) is boxed, made only for a
    // connection that gets there: inline it made every connection's task ~20 KB from its
    // first byte, the ones the lane serves to the end included.
    if !state.settings.fast_lane {
        return Box::pin(serve_with_hyper(
            io, app, state, activity, client, principal,
        ))
        .await;
    }
    match fast_lane::serve(io, &state, &activity, client, principal.as_deref()).await? {
        fast_lane::LaneEnd::Closed => Ok(()),
        fast_lane::LaneEnd::HandOver(io) => {
            Box::pin(serve_with_hyper(
                io, app, state, activity, client, principal,
            ))
            .await
        }
    }
}

/// Serves a connection with hyper until it ends: `POST /mcp` past the router, the rest through
/// it; each request in progress (for the idle watch) until its response body is done. The
/// client certificate's principal, if any, rides in each request's extensions.
async fn serve_with_hyper<IO>(
    io: IO,
    app: Router,
    state: Arc<HttpState>,
    activity: Arc<idle_watch::Activity>,
    peer: std::net::IpAddr,
    principal: Option<Arc<Principal>>,
) -> Result<(), ConnectionError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = hyper_util::service::TowerToHyperService::new(app);
    let max_head = state.settings.max_head_bytes;
    let service = hyper::service::service_fn(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            let in_progress = activity.begin();
            if let Some(principal) = &principal {
                request.extensions_mut().insert(Arc::clone(principal));
            }
            let (router, state) = (router.clone(), Arc::clone(&state));
            async move {
                let response = serve_request(&state, &router, request, peer).await;
                Ok::<_, Infallible>(
                    response.map(|body| idle_watch::Tracked::new(body, in_progress)),
                )
            }
        },
    );
    // No `pipeline_flush` here: with it, hyper dropped the answers it held back when a
    // pipelined request closed the connection or could not be parsed (`GET, GET + close, GET`
    // got no answer at all). The fast lane writes pipelined POSTs' answers together itself.
    hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(max_head)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades()
        .await?;
    Ok(())
}

/// One request hyper read: its head checked before its body is read (a refusal closes the
/// connection: the body is left unread), the body then read under `http.body_read_timeout` and
/// `http.max_pending_body_bytes` (408 / 503, and the connection closes).
async fn serve_request(
    state: &Arc<HttpState>,
    router: &hyper_util::service::TowerToHyperService<Router>,
    mut request: axum::http::Request<hyper::body::Incoming>,
    peer: std::net::IpAddr,
) -> Response<answer::AnswerBody> {
    use hyper::body::Body as _;
    // RFC 9112 §3.2.2: an absolute-form target's authority stands for the Host header.
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    if let Some(authority) = authority {
        match HeaderValue::from_str(&authority) {
            Ok(host) => {
                request.headers_mut().insert(header::HOST, host);
            }
            Err(_) => return closing(plain(StatusCode::BAD_REQUEST, "unreadable authority")),
        }
    }
    let raw = || {
        request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
    };
    let max_head = state.settings.max_head_bytes;
    let uri = request.uri();
    let target_len = uri.authority().map_or(0, |a| a.as_str().len() + 8)
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    // The headers read once, for the rate limit and the head's checks.
    let mut read = RequestHeaders::read(request.headers());
    read.tls_client = request.extensions().get::<Arc<Principal>>().map(|p| &**p);
    let refusal = match head_checks::check_head_size(target_len, raw(), max_head)
        .or_else(|| head_checks::check_framing(raw()))
        .or_else(|| head_checks::check_rate(state, &read, peer))
    {
        Some(refusal) => Some(refusal),
        None => {
            head_checks::check_head(
                state,
                request.method(),
                request.uri().path(),
                &read,
                request.body().size_hint().lower(),
            )
            .await
        }
    };
    drop(read);
    if let Some(refusal) = refusal {
        return closing(refusal);
    }
    request.extensions_mut().insert(super::ClientAddr(peer));
    let (parts, body) = request.into_parts();
    let (body, outcome) =
        body_guard::GuardedBody::new(body, state.settings.body_read_timeout, &state.bodies);
    if outcome.over_budget() {
        return closing(busy("server busy: http.max_pending_body_bytes reached"));
    }
    let request = axum::http::Request::from_parts(parts, body);
    let response = if request.method() == axum::http::Method::POST && request.uri().path() == "/mcp"
    {
        fast_post(Arc::clone(state), request, peer)
            .await
            .into_response()
    } else {
        let Ok(response) = hyper::service::Service::call(router, request).await;
        response.map(answer::AnswerBody::Axum)
    };
    if outcome.timed_out() {
        return closing(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive within http.body_read_timeout",
        ));
    }
    if outcome.over_budget() {
        return closing(busy("server busy: http.max_pending_body_bytes reached"));
    }
    response
}

/// A refusal after which the connection closes (its request's body was not read, or not whole).
fn closing(mut response: Response) -> Response<answer::AnswerBody> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response.map(answer::AnswerBody::Axum)
}

/// Why a connection ended early (logged at debug level).
type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// `POST /mcp` straight from hyper, past the router and its extractors (which clone every header
/// map): the hot path. Same rules as the router's `/mcp`
/// ([`mcp_endpoint::answer`]); the body limit is applied here.
async fn fast_post<B>(
    state: Arc<HttpState>,
    request: axum::http::Request<B>,
    peer: std::net::IpAddr,
) -> Answer
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let limit = state.ctx.limits.max_message_size.saturating_add(1);
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(BodyRefused::TooLarge) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body exceeds max_message_size",
            )
            .into_answer();
        }
        Err(BodyRefused::Unreadable(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
            .into_answer();
        }
    };
    let mut read = RequestHeaders::read(&parts.headers);
    read.peer = Some(peer);
    read.tls_client = parts.extensions.get::<Arc<Principal>>().map(|p| &**p);
    mcp_endpoint::answer(&state, &parts.method, read, &body).await
}

/// Why a request body was not read.
#[derive(Debug)]
enum BodyRefused {
    /// It is longer than the limit (said by its length, or found while reading it).
    TooLarge,
    /// The connection failed while it was read.
    Unreadable(Box<dyn std::error::Error + Send + Sync>),
}

/// A request body, whole, refused past `limit` bytes. A body that arrives in one frame (nearly
/// every JSON-RPC message) is that frame as it is: collecting it through a list of frames
/// cost an allocation and a copy per request.
async fn read_body<B>(mut body: B, limit: usize) -> Result<Bytes, BodyRefused>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyRefused::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRefused::Unreadable(e.into()))?;
        // Trailers carry nothing a JSON-RPC message needs.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = first.as_ref().map_or(joined.len(), Bytes::len);
        if read + data.len() > limit {
            return Err(BodyRefused::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            Some(earlier) => {
                joined.reserve(earlier.len() + data.len());
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&data);
            }
            None => joined.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, D, E, G, F: Future>(_: fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_connection_the_lane_serves_holds_no_room_for_hyper() {
        // A connection's future is allocated whole, for as long as the connection is open:
        // with hyper's connection inline it was ~20 KB for every one, the lane's included.
        let plain = future_size(serve_stream::<super::super::listener::SlottedStream>);
        assert!(plain <= 4096, "serve_stream {plain} B");
    }

    /// A body of these frames (`Err` for a failing read), with no length announced.
    fn frames(
        parts: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
    ) -> impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Unpin {
        http_body_util::StreamBody::new(futures::stream::iter(parts))
    }

    fn data(text: &'static str) -> Result<hyper::body::Frame<Bytes>, std::io::Error> {
        Ok(hyper::body::Frame::data(Bytes::from_static(
            text.as_bytes(),
        )))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_and_refused_past_the_limit() {
        // One frame is kept as it is, not copied.
        let one = Bytes::from_static(b"{\"a\":1}");
        let read = read_body(http_body_util::Full::new(one.clone()), 64)
            .await
            .unwrap();
        assert_eq!(read.as_ptr(), one.as_ptr());
        // Frames are joined in order; empty ones and trailers change nothing.
        let parts = vec![
            data(""),
            data("{\"a\":"),
            Ok(hyper::body::Frame::trailers(axum::http::HeaderMap::new())),
            data("1"),
            data("}"),
        ];
        assert_eq!(read_body(frames(parts), 64).await.unwrap(), "{\"a\":1}");
        assert_eq!(read_body(frames(vec![]), 64).await.unwrap(), "");
        // Exactly the limit passes; one byte more, over one frame or several, does not.
        assert_eq!(
            read_body(frames(vec![data("abcd")]), 4).await.unwrap(),
            "abcd"
        );
        for parts in [vec![data("abcde")], vec![data("ab"), data("cde")]] {
            let refused = read_body(frames(parts), 4).await.unwrap_err();
            assert!(matches!(refused, BodyRefused::TooLarge), "{refused:?}");
        }
        // An announced length over the limit is refused before anything is read.
        let announced = http_body_util::Full::new(Bytes::from_static(b"abcde"));
        assert!(matches!(
            read_body(announced, 4).await,
            Err(BodyRefused::TooLarge)
        ));
        // A failed read says why.
        let broken = vec![data("ab"), Err(std::io::Error::other("reset by peer"))];
        match read_body(frames(broken), 64).await {
            Err(BodyRefused::Unreadable(e)) => assert!(e.to_string().contains("reset by peer")),
            other => panic!("{other:?}"),
        }
    }
}
