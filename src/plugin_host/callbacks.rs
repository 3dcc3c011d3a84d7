//! Owns the host's side of the plugin callbacks (`HostCallbacks`): the table given to a plugin
//! at `init`, and what each callback does — log, progress, a request to the client, the
//! principal of the call, the host's buffers — with the call being handled kept in a
//! thread-local while a plugin runs it ([`enter_call`]). With [`super::loader`] and the API
//! crate's `ffi`, the only place erlmcp uses `unsafe`.

use erlmcp_plugin_api::{Buf, HostCallbacks};
use std::ffi::c_void;

/// The context the host passes to plugin callbacks: the plugin's name, for logs.
pub(super) struct CallbackContext {
    pub(super) plugin: String,
}

thread_local! {
    /// The request being handled by a plugin on this thread, for the callbacks that concern the
    /// current call: set by [`enter_call`] (from `LoadedPlugin::call_tool_for`) to a context it borrows for the whole
    /// call, null outside one.
    static CURRENT_CALL: std::cell::Cell<*const crate::session::RequestContext> =
        const { std::cell::Cell::new(std::ptr::null()) };
    /// Set on the thread of a call to a tool that declared `asks_client` (a blocking thread of
    /// its own, where waiting for the client holds up nothing else).
    static MAY_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `call` as a call of a tool that may wait for the client (on a blocking thread).
pub(crate) fn with_client_waits<T>(call: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            MAY_WAIT.with(|m| m.set(false));
        }
    }
    MAY_WAIT.with(|m| m.set(true));
    let _reset = Reset;
    call()
}

/// Runs `with` on the request whose tool call this thread is in, if any.
fn with_current_call<T>(with: impl FnOnce(&crate::session::RequestContext) -> T) -> Option<T> {
    let ctx = CURRENT_CALL.with(std::cell::Cell::get);
    // SAFETY: a non-null pointer was set by `enter_call` on this thread from a reference that
    // outlives its guard (the guard borrows it), and the guard puts the earlier value back
    // (panics included) before that reference ends; callbacks run on this thread inside the call.
    unsafe { ctx.as_ref() }.map(with)
}

extern "C" fn host_progress(_ctx: *const c_void, progress: f64, total: f64) {
    with_current_call(|ctx| ctx.progress(progress, Some(total), None));
}

/// A host-owned byte vector as a [`Buf`] for the plugin (back with [`host_vec`]).
fn into_host_buf(bytes: Vec<u8>) -> Buf {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    Buf {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

/// A [`Buf`] made by [`into_host_buf`], as the vector it is again.
pub(super) fn host_vec(buf: Buf) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: host buffers are made only by `into_host_buf` in this process (same allocator)
    // from a `Vec<u8>` with exactly this pointer, length and capacity; the plugin may only have
    // written `len` initialized bytes into it (the ABI), and each comes back once.
    unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) }
}

/// Copies `bytes` into a buffer the plugin gives back with [`host_free_buf`].
fn host_buf(bytes: Vec<u8>, out: *mut Buf) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` points to a `Buf` the plugin owns for the duration of this callback.
    unsafe { out.write(into_host_buf(bytes)) };
}

extern "C" fn host_free_buf(buf: Buf) {
    drop(host_vec(buf));
}

extern "C" fn host_grow_buf(buf: Buf, needed: usize) -> Buf {
    let mut bytes = host_vec(buf);
    bytes.reserve(needed.saturating_sub(bytes.len()));
    into_host_buf(bytes)
}

/// The principal of the call the plugin is handling, as JSON (the API crate's `Principal`:
/// `subject`, `clientId`, `scopes`, `via`, `expiresAt`): 0 with it in `out`, 1 with `out` left
/// as it is when the call carries none or no call is being handled on this thread.
extern "C" fn host_principal(_ctx: *const c_void, out: *mut Buf) -> i32 {
    let json = with_current_call(|ctx| ctx.principal().map(|p| principal_json(p))).flatten();
    match json {
        Some(json) => {
            host_buf(json, out);
            0
        }
        None => 1,
    }
}

/// What a plugin reads of a principal (`erlmcp_plugin_api::Principal`).
fn principal_json(principal: &crate::auth::Principal) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "subject": principal.subject,
        "clientId": principal.client_id,
        "scopes": principal.scopes,
        "via": principal.via,
        "expiresAt": principal.expires_at,
    }))
    .unwrap_or_default()
}

/// A plugin's request to the client of the call it is handling: waits for the answer. Only
/// tools that declared `asks_client` may: their calls run on a blocking thread of their own.
extern "C" fn host_request_client(
    _ctx: *const c_void,
    method: *const u8,
    method_len: usize,
    params: *const u8,
    params_len: usize,
    out: *mut Buf,
) -> i32 {
    let read = |ptr: *const u8, len: usize| -> Vec<u8> {
        if ptr.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin passes `len` initialized bytes it keeps alive for this call.
            unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
        }
    };
    let method = String::from_utf8_lossy(&read(method, method_len)).into_owned();
    let params: Result<serde_json::Value, _> = serde_json::from_slice(&read(params, params_len));
    let outcome = match params {
        Ok(params) => ask_client(&method, params),
        Err(e) => Err(format!("unreadable params: {e}")),
    };
    match outcome {
        Ok(answer) => {
            host_buf(serde_json::to_vec(&answer).unwrap_or_default(), out);
            0
        }
        Err(message) => {
            host_buf(message.into_bytes(), out);
            1
        }
    }
}

fn ask_client(method: &str, params: serde_json::Value) -> Result<serde_json::Value, String> {
    let ctx = with_current_call(Clone::clone)
        .ok_or("client requests are only possible while a tool call is handled, on its thread")?;
    if !MAY_WAIT.with(std::cell::Cell::get) {
        return Err(
            "this tool did not declare `asks_client`: its calls run where waiting for the client would block the connection".to_owned(),
        );
    }
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "no runtime to wait on the client with".to_owned())?;
    let ask = async {
        match method {
            "sampling/createMessage" => ctx.create_message(params).await,
            "elicitation/create" => ctx.elicit(params).await,
            "roots/list" => ctx.list_roots().await,
            other => return Err(format!("plugins cannot send `{other}` to the client")),
        }
        .map_err(|e| e.to_string())
    };
    handle.block_on(ask)
}

extern "C" fn host_log(ctx: *const c_void, level: u32, ptr: *const u8, len: usize) {
    let text = if ptr.is_null() || len == 0 {
        String::new()
    } else {
        // SAFETY: the plugin passes `len` initialized bytes it keeps alive for this call.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) }).into_owned()
    };
    let plugin = if ctx.is_null() {
        "?"
    } else {
        // SAFETY: `ctx` is the `CallbackContext` boxed in the `LoadedPlugin`, which outlives every
        // call the plugin can make (it is dropped after `shutdown`).
        unsafe { &*(ctx as *const CallbackContext) }.plugin.as_str()
    };
    match level {
        0 => tracing::debug!(plugin, "{text}"),
        1 | 2 => tracing::info!(plugin, "{text}"),
        3 => tracing::warn!(plugin, "{text}"),
        _ => tracing::error!(plugin, "{text}"),
    }
}

/// The callback table for a plugin whose context is `context` (kept boxed beside the table for
/// as long as the plugin is loaded).
pub(super) fn table(context: &CallbackContext) -> HostCallbacks {
    HostCallbacks {
        struct_size: std::mem::size_of::<HostCallbacks>(),
        ctx: context as *const CallbackContext as *const c_void,
        log: host_log,
        progress: host_progress,
        request_client: host_request_client,
        free_host_buf: host_free_buf,
        grow_host_buf: host_grow_buf,
        principal: host_principal,
    }
}

/// While it lives, the callbacks on this thread concern the request it was made with.
pub(super) struct CallGuard<'a> {
    earlier: *const crate::session::RequestContext,
    _call: std::marker::PhantomData<&'a crate::session::RequestContext>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        CURRENT_CALL.with(|current| current.set(self.earlier));
    }
}

/// Makes `ctx` the call this thread's callbacks concern, until the guard is dropped.
pub(super) fn enter_call(ctx: &crate::session::RequestContext) -> CallGuard<'_> {
    CallGuard {
        earlier: CURRENT_CALL.with(|current| current.replace(ctx)),
        _call: std::marker::PhantomData,
    }
}
