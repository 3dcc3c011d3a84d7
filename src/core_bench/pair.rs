//! Owns the shape of one measured operation of `erlmcp bench core`, and how such an operation
//! picks its key, below both the bench and the modules that bring their own operations (the
//! cache's, the store's), so that neither imports the other back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The next of `count` keys this thread uses: each thread walks all of them (step 7), starting
/// at its own place (the first thread at 0, the second half-way, …), so that threads use
/// different keys at any moment, as clients with different arguments or sessions do, and no
/// shared counter is bumped per operation. (Threads on one hot key in lockstep would measure the
/// bouncing of that entry's cache lines between the cores.)
pub(crate) fn spread_key(count: usize) -> usize {
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NEXT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }
    let count = count.max(1);
    NEXT.with(|next| {
        let n = next.get().unwrap_or_else(|| {
            // 0, 1/2, 1/4, 3/4, … of the way.
            let thread = THREADS.fetch_add(1, Ordering::Relaxed);
            ((thread.reverse_bits() >> (usize::BITS - 10)) * count) >> 10
        }) % count;
        next.set(Some((n + 7) % count));
        n
    })
}

/// One operation measured: erlmcp's, beside its baseline. Other modules add theirs to
/// `core_bench::pairs` (a tier of the cache, the store): `ours` and `baseline` are `(what it goes
/// through, the operation done once)`.
pub(crate) struct Pair {
    pub(crate) name: &'static str,
    pub(crate) ours: (&'static str, Arc<dyn Fn() + Send + Sync>),
    pub(crate) baseline: (&'static str, Arc<dyn Fn() + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::spread_key;

    #[test]
    fn each_thread_walks_every_key_from_its_own_place() {
        let walks: Vec<Vec<usize>> = (0..2)
            .map(|_| {
                std::thread::spawn(|| (0..1000).map(|_| spread_key(1000)).collect())
                    .join()
                    .unwrap()
            })
            .collect();
        for walk in &walks {
            let mut seen = walk.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 1000, "every key once");
        }
        assert_ne!(walks[0][0], walks[1][0], "the threads start apart");
    }
}
