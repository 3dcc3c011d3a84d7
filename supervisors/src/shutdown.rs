//! Owns how a supervisor stops a child under its shutdown policy, one at a time or all at once.
//!
//! - `brutal_kill`: ractor `kill` (the child's `post_stop` does not run), waited for.
//! - `timeout(d)`: ractor `stop("shutdown")` (its `post_stop` runs), waited for at most `d`,
//!   then killed.
//! - `infinity`: `stop("shutdown")`, waited for without limit.
//!
//! A dynamic supervisor stops all its children in parallel under *one* timer: every child is asked
//! to stop at once, and whichever has not stopped when the shared deadline passes is killed.

use crate::child_spec::Shutdown;
use crate::exit_reason::SHUTDOWN;
use ractor::{ActorCell, RactorErr};
use std::time::Duration;

/// Stops one child under `policy` and returns once it has stopped.
pub(crate) async fn stop_child(cell: &ActorCell, policy: Shutdown) {
    match policy {
        Shutdown::BrutalKill => kill(cell).await,
        Shutdown::Timeout(limit) => {
            match cell.stop_and_wait(Some(SHUTDOWN.into()), Some(limit)).await {
                Ok(()) => {}
                Err(RactorErr::Timeout) => {
                    tracing::warn!(
                        actor = %cell.get_id(),
                        timeout_ms = limit.as_millis() as u64,
                        "child did not stop within its shutdown timeout; killing it"
                    );
                    kill(cell).await;
                }
                // Already stopping or stopped: wait for the end of its post_stop, bounded.
                Err(_) => {
                    if cell.wait(Some(limit)).await.is_err() {
                        kill(cell).await;
                    }
                }
            }
        }
        Shutdown::Infinity => {
            if cell
                .stop_and_wait(Some(SHUTDOWN.into()), None)
                .await
                .is_err()
            {
                let _ = cell.wait(None).await;
            }
        }
    }
}

/// Stops all `cells` in parallel: one shared deadline for `timeout(d)`.
pub(crate) async fn stop_children_in_parallel(cells: Vec<ActorCell>, policy: Shutdown) {
    futures::future::join_all(cells.iter().map(|cell| stop_child(cell, policy))).await;
}

async fn kill(cell: &ActorCell) {
    // A kill cancels whatever the child is doing, so this wait is short; the bound only guards
    // against an actor that is already gone.
    let _ = cell.kill_and_wait(Some(Duration::from_secs(5))).await;
}
