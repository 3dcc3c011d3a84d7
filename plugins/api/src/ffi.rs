//! Owns the plugin side of the boundary: turning C arguments into Rust values and back, catching
//! every panic, and handing out buffers the host later returns through `free_buf`. The
//! [`crate::export_plugin!`] macro calls these; plugin authors never do.
//!
//! This module (with the host's loader) is where erlmcp's `unsafe` lives; every block says why it
//! holds.

use crate::{Buf, Description, Host, HostCallbacks, Plugin, Request, StaticStr, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::RwLock;

/// The one instance of a plugin type, created by `init`, dropped by `shutdown`.
pub struct PluginState<P> {
    inner: RwLock<Option<(P, Host)>>,
}

impl<P> PluginState<P> {
    /// An empty state (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            inner: RwLock::new(None),
        }
    }
}

impl<P> Default for PluginState<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// A `'static` string as the ABI's [`StaticStr`].
pub fn static_str(text: &'static str) -> StaticStr {
    StaticStr {
        ptr: text.as_ptr(),
        len: text.len(),
    }
}

/// Reads `len` bytes at `ptr` (an empty slice for null or zero length).
fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the host passes a pointer to `len` initialized bytes that it keeps alive and does
    // not mutate for the duration of this call (the loader's calling convention).
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Hands `data` to the host through `out`; the host returns it through `free_buf`.
fn write_out(out: *mut Buf, data: Vec<u8>) {
    if out.is_null() {
        return;
    }
    let mut data = std::mem::ManuallyDrop::new(data);
    let buf = Buf {
        ptr: data.as_mut_ptr(),
        len: data.len(),
        cap: data.capacity(),
    };
    // SAFETY: `out` is non-null and points to a `Buf` the host owns for this call.
    unsafe { out.write(buf) };
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// Runs `work`, catching panics; writes its answer or error to `out`.
fn guarded(out: *mut Buf, work: impl FnOnce() -> Result<Vec<u8>, String>) -> i32 {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(answer)) => {
            write_out(out, answer);
            Status::Ok as i32
        }
        Ok(Err(message)) => {
            write_out(out, message.into_bytes());
            Status::Failed as i32
        }
        Err(panic) => {
            write_out(
                out,
                format!("plugin panicked: {}", panic_text(&*panic)).into_bytes(),
            );
            Status::Panicked as i32
        }
    }
}

/// `init`: builds the plugin from its config.
pub fn init<P: Plugin>(
    state: &PluginState<P>,
    config: *const u8,
    config_len: usize,
    host: *const HostCallbacks,
    out: *mut Buf,
) -> i32 {
    guarded(out, || {
        let raw = bytes(config, config_len);
        let config = if raw.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(raw).map_err(|e| format!("invalid plugin config: {e}"))?
        };
        let plugin = P::new(&config)?;
        let mut slot = state.inner.write().map_err(|_| "plugin state poisoned")?;
        *slot = Some((plugin, Host { callbacks: host }));
        Ok(Vec::new())
    })
}

/// `handle`: one JSON request.
pub fn handle<P: Plugin>(
    state: &PluginState<P>,
    request: *const u8,
    len: usize,
    out: *mut Buf,
) -> i32 {
    guarded(out, || {
        let request: Request = serde_json::from_slice(bytes(request, len))
            .map_err(|e| format!("invalid request: {e}"))?;
        let slot = state.inner.read().map_err(|_| "plugin state poisoned")?;
        let (plugin, host) = slot.as_ref().ok_or("the plugin is not initialized")?;
        let answer = match request {
            Request::Describe => serde_json::to_value(Description {
                tools: plugin.tools(),
            })
            .map_err(|e| e.to_string())?,
            Request::SelfTest => plugin.self_test(host).map(|()| serde_json::json!({}))?,
            Request::CallTool { name, arguments } => plugin.call_tool(&name, arguments, host)?,
        };
        serde_json::to_vec(&answer).map_err(|e| e.to_string())
    })
}

/// `free_buf`: gives back a buffer allocated by [`write_out`].
pub fn free_buf(buf: Buf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: `buf` was produced by `write_out` in this same plugin (same allocator) from a
    // `Vec<u8>` with exactly this pointer, length and capacity, and the host returns each buffer
    // once.
    drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
}

/// `shutdown`: drops the plugin's state.
pub fn shutdown<P: Plugin>(state: &PluginState<P>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(mut slot) = state.inner.write() {
            slot.take();
        }
    }));
}

/// Logs through the host's callback table.
pub(crate) fn host_log(callbacks: *const HostCallbacks, level: u32, message: &str) {
    if callbacks.is_null() {
        return;
    }
    // SAFETY: the host's table outlives the plugin's loaded lifetime (the loader keeps it boxed
    // next to the library), and `log` only reads the bytes for the duration of the call.
    let table = unsafe { &*callbacks };
    (table.log)(table.ctx, level, message.as_ptr(), message.len());
}

/// Reports progress through the host's callback table, if the host's table has the field.
pub(crate) fn host_progress(callbacks: *const HostCallbacks, progress: f64, total: f64) {
    if callbacks.is_null() {
        return;
    }
    // SAFETY: as in `host_log`: the table outlives the plugin's loaded lifetime.
    let table = unsafe { &*callbacks };
    let needed = std::mem::offset_of!(HostCallbacks, progress) + std::mem::size_of::<usize>();
    if table.struct_size >= needed {
        (table.progress)(table.ctx, progress, total);
    }
}

/// Sends a request to the client through the host; the answer's JSON bytes, or the host's error.
pub(crate) fn host_request_client(
    callbacks: *const HostCallbacks,
    method: &str,
    params: &serde_json::Value,
) -> Result<Vec<u8>, String> {
    if callbacks.is_null() {
        return Err("no host".to_owned());
    }
    // SAFETY: as in `host_log`: the table outlives the plugin's loaded lifetime.
    let table = unsafe { &*callbacks };
    let needed = std::mem::offset_of!(HostCallbacks, free_host_buf) + std::mem::size_of::<usize>();
    if table.struct_size < needed {
        return Err("this host is too old to send requests to the client".to_owned());
    }
    let params = serde_json::to_vec(params).map_err(|e| e.to_string())?;
    let mut out = Buf::EMPTY;
    let status = (table.request_client)(
        table.ctx,
        method.as_ptr(),
        method.len(),
        params.as_ptr(),
        params.len(),
        &mut out,
    );
    let bytes = if out.ptr.is_null() || out.len == 0 {
        Vec::new()
    } else {
        // SAFETY: the host filled `out` with `len` initialized bytes it owns until
        // `free_host_buf`, which is called right after this copy.
        unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
    };
    (table.free_host_buf)(out);
    if status == 0 {
        Ok(bytes)
    } else {
        Err(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolDecl, text_result};
    use serde_json::{Value, json};

    struct Shout;

    impl Plugin for Shout {
        fn new(config: &Value) -> Result<Self, String> {
            if config.get("fail").is_some() {
                return Err("told to fail".into());
            }
            Ok(Shout)
        }
        fn tools(&self) -> Vec<ToolDecl> {
            vec![ToolDecl {
                asks_client: false,
                name: "shout".into(),
                description: "upper-cases".into(),
                input_schema: json!({"type": "object"}),
            }]
        }
        fn call_tool(&self, _name: &str, args: Value, _host: &Host) -> Result<Value, String> {
            match args["text"].as_str() {
                Some("panic") => panic!("boom"),
                Some(text) => Ok(text_result(text.to_uppercase())),
                None => Err("text is required".into()),
            }
        }
    }

    fn call(state: &PluginState<Shout>, request: Value) -> (i32, String) {
        let bytes = serde_json::to_vec(&request).unwrap();
        let mut out = Buf::EMPTY;
        let status = handle(state, bytes.as_ptr(), bytes.len(), &mut out);
        let text = String::from_utf8_lossy(bytes_of(&out)).into_owned();
        free_buf(out);
        (status, text)
    }

    fn bytes_of(buf: &Buf) -> &[u8] {
        bytes(buf.ptr, buf.len)
    }

    #[test]
    fn entry_points_answer_fail_and_catch_panics_without_unwinding_out() {
        let state = PluginState::<Shout>::new();
        let mut out = Buf::EMPTY;
        assert_eq!(
            init(&state, std::ptr::null(), 0, std::ptr::null(), &mut out),
            0
        );
        free_buf(out);
        let (status, text) = call(
            &state,
            json!({"op": "call_tool", "name": "shout", "arguments": {"text": "hi"}}),
        );
        assert_eq!(status, Status::Ok as i32);
        assert!(text.contains("HI"));
        let (status, text) = call(
            &state,
            json!({"op": "call_tool", "name": "shout", "arguments": {}}),
        );
        assert_eq!(
            (status, text.as_str()),
            (Status::Failed as i32, "text is required")
        );
        let (status, text) = call(
            &state,
            json!({"op": "call_tool", "name": "shout", "arguments": {"text": "panic"}}),
        );
        assert_eq!(status, Status::Panicked as i32);
        assert!(text.contains("boom"));
        let (status, _) = call(&state, json!({"op": "describe"}));
        assert_eq!(status, Status::Ok as i32);
        shutdown(&state);
        assert_eq!(
            call(&state, json!({"op": "describe"})).0,
            Status::Failed as i32
        );
    }

    #[test]
    fn a_config_the_plugin_refuses_fails_init_with_its_message() {
        let state = PluginState::<Shout>::new();
        let config = br#"{"fail": true}"#;
        let mut out = Buf::EMPTY;
        let status = init(
            &state,
            config.as_ptr(),
            config.len(),
            std::ptr::null(),
            &mut out,
        );
        assert_eq!(status, Status::Failed as i32);
        assert_eq!(bytes_of(&out), b"told to fail");
        free_buf(out);
    }
}
