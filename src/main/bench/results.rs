//! Owns `results.json`, what every `erlmcp bench run` writes (schema in docs/bench.md): the
//! machine, the commit, the profile, the config, the figures (the median of the repeats, with
//! their spread) and each repeat's figures, timeline, percentile curve and node samples. Rates are
//! named `*_per_sec`, latencies `*_us`. Reading one back (compare, history) checks the schema
//! version and nothing else: a field missing is a typed error, not a panic.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The schema's version, written as `schema`.
pub(crate) const SCHEMA: u32 = 1;

/// The percentiles of the latency curve.
pub(crate) const CURVE_PERCENTILES: [f64; 12] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// Why results.json could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResultsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not results.json of this schema.
    #[error("{path}: not a results.json of schema {SCHEMA}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to merge.
    #[error("no runs to merge")]
    NoRuns,
}

/// The machine a run was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// CPUs this process may run on.
    pub(crate) cores: usize,
    /// `uname -r` (from /proc), or "unknown".
    pub(crate) kernel: String,
    /// The first `model name` of /proc/cpuinfo, or "unknown".
    pub(crate) cpu_model: String,
    /// Memory of the machine in bytes (0 if unknown).
    pub(crate) memory_bytes: u64,
}

impl Machine {
    /// This machine.
    pub(crate) fn this() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
            cpu_model,
            memory_bytes,
        }
    }
}

/// The commit checked out where the bench runs (`git rev-parse HEAD`), or "unknown".
pub(crate) fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|rev| rev.trim().to_owned())
        .filter(|rev| !rev.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// One step of a run's timeline (the step ends at `t_s`, seconds into the measured window).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TimelineStep {
    /// End of the step, seconds after the warm-up.
    pub(crate) t_s: f64,
    /// Answers in the step per second.
    pub(crate) calls_per_sec: f64,
    /// Errors answered in the step.
    pub(crate) errors: u64,
    /// Median latency of the step's answers.
    pub(crate) p50_us: f64,
    /// 99th percentile of the step's answers.
    pub(crate) p99_us: f64,
}

/// One point of the latency percentile curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PercentilePoint {
    /// The percentile (0–100).
    pub(crate) percentile: f64,
    /// Its latency.
    pub(crate) latency_us: f64,
}

/// One sample of the node's process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeSample {
    /// Seconds since the run started (warm-up included).
    pub(crate) t_s: f64,
    /// Resident memory.
    pub(crate) rss_bytes: u64,
    /// CPU time used since the previous sample over the time between them (100: one core).
    pub(crate) cpu_percent: f64,
}

/// One fault of the chaos profile and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FaultRecord {
    /// The actor killed.
    pub(crate) actor: String,
    /// Seconds into the measured window when it was killed.
    pub(crate) at_s: f64,
    /// How long until a new actor ran under its name (none: not within 10 s).
    pub(crate) component_back_us: Option<f64>,
    /// How long until the load was back: the end of the first step after the component with no
    /// error and a p99 within 10% of the steady band (none: not before the next fault or the end).
    pub(crate) recovered_us: Option<f64>,
    /// Requests that failed from the fault until the next one (errors, unanswered).
    pub(crate) failed: u64,
    /// Why the fault could not be injected, if it could not.
    pub(crate) error: Option<String>,
    /// Writes acknowledged before the fault that were not read back after it (none: not read).
    #[serde(default)]
    pub(crate) lost_writes: Option<u64>,
    /// Connections the load opened again from the fault until the next one.
    #[serde(default)]
    pub(crate) reopened: u64,
}

/// One stage of the stress profile's ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stage {
    /// The rate offered.
    pub(crate) rate_per_sec: f64,
    /// The rate answered.
    pub(crate) calls_per_sec: f64,
    /// Its p99.
    pub(crate) p99_us: f64,
    /// Its errors.
    pub(crate) errors: u64,
    /// Whether it held the SLO: p99 within it, no error, 95% of the rate answered.
    pub(crate) held: bool,
}

/// One repeat of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Repeat {
    /// Its figures (names as in [`Results::figures`]).
    pub(crate) figures: BTreeMap<String, f64>,
    /// Calls, errors and latency per step (empty for the core profile).
    #[serde(default)]
    pub(crate) timeline: Vec<TimelineStep>,
    /// The latency percentile curve (empty for the core profile).
    #[serde(default)]
    pub(crate) percentiles: Vec<PercentilePoint>,
    /// The node's RSS and CPU over time (empty when it is a `--target` elsewhere).
    #[serde(default)]
    pub(crate) node: Vec<NodeSample>,
    /// The chaos profile's faults, in order (empty for the others).
    #[serde(default)]
    pub(crate) faults: Vec<FaultRecord>,
    /// The stress profile's stages, in order (empty for the others).
    #[serde(default)]
    pub(crate) stages: Vec<Stage>,
}

/// The spread of one figure over the repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spread {
    /// Smallest.
    pub(crate) min: f64,
    /// Largest.
    pub(crate) max: f64,
    /// (max − min) / median (0 when the median is 0).
    pub(crate) relative: f64,
}

/// A whole results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// [`SCHEMA`].
    pub(crate) schema: u32,
    /// Seconds since the Unix epoch when the run started.
    pub(crate) started_at: u64,
    /// Where it ran.
    pub(crate) machine: Machine,
    /// The commit, or "unknown".
    pub(crate) commit: String,
    /// `core`, `tcp`, `http` or `chaos`.
    pub(crate) profile: String,
    /// The run's parameters as given (and derived: `loop`, `node`).
    pub(crate) config: serde_json::Value,
    /// Each figure's median over the repeats.
    pub(crate) figures: BTreeMap<String, f64>,
    /// Each figure's spread over the repeats.
    pub(crate) spread: BTreeMap<String, Spread>,
    /// Every repeat, in order.
    pub(crate) repeats: Vec<Repeat>,
}

impl Results {
    /// Medians and spreads of the repeats' figures.
    pub(crate) fn summarise(
        repeats: &[Repeat],
    ) -> (BTreeMap<String, f64>, BTreeMap<String, Spread>) {
        let mut figures = BTreeMap::new();
        let mut spread = BTreeMap::new();
        let Some(first) = repeats.first() else {
            return (figures, spread);
        };
        for name in first.figures.keys() {
            let mut values: Vec<f64> = repeats
                .iter()
                .filter_map(|r| r.figures.get(name).copied())
                .collect();
            values.sort_by(f64::total_cmp);
            let median = median(&values);
            let (min, max) = (values[0], values[values.len() - 1]);
            figures.insert(name.clone(), median);
            let relative = if median == 0.0 {
                0.0
            } else {
                (max - min) / median.abs()
            };
            spread.insert(name.clone(), Spread { min, max, relative });
        }
        (figures, spread)
    }

    /// One run's results from runs of one repeat each (the rounds of `bench vs`): the first's
    /// description, every run's repeat in order, the medians and spreads over them.
    pub(crate) fn merged(runs: Vec<Results>) -> Result<Self, ResultsError> {
        let mut runs = runs.into_iter();
        let mut merged = runs.next().ok_or(ResultsError::NoRuns)?;
        for run in runs {
            merged.repeats.extend(run.repeats);
        }
        (merged.figures, merged.spread) = Self::summarise(&merged.repeats);
        merged.config["repeat"] = merged.repeats.len().into();
        Ok(merged)
    }

    /// Writes `dir/results.json`.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), ResultsError> {
        let path = dir.join("results.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| ResultsError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a results.json: the file, or `results.json` in a directory.
    pub(crate) fn read(path: &Path) -> Result<Self, ResultsError> {
        let path = if path.is_dir() {
            path.join("results.json")
        } else {
            path.to_path_buf()
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ResultsError::Io {
            path: shown.clone(),
            source,
        })?;
        let results: Results = serde_json::from_str(&text).map_err(|e| ResultsError::Format {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if results.schema != SCHEMA {
            return Err(ResultsError::Format {
                path: shown,
                reason: format!("schema {}", results.schema),
            });
        }
        Ok(results)
    }
}

/// The median of sorted values (non-empty).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat(calls: f64) -> Repeat {
        Repeat {
            figures: BTreeMap::from([("calls_per_sec".to_owned(), calls)]),
            timeline: Vec::new(),
            percentiles: Vec::new(),
            node: Vec::new(),
            faults: Vec::new(),
            stages: Vec::new(),
        }
    }

    #[test]
    fn the_figures_are_the_median_of_the_repeats_and_the_spread_their_range() {
        let (figures, spread) = Results::summarise(&[repeat(90.0), repeat(100.0), repeat(130.0)]);
        assert_eq!(figures["calls_per_sec"], 100.0);
        let spread = &spread["calls_per_sec"];
        assert_eq!((spread.min, spread.max), (90.0, 130.0));
        assert!((spread.relative - 0.4).abs() < 1e-9);
        let (figures, _) = Results::summarise(&[repeat(90.0), repeat(100.0)]);
        assert_eq!(figures["calls_per_sec"], 95.0);
    }
}
