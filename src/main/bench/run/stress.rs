//! Owns the stress profile of `erlmcp bench run`: open-loop stages at rates rising by `--ramp`
//! until one breaks the SLO (`--slo-p99-us`, no error, 95% of the rate answered); the knee is the
//! last rate that held it.

use super::{Load, Profile, RunArgs, load_repeat};
use crate::bench::LoadPlan;
use crate::bench::results::{NodeSample, Repeat, Stage};
use std::collections::BTreeMap;
use std::path::Path;

/// The stress profile's first rate when `--rate` is not given.
pub(super) const STRESS_START_RATE: f64 = 1_000.0;

/// One repeat of the stress profile: stages at rising rates until one breaks the SLO. Its
/// timeline and percentiles are the knee stage's; its node samples span every stage.
pub(super) fn stress_repeat(
    args: &RunArgs,
    plan: LoadPlan,
    node: Option<u32>,
    label: &str,
) -> std::io::Result<Repeat> {
    let mut rate = plan.rate.unwrap_or(STRESS_START_RATE);
    let mut stages = Vec::new();
    let mut knee: Option<Repeat> = None;
    let mut samples = Vec::new();
    let mut offset = 0.0;
    for _ in 0..args.max_stages {
        let stage_plan = LoadPlan {
            rate: Some(rate),
            ..plan
        };
        let stage_label = format!("{label} at {rate:.0}/s");
        let load = Load {
            profile: Profile::Stress,
            chaos: None,
            stdio_home: Path::new(""),
        };
        let measured = match load_repeat(&load, stage_plan, node, &stage_label) {
            Ok(measured) => measured,
            // Past the first stage, a connection the overloaded node broke ends the ramp: that
            // stage did not hold.
            Err(e) if !stages.is_empty() => {
                eprintln!("erlmcp bench run: {stage_label}: {e}");
                stages.push(Stage {
                    rate_per_sec: rate,
                    calls_per_sec: 0.0,
                    p99_us: 0.0,
                    errors: 0,
                    held: false,
                });
                break;
            }
            Err(e) => return Err(e),
        };
        let figure = |name: &str| measured.figures.get(name).copied().unwrap_or(0.0);
        let held = figure("p99_us") <= args.slo_p99_us
            && figure("errors") == 0.0
            && figure("calls_per_sec") >= 0.95 * rate;
        stages.push(Stage {
            rate_per_sec: rate,
            calls_per_sec: figure("calls_per_sec"),
            p99_us: figure("p99_us"),
            errors: figure("errors") as u64,
            held,
        });
        samples.extend(measured.node.iter().map(|s| NodeSample {
            t_s: s.t_s + offset,
            ..s.clone()
        }));
        offset += (plan.warmup + plan.duration).as_secs_f64();
        if !held {
            break;
        }
        knee = Some(measured);
        rate *= args.ramp;
    }
    let knee_figure = |name: &str| {
        knee.as_ref()
            .and_then(|k| k.figures.get(name).copied())
            .unwrap_or(0.0)
    };
    let mut figures = BTreeMap::from([
        (
            "knee_calls_per_sec".to_owned(),
            knee_figure("calls_per_sec"),
        ),
        ("stages".to_owned(), stages.len() as f64),
        (
            "stages_held".to_owned(),
            stages.iter().filter(|s| s.held).count() as f64,
        ),
    ]);
    // A p99 only where a stage held: none is made up when the first stage did not.
    if knee.is_some() {
        figures.insert("knee_p99_us".to_owned(), knee_figure("p99_us"));
    }
    let (timeline, percentiles) =
        knee.map_or_else(Default::default, |k| (k.timeline, k.percentiles));
    Ok(Repeat {
        figures,
        timeline,
        percentiles,
        node: samples,
        faults: Vec::new(),
        stages,
    })
}
