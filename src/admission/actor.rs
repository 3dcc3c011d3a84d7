//! Owns the admission point's lifecycle: the worker `erlmcp_admission` samples the node's
//! resident memory for the memory guard every [`MEMORY_CHECK_INTERVAL`] (when `memory_limit` is
//! set), logs the guard's changes of state, and logs shedding at a bounded rate (one line per
//! [`SHED_LOG_INTERVAL`] at most, with the count since the last line). Requests never wait on it:
//! they read the admission point's atomics directly. A restart of this worker loses nothing: the
//! counters live in the shared [`Admission`].

use super::Admission;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the memory guard reads the node's resident memory.
pub(crate) const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Shedding is logged at most this often.
pub(crate) const SHED_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The admission worker.
pub(crate) struct AdmissionWorker;

/// Its mailbox.
#[derive(Debug)]
pub(crate) enum AdmissionMsg {
    /// Sample memory; log what changed.
    Tick,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for AdmissionMsg {}

/// Its state.
pub(crate) struct AdmissionState {
    admission: Arc<Admission>,
    ticker: tokio::task::JoinHandle<()>,
    shed_logged: u64,
    last_log: Option<Instant>,
}

impl Actor for AdmissionWorker {
    type Msg = AdmissionMsg;
    type State = AdmissionState;
    type Arguments = Arc<Admission>;

    async fn pre_start(
        &self,
        myself: ActorRef<AdmissionMsg>,
        admission: Arc<Admission>,
    ) -> Result<AdmissionState, ActorProcessingErr> {
        let memory = admission.memory();
        // Without the memory guard, ticks only pace the shedding log.
        let period = if memory.enabled() {
            MEMORY_CHECK_INTERVAL
        } else {
            SHED_LOG_INTERVAL
        };
        let ticker = crate::ticker::every(myself, period, || AdmissionMsg::Tick);
        if memory.enabled() {
            tracing::info!(
                limit_bytes = memory.limit(),
                clear_below_bytes = memory.clear_below(),
                "memory guard on"
            );
        }
        Ok(AdmissionState {
            shed_logged: admission.shed_total(),
            admission,
            ticker,
            last_log: None,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AdmissionMsg>,
        state: &mut AdmissionState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<AdmissionMsg>,
        AdmissionMsg::Tick: AdmissionMsg,
        state: &mut AdmissionState,
    ) -> Result<(), ActorProcessingErr> {
        let admission = &state.admission;
        let memory = admission.memory();
        if memory.enabled() {
            let rss = crate::metrics::collector::rss_bytes();
            match memory.observe(rss) {
                Some(true) => {
                    tracing::warn!(
                        rss_bytes = rss,
                        limit_bytes = memory.limit(),
                        "memory over the limit: shedding new sessions and new work"
                    );
                    // The result cache gives memory back too (docs/cache.md).
                    crate::cache::shrink_on_memory_pressure();
                }
                Some(false) => tracing::info!(
                    rss_bytes = rss,
                    clear_below_bytes = memory.clear_below(),
                    "memory back below the clear line: taking work again"
                ),
                None => {}
            }
        }
        let shed = admission.shed_total();
        let due = state
            .last_log
            .is_none_or(|at| at.elapsed() >= SHED_LOG_INTERVAL);
        if shed > state.shed_logged && due {
            tracing::warn!(
                shed_since_last_line = shed - state.shed_logged,
                in_progress = admission.in_progress(),
                capacity = admission.capacity(),
                memory_over = memory.over(),
                "requests shed: the node is overloaded"
            );
            state.shed_logged = shed;
            state.last_log = Some(Instant::now());
        }
        Ok(())
    }
}
