//! Owns a pool's idle workers and the choice among them: the strategies of
//! [`PoolStrategy`] (round robin, least loaded, weighted, adaptive), what the strategies know of
//! each worker slot (uses, recent hold time, weight state, since when idle or lent), and the free
//! worker slots.
//!
//! What a checkout moves is only the worker and its slot ([`Member`]); the records stay here,
//! by slot, and are changed in place under the pool's lock.

use crate::config::PoolStrategy;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// One worker and its place among the pool's `size + max_overflow` slots (a replacement takes
/// the slot of the worker it replaces; `weights` are by slot).
pub(crate) struct Member<W> {
    pub(crate) worker: W,
    pub(crate) slot: usize,
}

impl<W> Member<W> {
    pub(crate) fn new(worker: W, slot: usize) -> Self {
        Self { worker, slot }
    }
}

/// What the strategies know of the worker in one slot.
#[derive(Debug, Default, Clone)]
pub(crate) struct SlotRecord {
    /// Checkouts of this slot's worker so far.
    pub(crate) uses: u64,
    /// Recent hold time, an EWMA in nanoseconds (0: never measured).
    pub(crate) hold_ewma_ns: u64,
    /// Smooth weighted round robin's running weight.
    current_weight: i64,
    /// While idle: since when (where overflow workers are reaped). While lent: since when
    /// (where the adaptive strategy measures hold times).
    since: Option<Instant>,
}

impl SlotRecord {
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

/// The idle workers, in the order they came back, the records of every slot, and the free
/// slots.
pub(crate) struct IdleSet<W> {
    members: VecDeque<Member<W>>,
    records: Vec<SlotRecord>,
    free_slots: BinaryHeap<Reverse<usize>>,
}

impl<W> IdleSet<W> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            members: VecDeque::with_capacity(capacity),
            records: vec![SlotRecord::default(); capacity],
            free_slots: (0..capacity).map(Reverse).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The lowest free slot, its record started afresh (a new worker's).
    pub(crate) fn take_slot(&mut self) -> usize {
        let slot = self.free_slots.pop().map_or(0, |Reverse(slot)| slot);
        if let Some(record) = self.records.get_mut(slot) {
            *record = SlotRecord::default();
        }
        slot
    }

    pub(crate) fn free_slot(&mut self, slot: usize) {
        self.free_slots.push(Reverse(slot));
    }

    /// Puts a worker back among the idle ones. `now` (when the caller read the clock: where
    /// overflow is reaped or hold times measured) becomes its idle-since time, and, with
    /// `measure_hold`, ends the hold that began when it was lent.
    #[inline]
    pub(crate) fn put(&mut self, member: Member<W>, now: Option<Instant>, measure_hold: bool) {
        if let Some(record) = self.records.get_mut(member.slot) {
            if measure_hold && let (Some(lent), Some(now)) = (record.since, now) {
                record.record_hold(now.saturating_duration_since(lent));
            }
            record.since = now;
        }
        self.members.push_back(member);
    }

    pub(crate) fn drain(&mut self) -> Vec<Member<W>> {
        self.members.drain(..).collect()
    }

    /// Takes the idle worker `strategy` picks (see [`PoolStrategy`]), counting its use; `now`
    /// (read where hold times are measured) is when it was lent. Inlined: the worker comes back
    /// in registers rather than through memory (measured: a store-forwarding stall per
    /// checkout otherwise).
    #[inline]
    pub(crate) fn pick(
        &mut self,
        strategy: PoolStrategy,
        weights: &[u32],
        now: Option<Instant>,
    ) -> Option<Member<W>> {
        let member = match strategy {
            // The one that came back first: the front, taken without moving the others.
            PoolStrategy::RoundRobin => self.members.pop_front()?,
            _ => self.pick_by_record(strategy, weights)?,
        };
        if let Some(record) = self.records.get_mut(member.slot) {
            record.uses += 1;
            record.since = now;
        }
        Some(member)
    }

    /// The strategies that look at the records of every idle worker.
    fn pick_by_record(&mut self, strategy: PoolStrategy, weights: &[u32]) -> Option<Member<W>> {
        match strategy {
            PoolStrategy::RoundRobin => self.members.pop_front(),
            PoolStrategy::LeastLoaded => {
                let index = self.least_by(|r| r.uses)?;
                self.members.remove(index)
            }
            PoolStrategy::Adaptive => {
                let index = self.least_by(|r| r.hold_ewma_ns)?;
                self.members.remove(index)
            }
            PoolStrategy::Weighted => {
                let index = self.smooth_weighted(weights)?;
                self.members.remove(index)
            }
        }
    }

    /// The index of the idle worker whose record gives the least `key`.
    fn least_by(&self, key: impl Fn(&SlotRecord) -> u64) -> Option<usize> {
        self.members
            .iter()
            .enumerate()
            .min_by_key(|(_, m)| self.records.get(m.slot).map_or(0, &key))
            .map(|(i, _)| i)
    }

    /// nginx's smooth weighted round robin over the idle workers.
    fn smooth_weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let weight = |slot: usize| i64::from(weights.get(slot).copied().unwrap_or(1));
        let mut total = 0;
        let mut best: Option<(usize, i64)> = None;
        for (i, m) in self.members.iter().enumerate() {
            let Some(record) = self.records.get_mut(m.slot) else {
                continue;
            };
            let w = weight(m.slot);
            record.current_weight += w;
            total += w;
            if best.is_none_or(|(_, b)| record.current_weight > b) {
                best = Some((i, record.current_weight));
            }
        }
        let (index, _) = best?;
        let slot = self.members[index].slot;
        self.records[slot].current_weight -= total;
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
            .filter_map(|(i, m)| {
                let since = self.records.get(m.slot)?.since?;
                Some((i, since))
            })
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
            set.put(Member::new(slot, slot), None, false);
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
                let m = set.pick(strategy, weights, None).unwrap();
                let slot = m.slot;
                set.put(m, None, false);
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
        assert_eq!(set.records[0].uses, 2, "uses are counted by slot");
    }

    #[test]
    fn least_loaded_picks_the_least_used_idle_worker() {
        let mut set = set_of(3);
        // Slot 0 used three times, slot 1 once: slot 2 (never used) goes first, then 1.
        set.records[0].uses = 3;
        set.records[1].uses = 1;
        let m = set.pick(PoolStrategy::LeastLoaded, &[], None).unwrap();
        assert_eq!(m.slot, 2);
        let n = set.pick(PoolStrategy::LeastLoaded, &[], None).unwrap();
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
        let t0 = Instant::now();
        // Each lent at t0 and given back after its hold time.
        for (slot, ms) in [(0, 50), (1, 5), (2, 20)] {
            let m = set.pick(PoolStrategy::RoundRobin, &[], Some(t0)).unwrap();
            assert_eq!(m.slot, slot);
            set.put(m, Some(t0 + Duration::from_millis(ms)), true);
        }
        assert_eq!(set.records[1].hold_ewma_ns, 5_000_000);
        assert_eq!(set.pick(PoolStrategy::Adaptive, &[], None).unwrap().slot, 1);
        assert_eq!(set.pick(PoolStrategy::Adaptive, &[], None).unwrap().slot, 2);
    }

    #[test]
    fn the_hold_time_ewma_moves_a_quarter_of_the_way() {
        let mut record = SlotRecord::default();
        record.record_hold(Duration::from_nanos(1000));
        assert_eq!(record.hold_ewma_ns, 1000);
        record.record_hold(Duration::from_nanos(2000));
        assert_eq!(record.hold_ewma_ns, 1250);
    }

    #[test]
    fn only_a_worker_idle_long_enough_is_taken_for_reaping() {
        let mut set: IdleSet<usize> = IdleSet::new(2);
        let t0 = Instant::now();
        for at in [t0, t0 + Duration::from_millis(50)] {
            let slot = set.take_slot();
            set.put(Member::new(slot, slot), Some(at), false);
        }
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
    fn slots_are_handed_out_lowest_first_reused_and_started_afresh() {
        let mut set: IdleSet<()> = IdleSet::new(3);
        assert_eq!((set.take_slot(), set.take_slot()), (0, 1));
        set.records[0].uses = 9;
        set.free_slot(0);
        assert_eq!(set.take_slot(), 0);
        assert_eq!(
            set.records[0].uses, 0,
            "a replacement starts with a fresh record"
        );
    }
}
