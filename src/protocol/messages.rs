//! Owns the typed MCP shapes: the params erlmcp reads (borrowed where it pays) and the results
//! and content it writes. Field names follow the MCP schema (camelCase on the wire).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// `_meta` of a request: only what erlmcp acts on.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RequestMeta<'a> {
    /// Where progress notifications for this request go.
    #[serde(default, borrow, rename = "progressToken")]
    pub(crate) progress_token: Option<&'a RawValue>,
}

/// `initialize` params.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InitializeParams<'a> {
    /// The revision the client asks for.
    #[serde(borrow)]
    pub(crate) protocol_version: Cow<'a, str>,
    /// What the client can do.
    #[serde(default)]
    pub capabilities: ClientCapabilities,
    /// Who the client is.
    #[serde(default)]
    pub(crate) client_info: Option<Implementation>,
}

/// The client capabilities erlmcp consults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ClientCapabilities {
    /// The client answers `sampling/createMessage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Value>,
    /// The client answers `elicitation/create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elicitation: Option<Value>,
    /// The client answers `roots/list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) roots: Option<Value>,
    /// The extensions the client takes part in, by id (`io.modelcontextprotocol/tasks`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) extensions: Option<Value>,
}

/// The id of the tasks extension (SEP-2663).
pub(crate) const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

impl ClientCapabilities {
    /// Whether the client declares the tasks extension (`extensions["io.modelcontextprotocol/tasks"]`).
    pub(crate) fn declares_tasks(&self) -> bool {
        self.extensions
            .as_ref()
            .and_then(|e| e.get(TASKS_EXTENSION))
            .is_some_and(|v| !v.is_null())
    }
}

/// A client or server name and version.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Implementation {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version: String,
}

/// `tools/call` params.
#[derive(Debug, Deserialize)]
pub(crate) struct CallToolParams<'a> {
    /// The tool.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its arguments, parsed by the tool itself.
    #[serde(default, borrow)]
    pub arguments: Option<&'a RawValue>,
    /// Progress token and the like.
    #[serde(default, borrow, rename = "_meta")]
    pub meta: Option<RequestMeta<'a>>,
}

/// Params of every paginated list method.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams<'a> {
    /// Opaque cursor from the previous page.
    #[serde(
        default,
        borrow,
        deserialize_with = "crate::protocol::jsonrpc::borrowed_str"
    )]
    pub cursor: Option<Cow<'a, str>>,
}

/// Params naming one resource (`resources/read`, `subscribe`, `unsubscribe`).
#[derive(Debug, Deserialize)]
pub(crate) struct UriParams<'a> {
    /// The resource URI.
    #[serde(borrow)]
    pub uri: Cow<'a, str>,
    /// Progress token and the like.
    #[serde(default, borrow, rename = "_meta")]
    pub meta: Option<RequestMeta<'a>>,
}

/// `prompts/get` params.
#[derive(Debug, Deserialize)]
pub(crate) struct GetPromptParams<'a> {
    /// The prompt.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its arguments (string values).
    #[serde(default)]
    pub arguments: HashMap<String, String>,
    /// Progress token and the like.
    #[serde(default, borrow, rename = "_meta")]
    pub meta: Option<RequestMeta<'a>>,
}

/// `logging/setLevel` params.
#[derive(Debug, Deserialize)]
pub(crate) struct SetLevelParams {
    /// The new minimum level.
    pub level: LogLevel,
}

/// `notifications/cancelled` params.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelledParams<'a> {
    /// The request to cancel.
    #[serde(borrow)]
    pub request_id: &'a RawValue,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `completion/complete` params.
#[derive(Debug, Deserialize)]
pub struct CompleteParams {
    /// What is being completed.
    #[serde(rename = "ref")]
    pub(crate) reference: CompletionRef,
    /// The argument and its partial value.
    pub argument: CompletionArgument,
    /// Values of other arguments already chosen.
    #[serde(default)]
    pub context: Option<CompletionContext>,
}

/// The target of a completion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(tag = "type")]
pub(crate) enum CompletionRef {
    /// A prompt's argument.
    #[serde(rename = "ref/prompt")]
    Prompt {
        /// The prompt.
        name: String,
    },
    /// A resource template's variable.
    #[serde(rename = "ref/resource")]
    Resource {
        /// The template.
        uri: String,
    },
}

/// The argument being completed.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionArgument {
    /// Its name.
    pub name: String,
    /// What the user typed so far.
    pub value: String,
}

/// Other arguments' values.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompletionContext {
    /// Argument values by name.
    #[serde(default)]
    pub arguments: HashMap<String, String>,
}

/// `completion/complete` result body.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// Suggestions, best first (at most 100).
    pub values: Vec<String>,
    /// How many exist in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Whether more exist than were sent.
    pub(crate) has_more: bool,
}

/// MCP log levels (RFC 5424), least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Notice.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Alert.
    Alert,
    /// Emergency.
    Emergency,
}

impl LogLevel {
    /// As a small integer, for atomics.
    pub(crate) fn as_u8(self) -> u8 {
        self as u8
    }

    /// From [`LogLevel::as_u8`].
    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Debug,
            1 => Self::Info,
            2 => Self::Notice,
            3 => Self::Warning,
            4 => Self::Error,
            5 => Self::Critical,
            6 => Self::Alert,
            _ => Self::Emergency,
        }
    }
}

/// Whether a tool's calls become tasks (the tasks extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    /// A task when the client declares the extension, else an ordinary call.
    Optional,
    /// Only as a task: a client that does not declare the extension gets -32021.
    Required,
}

/// A tool's description in `tools/list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Unique name.
    pub name: String,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (kept verbatim: `$schema`, `$defs`… survive).
    pub input_schema: Value,
    /// JSON Schema of its structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_schema: Option<Value>,
    /// Hints (readOnlyHint, destructiveHint…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<Value>,
    /// How it runs (`taskSupport`: whether a call may, or must, become a task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) execution: Option<Value>,
}

impl Tool {
    /// A tool taking an object of the given JSON Schema.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
    ) -> Self {
        Self {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            input_schema,
            output_schema: None,
            annotations: None,
            execution: None,
        }
    }

    /// Declares its task support (the tasks extension, SEP-2663): a call from a client that
    /// declares the extension becomes a task; without it, an `Optional` tool runs at once and a
    /// `Required` one is refused with -32021.
    #[must_use]
    pub fn with_task_support(mut self, support: TaskSupport) -> Self {
        let word = match support {
            TaskSupport::Optional => "optional",
            TaskSupport::Required => "required",
        };
        self.execution = Some(serde_json::json!({ "taskSupport": word }));
        self
    }

    /// Its task support, if it declared one.
    pub fn task_support(&self) -> Option<TaskSupport> {
        match self.execution.as_ref()?.get("taskSupport")?.as_str()? {
            "optional" => Some(TaskSupport::Optional),
            "required" => Some(TaskSupport::Required),
            _ => None,
        }
    }

    /// With its annotations (`readOnlyHint`, `idempotentHint`, …) as MCP spells them.
    #[must_use]
    pub fn with_annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// A tool without arguments.
    pub fn without_arguments(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(
            name,
            description,
            serde_json::json!({"type": "object", "properties": {}}),
        )
    }
}

/// A resource in `resources/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Its URI.
    pub uri: String,
    /// Short name.
    pub name: String,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its MIME type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
}

impl Resource {
    /// A resource at `uri` named `name`, with nothing else said of it.
    pub fn new(uri: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: None,
        }
    }
}

/// A resource template in `resources/templates/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// RFC 6570 template.
    pub(crate) uri_template: String,
    /// Short name.
    pub name: String,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it yields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of what it yields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
}

impl ResourceTemplate {
    /// A template of URIs (RFC 6570, level 1) named `name`, with nothing else said of it.
    pub fn new(uri_template: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uri_template: uri_template.into(),
            name: name.into(),
            title: None,
            description: None,
            mime_type: None,
        }
    }
}

/// A prompt argument.
#[derive(Debug, Clone, Serialize)]
pub struct PromptArgument {
    /// Name.
    pub name: String,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it must be given.
    pub required: bool,
}

/// A prompt in `prompts/list`.
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    /// Unique name.
    pub name: String,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<PromptArgument>,
}

/// Content of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResourceContents {
    /// Text.
    Text {
        /// URI.
        uri: String,
        /// MIME type.
        #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// The text.
        text: String,
    },
    /// Binary, base64.
    Blob {
        /// URI.
        uri: String,
        /// MIME type.
        #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        /// Base64 data.
        blob: String,
    },
}

/// One content block of a tool result or prompt message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, base64.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Audio, base64.
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// An embedded resource.
    Resource {
        /// Its contents.
        resource: ResourceContents,
    },
}

impl Content {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// A `tools/call` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallToolResult {
    /// Content blocks.
    pub content: Vec<Content>,
    /// Structured output (checked against the tool's output schema by clients).
    pub(crate) structured_content: Option<Value>,
    /// The tool failed; the content says why.
    pub is_error: bool,
    /// The whole result as JSON text already checked by its producer (a plugin's answer):
    /// written as it is, in place of the fields above.
    pub(crate) encoded: Option<EncodedResult>,
}

/// A result's JSON text, written verbatim: well-formed and on one line, which whoever made it
/// made sure of (a plugin's answer: its typed writer, or `plugin_host::answer`'s check).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncodedResult(bytes::Bytes);

impl EncodedResult {
    /// Wraps JSON text its producer made sure of.
    pub(crate) fn checked(json: Vec<u8>) -> Self {
        Self(bytes::Bytes::from(json))
    }

    /// Wraps JSON text its producer made sure of, shared (a cached answer: not copied).
    pub(crate) fn shared(json: std::sync::Arc<[u8]>) -> Self {
        Self(bytes::Bytes::from_owner(json))
    }

    /// The JSON text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for CallToolResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if let Some(encoded) = &self.encoded {
            // Through serde only off the hot path (the dispatcher splices the text in itself).
            let raw: &RawValue = serde_json::from_slice(encoded.as_bytes())
                .map_err(|e| serde::ser::Error::custom(format!("an encoded result: {e}")))?;
            return raw.serialize(s);
        }
        let fields =
            1 + usize::from(self.structured_content.is_some()) + usize::from(self.is_error);
        let mut out = s.serialize_struct("CallToolResult", fields)?;
        out.serialize_field("content", &self.content)?;
        if let Some(structured) = &self.structured_content {
            out.serialize_field("structuredContent", structured)?;
        }
        if self.is_error {
            out.serialize_field("isError", &true)?;
        }
        out.end()
    }
}

impl CallToolResult {
    /// A result whose JSON text is `encoded` (a `CallToolResult` object, checked by the caller).
    pub(crate) fn encoded(encoded: EncodedResult, is_error: bool) -> Self {
        Self {
            is_error,
            encoded: Some(encoded),
            ..Self::default()
        }
    }

    /// A result of one text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![Content::text(text)],
            ..Self::default()
        }
    }

    /// A failed result of one text block.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            content: vec![Content::text(text)],
            is_error: true,
            ..Self::default()
        }
    }
}

/// A prompt message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptMessage {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// The content.
    pub content: Content,
}

impl PromptMessage {
    /// A user message.
    pub fn user(content: Content) -> Self {
        Self {
            role: "user",
            content,
        }
    }
}

/// A `prompts/get` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GetPromptResult {
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The messages.
    pub messages: Vec<PromptMessage>,
}

/// What a `subscriptions/listen` stream carries (2026-07-28): each kind is opt-in.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tools_list_changed: Option<bool>,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prompts_list_changed: Option<bool>,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resources_list_changed: Option<bool>,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource_subscriptions: Option<Vec<String>>,
}

/// `subscriptions/listen` params.
#[derive(Debug, Deserialize)]
pub(crate) struct ListenParams {
    /// What to deliver.
    pub notifications: ListenFilter,
}
