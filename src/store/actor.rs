//! Owns the store's lifecycle: the worker `erlmcp_store` writes a snapshot every
//! `store.snapshot_interval` (when something changed) and a last one when it stops (a graceful
//! stop: it is the first child of `erlmcp_core_sup`, so it stops after the transports, whose
//! sessions' final state is then in the store). Reads and writes of the tables never wait on it.
//! A restart of this worker loses nothing: the tables live in the shared [`Store`].

use super::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

/// The store's worker.
pub(crate) struct StoreOwner;

/// Its mailbox.
#[derive(Debug)]
pub(crate) enum StoreMsg {
    /// Write a snapshot if anything changed.
    Tick,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for StoreMsg {}

/// Its state.
pub(crate) struct StoreOwnerState {
    store: Arc<Store>,
    ticker: tokio::task::JoinHandle<()>,
}

/// Writes a snapshot off the async threads, logging a failure (the next tick tries again).
async fn snapshot(store: &Arc<Store>) {
    let store = Arc::clone(store);
    let written = tokio::task::spawn_blocking(move || store.snapshot()).await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "store snapshot not written"),
        Err(e) => tracing::error!(error = %e, "store snapshot task failed"),
    }
}

impl Actor for StoreOwner {
    type Msg = StoreMsg;
    type State = StoreOwnerState;
    type Arguments = Arc<Store>;

    async fn pre_start(
        &self,
        myself: ActorRef<StoreMsg>,
        store: Arc<Store>,
    ) -> Result<StoreOwnerState, ActorProcessingErr> {
        let ticker = crate::ticker::every(myself, store.snapshot_interval(), || StoreMsg::Tick);
        Ok(StoreOwnerState { store, ticker })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<StoreMsg>,
        state: &mut StoreOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        snapshot(&state.store).await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<StoreMsg>,
        message: StoreMsg,
        state: &mut StoreOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMsg::Tick => snapshot(&state.store).await,
        }
        Ok(())
    }
}
