//! Owns the shell's `cache` command: each tier of the result cache with its entries, bytes, hit
//! ratio and evictions; and `cache clear [TIER]`, which empties one tier or all.

use super::{Answer, to_json};
use crate::cache::Tier;
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn cache(args: &[&str]) -> Result<Answer, String> {
    match args {
        [] | ["stats"] => Ok(stats()),
        ["clear"] => clear(None),
        ["clear", tier] => clear(Some(tier.parse::<Tier>()?)),
        _ => Err("usage: cache [clear [l1|l2|l3]]".to_owned()),
    }
}

fn stats() -> Answer {
    let Some(cache) = crate::cache::current() else {
        return Answer::new(
            "the cache is off (cache.enabled = false)".to_owned(),
            json!([]),
        );
    };
    let tiers = cache.stats();
    let mut text = format!(
        "{:<5} {:>10} {:>14} {:>14} {:>12} {:>12} {:>9} {:>10}\n",
        "TIER", "ENTRIES", "BYTES", "MAX_BYTES", "HITS", "MISSES", "HIT_RATIO", "EVICTIONS"
    );
    for t in &tiers {
        let _ = writeln!(
            text,
            "{:<5} {:>10} {:>14} {:>14} {:>12} {:>12} {:>9.3} {:>10}",
            format!("{:?}", t.tier),
            t.entries,
            t.bytes,
            t.max_bytes,
            t.hits,
            t.misses,
            t.hit_ratio,
            t.evictions
        );
    }
    if let Some(remote) = tiers.iter().find_map(|t| t.remote.as_ref()) {
        let _ = writeln!(
            text,
            "L2 remote (gets sent to the key's owner): hits {}, misses {}, timeouts {} (a hit waited {} µs on average); puts dropped {}",
            remote.hits, remote.misses, remote.timeouts, remote.mean_wait_us, remote.puts_dropped
        );
    }
    if !tiers.iter().any(|t| t.tier == Tier::L3) {
        text.push_str("(no disk tier: nothing written to it yet, cache.l3_max_bytes = 0, or its file could not be opened)\n");
    }
    let _ = write!(text, "{} tiers", tiers.len());
    Answer::new(text, to_json(&tiers))
}

fn clear(tier: Option<Tier>) -> Result<Answer, String> {
    let cache = crate::cache::current().ok_or("the cache is off (cache.enabled = false)")?;
    cache.clear(tier);
    let which = tier.map_or("every tier".to_owned(), |t| format!("{t:?}"));
    Ok(Answer::new(
        format!("cleared {which}"),
        json!({"cleared": tier.map_or_else(|| json!("all"), |t| json!(t))}),
    ))
}
