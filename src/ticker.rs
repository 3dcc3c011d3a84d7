//! Owns the clock of actors that work periodically (the metrics collector, the plugin-directory
//! watcher): a task that casts a message to the actor every interval, skipping missed ticks,
//! until the actor is gone. The actor aborts it in `post_stop`.

use ractor::{ActorRef, Message};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Casts `tick()` to `actor` every `interval` (the first after one interval).
pub(crate) fn every<M: Message>(
    actor: ActorRef<M>,
    interval: Duration,
    tick: fn() -> M,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut clock = tokio::time::interval(interval);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        clock.tick().await;
        loop {
            clock.tick().await;
            if actor.cast(tick()).is_err() {
                return;
            }
        }
    })
}
