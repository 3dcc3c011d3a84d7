//! Owns the shell's `fault` command, the chaos run's hand on a live node (src/fault.rs): `fault`
//! shows the faults active now; `fault latency MS FOR_MS` adds MS to every `tools/call` for
//! FOR_MS; `fault cpu FOR_MS [THREADS]` spins THREADS threads (default: one per core);
//! `fault memory MIB FOR_MS` holds MIB MiB, touched; `fault clear` ends them all. Every fault
//! is bounded and ends by itself.

use super::{Answer, to_json};
use crate::fault;
use std::time::Duration;

const USAGE: &str =
    "usage: fault [latency MS FOR_MS | cpu FOR_MS [THREADS] | memory MIB FOR_MS | clear]";

pub(super) fn fault(args: &[&str]) -> Result<Answer, String> {
    let number = |word: &str, what: &str| {
        word.parse::<u64>()
            .map_err(|_| format!("{what} must be a whole number, not `{word}`; {USAGE}"))
    };
    let ms = |word: &str, what: &str| number(word, what).map(Duration::from_millis);
    let injected = match args {
        [] => return Ok(active()),
        ["clear"] => {
            fault::clear();
            return Ok(Answer::new(
                "every fault cleared".to_owned(),
                to_json(&fault::active()),
            ));
        }
        ["latency", latency, hold] => {
            fault::inject_latency(ms(latency, "MS")?, ms(hold, "FOR_MS")?)
        }
        ["cpu", hold] => fault::stress_cpu(
            std::thread::available_parallelism().map_or(1, usize::from),
            ms(hold, "FOR_MS")?,
        ),
        ["cpu", hold, threads] => {
            let threads = usize::try_from(number(threads, "THREADS")?).unwrap_or(usize::MAX);
            fault::stress_cpu(threads, ms(hold, "FOR_MS")?)
        }
        ["memory", mib, hold] => fault::stress_memory(number(mib, "MIB")?, ms(hold, "FOR_MS")?),
        _ => return Err(USAGE.to_owned()),
    };
    injected.map_err(|e| e.to_string())?;
    Ok(active())
}

fn active() -> Answer {
    let now = fault::active();
    let text = if now.is_empty() {
        "no fault active".to_owned()
    } else {
        format!(
            "latency {} ms on every tools/call, {} CPU stress threads, {} MiB held",
            now.latency_ms, now.cpu_threads, now.memory_mib
        )
    };
    Answer::new(text, to_json(&now))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only refusals here: a fault injected is process-wide (src/fault.rs tests those).
    #[test]
    fn bad_fault_commands_are_refused_with_the_usage_or_the_bound() {
        let usage = fault(&["latency", "5"]).unwrap_err();
        assert!(usage.starts_with("usage: fault"), "{usage}");
        let not_a_number = fault(&["latency", "five", "100"]).unwrap_err();
        assert!(not_a_number.contains("`five`"), "{not_a_number}");
        let too_long = fault(&["cpu", "999999999"]).unwrap_err();
        assert!(too_long.contains("between 1 and"), "{too_long}");
        let too_big = fault(&["memory", "99999999", "10"]).unwrap_err();
        assert!(too_big.contains("memory (MiB)"), "{too_big}");
    }
}
