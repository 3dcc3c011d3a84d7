//! Owns the shape of one measured operation of `erlmcp bench core`, below both the bench and the
//! modules that bring their own operations (the cache's, the store's), so that neither imports
//! the other back.

use std::sync::Arc;

/// One operation measured: erlmcp's, beside its baseline. Other modules add theirs to
/// `core_bench::pairs` (a tier of the cache, the store): `ours` and `baseline` are `(what it goes
/// through, the operation done once)`.
pub(crate) struct Pair {
    pub(crate) name: &'static str,
    pub(crate) ours: (&'static str, Arc<dyn Fn() + Send + Sync>),
    pub(crate) baseline: (&'static str, Arc<dyn Fn() + Send + Sync>),
}
