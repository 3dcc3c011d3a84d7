//! Owns the HTML reports of `erlmcp bench`: one per run (`report.html` beside results.json),
//! one per compare and one per history. Each is a single self-contained file: the charts are
//! drawn with plotters to SVG and inlined, there is no script and nothing is fetched from the
//! network. A chart that cannot be drawn says so in its place instead of failing the run.

use super::results::{PercentilePoint, Repeat, Results};
use plotters::prelude::*;
use std::fmt::Write as _;

/// A chart's size in pixels.
const SIZE: (u32, u32) = (860, 340);

/// One line of a chart.
pub(crate) struct Series {
    /// Its name in the legend.
    pub(crate) name: String,
    /// Its points, in x order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A chart of lines: its id (for the page), title, axis names and lines.
pub(crate) struct LineChart<'a> {
    pub(crate) id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) x: &'a str,
    pub(crate) y: &'a str,
    pub(crate) series: Vec<Series>,
    /// Whether x is "nines" of a percentile (−log10(1 − p)), labelled as percentiles.
    pub(crate) percentile_x: bool,
}

/// Escapes text for HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The x of a percentile on the curve's axis: its nines (50 → 0.3, 99 → 2, 99.9 → 3), capped.
pub(crate) fn nines(percentile: f64) -> f64 {
    (-(1.0 - percentile / 100.0).max(1e-5).log10()).max(0.0)
}

/// The percentile at `x` nines, for the axis labels.
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if p >= 99.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.0}%")
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = lo.min(0.0);
    if hi <= lo {
        (lo, lo + 1.0)
    } else {
        (lo, hi * 1.05)
    }
}

/// Draws a line chart to SVG; the page's `<figure>` around it.
pub(crate) fn line_chart(chart: &LineChart<'_>) -> String {
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = bounds(points.clone().map(|p| p.0));
    let (y0, y1) = bounds(points.map(|p| p.1));
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut area = ChartBuilder::on(&root)
            .caption(chart.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let percentile_axis = |x: &f64| percentile_label(x);
        let plain = |x: &f64| format!("{x:.1}");
        let mut mesh = area.configure_mesh();
        mesh.x_desc(chart.x).y_desc(chart.y);
        if chart.percentile_x {
            mesh.x_label_formatter(&percentile_axis);
        } else {
            mesh.x_label_formatter(&plain);
        }
        mesh.draw()?;
        for (i, series) in chart.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            area.draw_series(LineSeries::new(
                series.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        area.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })()
    .map_err(|e| e.to_string());
    figure(chart.id, chart.title, drawn.map(|()| svg))
}

/// Draws bars per category (one per series, side by side), horizontally, on a logarithmic axis.
pub(crate) fn bar_chart(
    id: &str,
    title: &str,
    x: &str,
    categories: &[String],
    series: &[Series],
) -> String {
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() {
        (lo / 2.0, hi * 4.0)
    } else {
        (1.0, 10.0)
    };
    let mut svg = String::new();
    let height = 90 + 26 * categories.len().max(1) as u32 * series.len().max(1) as u32;
    let width = 1.0 / (series.len().max(1) as f64 + 1.0);
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut area = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(180)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..categories.len().max(1) as f64)?;
        // A label at the middle of each category's band, none elsewhere.
        let label = |y: &f64| {
            let at = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 1e-6 {
                categories.get(at).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let ticks = |v: &f64| format!("{v:.0}");
        area.configure_mesh()
            .disable_y_mesh()
            .y_labels(categories.len() * 2 + 1)
            .y_label_formatter(&label)
            .x_label_formatter(&ticks)
            .x_desc(x)
            .draw()?;
        for (i, series) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            area.draw_series(series.points.iter().map(|&(at, v)| {
                let bottom = at + width * (i as f64 + 0.5);
                Rectangle::new([(lo, bottom), (v.max(lo), bottom + width)], color.filled())
            }))?
            .label(series.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        }
        area.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })()
    .map_err(|e| e.to_string());
    figure(id, title, drawn.map(|()| svg))
}

fn figure(id: &str, title: &str, drawn: Result<String, String>) -> String {
    match drawn {
        Ok(svg) => format!(
            "<figure class=\"chart\" id=\"{}\">{svg}<figcaption>{}</figcaption></figure>\n",
            escape(id),
            escape(title)
        ),
        Err(e) => format!(
            "<figure class=\"chart-failed\" id=\"{}\"><p>{}: not drawn ({})</p></figure>\n",
            escape(id),
            escape(title),
            escape(&e)
        ),
    }
}

/// The page around the body.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}\
         .bad{{color:#b00;font-weight:bold}}figure{{margin:1.5em 0}}figcaption{{color:#555;font-size:90%}}\
         pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head>\n<body>\n<h1>{}</h1>\n{body}</body></html>\n",
        escape(title),
        escape(title)
    )
}

/// The repeat whose throughput is nearest the median: the one the charts show.
pub(crate) fn typical(results: &Results) -> Option<&Repeat> {
    let figure = results
        .figures
        .keys()
        .find(|k| k.as_str() == "calls_per_sec" || k.as_str() == "knee_calls_per_sec")
        .or_else(|| results.figures.keys().find(|k| k.ends_with("ops_per_sec")))
        .cloned()?;
    let median = results.figures[&figure];
    results.repeats.iter().min_by(|a, b| {
        let d = |r: &Repeat| (r.figures.get(&figure).copied().unwrap_or(0.0) - median).abs();
        d(a).total_cmp(&d(b))
    })
}

fn curve(points: &[PercentilePoint]) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|p| (nines(p.percentile), p.latency_us))
        .collect()
}

/// The charts of one or more runs on shared axes: each run's typical repeat, named by `label`.
pub(crate) fn run_charts(runs: &[(&str, &Results)]) -> String {
    let mut html = String::new();
    let core = runs.iter().all(|(_, r)| r.profile == "core");
    let typical: Vec<(&str, &Repeat)> = runs
        .iter()
        .filter_map(|(label, r)| typical(r).map(|t| (*label, t)))
        .collect();
    let series = |pick: &dyn Fn(&Repeat) -> Vec<(f64, f64)>, what: &str| -> Vec<Series> {
        typical
            .iter()
            .map(|(label, repeat)| Series {
                name: if what.is_empty() {
                    (*label).to_owned()
                } else {
                    format!("{label} {what}")
                },
                points: pick(repeat),
            })
            .collect()
    };
    let timeline = |f: fn(&super::results::TimelineStep) -> f64| {
        move |r: &Repeat| r.timeline.iter().map(|s| (s.t_s, f(s))).collect::<Vec<_>>()
    };
    if core {
        html += &core_chart(runs);
    } else {
        let mut latency = series(&timeline(|s| s.p50_us), "p50");
        latency.extend(series(&timeline(|s| s.p99_us), "p99"));
        html += &line_chart(&LineChart {
            id: "latency-over-time",
            title: "Latency over time",
            x: "seconds",
            y: "µs",
            series: latency,
            percentile_x: false,
        });
        html += &line_chart(&LineChart {
            id: "percentile-curve",
            title: "Latency by percentile",
            x: "percentile",
            y: "µs",
            series: series(&|r| curve(&r.percentiles), ""),
            percentile_x: true,
        });
        html += &line_chart(&LineChart {
            id: "throughput-over-time",
            title: "Throughput over time",
            x: "seconds",
            y: "calls/s",
            series: series(&timeline(|s| s.calls_per_sec), ""),
            percentile_x: false,
        });
        html += &line_chart(&LineChart {
            id: "errors-over-time",
            title: "Errors over time",
            x: "seconds",
            y: "errors per step",
            series: series(&timeline(|s| s.errors as f64), ""),
            percentile_x: false,
        });
    }
    if typical.iter().any(|(_, r)| !r.stages.is_empty()) {
        let stage = |f: fn(&super::results::Stage) -> f64| {
            move |r: &Repeat| {
                r.stages
                    .iter()
                    .map(|s| (s.rate_per_sec, f(s)))
                    .collect::<Vec<_>>()
            }
        };
        html += &line_chart(&LineChart {
            id: "stress-p99",
            title: "p99 by offered rate (the stress ramp)",
            x: "offered calls/s",
            y: "µs",
            series: series(&stage(|s| s.p99_us), "p99"),
            percentile_x: false,
        });
        html += &line_chart(&LineChart {
            id: "stress-answered",
            title: "Answered by offered rate (the stress ramp)",
            x: "offered calls/s",
            y: "answered calls/s",
            series: series(&stage(|s| s.calls_per_sec), ""),
            percentile_x: false,
        });
    }
    if typical.iter().any(|(_, r)| !r.node.is_empty()) {
        let rss = |r: &Repeat| {
            r.node
                .iter()
                .map(|s| (s.t_s, s.rss_bytes as f64 / (1024.0 * 1024.0)))
                .collect()
        };
        html += &line_chart(&LineChart {
            id: "node-rss",
            title: "The node's resident memory",
            x: "seconds (warm-up included)",
            y: "MiB",
            series: series(&rss, ""),
            percentile_x: false,
        });
        let cpu = |r: &Repeat| r.node.iter().map(|s| (s.t_s, s.cpu_percent)).collect();
        html += &line_chart(&LineChart {
            id: "node-cpu",
            title: "The node's CPU (100% = one core)",
            x: "seconds (warm-up included)",
            y: "%",
            series: series(&cpu, ""),
            percentile_x: false,
        });
    }
    html
}

/// The core profile: operations per second of each operation, erlmcp's beside its baseline's.
fn core_chart(runs: &[(&str, &Results)]) -> String {
    let Some((_, first)) = runs.first() else {
        return String::new();
    };
    let categories: Vec<String> = first
        .figures
        .keys()
        .filter_map(|k| k.strip_suffix("_erlmcp_ops_per_sec"))
        .map(str::to_owned)
        .collect();
    let mut series = Vec::new();
    for (label, results) in runs {
        for side in ["erlmcp", "baseline"] {
            let points = categories
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let value = results
                        .figures
                        .get(&format!("{name}_{side}_ops_per_sec"))
                        .copied()
                        .unwrap_or(0.0);
                    (i as f64, value)
                })
                .collect();
            let name = if runs.len() == 1 {
                side.to_owned()
            } else {
                format!("{label} {side}")
            };
            series.push(Series { name, points });
        }
    }
    bar_chart(
        "core-ops",
        "Operations per second, one thread",
        "ops/s",
        &categories,
        &series,
    )
}

/// A table of figures: name, value, and the spread over repeats when there are several.
pub(crate) fn figures_table(results: &Results) -> String {
    let mut html = String::from(
        "<table id=\"figures\"><tr><th>figure</th><th>median</th><th>min</th><th>max</th><th>spread</th></tr>\n",
    );
    for (name, value) in &results.figures {
        let spread = results.spread.get(name);
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{value:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}%</td></tr>",
            escape(name),
            spread.map_or(*value, |s| s.min),
            spread.map_or(*value, |s| s.max),
            spread.map_or(0.0, |s| s.relative * 100.0),
        );
    }
    html + "</table>\n"
}

/// The chaos profile's faults of each repeat: when, what came back when, requests failed,
/// connections opened again, acknowledged writes not read back.
fn faults_table(results: &Results) -> String {
    if results.repeats.iter().all(|r| r.faults.is_empty()) {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Faults</h2><table id=\"faults\"><tr><th>repeat</th><th>fault</th><th>at s</th>\
         <th>component back ms</th><th>load back ms</th><th>requests failed</th>\
         <th>connections reopened</th><th>lost writes</th><th>error</th></tr>\n",
    );
    let ms = |us: Option<f64>| {
        us.map_or_else(|| "not back".to_owned(), |us| format!("{:.1}", us / 1000.0))
    };
    for (i, repeat) in results.repeats.iter().enumerate() {
        for fault in &repeat.faults {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                escape(&fault.actor),
                fault.at_s,
                ms(fault.component_back_us),
                ms(fault.recovered_us),
                fault.failed,
                fault.reopened,
                fault
                    .lost_writes
                    .map_or_else(|| "not read".to_owned(), |lost| lost.to_string()),
                escape(fault.error.as_deref().unwrap_or("")),
            );
        }
    }
    html + "</table>\n"
}

/// The report of one run.
pub(crate) fn run_report(results: &Results) -> String {
    let mut body = format!(
        "<p>profile <b>{}</b>, commit <code>{}</code>, {} repeat(s); {} cores, {}, kernel {}</p>\n",
        escape(&results.profile),
        escape(&results.commit),
        results.repeats.len(),
        results.machine.cores,
        escape(&results.machine.cpu_model),
        escape(&results.machine.kernel),
    );
    body += &run_charts(&[("run", results)]);
    body += &faults_table(results);
    body += "<h2>Figures</h2>\n";
    body += &figures_table(results);
    let config = serde_json::to_string_pretty(&results.config).unwrap_or_default();
    body += &format!("<h2>Config</h2><pre>{}</pre>\n", escape(&config));
    page(&format!("erlmcp bench: {}", results.profile), &body)
}
