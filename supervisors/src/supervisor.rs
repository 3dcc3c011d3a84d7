//! Owns the supervisor actor and its handle: starting children, reacting to their exits under the
//! strategy and restart intensity, and stopping them in order.
//!
//! The rules this module keeps (each is pinned by a test in `supervisors/tests/`, named after it,
//! and stated again in `docs/supervision.md`):
//!
//! 1. **Start.** Children start one at a time in list order. If one fails to start, the ones
//!    already started are stopped in reverse order and the supervisor fails to start with
//!    [`SupervisorError::FailedToStartChild`]. A start function answering `Ignore` keeps the spec
//!    and starts nothing.
//! 2. **Restart types.** `permanent` children are always restarted; `transient` ones only after an
//!    abnormal exit (anything but `normal`/`shutdown`); `temporary` ones never, and they leave the
//!    child list when they exit or are terminated — also when a sibling's restart under
//!    `one_for_all`/`rest_for_one` stops them.
//! 3. **Strategies.** `one_for_one` restarts the child alone. `one_for_all` stops every other
//!    running child (reverse order) and starts them all again (list order). `rest_for_one` does
//!    that for the children after the one that exited. `simple_one_for_one` is `one_for_one` over
//!    children made from one template at run time.
//! 4. **Intensity.** Each restart is recorded; more than `max_restarts` within `period` makes the
//!    supervisor stop all its children (reverse order) and exit with reason `shutdown`, so its own
//!    supervisor applies *its* strategy (escalation). A restart whose start fails is retried through
//!    the supervisor's mailbox and every retry counts toward the intensity.
//! 5. **Auto-shutdown.** With `any_significant`, a significant child that exits and is not
//!    restarted stops the supervisor (reason `shutdown`); with `all_significant`, that happens once
//!    no significant child is left running. Significant children must be transient or temporary.
//! 6. **Stop.** On a graceful stop the supervisor stops its children in reverse start order, one
//!    at a time, each under its own shutdown policy, so every child's `post_stop` runs (ractor
//!    would otherwise kill them without it). A dynamic supervisor stops all its children in
//!    parallel under one timer.
//! 7. **Visibility.** Every restart emits a `tracing` event (supervisor, child, reason, restarts in
//!    the window) and increments the counters shown by [`SupervisorRef::snapshot`].
//!
//! This module never panics on a child's behalf: a start function that panics is a failed start.

use crate::child_spec::{ChildKind, ChildSpec, Restart, StartContext, StartOutcome};
use crate::error::{SupervisorError, error_chain, panic_message};
use crate::exit_reason::{ExitReason, SHUTDOWN};
use crate::intensity::RestartWindow;
use crate::shutdown::{stop_child, stop_children_in_parallel};
use crate::snapshot::{ChildSnapshot, ChildState, SupervisorSnapshot};
use crate::supervisor_spec::{
    AutoShutdown, ErasedTemplate, Strategy, SupervisorSpec, validate_child,
};
use futures::FutureExt;
use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// The supervisor actor. Start it with [`SupervisorRef::start`] or as a child with
/// [`ChildSpec::supervisor`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Supervisor;

/// How to name a child in `terminate_child`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildRef {
    /// By spec id (static supervisors).
    Id(String),
    /// By the running actor (any supervisor; the only way for dynamic children).
    Actor(ActorId),
}

impl From<&str> for ChildRef {
    fn from(id: &str) -> Self {
        Self::Id(id.to_owned())
    }
}

impl From<String> for ChildRef {
    fn from(id: String) -> Self {
        Self::Id(id)
    }
}

impl From<ActorId> for ChildRef {
    fn from(id: ActorId) -> Self {
        Self::Actor(id)
    }
}

/// One entry of `which_children`.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Spec id.
    pub id: String,
    /// The running actor, if any.
    pub actor: Option<ActorCell>,
    /// Worker or supervisor.
    pub kind: ChildKind,
}

/// The answer of `count_children`, as OTP's `count_children/1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs held.
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Specs of kind supervisor.
    pub supervisors: usize,
    /// Specs of kind worker.
    pub workers: usize,
}

type Reply<T> = RpcReplyPort<Result<T, SupervisorError>>;

/// The supervisor's mailbox. Use [`SupervisorRef`] rather than sending these by hand.
pub enum SupervisorMsg {
    /// Add and start a child (static strategies).
    StartChild(ChildSpec, Reply<Option<ActorCell>>),
    /// Start a child from the template with these (type-erased) arguments.
    StartDynamicChild(Box<dyn Any + Send>, Reply<Option<ActorCell>>),
    /// Stop a child under its shutdown policy; the spec stays unless temporary or dynamic.
    TerminateChild(ChildRef, Reply<()>),
    /// Start a terminated child again.
    RestartChild(String, Reply<Option<ActorCell>>),
    /// Remove a terminated child's spec.
    DeleteChild(String, Reply<()>),
    /// List the children.
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// Count the children.
    CountChildren(RpcReplyPort<ChildCounts>),
    /// This supervisor's snapshot, plus the running supervisor children to descend into.
    Report(RpcReplyPort<(SupervisorSnapshot, Vec<(usize, ActorCell)>)>),
    /// Internal: a restart whose start failed is tried again.
    RetryRestart(u64),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for SupervisorMsg {}

/// One child slot.
struct Child {
    spec: ChildSpec,
    actor: Option<ActorCell>,
    /// When the running actor started.
    started_at: Option<std::time::Instant>,
    ignored: bool,
    restarts: u64,
    last_exit: Option<ExitReason>,
    /// Restarts of it that failed in a row (their retries wait longer each time).
    failed_restarts: u32,
}

/// The first pause before a failed restart is tried again; it doubles with each failure in a
/// row, up to [`MAX_RETRY_PAUSE`]. A killed child's own children are killed by ractor after
/// the child is reported gone, and their registered names are freed only as each one ends: a
/// restart at once could find a name still taken and, retried in a tight loop, spend the whole
/// restart intensity in a millisecond.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause before a failed restart is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The supervisor's state.
pub struct SupervisorState {
    /// The supervisor itself, which children are linked to.
    cell: ActorCell,
    label: String,
    strategy: Strategy,
    auto_shutdown: AutoShutdown,
    window: RestartWindow,
    template: Option<ErasedTemplate>,
    max_children: Option<usize>,
    /// Children keyed by a start-order sequence number.
    children: BTreeMap<u64, Child>,
    by_actor: HashMap<ActorId, u64>,
    next_key: u64,
    restarts_total: u64,
    shutting_down: bool,
}

impl SupervisorState {
    fn insert(&mut self, spec: ChildSpec) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.children.insert(
            key,
            Child {
                spec,
                actor: None,
                started_at: None,
                ignored: false,
                restarts: 0,
                last_exit: None,
                failed_restarts: 0,
            },
        );
        key
    }

    fn key_of_id(&self, id: &str) -> Option<u64> {
        self.children
            .iter()
            .find_map(|(key, child)| (child.spec.id == id).then_some(*key))
    }

    fn key_of(&self, who: &ChildRef) -> Option<u64> {
        match who {
            ChildRef::Id(id) => self.key_of_id(id),
            ChildRef::Actor(actor) => self.by_actor.get(actor).copied(),
        }
    }

    fn is_dynamic(&self) -> bool {
        self.strategy == Strategy::SimpleOneForOne
    }

    fn wrong_strategy(&self, operation: &'static str) -> SupervisorError {
        SupervisorError::WrongStrategy {
            strategy: self.strategy.as_str(),
            operation,
        }
    }

    /// Runs the start function of child `key`; records the actor on success.
    async fn start_one(&mut self, key: u64) -> Result<Option<ActorCell>, SupervisorError> {
        let Some(child) = self.children.get(&key) else {
            return Err(SupervisorError::NotFound(format!("#{key}")));
        };
        let id = child.spec.id.clone();
        let start = child.spec.start.clone();
        let ctx = StartContext {
            supervisor: self.cell.clone(),
            child_id: id.clone(),
        };
        let outcome = AssertUnwindSafe(start(ctx)).catch_unwind().await;
        let started = match outcome {
            Ok(Ok(StartOutcome::Started(cell))) => Some(cell),
            Ok(Ok(StartOutcome::Ignore)) => None,
            Ok(Err(err)) => {
                return Err(SupervisorError::FailedToStartChild {
                    id,
                    reason: error_chain(err.as_ref()),
                });
            }
            Err(panic) => {
                return Err(SupervisorError::FailedToStartChild {
                    id,
                    reason: format!("start function panicked: {}", panic_message(&*panic)),
                });
            }
        };
        if let Some(cell) = &started {
            let linked_here = cell
                .try_get_supervisor()
                .is_some_and(|sup| sup.get_id() == self.cell.get_id());
            if !linked_here {
                cell.link(self.cell.clone());
            }
            self.by_actor.insert(cell.get_id(), key);
        }
        if let Some(child) = self.children.get_mut(&key) {
            child.ignored = started.is_none();
            child.actor.clone_from(&started);
            child.started_at = started.as_ref().map(|_| std::time::Instant::now());
        }
        Ok(started)
    }

    /// Stops child `key` if it runs; forgets its actor first so its exit event is ignored.
    async fn stop_one(&mut self, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        let policy = child.spec.shutdown_policy();
        if let Some(cell) = child.actor.take() {
            self.by_actor.remove(&cell.get_id());
            stop_child(&cell, policy).await;
            tracing::debug!(supervisor = %self.label, child = %child.spec.id, "child stopped");
        }
    }

    /// Stops the running children among `keys`, last first; temporary ones leave the list.
    async fn stop_in_reverse(&mut self, keys: &[u64]) {
        for key in keys.iter().rev() {
            self.stop_one(*key).await;
            if self
                .children
                .get(key)
                .is_some_and(|c| c.spec.restart == Restart::Temporary)
            {
                self.children.remove(key);
            }
        }
    }

    /// Stops every child: reverse start order one at a time, or all at once when dynamic.
    async fn stop_all(&mut self) {
        if self.is_dynamic() {
            let policy = self
                .template
                .as_ref()
                .map_or(ChildKind::Worker.default_shutdown(), |t| t.shutdown);
            let cells: Vec<ActorCell> = self
                .children
                .values_mut()
                .filter_map(|c| c.actor.take())
                .collect();
            self.by_actor.clear();
            stop_children_in_parallel(cells, policy).await;
        } else {
            let keys: Vec<u64> = self.children.keys().copied().collect();
            for key in keys.into_iter().rev() {
                self.stop_one(key).await;
            }
        }
    }

    fn significant_running(&self) -> bool {
        self.children
            .values()
            .any(|c| c.spec.significant && c.actor.is_some())
    }
}

impl SupervisorState {
    fn new(spec: &SupervisorSpec, cell: ActorCell) -> Self {
        let label = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("supervisor {}", cell.get_id()));
        Self {
            label,
            strategy: spec.strategy,
            auto_shutdown: spec.auto_shutdown,
            window: RestartWindow::new(spec.intensity),
            template: spec.template.clone(),
            max_children: spec.max_children,
            children: BTreeMap::new(),
            by_actor: HashMap::new(),
            next_key: 0,
            restarts_total: 0,
            shutting_down: false,
            cell,
        }
    }
}

impl Supervisor {
    /// Gives up: logs why and stops itself with reason `shutdown`; `post_stop` then stops the
    /// children in reverse order.
    fn shut_down(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, why: &str) {
        if state.shutting_down {
            return;
        }
        state.shutting_down = true;
        tracing::error!(supervisor = %state.label, reason = why, "supervisor shutting down");
        myself.stop(Some(SHUTDOWN.into()));
    }

    async fn child_exited(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        key: u64,
        reason: ExitReason,
    ) {
        let Some(child) = state.children.get_mut(&key) else {
            return;
        };
        child.actor = None;
        child.last_exit = Some(reason.clone());
        let id = child.spec.id.clone();
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if reason.is_abnormal() {
            tracing::error!(supervisor = %state.label, child = %id, reason = %reason, "child exited abnormally");
        } else if child.spec.restart == Restart::Temporary {
            // A temporary child ending as it should (a closed or hibernating connection, a
            // finished task) is routine: at info, a node with many clients would log a line
            // for each (OTP's supervisors report errors only).
            tracing::debug!(supervisor = %state.label, child = %id, reason = %reason, "child exited");
        } else {
            tracing::info!(supervisor = %state.label, child = %id, reason = %reason, "child exited");
        }
        if !restart {
            let significant = child.spec.significant;
            if child.spec.restart == Restart::Temporary || state.is_dynamic() {
                state.children.remove(&key);
            }
            if significant {
                let stop = match state.auto_shutdown {
                    AutoShutdown::Never => false,
                    AutoShutdown::AnySignificant => true,
                    AutoShutdown::AllSignificant => !state.significant_running(),
                };
                if stop {
                    Self::shut_down(myself, state, "auto_shutdown: significant child exited");
                }
            }
            return;
        }
        // A killed supervisor's children are killed by ractor after it is reported gone, each
        // freeing its registered name as it ends: a pause lets them go before their names are
        // taken again (a restart that still finds one taken is retried, see FIRST_RETRY_PAUSE).
        if reason == ExitReason::Killed
            && state
                .children
                .get(&key)
                .is_some_and(|child| child.spec.kind == ChildKind::Supervisor)
        {
            tokio::time::sleep(FIRST_RETRY_PAUSE).await;
        }
        Self::restart(myself, state, key, &reason.to_string()).await;
    }

    /// Records a restart against the intensity and restarts under the strategy.
    async fn restart(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        key: u64,
        reason: &str,
    ) {
        let now = Instant::now();
        if !state.window.record(now) {
            let limits = state.window.limits();
            let why = format!(
                "reached_max_restart_intensity ({} in {} ms)",
                limits.max_restarts,
                limits.period.as_millis()
            );
            Self::shut_down(myself, state, &why);
            return;
        }
        state.restarts_total += 1;
        let in_window = state.window.in_window(now);
        let id = state
            .children
            .get(&key)
            .map(|c| c.spec.id.clone())
            .unwrap_or_default();
        tracing::warn!(
            supervisor = %state.label,
            child = %id,
            reason,
            restarts_in_window = in_window,
            restarts_total = state.restarts_total,
            "restarting child"
        );
        let group: Vec<u64> = match state.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => vec![key],
            Strategy::OneForAll => state.children.keys().copied().collect(),
            Strategy::RestForOne => state.children.range(key..).map(|(k, _)| *k).collect(),
        };
        // Stop the rest of the group (reverse order); temporary ones leave the list.
        let others: Vec<u64> = group.iter().copied().filter(|k| *k != key).collect();
        state.stop_in_reverse(&others).await;
        let group: Vec<u64> = group
            .into_iter()
            .filter(|k| state.children.contains_key(k))
            .collect();
        let mut started = Vec::new();
        for k in &group {
            match state.start_one(*k).await {
                Ok(_) => {
                    if let Some(child) = state.children.get_mut(k) {
                        child.restarts += 1;
                        child.failed_restarts = 0;
                    }
                    started.push(*k);
                }
                Err(err) => {
                    let failed = state.children.get_mut(&key).map_or(0, |child| {
                        child.failed_restarts = child.failed_restarts.saturating_add(1);
                        child.failed_restarts
                    });
                    let pause = FIRST_RETRY_PAUSE
                        .saturating_mul(1 << (failed.saturating_sub(1)).min(16))
                        .min(MAX_RETRY_PAUSE);
                    tracing::error!(supervisor = %state.label, error = %err, retry_in = ?pause, "restart failed; will retry");
                    state.stop_in_reverse(&started).await;
                    // The timer's task is left to run (it holds no more than a reference: a
                    // supervisor stopped first just does not get the message).
                    drop(myself.send_after(pause, move || SupervisorMsg::RetryRestart(key)));
                    return;
                }
            }
        }
    }

    async fn start_static_child(
        state: &mut SupervisorState,
        spec: ChildSpec,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        if state.is_dynamic() {
            return Err(state.wrong_strategy("start_child(spec)"));
        }
        validate_child(&spec, state.auto_shutdown)?;
        if state.key_of_id(&spec.id).is_some() {
            return Err(SupervisorError::AlreadyPresent(spec.id));
        }
        let key = state.insert(spec);
        let result = state.start_one(key).await;
        if result.is_err() {
            state.children.remove(&key);
        }
        result
    }

    async fn start_dynamic_child(
        state: &mut SupervisorState,
        args: Box<dyn Any + Send>,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let Some(template) = state.template.clone() else {
            return Err(state.wrong_strategy("start_child(args)"));
        };
        if let Some(max) = state.max_children
            && state.children.len() >= max
        {
            return Err(SupervisorError::MaxChildren(max));
        }
        let child_id = format!("{}#{}", template.id, state.next_key);
        let spec = (template.build)(args, child_id)?;
        let key = state.insert(spec);
        let result = state.start_one(key).await;
        if !matches!(result, Ok(Some(_))) {
            // OTP: a dynamic child that is ignored or fails to start is not kept.
            state.children.remove(&key);
        }
        result
    }

    async fn terminate(state: &mut SupervisorState, who: ChildRef) -> Result<(), SupervisorError> {
        let key = state
            .key_of(&who)
            .ok_or_else(|| SupervisorError::NotFound(format!("{who:?}")))?;
        state.stop_one(key).await;
        let remove = state.is_dynamic()
            || state
                .children
                .get(&key)
                .is_some_and(|c| c.spec.restart == Restart::Temporary);
        if remove {
            state.children.remove(&key);
        } else if let Some(child) = state.children.get_mut(&key) {
            child.last_exit = Some(ExitReason::Shutdown(None));
        }
        Ok(())
    }

    async fn restart_child(
        state: &mut SupervisorState,
        id: String,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        if state.is_dynamic() {
            return Err(state.wrong_strategy("restart_child"));
        }
        let key = state
            .key_of_id(&id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        if state.children.get(&key).is_some_and(|c| c.actor.is_some()) {
            return Err(SupervisorError::Running(id));
        }
        state.start_one(key).await
    }

    fn delete_child(state: &mut SupervisorState, id: String) -> Result<(), SupervisorError> {
        if state.is_dynamic() {
            return Err(state.wrong_strategy("delete_child"));
        }
        let key = state
            .key_of_id(&id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        if state.children.get(&key).is_some_and(|c| c.actor.is_some()) {
            return Err(SupervisorError::Running(id));
        }
        state.children.remove(&key);
        Ok(())
    }

    fn report(state: &mut SupervisorState) -> (SupervisorSnapshot, Vec<(usize, ActorCell)>) {
        let limits = state.window.limits();
        let mut descend = Vec::new();
        let children = state
            .children
            .values()
            .enumerate()
            .map(|(index, child)| {
                if child.spec.kind == ChildKind::Supervisor
                    && let Some(cell) = &child.actor
                {
                    descend.push((index, cell.clone()));
                }
                ChildSnapshot {
                    id: child.spec.id.clone(),
                    kind: child.spec.kind,
                    restart: child.spec.restart,
                    shutdown: child.spec.shutdown_policy().to_string(),
                    significant: child.spec.significant,
                    state: match (&child.actor, child.ignored) {
                        (Some(_), _) => ChildState::Running,
                        (None, true) => ChildState::Ignored,
                        (None, false) => ChildState::Terminated,
                    },
                    actor_id: child.actor.as_ref().map(|c| c.get_id().to_string()),
                    uptime_ms: child
                        .actor
                        .as_ref()
                        .and(child.started_at)
                        .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
                    restarts: child.restarts,
                    last_exit: child.last_exit.as_ref().map(ToString::to_string),
                    supervisor: None,
                }
            })
            .collect();
        let snapshot = SupervisorSnapshot {
            name: state.label.clone(),
            actor_id: state.cell.get_id().to_string(),
            strategy: state.strategy,
            max_restarts: limits.max_restarts,
            period_ms: limits.period.as_millis() as u64,
            auto_shutdown: state.auto_shutdown,
            restarts_total: state.restarts_total,
            restarts_in_window: state.window.in_window(Instant::now()),
            children,
        };
        (snapshot, descend)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        spec: SupervisorSpec,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        spec.validate()?;
        let mut state = SupervisorState::new(&spec, myself.get_cell());
        for child in spec.children {
            let key = state.insert(child);
            if let Err(err) = state.start_one(key).await {
                tracing::error!(supervisor = %state.label, error = %err, "child failed to start; stopping the ones started");
                state.stop_all().await;
                return Err(Box::new(err));
            }
        }
        tracing::info!(
            supervisor = %state.label,
            strategy = %state.strategy,
            children = state.children.len(),
            "supervisor started"
        );
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        tracing::info!(supervisor = %state.label, "supervisor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartChild(spec, reply) => {
                let _ = reply.send(Self::start_static_child(state, spec).await);
            }
            SupervisorMsg::StartDynamicChild(args, reply) => {
                let _ = reply.send(Self::start_dynamic_child(state, args).await);
            }
            SupervisorMsg::TerminateChild(who, reply) => {
                let _ = reply.send(Self::terminate(state, who).await);
            }
            SupervisorMsg::RestartChild(id, reply) => {
                let _ = reply.send(Self::restart_child(state, id).await);
            }
            SupervisorMsg::DeleteChild(id, reply) => {
                let _ = reply.send(Self::delete_child(state, id));
            }
            SupervisorMsg::WhichChildren(reply) => {
                let children = state
                    .children
                    .values()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        actor: c.actor.clone(),
                        kind: c.spec.kind,
                    })
                    .collect();
                let _ = reply.send(children);
            }
            SupervisorMsg::CountChildren(reply) => {
                let mut counts = ChildCounts::default();
                for child in state.children.values() {
                    counts.specs += 1;
                    counts.active += usize::from(child.actor.is_some());
                    match child.spec.kind {
                        ChildKind::Supervisor => counts.supervisors += 1,
                        ChildKind::Worker => counts.workers += 1,
                    }
                }
                let _ = reply.send(counts);
            }
            SupervisorMsg::Report(reply) => {
                let _ = reply.send(Self::report(state));
            }
            SupervisorMsg::RetryRestart(key) => {
                let waiting = state.children.get(&key).is_some_and(|c| c.actor.is_none());
                if waiting && !state.shutting_down {
                    Self::restart(&myself, state, key, "retrying a failed restart").await;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (Some(cell), Some(reason)) = (event.actor_cell(), ExitReason::from_event(&event))
        else {
            return Ok(());
        };
        // Unknown actors are children this supervisor already stopped (or replaced): ignore.
        let Some(key) = state.by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        if !state.shutting_down {
            Self::child_exited(&myself, state, key, reason).await;
        }
        Ok(())
    }
}

/// A handle on a running supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMsg>,
}

impl SupervisorRef {
    /// Starts a top-level supervisor. The join handle completes when it has stopped.
    pub async fn start(spec: SupervisorSpec) -> Result<(Self, JoinHandle<()>), SupervisorError> {
        let name = spec.name.clone();
        let (actor, handle) = Actor::spawn(name, Supervisor, spec)
            .await
            .map_err(spawn_error)?;
        Ok((Self { actor }, handle))
    }

    /// Starts a supervisor linked to (supervised by) `parent`.
    pub async fn start_linked(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<Self, SupervisorError> {
        let name = spec.name.clone();
        let (actor, _) = Actor::spawn_linked(name, Supervisor, spec, parent)
            .await
            .map_err(spawn_error)?;
        Ok(Self { actor })
    }

    /// Finds a supervisor registered under `name`.
    pub fn whereis(name: &str) -> Option<Self> {
        let cell = ractor::registry::where_is(name)?;
        Self::from_cell(cell)
    }

    /// Wraps a cell if it is a supervisor.
    pub fn from_cell(cell: ActorCell) -> Option<Self> {
        (cell.is_message_type_of::<SupervisorMsg>() == Some(true))
            .then(|| Self { actor: cell.into() })
    }

    /// The underlying actor.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    /// The underlying cell.
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, SupervisorError> {
        match self.actor.call(msg, None).await {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(CallResult::Timeout) => Err(SupervisorError::Unreachable("call timed out".into())),
            Ok(CallResult::SenderError) => Err(SupervisorError::Unreachable(
                "the supervisor stopped before answering".into(),
            )),
            Err(err) => Err(SupervisorError::Unreachable(err.to_string())),
        }
    }

    /// Adds `spec` and starts it; `Ok(None)` when its start function answered `Ignore`.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<ActorCell>, SupervisorError> {
        self.ask(|r| SupervisorMsg::StartChild(spec, r)).await?
    }

    pub(crate) async fn start_dynamic(
        &self,
        args: Box<dyn Any + Send>,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        self.ask(|r| SupervisorMsg::StartDynamicChild(args, r))
            .await?
    }

    /// Stops a child under its shutdown policy. Its spec stays (unless temporary or dynamic).
    pub async fn terminate_child(&self, who: impl Into<ChildRef>) -> Result<(), SupervisorError> {
        let who = who.into();
        self.ask(|r| SupervisorMsg::TerminateChild(who, r)).await?
    }

    /// Starts a terminated child again.
    pub async fn restart_child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        let id = id.to_owned();
        self.ask(|r| SupervisorMsg::RestartChild(id, r)).await?
    }

    /// Removes a terminated child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.ask(|r| SupervisorMsg::DeleteChild(id, r)).await?
    }

    /// The children, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.ask(SupervisorMsg::WhichChildren).await
    }

    /// Counts of specs, running children, supervisors and workers.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.ask(SupervisorMsg::CountChildren).await
    }

    /// A snapshot of this supervisor and, recursively, every running supervisor below it.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, SupervisorError> {
        let (mut snapshot, descend) = self.ask(SupervisorMsg::Report).await?;
        for (index, cell) in descend {
            let Some(child_sup) = Self::from_cell(cell) else {
                continue;
            };
            // A child supervisor that stops while we walk is shown without its subtree.
            if let Ok(sub) = Box::pin(child_sup.snapshot()).await
                && let Some(slot) = snapshot.children.get_mut(index)
            {
                slot.supervisor = Some(Box::new(sub));
            }
        }
        Ok(snapshot)
    }

    /// Stops the supervisor gracefully (children in reverse order) and waits, at most `timeout`.
    pub async fn stop(&self, timeout: Option<Duration>) -> Result<(), SupervisorError> {
        self.actor
            .stop_and_wait(Some(SHUTDOWN.into()), timeout)
            .await
            .map_err(|e| SupervisorError::Unreachable(e.to_string()))
    }
}

fn spawn_error(err: SpawnErr) -> SupervisorError {
    match err {
        SpawnErr::StartupFailed(inner) => match inner.downcast::<SupervisorError>() {
            Ok(sup_err) => *sup_err,
            Err(other) => SupervisorError::Spawn(error_chain(other.as_ref())),
        },
        other => SupervisorError::Spawn(other.to_string()),
    }
}
