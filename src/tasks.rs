//! Owns the tasks extension's tasks (`io.modelcontextprotocol/tasks`, SEP-2663): creating one
//! (its record durably in the state store's `tasks` table first, then its actor under
//! `erlmcp_task_sup`), reading it (`tasks/get` reads the table, no mailbox), handing it answers
//! (`tasks/update`) and cancelling it (`tasks/cancel`) through its actor, the owner check on
//! every one of these, the caps, and, at start, an actor again for every task the store kept.
//!
//! A task's record is written by its actor alone (`tasks/actor.rs`); the record is the truth a
//! restart restores: a task that was running is run again from the start (handlers must not have
//! side effects before their first client request, as for input rounds), one waiting for input
//! waits again, an ended one is kept until its TTL.

pub(crate) mod actor;
pub(crate) mod record;

use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::registry::RegistryHandle;
use crate::store::{Store, StoreError, Table};
use crate::tree_names::TASK_SUP;
use actor::{TaskArgs, TaskMsg};
use arc_swap::ArcSwapOption;
use ractor::ActorRef;
pub(crate) use record::{TaskRecord, TaskStatus};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store table of task records.
pub(crate) const TASKS_TABLE: &str = "tasks";

/// The caps of the tasks extension (`[tasks]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskSettings {
    pub(crate) max_tasks: usize,
    pub(crate) ttl: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) max_result_size: usize,
}

impl TaskSettings {
    /// The settings of `config`.
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        Self {
            max_tasks: config.tasks.max_tasks,
            ttl: Duration::from_millis(config.tasks.ttl),
            poll_interval: Duration::from_millis(config.tasks.poll_interval),
            max_result_size: config.tasks.max_result_size,
        }
    }
}

/// Why a task request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// No such task for this principal (or it expired): never says which.
    #[error("unknown task: {0}")]
    Unknown(String),
    /// `tasks.max_tasks` are kept already.
    #[error("too many tasks: {0} are kept already (tasks.max_tasks)")]
    Full(usize),
    /// The record could not be written: the task was not created (or not changed).
    #[error("the task could not be stored: {0}")]
    Store(#[from] StoreError),
    /// The task's actor is not running (the tree is stopping, or it could not start).
    #[error("the task is not running: {0}")]
    NotRunning(String),
}

impl From<TaskError> for RpcError {
    fn from(error: TaskError) -> Self {
        let code = match &error {
            TaskError::Unknown(_) => jsonrpc::INVALID_PARAMS,
            TaskError::Full(_) => -32000,
            TaskError::Store(_) | TaskError::NotRunning(_) => jsonrpc::INTERNAL_ERROR,
        };
        RpcError::new(code, error.to_string())
    }
}

/// What a new task runs.
#[derive(Debug)]
pub(crate) struct NewTask {
    pub(crate) owner: String,
    pub(crate) tool: String,
    pub(crate) arguments: Option<Value>,
    pub(crate) capabilities: Value,
    pub(crate) answers: Map<String, Value>,
    /// Where its status notifications go (its session's connection or stream); `None` for a
    /// stateless creator.
    pub(crate) notify: Option<Outbound>,
}

/// One line of `erlmcp remote tasks`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskSummary {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) tool: String,
    pub(crate) status: &'static str,
    /// Seconds since it was created.
    pub(crate) age_seconds: u64,
    /// Seconds until its TTL ends.
    pub(crate) expires_in_seconds: u64,
    /// Whether its actor runs on this node now.
    pub(crate) actor: bool,
}

/// Refused creations (the cap), logged at most once a second.
static REFUSED: LogLimiter = LogLimiter::per_second();

/// Requests for a task from a principal other than its creator, logged at most once a second.
static FOREIGN: LogLimiter = LogLimiter::per_second();

/// The node's tasks.
pub(crate) struct Tasks {
    store: Arc<Store>,
    table: Arc<Table>,
    pub(crate) registry: RegistryHandle,
    pub(crate) settings: TaskSettings,
    /// How long a task's handler waits for the client (unused by tasks, whose input goes
    /// through `tasks/update`, but a context needs one).
    pub(crate) client_request_timeout: Duration,
    /// The actor of each task that has one now, by id.
    live: Mutex<HashMap<String, ActorRef<TaskMsg>>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("kept", &self.table.len())
            .finish()
    }
}

/// The node's tasks while a tree runs, found without a mailbox.
static CURRENT: ArcSwapOption<Tasks> = ArcSwapOption::const_empty();

/// The tasks of the running tree, if one runs.
pub(crate) fn current() -> Option<Arc<Tasks>> {
    CURRENT.load_full()
}

/// Makes `tasks` the node's (at the tree's start).
pub(crate) fn install(tasks: Arc<Tasks>) {
    CURRENT.store(Some(tasks));
}

/// Forgets the node's tasks (at the tree's stop).
pub(crate) fn uninstall() {
    CURRENT.store(None);
}

/// 128 random bits as hex: a task id nobody can guess. Clustered, drawn until the ring gives it
/// to this node, so that a request for it through any node is forwarded here (docs/cluster.md).
fn new_id() -> Result<String, TaskError> {
    crate::cluster::owned_key(|| {
        crate::common::random_hex(16)
            .map_err(|e| TaskError::NotRunning(format!("no randomness: {e}")))
    })
}

impl Tasks {
    /// The tasks kept in `store` (its table bounded by `settings.max_tasks`).
    pub(crate) fn new(
        store: Arc<Store>,
        registry: RegistryHandle,
        settings: TaskSettings,
        client_request_timeout: Duration,
    ) -> Arc<Self> {
        let table = store.table(TASKS_TABLE);
        table.bound(settings.max_tasks);
        Arc::new(Self {
            store,
            table,
            registry,
            settings,
            client_request_timeout,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// The record of `id`, as the table holds it.
    pub(crate) fn record(&self, id: &str) -> Option<TaskRecord> {
        let bytes = self.table.get(id)?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(task = id, error = %e, "unreadable task record ignored");
                None
            }
        }
    }

    /// Whether this node keeps task `id` (expired or not, whoever created it).
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.table.contains(id)
    }

    /// Writes `record` (logged, and fsynced per `store.fsync`, before this returns).
    pub(crate) fn write(&self, record: &TaskRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.store.put(TASKS_TABLE, &record.id, bytes)
    }

    /// Deletes the record of `id`.
    pub(crate) fn delete(&self, id: &str) {
        if let Err(e) = self.store.delete(TASKS_TABLE, id) {
            tracing::warn!(task = id, error = %e, "task record not deleted");
        }
    }

    pub(crate) fn register(&self, id: &str, actor: ActorRef<TaskMsg>) {
        lock(&self.live).insert(id.to_owned(), actor);
    }

    pub(crate) fn unregister(&self, id: &str) {
        lock(&self.live).remove(id);
    }

    fn actor_of(&self, id: &str) -> Option<ActorRef<TaskMsg>> {
        lock(&self.live).get(id).cloned()
    }

    /// Creates a task: its record is in the store, and its actor started, before this returns
    /// (so a `tasks/get` right after the answer finds it).
    pub(crate) async fn create(self: &Arc<Self>, new: NewTask) -> Result<TaskRecord, TaskError> {
        if self.table.len() >= self.settings.max_tasks {
            if let Some(held) = REFUSED.allow() {
                tracing::warn!(
                    max_tasks = self.settings.max_tasks,
                    refused_since_last_line = held,
                    "task refused: tasks.max_tasks reached"
                );
            }
            return Err(TaskError::Full(self.settings.max_tasks));
        }
        let now = crate::clock::wall_ms();
        let record = TaskRecord {
            id: new_id()?,
            owner: new.owner,
            tool: new.tool,
            arguments: new.arguments,
            capabilities: new.capabilities,
            answers: new.answers,
            status: TaskStatus::Working,
            status_message: None,
            created_ms: now,
            updated_ms: now,
            ttl_ms: self.settings.ttl.as_millis() as u64,
            poll_interval_ms: self.settings.poll_interval.as_millis() as u64,
            result: None,
            error: None,
            input_requests: Map::new(),
        };
        // The put waits for its change-log record (and fsync, with `store.fsync = "always"`):
        // on the blocking pool, not on the request's worker.
        let tasks = Arc::clone(self);
        let kept = record.clone();
        let max = self.settings.max_tasks;
        tokio::task::spawn_blocking(move || tasks.write(&kept))
            .await
            .map_err(|e| TaskError::NotRunning(format!("the store write did not run: {e}")))?
            .map_err(|e| match e {
                // Creations racing past the count above meet the table's bound.
                StoreError::Full { .. } => TaskError::Full(max),
                other => TaskError::Store(other),
            })?;
        let started = self.start_actor(&record.id, new.notify).await;
        if let Err(e) = started {
            self.delete(&record.id);
            return Err(e);
        }
        Ok(record)
    }

    /// Starts task `id`'s actor, telling `notify` of its status changes (the creator's session;
    /// kept in its arguments, so a restarted actor tells it too).
    async fn start_actor(
        self: &Arc<Self>,
        id: &str,
        notify: Option<Outbound>,
    ) -> Result<(), TaskError> {
        let sup = erlmcp_supervisors::SupervisorRef::whereis(TASK_SUP)
            .ok_or_else(|| TaskError::NotRunning(format!("{TASK_SUP} is not running")))?;
        let tasks = erlmcp_supervisors::DynamicSupervisor::<TaskArgs>::from_ref(sup);
        let args = TaskArgs {
            tasks: Arc::clone(self),
            id: id.to_owned(),
            notify,
        };
        match tasks.start_child(args).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(TaskError::NotRunning("the supervisor ignored it".into())),
            Err(e) => Err(TaskError::NotRunning(e.to_string())),
        }
    }

    /// The record of `id` if `owner` created it and it has not expired.
    pub(crate) fn get(&self, owner: &str, id: &str) -> Result<TaskRecord, TaskError> {
        match self.record(id) {
            Some(record) if record.expired(crate::clock::wall_ms()) => {}
            Some(record) if record.owner == owner => return Ok(record),
            Some(record) => {
                // Answered as an unknown id; the operator hears of it (bounded).
                if let Some(held) = FOREIGN.allow() {
                    tracing::warn!(
                        principal = owner,
                        owner = %record.owner,
                        tool = %record.tool,
                        refused_since_last_line = held,
                        "task request from another principal refused"
                    );
                }
            }
            None => {}
        }
        Err(TaskError::Unknown(id.to_owned()))
    }

    /// Hands `answers` to task `id` (its actor keeps those it waits for).
    pub(crate) async fn update(
        &self,
        owner: &str,
        id: &str,
        answers: Map<String, Value>,
    ) -> Result<(), TaskError> {
        let record = self.get(owner, id)?;
        if record.status != TaskStatus::InputRequired {
            return Ok(());
        }
        self.ask(id, |reply| TaskMsg::Update(answers, reply)).await
    }

    /// Cancels task `id`; one that has ended is left as it is (the same empty answer).
    pub(crate) async fn cancel(&self, owner: &str, id: &str) -> Result<(), TaskError> {
        let record = self.get(owner, id)?;
        if record.status.is_terminal() {
            return Ok(());
        }
        self.ask(id, TaskMsg::Cancel).await
    }

    async fn ask(
        &self,
        id: &str,
        msg: impl FnOnce(ractor::RpcReplyPort<()>) -> TaskMsg,
    ) -> Result<(), TaskError> {
        let actor = self
            .actor_of(id)
            .ok_or_else(|| TaskError::NotRunning(format!("task {id} has no actor")))?;
        match actor.call(msg, Some(Duration::from_secs(10))).await {
            Ok(ractor::rpc::CallResult::Success(())) => Ok(()),
            _ => Err(TaskError::NotRunning(format!("task {id} did not answer"))),
        }
    }

    /// At the tree's start: deletes the expired records and starts an actor for every other one.
    pub(crate) async fn resume(self: &Arc<Self>) -> usize {
        let now = crate::clock::wall_ms();
        let mut ids = Vec::new();
        self.table.scan(|id, _| ids.push(id.to_owned()));
        let mut resumed = 0;
        for id in ids {
            match self.record(&id) {
                Some(record) if !record.expired(now) => match self.start_actor(&id, None).await {
                    Ok(()) => resumed += 1,
                    Err(e) => tracing::warn!(task = %id, error = %e, "task not resumed"),
                },
                _ => self.delete(&id),
            }
        }
        if resumed > 0 {
            tracing::info!(tasks = resumed, "tasks resumed from the store");
        }
        resumed
    }

    /// Every task kept, oldest first (`erlmcp remote tasks`).
    pub(crate) fn summaries(&self) -> Vec<TaskSummary> {
        let now = crate::clock::wall_ms();
        let live = lock(&self.live);
        let mut all = Vec::new();
        self.table.scan(|id, bytes| {
            if let Ok(record) = serde_json::from_slice::<TaskRecord>(bytes) {
                all.push((
                    record.created_ms,
                    TaskSummary {
                        actor: live.contains_key(id),
                        id: record.id,
                        owner: record.owner,
                        tool: record.tool,
                        status: record.status.as_str(),
                        age_seconds: now.saturating_sub(record.created_ms) / 1000,
                        expires_in_seconds: (record.created_ms + record.ttl_ms).saturating_sub(now)
                            / 1000,
                    },
                ));
            }
        });
        drop(live);
        all.sort_by_key(|(created, _)| *created);
        all.into_iter().map(|(_, summary)| summary).collect()
    }
}
