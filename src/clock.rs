//! Owns the coarse clocks read on hot paths: the kernel's tick-resolution clocks (a few ms), read
//! without a system call in a few nanoseconds — `Instant::now()` costs ~60 ns here.

/// Milliseconds of `clock`, coarse.
fn coarse(clock: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(clock);
    (t.tv_sec as u64).saturating_mul(1000) + t.tv_nsec as u64 / 1_000_000
}

/// Monotonic milliseconds (since boot), coarse: for idle times within one process.
pub(crate) fn monotonic_ms() -> u64 {
    coarse(rustix::time::ClockId::MonotonicCoarse)
}

/// Unix time in milliseconds, coarse: for expiries that must mean the same after a restart.
pub(crate) fn wall_ms() -> u64 {
    coarse(rustix::time::ClockId::RealtimeCoarse)
}
