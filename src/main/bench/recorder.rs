//! Owns what the load generator measures: the recorder each generator thread shares among its
//! connections (latency from when a request was sent or due, errors, the timeline's steps, the
//! open loop's send lag), their merge into one run, and the counters the progress bar reads and
//! the bar itself.

use super::results::{self, PercentilePoint, TimelineStep};
use super::{LoadPlan, LoadReport, LoadRun};
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Answers counted so far over all threads, for the progress bar.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Calls answered (warm-up included).
    pub(crate) calls: AtomicU64,
    /// Errors so far.
    pub(crate) errors: AtomicU64,
}

/// One step of the timeline as a thread counts it.
struct StepCounts {
    calls: u64,
    errors: u64,
    /// Microseconds, two significant figures (one per step and thread: kept small).
    latency_us: Histogram<u64>,
}

impl StepCounts {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            calls: 0,
            errors: 0,
            latency_us: Histogram::<u64>::new(2).map_err(std::io::Error::other)?,
        })
    }
}

/// What one generator thread measured, over all its connections.
pub(crate) struct Recorder {
    /// Nanoseconds, from when a request was sent (closed loop) or due (open loop).
    histogram: Histogram<u64>,
    /// Open loop: nanoseconds a request was sent after it was due.
    send_lag: Histogram<u64>,
    calls: u64,
    errors: u64,
    measure_from: Instant,
    pub(crate) stop_at: Instant,
    step: Duration,
    steps: Vec<StepCounts>,
    open_loop: bool,
    progress: Arc<Progress>,
    /// The integration profile's steps, by name: nanoseconds, and failures.
    flow_steps: BTreeMap<&'static str, (Histogram<u64>, u64)>,
}

/// One step of the integration profile's flows, over the measured window.
#[derive(Debug, Clone)]
pub(crate) struct FlowStepFigures {
    pub(crate) name: &'static str,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// A thread's recorder, shared by its connections (one thread: no lock).
pub(crate) type Shared = Rc<RefCell<Recorder>>;

impl Recorder {
    pub(crate) fn new(
        plan: &LoadPlan,
        measure_from: Instant,
        progress: Arc<Progress>,
    ) -> std::io::Result<Self> {
        let step = plan.step.max(Duration::from_millis(10));
        let count = (plan.duration.as_secs_f64() / step.as_secs_f64()).ceil() as usize;
        Ok(Self {
            histogram: Histogram::<u64>::new(3).map_err(std::io::Error::other)?,
            send_lag: Histogram::<u64>::new(3).map_err(std::io::Error::other)?,
            calls: 0,
            errors: 0,
            measure_from,
            stop_at: measure_from + plan.duration,
            step,
            steps: (0..count.max(1))
                .map(|_| StepCounts::new())
                .collect::<std::io::Result<_>>()?,
            open_loop: plan.rate.is_some(),
            progress,
            flow_steps: BTreeMap::new(),
        })
    }

    /// Counts one answer. Measured: calls sent (closed loop) or due (open loop) inside the
    /// window; in closed loop also answered inside it. The timeline steps by answer time.
    pub(crate) fn answered(&mut self, ok: bool, sent_at: Instant, done: Instant) {
        self.progress.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors += 1;
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        let in_window = sent_at >= self.measure_from && sent_at < self.stop_at;
        let latency = (done - sent_at).as_nanos().max(1) as u64;
        if in_window && (self.open_loop || done <= self.stop_at) {
            self.calls += 1;
            let _ = self.histogram.record(latency);
        }
        if done >= self.measure_from {
            let index =
                ((done - self.measure_from).as_secs_f64() / self.step.as_secs_f64()) as usize;
            if let Some(step) = self.steps.get_mut(index) {
                if ok {
                    step.calls += 1;
                    let _ = step.latency_us.record((latency / 1000).max(1));
                } else {
                    step.errors += 1;
                }
            }
        }
    }

    /// Counts requests never answered (open loop, after the drain).
    pub(crate) fn unanswered(&mut self, count: u64) {
        self.errors += count;
        self.progress.errors.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts one step of an integration flow begun at `began` (only flows begun inside the
    /// window are measured).
    pub(crate) fn flow_step(
        &mut self,
        name: &'static str,
        ok: bool,
        flow_began: Instant,
        began: Instant,
        done: Instant,
    ) -> std::io::Result<()> {
        if flow_began < self.measure_from || flow_began >= self.stop_at {
            return Ok(());
        }
        let (histogram, errors) = match self.flow_steps.entry(name) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert((Histogram::new(3).map_err(std::io::Error::other)?, 0))
            }
        };
        if ok {
            let _ = histogram.record((done - began).as_nanos().max(1) as u64);
        } else {
            *errors += 1;
        }
        Ok(())
    }

    pub(crate) fn lagged(&mut self, due: Instant, sent: Instant) {
        let _ = self
            .send_lag
            .record(sent.saturating_duration_since(due).as_nanos().max(1) as u64);
    }

    pub(crate) fn merge(&mut self, other: &Recorder) -> std::io::Result<()> {
        self.histogram
            .add(&other.histogram)
            .map_err(std::io::Error::other)?;
        self.send_lag
            .add(&other.send_lag)
            .map_err(std::io::Error::other)?;
        self.calls += other.calls;
        self.errors += other.errors;
        for (name, (histogram, errors)) in &other.flow_steps {
            let (mine, my_errors) = match self.flow_steps.entry(name) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert((Histogram::new(3).map_err(std::io::Error::other)?, 0))
                }
            };
            mine.add(histogram).map_err(std::io::Error::other)?;
            *my_errors += errors;
        }
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.calls += theirs.calls;
            mine.errors += theirs.errors;
            mine.latency_us
                .add(&theirs.latency_us)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    pub(crate) fn into_run(self, plan: &LoadPlan) -> LoadRun {
        let seconds = plan.duration.as_secs_f64();
        let histogram = &self.histogram;
        let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        let step_s = self.step.as_secs_f64();
        let timeline = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| TimelineStep {
                t_s: (i + 1) as f64 * step_s,
                calls_per_sec: step.calls as f64 / step_s,
                errors: step.errors,
                p50_us: step.latency_us.value_at_quantile(0.5) as f64,
                p99_us: step.latency_us.value_at_quantile(0.99) as f64,
            })
            .collect();
        let percentiles = results::CURVE_PERCENTILES
            .iter()
            .map(|&percentile| PercentilePoint {
                percentile,
                latency_us: us(percentile / 100.0),
            })
            .collect();
        let report = LoadReport {
            connections: plan.connections,
            pipeline: plan.pipeline,
            seconds,
            calls: self.calls,
            calls_per_sec: self.calls as f64 / seconds,
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: histogram.max() as f64 / 1000.0,
            errors: self.errors,
            send_lag_p99_us: if self.open_loop {
                self.send_lag.value_at_quantile(0.99) as f64 / 1000.0
            } else {
                0.0
            },
        };
        let flow_steps = self
            .flow_steps
            .iter()
            .map(|(name, (histogram, errors))| FlowStepFigures {
                name,
                count: histogram.len(),
                errors: *errors,
                p50_us: histogram.value_at_quantile(0.5) as f64 / 1000.0,
                p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect();
        LoadRun {
            report,
            timeline,
            percentiles,
            measure_from: self.measure_from,
            flow_steps,
        }
    }
}

/// Shows how far a repeat is until `done()`: a bar on a terminal, a plain line a second
/// otherwise.
pub(crate) fn show_progress(
    label: &str,
    total: Duration,
    progress: &Progress,
    done: impl Fn() -> bool,
) {
    let began = Instant::now();
    let line = || {
        format!(
            "{:.1}/{:.1} s, {} calls, {} errors",
            began.elapsed().as_secs_f64(),
            total.as_secs_f64(),
            progress.calls.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed)
        )
    };
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:40}] {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        while !done() {
            bar.set_position(began.elapsed().as_millis() as u64);
            bar.set_message(line());
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    } else {
        let mut next = began + Duration::from_secs(1);
        while !done() {
            if Instant::now() >= next {
                eprintln!("erlmcp bench run: {label}: {}", line());
                next += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
