//! Owns a task's record ([`TaskRecord`]): what the state store keeps of one task (its owner, the
//! call it runs, the answers it was given, its status, its result or error) and the two shapes
//! it takes on the wire: the `CreateTaskResult` of the `tools/call` that made it and the
//! `DetailedTask` of `tasks/get` (SEP-2663), both flat (`Result & Task`), with ISO 8601 times.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A task's status (SEP-2663).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskStatus {
    /// The handler runs.
    Working,
    /// The handler waits for answers (`tasks/update`).
    InputRequired,
    /// The handler ended; its result (an `isError` one for a tool's own error) is kept.
    Completed,
    /// A protocol-level error (the handler panicked, the result was too large…); the JSON-RPC
    /// error is kept.
    Failed,
    /// `tasks/cancel` came first.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task has ended.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// As the wire spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::InputRequired => "input_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One task, as the store keeps it (JSON under its id in the `tasks` table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    /// 128 random bits, hex.
    pub(crate) id: String,
    /// The principal that created it (`session:<id>`, or `stateless` for requests that carry
    /// no session); every other request for it is answered as for an unknown task.
    pub(crate) owner: String,
    /// The tool it runs.
    pub(crate) tool: String,
    /// The call's arguments.
    pub(crate) arguments: Option<Value>,
    /// The client's capabilities when it created the task (what the handler may ask).
    pub(crate) capabilities: Value,
    /// Answers given so far (from the creating call and `tasks/update`), by input key.
    pub(crate) answers: Map<String, Value>,
    pub(crate) status: TaskStatus,
    pub(crate) status_message: Option<String>,
    /// Unix milliseconds.
    pub(crate) created_ms: u64,
    /// Unix milliseconds.
    pub(crate) updated_ms: u64,
    pub(crate) ttl_ms: u64,
    pub(crate) poll_interval_ms: u64,
    /// The tool's result, once `completed`.
    pub(crate) result: Option<Value>,
    /// The JSON-RPC error, once `failed`.
    pub(crate) error: Option<Value>,
    /// What the handler waits for, by key, while `input_required`.
    pub(crate) input_requests: Map<String, Value>,
}

/// The wire shape of a task: `CreateTaskResult` (`resultType: task`) or `DetailedTask`
/// (`resultType: complete`). `resultType` comes first, so the stateless path's tagging leaves it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    result_type: &'static str,
    task_id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<&'a str>,
    created_at: String,
    last_updated_at: String,
    ttl_ms: u64,
    poll_interval_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_requests: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Value>,
}

impl TaskRecord {
    /// Whether its TTL has passed at `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.created_ms.saturating_add(self.ttl_ms)
    }

    fn wire(&self, result_type: &'static str, detailed: bool) -> Wire<'_> {
        let waiting = self.status == TaskStatus::InputRequired && !self.input_requests.is_empty();
        Wire {
            result_type,
            task_id: &self.id,
            status: self.status.as_str(),
            status_message: self.status_message.as_deref(),
            created_at: iso8601(self.created_ms),
            last_updated_at: iso8601(self.updated_ms),
            ttl_ms: self.ttl_ms,
            poll_interval_ms: self.poll_interval_ms,
            input_requests: (detailed && waiting).then_some(&self.input_requests),
            result: detailed.then_some(self.result.as_ref()).flatten(),
            error: detailed.then_some(self.error.as_ref()).flatten(),
        }
    }

    /// The flat `CreateTaskResult` of the call that created it.
    pub(crate) fn create_result(&self) -> impl Serialize + '_ {
        self.wire("task", false)
    }

    /// The `DetailedTask` of `tasks/get`: the result inlined once completed, the error once
    /// failed, the pending input requests while input_required.
    pub(crate) fn detailed(&self) -> impl Serialize + '_ {
        self.wire("complete", true)
    }
}

/// Unix milliseconds as ISO 8601 in UTC (`2026-07-28T12:34:56.789Z`).
pub(crate) fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_785_242_096_789), "2026-07-28T12:34:56.789Z");
    }

    fn record(status: TaskStatus) -> TaskRecord {
        TaskRecord {
            id: "t1".into(),
            owner: "stateless".into(),
            tool: "slow_compute".into(),
            arguments: None,
            capabilities: serde_json::json!({}),
            answers: Map::new(),
            status,
            status_message: None,
            created_ms: 1000,
            updated_ms: 2000,
            ttl_ms: 60_000,
            poll_interval_ms: 1000,
            result: Some(serde_json::json!({"content": []})),
            error: None,
            input_requests: Map::new(),
        }
    }

    #[test]
    fn create_result_is_flat_and_carries_no_outcome() {
        let text = serde_json::to_string(&record(TaskStatus::Completed).create_result()).unwrap();
        assert!(text.starts_with(r#"{"resultType":"task","taskId":"t1","status":"completed""#));
        assert!(
            !text.contains("result\":") && !text.contains("\"ttl\""),
            "{text}"
        );
        let text = serde_json::to_string(&record(TaskStatus::Completed).detailed()).unwrap();
        assert!(text.starts_with(r#"{"resultType":"complete""#));
        assert!(text.contains(r#""result":{"content":[]}"#), "{text}");
        assert!(record(TaskStatus::Working).expired(61_000));
        assert!(!record(TaskStatus::Working).expired(60_999));
    }
}
