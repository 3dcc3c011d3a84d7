//! Owns a supervisor's specification: strategy, restart intensity, auto-shutdown, the static
//! child list, and — for `simple_one_for_one` — the child template.

use crate::child_spec::{
    ChildKind, ChildSpec, Restart, Shutdown, StartContext, StartError, StartFuture, StartOutcome,
};
use crate::error::SupervisorError;
use crate::intensity::Intensity;
use ractor::Actor;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Which children are restarted when one of them must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// All children: the others are stopped (reverse order), then all are started (list order).
    OneForAll,
    /// The child that exited and the ones started after it.
    RestForOne,
    /// A dynamic supervisor: one template, children added at run time, each restarted alone.
    SimpleOneForOne,
}

impl Strategy {
    /// The OTP name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneForOne => "one_for_one",
            Self::OneForAll => "one_for_all",
            Self::RestForOne => "rest_for_one",
            Self::SimpleOneForOne => "simple_one_for_one",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a supervisor stops by itself because significant children exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoShutdown {
    /// Never; significant children are refused.
    #[default]
    Never,
    /// As soon as any significant child exits and is not restarted.
    AnySignificant,
    /// Once every significant child has exited and none is restarted.
    AllSignificant,
}

/// Builds one dynamic child's spec from type-erased arguments and the child's id.
type BuildChild =
    dyn Fn(Box<dyn Any + Send>, String) -> Result<ChildSpec, SupervisorError> + Send + Sync;

/// A type-erased child template; built by [`ChildTemplate`].
#[derive(Clone)]
pub(crate) struct ErasedTemplate {
    pub(crate) id: String,
    pub(crate) shutdown: Shutdown,
    pub(crate) build: Arc<BuildChild>,
}

/// The one child template of a `simple_one_for_one` supervisor, taking arguments of type `A`
/// (OTP's "extra args"). The same arguments are used again when the child is restarted.
pub struct ChildTemplate<A> {
    id: String,
    kind: ChildKind,
    restart: Restart,
    shutdown: Option<Shutdown>,
    start: Arc<dyn Fn(StartContext, A) -> StartFuture + Send + Sync>,
}

impl<A: Clone + Send + Sync + 'static> ChildTemplate<A> {
    /// A template started by an arbitrary async function of the context and the arguments.
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(StartContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StartOutcome, StartError>> + Send + 'static,
    {
        Self {
            id: id.into(),
            kind: ChildKind::Worker,
            restart: Restart::Permanent,
            shutdown: None,
            start: Arc::new(move |ctx, args| Box::pin(start(ctx, args))),
        }
    }

    /// A template whose children are ractor actors made from the arguments, spawned linked.
    pub fn actor<Act, F>(id: impl Into<String>, make: F) -> Self
    where
        Act: Actor,
        F: Fn(A) -> (Act, Act::Arguments) + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        Self::new(id, move |ctx: StartContext, args: A| {
            let make = Arc::clone(&make);
            async move {
                let (actor, actor_args) = make(args);
                let (actor_ref, _) =
                    Act::spawn_linked(None, actor, actor_args, ctx.supervisor).await?;
                Ok(StartOutcome::Started(actor_ref.get_cell()))
            }
        })
    }

    /// Sets the restart type of every child.
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy of every child (all are stopped in parallel under it).
    #[must_use]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Declares the children to be supervisors.
    #[must_use]
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn erase(self) -> ErasedTemplate {
        let shutdown = self
            .shutdown
            .unwrap_or_else(|| self.kind.default_shutdown());
        let (kind, restart, start) = (self.kind, self.restart, self.start);
        ErasedTemplate {
            id: self.id,
            shutdown,
            build: Arc::new(move |args, child_id| {
                let args: A =
                    *args
                        .downcast::<A>()
                        .map_err(|_| SupervisorError::WrongArgumentType {
                            expected: std::any::type_name::<A>(),
                        })?;
                let start = Arc::clone(&start);
                Ok(
                    ChildSpec::new(child_id, kind, move |ctx| start(ctx, args.clone()))
                        .restart(restart)
                        .shutdown(shutdown),
                )
            }),
        }
    }
}

/// Everything a supervisor is started from. Cloned for every restart of a supervisor child.
#[derive(Clone)]
pub struct SupervisorSpec {
    pub(crate) name: Option<String>,
    pub(crate) strategy: Strategy,
    pub(crate) intensity: Intensity,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) template: Option<ErasedTemplate>,
    pub(crate) max_children: Option<usize>,
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("auto_shutdown", &self.auto_shutdown)
            .field("children", &self.children)
            .field("max_children", &self.max_children)
            .finish_non_exhaustive()
    }
}

impl SupervisorSpec {
    fn with_strategy(strategy: Strategy) -> Self {
        Self {
            name: None,
            strategy,
            intensity: Intensity::default(),
            auto_shutdown: AutoShutdown::Never,
            children: Vec::new(),
            template: None,
            max_children: None,
        }
    }

    /// A `one_for_one` supervisor with OTP's default intensity (1 restart in 5 s).
    pub fn one_for_one() -> Self {
        Self::with_strategy(Strategy::OneForOne)
    }

    /// A `one_for_all` supervisor.
    pub fn one_for_all() -> Self {
        Self::with_strategy(Strategy::OneForAll)
    }

    /// A `rest_for_one` supervisor.
    pub fn rest_for_one() -> Self {
        Self::with_strategy(Strategy::RestForOne)
    }

    /// A dynamic (`simple_one_for_one`) supervisor whose children all come from `template`.
    pub fn simple_one_for_one<A: Clone + Send + Sync + 'static>(
        template: ChildTemplate<A>,
    ) -> Self {
        let mut spec = Self::with_strategy(Strategy::SimpleOneForOne);
        spec.template = Some(template.erase());
        spec
    }

    /// Registers the supervisor in ractor's registry under `name`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// At most `max_restarts` restarts within `period`.
    #[must_use]
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }

    /// Sets the auto-shutdown policy.
    #[must_use]
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// Appends a child (started in list order).
    #[must_use]
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Caps the number of children of a dynamic supervisor.
    #[must_use]
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// The registered name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Checks the rules a spec must keep before anything is started.
    pub(crate) fn validate(&self) -> Result<(), SupervisorError> {
        let mut seen = std::collections::HashSet::new();
        for child in &self.children {
            validate_child(child, self.auto_shutdown)?;
            if !seen.insert(child.id.as_str()) {
                return Err(SupervisorError::InvalidSpec(format!(
                    "duplicate child id `{}`",
                    child.id
                )));
            }
        }
        match (self.strategy, &self.template) {
            (Strategy::SimpleOneForOne, None) => Err(SupervisorError::InvalidSpec(
                "simple_one_for_one needs a child template".into(),
            )),
            (Strategy::SimpleOneForOne, Some(_)) if !self.children.is_empty() => Err(
                SupervisorError::InvalidSpec("simple_one_for_one takes no static children".into()),
            ),
            (s, Some(_)) if s != Strategy::SimpleOneForOne => Err(SupervisorError::InvalidSpec(
                format!("a child template needs simple_one_for_one, not {s}"),
            )),
            _ => Ok(()),
        }
    }
}

/// OTP's rules for significant children: never permanent, and only under an auto-shutdown policy.
pub(crate) fn validate_child(child: &ChildSpec, auto: AutoShutdown) -> Result<(), SupervisorError> {
    if child.significant {
        if child.restart == Restart::Permanent {
            return Err(SupervisorError::InvalidSpec(format!(
                "child `{}`: a permanent child cannot be significant",
                child.id
            )));
        }
        if auto == AutoShutdown::Never {
            return Err(SupervisorError::InvalidSpec(format!(
                "child `{}`: significant children need auto_shutdown other than never",
                child.id
            )));
        }
    }
    Ok(())
}
