//! Owns the typed handle of a dynamic (`simple_one_for_one`) supervisor.
//!
//! The supervisor actor keeps its child template type-erased; this handle restores the type, so
//! `start_child` only accepts the arguments the template was declared with.

use crate::error::SupervisorError;
use crate::supervisor::{ChildRef, SupervisorRef};
use crate::supervisor_spec::{ChildTemplate, SupervisorSpec};
use ractor::concurrency::JoinHandle;
use ractor::{ActorCell, ActorId};
use std::marker::PhantomData;

/// A dynamic supervisor whose children are started from arguments of type `A`.
#[derive(Debug)]
pub struct DynamicSupervisor<A> {
    inner: SupervisorRef,
    _args: PhantomData<fn(A)>,
}

impl<A> Clone for DynamicSupervisor<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _args: PhantomData,
        }
    }
}

impl<A: Clone + Send + Sync + 'static> DynamicSupervisor<A> {
    /// Starts a top-level dynamic supervisor from a template; `configure` sets name, intensity,
    /// max_children…
    pub async fn start(
        template: ChildTemplate<A>,
        configure: impl FnOnce(SupervisorSpec) -> SupervisorSpec,
    ) -> Result<(Self, JoinHandle<()>), SupervisorError> {
        let spec = configure(SupervisorSpec::simple_one_for_one(template));
        let (inner, handle) = SupervisorRef::start(spec).await?;
        Ok((Self::from_ref(inner), handle))
    }

    /// Types an existing supervisor handle. Calls fail with
    /// [`SupervisorError::WrongArgumentType`] if its template takes another type.
    pub fn from_ref(inner: SupervisorRef) -> Self {
        Self {
            inner,
            _args: PhantomData,
        }
    }

    /// Starts a child from the template; `Ok(None)` when it answered `Ignore` (nothing is kept).
    pub async fn start_child(&self, args: A) -> Result<Option<ActorCell>, SupervisorError> {
        self.inner.start_dynamic(Box::new(args)).await
    }

    /// Stops a child (by its actor) and removes it.
    pub async fn terminate_child(&self, child: ActorId) -> Result<(), SupervisorError> {
        self.inner.terminate_child(ChildRef::Actor(child)).await
    }

    /// The untyped handle (snapshots, counts, stop).
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.inner
    }
}
