//! Owns the demo tools and prompt that the 2026-07-28 scenarios of the official conformance
//! suite (0.2) call by name: multi-round `input_required` requests (SEP-2322) with keyed input
//! requests and a sealed `requestState`, the stateless diagnostics (a tool that needs a client
//! capability, one that asks the client mid-request, one that logs), and the hooks that change
//! the tool and prompt lists so that `subscriptions/listen` streams see `list_changed`.
//!
//! Each behaves as its scenario's description in the suite asks; over a session (a handshake
//! revision) the same tools send their requests to the client at once.

use super::tool;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::{
    CallToolResult, Content, GetPromptResult, LogLevel, Prompt, PromptMessage, Tool,
};
use crate::registry::{Change, PromptEntry, ToolEntry, ToolError};
use crate::session::{ClientRequestError, RequestContext};
use serde_json::{Value, json};
use std::collections::HashMap;

/// A request to the client that failed: the tool's error (a stateless request then ends with
/// `input_required` or -32021, which the node decides from what the handler asked).
fn failed(error: ClientRequestError) -> ToolError {
    ToolError::new(error.to_string())
}

fn elicitation(message: &str, property: &str, kind: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { property: { "type": kind } },
            "required": [property]
        }
    })
}

fn sampling(text: &str, max_tokens: u32) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        "maxTokens": max_tokens
    })
}

/// The text of a sampling answer (`content.text`), or its content as JSON.
fn sampled_text(answer: &Value) -> String {
    answer["content"]["text"]
        .as_str()
        .map_or_else(|| answer["content"].to_string(), str::to_owned)
}

/// A tool without arguments whose handler gets the request's context.
fn context_tool<F, Fut>(name: &str, description: &str, handler: F) -> Change
where
    F: Fn(RequestContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<CallToolResult, ToolError>> + Send + 'static,
{
    tool(Tool::without_arguments(name, description), move |ctx, _| {
        handler(ctx)
    })
}

fn input_required_tools() -> Vec<Change> {
    vec![
        context_tool(
            "test_input_required_result_elicitation",
            "Asks the user's name (elicitation, key `user_name`), then greets them",
            |ctx| async move {
                let answer = ctx
                    .ask(
                        "user_name",
                        "elicitation/create",
                        elicitation("What is your name?", "name", "string"),
                    )
                    .await
                    .map_err(failed)?;
                let name = answer["content"]["name"].as_str().unwrap_or("stranger");
                Ok(CallToolResult::text(format!("Hello, {name}!")))
            },
        ),
        context_tool(
            "test_input_required_result_sampling",
            "Asks the client's model a question (sampling, key `capital_question`)",
            |ctx| async move {
                let answer = ctx
                    .ask(
                        "capital_question",
                        "sampling/createMessage",
                        sampling("What is the capital of France?", 100),
                    )
                    .await
                    .map_err(failed)?;
                Ok(CallToolResult::text(format!(
                    "The model said: {}",
                    sampled_text(&answer)
                )))
            },
        ),
        context_tool(
            "test_input_required_result_list_roots",
            "Asks the client's roots (roots/list, key `client_roots`) and names them",
            |ctx| async move {
                let answer = ctx
                    .ask("client_roots", "roots/list", json!({}))
                    .await
                    .map_err(failed)?;
                let roots: Vec<&str> = answer["roots"]
                    .as_array()
                    .map(|roots| roots.iter().filter_map(|r| r["uri"].as_str()).collect())
                    .unwrap_or_default();
                Ok(CallToolResult::text(format!(
                    "The client's roots: {}",
                    roots.join(", ")
                )))
            },
        ),
        context_tool(
            "test_input_required_result_request_state",
            "Asks for a confirmation and keeps a state between the rounds; answers `state-ok` once \
             the state came back intact",
            |ctx| async move {
                let kept = json!({"asked": "confirm"});
                let received = ctx.request_state().cloned();
                ctx.set_request_state(kept.clone());
                let answer = ctx
                    .ask(
                        "confirm",
                        "elicitation/create",
                        elicitation("Please confirm", "ok", "boolean"),
                    )
                    .await
                    .map_err(failed)?;
                let confirmed = &answer["content"]["ok"];
                match received {
                    Some(state) if state == kept => Ok(CallToolResult::text(format!(
                        "state-ok (confirmed: {confirmed})"
                    ))),
                    Some(_) => Err(ToolError::new("the request state is not the one kept")),
                    // A session asks the client at once: one round, no state.
                    None => Ok(CallToolResult::text(format!("confirmed: {confirmed}"))),
                }
            },
        ),
        context_tool(
            "test_input_required_result_multiple_inputs",
            "Asks for a name, a sampled greeting and the client's roots, all in one round",
            |ctx| async move {
                // Everything is asked before the first missing answer ends the round.
                let name = ctx
                    .ask(
                        "user_name",
                        "elicitation/create",
                        elicitation("What is your name?", "name", "string"),
                    )
                    .await;
                let greeting = ctx
                    .ask(
                        "greeting",
                        "sampling/createMessage",
                        sampling("Generate a greeting", 50),
                    )
                    .await;
                let roots = ctx.ask("client_roots", "roots/list", json!({})).await;
                let (name, greeting, roots) = (
                    name.map_err(failed)?,
                    greeting.map_err(failed)?,
                    roots.map_err(failed)?,
                );
                Ok(CallToolResult::text(format!(
                    "{} {}, with {} root(s)",
                    sampled_text(&greeting),
                    name["content"]["name"].as_str().unwrap_or("stranger"),
                    roots["roots"].as_array().map_or(0, Vec::len)
                )))
            },
        ),
        context_tool(
            "test_input_required_result_multi_round",
            "Asks a name (round one), then a favourite colour (round two)",
            |ctx| async move {
                let name = ctx
                    .ask(
                        "step1",
                        "elicitation/create",
                        elicitation("Step 1: What is your name?", "name", "string"),
                    )
                    .await
                    .map_err(failed)?;
                let color = ctx
                    .ask(
                        "step2",
                        "elicitation/create",
                        elicitation("Step 2: What is your favorite color?", "color", "string"),
                    )
                    .await
                    .map_err(failed)?;
                Ok(CallToolResult::text(format!(
                    "{} likes {}",
                    name["content"]["name"].as_str().unwrap_or("someone"),
                    color["content"]["color"].as_str().unwrap_or("no colour")
                )))
            },
        ),
        context_tool(
            "test_input_required_result_tampered_state",
            "Asks for a confirmation with a sealed state; a changed state is refused by the node",
            |ctx| async move {
                ctx.set_request_state(json!({"asked": "confirm"}));
                ctx.ask(
                    "confirm",
                    "elicitation/create",
                    elicitation("Please confirm", "ok", "boolean"),
                )
                .await
                .map_err(failed)?;
                Ok(CallToolResult::text("state-ok"))
            },
        ),
        context_tool(
            "test_input_required_result_capabilities",
            "Asks only what the client declared it can answer (sampling, elicitation)",
            |ctx| async move {
                let mut answers = Vec::new();
                if ctx.client_declares("sampling") {
                    answers.push(
                        ctx.ask(
                            "sampled",
                            "sampling/createMessage",
                            sampling("Say hello", 20),
                        )
                        .await,
                    );
                }
                if ctx.client_declares("elicitation") {
                    answers.push(
                        ctx.ask(
                            "elicited",
                            "elicitation/create",
                            elicitation("What is your name?", "name", "string"),
                        )
                        .await,
                    );
                }
                let answered = answers
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(failed)?;
                Ok(CallToolResult::text(format!(
                    "{} answer(s), each for a declared capability",
                    answered.len()
                )))
            },
        ),
    ]
}

fn stateless_diagnostics() -> Vec<Change> {
    vec![
        context_tool(
            "test_missing_capability",
            "Needs the client's sampling capability: without it the request fails with -32021",
            |ctx| async move {
                let answer = ctx
                    .create_message(sampling("Say hello", 20))
                    .await
                    .map_err(failed)?;
                Ok(CallToolResult::text(sampled_text(&answer)))
            },
        ),
        context_tool(
            "test_streaming_elicitation",
            "Asks the user to confirm mid-request (in revision 2026-07-28: an input_required \
             result, never a request on the response stream)",
            |ctx| async move {
                let answer = ctx
                    .ask(
                        "confirm",
                        "elicitation/create",
                        elicitation("Continue?", "ok", "boolean"),
                    )
                    .await
                    .map_err(failed)?;
                Ok(CallToolResult::text(format!(
                    "confirmed: {}",
                    answer["content"]["ok"]
                )))
            },
        ),
        context_tool(
            "test_logging_tool",
            "Logs a message at info (sent only when the request opted in to logging)",
            |ctx| async move {
                ctx.log(
                    LogLevel::Info,
                    Some("test_logging_tool"),
                    json!("test_logging_tool ran"),
                );
                Ok(CallToolResult::text("logged"))
            },
        ),
        context_tool(
            "test_trigger_tool_change",
            "Changes the tool list (removes `test_dynamic_tool`, or adds it when absent)",
            |_| async move {
                let added = || {
                    Change::Tool(ToolEntry::new(
                        Tool::without_arguments("test_dynamic_tool", "Registered by a trigger"),
                        |_, _| std::future::ready(Ok(CallToolResult::text("dynamic"))),
                    ))
                };
                toggle(Change::RemoveTool("test_dynamic_tool".into()), added).await
            },
        ),
        context_tool(
            "test_trigger_prompt_change",
            "Changes the prompt list (removes `test_dynamic_prompt`, or adds it when absent)",
            |_| async move {
                let added = || {
                    Change::Prompt(PromptEntry::new(
                        Prompt {
                            name: "test_dynamic_prompt".into(),
                            title: None,
                            description: Some("Registered by a trigger".into()),
                            arguments: Vec::new(),
                        },
                        |_: RequestContext, _: HashMap<String, String>| async {
                            Ok::<_, RpcError>(GetPromptResult {
                                description: None,
                                messages: vec![PromptMessage::user(Content::text("dynamic"))],
                            })
                        },
                    ))
                };
                toggle(Change::RemovePrompt("test_dynamic_prompt".into()), added).await
            },
        ),
    ]
}

/// Removes an item from the running registry, or adds it when it is not there (a replacement
/// by an equal item would change no list); the registry tells every session and listen stream.
async fn toggle(
    removal: Change,
    added: impl FnOnce() -> Change,
) -> Result<CallToolResult, ToolError> {
    use crate::registry::apply_to_running;
    let version = match apply_to_running(vec![removal]).await {
        Ok(version) => version,
        Err(_) => apply_to_running(vec![added()])
            .await
            .map_err(|e| ToolError::new(e.to_string()))?,
    };
    Ok(CallToolResult::text(format!("registry version {version}")))
}

/// `test_input_required_result_prompt`: asks for the prompt's context (elicitation, key
/// `user_context`), then renders it.
fn input_required_prompt() -> Change {
    Change::Prompt(PromptEntry::new(
        Prompt {
            name: "test_input_required_result_prompt".into(),
            title: None,
            description: Some("A prompt that asks the user for its context first".into()),
            arguments: Vec::new(),
        },
        |ctx: RequestContext, _: HashMap<String, String>| async move {
            let answer = ctx
                .ask(
                    "user_context",
                    "elicitation/create",
                    elicitation("What context should the prompt use?", "context", "string"),
                )
                .await
                .map_err(|e| {
                    RpcError::new(crate::protocol::jsonrpc::INTERNAL_ERROR, e.to_string())
                })?;
            let context = answer["content"]["context"].as_str().unwrap_or_default();
            Ok::<_, RpcError>(GetPromptResult {
                description: Some("A prompt rendered with the user's context".into()),
                messages: vec![PromptMessage::user(Content::text(format!(
                    "Answer with this context in mind: {context}"
                )))],
            })
        },
    ))
}

/// Everything this module registers.
pub(super) fn changes() -> Vec<Change> {
    let mut changes = input_required_tools();
    changes.extend(stateless_diagnostics());
    changes.push(input_required_prompt());
    changes
}
