//! Owns the shell's `auth` command: whether `[auth]` is on, the resource, the keys and token
//! cache, the refusals and denials counted; `auth rules`: the rules in force; `auth denials`:
//! the recent denials (the last `auth.denials_kept`); `auth reload`: the rules read again from the
//! config file the node started with, and put in force.

use super::{Answer, to_json};
use crate::admin::AdminContext;
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn auth(ctx: &AdminContext, args: &[&str]) -> Result<Answer, String> {
    let Some(auth) = crate::auth::current() else {
        return Ok(Answer::new(
            "auth is off: [auth] enabled = false and no http.bearer_token".to_owned(),
            json!(null),
        ));
    };
    match args {
        [] => {
            let stats = auth.stats();
            let mut text = format!(
                "enabled: {}\nresource: {}\napi keys: {}\n",
                stats.enabled, stats.resource, stats.api_keys
            );
            match &stats.jwks {
                Some(jwks) => {
                    let _ = writeln!(
                        text,
                        "jwks: {} ({} keys, {} fetches, {} failed); tokens cached: {}",
                        jwks.uri, jwks.keys, jwks.fetches, jwks.failures, jwks.tokens_cached
                    );
                }
                None => text.push_str("jwks: none (JWTs not accepted)\n"),
            }
            let _ = writeln!(
                text,
                "introspection: {}",
                stats
                    .introspection
                    .as_deref()
                    .unwrap_or("none (opaque tokens not accepted)")
            );
            let refusals: Vec<String> = stats
                .refusals
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            let _ = write!(
                text,
                "refused for their token: {}\ndenied by the rules: {}",
                refusals.join(", "),
                stats.denials
            );
            Ok(Answer::new(text, to_json(&stats)))
        }
        ["rules"] => {
            let in_force = auth.rules();
            let (rules, default) = in_force.configured();
            let mut text = format!("default: {}\n", to_json(&default).as_str().unwrap_or("?"));
            if rules.is_empty() {
                text.push_str("no rules: every authenticated principal may use everything\n");
            }
            for (i, rule) in rules.iter().enumerate() {
                let list = |names: &[String]| {
                    if names.is_empty() {
                        "-".to_owned()
                    } else {
                        names.join(",")
                    }
                };
                let _ = writeln!(
                    text,
                    "rule {i}: principals {} scopes {} tools {} resources {} prompts {}",
                    if rule.principals.is_empty() {
                        "*".to_owned()
                    } else {
                        rule.principals.join(",")
                    },
                    list(&rule.scopes),
                    list(&rule.tools),
                    list(&rule.resources),
                    list(&rule.prompts),
                );
            }
            Ok(Answer::new(text.trim_end().to_owned(), to_json(&*in_force)))
        }
        ["denials"] => {
            let denials = auth.denials.recent();
            let mut text = format!(
                "{:<14} {:<20} {:<8} {:<28} {}\n",
                "AT_MS", "SUBJECT", "KIND", "NAME", "MISSING_SCOPES"
            );
            for d in &denials {
                let _ = writeln!(
                    text,
                    "{:<14} {:<20} {:<8} {:<28} {}",
                    d.at_ms,
                    d.subject,
                    d.kind.as_str(),
                    d.name,
                    d.missing_scopes.join(" ")
                );
            }
            let _ = write!(
                text,
                "{} kept, {} denied since start",
                denials.len(),
                auth.denials.denial_count()
            );
            Ok(Answer::new(text, to_json(&denials)))
        }
        ["reload"] => {
            let done = crate::dispatch::reload_rules(&ctx.config)
                .map_err(|e| format!("auth reload: {e}; the rules in force are unchanged"))?;
            let mut text = format!(
                "auth rules reloaded: {} rules, default {}{}",
                done.rules,
                to_json(&done.default).as_str().unwrap_or("?"),
                if done.changed { "" } else { " (unchanged)" }
            );
            if done.restart_needed {
                text.push_str(
                    "\nother [auth] keys in the file differ from those in force: they take a restart",
                );
            }
            Ok(Answer::new(text, to_json(&done)))
        }
        _ => Err("usage: auth [rules|denials|reload]".to_owned()),
    }
}
