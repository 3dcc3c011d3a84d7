//! Owns the caching of resource reads: a resource or a template registered with a cache TTL
//! ([`ResourceEntry::cached`], [`TemplateEntry::cached`]) is read through a handler that answers
//! from the node's cache when it holds the URI and stores a successful read otherwise. Entries
//! are invalidated when the resource (or the template) is replaced or removed in the registry,
//! and when the program says a URI changed (`RegistryHandle::resource_updated`, which also sends
//! `notifications/resources/updated`). A template's reads are keyed by the URI read, under the
//! template's own prefix, so replacing the template drops every URI it answered.
//! A 2026-07-28 read of a resource cached for every caller says so: `ttlMs` (its TTL) and
//! `cacheScope: "public"`; every other read keeps `ttlMs: 0, cacheScope: "private"`.

use super::{BoxFuture, Handler, ResourceEntry, ResourceReader, TemplateEntry, TemplateReader};
use crate::cache::{Cache, Lookup, resource_prefix, template_prefix};
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::ResourceContents;
use crate::session::RequestContext;
use std::collections::HashMap;
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

impl ResourceCaching {
    /// Reads cached for `ttl_ms` (`None`: 0, not cached).
    fn new(ttl_ms: u64, per_session: bool) -> Option<Self> {
        (ttl_ms > 0).then_some(Self {
            ttl_ms,
            per_session,
            wrapped: false,
        })
    }

    /// The TTL a 2026-07-28 read may announce with `cacheScope: "public"`.
    fn public_ttl_ms(caching: Option<&Self>) -> Option<u64> {
        caching.filter(|c| !c.per_session).map(|c| c.ttl_ms)
    }

    /// The TTL and scope to wrap a reader with, the first time only (an entry registered again
    /// is not wrapped twice).
    fn wrap_once(caching: Option<&mut Self>) -> Option<(Duration, bool)> {
        let caching = caching.filter(|c| !c.wrapped)?;
        caching.wrapped = true;
        Some((Duration::from_millis(caching.ttl_ms), caching.per_session))
    }
}

impl ResourceEntry {
    /// Caches its successful reads for `ttl_ms` milliseconds in the node's cache
    /// (docs/cache.md), the same for every caller; `per_session`: each session its own, never
    /// served to another (and never cached for a stateless request, which has no session).
    /// 0 turns caching off.
    #[must_use]
    pub fn cached(mut self, ttl_ms: u64, per_session: bool) -> Self {
        self.cache = ResourceCaching::new(ttl_ms, per_session);
        self
    }

    /// The TTL a 2026-07-28 read may announce as `ttlMs` with `cacheScope: "public"`: set only
    /// for a resource cached for every caller.
    pub(crate) fn public_ttl_ms(&self) -> Option<u64> {
        ResourceCaching::public_ttl_ms(self.cache.as_ref())
    }

    /// Wraps the reader in the cache, once.
    pub(super) fn wrap_cached(&mut self) {
        if let Some((ttl, per_session)) = ResourceCaching::wrap_once(self.cache.as_mut()) {
            self.reader = Arc::new(CachedReader {
                prefix: resource_prefix(&self.resource.uri),
                ttl,
                per_session,
                inner: Arc::clone(&self.reader),
            });
        }
    }
}

impl TemplateEntry {
    /// Caches the successful reads of the URIs it matches for `ttl_ms` milliseconds, keyed by
    /// the URI read, as [`ResourceEntry::cached`] does for one resource. 0 turns caching off.
    #[must_use]
    pub fn cached(mut self, ttl_ms: u64, per_session: bool) -> Self {
        self.cache = ResourceCaching::new(ttl_ms, per_session);
        self
    }

    /// As [`ResourceEntry::public_ttl_ms`], for the URIs the template matches.
    pub(crate) fn public_ttl_ms(&self) -> Option<u64> {
        ResourceCaching::public_ttl_ms(self.cache.as_ref())
    }

    /// Wraps the reader in the cache, once.
    pub(super) fn wrap_cached(&mut self) {
        if let Some((ttl, per_session)) = ResourceCaching::wrap_once(self.cache.as_mut()) {
            self.reader = Arc::new(CachedTemplateReader {
                prefix: template_prefix(&self.template.uri_template),
                ttl,
                per_session,
                inner: Arc::clone(&self.reader),
            });
        }
    }
}

/// The cache key of a read under `prefix` for the caller of `ctx`; `None`: this read is not
/// cached (a per-session entry read by a stateless request, which has no session).
fn read_key(prefix: &str, per_session: bool, ctx: &RequestContext) -> Option<String> {
    match (per_session, ctx.session().id.as_ref()) {
        (false, _) => Some(format!("{prefix}pub")),
        (true, super::cached_tool::STATELESS_SESSION) => ctx
            .principal()
            .map(|principal| format!("{prefix}p:{}", principal.subject)),
        (true, id) => Some(format!("{prefix}s:{id}")),
    }
}

/// Answers a read from the cache under `key`, or does it with `read` and keeps a successful
/// answer for `ttl` (`private`: in memory only).
fn read_through(
    key: String,
    ttl: Duration,
    private: bool,
    read: impl FnOnce() -> BoxFuture<Result<Vec<ResourceContents>, RpcError>> + Send + 'static,
) -> BoxFuture<Result<Vec<ResourceContents>, RpcError>> {
    let borrowed = crate::cache::borrowed();
    let Some(cache) = borrowed.as_ref() else {
        return read();
    };
    let decode = |bytes: Arc<[u8]>| serde_json::from_slice::<Vec<ResourceContents>>(&bytes).ok();
    let asking = match cache.lookup(&key, private) {
        Lookup::Hit(bytes) => match decode(bytes) {
            Some(contents) => return Box::pin(std::future::ready(Ok(contents))),
            None => None,
        },
        Lookup::Miss => None,
        Lookup::Remote(asking) => Some(asking),
    };
    let cache = Arc::clone(cache);
    let Some(asking) = asking else {
        return Box::pin(read_and_keep(cache, key, ttl, private, read()));
    };
    // Nothing on this node: the key's owner is asked (a short deadline), then the read is done.
    Box::pin(async move {
        if let Some(contents) = asking.await.and_then(decode) {
            return Ok(contents);
        }
        read_and_keep(cache, key, ttl, private, read()).await
    })
}

/// Does the read and keeps a successful answer under `key` for `ttl` (`private`: in L1 only).
async fn read_and_keep(
    cache: Arc<Cache>,
    key: String,
    ttl: Duration,
    private: bool,
    read: BoxFuture<Result<Vec<ResourceContents>, RpcError>>,
) -> Result<Vec<ResourceContents>, RpcError> {
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
        match read_key(&self.prefix, self.per_session, &ctx) {
            Some(key) => {
                let inner = Arc::clone(&self.inner);
                read_through(key, self.ttl, self.per_session, move || {
                    inner.call(ctx, uri)
                })
            }
            None => self.inner.call(ctx, uri),
        }
    }
}

/// A template's reader with its reads cached, by the URI read.
struct CachedTemplateReader {
    prefix: String,
    ttl: Duration,
    per_session: bool,
    inner: Arc<TemplateReader>,
}

impl Handler<(String, HashMap<String, String>), Result<Vec<ResourceContents>, RpcError>>
    for CachedTemplateReader
{
    fn call(
        &self,
        ctx: RequestContext,
        (uri, vars): (String, HashMap<String, String>),
    ) -> BoxFuture<Result<Vec<ResourceContents>, RpcError>> {
        let prefix = format!("{}{uri}\u{1f}", self.prefix);
        match read_key(&prefix, self.per_session, &ctx) {
            Some(key) => {
                let inner = Arc::clone(&self.inner);
                read_through(key, self.ttl, self.per_session, move || {
                    inner.call(ctx, (uri, vars))
                })
            }
            None => self.inner.call(ctx, (uri, vars)),
        }
    }
}
