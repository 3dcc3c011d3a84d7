//! Owns the integration profile's load (`bench run --profile integration`): whole MCP flows
//! over newline-delimited JSON-RPC on TCP, one after another on each connection, each on a new
//! connection: connect, `initialize` (declaring sampling) and `notifications/initialized`,
//! `tools/list`, a `tools/call` with a progress token (its progress notifications counted), a
//! sampling round trip (the node's `sampling/createMessage` answered by the generator), a
//! `resources/subscribe`, and a cancelled call (`sleep` cancelled with
//! `notifications/cancelled`, then a `ping` that must come back before any answer to the
//! cancelled call). A flow is one "call" of the run (its latency from when it began, or was due
//! in open loop); each step is timed too (`<step>_p50_us`, `<step>_p99_us`, `<step>_errors`).
//! A step that fails ends its flow as an error and the next flow starts on a new connection.
//!
//! The flows use the demo toolset's `echo` (which reports progress when asked), `test_sampling` and `sleep`
//! tools and its `test://static-text` resource (the default config serves them).

use super::{DRAIN, LoadPlan, LoadRun, Progress, Schedule, Shared, connect, run_with};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long one step may take before its flow fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the flows and reports.
pub(crate) fn run_integration_load(
    plan: LoadPlan,
    progress: Arc<Progress>,
) -> std::io::Result<LoadRun> {
    run_with(plan, progress, |stream, plan, index, recorder| {
        Box::pin(drive_flows(stream, plan, index, recorder))
    })
}

/// Why a flow failed (counted, and shown in the error when every flow fails).
type Failure = String;

/// One connection's flows, back to back (closed loop) or on its schedule (open loop).
async fn drive_flows(
    first: TcpStream,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()> {
    let stop_at = recorder.borrow().stop_at;
    let schedule = plan.rate.map(|_| Schedule::of(&plan, index, stop_at));
    let mut stream = Some(first);
    let mut k = 0u64;
    let mut flows_ok = 0u64;
    loop {
        let began = match schedule {
            Some(schedule) => {
                let due = schedule.due(k);
                if due >= stop_at {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if began >= stop_at {
            break;
        }
        k += 1;
        let mut flow = Flow {
            recorder: &recorder,
            began,
            step_began: Instant::now(),
        };
        let outcome = tokio::time::timeout_at(
            (stop_at + DRAIN).into(),
            flow.run(stream.take(), plan, index),
        )
        .await
        .unwrap_or_else(|_| Err("the flow ran past the end of the run".into()));
        recorder
            .borrow_mut()
            .answered(outcome.is_ok(), began, Instant::now());
        match outcome {
            Ok(()) => flows_ok += 1,
            Err(failure) if flows_ok == 0 && k >= 3 => {
                // Three flows in a row failed from the start: the node does not serve them.
                return Err(std::io::Error::other(format!(
                    "integration flows fail: {failure}"
                )));
            }
            Err(failure) => tracing::debug!(index, "an integration flow failed: {failure}"),
        }
    }
    Ok(())
}

/// One flow's timing.
struct Flow<'a> {
    recorder: &'a Shared,
    began: Instant,
    step_began: Instant,
}

/// A flow's connection: lines read, lines written, ids handed out.
struct Wire {
    lines: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    line: String,
    next_id: u64,
}

impl Flow<'_> {
    /// Ends step `name` (ok or not) and starts the next.
    fn step(&mut self, name: &'static str, ok: bool) -> Result<(), Failure> {
        let now = Instant::now();
        self.recorder
            .borrow_mut()
            .flow_step(name, ok, self.began, self.step_began, now)
            .map_err(|e| e.to_string())?;
        self.step_began = now;
        Ok(())
    }

    /// Runs `work` as step `name`, bounded by [`STEP_TIMEOUT`].
    async fn timed<T>(
        &mut self,
        name: &'static str,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let outcome = tokio::time::timeout(STEP_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {STEP_TIMEOUT:?}")));
        self.step(name, outcome.is_ok())?;
        outcome.map_err(|why| format!("{name}: {why}"))
    }

    async fn run(
        &mut self,
        reuse: Option<TcpStream>,
        plan: LoadPlan,
        index: usize,
    ) -> Result<(), Failure> {
        let stream = self
            .timed("connect", async {
                let stream = match reuse {
                    Some(stream) => stream,
                    None => connect(plan.addr, index).await.map_err(|e| e.to_string())?,
                };
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                Ok(stream)
            })
            .await?;
        let (read, write) = stream.into_split();
        let mut wire = Wire {
            lines: BufReader::new(read),
            write,
            line: String::new(),
            next_id: 0,
        };
        self.timed("initialize", async {
            let answer = wire
                .call(
                    "initialize",
                    json!({
                        "protocolVersion": "2025-06-18",
                        "capabilities": {"sampling": {}},
                        "clientInfo": {"name": "erlmcp-bench-integration", "version": "1"}
                    }),
                )
                .await?;
            wire.notify("notifications/initialized", json!({})).await?;
            answer
                .get("serverInfo")
                .map(|_| ())
                .ok_or_else(|| format!("no serverInfo in {answer}"))
        })
        .await?;
        self.timed("tools_list", async {
            let answer = wire.call("tools/list", json!({})).await?;
            let tools = answer["tools"].as_array().map_or(0, Vec::len);
            if tools == 0 {
                return Err(format!("no tools listed: {answer}"));
            }
            Ok(())
        })
        .await?;
        self.timed("call_with_progress", async {
            let id = wire
                .send(
                    "tools/call",
                    json!({"name": "echo", "arguments": {"text": "with progress"},
                           "_meta": {"progressToken": "bench"}}),
                )
                .await?;
            let mut progress = 0;
            let answer = wire
                .answer_to(id, |message| {
                    if message["method"] == "notifications/progress" {
                        progress += 1;
                    }
                    None
                })
                .await?;
            let echoed = answer["content"][0]["text"] == "with progress";
            if progress == 0 || !echoed {
                return Err(format!(
                    "{progress} progress notifications, answer {answer}"
                ));
            }
            Ok(())
        })
        .await?;
        self.timed("sampling_round_trip", async {
            let id = wire
                .send(
                    "tools/call",
                    json!({"name": "test_sampling", "arguments": {"prompt": "2+2?"}}),
                )
                .await?;
            let mut asked = false;
            let answer = wire
                .answer_to(id, |message| {
                    (message["method"] == "sampling/createMessage").then(|| {
                        asked = true;
                        json!({"role": "assistant", "model": "erlmcp-bench",
                               "stopReason": "endTurn",
                               "content": {"type": "text", "text": "4"}})
                    })
                })
                .await?;
            let text = answer["content"][0]["text"].as_str().unwrap_or_default();
            if !asked || !text.contains('4') {
                return Err(format!("sampling asked: {asked}, answer {answer}"));
            }
            Ok(())
        })
        .await?;
        self.timed("subscribe", async {
            wire.call("resources/subscribe", json!({"uri": "test://static-text"}))
                .await
                .map(drop)
        })
        .await?;
        self.timed("cancel", async {
            let sleeping = wire
                .send(
                    "tools/call",
                    json!({"name": "sleep", "arguments": {"ms": 60_000}}),
                )
                .await?;
            wire.notify(
                "notifications/cancelled",
                json!({"requestId": sleeping, "reason": "bench"}),
            )
            .await?;
            let ping = wire.send("ping", json!({})).await?;
            let mut cancelled_answered = false;
            wire.answer_to(ping, |message| {
                if message["id"] == sleeping && message.get("method").is_none() {
                    cancelled_answered = true;
                }
                None
            })
            .await?;
            if cancelled_answered {
                return Err("the cancelled call was answered".into());
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

impl Wire {
    /// Sends request `method`; its id.
    async fn send(&mut self, method: &str, params: Value) -> Result<u64, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        self.write_line(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        Ok(id)
    }

    /// Sends request `method` and waits for its result.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        let id = self.send(method, params).await?;
        self.answer_to(id, |_| None).await
    }

    async fn notify(&mut self, method: &str, params: Value) -> Result<(), Failure> {
        self.write_line(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await
    }

    async fn write_line(&mut self, message: &Value) -> Result<(), Failure> {
        let mut text = message.to_string();
        text.push('\n');
        self.write
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads until the answer to `id` and returns its result (an error answer is a failure).
    /// Every other message goes to `other` first: a request from the node it answers with
    /// `Some(result)` is answered; one it does not is answered with -32601.
    async fn answer_to(
        &mut self,
        id: u64,
        mut other: impl FnMut(&Value) -> Option<Value>,
    ) -> Result<Value, Failure> {
        loop {
            self.line.clear();
            let read = self
                .lines
                .read_line(&mut self.line)
                .await
                .map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("the node closed the connection".into());
            }
            let message: Value = serde_json::from_str(&self.line)
                .map_err(|e| format!("not JSON from the node ({e}): {}", self.line.trim()))?;
            if message.get("method").is_none() && message["id"] == id {
                if let Some(error) = message.get("error") {
                    return Err(format!("error answer {error}"));
                }
                return Ok(message["result"].clone());
            }
            let reply = other(&message);
            if let (Some(request_id), true) = (message.get("id"), message.get("method").is_some()) {
                let answer = match reply {
                    Some(result) => json!({"jsonrpc": "2.0", "id": request_id, "result": result}),
                    None => json!({"jsonrpc": "2.0", "id": request_id,
                                   "error": {"code": -32601, "message": "not handled by the bench"}}),
                };
                self.write_line(&answer).await?;
            }
        }
    }
}
