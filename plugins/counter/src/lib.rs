//! Example plugin: `count` increments a counter and answers `"<version> <n>"`, so a client can see
//! which version of the plugin served each call. Built twice: plain (1.0.0) and with the feature
//! `v2` (2.0.0, counting in steps of 10). Its self-test checks that counting works.
//!
//! With `{"peek_ttl_ms": N}` in its config it also declares `peek`: read-only and idempotent,
//! answering `"<version> <n>"` without counting, its results cached by the host for N ms (the
//! cache tests see from the count whether a call ran the tool or came from the cache).
//!
//! `count` is served on the fast path ([`Plugin::call_tool_json`]: the result written straight to
//! the answer, no JSON tree); the feature `value_api` leaves that out, so the same tool runs
//! through the convenient [`Plugin::call_tool`] instead (the dispatch bench compares the two).

use erlmcp_plugin_api::{Host, Plugin, ToolDecl, export_plugin, text_result};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(feature = "v2"))]
const VERSION: &str = "1.0.0";
#[cfg(feature = "v2")]
const VERSION: &str = "2.0.0";
#[cfg(not(feature = "v2"))]
const STEP: u64 = 1;
#[cfg(feature = "v2")]
const STEP: u64 = 10;

/// The plugin: one counter.
pub struct Counter {
    count: AtomicU64,
    /// How long the host may cache `peek`'s answers; 0: no `peek`.
    peek_ttl_ms: u64,
    /// Calls of `peek` that ran (a cached answer does not run it).
    peeks: AtomicU64,
}

impl Counter {
    /// `count`: the next count, as the answer's text.
    fn count(&self, name: &str, host: &Host) -> Result<String, String> {
        if name == "peek" && self.peek_ttl_ms > 0 {
            let peeks = self.peeks.fetch_add(1, Ordering::Relaxed) + 1;
            let n = self.count.load(Ordering::Relaxed);
            return Ok(format!("{VERSION} {n} peeks={peeks}"));
        }
        if name != "count" {
            return Err(format!("no tool {name}"));
        }
        let n = self.count.fetch_add(STEP, Ordering::Relaxed) + STEP;
        host.progress(1.0, 1.0);
        if n % 1000 == 0 {
            host.log(1, &format!("counter reached {n}"));
        }
        // Sized up front: `format!` would start from nothing here (the format string begins
        // with an argument) and grow twice.
        let mut text = String::with_capacity(VERSION.len() + 21);
        let _ = write!(text, "{VERSION} {n}");
        Ok(text)
    }
}

impl Plugin for Counter {
    fn new(config: &Value) -> Result<Self, String> {
        let start = config.get("start").and_then(Value::as_u64).unwrap_or(0);
        let peek_ttl_ms = config
            .get("peek_ttl_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(Self {
            count: AtomicU64::new(start),
            peek_ttl_ms,
            peeks: AtomicU64::new(0),
        })
    }

    fn tools(&self) -> Vec<ToolDecl> {
        let mut tools = vec![ToolDecl {
            name: "count".into(),
            description: format!(
                "Counts in steps of {STEP}; answers the plugin version and the count"
            ),
            input_schema: json!({"type": "object", "properties": {}}),
            ..ToolDecl::default()
        }];
        if self.peek_ttl_ms > 0 {
            tools.push(ToolDecl {
                name: "peek".into(),
                description: "Answers the plugin version, the count and how often peek ran".into(),
                input_schema: json!({"type": "object", "properties": {"label": {"type": "string"}}}),
                read_only: true,
                idempotent: true,
                cache_ttl_ms: self.peek_ttl_ms,
                ..ToolDecl::default()
            });
        }
        tools
    }

    fn call_tool(&self, name: &str, _arguments: Value, host: &Host) -> Result<Value, String> {
        Ok(text_result(self.count(name, host)?))
    }

    #[cfg(not(feature = "value_api"))]
    fn call_tool_json(
        &self,
        name: &str,
        _arguments: &str,
        host: &Host,
        answer: &mut erlmcp_plugin_api::Answer,
    ) -> Result<(), String> {
        answer.text(&self.count(name, host)?);
        Ok(())
    }

    fn self_test(&self, _host: &Host) -> Result<(), String> {
        let probe = AtomicU64::new(0);
        probe.fetch_add(STEP, Ordering::Relaxed);
        (probe.load(Ordering::Relaxed) == STEP)
            .then_some(())
            .ok_or_else(|| "counting is broken".to_owned())
    }
}

export_plugin!(Counter, name = "counter", version = VERSION);
