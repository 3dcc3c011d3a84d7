//! Owns the demo toolset served by default (`demo = true`): `echo`, `echo_cached`, `sleep` and
//! `kv_put`/`kv_get` ([`kv`]: the state store), used by the benchmarks and tests, and the tools,
//! resources and prompts the official MCP conformance suite calls, each behaving as the suite's
//! scenario descriptions ask ([`suite_2026`]: those of its 2026-07-28 scenarios).

use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::{
    CallToolResult, Completion, Content, GetPromptResult, LogLevel, Prompt, PromptArgument,
    PromptMessage, Resource, ResourceContents, ResourceTemplate, Tool,
};
use crate::registry::{
    Arguments, Change, PromptEntry, ResourceEntry, TemplateEntry, ToolEntry, ToolError,
};
use crate::session::RequestContext;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

/// A 1×1 red PNG.
pub const RED_PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A tiny valid WAV file (8 kHz, mono, 8-bit, 8 samples), base64.
pub fn tiny_wav() -> String {
    let samples = [128u8, 160, 192, 160, 128, 96, 64, 96];
    let mut wav = Vec::with_capacity(44 + samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes()); // byte rate
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    STANDARD.encode(wav)
}

pub mod kv;
mod suite_2026;
mod tasks;

type ToolResult = Result<CallToolResult, ToolError>;

fn tool<F, Fut>(tool: Tool, handler: F) -> Change
where
    F: Fn(RequestContext, Arguments) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ToolResult> + Send + 'static,
{
    Change::Tool(ToolEntry::new(tool, handler))
}

fn simple(name: &str, description: &str, result: CallToolResult) -> Change {
    tool(Tool::without_arguments(name, description), move |_, _| {
        std::future::ready(Ok(result.clone()))
    })
}

fn string_arg_schema(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": { name: { "type": "string", "description": description } },
        "required": [name]
    })
}

#[derive(Deserialize)]
struct EchoArgs<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// `echo {text}` → the text back.
pub fn echo() -> Change {
    tool(
        Tool::new(
            "echo",
            "Returns its `text` argument unchanged (after a progress report of 1/1 when the \
             call carries a progress token: an answer streamed over SSE)",
            string_arg_schema("text", "Text to echo"),
        ),
        |ctx, args| {
            if ctx.wants_progress() {
                ctx.progress(1.0, Some(1.0), None);
            }
            std::future::ready(
                args.parse::<EchoArgs<'_>>()
                    .map(|a| CallToolResult::text(a.text.into_owned())),
            )
        },
    )
}

/// How long `echo_cached` keeps an answer, in milliseconds.
pub const ECHO_CACHED_TTL_MS: u64 = 60_000;

/// `echo_cached {text}` → the text back, like `echo`, its answers kept in the node's cache for
/// a minute (the same for every caller): what a cached `tools/call` costs beside `echo`
/// (`erlmcp bench tcp --tool echo-cached`).
pub fn echo_cached() -> Change {
    let tool = Tool::new(
        "echo_cached",
        "Returns its `text` argument unchanged; answers are cached for a minute (read-only, idempotent)",
        string_arg_schema("text", "Text to echo"),
    )
    .with_annotations(json!({"readOnlyHint": true, "idempotentHint": true}));
    Change::Tool(
        ToolEntry::new(tool, |_, args: Arguments| {
            std::future::ready(
                args.parse::<EchoArgs<'_>>()
                    .map(|a| CallToolResult::text(a.text.into_owned())),
            )
        })
        .cached(ECHO_CACHED_TTL_MS, false),
    )
}

/// `sleep {ms}` → waits, reporting progress when asked; for tests of concurrency and cancellation.
pub fn sleep() -> Change {
    #[derive(Deserialize)]
    struct SleepArgs {
        ms: u64,
    }
    tool(
        Tool::new(
            "sleep",
            "Waits `ms` milliseconds (at most 600000), reporting progress every tenth",
            json!({
                "type": "object",
                "properties": { "ms": { "type": "integer", "minimum": 0, "maximum": 600000 } },
                "required": ["ms"]
            }),
        ),
        |ctx, args| {
            let parsed = args.parse::<SleepArgs>();
            Box::pin(async move {
                let ms = parsed?.ms;
                if ms > 600_000 {
                    return Err(ToolError::new("ms must be at most 600000"));
                }
                for step in 1..=10u64 {
                    tokio::time::sleep(Duration::from_millis(ms / 10)).await;
                    ctx.progress((step * 10) as f64, Some(100.0), None);
                }
                Ok(CallToolResult::text(format!("slept {ms} ms")))
            })
        },
    )
}

fn conformance_tools() -> Vec<Change> {
    let image = Content::Image {
        data: RED_PIXEL_PNG.into(),
        mime_type: "image/png".into(),
    };
    vec![
        simple(
            "test_simple_text",
            "Returns simple text content",
            CallToolResult::text("This is a simple text response for testing."),
        ),
        simple(
            "test_image_content",
            "Returns image content",
            CallToolResult {
                content: vec![image.clone()],
                ..CallToolResult::default()
            },
        ),
        simple(
            "test_audio_content",
            "Returns audio content",
            CallToolResult {
                content: vec![Content::Audio {
                    data: tiny_wav(),
                    mime_type: "audio/wav".into(),
                }],
                ..CallToolResult::default()
            },
        ),
        simple(
            "test_embedded_resource",
            "Returns embedded resource content",
            CallToolResult {
                content: vec![Content::Resource {
                    resource: ResourceContents::Text {
                        uri: "test://embedded-resource".into(),
                        mime_type: Some("text/plain".into()),
                        text: "This is an embedded resource content.".into(),
                    },
                }],
                ..CallToolResult::default()
            },
        ),
        simple(
            "test_multiple_content_types",
            "Returns text, image and resource content",
            CallToolResult {
                content: vec![
                    Content::text("Multiple content types test:"),
                    image,
                    Content::Resource {
                        resource: ResourceContents::Text {
                            uri: "test://mixed-content-resource".into(),
                            mime_type: Some("application/json".into()),
                            text: r#"{"test":"data","value":123}"#.into(),
                        },
                    },
                ],
                ..CallToolResult::default()
            },
        ),
        tool(
            Tool::without_arguments(
                "test_tool_with_logging",
                "Sends three info log notifications while it runs",
            ),
            |ctx, _| {
                Box::pin(async move {
                    let log =
                        |text: &str| ctx.log(LogLevel::Info, Some("erlmcp.demo"), json!(text));
                    log("Tool execution started");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log("Tool processing data");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log("Tool execution completed");
                    Ok(CallToolResult::text(
                        "Tool with logging executed successfully",
                    ))
                })
            },
        ),
        tool(
            Tool::without_arguments(
                "test_tool_with_progress",
                "Reports progress 0, 50 and 100 of 100",
            ),
            |ctx, _| {
                Box::pin(async move {
                    ctx.progress(0.0, Some(100.0), None);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    ctx.progress(50.0, Some(100.0), None);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    ctx.progress(100.0, Some(100.0), None);
                    Ok(CallToolResult::text(
                        "Tool with progress executed successfully",
                    ))
                })
            },
        ),
        tool(
            Tool::without_arguments("test_error_handling", "Always fails"),
            |_, _| {
                Box::pin(async {
                    Err(ToolError::new(
                        "This tool intentionally returns an error for testing",
                    ))
                })
            },
        ),
        tool(
            Tool::new(
                "test_sampling",
                "Asks the client's LLM to answer `prompt` (sampling/createMessage)",
                string_arg_schema("prompt", "The prompt to send to the LLM"),
            ),
            |ctx, args| {
                #[derive(Deserialize)]
                struct P {
                    prompt: String,
                }
                let parsed = args.parse::<P>();
                Box::pin(async move {
                    let prompt = parsed?.prompt;
                    let answer = ctx
                        .create_message(json!({
                            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                            "maxTokens": 100
                        }))
                        .await
                        .map_err(|e| ToolError::new(e.to_string()))?;
                    let text = answer["content"]["text"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| answer["content"].to_string());
                    Ok(CallToolResult::text(format!("LLM response: {text}")))
                })
            },
        ),
        tool(
            Tool::new(
                "test_elicitation",
                "Asks the user for a username and email (elicitation/create)",
                string_arg_schema("message", "The message to show the user"),
            ),
            |ctx, args| {
                #[derive(Deserialize)]
                struct P {
                    message: String,
                }
                let parsed = args.parse::<P>();
                Box::pin(async move {
                    let message = parsed?.message;
                    let answer = ctx
                        .elicit(json!({
                            "message": message,
                            "requestedSchema": {
                                "type": "object",
                                "properties": {
                                    "username": {"type": "string", "description": "User's response"},
                                    "email": {"type": "string", "description": "User's email address"}
                                },
                                "required": ["username", "email"]
                            }
                        }))
                        .await
                        .map_err(|e| ToolError::new(e.to_string()))?;
                    Ok(CallToolResult::text(format!(
                        "User response: action={}, content={}",
                        answer["action"].as_str().unwrap_or("unknown"),
                        answer.get("content").cloned().unwrap_or(Value::Null)
                    )))
                })
            },
        ),
        elicitation_tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation whose schema has a default for every primitive type (SEP-1034)",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "default": "John Doe"},
                    "age": {"type": "integer", "default": 30},
                    "score": {"type": "number", "default": 95.5},
                    "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "default": true}
                }
            }),
        ),
        elicitation_tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with the five enum schema variants (SEP-1330)",
            json!({
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}
                    ]},
                    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "items": {"anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}
                    ]}}
                }
            }),
        ),
        tool(
            Tool::new(
                "json_schema_2020_12_tool",
                "Tool with JSON Schema 2020-12 features",
                json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "$defs": {
                        "address": {
                            "$anchor": "addressDef",
                            "type": "object",
                            "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                        }
                    },
                    "properties": {
                        "name": {"type": "string"},
                        "address": {"$ref": "#/$defs/address"},
                        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                        "phone": {"type": "string"},
                        "email": {"type": "string"}
                    },
                    // SEP-2106's vocabulary: composition and conditionals, kept as given.
                    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                    "then": {"required": ["phone"]},
                    "else": {"required": ["email"]},
                    "additionalProperties": false
                }),
            ),
            |_, args| {
                let text = format!("Received: {}", args.raw());
                Box::pin(async move { Ok(CallToolResult::text(text)) })
            },
        ),
        tool(
            Tool::without_arguments(
                "test_reconnection",
                "Ends its HTTP response stream early, then answers on the resumed stream (SEP-1699)",
            ),
            |ctx, _| async move {
                ctx.close_stream();
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(CallToolResult::text("Reconnection test completed"))
            },
        ),
    ]
}

fn elicitation_tool(name: &'static str, description: &str, schema: Value) -> Change {
    tool(Tool::without_arguments(name, description), move |ctx, _| {
        let schema = schema.clone();
        Box::pin(async move {
            let answer = ctx
                .elicit(json!({ "message": format!("Please fill in the form of {name}"), "requestedSchema": schema }))
                .await
                .map_err(|e| ToolError::new(e.to_string()))?;
            Ok(CallToolResult::text(format!(
                "Elicitation completed: action={}, content={}",
                answer["action"].as_str().unwrap_or("unknown"),
                answer.get("content").cloned().unwrap_or(Value::Null)
            )))
        })
    })
}

fn resource(
    uri: &str,
    name: &str,
    description: &str,
    mime: &str,
    contents: ResourceContents,
) -> Change {
    Change::Resource(ResourceEntry::new(
        Resource {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: Some(description.into()),
            mime_type: Some(mime.into()),
        },
        move |_: RequestContext, _uri: String| {
            let contents = contents.clone();
            async move { Ok(vec![contents]) }
        },
    ))
}

fn conformance_resources() -> Vec<Change> {
    let template = TemplateEntry::new(
        ResourceTemplate {
            uri_template: "test://template/{id}/data".into(),
            name: "template-data".into(),
            title: None,
            description: Some("Data for any id".into()),
            mime_type: Some("application/json".into()),
        },
        |_: RequestContext, (uri, vars): (String, HashMap<String, String>)| async move {
            let id = vars.get("id").cloned().unwrap_or_default();
            let text =
                json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            Ok::<_, RpcError>(vec![ResourceContents::Text {
                uri,
                mime_type: Some("application/json".into()),
                text: text.to_string(),
            }])
        },
    )
    .map(|t| {
        t.with_completer(|p| prefix_completion(&["1", "2", "3", "42", "123"], &p.argument.value))
    });
    let mut changes = vec![
        resource(
            "test://static-text",
            "static-text",
            "A static text resource",
            "text/plain",
            ResourceContents::Text {
                uri: "test://static-text".into(),
                mime_type: Some("text/plain".into()),
                text: "This is the content of the static text resource.".into(),
            },
        ),
        resource(
            "test://static-binary",
            "static-binary",
            "A static binary resource (a PNG)",
            "image/png",
            ResourceContents::Blob {
                uri: "test://static-binary".into(),
                mime_type: Some("image/png".into()),
                blob: RED_PIXEL_PNG.into(),
            },
        ),
        resource(
            "test://watched-resource",
            "watched-resource",
            "A resource clients may subscribe to",
            "text/plain",
            ResourceContents::Text {
                uri: "test://watched-resource".into(),
                mime_type: Some("text/plain".into()),
                text: "Watched resource content".into(),
            },
        ),
    ];
    if let Ok(template) = template {
        changes.push(Change::Template(template));
    }
    changes
}

fn prefix_completion(candidates: &[&str], typed: &str) -> Completion {
    let values: Vec<String> = candidates
        .iter()
        .filter(|c| c.starts_with(typed))
        .map(|c| (*c).to_owned())
        .collect();
    Completion {
        total: Some(values.len() as u64),
        values,
        has_more: false,
    }
}

fn prompt(name: &str, description: &str, arguments: &[(&str, &str)]) -> Prompt {
    Prompt {
        name: name.into(),
        title: None,
        description: Some(description.into()),
        arguments: arguments
            .iter()
            .map(|(n, d)| PromptArgument {
                name: (*n).into(),
                description: Some((*d).into()),
                required: true,
            })
            .collect(),
    }
}

fn prompt_entry(
    p: Prompt,
    render: impl Fn(&HashMap<String, String>) -> Vec<PromptMessage> + Send + Sync + 'static,
) -> PromptEntry {
    let render = std::sync::Arc::new(render);
    PromptEntry::new(
        p,
        move |_: RequestContext, args: HashMap<String, String>| {
            let messages = render(&args);
            async move {
                Ok::<_, RpcError>(GetPromptResult {
                    description: None,
                    messages,
                })
            }
        },
    )
}

fn conformance_prompts() -> Vec<Change> {
    let arg =
        |args: &HashMap<String, String>, name: &str| args.get(name).cloned().unwrap_or_default();
    vec![
        Change::Prompt(prompt_entry(
            prompt(
                "test_simple_prompt",
                "A simple prompt without arguments",
                &[],
            ),
            |_| {
                vec![PromptMessage::user(Content::text(
                    "This is a simple prompt for testing.",
                ))]
            },
        )),
        Change::Prompt(
            prompt_entry(
                prompt(
                    "test_prompt_with_arguments",
                    "A prompt with two arguments",
                    &[
                        ("arg1", "First test argument"),
                        ("arg2", "Second test argument"),
                    ],
                ),
                move |args| {
                    vec![PromptMessage::user(Content::text(format!(
                        "Prompt with arguments: arg1='{}', arg2='{}'",
                        arg(args, "arg1"),
                        arg(args, "arg2")
                    )))]
                },
            )
            .with_completer(|p| {
                prefix_completion(
                    &["paris", "park", "party", "peace", "python"],
                    &p.argument.value,
                )
            }),
        ),
        Change::Prompt(prompt_entry(
            prompt(
                "test_prompt_with_embedded_resource",
                "A prompt embedding a resource",
                &[("resourceUri", "URI of the resource to embed")],
            ),
            move |args| {
                vec![
                    PromptMessage::user(Content::Resource {
                        resource: ResourceContents::Text {
                            uri: arg(args, "resourceUri"),
                            mime_type: Some("text/plain".into()),
                            text: "Embedded resource content for testing.".into(),
                        },
                    }),
                    PromptMessage::user(Content::text(
                        "Please process the embedded resource above.",
                    )),
                ]
            },
        )),
        Change::Prompt(prompt_entry(
            prompt("test_prompt_with_image", "A prompt with an image", &[]),
            |_| {
                vec![
                    PromptMessage::user(Content::Image {
                        data: RED_PIXEL_PNG.into(),
                        mime_type: "image/png".into(),
                    }),
                    PromptMessage::user(Content::text("Please analyze the image above.")),
                ]
            },
        )),
    ]
}

/// `route {region, text}` → where the text was routed; `region` is mirrored in the
/// `Mcp-Param-Region` header at 2026-07-28 (`x-mcp-header`), so intermediaries can route on it.
pub fn route() -> Change {
    #[derive(Deserialize)]
    struct RouteArgs {
        region: String,
        text: String,
    }
    tool(
        Tool::new(
            "route",
            "Answers which region `text` was routed to; `region` travels as the Mcp-Param-Region header too",
            json!({
                "type": "object",
                "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"},
                    "text": {"type": "string"}
                },
                "required": ["region", "text"]
            }),
        ),
        |_, args| {
            std::future::ready(
                args.parse::<RouteArgs>()
                    .map(|a| CallToolResult::text(format!("{} via {}", a.text, a.region))),
            )
        },
    )
}

/// Everything the demo toolset registers, as one batch.
pub fn demo_changes() -> Vec<Change> {
    let mut changes = vec![echo(), echo_cached(), sleep(), route()];
    changes.extend(conformance_tools());
    changes.extend(conformance_resources());
    changes.extend(conformance_prompts());
    changes.extend(suite_2026::changes());
    changes.extend(tasks::changes());
    changes.extend(kv::changes());
    changes
}
