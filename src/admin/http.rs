//! Owns the admin HTTP listener `erlmcp_admin_http` (`erlmcp start --admin-http ADDR`, config
//! `admin.http`): Prometheus text at `/metrics`, the dashboard page at `/` (its assets are
//! compiled into the binary), its state at `/api/state` and its live feed at `/api/events`
//! (SSE, one event per metrics sample).
//!
//! Every request must carry the node cookie — `Authorization: Bearer <cookie>` or
//! `?token=<cookie>` — and a loopback `Host` or one listed in `http.allowed_hosts`
//! (DNS-rebinding protection): 401 / 403 otherwise.
//!
//! With `tls.enabled` the listener speaks TLS (the node's certificate, reloaded with the others;
//! each handshake inside its connection's slot, under `tls.handshake_timeout`; a client
//! certificate required when `tls.client_ca` is set) and may bind any address; without it the
//! address must be loopback (the configuration refuses any other: the cookie would travel in the
//! clear).
//!
//! Bounds (pinned by `tests/it/hardening_admin_http_bounded.rs`):
//! a connection with no request in progress for `http.header_read_timeout` — a head sent too
//! slowly, or a kept-alive connection left idle — is closed, as on the MCP listener, while a
//! response in progress (the live feed) is never cut; at most
//! [`ADMIN_HTTP_MAX_CONNECTIONS`] connections are held at once, the next answered 503 and closed,
//! refusals logged at most once a second.

use crate::admin::AdminContext;
use crate::admin::limits::ADMIN_HTTP_MAX_CONNECTIONS;
use crate::log_limit::LogLimiter;
use crate::transport::descriptors::{AcceptGuard, answer_503_and_close};
use crate::transport::tcp::BoundAddr;
use crate::transport::tls::TlsServer;
use crate::tree_names::ROOT_SUP;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use erlmcp_supervisors::SupervisorRef;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The dashboard page.
const DASHBOARD: &str = include_str!("dashboard.html");

/// 401/403 unless the request proves the cookie from a loopback host.
fn refuse(
    ctx: &AdminContext,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let host = match headers.get(header::HOST).map(|h| h.to_str()) {
        None => "",
        Some(Ok(host)) => host,
        Some(Err(_)) => "\u{fffd}",
    };
    if !host_allowed(host, &ctx.config.http.allowed_hosts) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                format!("host `{host}` is not allowed"),
            )
                .into_response(),
        );
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let given = bearer.or(query.get("token").map(String::as_str));
    let ok = given.is_some_and(|t| bool::from(t.as_bytes().ct_eq(ctx.cookie.as_bytes())));
    if ok {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "the node cookie is needed: Authorization: Bearer <cookie> or ?token=<cookie>",
            )
                .into_response(),
        )
    }
}

/// Whether a `Host` value is loopback (`localhost`, `127.0.0.1`, `[::1]`, each with or without
/// a port), absent (HTTP/1.0), or listed in `allowed` (as it is, or its name without the port).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    if host.is_empty() {
        return true;
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, port)) => (ip, port),
            None => return false,
        },
        None => host.find(':').map_or((host, ""), |at| host.split_at(at)),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|digits| {
            (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        });
    if !port_ok {
        return false;
    }
    let loopback = if host.starts_with('[') {
        name.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
    } else {
        name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let name = if host.starts_with('[') {
        &host[..name.len() + 2]
    } else {
        name
    };
    loopback || allowed.iter().any(|h| h == host || h == name)
}

type Params = Query<HashMap<String, String>>;

/// Lets a request through only with the cookie, from a loopback host.
async fn authorized(
    State(ctx): State<Arc<AdminContext>>,
    Query(q): Params,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match refuse(&ctx, request.headers(), &q) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

async fn metrics(State(ctx): State<Arc<AdminContext>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::admin::prometheus::render(&ctx.hub, &ctx.node),
    )
        .into_response()
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// What the dashboard draws: the newest sample, the tree, the alerts, the cache's tiers, the
/// state store.
async fn state_json(ctx: &AdminContext) -> serde_json::Value {
    let tree = match SupervisorRef::whereis(ROOT_SUP) {
        Some(root) => root.snapshot().await.ok(),
        None => None,
    };
    json!({
        "node": ctx.node,
        "sample": ctx.hub.latest().as_deref(),
        "tree": tree.as_ref().map(|t| t.render()),
        "alerts": ctx.hub.recent_alerts(),
        "cache": crate::cache::stats(),
        "store": crate::store::current().map(|store| store.stats()),
    })
}

async fn state(State(ctx): State<Arc<AdminContext>>) -> Response {
    let mut body = state_json(&ctx).await;
    let history = ctx.hub.history(120);
    body["history"] = json!(history.iter().map(|s| &**s).collect::<Vec<_>>());
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn events(State(ctx): State<Arc<AdminContext>>) -> Response {
    let samples = ctx.hub.subscribe();
    let stream = futures::stream::unfold((samples, ctx), |(mut samples, ctx)| async move {
        loop {
            match samples.recv().await {
                Ok(_) => break,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
        let payload = state_json(&ctx).await.to_string();
        let event = Bytes::from(format!("event: sample\ndata: {payload}\n\n"));
        Some((Ok::<_, Infallible>(event), (samples, ctx)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream.boxed()),
    )
        .into_response()
}

/// The admin HTTP router.
pub(crate) fn router(ctx: Arc<AdminContext>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&ctx),
            authorized,
        ))
        .with_state(ctx)
}

/// Admin HTTP connections refused over the cap, logged at a bounded rate.
static REFUSALS: LogLimiter = LogLimiter::per_second();

/// Accepts connections and serves each with hyper's HTTP/1.1 until the task is aborted (which
/// ends every connection with it): at most [`ADMIN_HTTP_MAX_CONNECTIONS`] at once, each closed
/// once it has had no request in progress for `header_timeout`.
async fn serve_connections(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    tls: Option<Arc<TlsServer>>,
) {
    let slots = Arc::new(Semaphore::new(ADMIN_HTTP_MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    // Refusals answered at once past the cap; beyond them a connection is closed unanswered.
    let mut guard = AcceptGuard::new("admin-http", 16);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                guard.failed(&e).await;
                continue;
            }
        };
        guard.accepted();
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Some(refused) = REFUSALS.allow().map(|held| held + 1) {
                tracing::warn!(%peer, refused, max = ADMIN_HTTP_MAX_CONNECTIONS, "admin http connection refused: {ADMIN_HTTP_MAX_CONNECTIONS} connections open (refusals since the last such line: {refused})");
            }
            if let Some(permit) = guard.refusal_permit() {
                connections.spawn(async move {
                    let _permit = permit;
                    let body = "admin http busy: too many connections; try again later";
                    answer_503_and_close(stream, body.to_owned()).await;
                });
            }
            continue;
        };
        let (app, tls) = (app.clone(), tls.clone());
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, app, header_timeout, peer).await,
                Some(tls) => {
                    if let Some((stream, _)) = tls.accept(stream, "admin http", peer).await {
                        serve_connection(stream, app, header_timeout, peer).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection (plain or TLS) with hyper's HTTP/1.1 until it ends.
async fn serve_connection<IO>(io: IO, app: Router, header_timeout: Duration, peer: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper arms this timer whenever it waits for a request head: on a new connection and on a
    // kept-alive one after each response, so it bounds idle connections too.
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let served = builder
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "admin http connection ended");
    }
}

/// The listener actor.
pub(crate) struct AdminHttp;

/// Its arguments.
#[derive(Clone)]
pub(crate) struct AdminHttpArgs {
    /// Shared state.
    pub(crate) ctx: Arc<AdminContext>,
    /// Where to listen.
    pub(crate) addr: SocketAddr,
    /// Filled with the bound address.
    pub(crate) bound: BoundAddr,
    /// TLS, when `tls.enabled`.
    pub(crate) tls: Option<Arc<TlsServer>>,
}

impl Actor for AdminHttp {
    type Msg = ();
    type State = tokio::task::JoinHandle<()>;
    type Arguments = AdminHttpArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: AdminHttpArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if !args.addr.ip().is_loopback() && args.tls.is_none() {
            return Err(format!(
                "admin http must listen on a loopback address unless tls.enabled, not {}",
                args.addr
            )
            .into());
        }
        let listener = TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on admin http {}: {e}", args.addr))?;
        let local = listener.local_addr()?;
        let _ = args.bound.set(local);
        let scheme = if args.tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %local, "admin http listening on {local} ({scheme}: /metrics, dashboard at /)");
        let header_timeout = Duration::from_millis(args.ctx.config.http.header_read_timeout);
        let app = router(args.ctx);
        Ok(tokio::spawn(serve_connections(
            listener,
            app,
            header_timeout,
            args.tls,
        )))
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        server: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        server.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn loopback_hosts_pass_with_or_without_a_port_and_look_alikes_do_not() {
        for host in [
            "",
            "localhost",
            "LOCALHOST:9090",
            "127.0.0.1",
            "127.0.0.1:9090",
            "[::1]",
            "[::1]:9090",
        ] {
            assert!(host_allowed(host, &[]), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example:80",
            "localhost:80:90",
            "localhost:port",
            "[::1]evil",
            "[::1]:",
            "[::2]:80",
            "[::1",
            "::1",
            "\u{fffd}",
        ] {
            assert!(!host_allowed(host, &[]), "{host}");
        }
        let allowed = ["dash.internal".to_owned(), "[fd00::5]:9090".to_owned()];
        for host in ["dash.internal", "dash.internal:9090", "[fd00::5]:9090"] {
            assert!(host_allowed(host, &allowed), "{host}");
        }
        assert!(!host_allowed("[fd00::5]:9091", &allowed));
        assert!(!host_allowed("other.internal", &allowed));
    }
}
