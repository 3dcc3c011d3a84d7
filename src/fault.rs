//! Owns the faults a chaos run injects into a live node through the admin channel (`fault …` in
//! `erlmcp remote`; `bench run --profile chaos`): latency added to every `tools/call`, CPU
//! stress (threads spinning), memory stress (bytes allocated and touched). Each is bounded in
//! size and in time and ends by itself, so a chaos run that dies leaves no fault behind;
//! `fault clear` ends them all at once. Killing actors is `kill NAME` (the tree's own).
//!
//! The request path pays one relaxed atomic load per `tools/call` while no latency is injected.

use crate::clock::monotonic_ms;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The most latency that may be added to a call.
pub const MAX_LATENCY: Duration = Duration::from_secs(30);
/// The longest a fault may last.
pub const MAX_HOLD: Duration = Duration::from_secs(300);
/// The most memory a memory fault may hold, MiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024;

/// Milliseconds added to each `tools/call`; 0: none.
static LATENCY_MS: AtomicU64 = AtomicU64::new(0);
/// Until when (monotonic ms) the latency holds.
static LATENCY_UNTIL_MS: AtomicU64 = AtomicU64::new(0);
/// Bumped by `clear`: stress threads of an older generation stop.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Stress threads spinning now.
static CPU_THREADS: AtomicUsize = AtomicUsize::new(0);
/// MiB held by memory faults now.
static MEMORY_MIB: AtomicU64 = AtomicU64::new(0);

/// Why a fault was not injected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultError {
    /// A size or a time beyond its bound, or zero.
    #[error("{what} must be between 1 and {max}")]
    OutOfBounds {
        /// What was asked.
        what: &'static str,
        /// The bound.
        max: u64,
    },
    /// A thread could not be started.
    #[error("starting a stress thread: {0}")]
    Thread(String),
}

/// The faults active now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActiveFaults {
    /// Milliseconds added to each `tools/call` (0: none).
    pub latency_ms: u64,
    /// Threads spinning.
    pub cpu_threads: usize,
    /// MiB held.
    pub memory_mib: u64,
}

impl ActiveFaults {
    /// Whether none is active.
    pub fn is_empty(&self) -> bool {
        self.latency_ms == 0 && self.cpu_threads == 0 && self.memory_mib == 0
    }
}

fn bounded(what: &'static str, value: u64, max: u64) -> Result<u64, FaultError> {
    if value == 0 || value > max {
        return Err(FaultError::OutOfBounds { what, max });
    }
    Ok(value)
}

/// How long a fault holds, within (0, [`MAX_HOLD`]].
fn bounded_hold(hold: Duration) -> Result<Duration, FaultError> {
    let ms = bounded(
        "duration (ms)",
        hold.as_millis() as u64,
        MAX_HOLD.as_millis() as u64,
    )?;
    Ok(Duration::from_millis(ms))
}

/// The latency to add to a `tools/call` now, if any.
pub(crate) fn tool_latency() -> Option<Duration> {
    let ms = LATENCY_MS.load(Ordering::Relaxed);
    if ms == 0 {
        return None;
    }
    if monotonic_ms() >= LATENCY_UNTIL_MS.load(Ordering::Relaxed) {
        LATENCY_MS.store(0, Ordering::Relaxed);
        return None;
    }
    Some(Duration::from_millis(ms))
}

/// Adds `latency` to every `tools/call` for `hold`.
pub fn inject_latency(latency: Duration, hold: Duration) -> Result<(), FaultError> {
    let ms = bounded(
        "latency (ms)",
        latency.as_millis() as u64,
        MAX_LATENCY.as_millis() as u64,
    )?;
    let hold = bounded_hold(hold)?.as_millis() as u64;
    LATENCY_UNTIL_MS.store(monotonic_ms() + hold, Ordering::Relaxed);
    LATENCY_MS.store(ms, Ordering::Relaxed);
    tracing::warn!(
        latency_ms = ms,
        for_ms = hold,
        "fault injected: latency on every tools/call"
    );
    Ok(())
}

/// Spins `threads` threads for `hold` (or until `clear`).
pub fn stress_cpu(threads: usize, hold: Duration) -> Result<(), FaultError> {
    let max_threads = std::thread::available_parallelism().map_or(4, usize::from) * 4;
    let threads = bounded("threads", threads as u64, max_threads as u64)? as usize;
    let hold = bounded_hold(hold)?;
    let generation = GENERATION.load(Ordering::Acquire);
    tracing::warn!(
        threads,
        for_ms = hold.as_millis() as u64,
        "fault injected: CPU stress"
    );
    for n in 0..threads {
        CPU_THREADS.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("erlmcp-fault-cpu-{n}"))
            .spawn(move || {
                let until = std::time::Instant::now() + hold;
                let mut spin = 0u64;
                while std::time::Instant::now() < until
                    && GENERATION.load(Ordering::Relaxed) == generation
                {
                    for _ in 0..10_000 {
                        spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
                    }
                }
                CPU_THREADS.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            CPU_THREADS.fetch_sub(1, Ordering::Relaxed);
            return Err(FaultError::Thread(e.to_string()));
        }
    }
    Ok(())
}

/// Allocates and touches `mib` MiB, held for `hold` (or until `clear`).
pub fn stress_memory(mib: u64, hold: Duration) -> Result<(), FaultError> {
    let mib = bounded("memory (MiB)", mib, MAX_MEMORY_MIB)?;
    let hold = bounded_hold(hold)?;
    let generation = GENERATION.load(Ordering::Acquire);
    tracing::warn!(
        mib,
        for_ms = hold.as_millis() as u64,
        "fault injected: memory stress"
    );
    MEMORY_MIB.fetch_add(mib, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("erlmcp-fault-memory".into())
        .spawn(move || {
            // The hold counts from the injection, the filling included.
            let until = std::time::Instant::now() + hold;
            let len = usize::try_from(mib << 20).unwrap_or(usize::MAX);
            let mut held: Vec<u8> = Vec::new();
            if held.try_reserve_exact(len).is_ok() {
                // Every page written (a MiB copied at a time: fast in any build), so that the
                // memory is resident, not only reserved.
                let one_mib = vec![1u8; 1 << 20];
                for _ in 0..mib {
                    if std::time::Instant::now() >= until
                        || GENERATION.load(Ordering::Relaxed) != generation
                    {
                        break;
                    }
                    held.extend_from_slice(&one_mib);
                }
            }
            while std::time::Instant::now() < until
                && GENERATION.load(Ordering::Relaxed) == generation
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(std::hint::black_box(held));
            MEMORY_MIB.fetch_sub(mib, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        MEMORY_MIB.fetch_sub(mib, Ordering::Relaxed);
        return Err(FaultError::Thread(e.to_string()));
    }
    Ok(())
}

/// Ends every fault now (stress threads stop within ~10 ms).
pub fn clear() {
    LATENCY_MS.store(0, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    tracing::warn!("faults cleared");
}

/// The faults active now.
pub fn active() -> ActiveFaults {
    ActiveFaults {
        latency_ms: tool_latency().map_or(0, |d| d.as_millis() as u64),
        cpu_threads: CPU_THREADS.load(Ordering::Relaxed),
        memory_mib: MEMORY_MIB.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The faults are process-wide: one test drives them all, in order.
    #[test]
    fn each_fault_is_bounded_ends_by_itself_and_clear_ends_it_sooner() {
        assert!(matches!(
            inject_latency(Duration::ZERO, Duration::from_secs(1)),
            Err(FaultError::OutOfBounds { .. })
        ));
        assert!(stress_memory(MAX_MEMORY_MIB + 1, Duration::from_secs(1)).is_err());
        assert!(stress_cpu(1, MAX_HOLD + Duration::from_secs(1)).is_err());

        inject_latency(Duration::from_millis(50), Duration::from_millis(100)).unwrap();
        assert_eq!(tool_latency(), Some(Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(tool_latency(), None, "the latency ends by itself");

        stress_cpu(1, Duration::from_secs(60)).unwrap();
        stress_memory(1, Duration::from_secs(60)).unwrap();
        inject_latency(Duration::from_millis(5), Duration::from_secs(60)).unwrap();
        let now = active();
        assert_eq!((now.latency_ms, now.cpu_threads), (5, 1));
        clear();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !active().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            active().is_empty(),
            "clear ends every fault: {:?}",
            active()
        );
    }
}
