//! Owns a task's actor (a temporary child of `erlmcp_task_sup`): the one writer of its record.
//! It runs the tool's handler in its own Tokio task, with a context whose requests to the client
//! become the task's input requests (`input_required`, answered through `tasks/update`, after
//! which the handler runs again with every answer so far, as a stateless retry does); it settles
//! the record on the handler's outcome, on `tasks/cancel`, and deletes it at its TTL.
//!
//! Outcomes: a result is `completed` (a tool's own error too, as `isError`); a panic, an unknown
//! tool, a missing client capability or a result over `tasks.max_result_size` is `failed` with a
//! JSON-RPC error. A graceful stop leaves the record as it is (the next start resumes it).

use super::{TaskRecord, TaskStatus, Tasks};
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::{CallToolResult, ClientCapabilities};
use crate::protocol::modern::{self, Envelope};
use crate::protocol::request_state::Subject;
use crate::protocol::revision::Revision;
use crate::registry::{Arguments, ToolError};
use crate::session::{InputRounds, RequestContext, SessionShared, StatelessRequest};
use erlmcp_supervisors::error::panic_message;
use erlmcp_supervisors::{ChildTemplate, Restart, Shutdown};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// What a task's actor starts with.
#[derive(Clone)]
pub(crate) struct TaskArgs {
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) id: String,
    /// The creator's session, told of status changes (`None` for a task resumed from the store).
    pub(crate) notify: Option<Outbound>,
}

/// A task's mailbox.
pub(crate) enum TaskMsg {
    /// Answers from `tasks/update`.
    Update(Map<String, Value>, RpcReplyPort<()>),
    /// `tasks/cancel`.
    Cancel(RpcReplyPort<()>),
    /// The handler's run number `.0` ended.
    Done(u64, Outcome),
    /// The TTL passed.
    Expire,
}

// Local only (the `cluster` feature of ractor wants every message to say so).
impl ractor::Message for TaskMsg {}

/// How one run of the handler ended.
pub(crate) struct Outcome {
    result: Result<Result<CallToolResult, ToolError>, String>,
    /// What it asked the client and was not answered.
    requested: Vec<(String, Value)>,
    /// A capability it needed that the client did not declare.
    missing: Option<&'static str>,
}

pub(crate) struct TaskActor;

pub(crate) struct TaskState {
    tasks: Arc<Tasks>,
    record: TaskRecord,
    run: Option<tokio::task::JoinHandle<()>>,
    /// The number of the current run (an outcome of an earlier one is ignored).
    generation: u64,
    /// Where its status notifications go (its creator's session), and the status last told.
    notify: Option<Outbound>,
    told: TaskStatus,
}

/// The child template of `erlmcp_task_sup`: temporary tasks, stopped at once on shutdown.
pub(crate) fn task_template() -> ChildTemplate<TaskArgs> {
    ChildTemplate::actor("task", |args: TaskArgs| (TaskActor, args))
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
}

fn rpc_error(code: i32, message: String, data: Option<Value>) -> Value {
    let mut error = RpcError::new(code, message);
    error.data = data;
    serde_json::to_value(&error).unwrap_or(Value::Null)
}

impl TaskState {
    /// Writes the record with its new state (a failed write is logged: the actor goes on with
    /// what it holds).
    /// The write waits for its change-log record (and fsync, with `store.fsync = "always"`) on
    /// the blocking pool, not on the actor's worker thread.
    async fn save(&mut self) {
        self.record.updated_ms = crate::clock::wall_ms();
        let (tasks, record) = (Arc::clone(&self.tasks), self.record.clone());
        match tokio::task::spawn_blocking(move || tasks.write(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(task = %self.record.id, error = %e, "task record not written")
            }
            Err(e) => {
                tracing::warn!(task = %self.record.id, error = %e, "task record write did not run")
            }
        }
        self.tell();
    }

    /// `notifications/tasks` to the creator's session when the status changed: the task as
    /// `tasks/get` shows it (its result or error inlined once it ended), without `resultType`.
    fn tell(&mut self) {
        let Some(notify) = &self.notify else {
            return;
        };
        if self.told == self.record.status && self.record.status != TaskStatus::InputRequired {
            return;
        }
        self.told = self.record.status;
        let mut params = serde_json::to_value(self.record.detailed()).unwrap_or_default();
        if let Some(params) = params.as_object_mut() {
            params.remove("resultType");
        }
        if !notify.send(crate::protocol::jsonrpc::encode_notification(
            "notifications/tasks",
            &params,
        )) {
            // The session is gone: nobody to tell any more.
            self.notify = None;
        }
    }

    fn stop_run(&mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
        }
    }

    /// Runs the handler (again) with every answer so far.
    async fn start_run(&mut self, myself: &ActorRef<TaskMsg>) {
        self.stop_run();
        self.generation += 1;
        let generation = self.generation;
        let record = &self.record;
        let snapshot = self.tasks.registry.snapshot();
        let Some(entry) = snapshot.tools.get(&record.tool).cloned() else {
            self.fail(rpc_error(
                crate::protocol::jsonrpc::INVALID_PARAMS,
                format!("unknown tool: {}", record.tool),
                None,
            ))
            .await;
            return;
        };
        let capabilities: ClientCapabilities =
            serde_json::from_value(record.capabilities.clone()).unwrap_or_default();
        let arguments = record
            .arguments
            .as_ref()
            .and_then(|a| serde_json::value::to_raw_value(a).ok());
        let stateless = Arc::new(StatelessRequest {
            envelope: Envelope {
                revision: Revision::V2026_07_28,
                capabilities,
                log_level: None,
                input_responses: record
                    .answers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                request_state: None,
                subject: Subject {
                    method: "tools/call".into(),
                    name: Some(record.tool.clone()),
                    arguments: arguments.clone(),
                },
            },
            rounds: InputRounds::default(),
            state_received: None,
            state_kept: std::sync::Mutex::default(),
            missing_capability: std::sync::Mutex::default(),
        });
        // Nothing reads what the handler sends on its own (logs, progress): no stream.
        let (sink, _) = Outbound::channel();
        let shared = SessionShared::new("task", sink.clone(), self.tasks.client_request_timeout);
        let ctx =
            RequestContext::new(shared, None, sink).with_stateless(Some(Arc::clone(&stateless)));
        let me = myself.clone();
        self.run = Some(tokio::spawn(async move {
            let args = Arguments::new(arguments);
            let result = match std::panic::catch_unwind(AssertUnwindSafe(|| {
                entry.handler.call(ctx, args)
            })) {
                Ok(call) => AssertUnwindSafe(call)
                    .catch_unwind()
                    .await
                    .map_err(|panic| panic_message(&*panic)),
                Err(panic) => Err(panic_message(&*panic)),
            };
            let outcome = Outcome {
                result,
                requested: stateless.rounds.requested(),
                missing: *crate::locks::lock(&stateless.missing_capability),
            };
            let _ = me.cast(TaskMsg::Done(generation, outcome));
        }));
    }

    async fn fail(&mut self, error: Value) {
        self.record.status = TaskStatus::Failed;
        self.record.error = Some(error);
        self.record.result = None;
        self.record.input_requests.clear();
        self.save().await;
    }

    async fn settle(&mut self, outcome: Outcome) {
        self.run = None;
        let tool = self.record.tool.clone();
        if let Some(capability) = outcome.missing {
            let error = rpc_error(
                modern::MISSING_REQUIRED_CLIENT_CAPABILITY,
                format!("tool `{tool}` needs the client's `{capability}` capability"),
                Some(serde_json::json!({ "requiredCapabilities": { capability: {} } })),
            );
            return self.fail(error).await;
        }
        if !outcome.requested.is_empty() {
            self.record.status = TaskStatus::InputRequired;
            self.record.input_requests = outcome.requested.into_iter().collect();
            return self.save().await;
        }
        let result = match outcome.result {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => CallToolResult::error(error.0),
            Err(why) => {
                tracing::error!(task = %self.record.id, tool = %tool, panic = %why, "task handler panicked");
                let error = rpc_error(
                    crate::protocol::jsonrpc::INTERNAL_ERROR,
                    format!("tool `{tool}` failed: it panicked ({why})"),
                    None,
                );
                return self.fail(error).await;
            }
        };
        let encoded = serde_json::to_string(&result).unwrap_or_default();
        let max = self.tasks.settings.max_result_size;
        if encoded.len() > max {
            let error = rpc_error(
                crate::protocol::jsonrpc::INTERNAL_ERROR,
                format!(
                    "tool `{tool}`'s result is {} bytes, over tasks.max_result_size ({max})",
                    encoded.len()
                ),
                None,
            );
            return self.fail(error).await;
        }
        match serde_json::from_str(&encoded) {
            Ok(value) => {
                self.record.status = TaskStatus::Completed;
                self.record.result = Some(value);
                self.record.input_requests.clear();
                self.save().await;
            }
            Err(e) => {
                self.fail(rpc_error(
                    crate::protocol::jsonrpc::INTERNAL_ERROR,
                    format!("tool `{tool}`'s result is not JSON: {e}"),
                    None,
                ))
                .await
            }
        }
    }
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = TaskArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TaskMsg>,
        args: TaskArgs,
    ) -> Result<TaskState, ActorProcessingErr> {
        let record = args
            .tasks
            .record(&args.id)
            .ok_or_else(|| format!("task {} has no record", args.id))?;
        args.tasks.register(&args.id, myself.clone());
        let expires_in = record
            .created_ms
            .saturating_add(record.ttl_ms)
            .saturating_sub(crate::clock::wall_ms());
        myself.send_after(Duration::from_millis(expires_in), || TaskMsg::Expire);
        let notify = args.notify;
        let told = record.status;
        let mut state = TaskState {
            tasks: args.tasks,
            record,
            run: None,
            generation: 0,
            notify,
            told,
        };
        if state.record.status == TaskStatus::Working {
            state.start_run(&myself).await;
        }
        tracing::debug!(task = %state.record.id, tool = %state.record.tool, "task started");
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<TaskMsg>,
        message: TaskMsg,
        state: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TaskMsg::Done(generation, outcome) => {
                if generation == state.generation && !state.record.status.is_terminal() {
                    state.settle(outcome).await;
                }
            }
            TaskMsg::Update(answers, reply) => {
                if state.record.status == TaskStatus::InputRequired {
                    let mut taken = false;
                    for (key, answer) in answers {
                        // Only what the task waits for, and only result objects.
                        if answer.is_object() && state.record.input_requests.remove(&key).is_some()
                        {
                            state.record.answers.insert(key, answer);
                            taken = true;
                        }
                    }
                    if state.record.input_requests.is_empty() {
                        state.record.status = TaskStatus::Working;
                        state.save().await;
                        state.start_run(&myself).await;
                    } else if taken {
                        state.save().await;
                    }
                }
                let _ = reply.send(());
            }
            TaskMsg::Cancel(reply) => {
                if !state.record.status.is_terminal() {
                    state.stop_run();
                    state.record.status = TaskStatus::Cancelled;
                    state.record.input_requests.clear();
                    state.save().await;
                }
                let _ = reply.send(());
            }
            TaskMsg::Expire => {
                state.stop_run();
                state.tasks.delete(&state.record.id);
                tracing::debug!(task = %state.record.id, "task expired");
                myself.stop(None);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TaskMsg>,
        state: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_run();
        state.tasks.unregister(&state.record.id);
        Ok(())
    }
}
