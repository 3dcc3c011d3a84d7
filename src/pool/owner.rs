//! Owns a pool's lifecycle, as an actor: `erlmcp_pool_owner:NAME`, the one child of the pool's
//! supervisor `erlmcp_pool:NAME` (under `erlmcp_pool_sup`). It warms the pool when it starts,
//! replaces each crashed worker it is told of, and reaps overflow workers idle past
//! `overflow_idle`. Replacements are held to the restart intensity of `[supervision]`: one more
//! within the period and the owner fails, so its supervisor restarts it (and, past the
//! supervisor's own intensity, the failure climbs the tree), as OTP does with a worker that keeps
//! crashing. Borrowers never wait on this mailbox: they are told nothing by it.

use super::Pool;
use erlmcp_supervisors::{ChildSpec, Intensity, RestartWindow, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::{Duration, Instant};

/// The registered name of pool `pool`'s supervisor.
pub(crate) fn supervisor_name(pool: &str) -> String {
    format!("erlmcp_pool:{pool}")
}

/// The registered name of pool `pool`'s owner actor.
pub(crate) fn owner_name(pool: &str) -> String {
    format!("erlmcp_pool_owner:{pool}")
}

/// An owner's mailbox.
#[derive(Debug)]
pub(crate) enum OwnerMsg {
    /// A worker crashed: make workers until `size` are alive again.
    Replace,
    /// Remove overflow workers idle past `overflow_idle`.
    Reap,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for OwnerMsg {}

/// Asks pool `pool`'s owner to replace a crashed worker (nothing if it is not running: its next
/// start fills the pool).
pub(crate) fn ask_replacement(pool: &str) {
    if let Some(cell) = ractor::registry::where_is(owner_name(pool)) {
        let _ = cell.send_message(OwnerMsg::Replace);
    }
}

/// The owner actor of a pool of `W`.
pub(crate) struct PoolOwner<W>(std::marker::PhantomData<fn() -> W>);

/// The owner's state.
pub(crate) struct OwnerState<W: Send + 'static> {
    pool: Pool<W>,
    window: RestartWindow,
    reaper: Option<tokio::task::JoinHandle<()>>,
}

/// What an owner starts with.
pub(crate) struct OwnerArgs<W: Send + 'static> {
    /// The pool it owns.
    pub pool: Pool<W>,
    /// Replacements allowed within a period.
    pub intensity: Intensity,
}

impl<W: Send + 'static> Actor for PoolOwner<W> {
    type Msg = OwnerMsg;
    type State = OwnerState<W>;
    type Arguments = OwnerArgs<W>;

    async fn pre_start(
        &self,
        myself: ActorRef<OwnerMsg>,
        args: OwnerArgs<W>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let made = args.pool.shared().fill_to_size().await?;
        tracing::debug!(pool = %args.pool.name(), made, "pool warmed");
        let reaper = args.pool.shared().overflow_idle().map(|idle| {
            let tick = (idle / 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
            crate::ticker::every(myself.clone(), tick, || OwnerMsg::Reap)
        });
        Ok(OwnerState {
            pool: args.pool,
            window: RestartWindow::new(args.intensity),
            reaper,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<OwnerMsg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reaper) = state.reaper.take() {
            reaper.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<OwnerMsg>,
        msg: OwnerMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OwnerMsg::Replace => {
                if !state.window.record(Instant::now()) {
                    let limits = state.window.limits();
                    return Err(format!(
                        "pool `{}`: workers crashed more than {} times within {:?}",
                        state.pool.name(),
                        limits.max_restarts,
                        limits.period
                    )
                    .into());
                }
                state.pool.shared().fill_to_size().await?;
            }
            OwnerMsg::Reap => {
                let reaped = state.pool.shared().reap(Instant::now());
                if reaped > 0 {
                    tracing::debug!(pool = %state.pool.name(), reaped, "overflow workers reaped");
                }
            }
        }
        Ok(())
    }
}

/// The supervisor of `pool`: `erlmcp_pool:NAME`, one_for_one, with its owner as its one child.
pub(crate) fn pool_supervisor<W: Send + 'static>(
    pool: Pool<W>,
    intensity: (u32, Duration),
) -> ChildSpec {
    let sup_name = supervisor_name(pool.name());
    let owner = owner_name(pool.name());
    let limits = Intensity {
        max_restarts: intensity.0,
        period: intensity.1,
    };
    let spec = SupervisorSpec::one_for_one()
        .named(sup_name.clone())
        .intensity(intensity.0, intensity.1)
        .child(ChildSpec::named_actor(owner.clone(), owner, move || {
            (
                PoolOwner(std::marker::PhantomData),
                OwnerArgs {
                    pool: pool.clone(),
                    intensity: limits,
                },
            )
        }));
    ChildSpec::supervisor(sup_name, spec)
}
