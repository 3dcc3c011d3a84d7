//! Owns the demo toolset's two state-store tools, `kv_put` and `kv_get`: a value written under a
//! key of the store table `demo_kv` (logged before the call answers, as every store change is)
//! and read back. The chaos profile of `erlmcp bench run` writes through them during its faults
//! and reads every acknowledged write back after each fault (`lost_writes`).

use super::{ToolResult, string_arg_schema, tool};
use crate::protocol::messages::{CallToolResult, Tool};
use crate::registry::{Change, ToolError};
use serde::Deserialize;
use serde_json::json;

/// The store table the tools use.
pub const TABLE: &str = "demo_kv";
/// The most entries the table holds (a put beyond it is refused).
pub const MAX_ENTRIES: usize = 10_000;
/// The longest key, bytes.
pub const MAX_KEY: usize = 256;
/// The longest value, bytes.
pub const MAX_VALUE: usize = 1024;

#[derive(Deserialize)]
struct PutArgs {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct GetArgs {
    key: String,
}

fn put(args: PutArgs) -> ToolResult {
    if args.key.is_empty() || args.key.len() > MAX_KEY || args.value.len() > MAX_VALUE {
        return Err(ToolError::new(format!(
            "key must be 1 to {MAX_KEY} bytes, value at most {MAX_VALUE}"
        )));
    }
    let store =
        crate::store::current().ok_or_else(|| ToolError::new("the store is not running"))?;
    store.table(TABLE).bound(MAX_ENTRIES);
    store
        .put(TABLE, &args.key, args.value.into_bytes())
        .map_err(|e| ToolError::new(e.to_string()))?;
    Ok(CallToolResult::text("stored"))
}

fn get(args: GetArgs) -> ToolResult {
    let store =
        crate::store::current().ok_or_else(|| ToolError::new("the store is not running"))?;
    Ok(match store.table(TABLE).get(&args.key) {
        Some(value) => CallToolResult::text(String::from_utf8_lossy(&value).into_owned()),
        None => CallToolResult::error(format!("no value under `{}`", args.key)),
    })
}

/// `kv_put {key, value}` and `kv_get {key}`.
pub(super) fn changes() -> Vec<Change> {
    vec![
        tool(
            Tool::new(
                "kv_put",
                "Stores `value` under `key` in the node's state store (table demo_kv; durable as \
                 the store is: logged before the answer)",
                json!({
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "maxLength": MAX_KEY},
                        "value": {"type": "string", "maxLength": MAX_VALUE}
                    },
                    "required": ["key", "value"]
                }),
            ),
            |_, args| {
                let parsed = args.parse::<PutArgs>();
                // The change log is written (and fsynced, by default) before the answer: off
                // the runtime's threads.
                Box::pin(async move {
                    let args = parsed?;
                    tokio::task::spawn_blocking(move || put(args))
                        .await
                        .map_err(|e| ToolError::new(format!("kv_put did not finish: {e}")))?
                })
            },
        ),
        tool(
            Tool::new(
                "kv_get",
                "The value `kv_put` stored under `key` (an error result when there is none)",
                string_arg_schema("key", "The key"),
            ),
            |_, args| std::future::ready(args.parse::<GetArgs>().and_then(get)),
        ),
    ]
}
