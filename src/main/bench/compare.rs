//! Owns `erlmcp bench compare` (the regression gate: every figure's change between two runs,
//! exit 1 when a throughput falls by more than the threshold or a p99 rises by more than twice
//! it) and `erlmcp bench history` (the figures of many runs in a folder, as a table and a chart).

use super::report::{self, LineChart, Series, escape};
use super::results::{Results, ResultsError};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One figure's change between the baseline and the current run.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The figure.
    pub(crate) name: String,
    /// The baseline's value.
    pub(crate) baseline: f64,
    /// The current run's value.
    pub(crate) current: f64,
    /// (current − baseline) / baseline; 0 when both are 0, infinite from 0 to more.
    pub(crate) relative: f64,
    /// Why this is a regression, if it is one.
    pub(crate) regression: Option<String>,
}

/// Compares every figure both runs have. A throughput (`*calls_per_sec`, `*ops_per_sec`) that falls by more than
/// `threshold`, or a p99 latency (`*p99*_us`) that rises by more than twice it, is a regression
/// (figures of baselines excepted).
pub(crate) fn compare(current: &Results, baseline: &Results, threshold: f64) -> Vec<Change> {
    current
        .figures
        .iter()
        .filter_map(|(name, &now)| {
            let &before = baseline.figures.get(name)?;
            let relative = if before == 0.0 {
                if now == 0.0 { 0.0 } else { f64::INFINITY }
            } else {
                (now - before) / before.abs()
            };
            // A baseline's figures (core's plain operations) are the machine's, not erlmcp's:
            // shown, never gated.
            let gated = !name.contains("baseline");
            let regression = if !gated {
                None
            } else if is_throughput(name) && relative < -threshold {
                Some(format!(
                    "{name} fell {:.1}% (more than {:.1}%)",
                    -relative * 100.0,
                    threshold * 100.0
                ))
            } else if is_p99(name) && relative > 2.0 * threshold {
                Some(format!(
                    "{name} rose {:.1}% (more than {:.1}%)",
                    relative * 100.0,
                    2.0 * threshold * 100.0
                ))
            } else {
                None
            };
            Some(Change {
                name: name.clone(),
                baseline: before,
                current: now,
                relative,
                regression,
            })
        })
        .collect()
}

/// Whether a figure is a throughput (`calls_per_sec`, `<operation>_ops_per_sec`): a rate of
/// work done, where less is worse (unlike `node_rss_slope_bytes_per_sec`).
fn is_throughput(name: &str) -> bool {
    name.ends_with("calls_per_sec") || name.ends_with("ops_per_sec")
}

/// Whether a figure is a p99 latency of requests (`p99_us`, `<operation>_p99_us`); the
/// generator's own send lag is not one.
fn is_p99(name: &str) -> bool {
    (name == "p99_us" || name.ends_with("_p99_us")) && !name.starts_with("send_lag")
}

/// Prints the changes as a table.
pub(crate) fn print_changes(changes: &[Change]) {
    println!(
        "{:<44} {:>14} {:>14} {:>9}",
        "figure", "baseline", "current", "change"
    );
    for change in changes {
        println!(
            "{:<44} {:>14.1} {:>14.1} {:>8.1}%{}",
            change.name,
            change.baseline,
            change.current,
            change.relative * 100.0,
            if change.regression.is_some() {
                "  REGRESSION"
            } else {
                ""
            }
        );
    }
}

/// The compare report: the table of changes and both runs on the same charts.
pub(crate) fn compare_report(current: &Results, baseline: &Results, changes: &[Change]) -> String {
    let mut body = format!(
        "<p>current: commit <code>{}</code>; baseline: commit <code>{}</code>; profile <b>{}</b></p>\n",
        escape(&current.commit),
        escape(&baseline.commit),
        escape(&current.profile)
    );
    let regressions: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.regression.as_deref())
        .collect();
    if regressions.is_empty() {
        body += "<p id=\"verdict\">no regression</p>\n";
    } else {
        body += "<p id=\"verdict\" class=\"bad\">regressions:</p><ul>";
        for r in &regressions {
            let _ = write!(body, "<li class=\"bad\">{}</li>", escape(r));
        }
        body += "</ul>\n";
    }
    body += "<table id=\"changes\"><tr><th>figure</th><th>baseline</th><th>current</th><th>change</th></tr>\n";
    for c in changes {
        let _ = writeln!(
            body,
            "<tr{}><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:+.1}%</td></tr>",
            if c.regression.is_some() {
                " class=\"bad\""
            } else {
                ""
            },
            escape(&c.name),
            c.baseline,
            c.current,
            c.relative * 100.0
        );
    }
    body += "</table>\n";
    body += &report::run_charts(&[("current", current), ("baseline", baseline)]);
    report::page("erlmcp bench compare", &body)
}

/// Every results.json in `dir` (itself, and its subfolders one level down), oldest first.
pub(crate) fn history_runs(dir: &Path) -> Result<Vec<(PathBuf, Results)>, ResultsError> {
    let io = |source| ResultsError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths = vec![dir.join("results.json")];
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path().join("results.json"));
    }
    let mut runs = Vec::new();
    for path in paths.into_iter().filter(|p| p.is_file()) {
        let results = Results::read(&path)?;
        runs.push((path, results));
    }
    runs.sort_by(|a, b| (a.1.started_at, &a.0).cmp(&(b.1.started_at, &b.0)));
    Ok(runs)
}

/// The figures the history shows: every throughput and every p99 the runs have.
fn history_figures(runs: &[(PathBuf, Results)]) -> Vec<String> {
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|(_, r)| r.figures.keys())
        .filter(|k| is_throughput(k) || is_p99(k) || *k == "errors")
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Prints the history as a table: a row per run.
pub(crate) fn print_history(runs: &[(PathBuf, Results)]) {
    let names = history_figures(runs);
    print!(
        "{:<4} {:<12} {:<8} {:<10}",
        "#", "commit", "profile", "started"
    );
    for name in &names {
        print!(" {name:>16}");
    }
    println!();
    for (i, (_, r)) in runs.iter().enumerate() {
        print!(
            "{:<4} {:<12} {:<8} {:<10}",
            i + 1,
            r.commit.chars().take(12).collect::<String>(),
            r.profile,
            r.started_at
        );
        for name in &names {
            match r.figures.get(name) {
                Some(v) => print!(" {v:>16.1}"),
                None => print!(" {:>16}", "-"),
            }
        }
        println!();
    }
}

/// The history report: each figure over the runs, throughputs on one chart, p99s on another.
pub(crate) fn history_report(runs: &[(PathBuf, Results)]) -> String {
    let names = history_figures(runs);
    let over_runs = |filter: &dyn Fn(&str) -> bool| -> Vec<Series> {
        names
            .iter()
            .filter(|n| filter(n))
            .map(|name| Series {
                name: name.clone(),
                points: runs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, r))| r.figures.get(name).map(|v| ((i + 1) as f64, *v)))
                    .collect(),
            })
            .collect()
    };
    let mut body = format!("<p>{} runs, oldest first</p>\n", runs.len());
    body +=
        "<table id=\"runs\"><tr><th>#</th><th>commit</th><th>profile</th><th>folder</th></tr>\n";
    for (i, (path, r)) in runs.iter().enumerate() {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            escape(&r.commit.chars().take(12).collect::<String>()),
            escape(&r.profile),
            escape(
                &path
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        );
    }
    body += "</table>\n";
    body += &report::line_chart(&LineChart {
        id: "history-throughput",
        title: "Throughput over runs",
        x: "run",
        y: "per second",
        series: over_runs(&|n| is_throughput(n)),
        percentile_x: false,
    });
    body += &report::line_chart(&LineChart {
        id: "history-p99",
        title: "p99 latency over runs",
        x: "run",
        y: "µs",
        series: over_runs(&|n| is_p99(n)),
        percentile_x: false,
    });
    report::page("erlmcp bench history", &body)
}

/// `erlmcp bench compare`: 0 when no figure regressed, 1 when one did (each named), 2 when a
/// run cannot be read or the threshold is not a fraction.
pub(crate) fn command(
    current: &Path,
    baseline: &Path,
    threshold: f64,
    out: Option<&Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    if !(threshold.is_finite() && threshold >= 0.0) {
        eprintln!("erlmcp bench compare: --threshold must be a fraction (0.10 is 10%)");
        return ExitCode::from(2);
    }
    let (current, baseline) = match (Results::read(current), Results::read(baseline)) {
        (Ok(c), Ok(b)) => (c, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("erlmcp bench compare: {e}");
            return ExitCode::from(2);
        }
    };
    if current.profile != baseline.profile {
        eprintln!(
            "erlmcp bench compare: profiles differ ({} against {}): only shared figures compared",
            current.profile, baseline.profile
        );
    }
    let changes = compare(&current, &baseline, threshold);
    print_changes(&changes);
    if let Some(out) = out {
        let written = std::fs::create_dir_all(out).and_then(|()| {
            std::fs::write(
                out.join("compare.html"),
                compare_report(&current, &baseline, &changes),
            )
        });
        match written {
            Ok(()) => println!("wrote {}", out.join("compare.html").display()),
            Err(e) => {
                eprintln!("erlmcp bench compare: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let regressions: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.regression.as_deref())
        .collect();
    if regressions.is_empty() {
        println!("no regression (threshold {:.1}%)", threshold * 100.0);
        ExitCode::SUCCESS
    } else {
        for regression in regressions {
            println!("regression: {regression}");
        }
        ExitCode::FAILURE
    }
}

/// `erlmcp bench history`: 0 with the table printed and history.html written; 1 when the
/// folder holds no run or one cannot be read.
pub(crate) fn history_command(dir: &Path, out: Option<&Path>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let runs = match history_runs(dir) {
        Ok(runs) if !runs.is_empty() => runs,
        Ok(_) => {
            eprintln!(
                "erlmcp bench history: no results.json in {} or its folders",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("erlmcp bench history: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_history(&runs);
    let out = out.unwrap_or(dir);
    let path = out.join("history.html");
    match std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, history_report(&runs))) {
        Ok(()) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("erlmcp bench history: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn results(calls: f64, p99: f64) -> Results {
        Results {
            schema: super::super::results::SCHEMA,
            started_at: 0,
            machine: super::super::results::Machine::this(),
            commit: "unknown".into(),
            profile: "tcp".into(),
            config: serde_json::Value::Null,
            figures: BTreeMap::from([
                ("calls_per_sec".to_owned(), calls),
                ("p99_us".to_owned(), p99),
                ("p50_us".to_owned(), 10.0),
            ]),
            spread: BTreeMap::new(),
            repeats: Vec::new(),
        }
    }

    #[test]
    fn a_fall_in_throughput_or_a_rise_in_p99_past_the_threshold_is_a_regression() {
        let base = results(1000.0, 100.0);
        let regressions = |c: &Results| {
            compare(c, &base, 0.10)
                .into_iter()
                .filter_map(|c| c.regression.map(|_| c.name))
                .collect::<Vec<_>>()
        };
        assert!(regressions(&results(1000.0, 100.0)).is_empty());
        assert!(regressions(&results(910.0, 119.0)).is_empty());
        assert_eq!(regressions(&results(890.0, 100.0)), ["calls_per_sec"]);
        assert_eq!(regressions(&results(1000.0, 121.0)), ["p99_us"]);
        // p99.9 and the generator's send lag are reported, never gated.
        let mut tail = results(1000.0, 100.0);
        tail.figures.insert("p999_us".into(), 500.0);
        tail.figures.insert("send_lag_p99_us".into(), 500.0);
        let mut base_tail = base.clone();
        base_tail.figures.insert("p999_us".into(), 100.0);
        base_tail.figures.insert("send_lag_p99_us".into(), 1.0);
        assert!(
            compare(&tail, &base_tail, 0.10)
                .iter()
                .all(|c| c.regression.is_none())
        );
        // p50 is reported, never gated.
        let mut slower_median = results(1000.0, 100.0);
        slower_median.figures.insert("p50_us".into(), 50.0);
        assert!(regressions(&slower_median).is_empty());
    }
}
