//! Owns the shell's `plugins` command: listing handler plugins (this node's, or every cluster
//! member's), loading one (optionally as a canary, or on every member in turn), rolling back,
//! promoting a canary, unloading.

use super::{Answer, failed, to_json};
use crate::admin::AdminContext;
use serde_json::Value;
use std::fmt::Write as _;

pub(super) async fn plugins(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    let host = &ctx.plugins;
    let describe = |info: &crate::plugin_host::PluginInfo| {
        let mut line = format!(
            "{} {} tools [{}]",
            info.name,
            info.version,
            info.tools.join(", ")
        );
        if !info.history.is_empty() {
            let _ = write!(line, " history [{}]", info.history.join(", "));
        }
        if let Some(canary) = &info.canary {
            let _ = write!(line, " canary {} at {}‰", canary.version, canary.permille);
        }
        line
    };
    match args {
        ["list", "--all"] => list_all(host).await,
        ["load", path, "--cluster"] => roll(host, path).await,
        ["unload", name] => {
            let info = host.unload(name).await.map_err(|e| e.to_string())?;
            Ok(Answer::new(
                format!("unloaded: {}", describe(&info)),
                to_json(&info),
            ))
        }
        [] | ["list"] => {
            let list = host.list();
            let mut text: String = list.iter().map(|i| describe(i) + "\n").collect();
            let _ = write!(text, "{} plugins", list.len());
            Ok(Answer::new(text, to_json(&list)))
        }
        ["load", path, rest @ ..] => {
            let canary = match rest {
                [] => None,
                ["--canary", permille] => Some(
                    permille
                        .parse::<u64>()
                        .ok()
                        .filter(|p| (1..=1000).contains(p))
                        .ok_or("--canary takes a per-mille share from 1 to 1000")?,
                ),
                _ => return failed("usage: plugins load PATH [--canary PERMILLE]"),
            };
            let path = std::path::Path::new(path);
            let loaded = match canary {
                Some(permille) => host.load_canary(path, Value::Null, permille).await,
                None => host.load(path, Value::Null).await,
            }
            .map_err(|e| format!("load refused: {e}"))?;
            Ok(Answer::new(
                format!("loaded {}", describe(&loaded)),
                to_json(&loaded),
            ))
        }
        ["rollback", name] => {
            let info = host.rollback(name).await.map_err(|e| e.to_string())?;
            Ok(Answer::new(
                format!("rolled back: {}", describe(&info)),
                to_json(&info),
            ))
        }
        ["promote", name] => {
            let info = host.promote(name).await.map_err(|e| e.to_string())?;
            Ok(Answer::new(
                format!("promoted: {}", describe(&info)),
                to_json(&info),
            ))
        }
        _ => failed(
            "usage: plugins [list [--all]] | plugins load PATH [--canary PERMILLE | --cluster] | plugins rollback NAME | plugins promote NAME | plugins unload NAME",
        ),
    }
}

/// `plugins load PATH --cluster`: the rolling load; a failed answer when it was undone.
async fn roll(host: &crate::plugin_host::PluginHost, path: &str) -> Result<Answer, String> {
    let roll = crate::plugin_host::cluster::roll(host, path).await?;
    let mut text = String::new();
    for step in &roll.steps {
        let _ = writeln!(
            text,
            "{:<32} {:<12} {}",
            step.node, step.action, step.detail
        );
    }
    let _ = write!(
        text,
        "{}",
        if roll.complete {
            "loaded on every node"
        } else {
            "refused: undone on the nodes already loaded"
        }
    );
    let answer = Answer::new(text, to_json(&roll));
    Ok(if roll.complete {
        answer
    } else {
        Answer::failed_with(answer)
    })
}

/// `plugins list --all`: every member's plugins.
async fn list_all(host: &crate::plugin_host::PluginHost) -> Result<Answer, String> {
    let listings = crate::plugin_host::cluster::list_all(host).await?;
    let mut text = String::new();
    for listing in &listings {
        match (&listing.plugins, &listing.error) {
            (Some(plugins), _) => {
                let names: Vec<String> = plugins
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.version))
                    .collect();
                let _ = writeln!(text, "{:<32} {}", listing.node, names.join(", "));
            }
            (None, error) => {
                let _ = writeln!(
                    text,
                    "{:<32} (not asked: {})",
                    listing.node,
                    error.as_deref().unwrap_or("unknown")
                );
            }
        }
    }
    let _ = write!(text, "{} nodes", listings.len());
    Ok(Answer::new(text, to_json(&listings)))
}
