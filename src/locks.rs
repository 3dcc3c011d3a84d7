//! Owns how erlmcp takes a std mutex: the few maps guarded by one (a session's requests in
//! flight, HTTP sessions, plugin slots) are only ever changed by single inserts and removes, so a
//! panic while one was held cannot leave it half-updated, and a poisoned lock is used as it is.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning (see the module doc for why that is sound here).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
