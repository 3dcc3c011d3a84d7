//! Owns what the node serves: tools, resources, resource templates and prompts, with their
//! handlers.
//!
//! The `erlmcp_registry` actor is the only writer. Every change is a batch applied all or nothing;
//! the actor then publishes a new immutable [`RegistrySnapshot`] through `arc-swap`, and request
//! paths read it without a lock or a mailbox hop. After a change the actor tells every session
//! (the `erlmcp_sessions` process group) which lists changed, so each can send
//! `notifications/*/list_changed`. The published snapshot outlives the actor: a restarted
//! registry starts from the last snapshot, so no registration is lost to a crash.

pub(crate) mod cached_resource;
pub(crate) mod cached_tool;
pub(crate) mod relay;
pub(crate) mod uri_template;

use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::{
    CallToolResult, CompleteParams, Completion, GetPromptResult, Prompt, Resource,
    ResourceContents, ResourceTemplate, Tool,
};
use crate::session::RequestContext;
use crate::session::broadcast::{broadcast_list_changed, broadcast_resource_updated};
use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
pub(crate) use uri_template::UriTemplate;
pub use uri_template::UriTemplateError;

pub use crate::tree_names::REGISTRY;

pub(crate) use crate::common::{BoxFuture, ListKind};

/// An async handler of one kind of request: tools, resource readers, prompts.
/// Implemented for every `Fn(RequestContext, Args) -> impl Future<Output = Out>`.
pub trait Handler<Args, Out>: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, ctx: RequestContext, args: Args) -> BoxFuture<Out>;
}

impl<F, Fut, Args, Out> Handler<Args, Out> for F
where
    F: Fn(RequestContext, Args) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    fn call(&self, ctx: RequestContext, args: Args) -> BoxFuture<Out> {
        Box::pin(self(ctx, args))
    }
}

/// A tool's own failure: sent to the client as a result with `isError: true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A tool's arguments, as the client sent them; parsed by the tool.
#[derive(Debug, Clone, Default)]
pub struct Arguments(Option<Box<RawValue>>);

impl Arguments {
    /// Wraps raw JSON (an object, or nothing).
    pub(crate) fn new(raw: Option<Box<RawValue>>) -> Self {
        Self(raw)
    }

    /// The raw JSON text (`{}` when none was sent).
    pub fn raw(&self) -> &str {
        self.0.as_deref().map_or("{}", RawValue::get)
    }

    /// Parses the arguments into `T`, borrowing strings where it can; a mismatch is a tool error
    /// that names the problem.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ToolError> {
        serde_json::from_str(self.raw()).map_err(|e| ToolError(format!("invalid arguments: {e}")))
    }
}

/// Handles `tools/call` for one tool.
pub(crate) type ToolHandler = dyn Handler<Arguments, Result<CallToolResult, ToolError>>;
/// Reads one resource (gets its URI).
pub(crate) type ResourceReader = dyn Handler<String, Result<Vec<ResourceContents>, RpcError>>;
/// Reads a resource matched by a template (gets the URI and the template's variables).
pub(crate) type TemplateReader =
    dyn Handler<(String, HashMap<String, String>), Result<Vec<ResourceContents>, RpcError>>;
/// Renders a prompt from its arguments.
pub(crate) type PromptHandler =
    dyn Handler<HashMap<String, String>, Result<GetPromptResult, RpcError>>;
/// Completes a prompt argument or template variable.
pub(crate) type Completer = dyn Fn(&CompleteParams) -> Completion + Send + Sync;

/// A tool and its handler.
#[derive(Clone)]
pub struct ToolEntry {
    /// The description sent in `tools/list`.
    pub(crate) tool: Tool,
    /// The handler.
    pub(crate) handler: Arc<ToolHandler>,
    /// Whether the input schema annotates arguments with `x-mcp-header` (read once, when the
    /// entry is registered, instead of walking the schema on every stateless call).
    param_headers: bool,
    /// How its results are cached, if they are ([`ToolEntry::cached`]).
    cache: Option<ToolCaching>,
    /// A task tool that gathers its input in `input_required` rounds before its task is created
    /// ([`ToolEntry::input_before_task`]).
    input_first: bool,
}

/// How a tool's results are cached.
#[derive(Clone, Debug)]
struct ToolCaching {
    ttl_ms: u64,
    per_session: bool,
    /// The version its keys carry (a plugin's version; the crate's otherwise).
    version: Arc<str>,
    /// Set once the handler is wrapped (an entry registered again is not wrapped twice).
    wrapped: bool,
}

impl ToolEntry {
    /// A tool served by `handler`.
    pub fn new(
        tool: Tool,
        handler: impl Handler<Arguments, Result<CallToolResult, ToolError>>,
    ) -> Self {
        Self {
            tool,
            handler: Arc::new(handler),
            param_headers: false,
            cache: None,
            input_first: false,
        }
    }

    /// A task tool (`Tool::with_task_support`) whose first run happens in the `tools/call`
    /// itself: while it asks the client something not yet answered, the call ends
    /// `input_required` (no task); once it has every answer, the call creates the task, which
    /// runs the handler again with those answers (SEP-2322 rounds composed with SEP-2663).
    #[must_use]
    pub fn input_before_task(mut self) -> Self {
        self.input_first = true;
        self
    }

    /// Whether it gathers input before its task is created.
    pub(crate) fn gathers_input_first(&self) -> bool {
        self.input_first
    }

    /// Caches its successful results for `ttl_ms` milliseconds in the node's cache
    /// (docs/cache.md), the same answer for every caller; `per_session`: each session its own
    /// answers, never served to another. Only a tool annotated `readOnlyHint` and
    /// `idempotentHint` ([`Tool::with_annotations`]) may be cached: registering any other with a
    /// TTL is refused ([`RegistryError::NotCacheable`]). 0 turns caching off.
    #[must_use]
    pub fn cached(mut self, ttl_ms: u64, per_session: bool) -> Self {
        let version = self.cache.as_ref().map_or_else(
            || Arc::from(concat!("erlmcp-", env!("CARGO_PKG_VERSION"))),
            |c| Arc::clone(&c.version),
        );
        self.cache = (ttl_ms > 0).then_some(ToolCaching {
            ttl_ms,
            per_session,
            version,
            wrapped: false,
        });
        self
    }

    /// The version its cache keys carry (a plugin's: a swap or a rollback changes it).
    #[must_use]
    pub fn with_version(mut self, version: &str) -> Self {
        if let Some(cache) = &mut self.cache {
            cache.version = Arc::from(version);
        }
        self
    }

    /// Its cache TTL in milliseconds (0: not cached).
    pub fn cache_ttl_ms(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.ttl_ms)
    }

    /// Whether its annotations say it is read-only and idempotent.
    fn read_only_and_idempotent(&self) -> bool {
        let hint = |name: &str| {
            self.tool
                .annotations
                .as_ref()
                .and_then(|a| a.get(name))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        };
        hint("readOnlyHint") && hint("idempotentHint")
    }

    /// Wraps the handler in the cache, once; refuses a tool that may not be cached.
    fn wrap_cached(&mut self) -> Result<(), RegistryError> {
        let Some(caching) = &self.cache else {
            return Ok(());
        };
        if caching.wrapped {
            return Ok(());
        }
        if !self.read_only_and_idempotent() {
            return Err(RegistryError::NotCacheable(self.tool.name.clone()));
        }
        let wrapped = cached_tool::CachedTool::new(
            &self.tool.name,
            &caching.version,
            std::time::Duration::from_millis(caching.ttl_ms),
            caching.per_session,
            Arc::clone(&self.handler),
        );
        self.handler = Arc::new(wrapped);
        if let Some(caching) = &mut self.cache {
            caching.wrapped = true;
        }
        Ok(())
    }

    /// A tool that blocks or burns CPU: each call runs `work` on a slot of the tool pool
    /// `erlmcp_tool_pool` (on a blocking thread), at most the pool's `size + max_overflow` at
    /// once; a call finding none free within its `checkout_timeout` (waiting in FIFO order) gets
    /// a tool error saying so. A panic in `work` is a tool error too.
    pub fn blocking(
        tool: Tool,
        work: impl Fn(RequestContext, Arguments) -> Result<CallToolResult, ToolError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let work = Arc::new(work);
        Self::new(tool, move |ctx: RequestContext, args: Arguments| {
            let work = Arc::clone(&work);
            async move {
                crate::pool::tool_pool::run_blocking(move || work(ctx, args))
                    .await
                    .unwrap_or_else(|e| Err(ToolError::new(e.to_string())))
            }
        })
    }

    /// Whether its input schema asks for `Mcp-Param-*` headers (stateless HTTP calls). Read when
    /// the entry is registered (the crate may change its `tool` until then): an entry taken from a
    /// registry snapshot answers right; the crate asks no other.
    pub(crate) fn has_param_headers(&self) -> bool {
        self.param_headers
    }
}

/// A resource and its reader.
#[derive(Clone)]
pub struct ResourceEntry {
    /// The description sent in `resources/list`.
    pub(crate) resource: Resource,
    /// The reader.
    pub(crate) reader: Arc<ResourceReader>,
    /// How its reads are cached, if they are ([`ResourceEntry::cached`]).
    cache: Option<cached_resource::ResourceCaching>,
}

impl ResourceEntry {
    /// A resource read by `reader`.
    pub fn new(
        resource: Resource,
        reader: impl Handler<String, Result<Vec<ResourceContents>, RpcError>>,
    ) -> Self {
        Self {
            resource,
            reader: Arc::new(reader),
            cache: None,
        }
    }
}

/// A resource template, its matcher, reader and optional completer.
#[derive(Clone)]
pub struct TemplateEntry {
    /// The description sent in `resources/templates/list`.
    pub(crate) template: ResourceTemplate,
    /// The parsed template.
    pub(crate) matcher: UriTemplate,
    /// The reader.
    pub(crate) reader: Arc<TemplateReader>,
    /// Completion of its variables.
    pub(crate) completer: Option<Arc<Completer>>,
    /// How its reads are cached (`None`: not cached).
    cache: Option<cached_resource::ResourceCaching>,
}

impl TemplateEntry {
    /// A template read by `reader`; fails if `template.uri_template` is not level-1 RFC 6570.
    pub fn new(
        template: ResourceTemplate,
        reader: impl Handler<(String, HashMap<String, String>), Result<Vec<ResourceContents>, RpcError>>,
    ) -> Result<Self, RegistryError> {
        let matcher =
            UriTemplate::parse(&template.uri_template).map_err(RegistryError::InvalidTemplate)?;
        Ok(Self {
            template,
            matcher,
            reader: Arc::new(reader),
            completer: None,
            cache: None,
        })
    }

    /// Adds completion of the template's variables.
    #[must_use]
    pub fn with_completer(
        mut self,
        completer: impl Fn(&CompleteParams) -> Completion + Send + Sync + 'static,
    ) -> Self {
        self.completer = Some(Arc::new(completer));
        self
    }
}

/// A prompt, its handler and optional completer.
#[derive(Clone)]
pub struct PromptEntry {
    /// The description sent in `prompts/list`.
    pub(crate) prompt: Prompt,
    /// The handler.
    pub(crate) handler: Arc<PromptHandler>,
    /// Completion of its arguments.
    pub(crate) completer: Option<Arc<Completer>>,
}

impl PromptEntry {
    /// A prompt rendered by `handler`.
    pub fn new(
        prompt: Prompt,
        handler: impl Handler<HashMap<String, String>, Result<GetPromptResult, RpcError>>,
    ) -> Self {
        Self {
            prompt,
            handler: Arc::new(handler),
            completer: None,
        }
    }

    /// Adds completion of the prompt's arguments.
    #[must_use]
    pub fn with_completer(
        mut self,
        completer: impl Fn(&CompleteParams) -> Completion + Send + Sync + 'static,
    ) -> Self {
        self.completer = Some(Arc::new(completer));
        self
    }
}

/// One change in a batch.
#[derive(Clone)]
pub enum Change {
    /// Adds or replaces a tool.
    Tool(ToolEntry),
    /// Removes a tool (it must exist).
    RemoveTool(String),
    /// Adds or replaces a resource.
    Resource(ResourceEntry),
    /// Removes a resource (it must exist).
    RemoveResource(String),
    /// Adds or replaces a template (keyed by its URI template).
    Template(TemplateEntry),
    /// Removes a template (it must exist).
    RemoveTemplate(String),
    /// Adds or replaces a prompt.
    Prompt(PromptEntry),
    /// Removes a prompt (it must exist).
    RemovePrompt(String),
}

/// Why a batch was refused (nothing of it was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A removal named something that is not registered.
    #[error("no {kind} named `{name}` to remove")]
    NotFound {
        /// tool, resource, template or prompt.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A name or URI is empty.
    #[error("a {0} needs a non-empty name")]
    EmptyName(&'static str),
    /// A URI template is not level-1 RFC 6570.
    #[error("invalid URI template: {0}")]
    InvalidTemplate(UriTemplateError),
    /// The registry actor is not running.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// A tool asks for its results to be cached but is not annotated read-only and idempotent.
    #[error(
        "tool `{0}` asks for a cache TTL but is not annotated readOnlyHint and idempotentHint: only read-only, idempotent tools may be cached"
    )]
    NotCacheable(String),
}

/// An immutable picture of everything served. Cheap to read; replaced whole on every change.
#[derive(Clone, Default)]
pub struct RegistrySnapshot {
    /// Increases with every applied batch.
    pub version: u64,
    /// Tools by name.
    pub tools: BTreeMap<String, Arc<ToolEntry>>,
    /// Resources by URI.
    pub resources: BTreeMap<String, Arc<ResourceEntry>>,
    /// Templates by URI template.
    pub templates: BTreeMap<String, Arc<TemplateEntry>>,
    /// Prompts by name.
    pub prompts: BTreeMap<String, Arc<PromptEntry>>,
}

impl RegistrySnapshot {
    /// Applies a batch to a copy; returns the copy and the lists it touched.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(Self, Vec<ListKind>), RegistryError> {
        fn remove<V>(
            map: &mut BTreeMap<String, V>,
            kind: &'static str,
            name: String,
        ) -> Result<(), RegistryError> {
            map.remove(&name)
                .map(drop)
                .ok_or(RegistryError::NotFound { kind, name })
        }
        fn insert<V>(
            map: &mut BTreeMap<String, Arc<V>>,
            key: String,
            kind: &'static str,
            entry: V,
        ) -> Result<(), RegistryError> {
            if key.is_empty() {
                return Err(RegistryError::EmptyName(kind));
            }
            map.insert(key, Arc::new(entry));
            Ok(())
        }
        let mut next = self.clone();
        let mut touched = Vec::new();
        for change in changes {
            let kind = match change {
                Change::Tool(mut e) => {
                    e.param_headers =
                        crate::protocol::modern::has_param_headers(&e.tool.input_schema);
                    e.wrap_cached()?;
                    // A replaced handler (a plugin swap, a rollback) may answer differently:
                    // its cached answers go.
                    if next.tools.contains_key(&e.tool.name) {
                        invalidate_cached(&crate::cache::tool_prefix(&e.tool.name));
                    }
                    // A new handler for the same definition (a plugin swap that changes no
                    // tool) leaves the list as clients see it: nothing to announce.
                    let unchanged = next
                        .tools
                        .get(&e.tool.name)
                        .is_some_and(|old| old.tool == e.tool);
                    insert(&mut next.tools, e.tool.name.clone(), "tool", e)?;
                    if unchanged {
                        continue;
                    }
                    ListKind::Tools
                }
                Change::RemoveTool(name) => {
                    invalidate_cached(&crate::cache::tool_prefix(&name));
                    remove(&mut next.tools, "tool", name)?;
                    ListKind::Tools
                }
                Change::Resource(mut e) => {
                    e.wrap_cached();
                    invalidate_cached(&crate::cache::resource_prefix(&e.resource.uri));
                    insert(&mut next.resources, e.resource.uri.clone(), "resource", e)?;
                    ListKind::Resources
                }
                Change::RemoveResource(uri) => {
                    invalidate_cached(&crate::cache::resource_prefix(&uri));
                    remove(&mut next.resources, "resource", uri)?;
                    ListKind::Resources
                }
                Change::Template(mut e) => {
                    e.wrap_cached();
                    let key = e.template.uri_template.clone();
                    invalidate_cached(&crate::cache::template_prefix(&key));
                    insert(&mut next.templates, key, "template", e)?;
                    ListKind::Resources
                }
                Change::RemoveTemplate(uri) => {
                    invalidate_cached(&crate::cache::template_prefix(&uri));
                    remove(&mut next.templates, "template", uri)?;
                    ListKind::Resources
                }
                Change::Prompt(e) => {
                    insert(&mut next.prompts, e.prompt.name.clone(), "prompt", e)?;
                    ListKind::Prompts
                }
                Change::RemovePrompt(name) => {
                    remove(&mut next.prompts, "prompt", name)?;
                    ListKind::Prompts
                }
            };
            if !touched.contains(&kind) {
                touched.push(kind);
            }
        }
        next.version = self.version + 1;
        Ok((next, touched))
    }

    /// The template (if any) that matches `uri`, with its variables.
    pub(crate) fn match_template(
        &self,
        uri: &str,
    ) -> Option<(&Arc<TemplateEntry>, HashMap<String, String>)> {
        self.templates
            .values()
            .find_map(|t| t.matcher.match_uri(uri).map(|vars| (t, vars)))
    }
}

/// Invalidates the node's cached results under `prefix`, when a cache runs.
fn invalidate_cached(prefix: &str) {
    if let Some(cache) = crate::cache::current() {
        cache.invalidate_prefix(prefix);
    }
}

/// One page of a list: the items and the cursor of the next page.
pub(crate) struct Page<'a, V> {
    /// Items of this page, in key order.
    pub(crate) items: Vec<&'a V>,
    /// Opaque cursor for the next page, if there is one.
    pub(crate) next_cursor: Option<String>,
}

/// Pages through `map` in key order. Cursors are opaque (base64 of the last key sent), so a page
/// boundary survives concurrent changes; a cursor that does not decode is `-32602`.
#[cfg(test)]
pub(crate) fn page<'a, V>(
    map: &'a BTreeMap<String, V>,
    cursor: Option<&str>,
    page_size: usize,
) -> Result<Page<'a, V>, RpcError> {
    page_of(map, cursor, page_size, |_| true)
}

/// [`page`] over the entries whose key `listed` accepts (what a principal may see), skipped as
/// the page is read: nothing is copied per request.
pub(crate) fn page_of<'a, V>(
    map: &'a BTreeMap<String, V>,
    cursor: Option<&str>,
    page_size: usize,
    listed: impl Fn(&str) -> bool,
) -> Result<Page<'a, V>, RpcError> {
    use std::ops::Bound;
    let start = match cursor {
        None => Bound::Unbounded,
        Some(cursor) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(cursor)
                .map_err(|_| RpcError::invalid_params("invalid cursor"))?;
            let key = String::from_utf8(bytes)
                .ok()
                .and_then(|k| k.strip_prefix("k:").map(str::to_owned))
                .ok_or_else(|| RpcError::invalid_params("invalid cursor"))?;
            Bound::Excluded(key)
        }
    };
    let mut range = map
        .range::<String, _>((start, Bound::Unbounded))
        .filter(|(key, _)| listed(key));
    let mut items = Vec::with_capacity(page_size.min(map.len()));
    let mut last = None;
    for (key, value) in range.by_ref().take(page_size.max(1)) {
        items.push(value);
        last = Some(key);
    }
    let next_cursor = match (range.next(), last) {
        (Some(_), Some(key)) => Some(URL_SAFE_NO_PAD.encode(format!("k:{key}"))),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// The handle every part of the node uses: lock-free reads, batched writes through the actor.
#[derive(Clone)]
pub struct RegistryHandle {
    published: Arc<ArcSwap<RegistrySnapshot>>,
}

impl RegistryHandle {
    /// A handle over an initial snapshot (the registry actor is started with a clone).
    pub fn new(initial: RegistrySnapshot) -> Self {
        Self {
            published: Arc::new(ArcSwap::from_pointee(initial)),
        }
    }

    /// The current snapshot, read without a lock.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RegistrySnapshot>> {
        self.published.load()
    }

    /// Applies a batch (all or nothing) through the registry actor; returns the new version.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<u64, RegistryError> {
        apply_to_running(changes).await
    }

    /// Tells subscribed sessions that a resource changed (`notifications/resources/updated`);
    /// its cached reads are invalidated first. In a cluster, the other nodes' sessions too
    /// (through [`relay`], docs/cluster.md).
    pub fn resource_updated(&self, uri: &str) {
        self.resource_updated_here(uri);
        relay::publish_resource_updated(uri);
    }

    /// [`Self::resource_updated`] on this node only: what another node's update does here.
    pub(crate) fn resource_updated_here(&self, uri: &str) {
        // Its cached reads are stale from now (before anyone is told to read it again), those
        // a template answered too.
        invalidate_cached(&crate::cache::resource_prefix(uri));
        if let Some((template, _)) = self.snapshot().match_template(uri) {
            invalidate_cached(&format!(
                "{}{uri}\u{1f}",
                crate::cache::template_prefix(&template.template.uri_template)
            ));
        }
        broadcast_resource_updated(uri);
    }

    /// The cell the registry actor publishes snapshots into: what [`Registry`] is started with
    /// when a program runs the registry without the application tree (tests, benches).
    pub fn published(&self) -> Arc<ArcSwap<RegistrySnapshot>> {
        Arc::clone(&self.published)
    }
}

/// Applies a batch (all or nothing) through the running registry actor, found by its name;
/// returns the new version. For code that holds no [`RegistryHandle`] (a demo tool that changes
/// the lists).
pub(crate) async fn apply_to_running(changes: Vec<Change>) -> Result<u64, RegistryError> {
    let actor = ractor::registry::where_is(REGISTRY)
        .ok_or_else(|| RegistryError::Unavailable("erlmcp_registry is not running".into()))?;
    let actor: ActorRef<RegistryMsg> = actor.into();
    match ractor::call!(actor, RegistryMsg::Apply, changes) {
        Ok(result) => result,
        Err(e) => Err(RegistryError::Unavailable(e.to_string())),
    }
}

/// The registry actor: the only writer of the published snapshot.
pub struct Registry;

/// The registry actor's mailbox.
pub enum RegistryMsg {
    /// Apply a batch, all or nothing.
    Apply(Vec<Change>, RpcReplyPort<Result<u64, RegistryError>>),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for RegistryMsg {}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = Arc<ArcSwap<RegistrySnapshot>>;
    type Arguments = Arc<ArcSwap<RegistrySnapshot>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<RegistryMsg>,
        published: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let current = published.load();
        tracing::info!(
            version = current.version,
            tools = current.tools.len(),
            resources = current.resources.len(),
            templates = current.templates.len(),
            prompts = current.prompts.len(),
            "registry started"
        );
        Ok(published)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        published: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Apply(changes, reply) => {
                let result = published.load().apply(changes);
                let answer = match result {
                    Ok((next, touched)) => {
                        let version = next.version;
                        published.store(Arc::new(next));
                        for kind in touched {
                            broadcast_list_changed(kind);
                            relay::publish_list_changed(kind);
                        }
                        Ok(version)
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::Tool;

    fn tool(name: &str) -> Change {
        Change::Tool(ToolEntry::new(
            Tool::without_arguments(name, "test"),
            |_ctx: RequestContext, _args: Arguments| async { Ok(CallToolResult::text("x")) },
        ))
    }

    #[test]
    fn a_batch_applies_all_or_nothing() {
        let empty = RegistrySnapshot::default();
        let (one, touched) = empty.apply(vec![tool("a"), tool("b")]).unwrap();
        assert_eq!(one.tools.len(), 2);
        assert_eq!(touched, vec![ListKind::Tools]);
        let err = one
            .apply(vec![tool("c"), Change::RemoveTool("missing".into())])
            .err()
            .unwrap();
        assert!(matches!(err, RegistryError::NotFound { .. }));
        assert_eq!(one.tools.len(), 2, "the failed batch changed nothing");
        assert_eq!(one.version, 1);
    }

    #[test]
    fn a_new_handler_for_an_unchanged_tool_announces_nothing() {
        let (one, _) = RegistrySnapshot::default().apply(vec![tool("a")]).unwrap();
        let (two, touched) = one.apply(vec![tool("a")]).unwrap();
        assert!(touched.is_empty(), "same definition: {touched:?}");
        assert!(
            !Arc::ptr_eq(&one.tools["a"], &two.tools["a"]),
            "handler replaced"
        );
        let changed = Change::Tool(ToolEntry::new(
            Tool::without_arguments("a", "another description"),
            |_ctx: RequestContext, _args: Arguments| async { Ok(CallToolResult::text("y")) },
        ));
        let (_, touched) = two.apply(vec![changed]).unwrap();
        assert_eq!(touched, vec![ListKind::Tools]);
    }

    #[test]
    fn pages_cover_every_item_once_with_opaque_cursors() {
        let mut map = BTreeMap::new();
        for i in 0..25 {
            map.insert(format!("tool{i:02}"), i);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = page(&map, cursor.as_deref(), 10).unwrap();
            seen.extend(p.items.into_iter().copied());
            match p.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert!(page(&map, Some("!!not-a-cursor"), 10).is_err());
    }

    #[test]
    fn filtered_pages_hold_only_listed_items_and_no_cursor_past_the_last_listed() {
        let map: BTreeMap<String, i32> = (0..25).map(|i| (format!("tool{i:02}"), i)).collect();
        // Every third is listed: 0, 3, …, 24 (9 items); 24 is the last key too.
        let listed = |key: &str| key[4..].parse::<i32>().is_ok_and(|i| i % 3 == 0);
        let first = page_of(&map, None, 5, listed).unwrap();
        assert_eq!(first.items, [&0, &3, &6, &9, &12]);
        let second = page_of(&map, first.next_cursor.as_deref(), 5, listed).unwrap();
        assert_eq!(second.items, [&15, &18, &21, &24]);
        assert_eq!(second.next_cursor, None);
        // Unlisted items after the page's last do not make a cursor to an empty page.
        let only_first = |key: &str| key == "tool00";
        assert_eq!(
            page_of(&map, None, 1, only_first).unwrap().next_cursor,
            None
        );
    }
}
