//! Owns the Prometheus text exposition (format 0.0.4) of a node's metrics: counters since start,
//! gauges from the newest sample, latency summaries from the collector's cumulative histograms.

use crate::metrics::collector::MetricsHub;
use std::fmt::Write as _;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family with one sample, labelled with the node only.
fn single(
    out: &mut String,
    node: &str,
    (name, kind, help): (&str, &str, &str),
    value: impl std::fmt::Display,
) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
}

/// The exposition of `hub`, labelled with the node's name.
pub(crate) fn render(hub: &MetricsHub, node: &str) -> String {
    let mut out = String::with_capacity(4096);
    let counts = hub.metrics.counts();
    for (name, help, errors) in [
        (
            "erlmcp_requests_total",
            "Requests answered, by method.",
            false,
        ),
        (
            "erlmcp_request_errors_total",
            "Requests answered with a JSON-RPC error, by method.",
            true,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for (method, requests, failed) in &counts {
            let value = if errors { failed } else { requests };
            let _ = writeln!(out, "{name}{{node=\"{node}\",method=\"{method}\"}} {value}");
        }
    }
    family(
        &mut out,
        "erlmcp_request_duration_seconds",
        "summary",
        "Time from a request's arrival to its answer, by method (as of the last sample).",
    );
    for (method, latency, sum) in hub.totals() {
        for (q, v) in [
            ("0.5", latency.p50),
            ("0.95", latency.p95),
            ("0.99", latency.p99),
        ] {
            let _ = writeln!(
                out,
                "erlmcp_request_duration_seconds{{node=\"{node}\",method=\"{method}\",quantile=\"{q}\"}} {}",
                v as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "erlmcp_request_duration_seconds_sum{{node=\"{node}\",method=\"{method}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "erlmcp_request_duration_seconds_count{{node=\"{node}\",method=\"{method}\"}} {}",
            latency.count
        );
    }
    use std::sync::atomic::Ordering::Relaxed;
    single(
        &mut out,
        node,
        (
            "erlmcp_received_bytes_total",
            "counter",
            "Bytes of client messages received.",
        ),
        hub.metrics.bytes_in.load(Relaxed),
    );
    single(
        &mut out,
        node,
        (
            "erlmcp_sent_bytes_total",
            "counter",
            "Bytes of answers sent.",
        ),
        hub.metrics.bytes_out.load(Relaxed),
    );
    single(
        &mut out,
        node,
        (
            "erlmcp_stray_responses_total",
            "counter",
            "Responses from clients that matched no pending request (dropped).",
        ),
        hub.metrics.stray_responses.load(Relaxed),
    );
    family(
        &mut out,
        "erlmcp_connections",
        "gauge",
        "Connections open (HTTP: sessions), by transport.",
    );
    for (transport, n) in hub.metrics.connections() {
        let _ = writeln!(
            out,
            "erlmcp_connections{{node=\"{node}\",transport=\"{}\"}} {n}",
            transport.as_str()
        );
    }
    admission(&mut out, hub, node);
    if let Some(sample) = hub.latest() {
        single(
            &mut out,
            node,
            (
                "erlmcp_connections_refused_total",
                "counter",
                "Connections refused over max_connections.",
            ),
            sample.refused,
        );
        single(
            &mut out,
            node,
            ("erlmcp_sessions", "gauge", "MCP sessions alive."),
            sample.sessions,
        );
        single(
            &mut out,
            node,
            (
                "erlmcp_sessions_hibernating",
                "gauge",
                "MCP sessions hibernating (no actor until they hold something: a subscription, a listen).",
            ),
            sample.sessions_hibernating,
        );
        family(
            &mut out,
            "erlmcp_supervisor_restarts_total",
            "counter",
            "Restarts performed, by supervisor.",
        );
        for r in &sample.restarts {
            let _ = writeln!(
                out,
                "erlmcp_supervisor_restarts_total{{node=\"{node}\",supervisor=\"{}\"}} {}",
                r.supervisor, r.restarts
            );
        }
        single(
            &mut out,
            node,
            (
                "erlmcp_resident_memory_bytes",
                "gauge",
                "Resident memory of the node.",
            ),
            sample.rss_bytes,
        );
        single(
            &mut out,
            node,
            (
                "erlmcp_cpu_seconds_total",
                "counter",
                "CPU time used by the node.",
            ),
            sample.cpu_seconds,
        );
        family(
            &mut out,
            "erlmcp_alert_firing",
            "gauge",
            "1 for each alert firing.",
        );
        for alert in ["cpu", "memory", "p99_latency", "error_rate", "tls_reload"] {
            let firing = u8::from(sample.alerts.iter().any(|a| a == alert));
            let _ = writeln!(
                out,
                "erlmcp_alert_firing{{node=\"{node}\",alert=\"{alert}\"}} {firing}"
            );
        }
    }
    pools(&mut out, node, &crate::pool::named::all_stats());
    cache(&mut out, node, &crate::cache::stats());
    forwards(&mut out, node);
    if let Some(store) = crate::store::current() {
        self::store(&mut out, node, &store.stats());
    }
    if let Some(auth) = crate::auth::current() {
        self::auth(&mut out, node, &auth.stats());
    }
    out
}

/// Authorization: requests refused for their token, by reason; calls the rules refused.
fn auth(out: &mut String, node: &str, stats: &crate::auth::AuthStats) {
    family(
        out,
        "erlmcp_auth_refusals_total",
        "counter",
        "HTTP requests refused for their access token (401/403), by reason.",
    );
    for (reason, count) in stats.refusals {
        let _ = writeln!(
            out,
            "erlmcp_auth_refusals_total{{node=\"{node}\",reason=\"{reason}\"}} {count}"
        );
    }
    single(
        out,
        node,
        (
            "erlmcp_auth_denials_total",
            "counter",
            "Tool calls, resource reads and prompt gets refused by auth.rules.",
        ),
        stats.denials,
    );
}

/// The result cache, one sample per tier of each family.
fn cache(out: &mut String, node: &str, tiers: &[crate::cache::TierStats]) {
    type Figure = fn(&crate::cache::TierStats) -> f64;
    let families: [(&str, &str, &str, Figure); 6] = [
        (
            "erlmcp_cache_entries",
            "gauge",
            "Entries held by the cache tier.",
            |t| t.entries as f64,
        ),
        (
            "erlmcp_cache_bytes",
            "gauge",
            "Bytes held by the cache tier.",
            |t| t.bytes as f64,
        ),
        (
            "erlmcp_cache_hits_total",
            "counter",
            "Lookups the cache tier answered.",
            |t| t.hits as f64,
        ),
        (
            "erlmcp_cache_misses_total",
            "counter",
            "Lookups the cache tier did not answer.",
            |t| t.misses as f64,
        ),
        (
            "erlmcp_cache_hit_ratio",
            "gauge",
            "Hits over lookups of the cache tier since start.",
            |t| t.hit_ratio,
        ),
        (
            "erlmcp_cache_evictions_total",
            "counter",
            "Entries evicted from the cache tier to stay in its bounds.",
            |t| t.evictions as f64,
        ),
    ];
    if tiers.is_empty() {
        return;
    }
    for (name, kind, help, figure) in families {
        family(out, name, kind, help);
        for tier in tiers {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",tier=\"{}\"}} {}",
                format!("{:?}", tier.tier).to_lowercase(),
                figure(tier)
            );
        }
    }
    if let Some(remote) = tiers.iter().find_map(|t| t.remote.as_ref()) {
        family(
            out,
            "erlmcp_cache_l2_remote_gets_total",
            "counter",
            "L2 gets sent to the key's owner (another member), by what came back.",
        );
        for (result, count) in [
            ("hit", remote.hits),
            ("miss", remote.misses),
            ("timeout", remote.timeouts),
        ] {
            let _ = writeln!(
                out,
                "erlmcp_cache_l2_remote_gets_total{{node=\"{node}\",result=\"{result}\"}} {count}"
            );
        }
        family(
            out,
            "erlmcp_cache_l2_puts_dropped_total",
            "counter",
            "L2 puts not sent to the key's owner: the outbox was full, or the value too large.",
        );
        let _ = writeln!(
            out,
            "erlmcp_cache_l2_puts_dropped_total{{node=\"{node}\"}} {}",
            remote.puts_dropped
        );
    }
}

/// Requests this node forwarded to their owner, by the way they went (in a cluster only).
fn forwards(out: &mut String, node: &str) {
    if crate::cluster::current().is_none() {
        return;
    }
    let counts = crate::cluster::forwards::FORWARDS.counts();
    family(
        out,
        "erlmcp_forwards_total",
        "counter",
        "Requests forwarded to their session's or task's node, by lane: http (the forwarding lane) or rpc (the cluster RPC).",
    );
    for (lane, count) in [("http", counts.lane), ("rpc", counts.rpc)] {
        let _ = writeln!(
            out,
            "erlmcp_forwards_total{{node=\"{node}\",lane=\"{lane}\"}} {count}"
        );
    }
    single(
        out,
        node,
        (
            "erlmcp_forward_lane_fallbacks_total",
            "counter",
            "Forwards meant for the HTTP lane sent over the cluster RPC (the owner's listener not known or not reachable).",
        ),
        counts.lane_fallbacks,
    );
}

/// The state store: entries and changes per table; the change log's bytes, snapshots written and
/// the last snapshot's age.
fn store(out: &mut String, node: &str, stats: &crate::store::StoreStats) {
    type Figure = fn(&crate::store::stats::TableStats) -> u64;
    let per_table: [(&str, &str, &str, Figure); 2] = [
        (
            "erlmcp_store_entries",
            "gauge",
            "Entries held by the state store's table.",
            |t| t.entries as u64,
        ),
        (
            "erlmcp_store_changes_total",
            "counter",
            "Changes to the state store's table since start (puts, and deletes that removed something).",
            |t| t.changes,
        ),
    ];
    for (name, kind, help, figure) in per_table {
        family(out, name, kind, help);
        for table in &stats.tables {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",table=\"{}\"}} {}",
                table.name,
                figure(table)
            );
        }
    }
    single(
        out,
        node,
        (
            "erlmcp_store_log_bytes",
            "gauge",
            "Bytes of the state store's change logs on disk.",
        ),
        stats.log_bytes,
    );
    single(
        out,
        node,
        (
            "erlmcp_store_snapshots_total",
            "counter",
            "State store snapshots written since start.",
        ),
        stats.snapshots_written,
    );
    if let Some(snapshot) = &stats.last_snapshot {
        single(
            out,
            node,
            (
                "erlmcp_store_last_snapshot_age_seconds",
                "gauge",
                "Seconds since the newest state store snapshot on disk was written.",
            ),
            snapshot.age_seconds,
        );
    }
}

/// The admission point: requests in progress, capacity, and shed requests by method, transport
/// and reason; the memory guard's state.
fn admission(out: &mut String, hub: &MetricsHub, node: &str) {
    let stats = hub.admission.stats();
    single(
        out,
        node,
        (
            "erlmcp_queue_in_progress",
            "gauge",
            "Requests in progress at the admission point.",
        ),
        stats.in_progress,
    );
    single(
        out,
        node,
        (
            "erlmcp_queue_capacity",
            "gauge",
            "Requests in progress the admission point accounts for.",
        ),
        stats.capacity,
    );
    single(
        out,
        node,
        (
            "erlmcp_queue_admitted_total",
            "counter",
            "Requests admitted since start.",
        ),
        stats.admitted,
    );
    family(
        out,
        "erlmcp_shed_total",
        "counter",
        "Requests shed (answered -32000 / 503), by method, transport and reason.",
    );
    for shed in &stats.shed {
        let _ = writeln!(
            out,
            "erlmcp_shed_total{{node=\"{node}\",method=\"{}\",transport=\"{}\",reason=\"{}\"}} {}",
            shed.method, shed.transport, shed.reason, shed.count
        );
    }
    single(
        out,
        node,
        (
            "erlmcp_rate_limited_connections_total",
            "counter",
            "Connections refused for rate_limit.connections_per_address since start (requests and \
             sessions over their rate are erlmcp_shed_total{reason=\"rate_limit\"}).",
        ),
        hub.admission.rate().refused_connections(),
    );
    single(
        out,
        node,
        (
            "erlmcp_memory_guard_over",
            "gauge",
            "1 while the memory guard sheds new sessions and work (memory_limit), else 0.",
        ),
        u8::from(stats.memory_over),
    );
}

/// The pool families (`crate::pool::exposition::FAMILIES`), one sample per pool each.
fn pools(out: &mut String, node: &str, pools: &[crate::pool::PoolStats]) {
    for (name, kind, help, figure) in crate::pool::exposition::FAMILIES {
        family(out, name, kind, help);
        for pool in pools {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",pool=\"{}\"}} {}",
                pool.name,
                figure(pool)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::{RemoteStats, Tier, TierStats};

    fn l2(remote: Option<RemoteStats>) -> TierStats {
        TierStats {
            tier: Tier::L2,
            entries: 3,
            bytes: 300,
            max_bytes: 1000,
            hits: 8,
            misses: 2,
            hit_ratio: 0.8,
            evictions: 0,
            remote,
        }
    }

    #[test]
    fn l2_remote_gets_and_dropped_puts_are_exported_in_a_cluster_only() {
        let mut out = String::new();
        super::cache(
            &mut out,
            "b",
            &[l2(Some(RemoteStats {
                hits: 5,
                misses: 1,
                timeouts: 4,
                puts_dropped: 2,
                mean_wait_us: 900,
            }))],
        );
        for line in [
            "erlmcp_cache_hits_total{node=\"b\",tier=\"l2\"} 8",
            "erlmcp_cache_l2_remote_gets_total{node=\"b\",result=\"hit\"} 5",
            "erlmcp_cache_l2_remote_gets_total{node=\"b\",result=\"miss\"} 1",
            "erlmcp_cache_l2_remote_gets_total{node=\"b\",result=\"timeout\"} 4",
            "erlmcp_cache_l2_puts_dropped_total{node=\"b\"} 2",
            "# TYPE erlmcp_cache_l2_remote_gets_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
        }
        let mut alone = String::new();
        super::cache(&mut alone, "b", &[l2(None)]);
        assert!(!alone.contains("erlmcp_cache_l2_"), "{alone}");
    }
}
