//! Owns what `erlmcp bench store` and `erlmcp bench core` print: the state store's figures
//! (measured by `erlmcp::transport::http::kept`) and the core operations' table beside their
//! baselines (measured by `erlmcp::core_bench`).

/// `erlmcp bench store`: measures the store with typical session records and prints the figures.
pub(crate) fn store(
    sessions: usize,
    dir: Option<std::path::PathBuf>,
    keep: bool,
    json: bool,
) -> std::io::Result<()> {
    let scratch = dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("erlmcp-bench-store-{}", std::process::id()));
    let measured = erlmcp::transport::http::kept::snapshot_figures(&scratch, sessions);
    if keep {
        eprintln!("the store's files are kept in {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let figures = measured.map_err(std::io::Error::other)?;
    if json {
        println!("{}", serde_json::to_string(&figures).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{} sessions ({} bytes each, bincode): snapshot {:.0} ms, {} bytes ({:.1} per session); \
         restore {:.0} ms; puts through the change log {:.0}/s unsynced, {:.0}/s fsynced; \
         {:.0} bytes of memory per session held; the same puts into redb (a transaction each): \
         {:.0}/s Durability::None, {:.0}/s Durability::Immediate",
        figures.entries,
        figures.value_bytes,
        figures.snapshot_ms,
        figures.snapshot_bytes,
        figures.snapshot_bytes_per_entry,
        figures.restore_ms,
        figures.logged_puts_per_sec,
        figures.fsynced_puts_per_sec,
        figures.memory_bytes_per_entry,
        figures.redb_unsynced_puts_per_sec,
        figures.redb_fsynced_puts_per_sec,
    );
    Ok(())
}

/// Prints `erlmcp bench core`'s report: a table, or one JSON object.
pub(crate) fn print_core(report: &erlmcp::core_bench::CoreReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    println!(
        "{:<24} {:<9} {:>14} {:>9} {:>9}  through",
        "operation", "side", "ops/s", "p50 ns", "p99 ns"
    );
    for op in &report.ops {
        println!(
            "{:<24} {:<9} {:>14.0} {:>9.1} {:>9.1}  {}",
            op.name, op.side, op.ops_per_sec, op.p50_ns, op.p99_ns, op.through
        );
    }
    for (name, ratio) in &report.time_ratio_vs_baseline {
        println!("{name}: erlmcp's time / baseline's = {ratio:.2}");
    }
    println!(
        "mix of {} on {} threads: {:.0} ops/s (p50 {:.1} ns, p99 {:.1} ns per operation)",
        report.mix.join(" + "),
        report.mix_threads,
        report.mix_ops_per_sec,
        report.mix_p50_ns,
        report.mix_p99_ns,
    );
    println!(
        "the same mix of the baselines on {} threads: {:.0} ops/s (erlmcp's mix / theirs = {:.2})",
        report.mix_threads,
        report.baseline_mix_ops_per_sec,
        report.mix_ops_per_sec / report.baseline_mix_ops_per_sec.max(1.0),
    );
    println!(
        "core mix of {} on {} threads: {:.0} ops/s; of the baselines: {:.0} ops/s (ratio {:.2})",
        report.core_mix.join(" + "),
        report.mix_threads,
        report.core_mix_ops_per_sec,
        report.baseline_core_mix_ops_per_sec,
        report.core_mix_ops_per_sec / report.baseline_core_mix_ops_per_sec.max(1.0),
    );
    for alone in &report.on_all_threads {
        println!(
            "{} alone on {} threads: {:.0} ops/s; its baseline: {:.0} ops/s (ratio {:.2})",
            alone.name,
            alone.threads,
            alone.ops_per_sec,
            alone.baseline_ops_per_sec,
            alone.ops_per_sec / alone.baseline_ops_per_sec.max(1.0),
        );
    }
}
