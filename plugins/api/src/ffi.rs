//! Owns the plugin side of the boundary: turning C arguments into Rust values and back, catching
//! every panic, and handing out buffers the host later returns through `free_buf`. The
//! [`crate::export_plugin!`] macro calls these; plugin authors never do.
//!
//! This module (with the host's loader) is where erlmcp's `unsafe` lives; every block says why it
//! holds.

use crate::{Answer, Buf, Description, Host, HostCallbacks, Plugin, Request, StaticStr, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The one instance of a plugin type, created by `init`, dropped by `shutdown`.
///
/// No lock: by the ABI's contract the host calls `init` before any other entry point and
/// `shutdown` after every other call has returned, so calls only ever read a state that stays put
/// for as long as they run. (A lock cost 20 ns per call here — a third of the plugin budget.)
pub struct PluginState<P> {
    inner: AtomicPtr<(P, Host)>,
}

impl<P> PluginState<P> {
    /// An empty state (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            inner: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Installs the state, dropping any earlier one.
    fn set(&self, state: (P, Host)) {
        let old = self
            .inner
            .swap(Box::into_raw(Box::new(state)), Ordering::AcqRel);
        Self::drop_raw(old);
    }

    /// The state while initialized.
    fn get(&self) -> Result<&(P, Host), String> {
        let state = self.inner.load(Ordering::Acquire);
        // SAFETY: non-null, it came from `Box::into_raw` in `set`, and it is freed only by
        // `take`/`set`, which the host calls (shutdown, init) only when no other call into the
        // plugin is running — so not during the call this reference lives in.
        unsafe { state.as_ref() }.ok_or_else(|| "the plugin is not initialized".to_owned())
    }

    /// Drops the state.
    fn take(&self) {
        Self::drop_raw(self.inner.swap(std::ptr::null_mut(), Ordering::AcqRel));
    }

    fn drop_raw(state: *mut (P, Host)) {
        if !state.is_null() {
            // SAFETY: it came from `Box::into_raw` in `set` and was just swapped out, so this is
            // its only owner; no call is using it (see `get`).
            drop(unsafe { Box::from_raw(state) });
        }
    }
}

impl<P> Drop for PluginState<P> {
    fn drop(&mut self) {
        self.take();
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
        state.set((plugin, Host { callbacks: host }));
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
        let (plugin, host) = state.get()?;
        let answer = match request {
            Request::Describe => serde_json::to_value(Description {
                tools: plugin.tools(),
            })
            .map_err(|e| e.to_string())?,
            Request::SelfTest => plugin.self_test(host).map(|()| serde_json::json!({}))?,
            Request::CallTool { name, arguments } => {
                let arguments = serde_json::to_string(&arguments).map_err(|e| e.to_string())?;
                let mut answer = Answer::new();
                plugin.call_tool_json(&name, &arguments, host, &mut answer)?;
                return Ok(answer.into_parts().0.into_vec());
            }
        };
        serde_json::to_vec(&answer).map_err(|e| e.to_string())
    })
}

/// `call_tool`: one tool call, its name and raw JSON arguments apart (no request to decode), the
/// answer written straight into a buffer of the host's (no copy on the way back).
pub fn call_tool<P: Plugin>(
    state: &PluginState<P>,
    name: *const u8,
    name_len: usize,
    arguments: *const u8,
    arguments_len: usize,
    out: *mut Buf,
) -> i32 {
    let Ok((plugin, host)) = state.get() else {
        return Status::Failed as i32;
    };
    let Some(buf) = AnswerBuf::of_host(host.callbacks) else {
        return Status::Failed as i32;
    };
    let mut answer = Answer::in_buf(buf);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the ABI has the host pass valid UTF-8 here (it passes Rust `&str`s).
        let (name, arguments) = unsafe {
            (
                std::str::from_utf8_unchecked(bytes(name, name_len)),
                std::str::from_utf8_unchecked(bytes(arguments, arguments_len)),
            )
        };
        let arguments = if arguments.is_empty() {
            "{}"
        } else {
            arguments
        };
        plugin.call_tool_json(name, arguments, host, &mut answer)
    }));
    let (message, status) = match outcome {
        Ok(Ok(())) => {
            let (buf, status) = answer.into_parts();
            write_host_out(out, buf);
            return status as i32;
        }
        Ok(Err(message)) => (message, Status::Failed),
        Err(panic) => (
            format!("plugin panicked: {}", panic_text(&*panic)),
            Status::Panicked,
        ),
    };
    // The message goes where the answer would have: into the host's buffer.
    let _ = answer.raw(message.as_bytes());
    write_host_out(out, answer.into_parts().0);
    status as i32
}

/// Hands a host buffer back through `out`.
fn write_host_out(out: *mut Buf, answer: AnswerBuf) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is non-null and points to a `Buf` the host owns for this call.
    unsafe { out.write(answer.into_host_buf()) };
}

/// Where an [`Answer`] is written: memory of the plugin's own, or a buffer of the host's grown
/// through its callbacks (`call_tool`: the host keeps it, no copy).
#[derive(Debug)]
pub struct AnswerBuf(Sink);

#[derive(Debug)]
enum Sink {
    Own(Vec<u8>),
    Host {
        buf: Buf,
        grow: extern "C" fn(Buf, usize) -> Buf,
        free: extern "C" fn(Buf),
    },
}

impl Default for AnswerBuf {
    fn default() -> Self {
        Self(Sink::Own(Vec::new()))
    }
}

impl AnswerBuf {
    /// What a host buffer starts with: a one-block text result fits.
    const FIRST_CAPACITY: usize = 128;

    /// An empty buffer of the host's, if its callback table can grow one.
    fn of_host(callbacks: *const HostCallbacks) -> Option<Self> {
        if callbacks.is_null() {
            return None;
        }
        // SAFETY: as in `host_log`: the table outlives the plugin's loaded lifetime.
        let table = unsafe { &*callbacks };
        let needed =
            std::mem::offset_of!(HostCallbacks, grow_host_buf) + std::mem::size_of::<usize>();
        (table.struct_size >= needed).then(|| {
            Self(Sink::Host {
                buf: Buf::EMPTY,
                grow: table.grow_host_buf,
                free: table.free_host_buf,
            })
        })
    }

    /// Forgets what is written, keeping the memory.
    pub(crate) fn clear(&mut self) {
        match &mut self.0 {
            Sink::Own(bytes) => bytes.clear(),
            Sink::Host { buf, .. } => buf.len = 0,
        }
    }

    /// What is written.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Sink::Own(bytes) => bytes,
            Sink::Host { buf, .. } => bytes(buf.ptr, buf.len),
        }
    }

    /// The bytes in memory of the plugin's own.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        if let Sink::Own(bytes) = &mut self.0 {
            return std::mem::take(bytes);
        }
        self.as_bytes().to_vec()
    }

    /// The host's buffer, handed over (empty when the answer is in the plugin's own memory,
    /// which only `call_tool`'s set-up failing could cause).
    fn into_host_buf(self) -> Buf {
        let mut this = std::mem::ManuallyDrop::new(self);
        match std::mem::take(&mut this.0) {
            Sink::Host { buf, .. } => buf,
            Sink::Own(_) => Buf::EMPTY,
        }
    }
}

impl Default for Sink {
    fn default() -> Self {
        Sink::Own(Vec::new())
    }
}

impl Drop for AnswerBuf {
    fn drop(&mut self) {
        if let Sink::Host { buf, free, .. } = &mut self.0 {
            let buf = std::mem::replace(buf, Buf::EMPTY);
            if !buf.ptr.is_null() {
                free(buf);
            }
        }
    }
}

impl std::io::Write for AnswerBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let (buf, grow) = match &mut self.0 {
            Sink::Own(bytes) => return bytes.write(data),
            Sink::Host { buf, grow, .. } => (buf, *grow),
        };
        let needed = buf.len + data.len();
        if needed > buf.cap {
            let old = std::mem::replace(buf, Buf::EMPTY);
            *buf = grow(old, needed.max(Self::FIRST_CAPACITY));
            if buf.cap < needed || buf.ptr.is_null() {
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
        }
        // SAFETY: the host's buffer has `cap` bytes at `ptr`, of which `len` are written; there
        // is room for `data` after them (checked above), and `data` is not in that buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.ptr.add(buf.len), data.len());
        }
        buf.len = needed;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `free_buf`: gives back a buffer `handle` or `init` allocated.
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
    let _ = catch_unwind(AssertUnwindSafe(|| state.take()));
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

/// The principal of the call being handled, as the host's JSON; `None` when it has none, or
/// when the host's table predates the `principal` field.
pub(crate) fn host_principal(callbacks: *const HostCallbacks) -> Option<Vec<u8>> {
    if callbacks.is_null() {
        return None;
    }
    // SAFETY: as in `host_log`: the table outlives the plugin's loaded lifetime.
    let table = unsafe { &*callbacks };
    let needed = std::mem::offset_of!(HostCallbacks, principal) + std::mem::size_of::<usize>();
    if table.struct_size < needed {
        return None;
    }
    let mut out = Buf::EMPTY;
    let status = (table.principal)(table.ctx, &mut out);
    let bytes = if out.ptr.is_null() || out.len == 0 {
        Vec::new()
    } else {
        // SAFETY: the host filled `out` with `len` initialized bytes it owns until
        // `free_host_buf`, which is called right after this copy.
        unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
    };
    if !out.ptr.is_null() {
        (table.free_host_buf)(out);
    }
    (status == 0 && !bytes.is_empty()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Answer, ToolDecl, text_result};
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
                blocking: false,
                name: "shout".into(),
                description: "upper-cases".into(),
                input_schema: json!({"type": "object"}),
                ..ToolDecl::default()
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

    /// A host's side of the buffers it owns, as erlmcp's loader has it.
    fn host_vec(buf: Buf) -> Vec<u8> {
        if buf.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: every host buffer in these tests is made by `test_grow` from a `Vec<u8>` with
        // exactly this pointer, length and capacity, and comes back once.
        unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) }
    }

    extern "C" fn test_grow(buf: Buf, needed: usize) -> Buf {
        let mut bytes = host_vec(buf);
        bytes.reserve(needed.saturating_sub(bytes.len()));
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Buf {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    extern "C" fn test_free(buf: Buf) {
        drop(host_vec(buf));
    }

    extern "C" fn test_log(_: *const std::ffi::c_void, _: u32, _: *const u8, _: usize) {}

    extern "C" fn test_progress(_: *const std::ffi::c_void, _: f64, _: f64) {}

    extern "C" fn test_request_client(
        _: *const std::ffi::c_void,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *mut Buf,
    ) -> i32 {
        1
    }

    /// A host's callback table, living as long as the test process (as a host's lives as long
    /// as the plugin).
    fn test_host() -> &'static HostCallbacks {
        Box::leak(Box::new(HostCallbacks {
            struct_size: std::mem::size_of::<HostCallbacks>(),
            ctx: std::ptr::null(),
            log: test_log,
            progress: test_progress,
            request_client: test_request_client,
            free_host_buf: test_free,
            grow_host_buf: test_grow,
            principal: test_principal,
        }))
    }

    extern "C" fn test_principal(_: *const std::ffi::c_void, out: *mut Buf) -> i32 {
        let json =
            br#"{"subject":"alice","clientId":"app-1","scopes":["mcp"],"via":"jwt","expiresAt":9}"#;
        let mut bytes = std::mem::ManuallyDrop::new(json.to_vec());
        // SAFETY: `out` points to the caller's `Buf` for this call.
        unsafe {
            out.write(Buf {
                ptr: bytes.as_mut_ptr(),
                len: bytes.len(),
                cap: bytes.capacity(),
            });
        }
        0
    }

    #[test]
    fn the_principal_is_read_from_a_host_that_has_the_field_and_not_from_an_older_one() {
        let host = crate::Host {
            callbacks: test_host(),
        };
        let principal = host.principal().expect("a principal");
        assert_eq!(principal.subject, "alice");
        assert_eq!(principal.client_id.as_deref(), Some("app-1"));
        assert!(principal.has_scope("mcp") && !principal.has_scope("admin"));
        assert_eq!(
            (principal.via.as_str(), principal.expires_at),
            ("jwt", Some(9))
        );
        // A host built before the field: its table ends at `grow_host_buf`; never read past it.
        let older: &'static HostCallbacks = Box::leak(Box::new(HostCallbacks {
            struct_size: crate::HOST_CALLBACKS_BEFORE_PRINCIPAL,
            ..*test_host()
        }));
        assert_eq!(
            crate::Host { callbacks: older }.principal(),
            None,
            "an older host has no principal to give"
        );
        assert_eq!(
            crate::Host {
                callbacks: std::ptr::null()
            }
            .principal(),
            None
        );
    }

    fn init_with_test_host<P: Plugin>(state: &PluginState<P>) {
        let mut out = Buf::EMPTY;
        assert_eq!(
            init(state, std::ptr::null(), 0, test_host(), &mut out),
            Status::Ok as i32
        );
        free_buf(out);
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

    /// Calls the `call_tool` entry as the host does; the answer comes in the host's memory.
    fn call_fast<P: Plugin>(state: &PluginState<P>, name: &str, arguments: &str) -> (i32, String) {
        let mut out = Buf::EMPTY;
        let status = call_tool(
            state,
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut out,
        );
        (status, String::from_utf8(host_vec(out)).unwrap())
    }

    #[test]
    fn the_call_tool_entry_takes_raw_arguments_and_answers_like_handle() {
        let state = PluginState::<Shout>::new();
        assert_eq!(
            call_fast(&state, "shout", r#"{"text":"hi"}"#).0,
            Status::Failed as i32,
            "not initialized yet"
        );
        init_with_test_host(&state);
        let (status, text) = call_fast(&state, "shout", r#"{"text":"h\"i"}"#);
        assert_eq!(
            status,
            Status::Ok as i32,
            "through `call_tool`: not well-formed by construction"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            text_result("H\"I")
        );
        assert_eq!(
            call_fast(&state, "shout", ""),
            (Status::Failed as i32, "text is required".to_owned()),
            "no arguments read as {{}}"
        );
        let (status, text) = call_fast(&state, "shout", "{not json");
        assert_eq!(status, Status::Failed as i32);
        assert!(text.starts_with("invalid arguments"), "{text}");
        let (status, text) = call_fast(&state, "shout", r#"{"text":"panic"}"#);
        assert_eq!(status, Status::Panicked as i32);
        assert!(text.contains("boom"));
    }

    #[test]
    fn answer_text_writes_what_text_result_builds_on_one_line() {
        for text in [
            "plain",
            "quote \" backslash \\ newline \n tab \t",
            "日本語 \u{1}",
        ] {
            let mut answer = Answer::new();
            answer.raw(b"{not json").unwrap();
            answer.text(text);
            assert!(answer.is_well_formed());
            assert_eq!(
                serde_json::from_slice::<Value>(answer.as_bytes()).unwrap(),
                text_result(text)
            );
            assert!(!answer.as_bytes().contains(&b'\n'));
            answer.error_text(text);
            let mut failed = text_result(text);
            failed["isError"] = true.into();
            assert_eq!(
                serde_json::from_slice::<Value>(answer.as_bytes()).unwrap(),
                failed
            );
            answer.json(&json!({"content": []})).unwrap();
            assert!(!answer.is_well_formed(), "json() is checked by the host");
        }
    }

    struct Fast;

    impl Plugin for Fast {
        fn new(_config: &Value) -> Result<Self, String> {
            Ok(Fast)
        }
        fn tools(&self) -> Vec<ToolDecl> {
            Vec::new()
        }
        fn call_tool(&self, _name: &str, _args: Value, _host: &Host) -> Result<Value, String> {
            Err("not this way".into())
        }
        fn call_tool_json(
            &self,
            name: &str,
            arguments: &str,
            _host: &Host,
            answer: &mut Answer,
        ) -> Result<(), String> {
            #[derive(serde::Deserialize)]
            struct Args<'a> {
                text: &'a str,
            }
            let args: Args<'_> = crate::parse_arguments(arguments)?;
            answer.text(&format!("{name}: {}", args.text));
            Ok(())
        }
    }

    #[test]
    fn a_typed_answer_is_well_formed_and_handle_serves_it_too() {
        let state = PluginState::<Fast>::new();
        init_with_test_host(&state);
        let (status, text) = call_fast(&state, "say", r#"{"text":"hi"}"#);
        assert_eq!(status, Status::WellFormed as i32);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            text_result("say: hi")
        );
        let long = "x".repeat(10_000);
        let (status, text) = call_fast(&state, "say", &format!(r#"{{"text":"{long}"}}"#));
        assert_eq!(
            status,
            Status::WellFormed as i32,
            "grown past its first size"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            text_result(format!("say: {long}"))
        );
        let (status, text) = call_fast(&state, "say", r#"{"text":7}"#);
        assert_eq!(status, Status::Failed as i32);
        assert!(text.starts_with("invalid arguments"), "{text}");
        let bytes = serde_json::to_vec(
            &json!({"op": "call_tool", "name": "say", "arguments": {"text": "ho"}}),
        )
        .unwrap();
        let mut out = Buf::EMPTY;
        let status = handle(&state, bytes.as_ptr(), bytes.len(), &mut out);
        assert_eq!(status, Status::Ok as i32);
        assert_eq!(
            serde_json::from_slice::<Value>(bytes_of(&out)).unwrap(),
            text_result("say: ho")
        );
        free_buf(out);
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
