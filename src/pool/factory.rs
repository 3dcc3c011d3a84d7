//! Owns how a pool gets its workers: the [`WorkerFactory`] trait an owner of resources implements
//! (make one, check one is alive, decide whether a returned one may be lent again), and its
//! object-safe form the pool holds.

use std::future::Future;
use std::pin::Pin;

/// A factory's boxed creation, borrowing the factory.
pub(crate) type Creation<'a, W> = Pin<Box<dyn Future<Output = Result<W, WorkerError>> + Send + 'a>>;

/// Why a factory could not make a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkerError(pub String);

impl WorkerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Makes, checks and recycles the workers of a pool.
pub trait WorkerFactory: Send + Sync + 'static {
    /// The worker a borrower gets.
    type Worker: Send + 'static;

    /// Makes a worker (at start, on demand for overflow, and to replace a crashed one).
    fn create(&self) -> impl Future<Output = Result<Self::Worker, WorkerError>> + Send;

    /// Whether `worker` is alive, asked before it is lent when the pool's `health_check` is on;
    /// a worker that fails is dropped and replaced, and the checkout takes another. It runs on
    /// the checkout path: keep it cheap (a flag, a thread's liveness), not a round trip.
    fn is_healthy(&self, _worker: &mut Self::Worker) -> bool {
        true
    }

    /// Whether a worker given back may be lent again (reset its state here); false drops and
    /// replaces it.
    fn recycle(&self, _worker: &mut Self::Worker) -> bool {
        true
    }
}

/// [`WorkerFactory`] as the pool holds it (its `create` boxed).
pub(crate) trait DynFactory<W>: Send + Sync {
    fn create(&self) -> Creation<'_, W>;
    fn is_healthy(&self, worker: &mut W) -> bool;
    fn recycle(&self, worker: &mut W) -> bool;
}

impl<F: WorkerFactory> DynFactory<F::Worker> for F {
    fn create(&self) -> Creation<'_, F::Worker> {
        Box::pin(WorkerFactory::create(self))
    }

    fn is_healthy(&self, worker: &mut F::Worker) -> bool {
        WorkerFactory::is_healthy(self, worker)
    }

    fn recycle(&self, worker: &mut F::Worker) -> bool {
        WorkerFactory::recycle(self, worker)
    }
}
