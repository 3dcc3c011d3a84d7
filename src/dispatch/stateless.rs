//! Owns the stateless (2026-07-28) side of dispatch: the envelope of one self-contained
//! request (its ladder of checks, the context built from it, the `complete` / `input_required`
//! result), the check of the tool parameters a transport repeats outside the body (HTTP's
//! `Mcp-Param-*`), `server/discover` and `subscriptions/listen`.

use super::{Dispatcher, Reply, parse_params};
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::protocol::incoming::Params;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::messages::ListenParams;
use crate::protocol::methods::ClientMethod;
use crate::protocol::modern::{self, StatelessRouting};
use crate::protocol::request_state::{self, CarriedState};
use crate::protocol::revision::Revision;
use crate::session::{InputRounds, StatelessRequest};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Refused `requestState`s, logged at most once a second.
static REFUSED_STATES: LogLimiter = LogLimiter::per_second();

/// Opens the `requestState` a retry echoed: the answers it carries join the retry's own
/// `inputResponses` (which win), and what the handler kept is returned. A state that fails its
/// check is -32602, logged at a bounded rate.
fn open_request_state(
    envelope: &mut modern::Envelope,
) -> Result<Option<serde_json::Value>, RpcError> {
    let Some(token) = envelope.request_state.take() else {
        return Ok(None);
    };
    match request_state::open(&token, &envelope.subject) {
        Ok(carried) => {
            for (key, answer) in carried.answers {
                envelope.input_responses.entry(key).or_insert(answer);
            }
            Ok(carried.handler)
        }
        Err(why) => {
            if let Some(held) = REFUSED_STATES.allow() {
                tracing::warn!(
                    method = %envelope.subject.method,
                    name = envelope.subject.name.as_deref().unwrap_or_default(),
                    refused_since_last_line = held,
                    "requestState refused: {why}"
                );
            }
            Err(RpcError::invalid_params(format!(
                "requestState refused: {why}"
            )))
        }
    }
}

impl Dispatcher {
    /// One 2026-07-28 request: the envelope ladder, then the method with a context built from
    /// the envelope; the result is tagged `complete`, or replaced by `input_required` when the
    /// handler asked the client something it has not answered yet.
    pub(super) async fn stateless_request(
        &self,
        id: &str,
        method: ClientMethod<'_>,
        params: &Params<'_>,
        routing: Option<&StatelessRouting<'_>>,
    ) -> Reply {
        use ClientMethod as M;
        let name = method.as_str();
        let (mut envelope, call) =
            match modern::envelope_of(name, params, routing.map(|r| r.headers)) {
                Ok(read) => read,
                Err(error) => return Reply::Now(jsonrpc::encode_error(Some(id), &error)),
            };
        let state_received = match open_request_state(&mut envelope) {
            Ok(kept) => kept,
            Err(error) => return Reply::Now(jsonrpc::encode_error(Some(id), &error)),
        };
        if let (Some(call), Some(routing)) = (&call, routing)
            && let Err(error) =
                self.check_param_headers(&call.name, call.arguments, &routing.params)
        {
            return Reply::Now(jsonrpc::encode_error(Some(id), &error));
        }
        let stateless = Arc::new(StatelessRequest {
            envelope,
            rounds: InputRounds::default(),
            state_received,
            state_kept: std::sync::Mutex::default(),
            missing_capability: std::sync::Mutex::default(),
        });
        let routed = Self {
            stateless: Some(Arc::clone(&stateless)),
            ..self.clone()
        };
        let reply = match method {
            M::ServerDiscover => routed
                .discover(id)
                .unwrap_or_else(|error| Reply::Now(jsonrpc::encode_error(Some(id), &error))),
            M::Initialize
            | M::Ping
            | M::LoggingSetLevel
            | M::ResourcesSubscribe
            | M::ResourcesUnsubscribe => Reply::Now(jsonrpc::encode_error(
                Some(id),
                &RpcError::new(
                    jsonrpc::METHOD_NOT_FOUND,
                    format!("`{name}` is not part of revision 2026-07-28"),
                ),
            )),
            M::SubscriptionsListen => routed.listen(id, params.raw()).await,
            // Read in the envelope's pass: not parsed again.
            M::ToolsCall if let Some(call) = call => routed
                .call_tool_with(id, &call.name, call.arguments, call.progress_token, || {
                    false
                })
                .unwrap_or_else(|error| Reply::Now(jsonrpc::encode_error(Some(id), &error))),
            M::ToolsCall
            | M::ToolsList
            | M::ResourcesList
            | M::ResourcesTemplatesList
            | M::ResourcesRead
            | M::PromptsList
            | M::PromptsGet
            | M::CompletionComplete
            | M::TasksGet
            | M::TasksUpdate
            | M::TasksCancel
            | M::Unknown(_) => routed.route(id, method, params).await,
        };
        match reply {
            Reply::Now(frame) => Reply::Now(Self::finish_stateless(frame, id, name, &stateless)),
            Reply::Later(work) => {
                let (id, name) = (id.to_owned(), name.to_owned());
                Reply::Later(Box::pin(async move {
                    Self::finish_stateless(work.await, &id, &name, &stateless)
                }))
            }
            Reply::Shed(..) | Reply::None => reply,
        }
    }

    /// A stateless request's answer: marked complete, or, when the handler asked the client
    /// for input, an `input_required` result listing what it asked, with the `requestState`
    /// that carries the answers so far and what the handler kept, sealed for this request.
    pub(super) fn finish_stateless(
        frame: Vec<u8>,
        id: &str,
        method: &str,
        stateless: &StatelessRequest,
    ) -> Vec<u8> {
        if let Some(capability) = *lock(&stateless.missing_capability) {
            let mut error = RpcError::new(
                modern::MISSING_REQUIRED_CLIENT_CAPABILITY,
                format!(
                    "this request needs the client's `{capability}` capability, which its \
                     envelope does not declare"
                ),
            );
            error.data = Some(serde_json::json!({
                "requiredCapabilities": { capability: {} },
            }));
            return jsonrpc::encode_error(Some(id), &error);
        }
        let requested = stateless.rounds.requested();
        if requested.is_empty() {
            return modern::mark_complete(frame, id, method);
        }
        if !matches!(method, "tools/call" | "prompts/get" | "resources/read") {
            // Only `tools/call`, `prompts/get` and `resources/read` may end `input_required`.
            return jsonrpc::encode_error(
                Some(id),
                &RpcError::internal(format!(
                    "a `{method}` handler asked the client for input, which this method cannot carry"
                )),
            );
        }
        let input_requests: serde_json::Map<String, serde_json::Value> =
            requested.into_iter().collect();
        let carried = CarriedState {
            answers: stateless.envelope.input_responses.clone(),
            handler: lock(&stateless.state_kept).take(),
            expires: 0,
        };
        jsonrpc::encode_result(
            id,
            &serde_json::json!({
                "resultType": "input_required",
                "inputRequests": input_requests,
                "requestState": request_state::seal(carried, &stateless.envelope.subject),
            }),
        )
    }

    /// The parameters a stateless `tools/call` repeats outside its body (`Mcp-Param-*`) against the tool's
    /// `x-mcp-header` annotations (nothing to check for tools without any).
    pub(super) fn check_param_headers(
        &self,
        tool: &str,
        arguments: Option<&RawValue>,
        sent: &[(&str, &str)],
    ) -> Result<(), RpcError> {
        let snapshot = self.server.registry.snapshot();
        let Some(entry) = snapshot.tools.get(tool) else {
            return Ok(()); // the call itself reports the unknown tool
        };
        if sent.is_empty() && !entry.has_param_headers() {
            return Ok(());
        }
        let schema = &entry.tool.input_schema;
        // Arguments that do not parse are reported by the call itself.
        let arguments = match arguments {
            Some(raw) => match serde_json::from_str(raw.get()) {
                Ok(arguments) => arguments,
                Err(_) => return Ok(()),
            },
            None => serde_json::Value::Null,
        };
        modern::check_param_headers(schema, &arguments, sent)
    }

    /// `server/discover`: the revisions served and what the server offers, with no handshake.
    pub(super) fn discover(&self, id: &str) -> Result<Reply, RpcError> {
        let versions: Vec<&str> = Revision::ALL.iter().map(|r| r.as_str()).collect();
        let mut result = serde_json::json!({
            "supportedVersions": versions,
            "capabilities": Self::capabilities(Revision::V2026_07_28),
            "_meta": { (modern::SERVER_INFO_KEY): &self.server.server_info },
        });
        if let Some(instructions) = &self.server.instructions {
            result["instructions"] = instructions.as_str().into();
        }
        Ok(Reply::Now(modern::mark_complete(
            jsonrpc::encode_result(id, &result),
            id,
            "server/discover",
        )))
    }

    /// `subscriptions/listen` (2026-07-28): the session delivers the chosen change notifications,
    /// stamped with this request's id, after an acknowledgement; the request stays open.
    pub(super) async fn listen(&self, id: &str, params: Option<&RawValue>) -> Reply {
        let answer = async {
            let p: ListenParams = parse_params(params)?;
            self.actor()?
                .listen(id.to_owned(), p.notifications.clone())
                .await?;
            let id: &RawValue = serde_json::from_str(id)
                .map_err(|e| RpcError::internal(format!("unreadable request id: {e}")))?;
            self.send(jsonrpc::encode_notification(
                "notifications/subscriptions/acknowledged",
                &serde_json::json!({
                    "notifications": p.notifications,
                    "_meta": { (modern::SUBSCRIPTION_ID_KEY): id },
                }),
            ));
            Ok::<_, RpcError>(())
        };
        match answer.await {
            Ok(()) => Reply::None,
            Err(error) => Reply::Now(jsonrpc::encode_error(Some(id), &error)),
        }
    }
}
