//! The cache from outside: `erlmcp remote cache` shows each tier's figures as text and `--json`,
//! `cache clear l1` empties a tier, `/metrics` has the cache families; and a node whose
//! `cache.redb` is corrupt logs a line naming the file, sets it aside, and serves.

use crate::support::node::Node;
use crate::support::remote::{Remote, get_metrics, start_with_admin, text};
use serde_json::json;

const COOKIE: &str = "cache-cookie";

/// L1's figures, as `remote cache --json` shows them.
fn l1_of(remote: &Remote<'_>) -> serde_json::Value {
    let tiers = remote.eval_json("cache");
    tiers
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == "l1"))
        .cloned()
        .unwrap_or_else(|| panic!("L1 in {tiers}"))
}

#[test]
fn remote_cache_shows_each_tier_and_clears_one() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("cache-test-{}", std::process::id());
    let (node, admin_http) = start_with_admin(runtime.path(), &name, COOKIE, &[]);
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie: COOKIE,
    };

    let out = remote.eval("cache", false);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for column in [
        "TIER",
        "ENTRIES",
        "BYTES",
        "HIT_RATIO",
        "EVICTIONS",
        "L1",
        "L2",
    ] {
        assert!(shown.contains(column), "{column} in:\n{shown}");
    }
    let l1 = l1_of(&remote);
    assert_eq!(l1["entries"], 0, "{l1}");
    assert_eq!(l1["max_bytes"], 64 << 20, "{l1}");
    for key in ["bytes", "hits", "misses", "hit_ratio", "evictions"] {
        assert!(l1.get(key).is_some(), "{key} in {l1}");
    }

    // The demo's `echo_cached`: the second call is an L1 hit, the same answer.
    let mut client = node.connect();
    client.initialize("2025-11-25", json!({}));
    let call = json!({"name": "echo_cached", "arguments": {"text": "kept"}});
    let first = client.call(2, "tools/call", call.clone());
    let second = client.call(3, "tools/call", call);
    assert_eq!(first["result"]["content"][0]["text"], "kept", "{first}");
    assert_eq!(first["result"], second["result"]);
    let l1 = l1_of(&remote);
    assert_eq!(l1["entries"], 1, "{l1}");
    assert!(l1["hits"].as_u64().is_some_and(|h| h >= 1), "{l1}");

    assert_eq!(remote.eval_json("cache clear l1"), json!({"cleared": "l1"}));
    let out = remote.eval("cache clear l9", false);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no cache tier `l9`"), "{}", text(&out));

    let (status, body) = get_metrics(admin_http, Some(COOKIE));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "erlmcp_cache_entries{{node=\"{name}\",tier=\"l1\"}} 0"
        )),
        "{body}"
    );
    assert!(
        body.contains("# TYPE erlmcp_cache_hits_total counter"),
        "{body}"
    );
}

#[test]
fn a_corrupt_disk_cache_is_set_aside_with_a_log_line_and_the_node_serves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.redb");
    std::fs::write(&file, vec![0x5A; 8192]).unwrap();
    let config = format!("[cache]\ndir = \"{}\"\n", dir.path().display());
    let mut node = Node::tcp(Some(&config));
    let line = node.find_log("the disk cache file is unreadable");
    assert!(line.contains(&file.display().to_string()), "{line}");
    let mut client = node.connect();
    client.initialize("2025-11-25", json!({}));
    let answer = client.call(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("cache.redb.corrupt-")
        })
        .count();
    assert_eq!(aside, 1, "the corrupt file is kept beside, for a look");
    assert!(file.exists(), "a new, empty cache file took its place");
}
