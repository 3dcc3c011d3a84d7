//! Owns a pool's idle workers and the choice among them: the strategies of
//! [`PoolStrategy`] (round robin, least loaded, weighted, adaptive), each worker's record (its
//! slot, uses, recent hold time, weight state), and the free worker slots.

use crate::config::PoolStrategy;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// One worker and what the strategies know of it.
pub(crate) struct Member<W> {
    pub(crate) worker: W,
    /// Its place among the pool's `size + max_overflow` slots (a replacement takes the slot of
    /// the worker it replaces; `weights` are by slot).
    pub(crate) slot: usize,
    /// Checkouts of this worker so far.
    pub(crate) uses: u64,
    /// Recent hold time, an EWMA in nanoseconds (0: never measured).
    pub(crate) hold_ewma_ns: u64,
    /// Smooth weighted round robin's running weight.
    current_weight: i64,
    /// While idle: since when (kept only where overflow workers are reaped). While lent: since
    /// when (kept only for the adaptive strategy, which measures hold times).
    pub(crate) since: Option<Instant>,
}

impl<W> Member<W> {
    pub(crate) fn new(worker: W, slot: usize) -> Self {
        Self {
            worker,
            slot,
            uses: 0,
            hold_ewma_ns: 0,
            current_weight: 0,
            since: None,
        }
    }

    /// Folds one hold time into the EWMA (α = 1/4).
    pub(crate) fn record_hold(&mut self, held: Duration) {
        let held = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hold_ewma_ns = if self.hold_ewma_ns == 0 {
            held
        } else {
            let old = self.hold_ewma_ns as i128;
            (old + (held as i128 - old) / 4).max(1) as u64
        };
    }
}

/// The idle workers, in the order they came back, and the free slots.
pub(crate) struct IdleSet<W> {
    members: VecDeque<Member<W>>,
    free_slots: BinaryHeap<Reverse<usize>>,
}

impl<W> IdleSet<W> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            members: VecDeque::with_capacity(capacity),
            free_slots: (0..capacity).map(Reverse).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The lowest free slot.
    pub(crate) fn take_slot(&mut self) -> usize {
        self.free_slots.pop().map_or(0, |Reverse(slot)| slot)
    }

    pub(crate) fn free_slot(&mut self, slot: usize) {
        self.free_slots.push(Reverse(slot));
    }

    pub(crate) fn put(&mut self, member: Member<W>) {
        self.members.push_back(member);
    }

    pub(crate) fn drain(&mut self) -> Vec<Member<W>> {
        self.members.drain(..).collect()
    }

    /// Takes the idle worker `strategy` picks (see [`PoolStrategy`]), counting its use.
    pub(crate) fn pick(&mut self, strategy: PoolStrategy, weights: &[u32]) -> Option<Member<W>> {
        let index = match strategy {
            // The one that came back first: the front, taken without moving the others.
            PoolStrategy::RoundRobin => {
                let mut member = self.members.pop_front()?;
                member.uses += 1;
                return Some(member);
            }
            PoolStrategy::LeastLoaded => self
                .members
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| m.uses)
                .map(|(i, _)| i)?,
            PoolStrategy::Adaptive => self
                .members
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| m.hold_ewma_ns)
                .map(|(i, _)| i)?,
            PoolStrategy::Weighted => self.smooth_weighted(weights)?,
        };
        let mut member = self.members.remove(index)?;
        member.uses += 1;
        Some(member)
    }

    /// nginx's smooth weighted round robin over the idle workers.
    fn smooth_weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let weight = |slot: usize| i64::from(weights.get(slot).copied().unwrap_or(1));
        let mut total = 0;
        let mut best: Option<(usize, i64)> = None;
        for (i, m) in self.members.iter_mut().enumerate() {
            let w = weight(m.slot);
            m.current_weight += w;
            total += w;
            if best.is_none_or(|(_, b)| m.current_weight > b) {
                best = Some((i, m.current_weight));
            }
        }
        let (index, _) = best?;
        self.members[index].current_weight -= total;
        Some(index)
    }

    /// Takes the worker idle longest if it has been idle `at_least`.
    pub(crate) fn take_idle_since(
        &mut self,
        now: Instant,
        at_least: Duration,
    ) -> Option<Member<W>> {
        let (index, since) = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.since.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)?;
        (now.saturating_duration_since(since) >= at_least)
            .then(|| self.members.remove(index))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(n: usize) -> IdleSet<usize> {
        let mut set = IdleSet::new(n);
        for _ in 0..n {
            let slot = set.take_slot();
            set.put(Member::new(slot, slot));
        }
        set
    }

    /// Picks `n` times with `strategy`, giving each worker back at once; the slots picked.
    fn picks(
        set: &mut IdleSet<usize>,
        strategy: PoolStrategy,
        weights: &[u32],
        n: usize,
    ) -> Vec<usize> {
        (0..n)
            .map(|_| {
                let m = set.pick(strategy, weights).unwrap();
                let slot = m.slot;
                set.put(m);
                slot
            })
            .collect()
    }

    #[test]
    fn round_robin_gives_every_worker_its_turn() {
        let mut set = set_of(3);
        assert_eq!(
            picks(&mut set, PoolStrategy::RoundRobin, &[], 6),
            [0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn least_loaded_picks_the_least_used_idle_worker() {
        let mut set = set_of(3);
        // Slot 0 used three times, slot 1 once: slot 2 (never used) goes first, then 1.
        for (slot, uses) in [(0, 3), (1, 1)] {
            set.members
                .iter_mut()
                .find(|m| m.slot == slot)
                .unwrap()
                .uses = uses;
        }
        let m = set.pick(PoolStrategy::LeastLoaded, &[]).unwrap();
        assert_eq!(m.slot, 2);
        let n = set.pick(PoolStrategy::LeastLoaded, &[]).unwrap();
        assert_eq!(n.slot, 1);
    }

    #[test]
    fn weighted_spreads_picks_by_weight_smoothly() {
        let mut set = set_of(3);
        let got = picks(&mut set, PoolStrategy::Weighted, &[5, 1, 1], 7);
        // nginx's sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(got, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn adaptive_prefers_the_worker_held_shortest_recently() {
        let mut set = set_of(3);
        for (slot, ms) in [(0, 50), (1, 5), (2, 20)] {
            let m = set.members.iter_mut().find(|m| m.slot == slot).unwrap();
            m.record_hold(Duration::from_millis(ms));
        }
        assert_eq!(set.pick(PoolStrategy::Adaptive, &[]).unwrap().slot, 1);
        assert_eq!(set.pick(PoolStrategy::Adaptive, &[]).unwrap().slot, 2);
    }

    #[test]
    fn the_hold_time_ewma_moves_a_quarter_of_the_way() {
        let mut m = Member::new((), 0);
        m.record_hold(Duration::from_nanos(1000));
        assert_eq!(m.hold_ewma_ns, 1000);
        m.record_hold(Duration::from_nanos(2000));
        assert_eq!(m.hold_ewma_ns, 1250);
    }

    #[test]
    fn only_a_worker_idle_long_enough_is_taken_for_reaping() {
        let mut set = set_of(2);
        let t0 = Instant::now();
        set.members[0].since = Some(t0);
        set.members[1].since = Some(t0 + Duration::from_millis(50));
        let wait = Duration::from_millis(100);
        assert!(
            set.take_idle_since(t0 + Duration::from_millis(99), wait)
                .is_none()
        );
        let m = set
            .take_idle_since(t0 + Duration::from_millis(100), wait)
            .unwrap();
        assert_eq!(m.slot, 0);
    }

    #[test]
    fn slots_are_handed_out_lowest_first_and_reused() {
        let mut set: IdleSet<()> = IdleSet::new(3);
        assert_eq!((set.take_slot(), set.take_slot()), (0, 1));
        set.free_slot(0);
        assert_eq!(set.take_slot(), 0);
    }
}
