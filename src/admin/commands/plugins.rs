//! Owns the shell's `plugins` command: listing handler plugins, loading one (optionally as a
//! canary), and rolling a canary back or promoting it.

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
            "usage: plugins [list] | plugins load PATH [--canary PERMILLE] | plugins rollback NAME | plugins promote NAME",
        ),
    }
}
