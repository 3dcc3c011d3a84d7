//! # erlmcp-plugin-api — the plugin ABI
//!
//! A plugin is a `cdylib` exporting two symbols:
//! - [`ABI_VERSION_SYMBOL`]: a `u32` equal to [`ABI_VERSION`]; the host checks it before anything
//!   else and refuses a plugin built against another ABI.
//! - [`VTABLE_SYMBOL`]: `extern "C" fn() -> *const VTable`. [`VTable::struct_size`] lets fields be
//!   appended in later ABI versions without breaking older hosts or plugins.
//!
//! Only `#[repr(C)]` types and byte buffers cross the boundary (Rust types do not: each side has
//! its own allocator and std). Payloads are JSON in MCP's shapes. A buffer is freed by the side that
//! allocated it: `handle`'s answers are the plugin's, given back through [`VTable::free_buf`];
//! `call_tool` writes its answer into a buffer of the host's ([`HostCallbacks::grow_host_buf`]).
//! No panic may cross the boundary: every generated entry point catches it and returns
//! [`Status::Panicked`] with the message.
//!
//! A plugin author writes ordinary, safe Rust — implement [`Plugin`] and call [`export_plugin!`]:
//!
//! ```text
//! struct Upper;
//! impl erlmcp_plugin_api::Plugin for Upper {
//!     fn new(_config: &serde_json::Value) -> Result<Self, String> { Ok(Upper) }
//!     fn tools(&self) -> Vec<erlmcp_plugin_api::ToolDecl> { /* … */ vec![] }
//!     fn call_tool(&self, name: &str, args: serde_json::Value, host: &erlmcp_plugin_api::Host)
//!         -> Result<serde_json::Value, String> { /* … */ Ok(serde_json::json!({})) }
//! }
//! erlmcp_plugin_api::export_plugin!(Upper, name = "upper", version = "1.0.0");
//! ```

pub mod ffi;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The ABI version this crate implements.
pub const ABI_VERSION: u32 = 1;
/// Name of the exported `u32` ABI version.
pub const ABI_VERSION_SYMBOL: &[u8] = b"erlmcp_plugin_abi_version\0";
/// Name of the exported vtable function.
pub const VTABLE_SYMBOL: &[u8] = b"erlmcp_plugin_vtable\0";

/// What an entry point returns.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success; the output buffer holds the answer.
    Ok = 0,
    /// Failure; the output buffer holds the error message.
    Failed = 1,
    /// The plugin panicked (caught inside it); the output buffer holds the panic message.
    Panicked = 2,
    /// Success, and the answer is a `CallToolResult` as compact JSON by construction (written
    /// through [`Answer`]'s typed methods): the host writes it to the client without checking it
    /// again. Only `call_tool` returns it; an answer that cannot promise this is [`Status::Ok`],
    /// and the host checks its shape.
    WellFormed = 3,
    /// As [`Status::WellFormed`], for a result with `isError: true`.
    WellFormedError = 4,
}

impl Status {
    /// From the raw value; unknown values are failures.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Ok,
            2 => Self::Panicked,
            3 => Self::WellFormed,
            4 => Self::WellFormedError,
            _ => Self::Failed,
        }
    }
}

/// A byte buffer owned by the plugin that allocated it.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    /// Start (null when empty).
    pub ptr: *mut u8,
    /// Bytes used.
    pub len: usize,
    /// Bytes allocated.
    pub cap: usize,
}

impl Buf {
    /// An empty buffer.
    pub const EMPTY: Buf = Buf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// A borrowed string living as long as the plugin is loaded.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StaticStr {
    /// Start.
    pub ptr: *const u8,
    /// Length in bytes (UTF-8).
    pub len: usize,
}

/// What the host offers the plugin (given to `init`).
#[repr(C)]
#[derive(Debug)]
pub struct HostCallbacks {
    /// Size of this struct as the host built it (fields are only ever appended).
    pub struct_size: usize,
    /// Opaque host context passed back to every callback.
    pub ctx: *const std::ffi::c_void,
    /// Logs a UTF-8 message at a level (0 debug … 4 error) through the host's `tracing`.
    pub log: extern "C" fn(ctx: *const std::ffi::c_void, level: u32, ptr: *const u8, len: usize),
    /// Reports progress of the call being handled (only while inside `handle`, on its thread);
    /// the host sends `notifications/progress` if the client asked for progress.
    pub progress: extern "C" fn(ctx: *const std::ffi::c_void, progress: f64, total: f64),
    /// Sends a request to the client of the call being handled (only while inside `handle`, on
    /// its thread) and waits for its answer: `method` is `sampling/createMessage`,
    /// `elicitation/create` or `roots/list`, `params` its JSON params. Returns 0 with the result's
    /// JSON in `out`, or 1 with an error message in `out`; `out` is allocated by the host and
    /// given back with `free_host_buf`.
    pub request_client: extern "C" fn(
        ctx: *const std::ffi::c_void,
        method: *const u8,
        method_len: usize,
        params: *const u8,
        params_len: usize,
        out: *mut Buf,
    ) -> i32,
    /// Gives back a buffer the host allocated (`request_client`'s `out`).
    pub free_host_buf: extern "C" fn(buf: Buf),
    /// Grows a buffer the host owns — `call_tool`'s answer is written into one — so that it
    /// holds at least `needed` bytes, keeping its first `len`; returns it (`buf` is moved: only the
    /// returned value is used afterwards). A null `ptr` is an empty buffer: this allocates one.
    pub grow_host_buf: extern "C" fn(buf: Buf, needed: usize) -> Buf,
    /// Who the call being handled comes from (only while inside `handle` or `call_tool`, on its
    /// thread): returns 0 with the [`Principal`]'s JSON in `out` (allocated by the host, given
    /// back with `free_host_buf`), or 1 with `out` left empty when the call carries none (TCP,
    /// stdio, HTTP without `[auth]`, or outside a call). Appended after `grow_host_buf`: a plugin
    /// reads it only when the host's `struct_size` covers it.
    pub principal: extern "C" fn(ctx: *const std::ffi::c_void, out: *mut Buf) -> i32,
}

/// Where [`HostCallbacks`] ended before `principal` was appended: a host's table of this size
/// has no `principal` (a plugin built now, loaded by such a host, sees no principal).
pub const HOST_CALLBACKS_BEFORE_PRINCIPAL: usize = std::mem::offset_of!(HostCallbacks, principal);

/// Who a tool call comes from, as the host's authorization said (`[auth]`: an OAuth access
/// token, or a static API key). Read with [`Host::principal`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The token's subject (`sub`; an API key's configured subject).
    pub subject: String,
    /// The OAuth client the token was issued to, when it says.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How it came: `jwt`, `introspection` or `api_key`.
    #[serde(default)]
    pub via: String,
    /// When the token expires (unix seconds); `None` for a static key.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl Principal {
    /// Whether it holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The plugin's table of entry points.
#[repr(C)]
#[derive(Debug)]
pub struct VTable {
    /// Size of this struct as the plugin built it (fields are only ever appended).
    pub struct_size: usize,
    /// The plugin's name.
    pub name: extern "C" fn() -> StaticStr,
    /// The plugin's version.
    pub version: extern "C" fn() -> StaticStr,
    /// Initializes the plugin with a JSON config; on failure `out` holds the message.
    pub init: extern "C" fn(
        config: *const u8,
        config_len: usize,
        host: *const HostCallbacks,
        out: *mut Buf,
    ) -> i32,
    /// Handles one JSON request ([`Request`]); the answer (or error) goes to `out`.
    pub handle: extern "C" fn(request: *const u8, request_len: usize, out: *mut Buf) -> i32,
    /// Frees a buffer this plugin allocated.
    pub free_buf: extern "C" fn(buf: Buf),
    /// Releases the plugin's state before it is unloaded. Called once, after every other call
    /// into the plugin has returned (the host unloads a version only when nothing uses it).
    pub shutdown: extern "C" fn(),
    /// Calls a tool (appended after the first release: a host reads it only when `struct_size`
    /// covers it, else it sends [`Request::CallTool`] through `handle`). `name` is UTF-8;
    /// `arguments` the raw JSON object the client sent (`{}` when it sent none), both valid UTF-8.
    /// The answer is an MCP `CallToolResult` as JSON ([`Status::Ok`], or [`Status::WellFormed`] /
    /// [`Status::WellFormedError`] when it is one by construction) or a failure message, written
    /// into a buffer of the host's: `out` arrives empty, the plugin allocates and grows it only
    /// through [`HostCallbacks::grow_host_buf`] (giving back any it abandons through
    /// `free_host_buf`), and the host owns what `out` holds on return — `free_buf` is not called
    /// on it. No request to encode or decode, no copy: the fast path. Only called after `init`
    /// succeeded, with a callback table that has `grow_host_buf`.
    pub call_tool: extern "C" fn(
        name: *const u8,
        name_len: usize,
        arguments: *const u8,
        arguments_len: usize,
        out: *mut Buf,
    ) -> i32,
}

/// The size of the vtable as first released (fields up to `shutdown`): the least a host accepts.
/// Fields after it are optional to the host, which checks `struct_size` before reading one.
pub const VTABLE_BASE_SIZE: usize = std::mem::offset_of!(VTable, call_tool);

/// A request from the host, as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// What the plugin serves: answers [`Description`].
    Describe,
    /// Run the plugin's own known-answer check: answers `{}` or fails.
    SelfTest,
    /// Call a tool: answers an MCP `CallToolResult`.
    CallTool {
        /// The tool.
        name: String,
        /// Its arguments.
        #[serde(default)]
        arguments: Value,
    },
}

/// A tool a plugin declares. Fields are appended over time: build one with
/// `..ToolDecl::default()` after the fields you set, so a newer API still compiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDecl {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// The tool sends requests to the client ([`Host::request_client`]): the host then runs its
    /// calls on a thread of their own, where waiting for the client blocks nothing else. A tool
    /// that asks without declaring it gets an error from `request_client`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asks_client: bool,
    /// The tool blocks or burns CPU: the host runs its calls on its tool pool
    /// (`erlmcp_tool_pool`, bounded, FIFO waiting) instead of the connection's task. Absent in
    /// plugins built before it: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocking: bool,
    /// The tool only reads (MCP's `readOnlyHint`). Absent in plugins built before it: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Calling it again with the same arguments has no further effect (MCP's
    /// `idempotentHint`). Absent in plugins built before it: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// Milliseconds the host may serve a successful result again from its cache for the same
    /// arguments and plugin version (0: never). Only for tools declared `read_only` and
    /// `idempotent`: the host refuses to load a plugin asking it of any other tool. Absent in
    /// plugins built before it: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_ttl_ms: u64,
    /// With `cache_ttl_ms`: each client session gets its own cached answers, never another's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_per_session: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The answer to [`Request::Describe`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    /// The tools.
    pub tools: Vec<ToolDecl>,
}

/// The host's services as the plugin sees them.
#[derive(Debug)]
pub struct Host {
    callbacks: *const HostCallbacks,
}

// SAFETY: the host guarantees its callback table and context stay valid and thread-safe for as
// long as the plugin is loaded (see the host's loader).
unsafe impl Send for Host {}
// SAFETY: as above; the callbacks only read their context.
unsafe impl Sync for Host {}

impl Host {
    /// Logs through the host (`level`: 0 debug, 1 info, 2 notice, 3 warning, 4 error).
    pub fn log(&self, level: u32, message: &str) {
        ffi::host_log(self.callbacks, level, message);
    }

    /// Reports progress of the tool call being handled (call it from `call_tool`'s own thread);
    /// sent to the client only if its request asked for progress. A host older than this field
    /// ignores it.
    pub fn progress(&self, progress: f64, total: f64) {
        ffi::host_progress(self.callbacks, progress, total);
    }

    /// Asks the client of the tool call being handled (call it from `call_tool`'s own thread)
    /// and waits for the answer: `sampling/createMessage`, `elicitation/create` or `roots/list`
    /// with its params. Fails with the host's reason when the client lacks the capability, does
    /// not answer in time, refuses — or when the host is older than this callback.
    pub fn request_client(&self, method: &str, params: &Value) -> Result<Value, String> {
        let answer = ffi::host_request_client(self.callbacks, method, params)?;
        serde_json::from_slice(&answer).map_err(|e| format!("unreadable answer from the host: {e}"))
    }

    /// `sampling/createMessage`: asks the client's model.
    pub fn create_message(&self, params: &Value) -> Result<Value, String> {
        self.request_client("sampling/createMessage", params)
    }

    /// `elicitation/create`: asks the client's user.
    pub fn elicit(&self, params: &Value) -> Result<Value, String> {
        self.request_client("elicitation/create", params)
    }

    /// Who the call being handled comes from: `None` when it carries no principal (TCP, stdio,
    /// HTTP without `[auth]`), outside a call, or on a host older than this field.
    pub fn principal(&self) -> Option<Principal> {
        let json = ffi::host_principal(self.callbacks)?;
        serde_json::from_slice(&json).ok()
    }
}

/// What a plugin implements: ordinary, safe Rust.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Builds the plugin from its JSON config (called by `init`).
    fn new(config: &Value) -> Result<Self, String>;
    /// The tools it serves.
    fn tools(&self) -> Vec<ToolDecl>;
    /// Calls a tool; returns an MCP `CallToolResult` as JSON, or a failure message (which the host
    /// turns into a result with `isError: true`).
    fn call_tool(&self, name: &str, arguments: Value, host: &Host) -> Result<Value, String>;
    /// A known-answer check run once after `init`, before the plugin serves.
    fn self_test(&self, _host: &Host) -> Result<(), String> {
        Ok(())
    }
    /// Calls a tool with its arguments as the client sent them (raw JSON text, `{}` when none)
    /// and writes the result to `answer`; a failure message otherwise (the host turns it into a
    /// result with `isError: true`). This is what the host calls.
    ///
    /// The default parses the arguments into a [`Value`], calls [`Plugin::call_tool`] and
    /// serializes its answer, which the host then checks: convenient, and some hundreds of
    /// nanoseconds of building, writing and reading JSON trees per call. A tool on a hot path
    /// overrides this with [`parse_arguments`] (typed, borrowing) and [`Answer::text`] (no tree,
    /// nothing for the host to check); see docs/plugins.md.
    fn call_tool_json(
        &self,
        name: &str,
        arguments: &str,
        host: &Host,
        answer: &mut Answer,
    ) -> Result<(), String> {
        let arguments: Value = parse_arguments(arguments)?;
        answer.json(&self.call_tool(name, arguments, host)?)
    }
}

/// The answer to a tool call, as [`Plugin::call_tool_json`] writes it: an MCP `CallToolResult`
/// as JSON. Each method replaces what was written before. [`Answer::text`] and
/// [`Answer::error_text`] write a well-formed result by construction, which the host passes to
/// the client as it is; [`Answer::json`] and [`Answer::raw`] write anything, which the host
/// checks (a malformed result becomes an error result for the client). Called through
/// `call_tool`, it writes straight into the host's memory.
#[derive(Debug, Default)]
pub struct Answer {
    json: ffi::AnswerBuf,
    /// Written by `text` / `error_text` (then: whether it is an error result).
    well_formed: Option<bool>,
}

impl Answer {
    /// An empty answer (in memory of its own).
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn in_buf(json: ffi::AnswerBuf) -> Self {
        Self {
            json,
            well_formed: None,
        }
    }

    fn text_block(&mut self, text: &str, tail: &[u8], is_error: bool) {
        use std::io::Write;
        self.json.clear();
        // Writing fails only when memory does; serde_json escapes the text onto one line. An
        // answer that could not be written whole is not well-formed: the host checks it, and
        // refuses it.
        let written = self
            .json
            .write_all(br#"{"content":[{"type":"text","text":"#)
            .is_ok()
            && serde_json::to_writer(&mut self.json, text).is_ok()
            && self.json.write_all(tail).is_ok();
        self.well_formed = written.then_some(is_error);
    }

    /// A result of one text block (what [`text_result`] builds, with no JSON tree in between).
    pub fn text(&mut self, text: &str) {
        self.text_block(text, b"}]}", false);
    }

    /// A failed result (`isError: true`) of one text block.
    pub fn error_text(&mut self, text: &str) {
        self.text_block(text, br#"}],"isError":true}"#, true);
    }

    /// Any result, serialized (the host checks its shape).
    pub fn json<T: Serialize + ?Sized>(&mut self, result: &T) -> Result<(), String> {
        self.json.clear();
        self.well_formed = None;
        serde_json::to_writer(&mut self.json, result)
            .map_err(|e| format!("unencodable result: {e}"))
    }

    /// A result already encoded as JSON (the host checks it).
    pub fn raw(&mut self, json: &[u8]) -> Result<(), String> {
        use std::io::Write;
        self.json.clear();
        self.well_formed = None;
        self.json.write_all(json).map_err(|e| e.to_string())
    }

    /// What is written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.json.as_bytes()
    }

    /// Whether it was written only through the methods that make a well-formed result.
    pub fn is_well_formed(&self) -> bool {
        self.well_formed.is_some()
    }

    /// The JSON, and the status that says how far it can be trusted.
    pub(crate) fn into_parts(self) -> (ffi::AnswerBuf, Status) {
        let status = match self.well_formed {
            None => Status::Ok,
            Some(false) => Status::WellFormed,
            Some(true) => Status::WellFormedError,
        };
        (self.json, status)
    }
}

/// A `CallToolResult` with one text block.
pub fn text_result(text: impl Into<String>) -> Value {
    serde_json::json!({ "content": [{ "type": "text", "text": text.into() }] })
}

/// Parses a tool's raw arguments into `T` (borrowing strings from them where `T` does); the error
/// names what is wrong.
pub fn parse_arguments<'a, T: Deserialize<'a>>(arguments: &'a str) -> Result<T, String> {
    serde_json::from_str(arguments).map_err(|e| format!("invalid arguments: {e}"))
}

/// Exports a [`Plugin`] type with the ABI symbols. Use once per `cdylib`.
///
/// `vtable_size = N` makes the vtable claim `N` bytes instead of its full size: a plugin that
/// looks built against an earlier release of this ABI (fields past `N` unused by the host). It
/// exists for the host's compatibility tests; a plugin has no reason to set it.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, name = $name:expr, version = $version:expr) => {
        $crate::export_plugin!(
            $plugin,
            name = $name,
            version = $version,
            vtable_size = ::std::mem::size_of::<$crate::VTable>()
        );
    };
    ($plugin:ty, name = $name:expr, version = $version:expr, vtable_size = $size:expr) => {
        /// The ABI version this plugin was built against.
        #[unsafe(no_mangle)]
        pub static erlmcp_plugin_abi_version: u32 = $crate::ABI_VERSION;

        static __ERLMCP_STATE: $crate::ffi::PluginState<$plugin> = $crate::ffi::PluginState::new();

        extern "C" fn __erlmcp_name() -> $crate::StaticStr {
            $crate::ffi::static_str($name)
        }
        extern "C" fn __erlmcp_version() -> $crate::StaticStr {
            $crate::ffi::static_str($version)
        }
        extern "C" fn __erlmcp_init(
            config: *const u8,
            config_len: usize,
            host: *const $crate::HostCallbacks,
            out: *mut $crate::Buf,
        ) -> i32 {
            $crate::ffi::init(&__ERLMCP_STATE, config, config_len, host, out)
        }
        extern "C" fn __erlmcp_handle(
            request: *const u8,
            len: usize,
            out: *mut $crate::Buf,
        ) -> i32 {
            $crate::ffi::handle(&__ERLMCP_STATE, request, len, out)
        }
        extern "C" fn __erlmcp_free(buf: $crate::Buf) {
            $crate::ffi::free_buf(buf)
        }
        extern "C" fn __erlmcp_shutdown() {
            $crate::ffi::shutdown(&__ERLMCP_STATE)
        }
        extern "C" fn __erlmcp_call_tool(
            name: *const u8,
            name_len: usize,
            arguments: *const u8,
            arguments_len: usize,
            out: *mut $crate::Buf,
        ) -> i32 {
            $crate::ffi::call_tool(
                &__ERLMCP_STATE,
                name,
                name_len,
                arguments,
                arguments_len,
                out,
            )
        }
        static __ERLMCP_VTABLE: $crate::VTable = $crate::VTable {
            struct_size: $size,
            name: __erlmcp_name,
            version: __erlmcp_version,
            init: __erlmcp_init,
            handle: __erlmcp_handle,
            free_buf: __erlmcp_free,
            shutdown: __erlmcp_shutdown,
            call_tool: __erlmcp_call_tool,
        };

        /// The plugin's vtable.
        #[unsafe(no_mangle)]
        pub extern "C" fn erlmcp_plugin_vtable() -> *const $crate::VTable {
            &__ERLMCP_VTABLE
        }
    };
}
