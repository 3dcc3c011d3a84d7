//! Rolling plugin loads across a cluster of real `erlmcp start` processes on loopback
//! (docs/plugins.md, "Across a cluster"). Every process is stopped when its `Node` drops.

use crate::support::cluster::*;
use crate::support::remote::Remote;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The plugins each node lists (`plugins list --all` through `remote`): node → (name, version).
fn plugins_everywhere(remote: &Remote<'_>) -> Vec<(String, Vec<(String, String)>)> {
    let data = remote.eval_json("plugins list --all");
    data.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|listing| {
            let plugins = listing["plugins"]
                .as_array()
                .unwrap_or_else(|| panic!("a member not asked: {listing}"))
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_owned(),
                        p["version"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            (
                listing["node"].as_str().unwrap_or_default().to_owned(),
                plugins,
            )
        })
        .collect()
}

/// Rolling plugin loads (docs/plugins.md, "Across a cluster"): `erlmcp plugin load PATH
/// --cluster` on one node loads the plugin on all three, and its tool answers through each;
/// a roll that one node cannot take (c hung past the call's deadline) is undone everywhere —
/// on a and b at once, and on c as soon as it runs again, its queued load followed by the undo.
#[test]
fn a_plugin_loaded_with_cluster_reaches_every_node_and_a_refusal_anywhere_undoes_it_everywhere() {
    use crate::support::{http, plugin_build};
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (
        dir.path().join("counter-v1.so"),
        dir.path().join("counter-v2.so"),
    );
    plugin_build::build("erlmcp-plugin-counter", &[], &v1);
    plugin_build::build("erlmcp-plugin-counter", &["v2"], &v2);
    let ports = free_ports(3);
    let config = Some("[cluster]\nforward_timeout = 1000\n");
    let a = start_with("a", ports[0], None, COOKIE, config);
    let b = start_with("b", ports[1], Some(ports[0]), COOKIE, config);
    let c = start_with("c", ports[2], Some(ports[0]), COOKIE, config);
    wait_all_up(&[(&a, "a"), (&b, "b"), (&c, "c")]);
    let on_a = remote(&a, "a");
    let counter = |version: &str| vec![("counter".to_owned(), version.to_owned())];

    // The CLI's rolling load, from a: every node serves v1.
    let out = on_a.run(
        COOKIE,
        &["plugin", "load", v1.to_str().unwrap(), "--cluster"],
    );
    assert!(
        out.status.success(),
        "{}",
        crate::support::remote::text(&out)
    );
    let everywhere = plugins_everywhere(&on_a);
    assert_eq!(everywhere.len(), 3, "{everywhere:?}");
    for (node, plugins) in &everywhere {
        assert_eq!(plugins, &counter("1.0.0"), "{node}");
    }
    let session = http::initialize(c.http.unwrap());
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "count", "arguments": {}}});
    let counted = http::post(c.http.unwrap(), Some(&session), &call, &[]);
    let answer = rpc_answer(&counted);
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("1.0.0")),
        "{answer}"
    );

    // c hung past the call's deadline (1 s): the roll of v2 is refused there and undone on b
    // and a, which serve v1 again.
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&c.child), Signal::STOP).unwrap();
    wait_stopped(c.child.id());
    let rolled = on_a.eval(&format!("plugins load {} --cluster", v2.display()), true);
    kill_process(Pid::from_child(&c.child), Signal::CONT).unwrap();
    assert!(
        !rolled.status.success(),
        "{}",
        crate::support::remote::text(&rolled)
    );
    let reply: Value = serde_json::from_str(
        String::from_utf8_lossy(&rolled.stdout)
            .lines()
            .next()
            .unwrap_or_default(),
    )
    .unwrap();
    let steps: Vec<(String, String)> = reply["data"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap().to_owned(),
                s["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let step = |node: &str, action: &str| (format!("{node}@127.0.0.1"), action.to_owned());
    assert_eq!(
        steps,
        vec![
            step("a", "loaded"),
            step("b", "loaded"),
            step("c", "refused"),
            // c's undo is queued behind its load; it is not answered within the deadline either.
            step("c", "undo failed"),
            step("b", "rolled back"),
            step("a", "rolled back"),
        ],
        "{reply}"
    );
    // Once c runs again it takes the load, then the undo: every node serves v1.
    let settled = Instant::now();
    loop {
        let everywhere = plugins_everywhere(&on_a);
        if everywhere
            .iter()
            .all(|(_, plugins)| plugins == &counter("1.0.0"))
        {
            break;
        }
        assert!(
            settled.elapsed() < SILENCE_BOUND,
            "not v1 everywhere: {everywhere:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
