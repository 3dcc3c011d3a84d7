//! Owns the tool pool, `erlmcp_tool_pool`: where tools that block or burn CPU run, at most
//! `size + max_overflow` at once (`size` defaults to `pool_size`), instead of on unbounded
//! `spawn_blocking`. A worker is a slot: a permit to run one call on tokio's blocking threads.
//! The slot is held by the blocking call itself, so a caller that gives up (cancelled, timed
//! out) does not free it while the call still runs; a call that panics gives its slot back (the
//! slot did not die, the call did) and its caller an error. Callers beyond the bound wait in FIFO
//! order up to the pool's `checkout_timeout`, then get [`PoolError::Timeout`].

use super::{Pool, PoolError, WorkerError, WorkerFactory, named};
use crate::config::TOOL_POOL;

/// A slot of the tool pool.
#[derive(Debug)]
pub struct ToolSlot;

/// Makes tool slots (they cannot fail or die).
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolSlots;

impl WorkerFactory for ToolSlots {
    type Worker = ToolSlot;
    async fn create(&self) -> Result<ToolSlot, WorkerError> {
        Ok(ToolSlot)
    }
}

/// Runs `work` on a slot of the running node's tool pool, on a blocking thread.
pub async fn run_blocking<T, F>(work: F) -> Result<T, PoolError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let pool = named::pool::<ToolSlot>(TOOL_POOL)?;
    run_on(&pool, work).await
}

/// Runs `work` on a slot of `pool`, on a blocking thread.
pub async fn run_on<T, F>(pool: &Pool<ToolSlot>, work: F) -> Result<T, PoolError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = pool.checkout_owned().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| PoolError::Failed {
        pool: pool.name().to_owned(),
        reason: if e.is_panic() {
            "it panicked".to_owned()
        } else {
            e.to_string()
        },
    })
}
