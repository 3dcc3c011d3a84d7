//! Owns the shell's `config` command (reading and setting the running configuration) and
//! `alerts` (what fires now and what fired lately).

use super::{Answer, failed, to_json};
use crate::admin::AdminContext;
use crate::config::{LogLevel, ValueError};
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn config(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    match args {
        ["get"] => {
            // Bearer secrets are not shown, even to a holder of the cookie.
            let shown = crate::config::redacted(&ctx.config);
            Ok(Answer::new(shown.to_toml(), to_json(&shown)))
        }
        ["get", key] => {
            let mut value = to_json(&crate::config::redacted(&ctx.config));
            for part in key.split('.') {
                value = value
                    .get(part)
                    .cloned()
                    .ok_or(format!("no configuration key `{key}`"))?;
            }
            if *key == "log_level"
                && let Some(current) = crate::logging::current_level()
            {
                value = json!(current.as_str());
            }
            Ok(Answer::new(format!("{key} = {value}"), value))
        }
        ["set", "log_level", level] => {
            let parsed: LogLevel = level.parse().map_err(|e: ValueError| e.to_string())?;
            crate::logging::set_level(parsed).map_err(|e| e.to_string())?;
            tracing::info!(
                level = parsed.as_str(),
                "log level changed from the remote shell"
            );
            Ok(Answer::new(
                format!("log_level = {}", parsed.as_str()),
                json!({"log_level": parsed.as_str()}),
            ))
        }
        ["set", key, _] => failed(format!(
            "`{key}` cannot change while the node runs (restart it with --config); run-time keys: log_level; the auth rules: edit the file, then `auth reload`"
        )),
        _ => failed("usage: config get [KEY] | config set KEY VALUE"),
    }
}

pub(super) fn alerts(ctx: &AdminContext) -> Answer {
    let firing = ctx
        .hub
        .latest()
        .map(|s| s.alerts.clone())
        .unwrap_or_default();
    let recent = ctx.hub.recent_alerts();
    let mut text = if firing.is_empty() {
        "firing: none\n".to_owned()
    } else {
        format!("firing: {}\n", firing.join(", "))
    };
    for event in &recent {
        let _ = writeln!(
            text,
            "{} {:<12} {:<8} value {:.2} threshold {:.2}",
            event.at_ms, event.alert, event.state, event.value, event.threshold
        );
    }
    Answer::new(text, json!({"firing": firing, "recent": to_json(&recent)}))
}
