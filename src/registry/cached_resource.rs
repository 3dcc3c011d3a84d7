//! Owns the caching of resource reads: a resource registered with a cache TTL
//! ([`ResourceEntry::cached`]) is read through a handler that answers from the node's cache when
//! it holds the resource and stores a successful read otherwise. Its entries are invalidated when
//! the resource is replaced or removed in the registry, and when the program says it changed
//! (`RegistryHandle::resource_updated`, which also sends `notifications/resources/updated`).
//! A 2026-07-28 read of a resource cached for every caller says so: `ttlMs` (its TTL) and
//! `cacheScope: "public"`; every other read keeps `ttlMs: 0, cacheScope: "private"`.

use super::{BoxFuture, Handler, ResourceEntry, ResourceReader};
use crate::cache::resource_prefix;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::ResourceContents;
use crate::session::RequestContext;
use std::sync::Arc;
use std::time::Duration;

/// How a resource's reads are cached.
#[derive(Clone, Debug)]
pub(crate) struct ResourceCaching {
    pub(crate) ttl_ms: u64,
    pub(crate) per_session: bool,
    /// Set once the reader is wrapped (an entry registered again is not wrapped twice).
    wrapped: bool,
}

impl ResourceEntry {
    /// Caches its successful reads for `ttl_ms` milliseconds in the node's cache
    /// (docs/cache.md), the same for every caller; `per_session`: each session its own, never
    /// served to another (and never cached for a stateless request, which has no session).
    /// 0 turns caching off.
    #[must_use]
    pub fn cached(mut self, ttl_ms: u64, per_session: bool) -> Self {
        self.cache = (ttl_ms > 0).then_some(ResourceCaching {
            ttl_ms,
            per_session,
            wrapped: false,
        });
        self
    }

    /// The TTL a 2026-07-28 read may announce as `ttlMs` with `cacheScope: "public"`: set only
    /// for a resource cached for every caller.
    pub(crate) fn public_ttl_ms(&self) -> Option<u64> {
        self.cache
            .as_ref()
            .filter(|c| !c.per_session)
            .map(|c| c.ttl_ms)
    }

    /// Wraps the reader in the cache, once.
    pub(super) fn wrap_cached(&mut self) {
        let Some(caching) = &mut self.cache else {
            return;
        };
        if caching.wrapped {
            return;
        }
        caching.wrapped = true;
        self.reader = Arc::new(CachedReader {
            prefix: resource_prefix(&self.resource.uri),
            ttl: Duration::from_millis(caching.ttl_ms),
            per_session: caching.per_session,
            inner: Arc::clone(&self.reader),
        });
    }
}

/// A resource's reader with its reads cached.
struct CachedReader {
    prefix: String,
    ttl: Duration,
    per_session: bool,
    inner: Arc<ResourceReader>,
}

impl Handler<String, Result<Vec<ResourceContents>, RpcError>> for CachedReader {
    fn call(
        &self,
        ctx: RequestContext,
        uri: String,
    ) -> BoxFuture<Result<Vec<ResourceContents>, RpcError>> {
        let Some(cache) = crate::cache::current() else {
            return self.inner.call(ctx, uri);
        };
        let scope = match (self.per_session, ctx.session().id.as_ref()) {
            (false, _) => "pub".to_owned(),
            (true, super::cached_tool::STATELESS_SESSION) => return self.inner.call(ctx, uri),
            (true, id) => format!("s:{id}"),
        };
        let key = format!("{}{scope}", self.prefix);
        if let Some(contents) = cache
            .get(&key)
            .and_then(|bytes| serde_json::from_slice::<Vec<ResourceContents>>(&bytes).ok())
        {
            return Box::pin(std::future::ready(Ok(contents)));
        }
        let (ttl, private) = (self.ttl, self.per_session);
        let read = self.inner.call(ctx, uri);
        Box::pin(async move {
            let result = read.await;
            if let Ok(contents) = &result
                && let Ok(json) = serde_json::to_vec(contents)
            {
                if private {
                    cache.put_private(&key, json.into(), ttl);
                } else {
                    cache.put(&key, json.into(), ttl);
                }
            }
            result
        })
    }
}
