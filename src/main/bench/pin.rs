//! Owns the bench's CPU pinning (`bench vs --pin`): this process's CPUs split in two halves, and
//! a thread pinned to one (threads and processes it starts afterwards inherit it).

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The CPUs this process may use, split: the first half (the servers'), the second (the load's);
/// an error with fewer than two.
pub(super) fn halves() -> std::io::Result<(CpuSet, CpuSet)> {
    let mine = sched_getaffinity(None)?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&cpu| mine.is_set(cpu))
        .collect();
    if cpus.len() < 2 {
        return Err(std::io::Error::other(format!(
            "--pin needs at least 2 CPUs; this process may use {}",
            cpus.len()
        )));
    }
    let (first, second) = cpus.split_at(cpus.len() / 2);
    Ok((set_of(first), set_of(second)))
}

/// Pins the calling thread to `cpus`.
pub(super) fn this_thread(cpus: &CpuSet) -> std::io::Result<()> {
    sched_setaffinity(None, cpus).map_err(std::io::Error::from)
}

/// `cpus` as `taskset` writes them: `0,1`.
pub(super) fn list(cpus: &CpuSet) -> String {
    (0..CpuSet::MAX_CPU)
        .filter(|&cpu| cpus.is_set(cpu))
        .map(|cpu| cpu.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn set_of(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_halves_split_this_process_cpus_without_overlap() {
        let Ok((servers, load)) = halves() else {
            // One CPU: refused, which the other branch of `halves` covers.
            assert_eq!(sched_getaffinity(None).map(|s| s.count()).ok(), Some(1));
            return;
        };
        let (a, b) = (list(&servers), list(&load));
        assert!(!a.is_empty() && !b.is_empty(), "{a} | {b}");
        assert!(
            a.split(',')
                .all(|cpu| !b.split(',').any(|other| other == cpu))
        );
        assert_eq!(
            servers.count() + load.count(),
            sched_getaffinity(None).expect("affinity").count()
        );
    }
}
