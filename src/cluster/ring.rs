//! Owns the hash ring: consistent hashing with virtual nodes over the live members, which says
//! which member owns a key (a session id, an L2 cache key). Pure code: no actor, no I/O.
//!
//! Each member is placed at `vnodes` points of a 64-bit circle, the hashes of `"<name>#<i>"`;
//! a key belongs to the first point at or after its own hash, going round. A member joining
//! takes over only the arcs just before its points, and a member leaving hands only its own
//! arcs to the points after them: about 1/N of the keys move, and no key moves between two
//! members that stayed (`a_join_moves_only_the_keys_of_the_new_members_ranges`).
//!
//! A small `BTreeMap` ring rather than a crate. Every node of a cluster must compute the same
//! owner for a key whatever its build, so the hash is part of the cluster's contract: here it is
//! fixed — FNV-1a over the bytes, then the SplitMix64 finaliser so that labels differing in one
//! character land far apart — and pinned by a test, where a crate's hasher could change under a
//! dependency update and move keys between nodes of mixed versions (`hulahoop` defaults to
//! `std`'s `DefaultHasher`, whose algorithm `std` does not promise to keep; `hashring` uses
//! siphasher, stable, and would have fitted for lookups). The ring also gives what placement
//! needs beside the owner: the distinct successors (replicas) and each member's share.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The 64-bit hash every node computes the same way for the same bytes.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finaliser: FNV alone leaves close labels close.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// A consistent-hash ring over member names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    /// Point on the circle → index into `members`.
    points: BTreeMap<u64, usize>,
    /// The members, sorted by name.
    members: Vec<Arc<str>>,
    vnodes: u32,
}

impl Ring {
    /// The ring of `members` (duplicates counted once), each at `vnodes` points.
    pub(crate) fn new<'a>(members: impl IntoIterator<Item = &'a str>, vnodes: u32) -> Self {
        let mut names: Vec<Arc<str>> = members.into_iter().map(Arc::from).collect();
        names.sort();
        names.dedup();
        let mut points = BTreeMap::new();
        for (index, name) in names.iter().enumerate() {
            for vnode in 0..vnodes {
                let point = stable_hash(format!("{name}#{vnode}").as_bytes());
                // Two labels with one hash (never seen at 64 bits): the smaller name keeps it,
                // so every node agrees.
                points.entry(point).or_insert(index);
            }
        }
        Self {
            points,
            members: names,
            vnodes,
        }
    }

    /// A key from `draw` that this ring gives to `name`: keys are drawn until one is (with n
    /// members, each draw is with chance ~1/n), at most `max` times; past that the last draw is
    /// kept (served by its maker, reached from the others only when the ring agrees).
    pub(crate) fn draw_owned<E>(
        &self,
        name: &str,
        max: usize,
        mut draw: impl FnMut() -> Result<String, E>,
    ) -> Result<String, E> {
        let mut key = draw()?;
        for _ in 1..max {
            if self.owner(key.as_bytes()) == Some(name) {
                break;
            }
            key = draw()?;
        }
        Ok(key)
    }

    /// The member owning `key`; `None` on an empty ring.
    pub(crate) fn owner(&self, key: &[u8]) -> Option<&str> {
        let hash = stable_hash(key);
        let (_, index) = self
            .points
            .range(hash..)
            .next()
            .or_else(|| self.points.iter().next())?;
        self.members.get(*index).map(|name| &**name)
    }

    /// The first `count` distinct members from `key`'s point on, going round: the owner, then
    /// the members that would take over from it (replicas).
    pub(crate) fn owners(&self, key: &[u8], count: usize) -> Vec<&str> {
        let hash = stable_hash(key);
        let mut found: Vec<usize> = Vec::with_capacity(count.min(self.members.len()));
        for (_, index) in self.points.range(hash..).chain(self.points.range(..hash)) {
            if found.len() >= count.min(self.members.len()) {
                break;
            }
            if !found.contains(index) {
                found.push(*index);
            }
        }
        found
            .into_iter()
            .filter_map(|index| self.members.get(index).map(|name| &**name))
            .collect()
    }

    /// Each member's share of the circle (of the keys, for keys spread evenly), by name.
    pub(crate) fn shares(&self) -> Vec<(&str, f64)> {
        let mut arcs = vec![0u128; self.members.len()];
        let mut previous: Option<u64> = self.points.keys().next_back().copied();
        for (point, index) in &self.points {
            // The arc ending at `point` (exclusive of the previous point) is this member's.
            let start = previous.unwrap_or(*point);
            let length = point.wrapping_sub(start);
            let length = if self.points.len() == 1 {
                u64::MAX
            } else {
                length
            };
            if let Some(arc) = arcs.get_mut(*index) {
                *arc += u128::from(length);
            }
            previous = Some(*point);
        }
        let circle = (u128::from(u64::MAX) + 1) as f64;
        self.members
            .iter()
            .zip(arcs)
            .map(|(name, arc)| (&**name, arc as f64 / circle))
            .collect()
    }

    /// The members on the ring, sorted by name.
    pub(crate) fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|name| &**name)
    }

    /// Virtual nodes per member.
    pub(crate) fn vnodes(&self) -> u32 {
        self.vnodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        (0..20_000).map(|i| format!("session-{i}")).collect()
    }

    fn owners_of<'a>(ring: &'a Ring, keys: &[String]) -> Vec<&'a str> {
        keys.iter()
            .map(|key| ring.owner(key.as_bytes()).expect("a ring with members"))
            .collect()
    }

    #[test]
    fn the_hash_is_fixed_across_builds() {
        // The owner of a key must be the same on every node: these values are the contract.
        assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(stable_hash(b"session-1"), 0x8f9d_4a83_e238_4785);
        assert_ne!(stable_hash(b"node-a#0"), stable_hash(b"node-a#1"));
    }

    #[test]
    fn an_empty_ring_owns_nothing() {
        let ring = Ring::new([], 100);
        assert_eq!(ring.owner(b"x"), None);
        assert!(ring.owners(b"x", 2).is_empty());
    }

    #[test]
    fn every_node_computes_the_same_owner_whatever_the_order_of_its_member_list() {
        let one = Ring::new(["a@h", "b@h", "c@h"], 100);
        let two = Ring::new(["c@h", "a@h", "b@h", "a@h"], 100);
        let keys = keys();
        assert_eq!(owners_of(&one, &keys), owners_of(&two, &keys));
        assert_eq!(one.members().count(), 3);
    }

    #[test]
    fn keys_spread_roughly_evenly_with_virtual_nodes() {
        let ring = Ring::new(["a@h", "b@h", "c@h", "d@h"], 100);
        let keys = keys();
        let owners = owners_of(&ring, &keys);
        for member in ["a@h", "b@h", "c@h", "d@h"] {
            let share = owners.iter().filter(|o| **o == member).count() as f64 / keys.len() as f64;
            assert!((0.15..0.35).contains(&share), "{member} owns {share:.3}");
        }
    }

    #[test]
    fn a_join_moves_only_the_keys_of_the_new_members_ranges() {
        let before = Ring::new(["a@h", "b@h", "c@h"], 100);
        let after = Ring::new(["a@h", "b@h", "c@h", "d@h"], 100);
        let keys = keys();
        let (old, new) = (owners_of(&before, &keys), owners_of(&after, &keys));
        let moved: Vec<usize> = (0..keys.len()).filter(|i| old[*i] != new[*i]).collect();
        // Every key that moved went to the newcomer: none moved between members that stayed.
        assert!(moved.iter().all(|i| new[*i] == "d@h"));
        let share = moved.len() as f64 / keys.len() as f64;
        assert!(
            (0.15..0.35).contains(&share),
            "{share:.3} of the keys moved (1/4 expected)"
        );
    }

    #[test]
    fn a_departure_moves_only_the_departed_members_keys() {
        let before = Ring::new(["a@h", "b@h", "c@h", "d@h"], 100);
        let after = Ring::new(["a@h", "b@h", "d@h"], 100);
        let keys = keys();
        let (old, new) = (owners_of(&before, &keys), owners_of(&after, &keys));
        let moved: Vec<usize> = (0..keys.len()).filter(|i| old[*i] != new[*i]).collect();
        assert!(moved.iter().all(|i| old[*i] == "c@h"));
        assert_eq!(moved.len(), old.iter().filter(|o| **o == "c@h").count());
        let share = moved.len() as f64 / keys.len() as f64;
        assert!(
            (0.15..0.35).contains(&share),
            "{share:.3} of the keys moved (1/4 expected)"
        );
    }

    #[test]
    fn the_shares_add_up_to_the_whole_circle_and_match_the_keys_owned() {
        let ring = Ring::new(["a@h", "b@h", "c@h"], 100);
        let shares = ring.shares();
        let total: f64 = shares.iter().map(|(_, share)| share).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let keys = keys();
        let owners = owners_of(&ring, &keys);
        for (member, share) in shares {
            let owned = owners.iter().filter(|o| **o == member).count() as f64 / keys.len() as f64;
            assert!(
                (owned - share).abs() < 0.02,
                "{member}: {owned:.3} owned, {share:.3} share"
            );
        }
        let alone = Ring::new(["a@h"], 1);
        assert_eq!(alone.shares(), vec![("a@h", 1.0)]);
    }

    #[test]
    fn the_owners_list_starts_with_the_owner_and_names_distinct_members() {
        let ring = Ring::new(["a@h", "b@h", "c@h"], 50);
        for key in keys().iter().take(500) {
            let owners = ring.owners(key.as_bytes(), 2);
            assert_eq!(owners.len(), 2);
            assert_eq!(Some(owners[0]), ring.owner(key.as_bytes()));
            assert_ne!(owners[0], owners[1]);
        }
        assert_eq!(ring.owners(b"k", 9).len(), 3, "no more owners than members");
        assert_eq!(ring.vnodes(), 50);
    }

    #[test]
    fn the_next_owner_takes_over_the_keys_of_a_departed_member() {
        let before = Ring::new(["a@h", "b@h", "c@h"], 100);
        let after = Ring::new(["a@h", "c@h"], 100);
        for key in keys().iter().take(2_000) {
            let owners = before.owners(key.as_bytes(), 2);
            if owners[0] == "b@h" {
                assert_eq!(after.owner(key.as_bytes()), Some(owners[1]));
            }
        }
    }
}
