//! Owns the cache's actors: `erlmcp_cache_sup` (one_for_one) and one actor per tier under it —
//! `erlmcp_cache_l1` (applies lazy invalidations, purges expired entries; the memory guard's
//! shrink request is a direct call, [`super::shrink_on_memory_pressure`]), `erlmcp_cache_l2`
//! ([`super::clustered::L2Actor`]: in a cluster, answers the other members' gets, puts and
//! removals from this node's share of L2 and sends this node's; idle on one node) and `erlmcp_cache_l3` (commits queued writes every `flush_interval`, warms L1
//! once after `warmup_delay`, purges expired entries every `compact_interval`, commits what is
//! queued when it stops). The tiers themselves live in the shared [`Cache`]: a restarted actor
//! loses nothing, and request paths never wait on a mailbox.

use super::{Cache, Tier};
use crate::tree_names::{CACHE_L1, CACHE_L2, CACHE_L3, CACHE_SUP};
use erlmcp_supervisors::{ChildSpec, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;

/// How often L1's actor applies lazy invalidations.
const L1_TICK: Duration = Duration::from_millis(250);

/// The supervisor of the tier actors.
pub(crate) fn cache_sup(cache: &Arc<Cache>, intensity: (u32, Duration)) -> ChildSpec {
    let tier = |name: &'static str, tier: Tier| {
        let cache = Arc::clone(cache);
        ChildSpec::named_actor(name, name, move || (TierActor, (Arc::clone(&cache), tier)))
    };
    ChildSpec::supervisor(
        CACHE_SUP,
        SupervisorSpec::one_for_one()
            .named(CACHE_SUP)
            .intensity(intensity.0, intensity.1)
            .child(tier(CACHE_L1, Tier::L1))
            .child({
                let cache = Arc::clone(cache);
                ChildSpec::named_actor(CACHE_L2, CACHE_L2, move || {
                    (super::clustered::L2Actor, Arc::clone(&cache))
                })
            })
            .child(tier(CACHE_L3, Tier::L3)),
    )
}

/// One tier's owner.
pub(crate) struct TierActor;

/// A tier actor's mailbox.
#[derive(Debug)]
pub(crate) enum TierMsg {
    /// The periodic work of the tier.
    Tick,
    /// Fill L1 from L3's newest entries (once, after `warmup_delay`).
    Warm,
    /// Purge expired entries.
    Compact,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for TierMsg {}

/// A tier actor's state.
pub(crate) struct TierState {
    cache: Arc<Cache>,
    tier: Tier,
    timers: Vec<tokio::task::JoinHandle<()>>,
}

impl Actor for TierActor {
    type Msg = TierMsg;
    type State = TierState;
    type Arguments = (Arc<Cache>, Tier);

    async fn pre_start(
        &self,
        myself: ActorRef<TierMsg>,
        (cache, tier): (Arc<Cache>, Tier),
    ) -> Result<TierState, ActorProcessingErr> {
        let mut timers = Vec::new();
        match tier {
            Tier::L1 => {
                timers.push(crate::ticker::every(myself.clone(), L1_TICK, || {
                    TierMsg::Tick
                }));
                timers.push(crate::ticker::every(
                    myself,
                    cache.settings.compact_interval,
                    || TierMsg::Compact,
                ));
            }
            Tier::L2 => {}
            Tier::L3 if cache.settings.l3_path.is_some() => {
                let settings = &cache.settings;
                timers.push(crate::ticker::every(
                    myself.clone(),
                    settings.flush_interval,
                    || TierMsg::Tick,
                ));
                timers.push(crate::ticker::every(
                    myself.clone(),
                    settings.compact_interval,
                    || TierMsg::Compact,
                ));
                let delay = settings.warmup_delay;
                timers.push(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = myself.cast(TierMsg::Warm);
                }));
            }
            Tier::L3 => {}
        }
        Ok(TierState {
            cache,
            tier,
            timers,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TierMsg>,
        state: &mut TierState,
    ) -> Result<(), ActorProcessingErr> {
        for timer in &state.timers {
            timer.abort();
        }
        if state.tier == Tier::L3 {
            flush(&state.cache);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<TierMsg>,
        message: TierMsg,
        state: &mut TierState,
    ) -> Result<(), ActorProcessingErr> {
        let cache = &state.cache;
        match (state.tier, message) {
            (Tier::L1, TierMsg::Tick) => cache.apply_floors(),
            (Tier::L1, TierMsg::Compact) => {
                let purged = cache.l1.purge_expired();
                if purged > 0 {
                    tracing::debug!(purged, "expired memory cache entries purged");
                }
            }
            (Tier::L3, TierMsg::Tick) => flush(cache),
            (Tier::L3, TierMsg::Warm) => {
                let warmed = cache.warm(cache.settings.warmup_entries);
                tracing::info!(entries = warmed, "cache warmed from disk");
            }
            (Tier::L3, TierMsg::Compact) => {
                flush(cache);
                if let Some(l3) = cache.disk() {
                    match l3.purge_expired() {
                        Ok(0) => {}
                        Ok(removed) => {
                            tracing::debug!(removed, "expired disk cache entries purged")
                        }
                        Err(e) => tracing::warn!("purging the disk cache tier: {e}"),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Commits L3's queued writes (the cache is a cache: a failure is logged, never fatal).
fn flush(cache: &Cache) {
    if let Some(l3) = cache.disk()
        && let Err(e) = l3.flush()
    {
        tracing::warn!(file = %l3.path().display(), "committing the disk cache tier: {e}");
    }
}
