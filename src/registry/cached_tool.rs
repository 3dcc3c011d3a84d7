//! Owns the caching of tool results: the handler that wraps a tool registered with a cache TTL
//! (`ToolEntry::cached`), answering from the node's cache when it holds the call's key and
//! storing a successful answer otherwise.
//!
//! The key is the tool's name, its version (a plugin's version; the crate's for tools of the
//! program itself), the scope (`pub`, or `s:<session id>` for a tool cached per session), and
//! the arguments as canonical JSON (keys sorted, no spaces): the same call written any way hits.
//! A new version never sees the old version's answers (its keys differ), and replacing a tool
//! invalidates its entries (`RegistrySnapshot::apply`). A per-session tool called without a
//! session (a stateless 2026-07-28 request) is cached under its principal (`p:<subject>`) when
//! the request carried one (`[auth]`), else never: nothing would keep its answer to its caller. Failed results (`isError`) are never stored.

use super::{Arguments, BoxFuture, Handler, ToolHandler};
use crate::cache::{Cache, Lookup, canonical_json, tool_prefix};
use crate::protocol::messages::{CallToolResult, EncodedResult};
use crate::registry::ToolError;
use crate::session::RequestContext;
use std::sync::Arc;
use std::time::Duration;

/// The session id a stateless request's `SessionShared` carries: no session to keep a private
/// answer to.
pub(super) const STATELESS_SESSION: &str = "stateless";

/// A tool's handler with its results cached.
pub(crate) struct CachedTool {
    /// `tool<US>name<US>version<US>`: every key of this tool and version starts with it.
    prefix: String,
    ttl: Duration,
    per_session: bool,
    inner: Arc<ToolHandler>,
}

impl CachedTool {
    pub(crate) fn new(
        name: &str,
        version: &str,
        ttl: Duration,
        per_session: bool,
        inner: Arc<ToolHandler>,
    ) -> Self {
        Self {
            prefix: format!("{}{version}\u{1f}", tool_prefix(name)),
            ttl,
            per_session,
            inner,
        }
    }
}

impl Handler<Arguments, Result<CallToolResult, ToolError>> for CachedTool {
    fn call(
        &self,
        ctx: RequestContext,
        args: Arguments,
    ) -> BoxFuture<Result<CallToolResult, ToolError>> {
        let borrowed = crate::cache::borrowed();
        let Some(cache) = borrowed.as_ref() else {
            return self.inner.call(ctx, args);
        };
        let session = &ctx.session().id;
        let scope = match (self.per_session, session.as_ref()) {
            (false, _) => "pub".to_owned(),
            (true, STATELESS_SESSION) => match ctx.principal() {
                // A stateless request of an authenticated caller: private to that caller.
                Some(principal) => format!("p:{}", principal.subject),
                None => return self.inner.call(ctx, args),
            },
            (true, id) => format!("s:{id}"),
        };
        let key = format!("{}{scope}\u{1f}{}", self.prefix, canonical_json(args.raw()));
        let (ttl, private) = (self.ttl, self.per_session);
        let asking = match cache.lookup(&key, private) {
            Lookup::Hit(bytes) => return Box::pin(std::future::ready(Ok(from_cache(bytes)))),
            Lookup::Miss => None,
            Lookup::Remote(asking) => Some(asking),
        };
        let cache = Arc::clone(cache);
        let Some(asking) = asking else {
            return Box::pin(call_and_keep(
                cache,
                key,
                ttl,
                private,
                self.inner.call(ctx, args),
            ));
        };
        // Nothing on this node: the key's owner is asked (a short deadline), then the tool runs.
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if let Some(bytes) = asking.await {
                return Ok(from_cache(bytes));
            }
            call_and_keep(cache, key, ttl, private, inner.call(ctx, args)).await
        })
    }
}

/// A cached answer as the tool's result.
fn from_cache(bytes: Arc<[u8]>) -> CallToolResult {
    CallToolResult::encoded(EncodedResult::shared(bytes), false)
}

/// Runs the tool (`answer`) and keeps a successful result under `key` for `ttl` (`private`: in
/// L1 only).
async fn call_and_keep(
    cache: Arc<Cache>,
    key: String,
    ttl: Duration,
    private: bool,
    answer: BoxFuture<Result<CallToolResult, ToolError>>,
) -> Result<CallToolResult, ToolError> {
    let result = answer.await;
    if let Ok(done) = &result
        && !done.is_error
    {
        let json = match &done.encoded {
            Some(encoded) => Ok(encoded.as_bytes().to_vec()),
            None => serde_json::to_vec(done),
        };
        if let Ok(json) = json {
            if private {
                cache.put_private(&key, json.into(), ttl);
            } else {
                cache.put(&key, json.into(), ttl);
            }
        }
    }
    result
}
