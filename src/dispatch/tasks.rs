//! Owns the dispatch of the tasks extension (SEP-2663): which principal a request speaks for,
//! whether it declared the extension (in its session's `initialize`, or per request in
//! `_meta["io.modelcontextprotocol/clientCapabilities"]`), the `tools/call` of a task tool (a
//! task, an `input_required` round first for a tool that gathers its input before, an ordinary
//! call, or -32021), and `tasks/get`, `tasks/update`, `tasks/cancel`.

use super::{Dispatcher, Reply, parse_params};
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::messages::{ClientCapabilities, TASKS_EXTENSION, TaskSupport};
use crate::protocol::methods::ClientMethod;
use crate::protocol::modern;
use crate::registry::{Arguments, ToolEntry};
use crate::tasks::NewTask;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The principal of every request that carries no session (today: whoever passed the
/// transport's own check, e.g. the static bearer token).
const STATELESS_PRINCIPAL: &str = "stateless";

/// The `_meta` of a request, for its per-request capabilities.
#[derive(Deserialize, Default)]
struct MetaCapabilities {
    #[serde(default, rename = "io.modelcontextprotocol/clientCapabilities")]
    capabilities: Option<ClientCapabilities>,
}

/// The params of `tasks/get`, `tasks/update` and `tasks/cancel`.
#[derive(Deserialize)]
struct TaskParams {
    #[serde(rename = "taskId")]
    task_id: String,
    #[serde(default, rename = "inputResponses")]
    input_responses: Option<Map<String, Value>>,
    #[serde(default, rename = "_meta")]
    meta: Option<MetaCapabilities>,
}

/// -32021 naming the tasks extension (MissingRequiredClientCapabilityError).
fn tasks_required(what: &str) -> RpcError {
    let mut error = RpcError::new(
        modern::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!("{what} needs the client to declare the `{TASKS_EXTENSION}` extension"),
    );
    error.data = Some(serde_json::json!({
        "requiredCapabilities": { "extensions": { TASKS_EXTENSION: {} } },
    }));
    error
}

/// Whether per-request `_meta` capabilities (raw) declare the tasks extension.
pub(super) fn opts_in(capabilities: Option<&RawValue>) -> bool {
    capabilities
        .and_then(|raw| serde_json::from_str::<ClientCapabilities>(raw.get()).ok())
        .is_some_and(|c| c.declares_tasks())
}

/// Whether raw params' `_meta` declares the tasks extension.
pub(super) fn params_opt_in(params: Option<&RawValue>) -> bool {
    #[derive(Deserialize)]
    struct WithMeta {
        #[serde(default, rename = "_meta")]
        meta: Option<MetaCapabilities>,
    }
    params
        .and_then(|raw| serde_json::from_str::<WithMeta>(raw.get()).ok())
        .and_then(|p| p.meta)
        .and_then(|m| m.capabilities)
        .is_some_and(|c| c.declares_tasks())
}

impl Dispatcher {
    /// Who a request speaks for: its session; stateless, the subject of its access token
    /// (`[auth]`, docs/security.md), or every stateless caller together when none was asked.
    pub(super) fn principal(&self) -> String {
        match (&self.stateless, &self.principal) {
            (None, _) => format!("session:{}", self.shared.id),
            (Some(_), Some(principal)) => format!("subject:{}", principal.subject),
            (Some(_), None) => STATELESS_PRINCIPAL.to_owned(),
        }
    }

    /// The client's capabilities for this request: its envelope's, or its session's.
    fn client_capabilities(&self) -> ClientCapabilities {
        match &self.stateless {
            Some(s) => s.envelope.capabilities.clone(),
            None => self
                .shared
                .negotiated()
                .map(|n| n.capabilities.clone())
                .unwrap_or_default(),
        }
    }

    /// Whether this request may use tasks: declared for the request (`opt_in`), in its
    /// envelope, or at its session's `initialize`.
    fn declares_tasks(&self, opt_in: bool) -> bool {
        opt_in || self.client_capabilities().declares_tasks()
    }

    /// A `tools/call` of a task tool: `None` when it runs as an ordinary call (an optional
    /// task tool called by a client without the extension).
    pub(super) fn call_task_tool(
        &self,
        id: &str,
        entry: &Arc<ToolEntry>,
        arguments: Option<&RawValue>,
        support: TaskSupport,
        opt_in: bool,
    ) -> Option<Reply> {
        let name = &entry.tool.name;
        if !self.declares_tasks(opt_in) {
            return match support {
                TaskSupport::Optional => None,
                TaskSupport::Required => Some(Reply::Now(jsonrpc::encode_error(
                    Some(id),
                    &tasks_required(&format!("tool `{name}`")),
                ))),
            };
        }
        let Some(tasks) = crate::tasks::current() else {
            return Some(Reply::Now(jsonrpc::encode_error(
                Some(id),
                &RpcError::internal("tasks are not served: no application tree runs"),
            )));
        };
        let mut capabilities = self.client_capabilities();
        if opt_in && !capabilities.declares_tasks() {
            capabilities.extensions = Some(serde_json::json!({ TASKS_EXTENSION: {} }));
        }
        let answers: Map<String, Value> = match &self.stateless {
            Some(s) => s
                .envelope
                .input_responses
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => Map::new(),
        };
        if entry.gathers_input_first()
            && self.stateless.is_some()
            && self.asks_first(entry, arguments)
        {
            // Its questions travel in this call's `input_required` result (the stateless
            // answer's finish sees what it asked); no task yet.
            return Some(Reply::Now(jsonrpc::encode_raw_result(id, b"{}")));
        }
        let new = NewTask {
            owner: self.principal(),
            tool: name.clone(),
            arguments: arguments.and_then(|a| serde_json::from_str(a.get()).ok()),
            capabilities: serde_json::to_value(&capabilities).unwrap_or_default(),
            answers,
            notify: self
                .stateless
                .is_none()
                .then(|| self.shared.outbound().clone()),
        };
        let id = id.to_owned();
        Some(Reply::Later(Box::pin(async move {
            match tasks.create(new).await {
                Ok(record) => jsonrpc::encode_result(&id, &record.create_result()),
                Err(e) => jsonrpc::encode_error(Some(&id), &RpcError::from(e)),
            }
        })))
    }

    /// Runs the handler of a tool that gathers its input first, up to its first wait: whether
    /// it asked the client something this request does not answer.
    fn asks_first(&self, entry: &Arc<ToolEntry>, arguments: Option<&RawValue>) -> bool {
        let Some(stateless) = &self.stateless else {
            return false;
        };
        let ctx = self.context(None);
        let args = Arguments::new(arguments.map(ToOwned::to_owned));
        if let Ok(mut call) =
            std::panic::catch_unwind(AssertUnwindSafe(|| entry.handler.call(ctx, args)))
        {
            // One poll: a handler asks before it waits on anything else.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| (&mut call).now_or_never()));
        }
        !stateless.rounds.requested().is_empty()
            || crate::locks::lock(&stateless.missing_capability).is_some()
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel`.
    pub(super) fn task_method(
        &self,
        id: &str,
        method: ClientMethod<'_>,
        params: Option<&RawValue>,
    ) -> Result<Reply, RpcError> {
        let p: TaskParams = parse_params(params)?;
        let opt_in = p
            .meta
            .and_then(|m| m.capabilities)
            .is_some_and(|c| c.declares_tasks());
        if !self.declares_tasks(opt_in) {
            return Err(tasks_required(&format!("`{}`", method.as_str())));
        }
        let tasks = crate::tasks::current()
            .ok_or_else(|| RpcError::internal("tasks are not served: no application tree runs"))?;
        let owner = self.principal();
        let task_id = p.task_id;
        if method == ClientMethod::TasksGet {
            let record = tasks.get(&owner, &task_id)?;
            return Ok(Reply::Now(jsonrpc::encode_result(id, &record.detailed())));
        }
        let id = id.to_owned();
        let answers = p.input_responses.unwrap_or_default();
        let update = method == ClientMethod::TasksUpdate;
        Ok(Reply::Later(Box::pin(async move {
            let done = if update {
                tasks.update(&owner, &task_id, answers).await
            } else {
                tasks.cancel(&owner, &task_id).await
            };
            match done {
                Ok(()) => jsonrpc::encode_raw_result(&id, br#"{"resultType":"complete"}"#),
                Err(e) => jsonrpc::encode_error(Some(&id), &RpcError::from(e)),
            }
        })))
    }
}
