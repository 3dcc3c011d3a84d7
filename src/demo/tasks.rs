//! Owns the demo tools the tasks scenarios of the official conformance suite (0.2, SEP-2663)
//! call by name: `greet` (an ordinary tool), `slow_compute` (a task that sleeps), `failing_job`
//! (a tool error: `completed` with `isError`), `protocol_error_job` (a panic: `failed`),
//! `confirm_delete` and `multi_input` (tasks that wait for input through `tasks/update`), and
//! `test_tool_with_task` (input gathered in `input_required` rounds, then a task).

use super::tool;
use crate::protocol::messages::{CallToolResult, TaskSupport, Tool};
use crate::registry::{Change, ToolEntry, ToolError};
use crate::session::ClientRequestError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

fn failed(error: ClientRequestError) -> ToolError {
    ToolError::new(error.to_string())
}

fn confirmation(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { "confirm": { "type": "boolean" } },
            "required": ["confirm"]
        }
    })
}

fn greet() -> Change {
    #[derive(Deserialize)]
    struct Args {
        #[serde(default)]
        name: Option<String>,
    }
    tool(
        Tool::new(
            "greet",
            "Greets `name` (an ordinary tool: never a task)",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        ),
        |_, args| {
            let parsed = args.parse::<Args>();
            std::future::ready(parsed.map(|a| {
                CallToolResult::text(format!("Hello, {}!", a.name.as_deref().unwrap_or("World")))
            }))
        },
    )
}

fn slow_compute() -> Change {
    #[derive(Deserialize)]
    struct Args {
        #[serde(default)]
        seconds: f64,
        #[serde(default)]
        label: Option<String>,
    }
    tool(
        Tool::new(
            "slow_compute",
            "Sleeps `seconds` (at most 3600), then answers; a task when the client declares the \
             tasks extension",
            json!({
                "type": "object",
                "properties": {
                    "seconds": {"type": "number", "minimum": 0, "maximum": 3600},
                    "label": {"type": "string"}
                }
            }),
        )
        .with_task_support(TaskSupport::Optional),
        |_, args| {
            let parsed = args.parse::<Args>();
            async move {
                let Args { seconds, label } = parsed?;
                if !(0.0..=3600.0).contains(&seconds) {
                    return Err(ToolError::new("seconds must be between 0 and 3600"));
                }
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                Ok(CallToolResult::text(format!(
                    "computed `{}` in {seconds} s",
                    label.as_deref().unwrap_or("")
                )))
            }
        },
    )
}

fn failing_job() -> Change {
    tool(
        Tool::without_arguments(
            "failing_job",
            "A task that fails as a tool after ~1 s (completed, isError); tasks only",
        )
        .with_task_support(TaskSupport::Required),
        |_, _| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(ToolError::new("failing_job failed, as it always does"))
        },
    )
}

fn protocol_error_job() -> Change {
    tool(
        Tool::without_arguments(
            "protocol_error_job",
            "A task whose handler panics (failed, with a JSON-RPC error); tasks only",
        )
        .with_task_support(TaskSupport::Required),
        |_, _| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            panic!("protocol_error_job panics on purpose");
        },
    )
}

fn confirm_delete() -> Change {
    #[derive(Deserialize)]
    struct Args {
        #[serde(default)]
        filename: Option<String>,
    }
    tool(
        Tool::new(
            "confirm_delete",
            "Asks for a confirmation (elicitation, key `confirm`) before pretending to delete \
             `filename`",
            json!({"type": "object", "properties": {"filename": {"type": "string"}}}),
        )
        .with_task_support(TaskSupport::Optional),
        |ctx, args| {
            let parsed = args.parse::<Args>();
            async move {
                let file = parsed?.filename.unwrap_or_else(|| "the file".into());
                let answer = ctx
                    .ask(
                        "confirm",
                        "elicitation/create",
                        confirmation(&format!("Delete {file}?")),
                    )
                    .await
                    .map_err(failed)?;
                let yes = answer["action"] == "accept" && answer["content"]["confirm"] == true;
                Ok(CallToolResult::text(if yes {
                    format!("deleted {file}")
                } else {
                    format!("kept {file}")
                }))
            }
        },
    )
}

fn multi_input() -> Change {
    tool(
        Tool::without_arguments(
            "multi_input",
            "Asks two things at once (elicitation, keys `first` and `second`), then answers",
        )
        .with_task_support(TaskSupport::Optional),
        |ctx, _| async move {
            // Both asked before either is waited on: one round carries the two.
            let first = ctx
                .ask("first", "elicitation/create", confirmation("First?"))
                .await;
            let second = ctx
                .ask("second", "elicitation/create", confirmation("Second?"))
                .await;
            let (first, second) = (first.map_err(failed)?, second.map_err(failed)?);
            Ok(CallToolResult::text(format!(
                "first: {}, second: {}",
                first["content"]["name"].as_str().unwrap_or("?"),
                second["content"]["name"].as_str().unwrap_or("?")
            )))
        },
    )
}

fn tool_with_task() -> Change {
    let entry = ToolEntry::new(
        Tool::without_arguments(
            "test_tool_with_task",
            "Asks the user's name (elicitation, key `user_name`) in input_required rounds, then \
             becomes a task that greets them; tasks only",
        )
        .with_task_support(TaskSupport::Required),
        |ctx: crate::session::RequestContext, _| async move {
            let answer = ctx
                .ask(
                    "user_name",
                    "elicitation/create",
                    json!({
                        "message": "What is your name?",
                        "requestedSchema": {
                            "type": "object",
                            "properties": { "name": { "type": "string" } },
                            "required": ["name"]
                        }
                    }),
                )
                .await
                .map_err(failed)?;
            let name = answer["content"]["name"]
                .as_str()
                .unwrap_or("stranger")
                .to_owned();
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(CallToolResult::text(format!("Hello, {name}!")))
        },
    );
    Change::Tool(entry.input_before_task())
}

/// The tasks scenarios' tools.
pub(super) fn changes() -> Vec<Change> {
    vec![
        greet(),
        slow_compute(),
        failing_job(),
        protocol_error_job(),
        confirm_delete(),
        multi_input(),
        tool_with_task(),
    ]
}
