//! Owns the child specification: how a supervisor starts, restarts and stops one child.
//!
//! The fields mirror OTP's `child_spec()`: `id`, `start`, `restart`, `shutdown`, `type`
//! (here [`ChildKind`]) and `significant`. A start function is async, is handed the supervisor's
//! [`ActorCell`] (the child must be linked to it — [`ChildSpec::actor`] does that for you) and
//! returns the started actor or [`StartOutcome::Ignore`].

use crate::supervisor::SupervisorRef;
use crate::supervisor_spec::SupervisorSpec;
use ractor::{Actor, ActorCell};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The error a start function may return; its whole `source()` chain is reported.
pub type StartError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a start function returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<StartOutcome, StartError>> + Send>>;

/// A start function, shared between the spec and every restart.
pub type StartFn = Arc<dyn Fn(StartContext) -> StartFuture + Send + Sync>;

/// What a start function is given.
#[derive(Debug, Clone)]
pub struct StartContext {
    /// The supervisor; the started actor must be linked to it (`spawn_linked(.., supervisor)`).
    pub supervisor: ActorCell,
    /// The id of the child being started.
    pub child_id: String,
}

/// What a start function returns on success.
#[derive(Debug)]
pub enum StartOutcome {
    /// The child runs as this actor.
    Started(ActorCell),
    /// Start nothing but keep the spec (OTP's `ignore`).
    Ignore,
}

/// When a child is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit (not after `normal` or `shutdown`).
    Transient,
    /// Never restarted; removed from the child list when it exits or is terminated.
    Temporary,
}

/// How a child is stopped by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once; its `post_stop` does not run.
    BrutalKill,
    /// Asked to stop (its `post_stop` runs); killed if it has not stopped when the time is up.
    Timeout(Duration),
    /// Asked to stop and waited for without limit (the default for supervisors).
    Infinity,
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BrutalKill => f.write_str("brutal_kill"),
            Self::Timeout(d) => write!(f, "{}ms", d.as_millis()),
            Self::Infinity => f.write_str("infinity"),
        }
    }
}

/// Whether a child is a worker or a supervisor (decides the default shutdown and whether the
/// tree snapshot descends into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// An ordinary actor. Default shutdown: 5000 ms.
    Worker,
    /// A [`crate::Supervisor`]. Default shutdown: infinity.
    Supervisor,
}

impl ChildKind {
    /// OTP's default shutdown for this kind of child.
    pub fn default_shutdown(self) -> Shutdown {
        match self {
            Self::Worker => Shutdown::Timeout(Duration::from_millis(5000)),
            Self::Supervisor => Shutdown::Infinity,
        }
    }
}

/// How to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Option<Shutdown>,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown_policy())
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A child started by an arbitrary async function. Permanent, default shutdown for `kind`.
    pub fn new<F, Fut>(id: impl Into<String>, kind: ChildKind, start: F) -> Self
    where
        F: Fn(StartContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StartOutcome, StartError>> + Send + 'static,
    {
        Self {
            id: id.into(),
            start: Arc::new(move |ctx| Box::pin(start(ctx))),
            restart: Restart::Permanent,
            shutdown: None,
            kind,
            significant: false,
        }
    }

    /// A worker started by an arbitrary async function.
    pub fn worker<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(StartContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StartOutcome, StartError>> + Send + 'static,
    {
        Self::new(id, ChildKind::Worker, start)
    }

    /// A worker that is a ractor actor, spawned linked to the supervisor. `make` is called on
    /// every (re)start for a fresh actor value and arguments.
    pub fn actor<A, F>(id: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        Self::spawn_actor(id, None, make)
    }

    /// Like [`ChildSpec::actor`], registered in ractor's registry under `name`.
    pub fn named_actor<A, F>(id: impl Into<String>, name: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        Self::spawn_actor(id, Some(name.into()), make)
    }

    fn spawn_actor<A, F>(id: impl Into<String>, name: Option<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        Self::worker(id, move |ctx: StartContext| {
            let make = Arc::clone(&make);
            let name = name.clone();
            async move {
                let (actor, args) = make();
                let (actor_ref, _) = A::spawn_linked(name, actor, args, ctx.supervisor).await?;
                Ok(StartOutcome::Started(actor_ref.get_cell()))
            }
        })
    }

    /// A child that is itself a supervisor, started from `spec` (again on every restart).
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        Self::new(id, ChildKind::Supervisor, move |ctx: StartContext| {
            let spec = spec.clone();
            async move {
                let sup = SupervisorRef::start_linked(spec, ctx.supervisor).await?;
                Ok(StartOutcome::Started(sup.cell()))
            }
        })
    }

    /// Sets the restart type.
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy (otherwise the kind's default).
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Marks the child significant for the supervisor's auto-shutdown.
    #[must_use]
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The child's kind.
    pub fn kind(&self) -> ChildKind {
        self.kind
    }

    /// The child's restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// The effective shutdown policy.
    pub fn shutdown_policy(&self) -> Shutdown {
        self.shutdown
            .unwrap_or_else(|| self.kind.default_shutdown())
    }

    /// Whether the child is significant.
    pub fn is_significant(&self) -> bool {
        self.significant
    }
}
