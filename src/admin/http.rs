//! Owns the admin HTTP listener `erlmcp_admin_http` (`erlmcp start --admin-http ADDR`, config
//! `admin.http`): Prometheus text at `/metrics`, the dashboard page at `/` (its assets are
//! compiled into the binary), its state at `/api/state` and its live feed at `/api/events`
//! (SSE, one event per metrics sample).
//!
//! Every request must carry the node cookie — `Authorization: Bearer <cookie>` or
//! `?token=<cookie>` — and a loopback `Host` (DNS-rebinding protection): 401 / 403 otherwise.

use crate::admin::AdminContext;
use crate::app::ROOT_SUP;
use crate::transport::tcp::BoundAddr;
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

/// The admin HTTP listener's registered name.
pub const ADMIN_HTTP: &str = "erlmcp_admin_http";

/// The dashboard page.
const DASHBOARD: &str = include_str!("dashboard.html");

/// 401/403 unless the request proves the cookie from a loopback host.
fn refuse(
    ctx: &AdminContext,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if !matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "") {
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
    let ok = given.is_some_and(|t| constant_time_eq(t.as_bytes(), ctx.cookie.as_bytes()));
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// What the dashboard draws: the newest sample, the tree, the alerts.
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
pub fn router(ctx: Arc<AdminContext>) -> Router {
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

/// The listener actor.
pub struct AdminHttp;

/// Its arguments.
#[derive(Clone)]
pub struct AdminHttpArgs {
    /// Shared state.
    pub ctx: Arc<AdminContext>,
    /// Where to listen.
    pub addr: SocketAddr,
    /// Filled with the bound address.
    pub bound: BoundAddr,
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
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on admin http {}: {e}", args.addr))?;
        let local = listener.local_addr()?;
        let _ = args.bound.set(local);
        tracing::info!(addr = %local, "admin http listening on {local} (/metrics, dashboard at /)");
        let app = router(args.ctx);
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "admin http server failed");
            }
        }))
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
