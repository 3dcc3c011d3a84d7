//! Deliberately broken plugins. Built with exactly one feature, each is wrong in one way, so the
//! host's tests can check that every step of the load pipeline refuses it with the right reason
//! and that the version already serving is untouched:
//!
//! | feature | what is wrong | refused at |
//! |---|---|---|
//! | `wrong_abi` | exports ABI version 999 | abi |
//! | `no_vtable` | exports no vtable symbol | vtable |
//! | `undefined_import` | needs a symbol no library provides | open (RTLD_NOW) |
//! | `init_fails` | `init` returns an error | init |
//! | `init_panics` | `init` panics | init |
//! | `self_test_fails` | its self-test fails | self-test |
//! | `handler_panics` | loads fine; its tool panics | (served: the call is an isError result) |
//! | `flaky` | named `counter`; every other `count` fails | (a canary that must be aborted) |
//! | `vtable_too_small` | its vtable claims 16 bytes | vtable |
//! | `bad_answer` | loads fine; its tool answers JSON that is not a result | (served: an isError result) |
//! | `first_release_vtable` | nothing: its vtable is the ABI's first release, without `call_tool` | (served through `handle`) |

use erlmcp_plugin_api::{Host, Plugin, ToolDecl, text_result};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

/// Panics with `message`, first replacing the panic hook of this plugin's own copy of std (not
/// the host's), so that the tests' output says the panic is intended instead of showing what
/// looks like a crash. The host still gets the message (as `Status::Panicked`).
fn panic_on_purpose(message: &'static str) -> ! {
    std::panic::set_hook(Box::new(move |_| {
        eprintln!(
            "erlmcp-plugin-broken: {message} (intended: a test of how the host contains plugin panics)"
        );
    }));
    panic!("{message}");
}

/// The broken plugin.
pub struct Broken {
    calls: AtomicU64,
}

impl Plugin for Broken {
    fn new(_config: &Value) -> Result<Self, String> {
        if cfg!(feature = "init_fails") {
            return Err("init refused: this plugin is built to fail init".into());
        }
        if cfg!(feature = "init_panics") {
            panic_on_purpose("init panicked on purpose");
        }
        Ok(Broken {
            calls: AtomicU64::new(0),
        })
    }

    fn tools(&self) -> Vec<ToolDecl> {
        let name = if cfg!(feature = "flaky") {
            "count"
        } else if cfg!(feature = "first_release_vtable") {
            "old_abi"
        } else {
            "explode"
        };
        vec![ToolDecl {
            asks_client: false,
            blocking: false,
            name: name.into(),
            description: "Panics when called (feature handler_panics)".into(),
            input_schema: json!({"type": "object"}),
            ..ToolDecl::default()
        }]
    }

    fn call_tool(&self, _name: &str, _arguments: Value, _host: &Host) -> Result<Value, String> {
        if cfg!(feature = "handler_panics") {
            panic_on_purpose("the handler panicked on purpose");
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if cfg!(feature = "flaky") && n % 2 == 0 {
            return Err(format!("flaky failure on call {n}"));
        }
        if cfg!(feature = "first_release_vtable") {
            return Ok(text_result(format!("served through handle, call {n}")));
        }
        Ok(text_result(format!("flaky {n}")))
    }

    #[cfg(feature = "bad_answer")]
    fn call_tool_json(
        &self,
        _name: &str,
        _arguments: &str,
        _host: &Host,
        answer: &mut erlmcp_plugin_api::Answer,
    ) -> Result<(), String> {
        answer.raw(br#"{"content":"not a list"}"#)
    }

    fn self_test(&self, _host: &Host) -> Result<(), String> {
        if cfg!(feature = "self_test_fails") {
            return Err("self-test failed on purpose".into());
        }
        Ok(())
    }
}

#[cfg(not(any(
    feature = "wrong_abi",
    feature = "no_vtable",
    feature = "flaky",
    feature = "vtable_too_small",
    feature = "first_release_vtable"
)))]
erlmcp_plugin_api::export_plugin!(Broken, name = "broken", version = "0.0.1");

#[cfg(feature = "vtable_too_small")]
erlmcp_plugin_api::export_plugin!(Broken, name = "broken", version = "0.0.1", vtable_size = 16);

#[cfg(feature = "first_release_vtable")]
erlmcp_plugin_api::export_plugin!(
    Broken,
    name = "old_abi",
    version = "0.1.0",
    vtable_size = erlmcp_plugin_api::VTABLE_BASE_SIZE
);

#[cfg(feature = "flaky")]
erlmcp_plugin_api::export_plugin!(Broken, name = "counter", version = "9.9.9-flaky");

/// The wrong ABI version.
#[cfg(feature = "wrong_abi")]
#[unsafe(no_mangle)]
pub static erlmcp_plugin_abi_version: u32 = 999;

/// A correct ABI version but no vtable.
#[cfg(feature = "no_vtable")]
#[unsafe(no_mangle)]
pub static erlmcp_plugin_abi_version: u32 = erlmcp_plugin_api::ABI_VERSION;

#[cfg(feature = "undefined_import")]
unsafe extern "C" {
    fn erlmcp_symbol_that_no_library_defines() -> u32;
}

/// Keeps the undefined import referenced, so the dynamic linker must resolve it at load.
#[cfg(feature = "undefined_import")]
#[unsafe(no_mangle)]
pub extern "C" fn erlmcp_broken_uses_missing_symbol() -> u32 {
    // SAFETY: never reached: loading with RTLD_NOW fails first because the symbol is undefined.
    unsafe { erlmcp_symbol_that_no_library_defines() }
}
