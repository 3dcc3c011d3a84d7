//! Owns loading one plugin file and calling into it — the host side of the ABI, and with
//! [`super::callbacks`] (the callbacks a plugin calls back into) and `erlmcp-plugin-api`'s `ffi`
//! module the only place erlmcp uses `unsafe`.
//!
//! The pipeline, each step failing with its own [`LoadError`] and leaving nothing behind:
//! 1. trust: the file, every directory and link leading to it pass [`super::trust`]'s rules, and
//!    it is opened and checked again through its descriptor;
//! 2. copy it, through that descriptor, to a new file (mode 0600, `O_EXCL`) in the private
//!    staging directory ([`super::staging`]): `dlopen` caches by path and inode, and overwriting
//!    a loaded library in place crashes the process;
//! 3. `dlopen` the copy with `RTLD_NOW | RTLD_LOCAL` through its descriptor
//!    (`/proc/self/fd/N`), never by its name (see [`open_staged`]), so no rename can put another
//!    file in its place; an unresolved symbol fails here, not at first call;
//! 4. read the ABI version symbol and refuse any other version;
//! 5. get the vtable and refuse one smaller than the ABI's first release (fields appended since
//!    are used only when the plugin's `struct_size` covers them);
//! 6. `init` with the JSON config and the host callbacks;
//! 7. `self_test` on a short-lived thread, bounded in time;
//! 8. `describe`, for the tools to register.
//!
//! A [`LoadedPlugin`] is shared through `Arc`s: calls in flight keep the version they started on
//! alive, and the library is shut down and closed only when the last reference goes.

use super::callbacks::{self, CallbackContext, host_vec};
use super::staging::{StagedFile, Staging};
use super::trust::{self, TrustError};
use erlmcp_plugin_api::{
    ABI_VERSION, ABI_VERSION_SYMBOL, Buf, Description, HostCallbacks, Request, StaticStr, Status,
    VTABLE_BASE_SIZE, VTABLE_SYMBOL, VTable,
};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a plugin's self-test may take.
pub(crate) const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Which step of loading failed, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file, or a directory or link leading to it, is not trusted (see
    /// `super::trust`); nothing of it was read.
    #[error("trust: {0}")]
    Untrusted(String),
    /// The file, or a directory or link leading to it, could not be read.
    #[error("read: cannot read {path}: {source}")]
    Read {
        /// What could not be read (the file, or a component of its path).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Copying to the staging directory failed.
    #[error("stage: cannot copy {path} to the staging directory: {source}")]
    Stage {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `dlopen` failed (not a library, missing dependency, undefined symbol…).
    #[error("open: {0}")]
    Open(String),
    /// The ABI version symbol is missing.
    #[error(
        "abi: the library exports no `erlmcp_plugin_abi_version` (is it an erlmcp plugin?): {0}"
    )]
    NoAbiVersion(String),
    /// Built against another ABI.
    #[error("abi: the plugin was built for ABI version {found}; this host speaks {expected}")]
    AbiMismatch {
        /// The plugin's.
        found: u32,
        /// The host's.
        expected: u32,
    },
    /// The vtable symbol is missing.
    #[error("vtable: the library exports no `erlmcp_plugin_vtable`: {0}")]
    NoVTable(String),
    /// The vtable is smaller than this host needs.
    #[error("vtable: {found} bytes, this host needs at least {needed}")]
    VTableTooSmall {
        /// The plugin's size.
        found: usize,
        /// The host's.
        needed: usize,
    },
    /// `init` failed or panicked.
    #[error("init: {0}")]
    Init(String),
    /// The self-test failed, panicked or did not finish in time.
    #[error("self-test: {0}")]
    SelfTest(String),
    /// `describe` failed or answered something unreadable.
    #[error("describe: {0}")]
    Describe(String),
}

/// A call into the plugin failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CallError {
    /// Whether the plugin panicked (caught inside it).
    pub(crate) panicked: bool,
    /// The plugin's message.
    pub(crate) message: String,
}

/// A plugin's answer to a tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolAnswer {
    /// The `CallToolResult` as JSON.
    pub(crate) json: Vec<u8>,
    /// `Some(is_error)` when the plugin wrote it through its typed writer, which makes a
    /// well-formed result by construction; `None` when it must be checked.
    pub(crate) well_formed: Option<bool>,
}

impl CallError {
    /// A failed entry point's status and message.
    fn of(status: Status, message: &[u8]) -> Self {
        Self {
            panicked: status == Status::Panicked,
            message: String::from_utf8_lossy(message).into_owned(),
        }
    }
}

/// The plugin's entry points this host calls after loading, read once from its vtable.
#[derive(Clone, Copy)]
struct Entries {
    handle: extern "C" fn(*const u8, usize, *mut Buf) -> i32,
    shutdown: extern "C" fn(),
    /// Absent from plugins built before it was appended.
    call_tool: Option<extern "C" fn(*const u8, usize, *const u8, usize, *mut Buf) -> i32>,
}

/// One loaded version of a plugin.
pub(crate) struct LoadedPlugin {
    name: String,
    version: String,
    description: Description,
    /// `None` until `init` succeeded (then `shutdown` is owed at drop).
    entries: Option<Entries>,
    /// Kept to free what `init` answers before `entries` is set.
    free_buf: extern "C" fn(Buf),
    staged: PathBuf,
    /// The staged copy's descriptor, which the library was opened through: kept open while the
    /// library is, so its number — the library's name for the dynamic loader — is not reused
    /// by another copy meanwhile.
    _staged_file: File,
    // Kept alive for the plugin: its callback table and the table's context.
    _callbacks: Box<HostCallbacks>,
    _context: Box<CallbackContext>,
    library: Option<Library>,
}

// SAFETY: the vtable's entry points are thread-safe by the ABI's contract (the plugin side guards
// its state with a lock, see erlmcp-plugin-api's ffi module), and the pointers held here stay
// valid while `library` is open, which it is until this value is dropped.
unsafe impl Send for LoadedPlugin {}
// SAFETY: as above; `&self` methods only call entry points and read immutable fields.
unsafe impl Sync for LoadedPlugin {}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("staged", &self.staged)
            .finish_non_exhaustive()
    }
}

fn read_static(s: StaticStr) -> String {
    if s.ptr.is_null() {
        return String::new();
    }
    // SAFETY: a `StaticStr` from the vtable points to `len` bytes of a `'static` str inside the
    // library, which is open while this runs.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(s.ptr, s.len) }).into_owned()
}

impl LoadedPlugin {
    /// Runs the whole load pipeline for `source`.
    pub(crate) fn load(
        source: &Path,
        staging: &Staging,
        config: &serde_json::Value,
    ) -> Result<Arc<Self>, LoadError> {
        let staged = stage(source, staging)?;
        #[cfg(test)]
        tests::before_open(&staged.path);
        let loaded = Self::open(staged, config);
        let plugin = Arc::new(loaded?);
        plugin.self_test()?;
        Ok(plugin)
    }

    fn open(staged: StagedFile, config: &serde_json::Value) -> Result<Self, LoadError> {
        let StagedFile {
            file: staged_file,
            path: staged,
        } = staged;
        let cleanup = |e: LoadError| {
            let _ = std::fs::remove_file(&staged);
            e
        };
        let (library, staged_file) =
            open_staged(staged_file).map_err(|e| cleanup(LoadError::Open(e)))?;
        // SAFETY: the symbol is declared by the ABI as a `u32` static; reading it does not call
        // into the plugin.
        let abi = unsafe { library.get::<*const u32>(ABI_VERSION_SYMBOL) }
            .map_err(|e| cleanup(LoadError::NoAbiVersion(error_chain(&e))))?;
        // SAFETY: `abi` points to the plugin's `u32` static, valid while `library` is open.
        let found = unsafe { **abi };
        if found != ABI_VERSION {
            return Err(cleanup(LoadError::AbiMismatch {
                found,
                expected: ABI_VERSION,
            }));
        }
        // SAFETY: the ABI declares this symbol as `extern "C" fn() -> *const VTable`, and the ABI
        // version matched.
        let get_vtable = unsafe { library.get::<extern "C" fn() -> *const VTable>(VTABLE_SYMBOL) }
            .map_err(|e| cleanup(LoadError::NoVTable(error_chain(&e))))?;
        let vtable = get_vtable();
        if vtable.is_null() {
            return Err(cleanup(LoadError::NoVTable("it returned null".into())));
        }
        // SAFETY: non-null, and the plugin's static vtable lives as long as the library. Only the
        // leading `struct_size` field is read before the size is checked.
        let size = unsafe { (*vtable).struct_size };
        if size < VTABLE_BASE_SIZE {
            return Err(cleanup(LoadError::VTableTooSmall {
                found: size,
                needed: VTABLE_BASE_SIZE,
            }));
        }
        // SAFETY: the fields up to `shutdown` lie within the plugin's `struct_size` bytes
        // (checked above); they are read one by one through the raw pointer, never as a whole
        // `VTable`, which may be larger than the plugin's.
        let (name, version, init, handle, free_buf, shutdown) = unsafe {
            (
                std::ptr::addr_of!((*vtable).name).read(),
                std::ptr::addr_of!((*vtable).version).read(),
                std::ptr::addr_of!((*vtable).init).read(),
                std::ptr::addr_of!((*vtable).handle).read(),
                std::ptr::addr_of!((*vtable).free_buf).read(),
                std::ptr::addr_of!((*vtable).shutdown).read(),
            )
        };
        let call_tool_end = std::mem::offset_of!(VTable, call_tool) + std::mem::size_of::<usize>();
        // SAFETY: read only when the plugin's vtable covers the field.
        let call_tool = (size >= call_tool_end)
            .then(|| unsafe { std::ptr::addr_of!((*vtable).call_tool).read() });
        let entries = Entries {
            handle,
            shutdown,
            call_tool,
        };
        let name = read_static(name());
        let version = read_static(version());
        let context = Box::new(CallbackContext {
            plugin: name.clone(),
        });
        let callbacks = Box::new(callbacks::table(&context));
        let mut plugin = Self {
            name,
            version,
            description: Description { tools: Vec::new() },
            entries: None,
            free_buf,
            staged: staged.clone(),
            _staged_file: staged_file,
            _callbacks: callbacks,
            _context: context,
            library: Some(library),
        };
        let config = serde_json::to_vec(config).unwrap_or_default();
        let mut out = Buf::EMPTY;
        let status = init(config.as_ptr(), config.len(), &*plugin._callbacks, &mut out);
        let message = plugin.take(out);
        match Status::from_raw(status) {
            // Only now is `shutdown` owed (a failed init leaves the plugin no state).
            Status::Ok => plugin.entries = Some(entries),
            _ => {
                return Err(LoadError::Init(
                    String::from_utf8_lossy(&message).into_owned(),
                ));
            }
        }
        let description = plugin
            .call(&Request::Describe)
            .map_err(|e| LoadError::Describe(e.message))?;
        plugin.description = serde_json::from_slice(&description)
            .map_err(|e| LoadError::Describe(format!("unreadable description: {e}")))?;
        Ok(plugin)
    }

    fn self_test(self: &Arc<Self>) -> Result<(), LoadError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let plugin = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("self-test {}", self.name))
            .spawn(move || {
                let outcome = plugin.call(&Request::SelfTest);
                // Let go of the plugin before answering, so a refused version is unloaded (and
                // its staged copy removed) by the time the loader reports the failure.
                drop(plugin);
                let _ = tx.send(outcome);
            })
            .map_err(|e| LoadError::SelfTest(format!("cannot start its thread: {e}")))?;
        match rx.recv_timeout(SELF_TEST_TIMEOUT) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(LoadError::SelfTest(e.message)),
            Err(_) => Err(LoadError::SelfTest(format!(
                "did not finish within {SELF_TEST_TIMEOUT:?}"
            ))),
        }
    }

    /// Copies a plugin-allocated buffer out and gives it back to the plugin.
    fn take(&self, buf: Buf) -> Vec<u8> {
        if buf.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the plugin filled `buf` with `len` initialized bytes it owns until `free_buf`.
        let data = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        // The entry point stays valid while the library is open (it is: `&self` is alive).
        (self.free_buf)(buf);
        data
    }

    /// Calls tool `name` with `arguments` (the raw JSON the client sent) on behalf of the client
    /// request `ctx`: the plugin's progress reports and client requests during the call concern
    /// that request.
    pub(crate) fn call_tool_for(
        &self,
        ctx: &crate::session::RequestContext,
        name: &str,
        arguments: &str,
    ) -> Result<ToolAnswer, CallError> {
        let _call = callbacks::enter_call(ctx);
        let Some(call_tool) = self.entries.and_then(|e| e.call_tool) else {
            // A plugin built before `call_tool` was appended: the request goes through `handle`,
            // spliced rather than re-encoded (the arguments' JSON as it came).
            let mut request = Vec::with_capacity(48 + name.len() + arguments.len());
            request.extend_from_slice(br#"{"op":"call_tool","name":"#);
            serde_json::to_writer(&mut request, name).map_err(|e| CallError {
                panicked: false,
                message: e.to_string(),
            })?;
            request.extend_from_slice(br#","arguments":"#);
            request.extend_from_slice(arguments.as_bytes());
            request.push(b'}');
            return self.call_encoded(&request).map(|json| ToolAnswer {
                json,
                well_formed: None,
            });
        };
        let mut out = Buf::EMPTY;
        let status = call_tool(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut out,
        );
        // Written into the host's memory: this host's now, no copy.
        let json = host_vec(out);
        let well_formed = match Status::from_raw(status) {
            Status::Ok => None,
            Status::WellFormed => Some(false),
            Status::WellFormedError => Some(true),
            status => return Err(CallError::of(status, &json)),
        };
        Ok(ToolAnswer { json, well_formed })
    }

    /// Sends one request; the answer's JSON bytes, or the plugin's error.
    pub(crate) fn call(&self, request: &Request) -> Result<Vec<u8>, CallError> {
        self.call_encoded(&serde_json::to_vec(request).unwrap_or_default())
    }

    /// Sends one request already encoded as JSON; the answer's JSON bytes, or the plugin's error.
    pub(crate) fn call_encoded(&self, bytes: &[u8]) -> Result<Vec<u8>, CallError> {
        let Some(entries) = self.entries else {
            return Err(CallError {
                panicked: false,
                message: "the plugin is not initialized".into(),
            });
        };
        let mut out = Buf::EMPTY;
        let status = (entries.handle)(bytes.as_ptr(), bytes.len(), &mut out);
        let answer = self.take(out);
        match Status::from_raw(status) {
            Status::Ok => Ok(answer),
            status => Err(CallError::of(status, &answer)),
        }
    }

    /// The plugin's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// What it serves.
    pub(crate) fn description(&self) -> &Description {
        &self.description
    }
}

impl Drop for LoadedPlugin {
    fn drop(&mut self) {
        if let Some(entries) = self.entries {
            // The library is still open (it is closed below).
            (entries.shutdown)();
        }
        // Closing is best effort: a library with thread-local destructors stays mapped.
        drop(self.library.take());
        let _ = std::fs::remove_file(&self.staged);
        tracing::info!(plugin = %self.name, version = %self.version, "plugin version unloaded");
    }
}

/// Opens `source` if it is trusted, and copies it through its descriptor to a new file in the
/// staging directory.
fn stage(source: &Path, staging: &Staging) -> Result<StagedFile, LoadError> {
    let mut trusted = trust::open_trusted(source, trust::effective_uid()).map_err(|e| match e {
        TrustError::Io { path, source } => LoadError::Read { path, source },
        refused => LoadError::Untrusted(format!("{} refused: {refused}", source.display())),
    })?;
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    staging
        .stage(&mut trusted.file, stem)
        .map_err(|err| LoadError::Stage {
            path: source.to_owned(),
            source: err,
        })
}

/// Tries at most this many descriptor numbers for a copy before giving up (see [`open_staged`]).
const FD_NAME_TRIES: usize = 16;

/// `dlopen`s the staged copy through its descriptor: `/proc/self/fd/N` names the open file
/// itself, whatever is at its path by then, so the library mapped is the copy this process wrote
/// — a file renamed over the staged path (or the staging directory swapped) cannot be loaded in
/// its place, and its constructors cannot run.
///
/// The dynamic loader knows a library by the name it was opened with, and returns an already
/// loaded library for a known name without opening anything. A name `/proc/self/fd/N` is reused
/// when `N` is: an earlier version opened through the same number may still be mapped (closing
/// is best effort). So the name is first looked up with `RTLD_NOLOAD`, which loads nothing (the
/// loader compares names, then the file's identity, and stops); while it names a library already
/// there, the copy's descriptor is duplicated to a new number and the lookup repeated. Returns the
/// library and the descriptor it was opened through.
fn open_staged(mut file: File) -> Result<(Library, File), String> {
    use std::os::fd::AsRawFd;
    let mut held = Vec::new();
    for _ in 0..FD_NAME_TRIES {
        let name = format!("/proc/self/fd/{}", file.as_raw_fd());
        // SAFETY: with RTLD_NOLOAD the loader maps and initializes nothing: it returns a library
        // already loaded under this name or identity (no initializer runs again for it), or
        // fails.
        let known =
            unsafe { Library::open(Some(&name), RTLD_NOW | RTLD_LOCAL | libc::RTLD_NOLOAD) };
        match known {
            Ok(other) => {
                // Another library answers to this name: let go of the reference just taken, and
                // try a new number (the current one is held, so the duplicate's differs).
                drop(other);
                let next = file
                    .try_clone()
                    .map_err(|e| format!("cannot duplicate the staged copy's descriptor: {e}"))?;
                held.push(std::mem::replace(&mut file, next));
            }
            Err(_) => {
                // SAFETY: loading a library runs its initializers. This is the copy the host
                // wrote itself, through this very descriptor, from a file that passed the trust
                // rules; the name reaches this open file, not a path anyone could rename.
                let library = unsafe { Library::open(Some(&name), RTLD_NOW | RTLD_LOCAL) }
                    .map_err(|e| error_chain(&e))?;
                return Ok((library, file));
            }
        }
    }
    Err(format!(
        "{FD_NAME_TRIES} descriptor numbers in a row name libraries already loaded"
    ))
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    erlmcp_supervisors::error::error_chain(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;

    type Hook = Box<dyn FnOnce(&Path)>;

    thread_local! {
        /// Run by `load` between writing the staged copy and opening it.
        static BEFORE_OPEN: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    pub(super) fn before_open(staged: &Path) {
        if let Some(hook) = BEFORE_OPEN.with(|h| h.borrow_mut().take()) {
            hook(staged);
        }
    }

    /// Builds plugins/counter (`features`) the way tests/it/support/plugin_build.rs does, into `dest`.
    fn build_counter(features: &[&str], dest: &Path) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target").join("plugin-build");
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.current_dir(root)
            .args([
                "build",
                "--quiet",
                "-p",
                "erlmcp-plugin-counter",
                "--target-dir",
            ])
            .arg(&target);
        for feature in features {
            cmd.args(["--features", feature]);
        }
        assert!(cmd.status().expect("run cargo").success());
        std::fs::copy(
            target.join("debug").join("liberlmcp_plugin_counter.so"),
            dest,
        )
        .unwrap();
    }

    fn staged(staging: &Staging, source: &Path) -> StagedFile {
        staging
            .stage(&mut File::open(source).unwrap(), "counter")
            .unwrap()
    }

    /// The rename race: another library renamed over the staged copy between the copy and the
    /// open is not what gets loaded (opened by its path, it was: version 2.0.0 ran). And a
    /// descriptor number reused while an earlier library opened through it is still loaded
    /// does not hand back that library.
    #[test]
    fn what_is_opened_is_the_copy_written_whatever_is_renamed_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (dir.path().join("v1.so"), dir.path().join("v2.so"));
        build_counter(&[], &v1);
        build_counter(&["v2"], &v2);
        let staging = Staging::prepare(dir.path().join("staging"), trust::effective_uid()).unwrap();

        let swapped = dir.path().join("swap.so");
        std::fs::copy(&v2, &swapped).unwrap();
        let from = swapped.clone();
        BEFORE_OPEN.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |staged: &Path| {
                std::fs::rename(&from, staged).unwrap();
            }))
        });
        let loaded = LoadedPlugin::load(&v1, &staging, &serde_json::json!({})).unwrap();
        assert!(!swapped.exists(), "the swap happened");
        assert_eq!(loaded.version(), "1.0.0", "the staged copy was loaded");
        drop(loaded);

        // An earlier library stays loaded (as one with thread-local destructors does) while the
        // number it was opened through is given to the next copy.
        for _ in 0..8 {
            let (earlier, its_fd) = open_staged(staged(&staging, &v1).file).unwrap();
            let number = its_fd.as_raw_fd();
            drop(its_fd);
            let next = staged(&staging, &v2);
            if next.file.as_raw_fd() != number {
                continue; // another thread took the number first; arrange it again
            }
            let plugin = LoadedPlugin::open(next, &serde_json::json!({})).unwrap();
            assert_eq!(
                plugin.version(),
                "2.0.0",
                "not the library loaded as fd {number}"
            );
            drop(plugin);
            drop(earlier);
            return;
        }
        panic!("could not have a descriptor number reused");
    }
}
