//! Owns the routing of an initialized (or stateless) request to its MCP method: `initialize`,
//! `tools/*`, `resources/*`, `prompts/*`, `completion/complete`, `logging/setLevel`, and the
//! capabilities the server announces.

use super::{Dispatcher, Reply, encode_rpc_outcome, parse_params, settle};
use crate::auth::Kind;
use crate::protocol::incoming::Params;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::messages::{
    CallToolParams, CallToolResult, CompleteParams, CompletionRef, GetPromptParams, Implementation,
    InitializeParams, ListParams, SetLevelParams, UriParams,
};
use crate::protocol::methods::ClientMethod;
use crate::protocol::revision::Revision;
use crate::registry::{Arguments, ToolError, page_of};
use crate::session::{Negotiated, RequestContext};
use erlmcp_supervisors::error::panic_message;
use serde::Serialize;
use serde_json::value::RawValue;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

impl Dispatcher {
    /// What the server offers at `revision`.
    pub(super) fn capabilities(revision: Revision) -> serde_json::Value {
        let mut capabilities = serde_json::json!({
            "tools": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "prompts": {"listChanged": true},
            "logging": {},
        });
        if revision >= Revision::V2025_03_26 {
            capabilities["completions"] = serde_json::json!({});
        }
        if revision >= Revision::V2025_11_25 {
            capabilities["extensions"] =
                serde_json::json!({ (crate::protocol::messages::TASKS_EXTENSION): {} });
        }
        capabilities
    }

    /// The methods of an initialized (or stateless) request, and those a session answers before
    /// `initialize` (the handshake itself, `ping`, `server/discover`).
    pub(super) async fn route(
        &self,
        id: &str,
        method: ClientMethod<'_>,
        params: &Params<'_>,
    ) -> Reply {
        use ClientMethod as M;
        // `tools/call` takes its params as they were read; every other method reads them raw.
        let (read, params) = (params, params.raw());
        let result = match method {
            M::Initialize => self.initialize(id, params).await,
            M::Ping => Ok(Reply::Now(jsonrpc::encode_raw_result(id, b"{}"))),
            M::ServerDiscover => self.discover(id),
            M::ToolsCall => self.call_tool(id, read),
            M::ToolsList => self.list(id, params, (Kind::Tool, "tools"), |s| &s.tools, |e| &e.tool),
            M::ResourcesList => self.list(
                id,
                params,
                (Kind::Resource, "resources"),
                |s| &s.resources,
                |e| &e.resource,
            ),
            M::ResourcesTemplatesList => self.list(
                id,
                params,
                (Kind::Resource, "resourceTemplates"),
                |s| &s.templates,
                |e| &e.template,
            ),
            M::PromptsList => self.list(
                id,
                params,
                (Kind::Prompt, "prompts"),
                |s| &s.prompts,
                |e| &e.prompt,
            ),
            M::ResourcesRead => self.read_resource(id, params),
            M::PromptsGet => self.get_prompt(id, params),
            M::CompletionComplete => self.complete(id, params),
            M::TasksGet | M::TasksUpdate | M::TasksCancel => self.task_method(id, method, params),
            M::LoggingSetLevel => match parse_params::<SetLevelParams>(params) {
                Ok(p) => self.actor().map(|session| {
                    session.set_level(p.level);
                    Reply::Now(jsonrpc::encode_raw_result(id, b"{}"))
                }),
                Err(e) => Err(e),
            },
            M::ResourcesSubscribe | M::ResourcesUnsubscribe => {
                match parse_params::<UriParams<'_>>(params) {
                    Ok(p) => {
                        let uri = p.uri.into_owned();
                        if let Err(refused) = self.authorize(Kind::Resource, &uri) {
                            return Reply::Now(jsonrpc::encode_error(Some(id), &refused));
                        }
                        let done = match self.actor() {
                            Ok(session) if method == M::ResourcesSubscribe => {
                                session.subscribe(uri).await
                            }
                            Ok(session) => session.unsubscribe(uri).await,
                            Err(e) => Err(e),
                        };
                        done.map(|()| Reply::Now(jsonrpc::encode_raw_result(id, b"{}")))
                    }
                    Err(e) => Err(e),
                }
            }
            // Served on the stateless path only (which answers it before routing here).
            M::SubscriptionsListen | M::Unknown(_) => Err(RpcError::new(
                jsonrpc::METHOD_NOT_FOUND,
                format!("method not found: {}", method.as_str()),
            )),
        };
        result.unwrap_or_else(|error| Reply::Now(jsonrpc::encode_error(Some(id), &error)))
    }

    pub(super) async fn initialize(
        &self,
        id: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, RpcError> {
        let p: InitializeParams<'_> = parse_params(params)?;
        let revision = Revision::negotiate(&p.protocol_version);
        self.actor()?.initialize(Negotiated {
            revision,
            capabilities: p.capabilities,
            client_info: p.client_info,
        })?;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct InitializeResult<'a> {
            protocol_version: Revision,
            capabilities: serde_json::Value,
            server_info: &'a Implementation,
            #[serde(skip_serializing_if = "Option::is_none")]
            instructions: Option<&'a str>,
        }
        Ok(Reply::Now(jsonrpc::encode_result(
            id,
            &InitializeResult {
                protocol_version: revision,
                capabilities: Self::capabilities(revision),
                server_info: &self.server.server_info,
                instructions: self.server.instructions.as_deref(),
            },
        )))
    }

    pub(super) fn context(&self, progress_token: Option<&RawValue>) -> RequestContext {
        RequestContext::new(
            Arc::clone(&self.shared),
            progress_token.map(ToOwned::to_owned),
            self.reply.clone(),
        )
        .with_stateless(self.stateless.clone())
        .with_principal(self.principal.clone())
    }

    pub(super) fn call_tool(&self, id: &str, params: &Params<'_>) -> Result<Reply, RpcError> {
        let raw = match params {
            Params::ToolCall(call) => {
                let name = call
                    .tool_name()
                    .map_err(|why| RpcError::invalid_params(format!("invalid params: {why}")))?;
                let capabilities = call.meta.as_ref().and_then(|m| m.client_capabilities);
                return self.call_tool_with(
                    id,
                    &name,
                    call.arguments,
                    call.progress_token(),
                    || super::tasks::opts_in(capabilities),
                );
            }
            Params::Raw(raw) => *raw,
        };
        let p: CallToolParams<'_> = parse_params(raw)?;
        let progress_token = p.meta.as_ref().and_then(|m| m.progress_token);
        self.call_tool_with(id, &p.name, p.arguments, progress_token, || {
            super::tasks::params_opt_in(raw)
        })
    }

    /// `tools/call` of `name` with its params already read; `opt_in`: whether the request
    /// declared the tasks extension in its own `_meta` (asked only of a tool that supports
    /// tasks: reading it may parse the params again).
    pub(super) fn call_tool_with(
        &self,
        id: &str,
        name: &str,
        arguments: Option<&RawValue>,
        progress_token: Option<&RawValue>,
        opt_in: impl FnOnce() -> bool,
    ) -> Result<Reply, RpcError> {
        self.authorize(Kind::Tool, name)?;
        if let Some(principal) = &self.principal {
            // `remote trace <subject>` (at debug level) follows one caller's calls.
            tracing::debug!(subject = %principal.subject, tool = name, "tools/call");
        }
        let snapshot = self.server.registry.snapshot();
        let entry = snapshot
            .tools
            .get(name)
            .ok_or_else(|| RpcError::invalid_params(format!("unknown tool: {name}")))?;
        if let Some(support) = entry.tool.task_support()
            && let Some(reply) = self.call_task_tool(id, entry, arguments, support, opt_in())
        {
            return Ok(reply);
        }
        let ctx = self.context(progress_token);
        let args = Arguments::new(arguments.map(ToOwned::to_owned));
        let entry = Arc::clone(entry);
        let subject = self.principal.as_ref().map(|p| p.subject.clone());
        let call =
            match std::panic::catch_unwind(AssertUnwindSafe(|| entry.handler.call(ctx, args))) {
                Ok(call) => call,
                Err(panic) => {
                    let why = panic_message(&*panic);
                    Box::pin(async move { Err(ToolError::new(format!("it panicked ({why})"))) })
                }
            };
        // A chaos run's injected latency (src/fault.rs): one atomic load while there is none.
        let call = match crate::fault::tool_latency() {
            None => call,
            Some(latency) => Box::pin(async move {
                tokio::time::sleep(latency).await;
                call.await
            }),
        };
        Ok(settle(id, call, move |id, out| {
            let result = match out {
                Ok(Ok(result)) => result,
                Ok(Err(error)) => CallToolResult::error(error.0),
                Err(panic) => {
                    let name = &entry.tool.name;
                    let why = panic_message(&*panic);
                    let subject = subject.as_deref().unwrap_or("");
                    tracing::error!(tool = %name, subject, panic = %why, "tool handler panicked");
                    CallToolResult::error(format!("tool `{name}` failed: it panicked ({why})"))
                }
            };
            match &result.encoded {
                Some(encoded) => jsonrpc::encode_raw_result(id, encoded.as_bytes()),
                None => jsonrpc::encode_result(id, &result),
            }
        }))
    }

    pub(super) fn list<V, T: Serialize>(
        &self,
        id: &str,
        params: Option<&RawValue>,
        (kind, field): (Kind, &'static str),
        map: impl Fn(&crate::registry::RegistrySnapshot) -> &std::collections::BTreeMap<String, Arc<V>>,
        item: impl Fn(&V) -> &T,
    ) -> Result<Reply, RpcError> {
        let p: ListParams<'_> = parse_params(params)?;
        let snapshot = self.server.registry.snapshot();
        let all = map(&snapshot);
        // With rules in force, only what the principal may use is listed (and paged).
        let rules = self.rules_in_force();
        let listed = |key: &str| {
            rules
                .as_ref()
                .is_none_or(|(auth, principal)| auth.lists(principal, kind, key))
        };
        let page = page_of(all, p.cursor.as_deref(), self.server.page_size, listed)?;
        let items: Vec<&T> = page.items.into_iter().map(|e| item(e)).collect();
        let next_cursor = page.next_cursor;
        let mut result = serde_json::Map::new();
        result.insert(
            field.to_owned(),
            serde_json::to_value(items).map_err(|e| RpcError::internal(e.to_string()))?,
        );
        if let Some(cursor) = next_cursor {
            result.insert("nextCursor".to_owned(), cursor.into());
        }
        Ok(Reply::Now(jsonrpc::encode_result(id, &result)))
    }

    pub(super) fn read_resource(
        &self,
        id: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, RpcError> {
        let p: UriParams<'_> = parse_params(params)?;
        self.authorize(Kind::Resource, &p.uri)?;
        let snapshot = self.server.registry.snapshot();
        let ctx = self.context(p.meta.as_ref().and_then(|m| m.progress_token));
        let uri = p.uri.into_owned();
        // A 2026-07-28 read of a resource cached for every caller says so (docs/cache.md).
        let announced = |ttl: Option<u64>| ttl.filter(|_| self.stateless.is_some());
        let (read, public_ttl_ms) = if let Some(entry) = snapshot.resources.get(&uri) {
            (
                entry.reader.call(ctx, uri),
                announced(entry.public_ttl_ms()),
            )
        } else if let Some((template, vars)) = snapshot.match_template(&uri) {
            let ttl = announced(template.public_ttl_ms());
            (template.reader.call(ctx, (uri, vars)), ttl)
        } else {
            // 2026-07-28 standardizes on -32602 (SEP-2164); earlier revisions keep -32002.
            let code = if self.stateless.is_some() {
                jsonrpc::INVALID_PARAMS
            } else {
                jsonrpc::RESOURCE_NOT_FOUND
            };
            let mut error = RpcError::new(code, format!("resource not found: {uri}"));
            error.data = Some(serde_json::json!({ "uri": uri }));
            return Err(error);
        };
        Ok(settle(id, read, move |id, out| {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct ReadResult {
                // First, so the 2026-07-28 marking leaves these as they are.
                #[serde(skip_serializing_if = "Option::is_none")]
                result_type: Option<&'static str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                ttl_ms: Option<u64>,
                #[serde(skip_serializing_if = "Option::is_none")]
                cache_scope: Option<&'static str>,
                contents: Vec<crate::protocol::messages::ResourceContents>,
            }
            encode_rpc_outcome(
                id,
                out.map(|r| {
                    r.map(|contents| ReadResult {
                        result_type: public_ttl_ms.map(|_| "complete"),
                        ttl_ms: public_ttl_ms,
                        cache_scope: public_ttl_ms.map(|_| "public"),
                        contents,
                    })
                }),
            )
        }))
    }

    pub(super) fn get_prompt(
        &self,
        id: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, RpcError> {
        let p: GetPromptParams<'_> = parse_params(params)?;
        self.authorize(Kind::Prompt, &p.name)?;
        let snapshot = self.server.registry.snapshot();
        let entry = snapshot
            .prompts
            .get(p.name.as_ref())
            .ok_or_else(|| RpcError::invalid_params(format!("unknown prompt: {}", p.name)))?;
        if let Some(missing) = entry
            .prompt
            .arguments
            .iter()
            .find(|a| a.required && !p.arguments.contains_key(&a.name))
        {
            return Err(RpcError::invalid_params(format!(
                "prompt `{}` needs argument `{}`",
                p.name, missing.name
            )));
        }
        let ctx = self.context(p.meta.as_ref().and_then(|m| m.progress_token));
        let render = entry.handler.call(ctx, p.arguments);
        Ok(settle(id, render, encode_rpc_outcome))
    }

    pub(super) fn complete(&self, id: &str, params: Option<&RawValue>) -> Result<Reply, RpcError> {
        let p: CompleteParams = parse_params(params)?;
        match &p.reference {
            CompletionRef::Prompt { name } => self.authorize(Kind::Prompt, name)?,
            CompletionRef::Resource { uri } => self.authorize(Kind::Resource, uri)?,
        }
        let snapshot = self.server.registry.snapshot();
        let completer = match &p.reference {
            CompletionRef::Prompt { name } => snapshot
                .prompts
                .get(name)
                .ok_or_else(|| RpcError::invalid_params(format!("unknown prompt: {name}")))?
                .completer
                .clone(),
            CompletionRef::Resource { uri } => snapshot
                .templates
                .get(uri)
                .and_then(|t| t.completer.clone()),
        };
        let completion = completer.map(|c| c(&p)).unwrap_or_default();
        Ok(Reply::Now(jsonrpc::encode_result(
            id,
            &serde_json::json!({ "completion": completion }),
        )))
    }
}
